"""Tests for divergences.kernels (MMD, Cauchy-Schwarz, CS-QMI, HSIC)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from divergences import kernels as K
from divergences.kernels import (
    cauchy_schwarz,
    cs_mutual_information,
    hsic,
    hsic_test,
    median_bandwidth,
    mmd,
    mmd_linear,
    mmd_test,
)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Small tensors: one thread avoids OpenMP oversubscription on a loaded 2-core box."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def k_direct(a, b, kernel, h):
    r = math.sqrt(sum((ai - bi) ** 2 for ai, bi in zip(a, b)))
    if kernel == "gaussian":
        return math.exp(-r * r / (2 * h * h))
    if kernel == "laplacian":
        return math.exp(-r / h)
    if kernel == "imq":
        return (1 + r * r / (h * h)) ** -0.5
    assert kernel == "rational_quadratic"
    return 1.0 / (1 + r * r / (2 * h * h))


def mmd_direct(x, y, kernel, h, unbiased):
    n, m = len(x), len(y)
    sxx = sum(k_direct(x[i], x[j], kernel, h) for i in range(n) for j in range(n)
              if not (unbiased and i == j))
    syy = sum(k_direct(y[i], y[j], kernel, h) for i in range(m) for j in range(m)
              if not (unbiased and i == j))
    sxy = sum(k_direct(x[i], y[j], kernel, h) for i in range(n) for j in range(m))
    if unbiased:
        return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2 * sxy / (n * m)
    return sxx / n**2 + syy / m**2 - 2 * sxy / (n * m)


def small(seed, n=6, m=5, d=2):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(m, d)) + 0.5


# ------------------------------------------------------------------------------------------
# Direct double-loop formulas
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", K.KERNELS)
@pytest.mark.parametrize("unbiased", [True, False])
def test_mmd_direct(kernel, unbiased):
    x, y = small(1)
    np.testing.assert_allclose(mmd(x, y, kernel=kernel, bandwidth=0.8, unbiased=unbiased),
                               mmd_direct(x, y, kernel, 0.8, unbiased), rtol=1e-12)


def test_median_bandwidth_is_median_of_pooled_pairwise_distances():
    x, y = small(2)
    z = np.vstack([x, y])
    d = [np.linalg.norm(z[i] - z[j]) for i in range(len(z)) for j in range(i + 1, len(z))]
    assert median_bandwidth(x, y) == pytest.approx(np.median(d), rel=1e-12)
    np.testing.assert_allclose(mmd(x, y), mmd_direct(x, y, "gaussian", np.median(d), True),
                               rtol=1e-12)
    assert median_bandwidth([1.0, 1.0, 1.0, 2.0]) == pytest.approx(0.5)  # numpy's median rule
    assert median_bandwidth([1.0, 1.0, 1.0, 1.0, 2.0]) == pytest.approx(1.0)  # 0: mean of > 0
    assert median_bandwidth([3.0, 3.0]) == 1.0
    big = np.random.default_rng(0).normal(size=3000)
    assert 0.5 < median_bandwidth(big) < 1.5


def test_mmd_linear_direct():
    x, y = small(3, n=7, m=9)
    h = 1.3
    m = 3
    hs = [k_direct(x[2 * i], x[2 * i + 1], "gaussian", h)
          + k_direct(y[2 * i], y[2 * i + 1], "gaussian", h)
          - k_direct(x[2 * i], y[2 * i + 1], "gaussian", h)
          - k_direct(x[2 * i + 1], y[2 * i], "gaussian", h) for i in range(m)]
    np.testing.assert_allclose(mmd_linear(x, y, bandwidth=h), np.mean(hs), rtol=1e-12)


@pytest.mark.parametrize("kernel", K.KERNELS)
def test_cauchy_schwarz_direct(kernel):
    x, y = small(4)
    h = 0.9

    def mean_k(a, b):
        return np.mean([k_direct(u, v, kernel, h) for u in a for v in b])

    want = math.log(mean_k(x, x)) + math.log(mean_k(y, y)) - 2 * math.log(mean_k(x, y))
    np.testing.assert_allclose(cauchy_schwarz(x, y, kernel=kernel, bandwidth=h), want,
                               rtol=1e-12)


def test_cs_mutual_information_direct():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(7, 2))
    y = x[:, :1] ** 2 + rng.normal(size=(7, 1))
    hx, hy = 1.1, 0.7
    kx = np.array([[k_direct(a, b, "gaussian", hx) for b in x] for a in x])
    ly = np.array([[k_direct(a, b, "gaussian", hy) for b in y] for a in y])
    n = 7
    one = np.ones(n)
    want = (math.log(np.trace(kx @ ly) / n**2)
            + math.log(one @ kx @ one * (one @ ly @ one) / n**4)
            - 2 * math.log(one @ kx @ ly @ one / n**3))
    got = cs_mutual_information(x, y, bandwidth=hx, bandwidth_y=hy)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert got > 0


def _hsic_direct(kx, ly, unbiased):
    n = kx.shape[0]
    if not unbiased:
        h = np.eye(n) - np.ones((n, n)) / n
        return np.trace(kx @ h @ ly @ h) / n**2
    kt = kx - np.diag(np.diag(kx))
    lt = ly - np.diag(np.diag(ly))
    one = np.ones(n)
    return (np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ kt @ lt @ one) / (n * (n - 3))


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("kernel", K.KERNELS)
def test_hsic_direct(unbiased, kernel):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(9, 2))
    y = np.sin(x[:, 0]) + 0.3 * rng.normal(size=9)
    kx = np.array([[k_direct(a, b, kernel, 1.2) for b in x] for a in x])
    ly = np.array([[k_direct([a], [b], kernel, 0.6) for b in y] for a in y])
    got = hsic(x, y, kernel=kernel, bandwidth=1.2, bandwidth_y=0.6, unbiased=unbiased)
    np.testing.assert_allclose(got, _hsic_direct(kx, ly, unbiased), rtol=1e-10)


@pytest.mark.parametrize("unbiased", [False, True])
def test_hsic_with_distance_kernel_is_distance_covariance(unbiased):
    """HSIC with the kernel -||x - x'|| is the distance covariance (checked against dcor in
    tests/test_dependence.py), so the HSIC formulas are checked by a second, independent path."""
    from divergences.dependence import distance_covariance

    rng = np.random.default_rng(7)
    x = rng.normal(size=(30, 2))
    y = x[:, 0] ** 2 + rng.normal(size=30)
    a = -np.linalg.norm(x[:, None] - x[None], axis=-1)
    b = -np.abs(y[:, None] - y[None])
    got = float(K._hsic_from_grams(torch.tensor(a), torch.tensor(b), unbiased))
    want = distance_covariance(x, y, unbiased=unbiased, squared=True, method="naive")
    np.testing.assert_allclose(got, want, rtol=1e-10)


# ------------------------------------------------------------------------------------------
# Laws and statistical behaviour
# ------------------------------------------------------------------------------------------


def test_unbiased_mmd_is_zero_in_expectation_under_the_null():
    rng = np.random.default_rng(8)
    vals = [float(mmd(rng.normal(size=(20, 2)), rng.normal(size=(20, 2)), bandwidth=1.0))
            for _ in range(200)]
    vals = np.array(vals)
    assert (vals < 0).any()  # unbiased: negative at times
    assert abs(vals.mean()) < 3 * vals.std() / math.sqrt(len(vals))
    biased = [float(mmd(rng.normal(size=(20, 2)), rng.normal(size=(20, 2)), bandwidth=1.0,
                        unbiased=False)) for _ in range(50)]
    assert min(biased) >= 0 and np.mean(biased) > 3 * abs(vals.mean())


def test_mmd_linear_is_unbiased_and_detects_shift():
    rng = np.random.default_rng(9)
    null = [float(mmd_linear(rng.normal(size=400), rng.normal(size=400), bandwidth=1.0))
            for _ in range(100)]
    assert abs(np.mean(null)) < 3 * np.std(null) / 10
    x, y = rng.normal(size=(2, 4000))
    full = float(mmd(x[:400], y[:400] + 1.0, bandwidth=1.0))
    lin = float(mmd_linear(x, y + 1.0, bandwidth=1.0))
    assert abs(lin - full) < 0.05 and lin > 0.1


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(2, 8), st.just(2)),
           elements=st.floats(-5, 5, allow_subnormal=False)),
    arrays(np.float64, st.tuples(st.integers(2, 8), st.just(2)),
           elements=st.floats(-5, 5, allow_subnormal=False)),
    st.sampled_from(K.KERNELS),
    st.floats(0.05, 5.0),
)
def test_properties(x, y, kernel, h):
    d = cauchy_schwarz(x, y, kernel=kernel, bandwidth=h)
    assert d >= 0 and np.isfinite(d)
    np.testing.assert_allclose(d, cauchy_schwarz(y, x, kernel=kernel, bandwidth=h),
                               rtol=1e-9, atol=1e-12)
    assert cauchy_schwarz(x, x, kernel=kernel, bandwidth=h) <= 1e-12
    assert mmd(x, y, kernel=kernel, bandwidth=h, unbiased=False) >= -1e-12
    np.testing.assert_allclose(mmd(x, y, kernel=kernel, bandwidth=h),
                               mmd(y, x, kernel=kernel, bandwidth=h), rtol=1e-9, atol=1e-12)
    assert abs(float(mmd(x, x, kernel=kernel, bandwidth=h, unbiased=False))) <= 1e-12
    n = min(len(x), len(y))
    assert cs_mutual_information(x[:n], y[:n], kernel=kernel, bandwidth=h) >= 0
    assert hsic(x[:n], y[:n], kernel=kernel, bandwidth=h) >= -1e-12


def test_cauchy_schwarz_is_stable_far_apart():
    x = np.array([[0.0], [0.1]])
    y = np.array([[1000.0], [1000.2]])
    d = cauchy_schwarz(x, y, bandwidth=1.0)
    assert np.isfinite(d) and d > 1e5
    # exact: log-means of K_xy are all ~ -1000^2/2; the divergence is ~ 1000^2
    assert d == pytest.approx(1000.0**2, rel=1e-3)
    assert np.isfinite(cs_mutual_information(np.arange(5.0), np.arange(5.0) * 1e3,
                                             bandwidth=1e-3))


def test_cs_mutual_information_dependent_vs_independent():
    rng = np.random.default_rng(10)
    x = rng.normal(size=300)
    dep = cs_mutual_information(x, x**2 + 0.1 * rng.normal(size=300))
    ind = cs_mutual_information(x, rng.normal(size=300))
    assert dep > 5 * ind and ind >= 0
    assert cs_mutual_information(x, np.ones(300)) == pytest.approx(0.0, abs=1e-12)


def test_hsic_independent_vs_dependent_and_tests():
    rng = np.random.default_rng(11)
    x = rng.normal(size=100)
    y_ind = rng.normal(size=100)
    y_dep = np.cos(2 * x) + 0.2 * rng.normal(size=100)
    assert hsic(x, y_dep) > 5 * hsic(x, y_ind)
    assert abs(hsic(x, y_ind, unbiased=True)) < 0.2 * hsic(x, y_dep, unbiased=True)
    for method in ("permutation", "gamma"):
        dep = hsic_test(x, y_dep, method=method, permutations=99, seed=0)
        ind = hsic_test(x, y_ind, method=method, permutations=99, seed=0)
        assert dep.pvalue <= 0.01 and ind.pvalue > 0.05
        np.testing.assert_allclose(dep.statistic, hsic(x, y_dep), rtol=1e-10)
        assert dep.method == method


def test_hsic_gamma_test_level():
    """The gamma approximation is calibrated: under independence P(p <= 0.1) ~ 0.1."""
    rng = np.random.default_rng(12)
    pvals = np.array([hsic_test(rng.normal(size=60), rng.normal(size=60),
                                method="gamma").pvalue for _ in range(100)])
    assert 0.02 <= np.mean(pvals <= 0.1) <= 0.2
    assert hsic_test(np.zeros(10), np.arange(10.0), method="gamma").pvalue == 1.0


def test_mmd_test():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(30, 2))
    res = mmd_test(x, rng.normal(size=(25, 2)) + 2.0, permutations=99, seed=1)
    assert res.pvalue == pytest.approx(0.01)
    res = mmd_test(x, rng.normal(size=(25, 2)), permutations=99, seed=1)
    assert res.pvalue > 0.05


def test_mmd_test_statistic_is_mmd():
    x, y = small(14, n=8, m=6)
    res = mmd_test(x, y, bandwidth=0.7, permutations=19, seed=0)
    np.testing.assert_allclose(res.statistic, mmd(x, y, bandwidth=0.7), rtol=1e-10)
    assert 1 / 20 <= res.pvalue <= 1.0


# ------------------------------------------------------------------------------------------
# Types, blocks, gradients, errors
# ------------------------------------------------------------------------------------------


def test_blocked_sums_match(monkeypatch):
    x, y = small(15, n=13, m=11, d=3)
    z = x[:, :2] ** 2

    def values():
        return [mmd(x, y, bandwidth=1.0), cauchy_schwarz(x, y, bandwidth=1.0),
                cs_mutual_information(x, z, bandwidth=1.0)]

    want = values()
    monkeypatch.setattr(K, "_BLOCK_ELEMENTS", 20)
    got = values()
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_types():
    x, y = small(16)
    out = mmd(x, y)
    assert isinstance(out, np.floating) and out.dtype == np.float64
    t = mmd(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.item(), out, rtol=1e-5)
    assert isinstance(hsic(torch.tensor(x), torch.tensor(x)), torch.Tensor)
    np.testing.assert_allclose(mmd(list(x[:, 0]), list(y[:, 0]), bandwidth=1.0),
                               mmd(x[:, :1], y[:, :1], bandwidth=1.0))


@pytest.mark.parametrize("kernel", K.KERNELS)
def test_gradcheck(kernel):
    x, y = small(17, n=5, m=4)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.tensor(y, requires_grad=True)
    ty5 = torch.tensor(small(18, n=5)[0], requires_grad=True)
    for fn in (
        lambda a, b: mmd(a, b, kernel=kernel, bandwidth=0.9),
        lambda a, b: mmd(a, b, kernel=kernel, bandwidth=1.3, unbiased=False),
        lambda a, b: cauchy_schwarz(a, b, kernel=kernel, bandwidth=1.1),
        lambda a, b: mmd_linear(a, b, kernel=kernel, bandwidth=0.9),
    ):
        assert torch.autograd.gradcheck(fn, (tx, ty))
    for fn in (
        lambda a, b: cs_mutual_information(a, b, kernel=kernel, bandwidth=1.0),
        lambda a, b: hsic(a, b, kernel=kernel, bandwidth=1.0),
        lambda a, b: hsic(a, b, kernel=kernel, bandwidth=1.0, unbiased=True),
    ):
        assert torch.autograd.gradcheck(fn, (tx, ty5))


def test_median_bandwidth_is_a_constant_for_autograd():
    x, y = small(20)
    h = median_bandwidth(x, y)
    grads = []
    for bw in ("median", h):
        tx = torch.tensor(x, requires_grad=True)
        mmd(tx, torch.tensor(y), bandwidth=bw).backward()
        grads.append(tx.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-14)


def test_errors():
    x, y = small(19)
    with pytest.raises(ValueError, match="kernel must be one of"):
        mmd(x, y, kernel="rbf")
    with pytest.raises(ValueError, match="bandwidth must be one of"):
        mmd(x, y, bandwidth="scott")
    with pytest.raises(ValueError, match="bandwidth must lie"):
        cauchy_schwarz(x, y, bandwidth=0.0)
    with pytest.raises(TypeError, match="bandwidth must be a real number"):
        hsic(x, x, bandwidth=None)
    with pytest.raises(ValueError, match="bandwidth_y must lie"):
        cs_mutual_information(x, x, bandwidth_y=-1.0)
    with pytest.raises(ValueError, match="same dimension"):
        mmd(x, y[:, :1])
    with pytest.raises(ValueError, match="same number of observations"):
        hsic(x, y)
    with pytest.raises(ValueError, match="at least 2 observations"):
        mmd(x[:1], y)
    with pytest.raises(ValueError, match="at least 4 observations"):
        hsic(x[:3], y[:3], unbiased=True)
    with pytest.raises(ValueError, match="at least 6 observations"):
        hsic_test(x[:5], y[:5], method="gamma")
    with pytest.raises(ValueError, match="NaN or inf"):
        mmd(np.full((3, 2), np.inf), y)
    with pytest.raises(ValueError, match=r"shape \(n,\) or \(n, d\)"):
        mmd(np.zeros((2, 2, 2)), y)
    with pytest.raises(TypeError, match="unbiased"):
        mmd(x, y, unbiased="no")
    with pytest.raises(TypeError, match="unbiased"):
        hsic(x, x, unbiased=0)
    with pytest.raises(ValueError, match="method must be one of"):
        hsic_test(x, x, method="spectral")
    with pytest.raises(ValueError, match="permutations"):
        mmd_test(x, y, permutations=-3)
    with pytest.raises(TypeError, match="permutations"):
        hsic_test(x, x, permutations=2.5)
    with pytest.raises(TypeError, match="torch tensor"):
        mmd(x, torch.tensor(y))


# ------------------------------------------------------------------------------------------
# NumPy path of the two-sample test: no torch, the torch path's numbers
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", K.KERNELS)
def test_mmd_test_numpy_equals_torch(kernel):
    rng = np.random.default_rng(21)
    x, y = rng.normal(size=(60, 3)), rng.normal(size=(45, 3)) + 0.3
    got = mmd_test(x, y, kernel=kernel, permutations=199, seed=4)
    want = mmd_test(torch.tensor(x), torch.tensor(y), kernel=kernel, permutations=199, seed=4)
    np.testing.assert_allclose(got.statistic, want.statistic, rtol=1e-12)
    assert got.pvalue == want.pvalue and got.permutations == want.permutations == 199
    np.testing.assert_allclose(got.statistic, mmd(x, y, kernel=kernel), rtol=1e-10)


def test_permuted_statistics_equal_the_direct_formula():
    # the one-product form of _mmd_from_labels against the three blocks of each relabelling
    rng = np.random.default_rng(22)
    z = rng.normal(size=(17, 2))
    k = np.exp(-((z[:, None] - z[None]) ** 2).sum(-1) / 2)
    np.fill_diagonal(k, 0.0)
    n, perms = 7, [rng.permutation(17) for _ in range(5)]
    labels = np.zeros((17, 5))
    for j, p in enumerate(perms):
        labels[p[:n], j] = 1.0
    direct = [k[np.ix_(p[:n], p[:n])].sum() / (n * (n - 1))
              + k[np.ix_(p[n:], p[n:])].sum() / (10 * 9)
              - 2 * k[np.ix_(p[:n], p[n:])].sum() / (n * 10) for p in perms]
    np.testing.assert_allclose(K._mmd_from_labels(k, labels, n), direct, rtol=1e-12)


def test_median_bandwidth_numpy_equals_torch_above_the_subsample():
    rng = np.random.default_rng(23)
    x, y = rng.normal(size=(900, 2)), rng.normal(size=(700, 2))
    assert median_bandwidth(x, y) == median_bandwidth(torch.tensor(x), torch.tensor(y))
    x32 = x.astype(np.float32)
    assert median_bandwidth(x32) == median_bandwidth(torch.tensor(x32))
    ties = np.array([1.0, 1.0, 1.0, 1.0, 2.0])
    assert median_bandwidth(ties) == median_bandwidth(torch.tensor(ties)) == 1.0


def test_numpy_errors_are_the_torch_paths():
    x, y = small(24)
    with pytest.raises(ValueError, match="NaN or inf"):
        mmd_test(np.full((3, 2), np.nan), y)
    with pytest.raises(ValueError, match=r"shape \(n,\) or \(n, d\)"):
        median_bandwidth(np.zeros((2, 2, 2)))
    with pytest.raises(TypeError, match="array of numbers"):
        mmd_test(np.array(["a", "b"]), y[:, 0])
    with pytest.raises(ValueError, match="same dimension"):
        mmd_test(x, y[:, :1])
    with pytest.raises(ValueError, match="at least 2 observations"):
        mmd_test(x[:1], y)
    with pytest.raises(ValueError, match="kernel must be one of"):
        mmd_test(x, y, kernel="rbf")
    with pytest.raises(ValueError, match="bandwidth must lie"):
        mmd_test(x, y, bandwidth=-1.0)


def test_numpy_mmd_test_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from divergences import kernels\n"
            "rng = np.random.default_rng(0)\n"
            "x, y = rng.normal(size=(50, 2)), rng.normal(size=(40, 2))\n"
            "kernels.mmd_test(x, y, permutations=19, seed=0)\n"
            "kernels.median_bandwidth(x, y)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
