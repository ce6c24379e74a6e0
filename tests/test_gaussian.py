"""Closed forms between multivariate normals: references, laws, gradients, input handling."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from torch.distributions import MultivariateNormal, kl_divergence

import divergences
from divergences import gaussian

F64 = torch.float64
PAIRWISE = [gaussian.kl, gaussian.renyi, gaussian.bhattacharyya, gaussian.hellinger,
            gaussian.wasserstein2]


def spd(gen, *shape, d, dtype=F64, floor=0.3):
    """Random symmetric positive definite matrices of shape (*shape, d, d)."""
    a = torch.randn(*shape, d, d, generator=gen, dtype=dtype)
    return a @ a.mT / d + floor * torch.eye(d, dtype=dtype)


def gaussians(seed, *shape, d):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, d, generator=g, dtype=F64), spd(g, *shape, d=d),
            torch.randn(*shape, d, generator=g, dtype=F64), spd(g, *shape, d=d))


def log_pdf(x, m, s):
    return -0.5 * ((x - m) / s) ** 2 - math.log(s * math.sqrt(2 * math.pi))


def normal_pdf(x, m, s):
    return np.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))


# --------------------------------------------------------------------------------------------
# KL against torch.distributions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 3, 5])
def test_kl_matches_torch_distributions(d):
    mp, sp, mq, sq = gaussians(d, 4, 3, d=d)
    ref = kl_divergence(MultivariateNormal(mp, sp), MultivariateNormal(mq, sq))
    got = gaussian.kl(mp, sp, mq, sq)
    assert got.shape == (4, 3)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)


def test_kl_broadcasts_one_q_against_many_p():
    mp, sp, _, _ = gaussians(0, 6, d=3)
    _, _, mq, sq = gaussians(1, d=3)
    got = gaussian.kl(mp, sp, mq, sq)
    ref = kl_divergence(MultivariateNormal(mp, sp), MultivariateNormal(mq.expand(6, 3),
                                                                       sq.expand(6, 3, 3)))
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    # batch axes of the means and the covariances broadcast against each other too
    means = torch.zeros(5, 1, 3, dtype=F64)
    assert gaussian.kl(means, sp, mq, sq).shape == (5, 6)


def test_kl_zero_for_identical_and_positive_otherwise():
    mp, sp, mq, sq = gaussians(7, 10, d=4)
    assert torch.all(gaussian.kl(mp, sp, mp, sp) < 1e-12)
    assert torch.all(gaussian.kl(mp, sp, mq, sq) > 0)


def test_kl_matches_discrete_kl_on_a_fine_grid():
    # the continuous KL is the limit of the discrete KL of the binned densities
    x = np.linspace(-20, 20, 40001)
    p, q = normal_pdf(x, 0.3, 1.2), normal_pdf(x, -0.5, 0.8)
    discrete = divergences.kl(p, q, normalize=True)
    cont = gaussian.kl([0.3], [[1.44]], [-0.5], [[0.64]])
    assert abs(discrete - cont) < 1e-6


# --------------------------------------------------------------------------------------------
# Renyi
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.3, 0.5, 0.8, 1.7, 2.5])
def test_renyi_1d_matches_numerical_integration(alpha):
    m1, s1, m2, s2 = 0.4, 1.1, -0.2, 1.3
    integral, _ = integrate.quad(
        lambda x: math.exp(alpha * log_pdf(x, m1, s1) + (1 - alpha) * log_pdf(x, m2, s2)),
        -60.0, 60.0, points=[m1, m2], epsabs=1e-13, epsrel=1e-12, limit=200)
    ref = math.log(integral) / (alpha - 1)
    got = gaussian.renyi([m1], [[s1**2]], [m2], [[s2**2]], alpha=alpha)
    assert abs(got - ref) < 1e-9 * max(1.0, ref)


@pytest.mark.parametrize("d", [1, 3, 5])
def test_renyi_approaches_kl(d):
    mp, sp, mq, sq = gaussians(10 + d, 5, d=d)
    ref = gaussian.kl(mp, sp, mq, sq)
    torch.testing.assert_close(gaussian.renyi(mp, sp, mq, sq, alpha=1.0), ref)
    for eps in (1e-3, 1e-5):
        for a in (1 - eps, 1 + eps):
            got = gaussian.renyi(mp, sp, mq, sq, alpha=a)
            # D_a = KL + O(a - 1); the slope is bounded for these well-conditioned pairs
            torch.testing.assert_close(got, ref, rtol=50 * eps, atol=50 * eps)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 4))
def test_renyi_non_decreasing_in_alpha(seed, d):
    mp, sp, mq, sq = gaussians(seed, 8, d=d)
    alphas = [0.05, 0.2, 0.5, 0.9, 0.999, 1.0, 1.001, 1.3, 2.0, 4.0, 10.0]
    vals = torch.stack([gaussian.renyi(mp, sp, mq, sq, alpha=a) for a in alphas])
    assert not torch.isnan(vals).any()
    assert torch.all(vals >= 0)
    diffs = vals[1:] - vals[:-1]
    finite = torch.isfinite(vals[1:]) & torch.isfinite(vals[:-1])
    assert torch.all(diffs[finite] >= -1e-9 * (1 + vals[1:][finite].abs()))
    # once infinite, stays infinite
    assert torch.all(torch.isinf(vals[1:]) | torch.isfinite(vals[:-1]))


def test_renyi_infinite_when_mixed_covariance_not_positive_definite():
    # a = 2: 2 * 1 - 1 * 3 < 0, so the integral of p^2 q^-1 diverges
    got = gaussian.renyi(np.zeros(1), [[3.0]], np.zeros(1), [[1.0]], alpha=2.0)
    assert got == np.inf
    # batched: only the offending entry is inf, the gradient stays finite
    sp = torch.tensor([[[3.0]], [[1.0]]], dtype=F64, requires_grad=True)
    sq = torch.tensor([[1.0]], dtype=F64)
    val = gaussian.renyi(torch.zeros(2, 1, dtype=F64), sp, torch.ones(1, dtype=F64), sq,
                         alpha=2.0)
    assert torch.isinf(val[0]) and torch.isfinite(val[1])
    val[1].backward()
    assert torch.isfinite(sp.grad).all()


def test_renyi_matches_discrete_renyi_on_a_fine_grid():
    x = np.linspace(-20, 20, 40001)
    p, q = normal_pdf(x, 0.3, 1.2), normal_pdf(x, -0.5, 0.8)
    for a in (0.5, 1.5):
        discrete = divergences.renyi(p, q, alpha=a, normalize=True)
        cont = gaussian.renyi([0.3], [[1.44]], [-0.5], [[0.64]], alpha=a)
        assert abs(discrete - cont) < 1e-6


# --------------------------------------------------------------------------------------------
# Bhattacharyya and Hellinger
# --------------------------------------------------------------------------------------------


def bhattacharyya_1d(m1, s1, m2, s2):
    v = s1**2 + s2**2
    return 0.25 * (m1 - m2) ** 2 / v + 0.5 * math.log(v / (2 * s1 * s2))


@pytest.mark.parametrize(("m1", "s1", "m2", "s2"),
                         [(0.0, 1.0, 0.0, 1.0), (0.0, 1.0, 2.0, 1.0), (1.0, 0.5, -1.0, 2.0),
                          (3.0, 0.1, 3.0, 5.0)])
def test_bhattacharyya_and_hellinger_1d_closed_forms(m1, s1, m2, s2):
    b = bhattacharyya_1d(m1, s1, m2, s2)
    got_b = gaussian.bhattacharyya([m1], [[s1**2]], [m2], [[s2**2]])
    assert abs(got_b - b) < 1e-12
    h2 = 1 - math.sqrt(2 * s1 * s2 / (s1**2 + s2**2)) * math.exp(
        -0.25 * (m1 - m2) ** 2 / (s1**2 + s2**2))
    got_h = gaussian.hellinger([m1], [[s1**2]], [m2], [[s2**2]])
    assert abs(got_h - math.sqrt(h2)) < 1e-12
    # symmetric
    assert abs(gaussian.bhattacharyya([m2], [[s2**2]], [m1], [[s1**2]]) - got_b) < 1e-12


def test_bhattacharyya_is_half_renyi_half_and_hellinger_in_unit_interval():
    mp, sp, mq, sq = gaussians(3, 8, d=3)
    torch.testing.assert_close(gaussian.bhattacharyya(mp, sp, mq, sq),
                               gaussian.renyi(mp, sp, mq, sq, alpha=0.5) / 2)
    h = gaussian.hellinger(mp, sp, mq, sq)
    assert torch.all((h >= 0) & (h <= 1))
    assert gaussian.hellinger([0.0], [[1.0]], [1e3], [[1.0]]) == 1.0
    torch.testing.assert_close(h, gaussian.hellinger(mq, sq, mp, sp))


def test_hellinger_consistent_with_discrete_hellinger():
    x = np.linspace(-20, 20, 40001)
    p, q = normal_pdf(x, 0.3, 1.2), normal_pdf(x, -0.5, 0.8)
    discrete = divergences.hellinger(p, q, normalize=True)
    cont = gaussian.hellinger([0.3], [[1.44]], [-0.5], [[0.64]])
    assert abs(discrete - cont) < 1e-6


def test_hellinger_gradient_zero_at_identical():
    m = torch.zeros(2, dtype=F64, requires_grad=True)
    s = torch.eye(2, dtype=F64, requires_grad=True)
    gaussian.hellinger(m, s, torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64)).backward()
    assert torch.all(m.grad == 0) and torch.all(s.grad == 0)


# --------------------------------------------------------------------------------------------
# 2-Wasserstein
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("m1", "s1", "m2", "s2"),
                         [(0.0, 1.0, 3.0, 2.0), (1.0, 0.3, 1.0, 0.3), (-2.0, 5.0, 1.5, 0.1)])
def test_w2_1d(m1, s1, m2, s2):
    got = gaussian.wasserstein2([m1], [[s1**2]], [m2], [[s2**2]])
    assert abs(got - math.sqrt((m1 - m2) ** 2 + (s1 - s2) ** 2)) < 1e-12


def test_w2_commuting_covariances():
    # diagonal covariances: W2^2 = |m1 - m2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    g = torch.Generator().manual_seed(4)
    a, b = torch.rand(5, 4, generator=g, dtype=F64) + 0.1, torch.rand(5, 4, generator=g,
                                                                    dtype=F64) + 0.1
    m1, m2 = torch.randn(5, 4, generator=g, dtype=F64), torch.randn(5, 4, generator=g,
                                                                    dtype=F64)
    ref = ((m1 - m2).square().sum(-1) + (a.sqrt() - b.sqrt()).square().sum(-1)).sqrt()
    torch.testing.assert_close(gaussian.wasserstein2(m1, torch.diag_embed(a), m2,
                                                     torch.diag_embed(b)), ref)
    # same eigenvectors, rotated
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=F64))
    sa, sb = q @ torch.diag_embed(a) @ q.T, q @ torch.diag_embed(b) @ q.T
    torch.testing.assert_close(gaussian.wasserstein2(m1, sa, m2, sb), ref)


def test_w2_matches_scipy_sqrtm():
    from scipy.linalg import sqrtm

    mp, sp, mq, sq = (t.numpy() for t in gaussians(21, d=4))
    r = sqrtm(sq)
    cross = np.real(np.trace(sqrtm(r @ sp @ r)))
    ref = np.sqrt(np.sum((mp - mq) ** 2) + np.trace(sp) + np.trace(sq) - 2 * cross)
    assert abs(gaussian.wasserstein2(mp, sp, mq, sq) - ref) < 1e-10


def test_w2_identical_zero_symmetric_and_point_masses():
    mp, sp, mq, sq = gaussians(5, 6, d=3)
    assert torch.all(gaussian.wasserstein2(mp, sp, mp, sp) < 1e-7)
    torch.testing.assert_close(gaussian.wasserstein2(mp, sp, mq, sq),
                               gaussian.wasserstein2(mq, sq, mp, sp))
    zero = torch.zeros(3, 3, dtype=F64)
    # point mass against a Gaussian, either way round: W2^2 = |m1 - m2|^2 + tr S
    ref = ((mp - mq).square().sum(-1) + torch.diagonal(sq, dim1=-2, dim2=-1).sum(-1)).sqrt()
    torch.testing.assert_close(gaussian.wasserstein2(mp, zero, mq, sq), ref)
    torch.testing.assert_close(gaussian.wasserstein2(mq, sq, mp, zero), ref)
    # two point masses (both singular: eigendecomposition fallback): Euclidean distance
    torch.testing.assert_close(gaussian.wasserstein2(mp, zero, mq, zero),
                               (mp - mq).norm(dim=-1))
    # rank-one covariances in 2-D: all mass on lines; compare with the 1-D formula
    u = torch.tensor([[1.0, 0.0]], dtype=F64)
    r1, r2 = 4.0 * u.T @ u, 9.0 * u.T @ u
    got = gaussian.wasserstein2(torch.zeros(2, dtype=F64), r1, torch.zeros(2, dtype=F64), r2)
    assert abs(got.item() - 1.0) < 1e-12


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 4))
def test_w2_triangle_inequality(seed, d):
    g = torch.Generator().manual_seed(seed)
    ms = [torch.randn(16, d, generator=g, dtype=F64) for _ in range(3)]
    ss = [spd(g, 16, d=d, floor=0.01) for _ in range(3)]
    ab = gaussian.wasserstein2(ms[0], ss[0], ms[1], ss[1])
    bc = gaussian.wasserstein2(ms[1], ss[1], ms[2], ss[2])
    ac = gaussian.wasserstein2(ms[0], ss[0], ms[2], ss[2])
    assert torch.all(ac <= ab + bc + 1e-10)


# --------------------------------------------------------------------------------------------
# Mutual information
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rho", [0.0, 0.3, -0.7, 0.999])
def test_mi_bivariate_closed_form(rho):
    cov = np.array([[2.0, rho * math.sqrt(2.0 * 0.5)], [rho * math.sqrt(2.0 * 0.5), 0.5]])
    got = gaussian.mutual_information(cov, 1)
    assert abs(got - (-0.5 * math.log(1 - rho**2))) < 1e-12
    assert abs(gaussian.mutual_information(cov, 1, base=2) - got / math.log(2)) < 1e-12


@pytest.mark.parametrize(("d", "split"), [(3, 1), (5, 2), (6, 4)])
def test_mi_equals_sum_of_entropies_and_kl_from_product(d, split):
    g = torch.Generator().manual_seed(d)
    cov = spd(g, 4, d=d)
    zero = torch.zeros(d, dtype=F64)

    def h(s):
        return MultivariateNormal(torch.zeros(s.shape[-1], dtype=F64), s).entropy()

    ref = (h(cov[..., :split, :split]) + h(cov[..., split:, split:]) - h(cov))
    got = gaussian.mutual_information(cov, split)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    prod = torch.zeros_like(cov)
    prod[..., :split, :split] = cov[..., :split, :split]
    prod[..., split:, split:] = cov[..., split:, split:]
    torch.testing.assert_close(got, gaussian.kl(zero, cov, zero, prod), rtol=1e-9, atol=1e-12)
    assert torch.all(got > 0)


def test_mi_of_independent_blocks_is_zero():
    cov = np.diag([1.0, 2.0, 3.0])
    assert gaussian.mutual_information(cov, 1) == 0.0
    assert gaussian.mutual_information(cov, np.int64(2)) == 0.0


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------


def _well_separated(d, seed):
    """An SPD matrix with eigenvalues 1, 2, ..., d in a random basis."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    return q @ torch.diag(torch.arange(1, d + 1, dtype=F64)) @ q.T


@pytest.mark.parametrize(("fn", "kw"), [
    (gaussian.kl, {}), (gaussian.renyi, {"alpha": 0.3}), (gaussian.renyi, {"alpha": 1.5}),
    (gaussian.bhattacharyya, {}), (gaussian.hellinger, {}), (gaussian.wasserstein2, {}),
])
def test_gradcheck_through_a_parametrisation(fn, kw):
    # S = A A^T + c I keeps the covariances symmetric and PD under gradcheck's perturbations
    d = 3
    g = torch.Generator().manual_seed(2)
    mp, mq = (torch.randn(d, generator=g, dtype=F64).requires_grad_() for _ in range(2))
    ap, aq = (torch.randn(d, d, generator=g, dtype=F64).requires_grad_() for _ in range(2))
    eye = torch.eye(d, dtype=F64)

    def f(mp, ap, mq, aq):
        return fn(mp, ap @ ap.mT + eye, mq, aq @ aq.mT + 2 * eye, **kw)

    assert torch.autograd.gradcheck(f, (mp, ap, mq, aq))


@pytest.mark.parametrize(("fn", "kw"), [
    (gaussian.kl, {}), (gaussian.renyi, {"alpha": 0.7}), (gaussian.renyi, {"alpha": 2.0}),
    (gaussian.bhattacharyya, {}), (gaussian.hellinger, {}), (gaussian.wasserstein2, {}),
])
def test_gradcheck_raw_covariances(fn, kw):
    # well-separated spectra; validate=False lets gradcheck perturb one entry at a time
    mp = torch.tensor([0.1, -0.4, 0.3], dtype=F64, requires_grad=True)
    mq = torch.tensor([0.5, 0.2, -0.1], dtype=F64, requires_grad=True)
    sp = _well_separated(3, 0).requires_grad_()
    sq = (_well_separated(3, 1) + 0.5 * torch.eye(3, dtype=F64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: fn(*a, validate=False, **kw), (mp, sp, mq, sq))


def test_gradcheck_w2_with_repeated_eigenvalues_and_point_mass():
    # identity covariance (repeated eigenvalue) and a point mass: the Cholesky path is stable
    m1 = torch.tensor([0.3, -0.2], dtype=F64, requires_grad=True)
    s1 = torch.eye(2, dtype=F64).requires_grad_()
    m2 = torch.tensor([1.0, 0.5], dtype=F64, requires_grad=True)
    a2 = torch.tensor([[0.4, 0.1], [0.2, 0.9]], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda m1, s1, m2, a2: gaussian.wasserstein2(m1, s1, m2, a2 @ a2.T, validate=False),
        (m1, s1, m2, a2))
    zero = torch.zeros(2, 2, dtype=F64)
    assert torch.autograd.gradcheck(
        lambda m1, a2: gaussian.wasserstein2(m1, zero, torch.zeros(2, dtype=F64),
                                             a2 @ a2.T + torch.eye(2, dtype=F64)),
        (m1, a2))


def test_gradcheck_mutual_information():
    a = torch.randn(2, 4, 4, dtype=F64, generator=torch.Generator().manual_seed(3))
    a.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a: gaussian.mutual_information(a @ a.mT + torch.eye(4, dtype=F64), 2), (a,))
    s = (_well_separated(4, 5) + 0.0).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda s: gaussian.mutual_information(s, 1, validate=False), (s,))


# --------------------------------------------------------------------------------------------
# Array kinds, dtypes, reductions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", PAIRWISE)
def test_numpy_in_numpy_out_and_dtype(fn):
    mp, sp, mq, sq = (t.numpy() for t in gaussians(8, 3, d=2))
    out = fn(mp, sp, mq, sq)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (3,)
    out32 = fn(*(x.astype(np.float32) for x in (mp, sp, mq, sq)))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out, rtol=1e-4, atol=1e-5)
    scalar = fn(mp[0].tolist(), sp[0].tolist(), mq[0].tolist(), sq[0].tolist())
    assert isinstance(scalar, np.floating)
    assert abs(scalar - out[0]) < 1e-12


@pytest.mark.parametrize("fn", PAIRWISE)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_torch_in_torch_out_dtype(fn, dtype):
    mp, sp, mq, sq = gaussians(9, 2, d=3)
    out = fn(*(t.to(dtype) for t in (mp, sp, mq, sq)))
    assert isinstance(out, torch.Tensor)
    assert out.dtype == (torch.float32 if dtype == torch.bfloat16 else dtype)
    if dtype == torch.float32:
        torch.testing.assert_close(out.double(), fn(mp, sp, mq, sq), rtol=1e-5, atol=1e-6)


def test_float32_gradient_stays_float32():
    mp, sp, mq, sq = (t.float().requires_grad_() for t in gaussians(1, d=2))
    gaussian.kl(mp, sp, mq, sq).backward()
    assert sp.grad.dtype == torch.float32 and torch.isfinite(sp.grad).all()


def test_mi_numpy_and_torch_kinds():
    cov = np.array([[1.0, 0.5], [0.5, 1.0]], dtype=np.float32)
    out = gaussian.mutual_information(cov, 1)
    assert isinstance(out, np.floating) and out.dtype == np.float32
    t = gaussian.mutual_information(torch.from_numpy(cov), 1)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32


@pytest.mark.parametrize("fn", [*PAIRWISE])
def test_reductions_and_base(fn):
    mp, sp, mq, sq = gaussians(12, 4, d=2)
    none = fn(mp, sp, mq, sq)
    torch.testing.assert_close(fn(mp, sp, mq, sq, reduction="sum"), none.sum())
    torch.testing.assert_close(fn(mp, sp, mq, sq, reduction="mean"), none.mean())
    if fn in (gaussian.hellinger, gaussian.wasserstein2):  # no logarithm: base is an error
        with pytest.raises(ValueError, match="not a logarithmic quantity"):
            fn(mp, sp, mq, sq, base=2)
    else:
        torch.testing.assert_close(fn(mp, sp, mq, sq, base=2), none / math.log(2))


def test_mi_reduction():
    cov = spd(torch.Generator().manual_seed(0), 3, d=3)
    torch.testing.assert_close(gaussian.mutual_information(cov, 1, reduction="mean"),
                               gaussian.mutual_information(cov, 1).mean())


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


GOOD = (np.zeros(2), np.eye(2), np.ones(2), 2 * np.eye(2))


def _with(i, value):
    args = list(GOOD)
    args[i] = value
    return args


@pytest.mark.parametrize("fn", PAIRWISE)
@pytest.mark.parametrize(("i", "value", "match"), [
    (1, np.array([[1.0, 0.0], [0.0, -1.0]]), "cov_p is not positive"),
    (3, np.array([[1.0, 2.0], [2.0, 1.0]]), "cov_q is not positive"),
    (1, np.array([[1.0, 0.5], [0.0, 1.0]]), "cov_p is not symmetric"),
    (3, np.ones((2, 3)), "cov_q must be square"),
    (1, np.ones(2), r"cov_p must have shape \(\.\.\., d, d\)"),
    (0, np.zeros(3), "mean_p has dimension 3"),
    (2, np.float64(0.0), "mean_q must have shape"),
    (3, np.eye(3), "same dimension"),
    (1, np.array([[np.nan, 0.0], [0.0, 1.0]]), "cov_p contains NaN"),
    (2, np.array([np.inf, 0.0]), "mean_q contains inf"),
    (0, np.zeros((3, 2)), "do not broadcast"),
])
def test_bad_inputs(fn, i, value, match):
    args = _with(i, value)
    if i == 0 and value.shape == (3, 2):
        args[1] = np.stack([np.eye(2)] * 4)
    if match == "same dimension":
        args[2] = np.zeros(3)
    if fn is gaussian.wasserstein2 and match == "cov_p is not positive":
        match = "cov_p is not positive semi-definite"
    with pytest.raises(ValueError, match=match):
        fn(*args)


def test_w2_accepts_psd_but_rejects_indefinite():
    sing = np.array([[1.0, 1.0], [1.0, 1.0]])
    assert np.isfinite(gaussian.wasserstein2(np.zeros(2), sing, np.zeros(2), np.eye(2)))
    with pytest.raises(ValueError, match="cov_q is not positive semi-definite"):
        gaussian.wasserstein2(np.zeros(2), np.eye(2), np.zeros(2), np.diag([1.0, -0.1]))
    with pytest.raises(ValueError, match="cov_p is not positive definite"):
        gaussian.kl(np.zeros(2), sing, np.zeros(2), np.eye(2))


def test_batched_error_names_the_entry():
    covs = np.stack([np.eye(2), np.diag([1.0, -1.0])])
    with pytest.raises(ValueError, match=r"cov_p is not positive definite at batch index \(1,\)"):
        gaussian.kl(np.zeros(2), covs, np.zeros(2), np.eye(2))


def test_bad_keywords():
    with pytest.raises(ValueError, match="alpha"):
        gaussian.renyi(*GOOD, alpha=0.0)
    with pytest.raises(ValueError, match="alpha"):
        gaussian.renyi(*GOOD, alpha=math.inf)
    with pytest.raises(TypeError, match="alpha"):
        gaussian.renyi(*GOOD, alpha="2")
    with pytest.raises(ValueError, match="reduction"):
        gaussian.kl(*GOOD, reduction="batchmean")
    with pytest.raises(ValueError, match="base"):
        gaussian.kl(*GOOD, base=1)
    with pytest.raises(ValueError, match="base"):
        gaussian.wasserstein2(*GOOD, base=-2.0)
    with pytest.raises(TypeError, match="mean_p is a NumPy array but cov_p is a torch tensor"):
        gaussian.kl(np.zeros(2), torch.eye(2), np.zeros(2), torch.eye(2))
    with pytest.raises(TypeError, match="cov_q must be an array of numbers"):
        gaussian.kl(np.zeros(2), np.eye(2), np.zeros(2), "eye")


def test_mi_errors():
    cov = np.eye(3)
    for split in (0, 3, -1):
        with pytest.raises(ValueError, match="split must lie in"):
            gaussian.mutual_information(cov, split)
    for split in (1.0, True, "1"):
        with pytest.raises(TypeError, match="split must be an integer"):
            gaussian.mutual_information(cov, split)
    with pytest.raises(ValueError, match="cov is not positive definite"):
        gaussian.mutual_information(np.ones((3, 3)), 1)
    with pytest.raises(ValueError, match="cov must be square"):
        gaussian.mutual_information(np.ones((3, 2)), 1)
    with pytest.raises(ValueError, match="cov is not symmetric"):
        gaussian.mutual_information(np.triu(np.ones((3, 3))), 1)
    with pytest.raises(ValueError, match="cov contains NaN"):
        gaussian.mutual_information(np.full((2, 2), np.nan), 1)
