"""Attention entropy, fairness penalties, group divergence and CS-IB: claims and gradients."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from divergences import dependence, kernels
from divergences.losses._regularizers import (
    attention_entropy,
    attention_entropy_penalty,
    cs_information_bottleneck_loss,
    fairness_penalty,
    group_divergence,
)

# --------------------------------------------------------------------------------------------
# Entropy-guided attention
# --------------------------------------------------------------------------------------------


def test_uniform_row_log_t_and_one_hot_zero():
    t = 7
    uni = torch.full((2, 3, t), 1.0 / t, dtype=torch.float64)
    assert torch.allclose(attention_entropy(uni), torch.full((2, 3), math.log(t),
                                                             dtype=torch.float64))
    one = torch.zeros(2, 3, t, dtype=torch.float64)
    one[..., 2] = 1.0
    assert torch.equal(attention_entropy(one), torch.zeros(2, 3, dtype=torch.float64))


def test_causal_rows_use_attended_keys():
    tq, tk = 4, 6
    a = torch.zeros(1, 1, tq, tk, dtype=torch.float64)
    for i in range(tq):
        a[0, 0, i, : i + tk - tq + 1] = 1.0 / (i + tk - tq + 1)   # uniform over what it sees
    counts = torch.arange(tk - tq + 1, tk + 1, dtype=torch.float64)
    assert torch.allclose(attention_entropy(a, causal=True)[0, 0], counts.log())
    # theta = 1: every row sits at its own maximum, so no penalty with causal E_max ...
    assert attention_entropy_penalty(a, 1.0, gamma=0.01, causal=True, coef=1.0) == 0
    # ... while the non-causal E_max = log T_k sees the short rows as too low
    assert attention_entropy_penalty(a, 1.0, gamma=0.01, causal=False, coef=1.0) > 0
    with pytest.raises(ValueError, match="future"):
        attention_entropy(torch.full((3, 3), 1 / 3), causal=True)


def test_zero_loss_and_gradient_inside_band():
    gen = torch.Generator().manual_seed(0)
    logits = 0.1 * torch.randn(2, 3, 5, 8, generator=gen, dtype=torch.float64)
    logits.requires_grad_(True)
    a = torch.softmax(logits, -1)
    h = attention_entropy(a).detach()
    theta = (h / math.log(8)).mean(dim=(0, 2))          # rows within 0.2 E_max of target
    loss = attention_entropy_penalty(a, theta, gamma=0.2, coef=1.0)
    assert loss.item() == 0.0
    (g,) = torch.autograd.grad(loss, logits)
    assert torch.equal(g, torch.zeros_like(g))


def test_penalty_matches_official_formula():
    gen = torch.Generator().manual_seed(1)
    a = torch.softmax(3 * torch.randn(2, 4, 5, 6, generator=gen, dtype=torch.float64), -1)
    theta = torch.tensor([0.2, 0.5, 0.8, 0.95], dtype=torch.float64)
    # official: E = log T_k, d = H - theta E, penalty d^2 where |d| > gamma E,
    # summed over batch and rows, averaged over heads, times the coefficient
    ent = -(a * torch.log(a)).sum(-1)
    e = math.log(6)
    d = ent - theta[None, :, None] * e
    ref = 1e-5 * torch.where(d.abs() > 0.2 * e, d, torch.zeros_like(d)).square().sum() / 4
    assert torch.isclose(attention_entropy_penalty(a, theta), ref)
    none = attention_entropy_penalty(a, theta, reduction="none")
    assert none.shape == (2, 4, 5)
    assert torch.isclose(attention_entropy_penalty(a, theta, reduction="mean"), none.mean())


def test_attention_gradcheck():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(1, 2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    theta = torch.tensor([0.1, 0.3], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda z, th: attention_entropy_penalty(torch.softmax(z, -1), th, coef=1.0),
        (logits, theta))
    assert torch.autograd.gradcheck(
        lambda z: attention_entropy(torch.softmax(z, -1)), (logits,))


def test_attention_errors():
    a = torch.full((1, 2, 3, 3), 1 / 3)
    with pytest.raises(ValueError, match="theta"):
        attention_entropy_penalty(a, torch.ones(3))
    with pytest.raises(ValueError, match=r"\(B, H, T_q, T_k\)"):
        attention_entropy_penalty(a[0], 0.5)
    with pytest.raises(ValueError, match="gamma"):
        attention_entropy_penalty(a, 0.5, gamma=-0.1)
    with pytest.raises(ValueError, match="negative"):
        attention_entropy(-a)
    with pytest.raises(ValueError, match="T_q <= T_k"):
        attention_entropy(torch.full((4, 3), 1 / 3), causal=True)
    with pytest.raises(TypeError, match="causal"):
        attention_entropy(a, causal=1)
    with pytest.raises(ValueError, match="reduction"):
        attention_entropy_penalty(a, 0.5, reduction="batchmean")


# --------------------------------------------------------------------------------------------
# Fairness
# --------------------------------------------------------------------------------------------


def _fair_data(seed=0, n=60):
    rng = np.random.default_rng(seed)
    s1 = rng.integers(0, 2, n).astype(float)
    s2 = rng.normal(size=n)
    yhat = 0.8 * s1 + 0.5 * s2 * s1 + 0.3 * rng.normal(size=n)
    return yhat, s1, s2


def _u_dcov_sqr(x, y):
    """Reference U-centred dCov^2 (Székely & Rizzo 2014), written from the definition."""
    x = x.reshape(len(x), -1)
    y = y.reshape(len(y), -1)
    n = len(x)

    def ucentre(z):
        a = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1))
        u = (a - a.sum(0, keepdims=True) / (n - 2) - a.sum(1, keepdims=True) / (n - 2)
             + a.sum() / ((n - 1) * (n - 2)))
        np.fill_diagonal(u, 0.0)
        return u

    return (ucentre(x) * ucentre(y)).sum() / (n * (n - 3))


def test_jdcov_of_two_is_dcov_and_agrees_with_dcor():
    yhat, s1, s2 = _fair_data()
    d = fairness_penalty(yhat, s1, "dcov")
    assert np.isclose(fairness_penalty(yhat, [s1], "jdcov"), d, rtol=1e-10)
    cc = fairness_penalty(yhat, [s1, s2], "ccdcov")
    # dcor 0.7 dcor.u_distance_covariance_sqr on this data (recorded: importing dcor
    # compiles its numba kernels, about 40 s here, too slow for the test suite)
    assert np.isclose(d, 0.12742027223950275, rtol=1e-10)
    assert np.isclose(cc, 0.12377569023603785, rtol=1e-10)
    assert np.isclose(fairness_penalty(yhat, s2), 0.06276538509190999, rtol=1e-10)
    # and an independent reference from the definition
    assert np.isclose(d, _u_dcov_sqr(yhat, s1), rtol=1e-10)
    assert np.isclose(cc, _u_dcov_sqr(yhat, np.c_[s1, s2]), rtol=1e-10)
    assert np.isclose(fairness_penalty(yhat, s1, lam=3.0), 3.0 * d)


def test_distance_correlation_of_self_is_one():
    yhat, _, s2 = _fair_data(1)
    assert np.isclose(dependence.distance_correlation(yhat, yhat), 1.0)
    assert np.isclose(dependence.distance_correlation(s2, s2, squared=True), 1.0)


def test_fairness_penalty_gradcheck_and_decrease():
    yhat, s1, s2 = _fair_data(2, n=12)
    p = torch.tensor(yhat, requires_grad=True)
    s = [torch.tensor(s1), torch.tensor(s2)]
    for kind in ("jdcov", "ccdcov"):
        assert torch.autograd.gradcheck(lambda v, k=kind: fairness_penalty(v, s, k), (p,))
    assert torch.autograd.gradcheck(lambda v: fairness_penalty(v, s[0]), (p,))
    # one gradient step on the penalty lowers it
    val = fairness_penalty(p, s, "ccdcov")
    (g,) = torch.autograd.grad(val, p)
    assert fairness_penalty(p.detach() - 0.05 * g, s, "ccdcov") < val


def test_fairness_errors():
    yhat, s1, s2 = _fair_data()
    with pytest.raises(ValueError, match="one protected attribute"):
        fairness_penalty(yhat, [s1, s2], "dcov")
    with pytest.raises(ValueError, match="kind"):
        fairness_penalty(yhat, s1, "hsic")
    with pytest.raises(ValueError, match="at least one"):
        fairness_penalty(yhat, [], "jdcov")
    with pytest.raises(ValueError, match="lam"):
        fairness_penalty(yhat, s1, lam=-1.0)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 4), st.floats(0.0, 20.0))
def test_group_divergence_bounds(seed, k, shift):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 40, size=k)
    groups = np.repeat(np.arange(k), sizes)
    preds = rng.normal(size=groups.size) + shift * groups
    w = sizes / sizes.sum()
    h_w = -(w * np.log2(w)).sum()
    v = group_divergence(preds, groups)
    assert -1e-12 <= v <= h_w + 1e-9


def test_group_divergence_limits_and_units():
    rng = np.random.default_rng(3)
    groups = np.repeat([0, 1, 2], [100, 200, 100])
    w = np.array([0.25, 0.5, 0.25])
    h_w = -(w * np.log2(w)).sum()
    apart = group_divergence(rng.normal(size=400) + 100.0 * groups, groups)
    assert np.isclose(apart, h_w, atol=1e-6)
    same = group_divergence(rng.normal(size=400), groups)
    assert same < 0.05
    nats = group_divergence(rng.normal(size=400) + groups, groups, base=None)
    bits = group_divergence(rng.normal(size=400) + groups, groups)
    assert nats > 0 and bits > 0
    t = group_divergence(torch.tensor(rng.normal(size=400)), torch.tensor(groups))
    assert isinstance(t, torch.Tensor)
    with pytest.raises(ValueError, match="2 distinct"):
        group_divergence(rng.normal(size=10), np.zeros(10))
    with pytest.raises(ValueError, match="groups must have shape"):
        group_divergence(rng.normal(size=10), np.zeros(9))
    with pytest.raises(ValueError, match="grid_size"):
        group_divergence(rng.normal(size=10), np.arange(10) % 2, grid_size=3)


# --------------------------------------------------------------------------------------------
# CS-IB
# --------------------------------------------------------------------------------------------


def _csib_data(seed=0, n=40):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    t = torch.tanh(x @ torch.randn(3, 2, generator=gen, dtype=torch.float64))
    y = x[:, :1] + 0.1 * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    yp = y + 0.5 * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    return x, t, y, yp


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.5, 1.0, "median"]))
def test_cs_prediction_term_laws(seed, bw):
    x, t, y, yp = _csib_data(seed)
    a = cs_information_bottleneck_loss(x, t, y, yp, bandwidth=bw)
    b = cs_information_bottleneck_loss(x, t, yp, y, bandwidth=bw)
    assert a.prediction >= 0
    assert torch.isclose(a.prediction, b.prediction, atol=1e-12)      # symmetric
    same = cs_information_bottleneck_loss(x, t, y, y.clone(), bandwidth=bw)
    assert same.prediction.abs() < 1e-12
    assert a.compression >= 0
    assert torch.isclose(a.loss, a.prediction + 0.01 * a.compression)


def test_cs_terms_come_from_kernels():
    x, t, y, yp = _csib_data(1)
    out = cs_information_bottleneck_loss(x, t, y, yp, beta=0.3, bandwidth=0.8,
                                         bandwidth_t=0.6)
    assert torch.isclose(out.prediction, kernels.cauchy_schwarz(
        torch.cat([x, y], 1), torch.cat([x, yp], 1), bandwidth=0.8))
    assert torch.isclose(out.compression, kernels.cs_mutual_information(
        x, t, bandwidth=0.8, bandwidth_y=0.6))


def test_conditional_matches_official_eq18():
    x, t, y, yp = _csib_data(2, n=20)
    h = 0.9

    def gram(a, b):   # the official GaussianMatrix
        return torch.exp(-torch.cdist(a, b).square() / 2 / h**2)

    k, l1, l2, l21 = gram(x, x), gram(y, y), gram(yp, yp), gram(yp, y)
    norm = (k**2).sum(-1)

    def term(lm):
        return ((k * lm).sum(-1) / norm).sum(0)

    ref = (-2 * torch.log(term(l21)) + torch.log(term(l1)) + torch.log(term(l2)))
    out = cs_information_bottleneck_loss(x, t, y, yp, prediction="conditional", bandwidth=h)
    assert torch.isclose(out.prediction, ref)
    same = cs_information_bottleneck_loss(x, t, y, y, prediction="conditional", bandwidth=h)
    assert same.prediction.abs() < 1e-12


def test_csib_gradcheck():
    x, t, y, yp = _csib_data(3, n=8)
    t = t.clone().requires_grad_(True)
    yp = yp.clone().requires_grad_(True)
    for mode in ("joint", "conditional"):
        assert torch.autograd.gradcheck(
            lambda a, b, m=mode: cs_information_bottleneck_loss(
                x, a, y, b, beta=0.5, prediction=m, bandwidth=1.0).loss, (t, yp))


def test_csib_errors():
    x, t, y, yp = _csib_data()
    with pytest.raises(ValueError, match="rows"):
        cs_information_bottleneck_loss(x, t[:-1], y, yp)
    with pytest.raises(ValueError, match="shape of y"):
        cs_information_bottleneck_loss(x, t, y, torch.cat([yp, yp], 1))
    with pytest.raises(ValueError, match="prediction"):
        cs_information_bottleneck_loss(x, t, y, yp, prediction="kl")
    with pytest.raises(ValueError, match="beta"):
        cs_information_bottleneck_loss(x, t, y, yp, beta=-1.0)
    with pytest.raises(TypeError, match="torch tensor"):
        cs_information_bottleneck_loss(x.numpy(), t, y, yp)
    with pytest.raises(ValueError, match=r"\(n,\) or \(n, d\)"):
        cs_information_bottleneck_loss(x[None], t, y, yp)
