"""divergences.distributions: KL against torch.distributions.kl_divergence, Renyi, Bhattacharyya
and Hellinger against numerical integration, properties, gradients and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.distributions as td
from scipy import integrate, stats

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


# --------------------------------------------------------------------------------------------
# Against numerical integration
# --------------------------------------------------------------------------------------------

# (family, p1, p2, scipy frozen constructor, support) for the 1-D continuous families.
CONTINUOUS = [
    ("exponential", (1.5,), (0.7,), lambda r: stats.expon(scale=1 / r), (0.0, np.inf)),
    ("gamma", (2.5, 1.5), (1.7, 0.8), lambda a, b: stats.gamma(a, scale=1 / b), (0.0, np.inf)),
    ("beta", (2.0, 3.5), (1.5, 1.2), lambda a, b: stats.beta(a, b), (0.0, 1.0)),
    ("normal", (0.3, 1.2), (-0.5, 0.9), lambda m, s: stats.norm(m, s), (-np.inf, np.inf)),
]
ORDERS = [0.3, 0.5, 2.0]


def _quad(f, lo, hi):
    return integrate.quad(f, lo, hi, epsabs=1e-13, epsrel=1e-12, limit=500)[0]


def _renyi_quad(d1, d2, a, lo, hi):
    integral = _quad(lambda x: math.exp(a * d1.logpdf(x) + (1 - a) * d2.logpdf(x)), lo, hi)
    return math.log(integral) / (a - 1)


@pytest.mark.parametrize("name,t1,t2,make,support", CONTINUOUS)
def test_continuous_against_quadrature(name, t1, t2, make, support):
    d1, d2 = make(*t1), make(*t2)
    for a in ORDERS:
        ours = float(dd.renyi(t1, t2, family=name, order=a))
        assert ours == pytest.approx(_renyi_quad(d1, d2, a, *support), rel=1e-8, abs=1e-10)
    bc = _quad(lambda x: math.exp(0.5 * (d1.logpdf(x) + d2.logpdf(x))), *support)
    assert float(dd.bhattacharyya(t1, t2, family=name)) == pytest.approx(-math.log(bc), rel=1e-8)
    h2 = _quad(lambda x: (math.exp(0.5 * d1.logpdf(x)) - math.exp(0.5 * d2.logpdf(x))) ** 2,
               *support)
    assert float(dd.hellinger(t1, t2, family=name)) == pytest.approx(h2, rel=1e-7, abs=1e-10)
    kl = _quad(lambda x: math.exp(d1.logpdf(x)) * (d1.logpdf(x) - d2.logpdf(x)), *support)
    assert float(dd.kl(t1, t2, family=name)) == pytest.approx(kl, rel=1e-8)


def _pmfs(name, t1, t2):
    if name == "poisson":
        k = np.arange(200)
        return stats.poisson(t1).pmf(k), stats.poisson(t2).pmf(k)
    if name == "bernoulli":
        return np.array([1 - t1, t1]), np.array([1 - t2, t2])
    return np.asarray(t1), np.asarray(t2)


DISCRETE = [
    ("bernoulli", 0.3, 0.65),
    ("categorical", [0.1, 0.2, 0.3, 0.4], [0.25, 0.05, 0.5, 0.2]),
    ("poisson", 3.5, 6.0),
]


@pytest.mark.parametrize("name,t1,t2", DISCRETE)
def test_discrete_against_exact_sums(name, t1, t2):
    p, q = _pmfs(name, t1, t2)
    for a in ORDERS:
        ref = math.log(np.sum(p**a * q ** (1 - a))) / (a - 1)
        assert float(dd.renyi(t1, t2, family=name, order=a)) == pytest.approx(ref, rel=1e-10)
    assert float(dd.bhattacharyya(t1, t2, family=name)) == pytest.approx(
        -math.log(np.sum(np.sqrt(p * q))), rel=1e-10)
    h2 = np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)
    assert float(dd.hellinger(t1, t2, family=name)) == pytest.approx(h2, rel=1e-10)
    m = 0.5 * (p + q)
    js = 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))
    assert float(dd.js(t1, t2, family=name)) == pytest.approx(js, rel=1e-10)


def test_hellinger_matches_the_registry_convention():
    import divergences as dv

    p, q = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.25, 0.05, 0.5, 0.2])
    ref = float(dv.f_divergence(p, q, "squared_hellinger"))
    assert float(dd.hellinger(p, q, family="categorical")) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("name,t1,t2,make,support", CONTINUOUS)
def test_js_monte_carlo_within_its_stated_error(name, t1, t2, make, support):
    d1, d2 = make(*t1), make(*t2)

    def term(x):
        l1, l2 = d1.logpdf(x), d2.logpdf(x)
        lm = np.logaddexp(l1, l2) - math.log(2)
        return 0.5 * (math.exp(l1) * (l1 - lm) + math.exp(l2) * (l2 - lm))

    ref = _quad(term, *support)
    samples = 100_000
    ours = float(dd.js(t1, t2, family=name, samples=samples, seed=1))
    assert abs(ours - ref) < 4 * 0.5 / math.sqrt(samples)
    assert ours == float(dd.js(t1, t2, family=name, samples=samples, seed=1))


@pytest.mark.parametrize("name", FAMILIES)
def test_renyi_tends_to_kl(name):
    p, q = _pair(name, 5, (4,))
    kl = dd.kl(p, q)
    torch.testing.assert_close(dd.renyi(p, q, order=1.0), kl, rtol=0, atol=0)
    for eps in (1e-5, -1e-5):
        torch.testing.assert_close(dd.renyi(p, q, order=1 + eps), kl, rtol=1e-4, atol=1e-8)


def test_outside_the_natural_parameter_space_is_inf():
    # Exponential: 2 * 1 - 3 < 0; Gamma: rate 2 * 1 - 1 * 3 < 0; Beta: 3 * 0.5 - 2 * 1 <= 0.
    assert math.isinf(float(dd.renyi(1.0, 3.0, family="exponential", order=2.0)))
    assert math.isinf(float(dd.renyi((2.0, 1.0), (2.0, 3.0), family="gamma", order=2.0)))
    assert math.isinf(float(dd.renyi((0.5, 1.0), (1.0, 1.0), family="beta", order=3.0)))
    assert math.isinf(float(dd.renyi((0.0, 2.0), (0.0, 1.0), family="normal", order=2.0)))
    # Categorical: q has no mass where p has some.
    assert math.isinf(float(dd.renyi([0.5, 0.5], [1.0, 0.0], family="categorical", order=2.0)))
    assert math.isfinite(float(dd.renyi([0.5, 0.5], [1.0, 0.0], family="categorical",
                                        order=0.5)))
    # The gradient stays finite next to an infinite entry of the batch.
    rate = torch.tensor([1.0, 3.0], dtype=D, requires_grad=True)
    out = dd.renyi(torch.tensor([1.0, 1.0], dtype=D), rate, family="exponential", order=2.0)
    assert math.isinf(float(out[1].detach()))
    out[0].backward()
    assert torch.isfinite(rate.grad).all()
