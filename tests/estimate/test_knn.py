"""Nearest-neighbour estimators: closed forms, scikit-learn, invariances, ties, seeds."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from divergences.estimate import conditional_mutual_information, entropy, mutual_information


def _binormal(seed, n, rho):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x, rho * x + math.sqrt(1 - rho**2) * rng.normal(size=n)


RHO = 0.8
TRUE_MI = -0.5 * math.log(1 - RHO**2)


@pytest.mark.parametrize("method", ["ksg", "ksg2", "mixed"])
def test_gaussian_mi_closed_form(method):
    x, y = _binormal(0, 3000, RHO)
    e = mutual_information(x, y, method=method)
    # 4 standard errors: the interval is the estimator's own claim about its accuracy
    assert abs(e.value - TRUE_MI) < 4 * e.stderr, e


def test_multivariate_ksg():
    rng = np.random.default_rng(1)
    n = 3000
    x = rng.normal(size=(n, 2))
    y = 0.6 * x + 0.8 * rng.normal(size=(n, 2))  # two independent pairs with rho = 0.6
    truth = -math.log(1 - 0.36)
    e = mutual_information(x, y, method="ksg")
    assert abs(e.value - truth) < 4 * e.stderr, e


def test_uniform_noise_closed_form():
    # X ~ U(0, 1), Y = X + U(-e, e), e <= 1/2: I = e - log(2 e) (Beyond Normal's additive noise)
    eps = 0.5
    truth = eps - math.log(2 * eps)
    rng = np.random.default_rng(2)
    x = rng.uniform(size=3000)
    e = mutual_information(x, x + rng.uniform(-eps, eps, size=3000))
    assert e.method == "ksg"
    # KSG is biased down at the sharp edges of uniform densities (about 0.03 nats here)
    assert abs(e.value - truth) < 4 * e.stderr + 0.05, e


def test_matches_sklearn_regression():
    sk = pytest.importorskip("sklearn.feature_selection")
    for seed in range(2):
        x, y = _binormal(seed, 1000, 0.5)
        ours = mutual_information(x, y, method="ksg", k=3).value
        ref = sk.mutual_info_regression(x[:, None], y, n_neighbors=3, random_state=0)[0]
        # sklearn standardises and adds 1e-10 noise too: the neighbour counts agree
        assert ours == pytest.approx(ref, abs=1e-6)


def test_ross_matches_sklearn_classif():
    sk = pytest.importorskip("sklearn.feature_selection")
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 1500)
    y = labels + rng.normal(size=1500)
    ours = mutual_information(labels, y, k=3)
    assert ours.method == "ross"
    ref = sk.mutual_info_classif(y[:, None], labels, n_neighbors=3, random_state=0)[0]
    assert ours.value == pytest.approx(ref, abs=1e-6)
    assert mutual_information(y, labels, k=3).value == ours.value  # symmetric


def test_ross_closed_form():
    # X uniform on {0..3}, Y | X ~ U(X, X + 2): I = 1.25 log 2
    rng = np.random.default_rng(6)
    x = rng.integers(0, 4, 4000)
    e = mutual_information(x, x + rng.uniform(0, 2, 4000))
    assert abs(e.value - 1.25 * math.log(2)) < 4 * e.stderr, e


def test_mixed_on_discrete_and_continuous_data():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 4, 3000)
    b = (a + rng.integers(0, 2, 3000)) % 4
    # purely discrete: the plug-in value
    m = mutual_information(a.astype(float), b.astype(float), method="mixed")
    d = mutual_information(a, b, method="discrete")
    assert m.value == pytest.approx(d.details["plugin"], abs=0.01)
    assert abs(m.value - math.log(2)) < 0.02


def test_auto_rule():
    rng = np.random.default_rng(8)
    x, y = _binormal(8, 500, 0.5)
    ints = rng.integers(0, 3, 500)
    # Gaussian dependence: the copula value is kept; KSG is computed alongside
    e = mutual_information(x, y)
    assert e.method == "gaussian_copula"
    assert set(e.details["auto"]) == {"ksg", "gaussian_copula", "gap", "threshold"}
    # the interval is the union of the copula and KSG intervals
    k = mutual_information(x, y, method="ksg")
    c = mutual_information(x, y, method="gaussian_copula")
    assert e.value == c.value and e.ci_method == "union"
    assert e.ci_low == min(k.ci_low, c.ci_low) and e.ci_high == max(k.ci_high, c.ci_high)
    assert mutual_information(x, y, base=2).value == pytest.approx(c.value / np.log(2))
    # non-Gaussian dependence (y determined by |x|: zero correlation): KSG is kept
    u = rng.normal(size=2000)
    v = np.abs(u) + 0.1 * rng.normal(size=2000)
    assert mutual_information(u, v).method == "ksg"
    assert mutual_information(ints, ints).method == "discrete"
    assert mutual_information(ints, y).method == "ross"
    # an atom among continuous values: ties broken at the data's resolution, then the
    # continuous rule (Gao's "mixed" read +0.027 nats high on a zero-inflated binormal)
    zero_inflated = np.where(rng.random(500) < 0.3, 0.0, y)
    e = mutual_information(x, zero_inflated)
    assert e.method in ("ksg", "gaussian_copula") and e.details["y_dequantized"]
    # a float column with few distinct values is coded as a discrete variable
    assert mutual_information(ints.astype(float), y).method == "ross"
    assert mutual_information(ints.astype(float), ints).method == "discrete"
    wide = rng.normal(size=(40, 6))
    assert mutual_information(wide[:, :3], wide[:, 3:]).method == "gaussian_copula"


def test_ksg_near_invariant_under_monotone_maps():
    x, y = _binormal(9, 3000, RHO)
    a = mutual_information(x, y, method="ksg")
    b = mutual_information(np.exp(x), y**3, method="ksg")
    assert abs(a.value - b.value) < 4 * max(a.stderr, b.stderr)
    assert abs(b.value - TRUE_MI) < 4 * b.stderr


def test_ksg_exactly_invariant_under_affine_maps():
    x, y = _binormal(10, 1000, 0.5)
    a = mutual_information(x, y, method="ksg").value
    assert mutual_information(3 * x - 7, -0.01 * y + 2, method="ksg").value == pytest.approx(
        a, abs=1e-12)


@pytest.mark.parametrize("method,least", [("ksg", 25), ("ksg2", 24), ("mixed", 25),
                                          ("gaussian", 27), ("gaussian_copula", 27),
                                          ("binned", 27)])
def test_independence_interval_contains_zero(method, least):
    """Nominal 95% over 30 seeds. The kNN local-term intervals are documented to cover
    83-92%, so they must reach 24-25 of 30; the others 27 of 30 (P(< 27) = 6% at 95%)."""
    hits = 0
    for s in range(30):
        rng = np.random.default_rng(200 + s)
        e = mutual_information(rng.normal(size=400), rng.normal(size=400), method=method)
        hits += e.ci_low <= 0 <= e.ci_high
    assert hits >= least, (method, hits)


def test_bootstrap_interval_covers_independence():
    hits = 0
    for s in range(10):
        rng = np.random.default_rng(400 + s)
        e = mutual_information(rng.normal(size=300), rng.normal(size=300), method="ksg2",
                               ci="bootstrap", n_boot=30, seed=s)
        hits += e.ci_low <= 0 <= e.ci_high
    assert hits >= 9


def test_reproducible_with_seed_and_ties():
    rng = np.random.default_rng(11)
    x = np.round(rng.normal(size=800), 1)  # many ties: the jitter rule is exercised
    y = np.round(x + rng.normal(size=800), 1)
    a = mutual_information(x, y, method="ksg", seed=5)
    assert a == mutual_information(x, y, method="ksg", seed=5)
    b = mutual_information(x, y, method="ksg", seed=6)
    assert a.value != b.value  # the tie-breaking noise depends on the seed ...
    assert abs(a.value - b.value) < a.stderr  # ... but only a little
    # without ties the noise is not added at all, so the seed plays no part
    u, v = _binormal(12, 500, 0.3)
    assert mutual_information(u, v, seed=1).value == mutual_information(u, v, seed=2).value


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=8, max_size=40),
       st.sampled_from(["ksg", "ksg2", "mixed"]))
def test_never_nan_or_inf_with_heavy_ties(values, method):
    x = np.array(values, dtype=float)
    y = np.roll(x, 1)
    e = mutual_information(x, y, method=method, k=3)
    assert np.isfinite(e.value) and np.isfinite(e.stderr)


def test_gaussian_entropy_knn_closed_form():
    rng = np.random.default_rng(13)
    cov = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 0.5]])
    x = rng.multivariate_normal(np.zeros(3), cov, size=3000)
    truth = 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * cov))
    e = entropy(x, method="knn")
    assert abs(e.value - truth) < 4 * e.stderr, e
    assert entropy(x).method == "knn"


def test_knn_entropy_scaling_is_exact():
    rng = np.random.default_rng(14)
    x = rng.normal(size=(500, 2))
    a = entropy(x, method="knn").value
    assert entropy(5 * x + 1, method="knn").value == pytest.approx(a + 2 * math.log(5),
                                                                   abs=1e-10)


def test_frenzel_pompe_closed_form():
    rng = np.random.default_rng(15)
    n = 3000
    z = rng.normal(size=n)
    x = z + rng.normal(size=n)
    y = x + z + rng.normal(size=n)  # given z: I(e1; e1 + e2) = log(2) / 2
    e = conditional_mutual_information(x, y, z)
    assert e.method == "ksg"
    assert abs(e.value - 0.5 * math.log(2)) < 4 * e.stderr, e
    g = conditional_mutual_information(x, y, z, method="gaussian")
    assert abs(g.value - 0.5 * math.log(2)) < 4 * g.stderr, g


def test_cmi_independent_given_z_contains_zero():
    hits = 0
    for s in range(10):
        rng = np.random.default_rng(300 + s)
        z = rng.normal(size=800)
        e = conditional_mutual_information(z + rng.normal(size=800), z + rng.normal(size=800), z)
        hits += e.ci_low <= 0 <= e.ci_high
    assert hits >= 8


def test_stratified_cmi_with_discrete_z():
    rng = np.random.default_rng(16)
    n = 3000
    z = rng.integers(0, 3, n)
    x = z + rng.normal(size=n)
    y = x + z + rng.normal(size=n)
    e = conditional_mutual_information(x, y, z)
    assert e.details["stratified"] and e.details["dropped"] == 0
    assert abs(e.value - 0.5 * math.log(2)) < 4 * e.stderr, e


def test_ksg_half_sampling_bootstrap():
    x, y = _binormal(17, 2000, RHO)
    e = mutual_information(x, y, method="ksg", ci="bootstrap", n_boot=40, seed=0)
    assert e.details["bootstrap"] == "half-sampling"
    assert e.ci_low < TRUE_MI < e.ci_high


def test_large_sample_runs():
    # a 100,000-pair KSG stays cheap (no O(n^2) memory); speed is measured in benchmarks/
    x, y = _binormal(18, 100_000, 0.5)
    e = mutual_information(x, y, method="ksg")
    assert abs(e.value - (-0.5 * math.log(0.75))) < 4 * e.stderr + 0.005


def test_default_interval_is_bias_aware_for_neighbour_methods():
    x, y = _binormal(30, 600, RHO)
    e = mutual_information(x, y, method="ksg")
    assert e.ci_method == "bias_aware"
    assert e == mutual_information(x, y, method="ksg", ci="bias_aware")
    n = mutual_information(x, y, method="ksg", ci="normal")
    assert n.ci_method == "normal" and n.value == e.value
    # the interval contains the local-term one, widened on the side of the estimated bias
    b = e.details["bias_estimate"]
    assert e.ci_low <= e.value - 1.95 * e.stderr and e.ci_high >= e.value + 1.95 * e.stderr
    if b < 0:
        assert e.ci_high - e.value > e.value - e.ci_low
    assert e.details["local_stderr"] == pytest.approx(n.stderr)
    # methods without a neighbour bias keep the normal interval by default
    assert mutual_information(x, y, method="gaussian").ci_method == "normal"
    ints = np.random.default_rng(0).integers(0, 3, (600, 2))
    # the discrete estimator's own interval: the union around its two bias corrections
    assert mutual_information(ints[:, 0], ints[:, 1]).ci_method == "union"
    d = mutual_information(ints[:, 0], ints[:, 1], ci="bias_aware")
    assert d.ci_method == "bias_aware" and np.isfinite(d.details["bias_estimate"])
    # too few rows for half-samples: the default falls back to the normal interval
    assert mutual_information(x[:7], y[:7], method="ksg").ci_method == "normal"
    with pytest.raises(ValueError, match="half-samples need n // 2 > k"):
        mutual_information(x[:7], y[:7], method="ksg", ci="bias_aware")


def test_bias_aware_interval_covers_a_strongly_biased_task():
    # the benchmark's spiral task at n = 1000: KSG is about -0.15 nats low, the local-term
    # interval misses almost always; the bias-aware one widens upwards by b_hat
    rng = np.random.default_rng(5)
    chol = np.linalg.cholesky(np.array([[1, 0, .8, 0], [0, 1, 0, .8], [.8, 0, 1, 0],
                                        [0, .8, 0, 1.0]]))
    z = rng.normal(size=(1000, 4)) @ chol.T
    x, y = z[:, :2], z[:, 2:]
    a = 1.5 * np.linalg.norm(x, axis=1)
    x = np.stack([np.cos(a) * x[:, 0] - np.sin(a) * x[:, 1],
                  np.sin(a) * x[:, 0] + np.cos(a) * x[:, 1]], axis=1)
    truth = -math.log(1 - 0.64)
    e = mutual_information(x, y, method="ksg", seed=0)
    n = mutual_information(x, y, method="ksg", ci="normal", seed=0)
    assert n.ci_high < truth  # the sampling interval misses
    assert e.details["bias_estimate"] < -0.05 and e.ci_low <= truth <= e.ci_high


def test_ci_choices_and_auto_pick_independent_of_ci():
    x, y = _binormal(31, 500, 0.5)
    picks = {mutual_information(x, y, ci=c).method for c in ("auto", "normal", "bias_aware")}
    assert picks == {"gaussian_copula"}
    with pytest.raises(ValueError, match="ci must be one of"):
        conditional_mutual_information(x, y, x, ci="exact")
    cm = conditional_mutual_information(x, y, np.random.default_rng(0).normal(size=500),
                                        ci="bias_aware")
    assert cm.ci_method == "bias_aware"
    with pytest.raises(ValueError, match="ci='normal' only"):
        mutual_information(x, y, method="infonce", ci="bias_aware")


def test_knn_entropy_default_interval_is_bias_aware():
    z = np.random.default_rng(6).normal(size=(800, 3))
    e = entropy(z, method="knn")
    n = entropy(z, method="knn", ci="normal")
    assert e.ci_method == "bias_aware" and n.ci_method == "normal" and e.value == n.value
    assert e.details["bias_method"] == "neighbour_ladder"
    lo, hi = e.details["ladder_values"]
    assert lo == pytest.approx(entropy(z, method="knn", k=6, ci="normal").value, rel=1e-12)
    assert hi == pytest.approx(entropy(z, method="knn", k=12, ci="normal").value, rel=1e-12)
    truth = 0.5 * 3 * math.log(2 * math.pi * math.e)
    assert e.ci_low <= truth <= e.ci_high
    # the corrected methods keep the normal interval by default; the uncorrected ones
    # (plug-in, Vasicek, KDE) get the bias-aware one from half samples
    assert entropy(z[:, 0], method="ebrahimi").ci_method == "normal"
    assert entropy(z[:, 0], method="vasicek").details["bias_method"] == "half_samples"
    ints = np.random.default_rng(1).integers(0, 4, 200)
    assert entropy(ints, method="plugin").ci_method == "bias_aware"
    assert entropy(ints, method="miller_madow").ci_method == "normal"
    h = entropy(z[:, 0], method="vasicek", ci="bias_aware")
    assert h.details["bias_method"] == "half_samples"
    d = entropy(np.random.default_rng(0).integers(0, 5, 300), method="plugin", ci="bias_aware")
    assert d.ci_method == "bias_aware" and d.details["bias_estimate"] < 0.05
    with pytest.raises(ValueError, match="half-samples"):
        entropy(z[:6, :1], method="knn", ci="bias_aware")
