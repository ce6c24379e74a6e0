"""Tests for divergences.dependence (distance covariance family)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from divergences import dependence as dep
from divergences.dependence import (
    concatenated_distance_covariance,
    distance_correlation,
    distance_covariance,
    distance_covariance_test,
    energy_distance,
    joint_distance_covariance,
    partial_distance_correlation,
    partial_distance_covariance,
)

dcor = pytest.importorskip("dcor")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Small tensors: one thread avoids OpenMP oversubscription on a loaded 2-core box."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _data(n, p=1, q=1, seed=0, dependent=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    y = rng.normal(size=(n, q))
    if dependent:
        y = y + np.sin(2 * x[:, :1]) + x[:, :1] ** 2
    if p == 1:
        x = x[:, 0]
    if q == 1:
        y = y[:, 0]
    return x, y


# ------------------------------------------------------------------------------------------
# Against dcor
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p,q", [(1, 1), (3, 2), (1, 4)])
@pytest.mark.parametrize("method", ["auto", "naive"])
@pytest.mark.parametrize("dependent", [True, False])
def test_against_dcor(p, q, method, dependent):
    x, y = _data(83, p, q, seed=p + 10 * q, dependent=dependent)
    np.testing.assert_allclose(
        distance_covariance(x, y, squared=True, method=method),
        dcor.distance_covariance_sqr(x, y), rtol=1e-10)
    np.testing.assert_allclose(
        distance_covariance(x, y, method=method), dcor.distance_covariance(x, y), rtol=1e-10)
    np.testing.assert_allclose(
        distance_covariance(x, y, unbiased=True, squared=True, method=method),
        dcor.u_distance_covariance_sqr(x, y), rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(
        distance_correlation(x, y, method=method), dcor.distance_correlation(x, y), rtol=1e-10)
    np.testing.assert_allclose(
        distance_correlation(x, y, squared=True, method=method),
        dcor.distance_correlation_sqr(x, y), rtol=1e-10)
    np.testing.assert_allclose(
        distance_correlation(x, y, unbiased=True, squared=True, method=method),
        dcor.u_distance_correlation_sqr(x, y), rtol=1e-9, atol=1e-13)


def test_constant_sample_gives_zero_like_dcor():
    x = np.zeros(10)
    y = np.arange(10.0)
    for method in ("auto", "naive"):
        assert distance_correlation(x, y, method=method) == 0.0
        assert distance_covariance(x, y, method=method) == 0.0
        assert distance_correlation(x, y, unbiased=True, squared=True, method=method) == 0.0
    assert dcor.distance_correlation(x, y) == 0.0


# ------------------------------------------------------------------------------------------
# Fast path
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [4, 5, 6, 17, 64, 100, 257, 1000])
@pytest.mark.parametrize("unbiased", [False, True])
def test_fast_equals_naive(n, unbiased):
    x, y = _data(n, seed=n)
    for a, b in [(x, y), (np.round(x, 1), np.round(y, 0))]:  # the second with many ties
        fast = distance_covariance(a, b, unbiased=unbiased, squared=True, method="fast")
        naive = distance_covariance(a, b, unbiased=unbiased, squared=True, method="naive")
        scale = distance_covariance(a, a, squared=True, method="naive") ** 0.5 * \
            distance_covariance(b, b, squared=True, method="naive") ** 0.5
        assert abs(fast - naive) <= 1e-10 * max(abs(naive), 1e-3 * scale)
        np.testing.assert_allclose(
            distance_correlation(a, b, unbiased=unbiased, squared=True, method="fast"),
            distance_correlation(a, b, unbiased=unbiased, squared=True, method="naive"),
            rtol=1e-10, atol=1e-13)


def test_fast_terms_against_direct_sums():
    from divergences import _dcov_fast

    x, y = _data(301, seed=5)
    x[:20] = x[20]  # ties in x
    y[10:40] = 0.5  # ties in y
    a = np.abs(x[:, None] - x[None, :])
    b = np.abs(y[:, None] - y[None, :])
    want = (np.sum(a * b), a.sum(1) @ b.sum(1), a.sum() * b.sum())
    cov, var_x, var_y = _dcov_fast.stats_terms(x, y)
    np.testing.assert_allclose(np.array(cov[:3]) * cov[3], want, rtol=1e-12)
    for v, (*terms, scale) in ((a, var_x), (b, var_y)):
        want_var = (np.sum(v * v), v.sum(1) @ v.sum(1), v.sum() ** 2)
        np.testing.assert_allclose(np.array(terms) * scale, want_var, rtol=1e-12)
    assert _dcov_fast.stats_terms(x, np.ones(301))[0] == (0.0, 0.0, 0.0, 1.0)


def test_fast_at_larger_n_matches_dcor():
    x, y = _data(20_000, seed=3, dependent=False)
    np.testing.assert_allclose(distance_covariance(x, y, squared=True),
                               dcor.distance_covariance_sqr(x, y), rtol=1e-9)
    np.testing.assert_allclose(distance_correlation(x, y), dcor.distance_correlation(x, y),
                               rtol=1e-9)


def test_fast_is_overflow_safe():
    x, y = _data(200, seed=2)
    base = distance_covariance(x, y, squared=True)
    big = distance_covariance(x * 1e200, y * 1e100, squared=True, method="fast")
    assert np.isfinite(big)
    np.testing.assert_allclose(big, base * 1e300, rtol=1e-10)
    np.testing.assert_allclose(distance_correlation(x * 1e200, y * 1e-200, method="fast"),
                               distance_correlation(x, y), rtol=1e-10)


def test_auto_uses_naive_when_gradients_are_needed():
    x, y = _data(30, seed=1)
    tx = torch.tensor(x, requires_grad=True)
    v = distance_covariance(tx, torch.tensor(y), squared=True)
    v.backward()
    assert tx.grad is not None and torch.isfinite(tx.grad).all()
    np.testing.assert_allclose(v.item(), dcor.distance_covariance_sqr(x, y), rtol=1e-10)


# ------------------------------------------------------------------------------------------
# Laws
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [1, 3])
def test_dcor_of_x_with_itself_is_one(p):
    x, _ = _data(50, p=p, seed=7)
    np.testing.assert_allclose(distance_correlation(x, x), 1.0, rtol=1e-12)
    np.testing.assert_allclose(distance_correlation(x, x, unbiased=True, squared=True), 1.0,
                               rtol=1e-12)


def test_invariances():
    rng = np.random.default_rng(11)
    x, y = _data(60, p=3, q=2, seed=11)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    r = distance_correlation(x, y)
    np.testing.assert_allclose(distance_correlation(x @ q + 5.0, y - 2.0), r, rtol=1e-10)
    np.testing.assert_allclose(distance_correlation(3.0 * x, 0.5 * y), r, rtol=1e-10)
    v = distance_covariance(x, y, squared=True)
    np.testing.assert_allclose(distance_covariance(3.0 * x @ q, 0.5 * y, squared=True),
                               1.5 * v, rtol=1e-10)
    u = distance_covariance(x, y, unbiased=True, squared=True)
    np.testing.assert_allclose(distance_covariance(x + 1.0, y @ np.diag([1.0, -1.0]),
                                                   unbiased=True, squared=True), u, rtol=1e-10)


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(4, 20), st.just(2)),
           elements=st.floats(-100, 100, allow_subnormal=False)),
)
def test_properties(xy):
    x, y = xy[:, 0], xy[:, 1]
    r = distance_correlation(x, y)
    assert -1e-12 <= r <= 1 + 1e-12
    np.testing.assert_allclose(r, distance_correlation(y, x), rtol=1e-9, atol=1e-12)
    assert distance_covariance(x, y, squared=True) >= -1e-9 * (1 + np.abs(xy).max() ** 2)
    np.testing.assert_allclose(distance_covariance(x, y, squared=True, method="fast"),
                               distance_covariance(x, y, squared=True, method="naive"),
                               rtol=1e-9, atol=1e-9 * (1 + np.abs(xy).max() ** 2))


# ------------------------------------------------------------------------------------------
# JdCov and CCdCov
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [0.0, 0.5, 1.0, 3.0])
def test_jdcov_of_two_is_unbiased_dcov(c):
    x, y = _data(40, p=2, q=1, seed=4)
    np.testing.assert_allclose(joint_distance_covariance(x, y, c=c),
                               dcor.u_distance_covariance_sqr(x, y), rtol=1e-9, atol=1e-12)


def test_jdcov_three_variables_expansion():
    rng = np.random.default_rng(8)
    n = 30
    x1 = rng.normal(size=n)
    x2 = x1 + rng.normal(size=n)
    x3 = rng.normal(size=(n, 2)) + x2[:, None] ** 2
    xs = [x1, x2, x3]
    pairs = sum(dcor.u_distance_covariance_sqr(xs[i], xs[j])
                for i in range(3) for j in range(i + 1, 3))
    u = [dcor.u_centered(dcor.distances.pairwise_distances(v.reshape(n, -1))) for v in xs]
    off = ~np.eye(n, dtype=bool)
    triple = np.sum((-u[0] * -u[1] * -u[2])[off]) / (n * (n - 3))
    for c in (0.0, 1.0, 2.5):
        np.testing.assert_allclose(joint_distance_covariance(*xs, c=c), c * pairs + triple,
                                   rtol=1e-9)


def test_jdcov_near_zero_for_independent_and_positive_for_dependent():
    rng = np.random.default_rng(9)
    a, b, c = rng.normal(size=(3, 400))
    ind = joint_distance_covariance(a, b, c)
    dep_ = joint_distance_covariance(a, b, a * b + 0.1 * c)
    assert abs(ind) < 0.01 < dep_


def test_ccdcov_is_dcov_with_concatenated_attributes():
    rng = np.random.default_rng(10)
    s1 = rng.integers(0, 2, 50).astype(float)
    s2 = rng.normal(size=(50, 2))
    x = s1 * s2[:, 0] + 0.1 * rng.normal(size=50)
    s = np.column_stack([s1, s2])
    np.testing.assert_allclose(concatenated_distance_covariance(x, s1, s2),
                               dcor.u_distance_covariance_sqr(x, s), rtol=1e-9)
    np.testing.assert_allclose(concatenated_distance_covariance(x, s1, s2, unbiased=False),
                               dcor.distance_covariance_sqr(x, s), rtol=1e-10)
    np.testing.assert_allclose(concatenated_distance_covariance(x, s1),
                               dcor.u_distance_covariance_sqr(x, s1), rtol=1e-9)


# ------------------------------------------------------------------------------------------
# Permutation test
# ------------------------------------------------------------------------------------------


def test_permutation_test():
    x, y = _data(50, seed=12)
    res = distance_covariance_test(x, y, permutations=199, seed=0)
    assert res.pvalue == pytest.approx(1 / 200)
    np.testing.assert_allclose(res.statistic, dcor.distance_covariance_sqr(x, y), rtol=1e-10)
    x, y = _data(50, seed=13, dependent=False)
    res = distance_covariance_test(x, y, permutations=199, seed=0)
    assert 0.05 < res.pvalue <= 1.0
    again = distance_covariance_test(x, y, permutations=199, seed=0)
    assert again.pvalue == res.pvalue


def test_permutation_test_fast_path_matches_matrix_path(monkeypatch):
    x, y = _data(40, seed=19, dependent=False)
    want = distance_covariance_test(x, y, permutations=30, seed=3)
    monkeypatch.setattr(dep, "_TEST_MATRIX_MAX_N", 10)
    got = distance_covariance_test(x, y, permutations=30, seed=3)
    assert got.pvalue == want.pvalue
    np.testing.assert_allclose(got.statistic, want.statistic, rtol=1e-10)


def test_permutation_test_level():
    """Under independence the +1-corrected p-value satisfies P(p <= alpha) <= alpha."""
    rng = np.random.default_rng(14)
    pvals = []
    for k in range(60):
        x, y = rng.normal(size=(2, 15))
        pvals.append(distance_covariance_test(x, y, permutations=39, seed=k).pvalue)
    pvals = np.array(pvals)
    assert pvals.min() >= 1 / 40
    assert np.mean(pvals <= 0.1) <= 0.1 + 3 * np.sqrt(0.1 * 0.9 / 60)


# ------------------------------------------------------------------------------------------
# Types, gradients, errors
# ------------------------------------------------------------------------------------------


def test_types_and_dtypes():
    x, y = _data(20, seed=15)
    out = distance_covariance(x, y)
    assert isinstance(out, np.floating) and out.dtype == np.float64
    out32 = distance_correlation(x.astype(np.float32), y.astype(np.float32))
    assert out32.dtype == np.float32
    t = distance_correlation(torch.tensor(x, dtype=torch.float32),
                             torch.tensor(y, dtype=torch.float32))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.item(), dcor.distance_correlation(x, y), rtol=1e-5)
    lst = distance_covariance(list(x), list(y))
    np.testing.assert_allclose(lst, out)


def test_gradcheck():
    x, y = _data(12, p=2, q=1, seed=16)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.tensor(y, requires_grad=True)
    for unbiased in (False, True):
        assert torch.autograd.gradcheck(
            lambda a, b, u=unbiased: distance_covariance(a, b, unbiased=u, squared=True),
            (tx, ty))
        assert torch.autograd.gradcheck(
            lambda a, b, u=unbiased: distance_correlation(a, b, unbiased=u, squared=True),
            (tx, ty))
    assert torch.autograd.gradcheck(lambda a, b: distance_covariance(a, b), (tx, ty))
    assert torch.autograd.gradcheck(lambda a, b: distance_correlation(a, b), (tx, ty))
    tz = torch.tensor(np.random.default_rng(0).normal(size=12), requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, c: joint_distance_covariance(a, b, c, c=1.0), (tx, ty, tz))
    assert torch.autograd.gradcheck(
        lambda a, b, c: concatenated_distance_covariance(a, b, c), (tz, tx, ty))


def test_gradient_finite_with_duplicate_points():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 2.0], [3.0, 1.0], [2.0, 2.0]],
                     dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.0, 1.0, 2.0, 3.0, 5.0], dtype=torch.float64)
    distance_correlation(x, y).backward()
    assert torch.isfinite(x.grad).all()


def test_blocked_path_matches_unblocked(monkeypatch):
    x, y = _data(37, p=2, q=3, seed=17)
    want = [distance_covariance(x, y, squared=True, unbiased=u) for u in (False, True)]
    jd = joint_distance_covariance(x, y, x[:, 0] * y[:, 1])
    monkeypatch.setattr(dep, "_BLOCK_ELEMENTS", 50)
    got = [distance_covariance(x, y, squared=True, unbiased=u) for u in (False, True)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(joint_distance_covariance(x, y, x[:, 0] * y[:, 1]), jd,
                               rtol=1e-12)
    res = distance_covariance_test(x, y, permutations=9, seed=0)
    np.testing.assert_allclose(res.statistic, want[0], rtol=1e-12)


def test_errors():
    x, y = _data(10, seed=18)
    with pytest.raises(ValueError, match="same number of observations"):
        distance_covariance(x, y[:-1])
    with pytest.raises(ValueError, match=r"shape \(n,\) or \(n, d\)"):
        distance_covariance(np.zeros((10, 2, 2)), y)
    with pytest.raises(ValueError, match="NaN or inf"):
        distance_covariance(np.r_[x[:-1], np.nan], y)
    with pytest.raises(ValueError, match="squared=True"):
        distance_covariance(x, y, unbiased=True)
    with pytest.raises(ValueError, match="squared=True"):
        distance_correlation(x, y, unbiased=True)
    with pytest.raises(TypeError, match="unbiased"):
        distance_covariance(x, y, unbiased=1)
    with pytest.raises(TypeError, match="squared"):
        distance_correlation(x, y, squared="yes")
    with pytest.raises(ValueError, match="at least 4"):
        distance_covariance(x[:3], y[:3], unbiased=True, squared=True)
    with pytest.raises(ValueError, match="method"):
        distance_covariance(x, y, method="avl")
    with pytest.raises(ValueError, match="univariate"):
        distance_covariance(np.c_[x, y], y, method="fast")
    with pytest.raises(TypeError, match="NumPy array"):
        distance_covariance(x, torch.tensor(y))
    with pytest.raises(TypeError, match="permutations"):
        distance_covariance_test(x, y, permutations=True)
    with pytest.raises(ValueError, match="permutations"):
        distance_covariance_test(x, y, permutations=0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        joint_distance_covariance(x)
    with pytest.raises(ValueError, match="c must lie"):
        joint_distance_covariance(x, y, c=-1.0)
    with pytest.raises(ValueError, match="at least one attribute"):
        concatenated_distance_covariance(x)
    with pytest.raises(TypeError, match="unbiased"):
        concatenated_distance_covariance(x, y, unbiased=None)
    with pytest.raises(ValueError, match="at least 4"):
        joint_distance_covariance(x[:3], y[:3])


# --------------------------------------------------------------------------------------------
# Energy statistics: exponent, energy distance, partial dCov / dCor (issue 17), against dcor
# --------------------------------------------------------------------------------------------


def _energy_cases():
    rng = np.random.default_rng(17)
    yield "1d", rng.normal(size=30), rng.normal(size=30) ** 2, rng.normal(size=30)
    yield ("ties", rng.integers(0, 4, 50).astype(float), rng.integers(0, 3, 50).astype(float),
           rng.integers(0, 3, 50).astype(float))
    yield "mv", rng.normal(size=(60, 3)), rng.normal(size=(60, 2)), rng.normal(size=(60, 2))
    x = rng.normal(size=2000)
    yield "1d_2000", x, x + rng.normal(size=2000), np.sin(x)


ENERGY_CASES = list(_energy_cases())


@pytest.mark.parametrize("case", ENERGY_CASES, ids=[c[0] for c in ENERGY_CASES])
@pytest.mark.parametrize("exponent", [1.0, 0.5, 1.5])
def test_exponent_matches_dcor(case, exponent):
    _, x, y, _ = case
    if x.shape[0] > 500 and exponent != 1.0:
        x, y = x[:500], y[:500]  # the O(n^2) path; n = 2000 is covered with exponent 1
    for unbiased, squared, ours, ref in [
        (False, False, distance_covariance, dcor.distance_covariance),
        (False, False, distance_correlation, dcor.distance_correlation),
        (True, True, distance_covariance, dcor.u_distance_covariance_sqr),
        (True, True, distance_correlation, dcor.u_distance_correlation_sqr),
    ]:
        got = ours(x, y, unbiased=unbiased, squared=squared, exponent=exponent)
        assert isinstance(got, float)
        assert got == pytest.approx(float(ref(x, y, exponent=exponent)), abs=1e-9, rel=1e-9)


@pytest.mark.parametrize("case", ENERGY_CASES, ids=[c[0] for c in ENERGY_CASES])
@pytest.mark.parametrize("exponent", [1.0, 0.5, 1.5])
def test_energy_distance_matches_dcor(case, exponent):
    _, x, y, _ = case
    other = y[: y.shape[0] // 2 + 1] + 0.3 if x.ndim == 1 else 1.5 * x[: x.shape[0] // 3]
    got = energy_distance(x, other, exponent=exponent)
    assert isinstance(got, float)
    assert got == pytest.approx(dcor.energy_distance(x, other, exponent=exponent), abs=1e-9)
    assert energy_distance(x, x, exponent=exponent) == pytest.approx(0.0, abs=1e-12)


def test_energy_distance_fast_equals_naive():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=700), rng.standard_t(3, size=500)
    fast = energy_distance(x, y)
    naive = energy_distance(torch.tensor(x).requires_grad_(), torch.tensor(y)).item()
    assert fast == pytest.approx(naive, rel=1e-12)
    big = 1e6 + rng.normal(size=300)  # prefix sums on standardised data: no cancellation
    assert energy_distance(big, big + 0.1) == pytest.approx(
        dcor.energy_distance(big, big + 0.1), rel=1e-6)


@pytest.mark.parametrize("case", ENERGY_CASES, ids=[c[0] for c in ENERGY_CASES])
def test_partial_matches_dcor(case):
    _, x, y, z = case
    if x.shape[0] > 500:
        x, y, z = x[:500], y[:500], z[:500]
    pc = partial_distance_covariance(x, y, z)
    pr = partial_distance_correlation(x, y, z)
    assert isinstance(pc, float) and isinstance(pr, float)
    assert pc == pytest.approx(float(dcor.partial_distance_covariance(x, y, z)), abs=1e-9)
    assert pr == pytest.approx(float(dcor.partial_distance_correlation(x, y, z)), abs=1e-9)


def test_partial_degenerate_z_and_exponent():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=40), rng.normal(size=40)
    const = np.ones(40)  # <C, C> = 0: no projection, pdCov = dCov_U^2
    assert partial_distance_covariance(x, y, const) == pytest.approx(
        distance_covariance(x, y, unbiased=True, squared=True), abs=1e-12)
    assert partial_distance_correlation(x, x, x) == 0.0  # dcor's 0 for a 0 denominator
    a = partial_distance_covariance(x, y, x + y, exponent=0.5)
    b = partial_distance_covariance(3 * x, 3 * y, 3 * (x + y), exponent=0.5)
    assert b == pytest.approx(3.0**1.0 * a, rel=1e-9)  # degree 2 * exponent homogeneity


def test_energy_torch_native_and_differentiable():
    rng = np.random.default_rng(8)
    x = torch.tensor(rng.normal(size=(30, 2)), requires_grad=True)
    y = torch.tensor(rng.normal(size=(30, 2)))
    z = torch.tensor(rng.normal(size=(30, 1)))
    for fn in (lambda: energy_distance(x, y + 1.0, exponent=1.5),
               lambda: partial_distance_covariance(x, y, z),
               lambda: partial_distance_correlation(x, y, z),
               lambda: distance_covariance(x, y, exponent=0.5),
               lambda: distance_correlation(x, y, exponent=1.5)):
        out = fn()
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
        (g,) = torch.autograd.grad(out, x)
        assert torch.isfinite(g).all() and g.abs().sum() > 0
    x1 = torch.tensor(rng.normal(size=20), requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: distance_covariance(t, t**2, exponent=0.7, squared=True), (x1,))
    with_ties = torch.tensor([0.0, 0.0, 1.0, 2.0, 2.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(energy_distance(with_ties, with_ties + 0.5, exponent=0.5),
                               with_ties)
    assert torch.isfinite(g).all()


def test_energy_bad_input():
    x, y = np.arange(10.0), np.arange(10.0) ** 2
    for bad in (0, 2, -1.0, 2.5):
        with pytest.raises(ValueError, match="exponent"):
            distance_covariance(x, y, exponent=bad)
        with pytest.raises(ValueError, match="exponent"):
            energy_distance(x, y, exponent=bad)
        with pytest.raises(ValueError, match="exponent"):
            partial_distance_correlation(x, y, x, exponent=bad)
    with pytest.raises(TypeError, match="exponent"):
        distance_correlation(x, y, exponent="1")
    with pytest.raises(ValueError, match="observations"):
        partial_distance_covariance(x, y, x[:9])
    with pytest.raises(ValueError, match="dimension"):
        energy_distance(np.ones((5, 2)), np.ones((5, 3)))
    nan = x.copy()
    nan[3] = np.nan
    for fn, args, name in [(distance_covariance, (x, nan), "y"),
                           (energy_distance, (nan, y), "x"),
                           (partial_distance_covariance, (x, y, nan), "z")]:
        with pytest.raises(ValueError, match=f"{name} contains NaN"):
            fn(*args)
    with pytest.raises(ValueError, match="exponent=1"):
        distance_covariance(x, y, method="fast", exponent=0.5)


def test_partial_exponent_matches_dcor_u_products():
    # dcor's partial functions have no exponent: build its U-centred products by hand
    rng = np.random.default_rng(21)
    x, y, z = rng.normal(size=(40, 2)), rng.normal(size=40), rng.normal(size=(40, 3))

    def u(v, e):
        v = v.reshape(len(v), -1)
        return dcor.u_centered(np.linalg.norm(v[:, None] - v[None], axis=-1) ** e)

    for e in (0.5, 1.5):
        a, b, c = u(x, e), u(y, e), u(z, e)
        proj = dcor.u_complementary_projection(c)
        ref = dcor.u_product(proj(a), proj(b))
        assert partial_distance_covariance(x, y, z, exponent=e) == pytest.approx(ref, abs=1e-9)
        r = {k: dcor.u_product(p, q) / np.sqrt(dcor.u_product(p, p) * dcor.u_product(q, q))
             for k, (p, q) in {"xy": (a, b), "xz": (a, c), "yz": (b, c)}.items()}
        ref_r = (r["xy"] - r["xz"] * r["yz"]) / np.sqrt((1 - r["xz"]**2) * (1 - r["yz"]**2))
        assert partial_distance_correlation(x, y, z, exponent=e) == pytest.approx(ref_r,
                                                                                  abs=1e-9)


def test_dcov_test_exponent():
    rng = np.random.default_rng(2)
    x = rng.normal(size=40)
    y = x**2 + 0.1 * rng.normal(size=40)
    res = distance_covariance_test(x, y, permutations=49, seed=0, exponent=0.5)
    assert res.statistic == pytest.approx(distance_covariance(x, y, squared=True, exponent=0.5),
                                          rel=1e-9)
    assert res.pvalue == pytest.approx(0.02)
    with pytest.raises(ValueError, match="exponent"):
        distance_covariance_test(x, y, exponent=2.0)
