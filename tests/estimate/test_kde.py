"""KDE entropy/MI: Gaussian closed forms, leave-one-out likelihood bandwidth, regime warning."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from divergences.estimate import entropy, mutual_information
from divergences.estimate._kde import loo_log_density, regime, select_bandwidth, tilt_rate


def test_loo_log_density_matches_brute_force():
    z = np.random.default_rng(0).normal(size=(40, 2))
    hs = np.array([0.3, 1.1])
    got = loo_log_density(z, hs)
    for t, h in enumerate(hs):
        for i in range(40):
            others = np.delete(z, i, axis=0)
            dens = np.mean(stats.multivariate_normal(z[i], h * h * np.eye(2)).pdf(others))
            assert got[t, i] == pytest.approx(math.log(dens), rel=1e-9)


def test_bandwidth_maximises_loo_likelihood():
    z = np.random.default_rng(1).normal(size=(300, 1))
    h = select_bandwidth(z)
    ll = lambda b: loo_log_density(z, np.array([b]))[0].sum()  # noqa: E731
    assert ll(h) >= ll(0.8 * h) and ll(h) >= ll(1.25 * h)


@pytest.mark.parametrize("d", [1, 2])
def test_gaussian_entropy_closed_form(d):
    rng = np.random.default_rng(2 + d)
    cov = np.array([[2.0, 0.6], [0.6, 1.0]])[:d, :d]
    z = rng.multivariate_normal(np.zeros(d), cov, size=800)
    truth = 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * cov))
    e = entropy(z, method="kde")
    assert e.method == "kde" and e.details["regime"] == "clt"
    assert abs(e.value - truth) < 4 * e.stderr + 0.03


def test_gaussian_mi_closed_form_and_independence():
    rng = np.random.default_rng(5)
    x = rng.normal(size=500)
    y = 0.8 * x + 0.6 * rng.normal(size=500)
    e = mutual_information(x, y, method="kde")
    assert abs(e.value - 0.5108) < 4 * e.stderr + 0.03
    assert set(e.details["bandwidth"]) == {"x", "y", "xy"}
    # at independence the separately smoothed densities leave a small negative bias
    # (documented): -0.026 here
    ind = mutual_information(rng.normal(size=300), rng.normal(size=300), method="kde")
    assert -0.06 < ind.value < 0.02


def test_kde_bootstrap_interval():
    rng = np.random.default_rng(6)
    x = rng.normal(size=300)
    e = mutual_information(x, x + rng.normal(size=300), method="kde", ci="bootstrap",
                           n_boot=5, seed=1)
    assert e.ci_method == "bootstrap" and e.ci_low < e.value < e.ci_high


def test_regime_rates_and_warning():
    # the tilt rate falls with the bandwidth, to 0 for a flat kernel
    hs = np.geomspace(0.05, 20, 30)
    rates = [tilt_rate(h) for h in hs]
    assert bool(np.all(np.diff(rates) < 0))
    assert tilt_rate(1e4) == pytest.approx(0.0, abs=1e-6)
    assert regime(10**6, 1, 0.2)[0] == "clt"
    assert regime(100, 100, 0.1)[0] == "extreme_value"
    z = np.random.default_rng(7).normal(size=(200, 40))
    with pytest.warns(UserWarning, match="extreme-value regime"):
        e = entropy(z, method="kde")
    assert e.details["regime"] == "extreme_value"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        entropy(np.random.default_rng(8).normal(size=(200, 1)), method="kde")


def test_errors():
    with pytest.raises(TypeError, match="method='kde' needs float"):
        mutual_information(np.arange(50), np.arange(50.0), method="kde")
    with pytest.raises(ValueError, match="at least 3 samples"):
        entropy(np.array([0.0, 1.0]), method="kde")
    with pytest.raises(ValueError, match="contains NaN"):
        entropy(np.array([0.0, np.nan, 1.0]), method="kde")


def test_kde_entropy_default_interval_is_bias_aware_with_reselected_bandwidths():
    # uniform square: the Gaussian kernel leaks mass over the edges, the estimate is about
    # 0.1 nats high at n = 1000; the half samples (bandwidth re-selected) reveal it
    x = np.random.default_rng(0).uniform(size=(1000, 2))
    e = entropy(x, "kde")
    n = entropy(x, "kde", ci="normal")
    assert e.ci_method == "bias_aware" and e.value == n.value
    assert e.details["bias_method"] == "half_samples" and e.details["bias_rate"] == 0.25
    assert e.details["bias_estimate"] > 0.05
    assert n.ci_low > 0.0 and e.ci_low <= 0.0 <= e.ci_high  # truth 0: only the new one covers
    assert entropy(x[:11], "kde").ci_method == "normal"
