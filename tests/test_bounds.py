"""Bounds: Pinsker and Bretagnolle-Huber, mixture regret, MLE risk, Xu-Raginsky."""

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import divergences as dv
from divergences import bounds, gaussian

from .conftest import random_simplex

# --------------------------------------------------------------------------------------------
# Pinsker and Bretagnolle-Huber
# --------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), size=st.integers(2, 12),
       zeros=st.sampled_from([0.0, 0.3]), conc=st.sampled_from([0.1, 1.0, 5.0]))
def test_tv_bounds_hold_on_random_pairs(seed, size, zeros, conc):
    rng = np.random.default_rng(seed)
    p = random_simplex(rng, (8, size), zeros=zeros, concentration=conc)
    q = random_simplex(rng, (8, size), zeros=zeros, concentration=conc)
    kl, tv = dv.kl(p, q), dv.tv(p, q)
    assert np.all(tv <= bounds.pinsker(kl) + 1e-12)
    assert np.all(tv <= bounds.bretagnolle_huber(kl) + 1e-12)
    # read the other way: KL is at least both inverses of the TV
    floor = np.maximum(bounds.pinsker_inverse(tv), bounds.bretagnolle_huber_inverse(tv))
    assert np.all(kl >= floor - 1e-12)
    # and in bits
    kl_bits = dv.kl(p, q, base=2)
    np.testing.assert_allclose(bounds.pinsker(kl_bits, base=2), bounds.pinsker(kl), rtol=1e-12)
    assert np.all(dv.kl(p, q, base=2) >= bounds.pinsker_inverse(tv, base=2) - 1e-12)


def test_closed_forms_and_edges():
    assert bounds.pinsker(0.02) == pytest.approx(0.1)
    assert bounds.bretagnolle_huber(math.log(2)) == pytest.approx(math.sqrt(0.5))
    out = bounds.pinsker(np.array([0.0, 2.0, np.inf]))
    np.testing.assert_array_equal(out, [0.0, 1.0, np.inf])
    np.testing.assert_array_equal(bounds.bretagnolle_huber(np.array([0.0, np.inf])), [0.0, 1.0])
    # tiny KL: BH keeps its accuracy (expm1), ~ sqrt(kl)
    assert bounds.bretagnolle_huber(1e-20) == pytest.approx(1e-10, rel=1e-9)
    assert bounds.pinsker_inverse(0.5) == pytest.approx(0.5)
    assert bounds.bretagnolle_huber_inverse(1.0) == math.inf
    assert bounds.bretagnolle_huber_inverse(1e-10) == pytest.approx(1e-20, rel=1e-9)
    # which bound is tighter: Pinsker near 0, BH for large KL
    assert bounds.pinsker(0.1) < bounds.bretagnolle_huber(0.1)
    assert bounds.bretagnolle_huber(3.0) < bounds.pinsker(3.0)


def test_bounds_are_tight_for_bernoulli_near_uniform():
    # Pinsker's constant is sharp: TV / sqrt(KL/2) -> 1 as the pair merges
    p = np.array([0.5 + 1e-3, 0.5 - 1e-3])
    q = np.array([0.5, 0.5])
    ratio = dv.tv(p, q) / bounds.pinsker(dv.kl(p, q))
    assert 0.999 < ratio <= 1.0


def test_inverses_invert():
    tv = np.linspace(0.0, 0.999, 101)
    np.testing.assert_allclose(bounds.pinsker(bounds.pinsker_inverse(tv)), tv, atol=1e-12)
    np.testing.assert_allclose(
        bounds.bretagnolle_huber(bounds.bretagnolle_huber_inverse(tv)), tv, atol=1e-12)
    for base in (2, 10):
        np.testing.assert_allclose(
            bounds.pinsker(bounds.pinsker_inverse(tv, base=base), base=base), tv, atol=1e-12)
        np.testing.assert_allclose(
            bounds.bretagnolle_huber(bounds.bretagnolle_huber_inverse(tv, base=base),
                                     base=base), tv, atol=1e-12)
    kl = np.array([0.0, 1e-3, 0.5, 1.5])   # pinsker(kl) <= 1 keeps it a TV
    np.testing.assert_allclose(bounds.pinsker_inverse(bounds.pinsker(kl)), kl, atol=1e-15)
    np.testing.assert_allclose(
        bounds.bretagnolle_huber_inverse(bounds.bretagnolle_huber(kl)), kl, rtol=1e-9)


@pytest.mark.parametrize("fn", [bounds.pinsker, bounds.bretagnolle_huber,
                                bounds.pinsker_inverse, bounds.bretagnolle_huber_inverse])
def test_array_kinds(fn):
    x = [0.1, 0.4]
    out_np = fn(np.array(x))
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float64
    assert isinstance(fn(0.3), np.floating)
    np.testing.assert_allclose(fn(x), out_np)
    t32 = fn(torch.tensor(x, dtype=torch.float32))
    assert isinstance(t32, torch.Tensor) and t32.dtype == torch.float32
    np.testing.assert_allclose(t32.numpy(), out_np, rtol=1e-6)
    t16 = fn(torch.tensor(x, dtype=torch.float16))
    assert t16.dtype == torch.float32   # half is computed (and returned) in float32
    xt = torch.tensor([0.1, 0.4, 0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (xt,))


@pytest.mark.parametrize("fn", [bounds.pinsker, bounds.bretagnolle_huber])
def test_kl_errors(fn):
    with pytest.raises(ValueError, match="kl"):
        fn(-0.1)
    with pytest.raises(ValueError, match="kl contains NaN"):
        fn(np.array([0.1, np.nan]))
    with pytest.raises(TypeError, match="kl"):
        fn("abc")
    with pytest.raises(ValueError, match="base"):
        fn(0.1, base=1)


@pytest.mark.parametrize("fn", [bounds.pinsker_inverse, bounds.bretagnolle_huber_inverse])
def test_tv_errors(fn):
    for bad in (-0.1, 1.5, np.nan):
        with pytest.raises(ValueError, match="tv"):
            fn(bad)


# --------------------------------------------------------------------------------------------
# Mixture regret
# --------------------------------------------------------------------------------------------


def _brute_force_regret(theta, grid, weights, n):
    """(1/n) KL over all 2^n sequences, written from the definition."""
    total = 0.0
    for xs in itertools.product([0, 1], repeat=n):
        k = sum(xs)
        p = theta**k * (1 - theta) ** (n - k)
        q = np.sum(weights * grid**k * (1 - grid) ** (n - k))
        if p > 0:
            total += p * math.log(p / q)
    return total / n


@pytest.mark.parametrize("theta", [0.0, 0.3, 0.62, 1.0])
def test_bernoulli_regret_against_enumeration(theta):
    grid = np.array([0.0, 0.2, 0.5, 0.7, 1.0])
    w = np.array([0.1, 0.3, 0.2, 0.25, 0.15])
    for n in (1, 3, 8):
        expected = _brute_force_regret(theta, grid, w, n)
        got = bounds.bernoulli_mixture_regret(theta, grid, n, weights=w)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-14)
    assert bounds.bernoulli_mixture_regret(theta, grid, 8, weights=w, base=2) == pytest.approx(
        bounds.bernoulli_mixture_regret(theta, grid, 8, weights=w) / math.log(2))


def _prior_mass_of(theta, grid, w):
    truth = np.array([theta, 1 - theta])
    kls = dv.kl(truth, np.stack([grid, 1 - grid], axis=-1))   # KL(p_theta* || p_theta_j)
    return kls, (lambda eps: float(w[kls <= eps].sum()))


@pytest.mark.parametrize("theta", [0.3, 0.33, 0.8])
@pytest.mark.parametrize("prior", ["uniform", "skewed"])
def test_bernoulli_grid_regret_below_bound(theta, prior):
    grid = np.linspace(0.05, 0.95, 19)
    w = np.full(19, 1 / 19) if prior == "uniform" else np.arange(1, 20) / np.arange(1, 20).sum()
    kls, mass = _prior_mass_of(theta, grid, w)
    eps_grid = np.unique(np.concatenate([[0.0], kls]))
    for n in (1, 5, 20, 100, 500, 2000):
        regret = bounds.bernoulli_mixture_regret(theta, grid, n, weights=w)
        bound = bounds.mixture_regret_bound(n, mass, eps_grid)
        assert 0.0 < regret <= bound
        # the callable and the array form of prior_mass agree
        masses = np.array([mass(e) for e in eps_grid])
        assert bounds.mixture_regret_bound(n, masses, eps_grid) == bound


def test_regret_approaches_its_bound_when_the_truth_is_on_the_grid():
    # n R_n -> -log w(theta*) as the posterior concentrates: the bound is tight in the limit
    grid = np.linspace(0.05, 0.95, 19)
    n = 5000
    regret = bounds.bernoulli_mixture_regret(0.3, grid, n)
    bound = bounds.mixture_regret_bound(n, [1 / 19], [0.0])
    assert regret <= bound
    assert regret * n == pytest.approx(math.log(19), rel=1e-3)


def test_mixture_regret_bound_values_and_kinds():
    eps = np.array([0.0, 0.01, 0.1])
    w = np.array([0.01, 0.06, 0.51])
    n = np.array([10, 100, 1000])
    expected = np.min(eps[None] - np.log(w)[None] / n[:, None], axis=1)
    np.testing.assert_allclose(bounds.mixture_regret_bound(n, w, eps), expected, rtol=1e-12)
    # bits: eps in bits and log base 2 of the mass
    np.testing.assert_allclose(
        bounds.mixture_regret_bound(n, w, eps / math.log(2), base=2), expected / math.log(2),
        rtol=1e-12)
    # a zero mass is never the minimiser; all zero gives inf
    assert bounds.mixture_regret_bound(10, [0.0, 0.5], [0.0, 0.1]) == pytest.approx(
        0.1 + math.log(2) / 10)
    assert bounds.mixture_regret_bound(10, [0.0], [0.0]) == math.inf
    # torch: differentiable in the masses
    wt = torch.tensor(w, requires_grad=True)
    out = bounds.mixture_regret_bound(torch.tensor(100.0, dtype=torch.float64), wt,
                                      torch.tensor(eps))
    assert isinstance(out, torch.Tensor)
    out.backward()
    np.testing.assert_allclose(wt.grad.numpy(), [0.0, -1 / (100 * 0.06), 0.0])
    # a callable with a torch grid gives torch out
    out = bounds.mixture_regret_bound(100, lambda e: 0.5, torch.tensor([0.0, 0.1]))
    assert isinstance(out, torch.Tensor)


def test_regret_default_prior_and_torch():
    grid = np.linspace(0.1, 0.9, 9)
    uniform = bounds.bernoulli_mixture_regret(0.42, grid, 30, weights=np.full(9, 1 / 9))
    assert bounds.bernoulli_mixture_regret(0.42, grid, 30) == pytest.approx(uniform, rel=1e-12)
    assert bounds.bernoulli_mixture_regret(0.42, list(grid), 30) == pytest.approx(uniform)
    out = bounds.bernoulli_mixture_regret(0.42, torch.tensor(grid), 30)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    assert float(out) == pytest.approx(uniform, rel=1e-12)


def test_regret_errors():
    with pytest.raises(ValueError, match="grid must be a non-empty 1-D"):
        bounds.bernoulli_mixture_regret(0.3, [], 5)
    grid = np.array([0.2, 0.8])
    with pytest.raises(TypeError, match="n must be an integer"):
        bounds.bernoulli_mixture_regret(0.3, grid, 2.5)
    with pytest.raises(ValueError, match="n must be >= 1"):
        bounds.bernoulli_mixture_regret(0.3, grid, 0)
    with pytest.raises(ValueError, match="theta"):
        bounds.bernoulli_mixture_regret(1.3, grid, 5)
    with pytest.raises(TypeError, match="theta"):
        bounds.bernoulli_mixture_regret("0.3", grid, 5)
    with pytest.raises(ValueError, match="grid"):
        bounds.bernoulli_mixture_regret(0.3, [0.2, 1.2], 5)
    with pytest.raises(ValueError, match="grid must be a non-empty 1-D"):
        bounds.bernoulli_mixture_regret(0.3, [[0.2, 0.3]], 5)
    with pytest.raises(ValueError, match="weights must sum to 1"):
        bounds.bernoulli_mixture_regret(0.3, grid, 5, weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="weights must have one entry"):
        bounds.bernoulli_mixture_regret(0.3, grid, 5, weights=[1.0])
    with pytest.raises(ValueError, match="eps_grid must be a non-empty 1-D"):
        bounds.mixture_regret_bound(10, [0.5], [[0.0]])
    with pytest.raises(ValueError, match="eps_grid must be 1-D"):
        bounds.mixture_regret_bound(10, lambda e: 0.5, [[0.0]])
    with pytest.raises(ValueError, match="one mass per eps_grid"):
        bounds.mixture_regret_bound(10, [0.5, 0.5], [0.0])
    with pytest.raises(ValueError, match="prior_mass"):
        bounds.mixture_regret_bound(10, [1.5], [0.0])
    with pytest.raises(ValueError, match="eps_grid"):
        bounds.mixture_regret_bound(10, [0.5], [-0.1])
    with pytest.raises(ValueError, match="n must lie"):
        bounds.mixture_regret_bound(0, [0.5], [0.0])
    with pytest.raises(TypeError, match="NumPy array"):
        bounds.mixture_regret_bound(10, np.array([0.5]), torch.tensor([0.0]))


# --------------------------------------------------------------------------------------------
# MLE risk
# --------------------------------------------------------------------------------------------


def _fitted_gaussian_kl(x):
    """KL(N(0, 1) || N(mu_hat, var_hat)) for each row of samples x (MLE fit, p = 2)."""
    mu, var = x.mean(axis=1), x.var(axis=1)
    r = x.shape[0]
    return gaussian.kl(np.zeros((r, 1)), np.ones((r, 1, 1)), mu[:, None], var[:, None, None])


def test_mle_risk_matches_monte_carlo_well_specified():
    # N(mu, v) fitted to N(0, 1) data: I = J = diag(1, 1/2), p = 2, risk p/(2n)
    rng = np.random.default_rng(0)
    n, reps = 200, 20000
    info = np.diag([1.0, 0.5])
    predicted = bounds.mle_risk(info, info, n)
    assert predicted == pytest.approx(2 / (2 * n))
    mc = _fitted_gaussian_kl(rng.standard_normal((reps, n))).mean()   # measured: 2.048 / (2n)
    assert mc == pytest.approx(predicted, rel=0.10)


def test_mle_risk_matches_monte_carlo_misspecified():
    # N(mu, v) fitted to uniform data with mean 0, variance 1 (kurtosis 9/5): the Gaussian
    # KL projection is N(0, 1); the score of v has variance (mu4 - 1)/4, so I != J and
    # tr(I J^-1) = 1 + (mu4 - 1)/2 = 1.4. The excess KL equals the Gaussian-vs-Gaussian KL
    # below because a Gaussian log-likelihood only sees the first two moments.
    rng = np.random.default_rng(1)
    n, reps = 200, 20000
    mu4 = 9 / 5
    info = np.diag([1.0, (mu4 - 1) / 4])
    hess = np.diag([1.0, 0.5])
    predicted = bounds.mle_risk(info, hess, n)
    assert predicted == pytest.approx(1.4 / (2 * n))
    x = rng.uniform(-math.sqrt(3), math.sqrt(3), size=(reps, n))
    mc = _fitted_gaussian_kl(x).mean()                                 # measured: 1.436 / (2n)
    assert mc == pytest.approx(predicted, rel=0.10)


def test_mle_risk_general_trace_and_batching():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 3, 3))
    info = a @ a.transpose(0, 2, 1)
    b = rng.standard_normal((4, 3, 3))
    hess = b @ b.transpose(0, 2, 1) + 3 * np.eye(3)
    n = np.array([10.0, 20.0, 50.0, 100.0])
    expected = np.trace(info @ np.linalg.inv(hess), axis1=1, axis2=2) / (2 * n)
    np.testing.assert_allclose(bounds.mle_risk(info, hess, n), expected, rtol=1e-10)
    np.testing.assert_allclose(bounds.mle_risk(info, hess, n, base=2), expected / math.log(2),
                               rtol=1e-10)
    # one Hessian broadcast against a batch of informations
    np.testing.assert_allclose(bounds.mle_risk(info, hess[0], 10),
                               np.trace(info @ np.linalg.inv(hess[0]), axis1=1, axis2=2) / 20,
                               rtol=1e-10)
    ti = torch.tensor(info[0], requires_grad=True)
    tj = torch.tensor(hess[0], requires_grad=True)
    assert torch.autograd.gradcheck(lambda i, j: bounds.mle_risk(i, (j + j.mT) / 2, 30.0),
                                    (ti, tj))


def test_mle_risk_errors():
    eye = np.eye(2)
    with pytest.raises(ValueError, match="positive definite"):
        bounds.mle_risk(eye, np.diag([1.0, -1.0]), 10)
    with pytest.raises(ValueError, match="symmetric"):
        bounds.mle_risk(eye, np.array([[1.0, 0.5], [0.0, 1.0]]), 10)
    with pytest.raises(ValueError, match="hessian must have shape"):
        bounds.mle_risk(eye, np.ones((2, 3)), 10)
    with pytest.raises(ValueError, match="fisher_information must have shape"):
        bounds.mle_risk(np.ones(2), eye, 10)
    with pytest.raises(ValueError, match="same p"):
        bounds.mle_risk(np.eye(3), eye, 10)
    with pytest.raises(ValueError, match="n must lie"):
        bounds.mle_risk(eye, eye, 0)
    with pytest.raises(ValueError, match="finite"):
        bounds.mle_risk(np.full((2, 2), np.nan), eye, 10)
    with pytest.raises(ValueError, match="do not broadcast"):
        bounds.mle_risk(np.stack([eye] * 3), np.stack([eye] * 2), 10)


# --------------------------------------------------------------------------------------------
# Xu-Raginsky
# --------------------------------------------------------------------------------------------


def test_xu_raginsky():
    assert bounds.xu_raginsky_bound(2.0, 100, 0.5) == pytest.approx(0.1)
    mi = np.array([0.0, 0.5, 2.0])
    np.testing.assert_allclose(bounds.xu_raginsky_bound(mi, 50, 1.0), np.sqrt(2 * mi / 50))
    # mutual information in bits is converted to nats
    assert bounds.xu_raginsky_bound(1.0, 10, 1.0, base=2) == pytest.approx(
        math.sqrt(2 * math.log(2) / 10))
    # broadcasting over n, and torch gradients
    out = bounds.xu_raginsky_bound(1.0, np.array([[10], [40]]), np.array([0.5, 1.0]))
    assert out.shape == (2, 2)
    args = tuple(torch.tensor(v, dtype=torch.float64, requires_grad=True)
                 for v in (0.7, 30.0, 0.8))
    assert torch.autograd.gradcheck(bounds.xu_raginsky_bound, args)
    with pytest.raises(ValueError, match="mutual_information"):
        bounds.xu_raginsky_bound(-1.0, 10, 1.0)
    with pytest.raises(ValueError, match="n must lie"):
        bounds.xu_raginsky_bound(1.0, 0, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        bounds.xu_raginsky_bound(1.0, 10, -1.0)
    with pytest.raises(ValueError, match="do not broadcast"):
        bounds.xu_raginsky_bound(np.ones(2), np.ones(3), 1.0)


# --------------------------------------------------------------------------------------------
# representation_shift
# --------------------------------------------------------------------------------------------


def test_representation_shift_matches_closed_forms():
    from divergences.bounds import representation_shift

    rng = np.random.default_rng(7)
    train = {"embed": rng.normal(size=(3000, 1)), "block": rng.normal(size=(3000, 2))}
    test = {"embed": rng.normal(size=(3000, 1)) + 1.0, "block": rng.normal(size=(3000, 2))}
    shifts = representation_shift(train, test)
    assert [s.layer for s in shifts] == ["embed", "block"]
    # N(1, 1) against N(0, 1): KL = 1/2 nat, W1 = 1 (1-D: sliced is exact)
    assert shifts[0].kl.ci_low - 0.05 <= 0.5 <= shifts[0].kl.ci_high + 0.05
    assert shifts[0].w1 == pytest.approx(1.0, abs=0.06)
    # no shift: KL interval near 0, W1 small
    assert shifts[1].kl.ci_low <= 0.02 and abs(float(shifts[1].kl)) < 0.05
    assert shifts[1].w1 < 0.08
    assert shifts[0].n_train == 3000 and shifts[0].n_test == 3000


def test_representation_shift_inputs_and_errors():
    from divergences.bounds import representation_shift

    rng = np.random.default_rng(8)
    a = [torch.randn(200, 3, generator=torch.Generator().manual_seed(0)), rng.normal(size=200)]
    b = [rng.normal(size=(150, 3)), rng.normal(size=150)]
    shifts = representation_shift(a, b, base=2)
    assert [s.layer for s in shifts] == ["0", "1"] and shifts[0].kl.base == 2
    with pytest.raises(ValueError, match="same layers"):
        representation_shift(a, b[:1])
    with pytest.raises(ValueError, match="widths differ"):
        representation_shift([rng.normal(size=(50, 2))], [rng.normal(size=(50, 3))])
    with pytest.raises(TypeError, match="list of per-layer arrays"):
        representation_shift(rng.normal(size=(50, 2)), [rng.normal(size=(50, 2))])
    with pytest.raises(ValueError, match="no layers"):
        representation_shift([], [])
