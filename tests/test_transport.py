"""Tests for divergences.transport: POT/scipy references, limits, laws, gradients, errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from divergences import _sinkhorn
from divergences.transport import (
    ConvergenceWarning,
    monge_gap,
    sinkhorn,
    sinkhorn_cost,
    sinkhorn_divergence,
    sliced_wasserstein,
    wasserstein_1d,
    wasserstein_exact,
)

TIGHT = {"tol": 1e-12, "max_iter": 20000}

# Every solve here must converge unless a test says otherwise: an unconverged dual value is
# only a lower bound, and a check that passes on it proves little.
pytestmark = pytest.mark.filterwarnings("error::divergences.transport.ConvergenceWarning")


def _simplex(rng, n):
    w = rng.gamma(1.0, size=n) + 0.05
    return w / w.sum()


def _pot_value(ot, a, b, m, reg):
    """<P, M> + reg * KL(P || a b^T) from POT's log-domain plan."""
    plan = ot.sinkhorn(a, b, m, reg, method="sinkhorn_log", stopThr=1e-15, numItermax=200000)
    ab = np.outer(a, b)
    kl = np.sum(np.where(plan > 0, plan * np.log(np.where(plan > 0, plan, 1.0) / ab), 0.0))
    return float(np.sum(plan * m) + reg * kl), plan


# --------------------------------------------------------------------------------------------
# sinkhorn against POT
# --------------------------------------------------------------------------------------------


def _cross_problem(n=60, seed=3):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(1, n, 2, generator=gen, dtype=torch.float64)
    y = 0.2 * torch.randn(1, n, 2, generator=gen, dtype=torch.float64) + 0.5
    la = torch.full((1, n), -math.log(n), dtype=torch.float64)
    sched = _sinkhorn.epsilon_schedule(_sinkhorn.diameter(x, y), 2, 0.01, 0.5)
    return _sinkhorn.Cost(x, y, 2, False), la, sched


@pytest.mark.parametrize("omega", [1.0, 1.3, 1.5, 1.8])
def test_overrelaxation_has_the_plain_fixed_point(omega):
    cost, la, sched = _cross_problem()
    plain = _sinkhorn.solve(cost, la, la, 0.01, sched, 1e-12, 50000, omega=1.0)
    relaxed = _sinkhorn.solve(cost, la, la, 0.01, sched, 1e-12, 50000, omega=omega)
    assert plain.converged and relaxed.converged
    # Potentials are defined up to f + c, g - c: compare the plan-defining sums and the value.
    torch.testing.assert_close(relaxed.f + relaxed.g[:, :1], plain.f + plain.g[:, :1],
                               rtol=0, atol=1e-10)
    torch.testing.assert_close(relaxed.g - relaxed.g[:, :1], plain.g - plain.g[:, :1],
                               rtol=0, atol=1e-10)


def test_overrelaxation_default_needs_fewer_iterations():
    cost, la, sched = _cross_problem()
    assert _sinkhorn.OVERRELAXATION == 1.5
    plain = _sinkhorn.solve(cost, la, la, 0.01, sched, 1e-6, 50000, omega=1.0)
    default = _sinkhorn.solve(cost, la, la, 0.01, sched, 1e-6, 50000)
    assert default.converged and default.iterations < plain.iterations


def test_overrelaxation_falls_back_to_plain_sinkhorn(monkeypatch):
    # With no patience the factor drops to 1 at the first iteration without a new best error;
    # a factor close to 2 (slow, oscillating) then still converges to the same fixed point.
    cost, la, sched = _cross_problem()
    monkeypatch.setattr(_sinkhorn, "RELAXATION_PATIENCE", 1)
    plain = _sinkhorn.solve(cost, la, la, 0.01, sched, 1e-12, 50000, omega=1.0)
    res = _sinkhorn.solve(cost, la, la, 0.01, sched, 1e-12, 50000, omega=1.99)
    assert res.converged
    torch.testing.assert_close(res.f + res.g[:, :1], plain.f + plain.g[:, :1], rtol=0,
                               atol=1e-10)


@pytest.mark.parametrize("p", [2, 1, 1.5])
@pytest.mark.parametrize("backend", ["tensorized", "online"])
def test_sinkhorn_matches_pot(rng, p, backend):
    ot = pytest.importorskip("ot")
    x, y = rng.normal(size=(7, 2)), rng.normal(size=(5, 2)) + 0.5
    a, b = _simplex(rng, 7), _simplex(rng, 5)
    reg = 0.3
    m = ot.dist(x, y, metric="euclidean") ** p
    want, want_plan = _pot_value(ot, a, b, m, reg)
    value, plan = sinkhorn(x, y, a, b, epsilon=reg, p=p, return_plan=True, backend=backend,
                           **TIGHT)
    assert isinstance(value, float | np.floating) and isinstance(plan, np.ndarray)
    np.testing.assert_allclose(value, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(plan, want_plan, rtol=0, atol=1e-11)
    np.testing.assert_allclose(plan.sum(1), a, atol=1e-11)
    np.testing.assert_allclose(plan.sum(0), b, atol=1e-11)


def test_sinkhorn_small_epsilon_stays_finite_float32(rng):
    x = torch.tensor(rng.normal(size=(40, 3)), dtype=torch.float32)
    y = torch.tensor(rng.normal(size=(30, 3)) * 3.0, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        value = sinkhorn(x, y, epsilon=1e-4, max_iter=50)
    assert value.dtype == torch.float32 and torch.isfinite(value)


def test_sinkhorn_epsilon_to_zero_is_exact_ot(rng):
    ot = pytest.importorskip("ot")
    n = 9
    # A permutation with noise, well separated: Sinkhorn converges at every epsilon used
    # (at intermediate epsilons on near-degenerate clouds it is sublinear, POT's too).
    x = rng.normal(size=(n, 2)) * 3.0
    y = x[rng.permutation(n)] + rng.normal(size=(n, 2)) * 0.3
    w2 = wasserstein_exact(x, y, p=2) ** 2
    np.testing.assert_allclose(w2, ot.emd2(np.full(n, 1 / n), np.full(n, 1 / n),
                                           ot.dist(x, y)), rtol=1e-10)
    gaps = []
    for eps in (1e-2, 1e-3, 1e-4):
        v = sinkhorn(x, y, epsilon=eps, tol=1e-10, max_iter=5000)
        # W^2 <= OT_eps <= W^2 + eps KL(P_opt || a b^T) = W^2 + eps log n
        assert w2 - 1e-12 <= v <= w2 + eps * math.log(n) + 1e-12
        gaps.append(v - w2)
    assert gaps[2] < gaps[1] < gaps[0]


def test_sinkhorn_limit_weighted_against_emd(rng):
    ot = pytest.importorskip("ot")
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(4, 2))
    a, b = _simplex(rng, 6), _simplex(rng, 4)
    exact = ot.emd2(a, b, ot.dist(x, y))
    np.testing.assert_allclose(wasserstein_exact(x, y, a, b) ** 2, exact, rtol=1e-9)
    # A weighted problem where Sinkhorn converges at small epsilon (well separated pairs; on
    # degenerate weighted problems it stalls at small epsilon, as POT's does).
    x = rng.normal(size=(6, 2)) * 3.0
    y = x + rng.normal(size=(6, 2)) * 0.05
    exact = ot.emd2(a, a, ot.dist(x, y))
    bound = 2.0 * scipy.stats.entropy(a)          # KL(P || a a^T) <= H(a) + H(a)
    for eps in (1e-3, 1e-4):
        v = sinkhorn(x, y, a, a, epsilon=eps, tol=1e-10, max_iter=2000)
        assert exact - 1e-12 <= v <= exact + eps * bound


def test_zero_weight_points_are_ignored(rng):
    x, y = rng.normal(size=(5, 2)), rng.normal(size=(4, 2))
    a = np.array([0.3, 0.0, 0.2, 0.5, 0.0])
    full = sinkhorn(x, y, a, None, epsilon=0.2, **TIGHT)
    kept = sinkhorn(x[a > 0], y, a[a > 0], None, epsilon=0.2, **TIGHT)
    np.testing.assert_allclose(full, kept, rtol=1e-10)
    _, plan = sinkhorn(x, y, a, None, epsilon=0.2, return_plan=True, **TIGHT)
    assert np.all(plan[a == 0] == 0)


def test_batched_equals_loop(rng):
    xs, ys = rng.normal(size=(3, 6, 2)), rng.normal(size=(3, 5, 2))
    bs = np.stack([_simplex(rng, 5) for _ in range(3)])
    out = sinkhorn(xs, ys, None, bs, epsilon=0.2, **TIGHT)
    assert out.shape == (3,)
    loop = [sinkhorn(xs[i], ys[i], None, bs[i], epsilon=0.2, **TIGHT) for i in range(3)]
    np.testing.assert_allclose(out, loop, rtol=1e-10)
    np.testing.assert_allclose(sinkhorn(xs, ys, None, bs, epsilon=0.2, reduction="mean",
                                        **TIGHT), np.mean(loop), rtol=1e-10)
    _, plans = sinkhorn(xs, ys, None, bs, epsilon=0.2, return_plan=True, **TIGHT)
    assert plans.shape == (3, 6, 5)
    np.testing.assert_allclose(plans.sum(-2), bs, atol=1e-11)
    div = sinkhorn_divergence(xs, ys, None, bs, epsilon=0.2, **TIGHT)
    loop = [sinkhorn_divergence(xs[i], ys[i], None, bs[i], epsilon=0.2, **TIGHT)
            for i in range(3)]
    np.testing.assert_allclose(div, loop, rtol=1e-9)


def test_one_dimensional_points(rng):
    x, y = rng.normal(size=8), rng.normal(size=6)
    np.testing.assert_allclose(sinkhorn(x, y, epsilon=0.1, **TIGHT),
                               sinkhorn(x[:, None], y[:, None], epsilon=0.1, **TIGHT))


def test_types_and_dtypes(rng):
    x, y = rng.normal(size=(5, 2)), rng.normal(size=(4, 2))
    assert isinstance(sinkhorn(x.tolist(), y.tolist()), float | np.floating)
    tx = torch.tensor(x, dtype=torch.float32)
    ty = torch.tensor(y, dtype=torch.float32)
    for fn in (sinkhorn, sinkhorn_divergence, sliced_wasserstein):
        out = fn(tx, ty)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.ndim == 0
    out = wasserstein_1d(tx[:, 0], ty[:, 0])
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(float(sinkhorn(tx, ty, epsilon=0.5)),
                               sinkhorn(x, y, epsilon=0.5), rtol=1e-4)


# --------------------------------------------------------------------------------------------
# online == tensorized, auto threshold
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [2, 1.5])
def test_online_equals_tensorized(rng, monkeypatch, p):
    monkeypatch.setattr(_sinkhorn, "BLOCK_ELEMENTS", 40)    # several blocks, ragged end
    x = torch.tensor(rng.normal(size=(2, 11, 3)), requires_grad=True)
    y = torch.tensor(rng.normal(size=(2, 7, 3)), requires_grad=True)
    b = torch.tensor(np.stack([_simplex(rng, 7) for _ in range(2)]), requires_grad=True)
    results = {}
    for backend in ("tensorized", "online"):
        v, plan = sinkhorn(x, y, None, b, epsilon=1.0, p=p, return_plan=True, backend=backend,
                           **TIGHT)
        s = sinkhorn_divergence(x, y, None, b, epsilon=1.0, p=p, backend=backend, **TIGHT)
        gx, gy, gb = torch.autograd.grad((v.sum() + s.sum()), (x, y, b))
        results[backend] = (v, plan, s, gx, gy, gb)
    for t, o in zip(results["tensorized"], results["online"]):
        torch.testing.assert_close(t, o, rtol=1e-10, atol=1e-12)


def test_auto_backend_threshold(rng, monkeypatch):
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(5, 2))
    calls = []
    real = _sinkhorn.Cost

    def spy(*args, **kwargs):
        calls.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(_sinkhorn, "Cost", spy)
    sinkhorn(x, y)
    monkeypatch.setattr(_sinkhorn, "AUTO_MAX_ENTRIES", 29)
    sinkhorn(x, y)                      # 30 entries > 29: online
    assert calls == [False, True]


# --------------------------------------------------------------------------------------------
# sinkhorn_divergence laws
# --------------------------------------------------------------------------------------------


def test_divergence_of_identical_inputs_is_zero(rng):
    x = rng.normal(size=(12, 3))
    a = _simplex(rng, 12)
    assert sinkhorn_divergence(x, x, a, a, epsilon=0.1) == 0.0
    raw = sinkhorn(x, x, a, a, epsilon=1.0, **TIGHT)
    assert raw > 0.0                     # OT_eps itself is biased
    tx = torch.tensor(x, requires_grad=True)
    s = sinkhorn_divergence(tx, tx.detach().clone(), epsilon=1.0, **TIGHT)
    (g,) = torch.autograd.grad(s, tx)
    assert s.item() < 1e-10 and g.abs().max().item() < 1e-8


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 6), m=st.integers(1, 6),
       eps=st.sampled_from([0.5, 1.0, 3.0]), p=st.sampled_from([1, 2]))
def test_divergence_nonnegative_and_symmetric(seed, n, m, eps, p):
    # Costs of order 1 relative to eps, where Sinkhorn converges to 1e-11 quickly.
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, 2)) * 0.5, rng.normal(size=(m, 2)) * 0.7 + 0.3
    a, b = _simplex(rng, n), _simplex(rng, m)
    opts = {"epsilon": eps, "p": p, "tol": 1e-11, "max_iter": 50_000}
    raw = (sinkhorn(x, y, a, b, **opts) - 0.5 * sinkhorn(x, x, a, a, **opts)
           - 0.5 * sinkhorn(y, y, b, b, **opts))
    assert raw >= -1e-9                  # the law itself, before any clamping
    s = sinkhorn_divergence(x, y, a, b, **opts)
    np.testing.assert_allclose(s, max(raw, 0.0), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(s, sinkhorn_divergence(y, x, b, a, **opts), rtol=1e-7, atol=1e-9)


def test_divergence_tends_to_w2_squared(rng):
    x, y = rng.normal(size=(8, 2)), rng.normal(size=(8, 2)) + 1.0
    w2 = wasserstein_exact(x, y) ** 2
    s = sinkhorn_divergence(x, y, epsilon=1e-3, tol=1e-9, max_iter=100000)
    np.testing.assert_allclose(s, w2, rtol=5e-3)


def test_divergence_against_geomloss(rng):
    geomloss = pytest.importorskip("geomloss")
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(40, 2)) + 0.5
    eps = 0.5
    # geomloss: cost |x-y|^2/2 and epsilon blur^2 on it; a slow annealing (scaling=0.99) so
    # that its fixed number of iterations reaches convergence.
    loss = geomloss.SamplesLoss("sinkhorn", p=2, blur=math.sqrt(eps / 2), scaling=0.99,
                                backend="tensorized")
    want = 2.0 * float(loss(torch.tensor(x), torch.tensor(y)))
    got = sinkhorn_divergence(x, y, epsilon=eps, tol=1e-9, max_iter=5000)
    np.testing.assert_allclose(got, want, rtol=1e-4)


# --------------------------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------------------------


def _tiny(rng, n=4, m=3, d=2):
    x = torch.tensor(rng.normal(size=(n, d)), requires_grad=True)
    y = torch.tensor(rng.normal(size=(m, d)), requires_grad=True)
    la = torch.tensor(rng.normal(size=n), requires_grad=True)
    lb = torch.tensor(rng.normal(size=m), requires_grad=True)
    return x, y, la, lb


@pytest.mark.parametrize("backend", ["tensorized", "online"])
@pytest.mark.parametrize("p", [2, 1.5])
def test_gradcheck_sinkhorn(rng, backend, p):
    x, y, la, lb = _tiny(rng)

    def fn(x, y, la, lb):
        return sinkhorn(x, y, la.softmax(0), lb.softmax(0), epsilon=1.0, p=p, backend=backend,
                        **TIGHT)

    assert torch.autograd.gradcheck(fn, (x, y, la, lb), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradcheck_sinkhorn_divergence_and_monge_gap(rng):
    x, y, la, lb = _tiny(rng)

    def div(x, y, la, lb):
        return sinkhorn_divergence(x, y, la.softmax(0), lb.softmax(0), epsilon=1.0, **TIGHT)

    assert torch.autograd.gradcheck(div, (x, y, la, lb), eps=1e-6, atol=1e-7, rtol=1e-5)
    tx = torch.tensor(rng.normal(size=(4, 2)), requires_grad=True)

    def gap(x, tx, la):
        return monge_gap(x, tx, la.softmax(0), epsilon=1.0, **TIGHT)

    assert torch.autograd.gradcheck(gap, (x, tx, la), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradients_exact_and_1d(rng):
    x, y, la, lb = _tiny(rng, n=5, m=4)

    def exact(x, y, la, lb):
        return wasserstein_exact(x, y, la.softmax(0), lb.softmax(0), p=2)

    assert torch.autograd.gradcheck(exact, (x, y, la, lb), eps=1e-6, atol=1e-6, rtol=1e-4)
    x1, y1 = x[:, 0].detach().requires_grad_(), y[:, 0].detach().requires_grad_()

    def one_d(x1, y1, la, lb):
        return wasserstein_1d(x1, y1, la.softmax(0), lb.softmax(0), p=2)

    assert torch.autograd.gradcheck(one_d, (x1, y1, la, lb), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("p", [1, 1.5, 2])
def test_gradients_finite_at_coincident_points(p):
    x = torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)
    for fn in (lambda x: sinkhorn(x, x.detach(), epsilon=0.1, p=p),
               lambda x: sliced_wasserstein(x, x.detach(), p=p),
               lambda x: wasserstein_1d(x[:, 0], x[:, 0].detach(), p=p),
               lambda x: wasserstein_exact(x, x.detach(), p=p)):
        (g,) = torch.autograd.grad(fn(x), x)
        assert torch.isfinite(g).all()


# --------------------------------------------------------------------------------------------
# convergence with the defaults (annealing schedule)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [1.0, 0.1, 1e-2, 1e-3])
def test_sinkhorn_matches_pot_across_epsilons(eps):
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(20, 3)) + 0.3
    a, b = np.full(30, 1 / 30), np.full(20, 1 / 20)
    m = ot.dist(x, y)
    value, plan = sinkhorn(x, y, epsilon=eps, tol=1e-10, max_iter=20000, return_plan=True)
    assert np.abs(plan.sum(0) - b).sum() <= 1e-10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # POT warns when it stops at numItermax
        want = ot.bregman.sinkhorn_epsilon_scaling(a, b, m, eps, stopThr=1e-14,
                                                   numInnerItermax=1000, numItermax=200)
    # POT's own marginal error at 1e-2 is 4e-7 here: the tolerance is its, not ours.
    np.testing.assert_allclose(plan, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.sum(plan * m), np.sum(want * m), rtol=1e-6)
    kl = np.sum(plan * np.log(plan / np.outer(a, b), where=plan > 0, out=np.zeros_like(plan)))
    np.testing.assert_allclose(value, np.sum(plan * m) + eps * kl, rtol=1e-9)


# --------------------------------------------------------------------------------------------
# convergence warning
# --------------------------------------------------------------------------------------------


def test_convergence_warning(rng):
    x, y = rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        sinkhorn(x, y, epsilon=1e-3, tol=1e-12, max_iter=2)
    with pytest.warns(ConvergenceWarning):
        sinkhorn_divergence(x, y, epsilon=1e-3, tol=1e-12, max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sinkhorn(x, y, epsilon=1.0, tol=1e-6)     # converges: no warning
    assert issubclass(ConvergenceWarning, UserWarning)


# --------------------------------------------------------------------------------------------
# exact 1-D, exact LP, sliced
# --------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 12), m=st.integers(1, 12),
       ties=st.booleans())
def test_wasserstein_1d_against_scipy(seed, n, m, ties):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=n), rng.normal(size=m)
    if ties:
        x, y = np.round(x), np.round(y)
    a, b = _simplex(rng, n), _simplex(rng, m)
    a[0] = 0.0 if n > 1 else a[0]
    a /= a.sum()
    want = scipy.stats.wasserstein_distance(x, y, a, b)
    np.testing.assert_allclose(wasserstein_1d(x, y, a, b), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wasserstein_1d(x, y), scipy.stats.wasserstein_distance(x, y),
                               rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 6), m=st.integers(1, 6),
       p=st.sampled_from([1.0, 2.0, 3.0]))
def test_wasserstein_1d_brute_force(seed, n, m, p):
    # Integer weights k_i / K: replicating each point k_i times gives K equal-weight atoms on
    # each side, where the optimal coupling pairs the sorted atoms.
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=n), rng.normal(size=m)
    k_total = 60
    ka = rng.multinomial(k_total, np.full(n, 1 / n))
    kb = rng.multinomial(k_total, np.full(m, 1 / m))
    brute = np.mean(np.abs(np.sort(np.repeat(x, ka)) - np.sort(np.repeat(y, kb))) ** p) ** (1 / p)
    got = wasserstein_1d(x, y, ka / k_total, kb / k_total, p=p)
    np.testing.assert_allclose(got, brute, rtol=1e-10, atol=1e-12)
    lp = wasserstein_exact(x, y, ka / k_total, kb / k_total, p=p)
    np.testing.assert_allclose(lp, brute, rtol=1e-7, atol=1e-9)


def test_wasserstein_1d_batch(rng):
    x, y = rng.normal(size=(2, 3, 5)), rng.normal(size=(2, 3, 7))
    out = wasserstein_1d(x, y, p=2)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out[1, 2], wasserstein_1d(x[1, 2], y[1, 2], p=2))
    np.testing.assert_allclose(wasserstein_1d(x, y, p=2, reduction="sum"), out.sum())


def test_wasserstein_exact_assignment_equals_lp(rng):
    ot = pytest.importorskip("ot")
    x, y = rng.normal(size=(10, 3)), rng.normal(size=(10, 3))
    u = np.full(10, 0.1)
    assignment = wasserstein_exact(x, y, p=1)
    lp = wasserstein_exact(torch.tensor(x), torch.tensor(y),
                           torch.tensor(u, requires_grad=True), None, p=1)  # forces the LP
    np.testing.assert_allclose(assignment, lp.item(), rtol=1e-9)
    np.testing.assert_allclose(assignment, ot.emd2(u, u, ot.dist(x, y, metric="euclidean")),
                               rtol=1e-9)


def test_sliced_wasserstein(rng):
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(20, 3)) + 0.3
    b = _simplex(rng, 20)
    s1 = sliced_wasserstein(x, y, None, b, seed=3)
    assert s1 == sliced_wasserstein(x, y, None, b, seed=3)            # seeded: deterministic
    assert s1 != sliced_wasserstein(x, y, None, b, seed=4)
    assert s1 <= wasserstein_exact(x, y, None, b) + 1e-12             # projections shrink W_p
    x1, y1 = rng.normal(size=9), rng.normal(size=11)
    np.testing.assert_allclose(sliced_wasserstein(x1, y1, p=1, n_projections=5),
                               wasserstein_1d(x1, y1), rtol=1e-12)    # 1-D: theta = +-1
    batch = sliced_wasserstein(np.stack([x, x]), np.stack([x + 0.3, x]), seed=3)
    np.testing.assert_allclose(batch, [sliced_wasserstein(x, x + 0.3, seed=3), 0.0],
                               atol=1e-12)


def test_sliced_wasserstein_against_pot(rng):
    ot = pytest.importorskip("ot")
    x, y = rng.normal(size=(200, 2)), rng.normal(size=(150, 2)) * 2.0
    ours = sliced_wasserstein(x, y, n_projections=2000, p=2)
    theirs = ot.sliced_wasserstein_distance(x, y, n_projections=2000, p=2, seed=0)
    np.testing.assert_allclose(ours, theirs, rtol=0.05)     # two Monte Carlo estimates


# --------------------------------------------------------------------------------------------
# Monge gap
# --------------------------------------------------------------------------------------------


def test_monge_gap_spd_map_and_rotation(rng):
    n = 25
    x = rng.normal(size=(n, 2))
    q = np.linalg.qr(rng.normal(size=(2, 2)))[0]
    spd = q @ np.diag([0.5, 2.0]) @ q.T
    eps = 1e-4     # far below the squared spacing: the plan is a permutation, found at once
    opts = {"epsilon": eps, "tol": 1e-9, "max_iter": 2000}
    gap_spd = monge_gap(x, x @ spd + [1.0, -2.0], **opts)
    np.testing.assert_allclose(gap_spd, eps * math.log(n), rtol=1e-3)   # the entropic floor
    rot = np.array([[math.cos(1.0), -math.sin(1.0)], [math.sin(1.0), math.cos(1.0)]])
    # the rotation's matching has near ties: solved at a larger epsilon, where it converges
    xr = x[:12]
    gap_rot = monge_gap(xr, xr @ rot, epsilon=0.1, tol=1e-9, max_iter=5000)
    assert gap_rot > 0.1 * math.log(12) + 0.5
    # unregularised check of the same statement through the exact solver
    w2 = wasserstein_exact(xr, xr @ rot) ** 2
    displacement = np.mean(np.sum((xr - xr @ rot) ** 2, axis=1))
    assert displacement - w2 > 0.1
    np.testing.assert_allclose(wasserstein_exact(x, x @ spd) ** 2,
                               np.mean(np.sum((x - x @ spd) ** 2, axis=1)), rtol=1e-9)


def test_monge_gap_is_at_least_the_entropic_floor(rng):
    x = rng.normal(size=(3, 10, 2))
    tx = np.tanh(x) * 2.0 + rng.normal(size=(3, 10, 2)) * 0.1
    gaps = monge_gap(x, tx, epsilon=1.0, tol=1e-9)
    assert gaps.shape == (3,)
    assert np.all(gaps >= 1.0 * math.log(10) - 1e-9)


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


def test_errors(rng):
    x, y = rng.normal(size=(4, 2)), rng.normal(size=(3, 2))
    with pytest.raises(ValueError, match="same batch size and dimension"):
        sinkhorn(x, rng.normal(size=(3, 3)))
    with pytest.raises(ValueError, match=r"shape \(n,\), \(n, d\)"):
        sinkhorn(x, rng.normal(size=(2, 3, 2)))
    with pytest.raises(ValueError, match="same batch size"):
        sinkhorn(rng.normal(size=(2, 4, 2)), rng.normal(size=(3, 4, 2)))
    with pytest.raises(ValueError, match="a must have shape"):
        sinkhorn(x, y, a=np.full(3, 1 / 3))
    with pytest.raises(ValueError, match="negative"):
        sinkhorn(x, y, a=[0.5, 0.6, -0.1, 0.0])
    with pytest.raises(ValueError, match="sum to 1"):
        sinkhorn(x, y, b=[0.5, 0.2, 0.2])
    with pytest.raises(ValueError, match="b contains NaN"):
        sinkhorn(x, y, b=[0.5, np.nan, 0.5])
    bad = x.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        sinkhorn(bad, y)
    bad[1, 1] = np.inf
    with pytest.raises(ValueError, match="y contains inf"):
        sinkhorn_divergence(x, bad)
    with pytest.raises(ValueError, match="at least one point"):
        sinkhorn(np.zeros((0, 2)), y)
    for eps in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="epsilon"):
            sinkhorn(x, y, epsilon=eps)
    with pytest.raises(TypeError, match="epsilon"):
        sinkhorn(x, y, epsilon="0.1")
    with pytest.raises(ValueError, match="p must"):
        sinkhorn(x, y, p=0.5)
    with pytest.raises(ValueError, match="backend"):
        sinkhorn(x, y, backend="keops")
    with pytest.raises(ValueError, match="max_iter"):
        sinkhorn(x, y, max_iter=0)
    with pytest.raises(ValueError, match="scaling"):
        sinkhorn(x, y, scaling=1.0)
    with pytest.raises(ValueError, match="tol"):
        sinkhorn(x, y, tol=0.0)
    with pytest.raises(ValueError, match="reduction"):
        sinkhorn(x, y, reduction="avg")
    with pytest.raises(TypeError, match="NumPy array but"):
        sinkhorn(x, torch.tensor(y))
    with pytest.raises(ValueError, match="x and tx must have the same shape"):
        monge_gap(x, y)
    with pytest.raises(ValueError, match="epsilon"):
        monge_gap(x, x, epsilon=0.0)
    with pytest.raises(ValueError, match="no batch"):
        wasserstein_exact(rng.normal(size=(2, 4, 2)), rng.normal(size=(2, 4, 2)))
    with pytest.raises(ValueError, match="n_projections"):
        sliced_wasserstein(x, y, n_projections=0)
    with pytest.raises(TypeError, match="seed"):
        sliced_wasserstein(x, y, seed=1.5)
    with pytest.raises(ValueError, match="equal batch axes"):
        wasserstein_1d(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="a must have the shape"):
        wasserstein_1d([0.0, 1.0], [1.0], a=[1.0])
    with pytest.raises(ValueError, match="sum to 1"):
        wasserstein_1d([0.0, 1.0], [1.0], a=[0.3, 0.3])
    with pytest.raises(ValueError, match="x contains NaN"):
        wasserstein_1d([0.0, np.nan], [1.0])
    with pytest.raises(ValueError, match="at least one sample"):
        wasserstein_1d([], [1.0])
    with pytest.raises(ValueError, match="p must"):
        wasserstein_1d([0.0], [1.0], p=0.0)


# --------------------------------------------------------------------------------------------
# Convergence with the defaults (issue 15): annealing stages solved in turn, Newton finishing
# --------------------------------------------------------------------------------------------


def _primal(plan, cost, a, b, eps):
    ab = np.outer(a, b)
    pos = plan > 0
    kl = np.sum(np.where(pos, plan * np.log(np.where(pos, plan, 1.0) / ab), 0.0))
    return float(np.sum(plan * cost) + eps * kl)


def test_pot_test_problem_converges_with_the_defaults():
    # POT's own case: arange(10) on the line, uniform weights, squared cost, epsilon 0.1,
    # tol 1e-9, 1,000 iterations. It stalled at a marginal error of 3.4e-4 (ConvergenceWarning,
    # an error here) with the default epsilon-scaling; POT's sinkhorn_log converges.
    ot = pytest.importorskip("ot")
    x = np.arange(10.0)
    value, plan = sinkhorn(x, x, epsilon=0.1, tol=1e-9, max_iter=1000, return_plan=True)
    a = np.full(10, 0.1)
    ref = ot.sinkhorn(a, a, ot.dist(x[:, None], x[:, None]), 0.1, method="sinkhorn_log",
                      stopThr=1e-11, numItermax=100000)
    np.testing.assert_allclose(plan, ref, rtol=0, atol=1e-10)
    assert abs(plan.sum(0) - a).sum() <= 1e-9 and abs(plan.sum(1) - a).sum() <= 1e-9
    # the dual value equals the primal objective of the plan: optimal
    assert value == pytest.approx(_primal(plan, ot.dist(x[:, None], x[:, None]), a, a, 0.1),
                                  rel=1e-10)


@pytest.mark.parametrize("eps", [1e-3, 1e-2, 1e-1, 1.0])
def test_small_epsilon_3d_converges_with_the_defaults(eps):
    # 200 x 150 points in 3-D: at epsilon 1e-3 the solver had not converged after 1,000
    # iterations (marginal error 7e-2) nor 10,000; now a few hundred iterations and Newton.
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((200, 3)), rng.standard_normal((150, 3)) + 0.5
    value, plan = sinkhorn(x, y, epsilon=eps, tol=1e-6, return_plan=True)
    a, b = np.full(200, 1 / 200), np.full(150, 1 / 150)
    assert abs(plan.sum(0) - b).sum() <= 1e-6 and abs(plan.sum(1) - a).sum() <= 1e-6
    c = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    assert value == pytest.approx(_primal(plan, c, a, b, eps), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("eps", [1.0, 0.1, 0.02])
def test_plan_matches_pot_across_epsilons(eps):
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((40, 2)), rng.standard_normal((30, 2)) + 0.3
    a, b = _simplex(rng, 40), _simplex(rng, 30)
    _, plan = sinkhorn(x, y, a, b, epsilon=eps, tol=1e-11, return_plan=True)
    ref = ot.sinkhorn(a, b, ot.dist(x, y), eps, method="sinkhorn_log", stopThr=1e-14,
                      numItermax=200000)
    np.testing.assert_allclose(plan, ref, rtol=0, atol=1e-9)


def test_newton_finishes_where_sinkhorn_crawls():
    # The stalled state of the POT case: plain Sinkhorn from the annealed start gains a factor
    # of about 1.01 per iteration; Newton steps reach 1e-12 in a handful.
    x = torch.arange(10.0, dtype=torch.float64)[None, :, None]
    x = x - x.mean()
    la = torch.full((1, 10), -math.log(10), dtype=torch.float64)
    cost = _sinkhorn.Cost(x, x, 2, False)
    sched = _sinkhorn.epsilon_schedule(_sinkhorn.diameter(x, x), 2, 0.1, 0.5)
    slow = _sinkhorn.solve(cost, la, la, 0.1, sched, 1e-12, 300, omega=1.0, newton_steps=False)
    assert not slow.converged and slow.error > 1e-6
    fast = _sinkhorn.solve(cost, la, la, 0.1, sched, 1e-12, 300, omega=1.0)
    assert fast.converged and 0 < fast.newton_steps <= 15


# --------------------------------------------------------------------------------------------
# A precomputed cost (POT's M) and the exact solvers' plans (issue 15)
# --------------------------------------------------------------------------------------------


def test_sinkhorn_cost_matches_pot_and_the_point_cloud_solver():
    ot = pytest.importorskip("ot")

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 2)), rng.standard_normal((20, 2)) + 0.3
    a, b = _simplex(rng, 30), _simplex(rng, 20)
    m = ot.dist(x, y)
    value, plan = sinkhorn_cost(m, a, b, epsilon=0.1, tol=1e-11, return_plan=True)
    ref = ot.sinkhorn(a, b, m, 0.1, method="sinkhorn_log", stopThr=1e-14, numItermax=100000)
    np.testing.assert_allclose(plan, ref, rtol=0, atol=1e-11)
    assert value == pytest.approx(_primal(plan, m, a, b, 0.1), rel=1e-10)
    assert value == pytest.approx(float(sinkhorn(x, y, a, b, epsilon=0.1, tol=1e-11)), rel=1e-10)
    # batches, and the gradient of the value in the cost is the plan
    batch = sinkhorn_cost(np.stack([m, 2 * m]), epsilon=0.1, tol=1e-11)
    assert batch.shape == (2,)
    tm = torch.tensor(m, requires_grad=True)
    sinkhorn_cost(tm, torch.tensor(a), torch.tensor(b), epsilon=0.1, tol=1e-11).backward()
    np.testing.assert_allclose(tm.grad.numpy(), ref, rtol=0, atol=1e-11)


def test_sinkhorn_cost_rejects_bad_costs():

    m = np.ones((3, 2))
    with pytest.raises(ValueError, match="cost contains negative"):
        sinkhorn_cost(-m)
    bad = m.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="cost contains NaN"):
        sinkhorn_cost(bad)
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="cost contains inf; it must be finite"):
        sinkhorn_cost(bad)
    with pytest.raises(ValueError, match=r"cost must have shape \(n, m\)"):
        sinkhorn_cost(np.ones(3))
    with pytest.raises(ValueError, match=r"a must have shape \(3,\).*got \(2,\)"):
        sinkhorn_cost(m, a=[0.5, 0.5])


@pytest.mark.parametrize("p", [1, 2])
def test_wasserstein_1d_plan_is_the_optimal_coupling(p):
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(7), rng.standard_normal(5)
    a, b = _simplex(rng, 7), _simplex(rng, 5)
    value, plan = wasserstein_1d(x, y, a, b, p=p, return_plan=True)
    c = np.abs(x[:, None] - y[None, :]) ** p
    np.testing.assert_allclose(plan.sum(1), a, atol=1e-15)
    np.testing.assert_allclose(plan.sum(0), b, atol=1e-15)
    assert np.sum(plan * c) ** (1 / p) == pytest.approx(float(value), rel=1e-12)
    assert np.sum(plan * c) == pytest.approx(ot.emd2(a, b, c), rel=1e-12)
    # batches: one plan per row of the batch
    xb, yb = rng.standard_normal((3, 6)), rng.standard_normal((3, 4))
    _, plans = wasserstein_1d(xb, yb, p=p, return_plan=True)
    assert plans.shape == (3, 6, 4)
    for i in range(3):
        np.testing.assert_allclose(plans[i], wasserstein_1d(xb[i], yb[i], p=p,
                                                            return_plan=True)[1])


def test_wasserstein_exact_plan():
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((6, 2)), rng.standard_normal((4, 2))
    a, b = _simplex(rng, 6), _simplex(rng, 4)
    for wa, wb in ((None, None), (a, b)):
        value, plan = wasserstein_exact(x, y, wa, wb, return_plan=True)
        ua = np.full(6, 1 / 6) if wa is None else wa
        ub = np.full(4, 1 / 4) if wb is None else wb
        np.testing.assert_allclose(plan.sum(1), ua, atol=1e-12)
        np.testing.assert_allclose(plan.sum(0), ub, atol=1e-12)
        assert np.sum(plan * ot.dist(x, y)) == pytest.approx(float(value) ** 2, rel=1e-10)
        assert float(value) ** 2 == pytest.approx(ot.emd2(ua, ub, ot.dist(x, y)), rel=1e-10)
    tx = torch.tensor(x)
    _, tplan = wasserstein_exact(tx, torch.tensor(y), return_plan=True)
    assert isinstance(tplan, torch.Tensor)


# --------------------------------------------------------------------------------------------
# Sliced distances with given directions, and max-sliced (POT has both; issue 17)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [1, 2, 1.5])
def test_sliced_and_max_sliced_match_pot_with_the_same_projections(p):
    ot = pytest.importorskip("ot")
    from divergences.transport import max_sliced_wasserstein

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((50, 3)), rng.standard_normal((40, 3)) + 0.5
    a, b = _simplex(rng, 50), _simplex(rng, 40)
    theta = rng.standard_normal((20, 3))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    ours = sliced_wasserstein(x, y, a, b, p=p, projections=theta)
    ref = ot.sliced_wasserstein_distance(x, y, a, b, p=p, projections=theta.T)
    assert float(ours) == pytest.approx(ref, rel=1e-12)
    ours_max = max_sliced_wasserstein(x, y, a, b, p=p, projections=theta)
    ref_max = ot.max_sliced_wasserstein_distance(x, y, a, b, p=p, projections=theta.T)
    assert float(ours_max) == pytest.approx(ref_max, rel=1e-12)
    # max-sliced >= sliced, and <= W_p; directions are normalised (a scaled row is the same)
    assert float(ours_max) >= float(ours)
    assert float(ours_max) <= float(wasserstein_exact(x, y, a, b, p=p)) + 1e-12
    assert float(sliced_wasserstein(x, y, a, b, p=p, projections=3.0 * theta)) == \
        pytest.approx(float(ours), rel=1e-12)


def test_max_sliced_gradient_and_bad_projections():
    from divergences.transport import max_sliced_wasserstein

    rng = np.random.default_rng(1)
    x = torch.tensor(rng.standard_normal((30, 2)), requires_grad=True)
    y = torch.tensor(rng.standard_normal((30, 2)) + np.array([2.0, 0.0]))
    v = max_sliced_wasserstein(x, y, n_projections=64)
    v.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"projections must have shape \(K, d\) = \(K, 2\)"):
        max_sliced_wasserstein(x.detach(), y, projections=np.ones((4, 3)))
    with pytest.raises(ValueError, match="projections has a zero row"):
        sliced_wasserstein(x.detach(), y, projections=[[1.0, 0.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="projections contains NaN"):
        sliced_wasserstein(x.detach(), y, projections=[[np.nan, 1.0]])


# --------------------------------------------------------------------------------------------
# unbalanced transport (reach= / rho=)
# --------------------------------------------------------------------------------------------


def _gkl(p, q):
    """Generalised KL(p || q) = sum p log(p/q) - p + q (0 log 0 = 0)."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    pos = p > 0
    return float(np.sum(np.where(pos, p * np.log(np.where(pos, p, 1.0) / q), 0.0)) - p.sum()
                 + q.sum())


def _unbalanced_objective(plan, cost, a, b, eps, rho):
    return (float(np.sum(plan * cost)) + eps * _gkl(plan, np.outer(a, b))
            + rho * _gkl(plan.sum(1), a) + rho * _gkl(plan.sum(0), b))


def _measures(rng, n, m, mass_a=1.0, mass_b=1.0):
    a = rng.uniform(0.2, 1.0, size=n)
    b = rng.uniform(0.2, 1.0, size=m)
    return mass_a * a / a.sum(), mass_b * b / b.sum()


@pytest.mark.parametrize("eps, rho, masses", [
    (0.05, 1.0, (1.0, 1.0)), (0.1, 0.3, (1.0, 2.5)), (1.0, 10.0, (3.0, 0.5)),
    (0.1, 100.0, (1.0, 1.3)),
])
def test_unbalanced_plan_matches_pot(rng, eps, rho, masses):
    ot = pytest.importorskip("ot")
    x, y = rng.normal(size=(40, 2)), rng.normal(size=(30, 2)) + 0.7
    a, b = _measures(rng, 40, 30, *masses)
    cost = ot.dist(x, y)                       # squared Euclidean, our p = 2 cost
    # POT's default method (its "sinkhorn_stabilized" stops far from the optimum at
    # rho = 100: objective 52 against 4.08 for the plain and translation-invariant ones)
    want = ot.unbalanced.sinkhorn_unbalanced(a, b, cost, eps, rho, numItermax=100000,
                                             stopThr=1e-15)
    value, plan = sinkhorn_cost(cost, a, b, epsilon=eps, rho=rho, return_plan=True, **TIGHT)
    np.testing.assert_allclose(plan, want, atol=1e-6 * max(masses), rtol=0)
    # the points solver with reach = sqrt(rho) (p = 2) solves the same problem
    v2, plan2 = sinkhorn(x, y, a, b, epsilon=eps, reach=math.sqrt(rho), return_plan=True,
                         **TIGHT)
    np.testing.assert_allclose(plan2, plan, atol=1e-9 * max(masses))
    np.testing.assert_allclose(v2, value, rtol=1e-9)
    # the value is the primal objective (generalised KLs, mass terms included)
    np.testing.assert_allclose(value, _unbalanced_objective(plan, cost, a, b, eps, rho),
                               rtol=1e-8)


def test_unbalanced_against_geomloss(rng):
    geomloss = pytest.importorskip("geomloss")
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(40, 2)) + 0.5
    a, b = _measures(rng, 50, 40, 1.0, 1.6)
    eps, reach = 0.5, 1.5
    # geomloss: cost |x-y|^2/2, epsilon blur^2, rho reach^2 on that cost: halve everything
    kw = dict(p=2, blur=math.sqrt(eps / 2), reach=reach / math.sqrt(2), scaling=0.999,
              backend="tensorized")
    args = (torch.tensor(a), torch.tensor(x), torch.tensor(b), torch.tensor(y))
    biased = 2.0 * float(geomloss.SamplesLoss("sinkhorn", debias=False, **kw)(*args))
    debiased = 2.0 * float(geomloss.SamplesLoss("sinkhorn", debias=True, **kw)(*args))
    # geomloss 0.3.1's SamplesLoss (the legacy solver) writes the entropic term's mass part as
    # eps (m(a) + m(b))/2 - eps m(P) instead of the KL(P || a b^T)'s eps (m(a) m(b) - m(P))
    # (its newer solver, and POT, use the latter): equal for unit masses, and it cancels in
    # the debiased divergence. Its fixed annealing converges slowly: relative gaps to ours
    # 5e-3, 2.5e-4, 3e-5 at scaling 0.9, 0.99, 0.999.
    ma, mb = a.sum(), b.sum()
    got = sinkhorn(x, y, a, b, epsilon=eps, reach=reach, tol=1e-10, max_iter=5000)
    np.testing.assert_allclose(got - eps * (ma * mb - (ma + mb) / 2), biased, rtol=1e-4)
    got = sinkhorn_divergence(x, y, a, b, epsilon=eps, reach=reach, tol=1e-10, max_iter=5000)
    np.testing.assert_allclose(got, debiased, rtol=1e-4)


def test_unbalanced_tends_to_balanced_as_reach_grows(rng):
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(25, 2)) + 1.0
    a, b = _measures(rng, 30, 25)
    want = sinkhorn(x, y, a, b, epsilon=0.1, **TIGHT)
    got = [float(sinkhorn(x, y, a, b, epsilon=0.1, reach=r, **TIGHT)) for r in (10.0, 100.0)]
    # the penalty's effect shrinks like 1/rho = reach^-2
    assert abs(got[0] - want) < 0.05 * want
    assert abs(got[1] - want) < 1e-3 * want
    assert abs(got[1] - want) < abs(got[0] - want) / 50


def test_unbalanced_divergence_laws(rng):
    x = rng.normal(size=(30, 2))
    a, _ = _measures(rng, 30, 30)
    # identical measures: exactly 0, whatever the masses
    assert float(sinkhorn_divergence(x, x, a, a, reach=1.0)) == 0.0
    assert float(sinkhorn_divergence(x, x, 3 * a, 3 * a, reach=1.0)) == 0.0
    # same points, different mass: positive, growing with the mass gap, symmetric
    vals = [float(sinkhorn_divergence(x, x, a, k * a, reach=1.0, **TIGHT)) for k in (1.2, 2.0)]
    assert 0 < vals[0] < vals[1]
    np.testing.assert_allclose(sinkhorn_divergence(x, x, 2 * a, a, reach=1.0, **TIGHT),
                               vals[1], rtol=1e-9)
    y = rng.normal(size=(20, 2)) + 0.3
    b = np.full(20, 0.07)
    d_xy = sinkhorn_divergence(x, y, a, b, reach=0.8, **TIGHT)
    d_yx = sinkhorn_divergence(y, x, b, a, reach=0.8, **TIGHT)
    assert d_xy > 0
    np.testing.assert_allclose(d_xy, d_yx, rtol=1e-9)


def test_unbalanced_outliers_cost_little(rng):
    """The point of reach: a far outlier with a little mass changes the balanced cost a lot
    (it must be transported) and the unbalanced one little (its mass is destroyed)."""
    x = rng.normal(size=(40, 2))
    y = x + 0.05 * rng.normal(size=(40, 2))
    y_out = np.vstack([y, [[50.0, 50.0]]])
    b = np.append(np.full(40, 0.99 / 40), 0.01)
    base_bal = float(sinkhorn(x, y, epsilon=0.01))
    base_unb = float(sinkhorn(x, y, epsilon=0.01, reach=1.0))
    out_bal = float(sinkhorn(x, y_out, b=b, epsilon=0.01))
    out_unb = float(sinkhorn(x, y_out, b=b, epsilon=0.01, reach=1.0))
    assert out_bal - base_bal > 40          # 0.01 * 50^2 * 2 ~ 50
    assert out_unb - base_unb < 0.02        # at most rho * 0.01 and a little


def test_unbalanced_converges_with_far_apart_masses_and_large_rho():
    """eps/rho = 1e-9 and masses 100 against 150: the potentials sit near -+2e5; the solver
    keeps that translation apart (and 1 - damping unrounded) and reaches tol = 1e-9."""
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(200, 2)), rng.normal(size=(150, 2)) + 1
    a, b = rng.uniform(size=200), 2 * rng.uniform(size=150)
    value, plan = sinkhorn_cost(ot.dist(x, y), a, b, epsilon=1e-3, rho=1e6, tol=1e-9,
                                return_plan=True)
    assert math.isfinite(float(value))
    # the optimality conditions: P 1 = a e^{-f/rho} and P^T 1 = b e^{-g/rho} imply equal
    # masses on both sides, between the two measures' masses
    assert a.sum() < plan.sum() < b.sum()


@pytest.mark.parametrize("p", [2, 1.5])
def test_unbalanced_online_equals_tensorized_and_batched(rng, p):
    x, y = rng.normal(size=(2, 30, 2)), rng.normal(size=(2, 20, 2))
    a, b = rng.uniform(0.1, 1, size=(2, 30)), rng.uniform(0.1, 1, size=(2, 20))
    dense = sinkhorn(x, y, a, b, epsilon=0.1, p=p, reach=0.7, backend="tensorized", **TIGHT)
    online = sinkhorn(x, y, a, b, epsilon=0.1, p=p, reach=0.7, backend="online", **TIGHT)
    np.testing.assert_allclose(online, dense, rtol=1e-9)
    loop = [float(sinkhorn(x[i], y[i], a[i], b[i], epsilon=0.1, p=p, reach=0.7, **TIGHT))
            for i in range(2)]
    np.testing.assert_allclose(dense, loop, rtol=1e-9)


def test_gradcheck_unbalanced(rng):
    x, y, la, lb = _tiny(rng)

    def ot_value(x, y, la, lb):
        return sinkhorn(x, y, la.exp(), lb.exp(), epsilon=1.0, reach=0.8, **TIGHT)

    def div(x, y, la, lb):
        return sinkhorn_divergence(x, y, la.exp(), lb.exp(), epsilon=1.0, reach=0.8, **TIGHT)

    assert torch.autograd.gradcheck(ot_value, (x, y, la, lb), eps=1e-6, atol=1e-7, rtol=1e-5)
    assert torch.autograd.gradcheck(div, (x, y, la, lb), eps=1e-6, atol=1e-7, rtol=1e-5)
    c = torch.tensor(rng.uniform(size=(4, 3)), requires_grad=True)

    def from_cost(c, la, lb):
        return sinkhorn_cost(c, la.exp(), lb.exp(), epsilon=0.5, rho=2.0, **TIGHT)

    assert torch.autograd.gradcheck(from_cost, (c, la, lb), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_unbalanced_errors(rng):
    x, y = rng.normal(size=(5, 2)), rng.normal(size=(4, 2))
    with pytest.raises(ValueError, match="reach"):
        sinkhorn(x, y, reach=0.0)
    with pytest.raises(ValueError, match="reach"):
        sinkhorn_divergence(x, y, reach=float("inf"))
    with pytest.raises(ValueError, match="rho"):
        sinkhorn_cost(np.ones((5, 4)), rho=-1.0)
    with pytest.raises(ValueError, match="a contains negative"):
        sinkhorn(x, y, a=[1, 1, 1, 1, -1.0], reach=1.0)
    with pytest.raises(ValueError, match="b has total mass 0"):
        sinkhorn(x, y, b=np.zeros(4), reach=1.0)
    with pytest.raises(ValueError, match="a contains NaN"):
        sinkhorn(x, y, a=[1, 1, 1, 1, np.nan], reach=1.0)
    # balanced transport still demands probability weights
    with pytest.raises(ValueError, match="a"):
        sinkhorn(x, y, a=np.full(5, 0.5))
