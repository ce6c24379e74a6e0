import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from divergences.llm import merge_parameters, merge_predictions, t3_coefficients


def test_identical_predictions_give_the_midpoint(rng):
    p = rng.dirichlet(np.ones(10), size=6)
    np.testing.assert_allclose(t3_coefficients(p, p, 0.2, 0.8), 0.5, rtol=1e-12)
    x = torch.from_numpy(rng.normal(size=(4, 10)))
    out = t3_coefficients(x, x, 0.2, 0.8, input="logits")
    torch.testing.assert_close(out, torch.full((4,), 0.5, dtype=torch.float64))


def test_against_scipy_js_and_batchwise(rng):
    p = rng.dirichlet(np.ones(7), size=5)
    q = rng.dirichlet(np.ones(7), size=5)
    js = jensenshannon(p, q, axis=-1) ** 2               # scipy returns the distance (nats)
    expected = 0.1 + 0.8 / (1 + np.exp(-2.0 * js))
    np.testing.assert_allclose(t3_coefficients(p, q, 0.1, 0.9, gamma=2.0), expected, rtol=1e-10)
    b = t3_coefficients(p, q, 0.1, 0.9, gamma=2.0, batchwise=True)
    assert np.ndim(b) == 0
    np.testing.assert_allclose(b, 0.1 + 0.8 / (1 + np.exp(-2.0 * js.mean())), rtol=1e-10)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 5.0), st.floats(-1.0, 1.0), st.floats(0.0, 2.0))
def test_js_le_ln2_bounds_lambda(seed, gamma, lo, width):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(5, 0.1), size=4)
    q = rng.dirichlet(np.full(5, 0.1), size=4)
    p[0] = [1, 0, 0, 0, 0]
    q[0] = [0, 1, 0, 0, 0]                                  # disjoint: JS = ln 2
    lam = t3_coefficients(p, q, lo, lo + width, gamma=gamma)
    upper = lo + width / (1 + math.exp(-gamma * math.log(2)))
    assert np.all(lam >= lo + width / 2 - 1e-12) and np.all(lam <= upper + 1e-12)
    np.testing.assert_allclose(lam[0], upper, rtol=1e-9, atol=1e-12)


def test_merge_predictions_and_parameters(rng):
    p = rng.dirichlet(np.ones(4), size=3)
    q = rng.dirichlet(np.ones(4), size=3)
    lam = t3_coefficients(p, q, 0.0, 1.0)
    m = merge_predictions(p, q, lam)
    np.testing.assert_allclose(m, (1 - lam[:, None]) * p + lam[:, None] * q)
    np.testing.assert_allclose(m.sum(-1), 1.0)
    lg = torch.tensor(np.log(p), requires_grad=True)
    out = merge_predictions(lg, torch.tensor(np.log(q)), 0.5, input="logits")
    out[:, 0].sum().backward()
    assert lg.grad is not None and torch.isfinite(lg.grad).all()
    torch.testing.assert_close(out.detach(), torch.tensor(0.5 * p + 0.5 * q))
    a = torch.nn.Linear(3, 2)
    b = torch.nn.Linear(3, 2)
    merged = merge_parameters(a.state_dict(), b.state_dict(), 0.25)
    torch.testing.assert_close(merged["weight"], 0.75 * a.weight.detach() + 0.25 * b.weight.detach())
    steps = {"n": torch.tensor(3)}
    assert merge_parameters(steps, {"n": torch.tensor(5)}, 0.5)["n"].item() == 5


def test_errors(rng):
    p = rng.dirichlet(np.ones(4), size=3)
    with pytest.raises(ValueError, match="lambda_max must be >= lambda_min"):
        t3_coefficients(p, p, 1.0, 0.0)
    with pytest.raises(ValueError, match="gamma must lie"):
        t3_coefficients(p, p, 0.0, 1.0, gamma=-1.0)
    with pytest.raises(TypeError, match="batchwise must be a bool"):
        t3_coefficients(p, p, 0.0, 1.0, batchwise=1)
    with pytest.raises(ValueError, match="input must be one of"):
        t3_coefficients(p, p, 0.0, 1.0, input="counts")
    with pytest.raises(ValueError, match="do not sum to 1"):
        t3_coefficients(p * 2, p, 0.0, 1.0)
    with pytest.raises(ValueError, match="lambda_ must be a scalar or have the batch shape"):
        merge_predictions(p, p, [0.5, 0.5])
    with pytest.raises(ValueError, match="same shape"):
        merge_predictions(p, p[:2], 0.5)
    with pytest.raises(ValueError, match="same keys"):
        merge_parameters({"a": torch.zeros(1)}, {"b": torch.zeros(1)}, 0.5)
    with pytest.raises(ValueError, match="shapes differ"):
        merge_parameters({"a": torch.zeros(1)}, {"a": torch.zeros(2)}, 0.5)
