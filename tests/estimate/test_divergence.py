"""KL (Wang-Kulkarni-Verdu) and JS divergences between samples."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from divergences.estimate import js, kl


def test_kl_gaussian_closed_form():
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, size=(4000, 1))
    y = rng.normal(1.0, 1.5, size=(5000, 1))
    truth = math.log(1.5) + (1.0 + 1.0) / (2 * 1.5**2) - 0.5
    e = kl(x, y)
    assert e.method == "knn" and e.details["m"] == 5000
    assert abs(e.value - truth) < 4 * e.stderr, e


def test_kl_two_dimensional():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6000, 2))
    y = rng.normal(0.5, 1.0, size=(6000, 2))
    e = kl(x, y)  # truth 0.25
    assert abs(e.value - 0.25) < 4 * e.stderr, e


def test_kl_direction_matters():
    rng = np.random.default_rng(2)
    narrow = rng.normal(0, 1.0, size=3000)
    wide = rng.normal(0, 1.5, size=3000)
    # KL(N(0, s1^2) || N(0, s2^2)) = log(s2 / s1) + s1^2 / (2 s2^2) - 1/2
    forward = math.log(1.5) + 1 / 4.5 - 0.5  # 0.128
    backward = math.log(1 / 1.5) + 2.25 / 2 - 0.5  # 0.220
    a, b = kl(narrow, wide), kl(wide, narrow)
    assert abs(a.value - forward) < 4 * a.stderr
    assert abs(b.value - backward) < 4 * b.stderr
    # (Much wider P than Q is out of reach at this n: KL then lives in the tails of Q, where
    # no Q sample lies, and every kNN estimate falls far short.)


def test_kl_correction_term_for_different_ranks():
    rng = np.random.default_rng(3)
    x = rng.normal(size=3000)
    y = rng.normal(1.0, 1.0, size=3000)
    e = kl(x, y, k=1, k_x=4)
    assert e.details["k_x"] == 4
    assert abs(e.value - 0.5) < 4 * e.stderr, e


def test_kl_same_distribution_contains_zero():
    hits = 0
    for s in range(20):
        rng = np.random.default_rng(10 + s)
        e = kl(rng.normal(size=500), rng.normal(size=500))
        hits += e.ci_low <= 0 <= e.ci_high
    assert hits >= 17


def test_kl_invariant_under_a_common_affine_map(rng):
    x, y = rng.normal(size=(500, 2)), rng.normal(0.3, 1.0, size=(600, 2))
    a = kl(x, y).value
    assert kl(4 * x - 1, 4 * y - 1).value == pytest.approx(a, abs=1e-9)


def test_kl_clip_and_bootstrap(rng):
    x, y = rng.normal(size=400), rng.normal(size=400)
    e = kl(x, y, clip=True)
    assert e.value >= 0 and e.ci_low >= 0
    b = kl(x, y, ci="bootstrap", n_boot=30, seed=1)
    assert b == kl(x, y, ci="bootstrap", n_boot=30, seed=1)
    assert b.ci_method == "bootstrap" and b.ci_low <= b.value < b.ci_high
    assert b.raw_value == b.details["unclipped_value"]


def _js_numeric(p, q):
    def f(t):
        a, b = p.pdf(t), q.pdf(t)
        m = 0.5 * (a + b)
        return 0.5 * a * np.log(a / m) + 0.5 * b * np.log(b / m)
    return integrate.quad(f, -15, 16)[0]


def test_js_gaussians_numeric_truth():
    truth = _js_numeric(stats.norm(0, 1), stats.norm(1, 1))  # 0.1114
    rng = np.random.default_rng(4)
    e = js(rng.normal(0, 1, 4000), rng.normal(1, 1, 4000))
    assert e.details["beta"] == 0.5
    assert abs(e.value - truth) < 4 * e.stderr, (e, truth)


def test_js_bounds():
    rng = np.random.default_rng(5)
    far = js(rng.normal(0, 1, 1000), rng.normal(100, 1, 1000))
    assert far.value == pytest.approx(math.log(2), abs=0.01)
    same = js(rng.normal(size=1000), rng.normal(size=1000))
    assert same.ci_low <= 0 <= same.ci_high
    unequal = js(rng.normal(size=300), rng.normal(size=900), base=2)
    assert unequal.details["beta"] == 0.25 and unequal.units == "bits"


def test_kl_default_interval_is_bias_aware_with_the_neighbour_ladder():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 2))
    y = rng.normal(size=(600, 2)) + np.array([1.0, 0.0])
    e = kl(x, y)
    n = kl(x, y, ci="normal")
    assert e.ci_method == "bias_aware" and n.ci_method == "normal"
    assert e.value == n.value
    assert e.details["bias_method"] == "neighbour_ladder"
    # the rungs are the estimator with 2 and 4 neighbours on both sides
    lo, hi = e.details["ladder_values"]
    assert lo == kl(x, y, k=2, k_x=2, ci="normal").value
    assert hi == kl(x, y, k=4, k_x=4, ci="normal").value
    assert e.ci_low <= n.ci_low + 1e-12 or e.ci_high >= n.ci_high - 1e-12
    assert e.stderr >= n.stderr
    assert e == kl(x, y, ci="bias_aware")  # seeded: reproducible
    # too few rows for 4k neighbours: the normal interval by default
    assert kl(x[:5], y[:5]).ci_method == "normal"
    with pytest.raises(ValueError, match="half-samples"):
        kl(x[:2], y[:2], ci="bias_aware")
