"""Gaussian, Gaussian-copula, binned and spacing estimators."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from divergences import gaussian
from divergences.estimate import conditional_mutual_information, entropy, mutual_information


def _mle_cov(a):
    c = a - a.mean(axis=0)
    return c.T @ c / a.shape[0]


def test_gaussian_entropy_is_logdet_of_mle_cov(rng):
    x = rng.normal(size=(400, 3)) @ np.array([[1.0, 0.2, 0.0], [0.0, 2.0, 0.5], [0, 0, 0.3]])
    expected = 0.5 * np.linalg.slogdet(2 * math.pi * math.e * _mle_cov(x))[1]
    assert entropy(x, method="gaussian").value == pytest.approx(expected, rel=1e-10)


def test_gaussian_entropy_closed_form():
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 3.0, size=5000)
    e = entropy(x, method="gaussian")
    truth = 0.5 * math.log(2 * math.pi * math.e * 9.0)
    assert abs(e.value - truth) < 4 * e.stderr


def test_gaussian_mi_is_the_core_closed_form(rng):
    x = rng.normal(size=(500, 2))
    y = x @ np.array([[0.5, 0.1], [0.0, 0.7]]) + rng.normal(size=(500, 2))
    e = mutual_information(x, y, method="gaussian")
    core = float(gaussian.mutual_information(_mle_cov(np.hstack([x, y])), 2))
    assert e.value == pytest.approx(core - e.details["bias_correction"], rel=1e-12)
    # the mean of the local log-density ratios is the same number
    from divergences.estimate._parametric import gaussian_mi_local
    assert np.mean(gaussian_mi_local(x, y)) == pytest.approx(core, rel=1e-9)


def test_gaussian_mi_closed_form_and_stderr():
    rho = 0.6
    truth = -0.5 * math.log(1 - rho**2)
    vals, ses = [], []
    for s in range(30):
        rng = np.random.default_rng(s)
        x = rng.normal(size=500)
        y = rho * x + math.sqrt(1 - rho**2) * rng.normal(size=500)
        e = mutual_information(x, y, method="gaussian")
        vals.append(e.value)
        ses.append(e.stderr)
    assert abs(np.mean(vals) - truth) < 4 * np.std(vals) / math.sqrt(30)
    # delta method: Var(I_hat) ~ rho^2 / n for the binormal; the reported stderr matches
    assert np.mean(ses) == pytest.approx(rho / math.sqrt(500), rel=0.15)
    assert np.std(vals) == pytest.approx(np.mean(ses), rel=0.35)


def test_copula_exactly_invariant_under_monotone_maps(rng):
    x = rng.normal(size=800)
    y = 0.7 * x + rng.normal(size=800)
    a = mutual_information(x, y, method="gaussian_copula")
    b = mutual_information(np.exp(x), np.arctan(y) ** 3, method="gaussian_copula")
    assert a.value == pytest.approx(b.value, abs=1e-12)
    assert a.stderr == pytest.approx(b.stderr, abs=1e-12)


def test_copula_recovers_gaussian_mi_after_transform():
    rng = np.random.default_rng(2)
    x = rng.normal(size=4000)
    y = 0.8 * x + 0.6 * rng.normal(size=4000)
    e = mutual_information(np.sinh(x), stats.norm.cdf(y), method="gaussian_copula")
    assert abs(e.value - (-0.5 * math.log(1 - 0.64))) < 4 * e.stderr


def test_binned_default_and_explicit():
    rng = np.random.default_rng(3)
    n = 20000
    x = rng.normal(size=n)
    y = 0.8 * x + 0.6 * rng.normal(size=n)
    e = mutual_information(x, y, method="binned")
    assert e.method == "binned" and e.details["bins"] == int((n / 5) ** 0.5)
    # binning loses information: within 0.05 nats below the truth at this n
    truth = -0.5 * math.log(1 - 0.64)
    assert -0.05 < e.value - truth < 4 * e.stderr
    coarse = mutual_information(x, y, method="binned", bins=3)
    assert coarse.details["bins"] == 3 and coarse.value < e.value


def test_binned_with_a_discrete_side():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 5000)
    y = labels * 3.0 + rng.normal(size=5000)
    # I(L; Y) = JS(N(0, 1), N(3, 1)), by quadrature
    def g(t):
        a, b = stats.norm.pdf(t), stats.norm.pdf(t, 3.0)
        m = 0.5 * (a + b)
        return 0.5 * a * np.log(a / m) + 0.5 * b * np.log(b / m)
    truth = integrate.quad(g, -15, 18)[0]  # 0.5268
    e = mutual_information(labels, y, method="binned", bins=30)
    assert abs(e.value - truth) < 4 * e.stderr + 0.01, (e, truth)


def test_gaussian_cmi_matches_logdets(rng):
    z = rng.normal(size=(600, 1))
    x = z + rng.normal(size=(600, 1))
    y = x + z + rng.normal(size=(600, 1))
    c = _mle_cov(np.hstack([x, y, z]))

    def ld(idx):
        return np.linalg.slogdet(c[np.ix_(idx, idx)])[1]

    expected = 0.5 * (ld([0, 2]) + ld([1, 2]) - ld([0, 1, 2]) - ld([2]))
    e = conditional_mutual_information(x, y, z, method="gaussian")
    assert e.value == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("method", ["vasicek", "ebrahimi"])
def test_spacing_matches_scipy(rng, method):
    x = rng.gamma(2.0, size=700)
    ref = stats.differential_entropy(x, method=method)
    assert entropy(x, method=method).value == pytest.approx(ref, rel=1e-10)
    ref5 = stats.differential_entropy(x, method=method, window_length=5)
    assert entropy(x, method=method, window=5).value == pytest.approx(ref5, rel=1e-10)


SCIPY_NAME = {"vasicek": "vasicek", "ebrahimi": "ebrahimi", "van_es": "van es",
              "correa": "correa"}


@pytest.mark.parametrize("method", ["van_es", "correa"])
@pytest.mark.parametrize("sample", ["normal50", "exp2000", "uniform7", "t333", "gamma700"])
def test_van_es_correa_match_scipy(method, sample):
    rng = np.random.default_rng(11)
    x = {"normal50": lambda: rng.normal(size=50),
         "exp2000": lambda: 3 * rng.exponential(size=2000),
         "uniform7": lambda: rng.uniform(size=7),
         "t333": lambda: rng.standard_t(3, size=333),
         "gamma700": lambda: rng.gamma(2.0, size=700)}[sample]()
    ref = stats.differential_entropy(x, method=SCIPY_NAME[method])
    e = entropy(x, method=method)
    assert e.value == pytest.approx(ref, rel=1e-12)
    assert e.method == method and e.n == x.shape[0] and e.ci_low < e.value < e.ci_high
    assert math.isfinite(e.stderr)
    if x.shape[0] > 10:
        ref5 = stats.differential_entropy(x, method=SCIPY_NAME[method], window_length=5)
        assert entropy(x, method=method, window=5).value == pytest.approx(ref5, rel=1e-12)


@pytest.mark.parametrize("method", ["vasicek", "ebrahimi", "van_es", "correa"])
def test_spacing_axis_matches_scipy(method):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(300, 4)) * np.array([1.0, 2.0, 3.0, 0.5]) + np.array([0, 1, 2, 3])
    ref = stats.differential_entropy(x, method=SCIPY_NAME[method], axis=0)
    out = entropy(x, method=method, axis=0)
    assert out.shape == (4,)
    np.testing.assert_allclose([e.value for e in out], ref, rtol=1e-12)
    ref1 = stats.differential_entropy(x.T, method=SCIPY_NAME[method], axis=1)
    np.testing.assert_allclose([e.value for e in entropy(x.T, method=method, axis=1)], ref1,
                               rtol=1e-12)
    x3 = rng.gamma(2.0, size=(5, 120, 3))
    ref3 = stats.differential_entropy(x3, method=SCIPY_NAME[method], axis=1)
    out3 = entropy(x3, method=method, axis=-2)
    assert out3.shape == (5, 3)
    np.testing.assert_allclose(np.vectorize(lambda e: e.value, otypes=[float])(out3), ref3,
                               rtol=1e-12)


def test_spacing_axis_errors():
    x = np.random.default_rng(0).normal(size=(40, 2))
    with pytest.raises(ValueError, match="method"):
        entropy(x, method="knn", axis=0)
    with pytest.raises(ValueError, match="axis"):
        entropy(x, method="correa", axis=2)
    with pytest.raises(ValueError, match="window"):
        entropy(x, method="van_es", window=20, axis=0)
    with pytest.raises(ValueError, match="1-D"):
        entropy(x, method="correa")


def test_auto_1d_is_ebrahimi_and_consistent():
    rng = np.random.default_rng(4)
    x = rng.normal(size=4000)
    e = entropy(x)
    assert e.method == "ebrahimi"
    assert abs(e.value - 0.5 * math.log(2 * math.pi * math.e)) < 4 * e.stderr


def test_spacing_bootstrap_half_sampling(rng):
    x = rng.normal(size=1000)
    e = entropy(x, method="vasicek", ci="bootstrap", n_boot=40, seed=3)
    assert e.details["bootstrap"] == "half-sampling"
    assert e == entropy(x, method="vasicek", ci="bootstrap", n_boot=40, seed=3)
    assert e.ci_low < e.value < e.ci_high


def test_independent_gaussian_interval_contains_zero():
    hits = 0
    for s in range(30):
        rng = np.random.default_rng(50 + s)
        e = conditional_mutual_information(rng.normal(size=300), rng.normal(size=300),
                                           rng.normal(size=300), method="gaussian")
        hits += e.ci_low <= 0 <= e.ci_high
    assert hits >= 27


def test_gaussian_bias_correction_is_exact_wishart_bias():
    from divergences.estimate._mi import gaussian_bias

    # about d_x d_y / (2n) for large n
    assert gaussian_bias(100_000, 3, 4) == pytest.approx(12 / 200_000, rel=1e-3)
    # Monte Carlo at independence: the corrected estimate is unbiased in high dimension
    vals = [mutual_information(np.random.default_rng(s).normal(size=(200, 10)),
                               np.random.default_rng(100 + s).normal(size=(200, 10)),
                               method="gaussian").raw_value for s in range(40)]
    assert gaussian_bias(200, 10, 10) > 0.25
    assert abs(np.mean(vals)) < 4 * np.std(vals) / math.sqrt(40)
