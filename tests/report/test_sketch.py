"""divergences.report._sketch: merging partition sketches equals sketching the concatenation;
grid measures stay within their stated error bounds of the exact sample values."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from divergences.report._columns import adaptive_edges, bin_codes, n_bins
from divergences.report._sketch import (
    DISTINCT_CAP,
    CategoricalSketch,
    NumericSketch,
    grid,
    histogram,
    ks_from_histograms,
    quantile_edges,
    wasserstein_from_histograms,
)

# Values with few distinct entries (exercises the distinct-count cap) or continuous ones,
# NaN for missing.
_value = st.one_of(st.sampled_from([0.0, 1.0, 2.0, -3.0, 0.5, math.nan]),
                   st.floats(-1e3, 1e3, allow_nan=False, width=32))
_parts = st.lists(st.lists(_value, max_size=30), min_size=1, max_size=6)


def _split(values, cuts):
    return np.split(values, sorted(cuts))


@settings(max_examples=50, deadline=None)
@given(_parts)
def test_numeric_merge_equals_one_shot(parts):
    arrays = [np.array(p, dtype=np.float64) for p in parts]
    merged = NumericSketch.of(arrays[0])
    for a in arrays[1:]:
        merged = merged.merge(NumericSketch.of(a))
    whole = np.concatenate(arrays)
    one = NumericSketch.of(whole)
    assert merged == one
    assert (merged.n, merged.missing) == (int((~np.isnan(whole)).sum()), int(np.isnan(whole).sum()))
    x = whole[~np.isnan(whole)]
    if x.size:
        assert merged.minimum == x.min() and merged.maximum == x.max()
        assert merged.mean == pytest.approx(x.mean(), rel=1e-9, abs=1e-9)
        assert merged.variance == pytest.approx(x.var(), rel=1e-7, abs=1e-6)
        distinct = np.unique(x)
        if distinct.size <= DISTINCT_CAP:
            assert merged.distinct == {float(v): int((x == v).sum()) for v in distinct}
        else:
            assert merged.distinct is None
    else:
        assert math.isnan(merged.mean) and math.isnan(merged.variance)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["a", "b", "zz", "é", None]), max_size=20),
                min_size=1, max_size=6))
def test_categorical_merge_equals_one_shot(parts):
    arrays = [np.array(p, dtype=object) for p in parts]
    merged = CategoricalSketch.of(arrays[0])
    for a in arrays[1:]:
        merged = merged.merge(CategoricalSketch.of(a))
    whole = [v for p in parts for v in p]
    assert merged == CategoricalSketch.of(np.array(whole, dtype=object))
    assert merged.missing == whole.count(None)
    assert merged.counts == {k: whole.count(k) for k in set(whole) - {None}}


@settings(max_examples=50, deadline=None)
@given(_parts, st.integers(1, 40))
def test_histogram_merge_equals_one_shot_and_bin_codes(parts, bins):
    arrays = [np.array(p, dtype=np.float64) for p in parts]
    whole = np.concatenate(arrays)
    x = whole[~np.isnan(whole)]
    if x.size == 0:
        return
    edges = grid(float(x.min()), float(x.max()), bins)
    merged = sum(histogram(a, edges) for a in arrays)
    assert np.array_equal(merged, histogram(whole, edges))
    k = max(edges.size - 1, 1)
    assert np.array_equal(merged, np.bincount(bin_codes(x, edges), minlength=k))
    assert merged.sum() == x.size


def test_grid_and_errors():
    assert grid(-1.0, 1.0, 2).tolist() == [-1.0, 0.0, 1.0]
    assert histogram(np.array([5.0, 5.0]), grid(5.0, 5.0, 8)).tolist() == [2]
    for lo, hi, bins in ((1.0, 0.0, 3), (0.0, math.inf, 3), (math.nan, 1.0, 3), (0.0, 1.0, 0)):
        with pytest.raises(ValueError, match="grid|bins"):
            grid(lo, hi, bins)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(20, 400), st.integers(20, 400),
       st.sampled_from([64, 512, 4096]))
def test_grid_measures_within_their_bounds(seed, n, m, bins):
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0, 1.0, n)
    c = np.round(rng.standard_t(3, m) + 0.3, 1)  # ties and a heavier tail
    pooled = np.concatenate([r, c])
    g = grid(float(pooled.min()), float(pooled.max()), bins)
    h = g[1] - g[0]
    hr, hc = histogram(r, g), histogram(c, g)
    w, w_err = wasserstein_from_histograms(g, hr, hc)
    exact_w = stats.wasserstein_distance(r, c)
    assert abs(w - exact_w) <= w_err + 1e-9
    assert h - 1e-12 <= w_err <= 2 * h + 1e-12
    ks, ks_err = ks_from_histograms(hr, hc)
    exact_ks = stats.ks_2samp(r, c).statistic
    assert ks <= exact_ks + 1e-12 <= ks + ks_err + 1e-12


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(30, 500), st.integers(30, 500))
def test_quantile_edges_snap_to_the_grid_near_the_exact_quantiles(seed, n, m):
    rng = np.random.default_rng(seed)
    pooled = np.concatenate([rng.normal(0, 1, n), rng.gamma(2.0, 1.0, m)])
    g = grid(float(pooled.min()), float(pooled.max()), 4096)
    h = g[1] - g[0]
    bins = n_bins(min(n, m))
    counts = histogram(pooled, g)
    edges = quantile_edges(g, counts, bins)
    assert np.all(np.isin(edges, g)) and edges[0] == g[0] and edges[-1] == g[-1]
    exact = adaptive_edges(pooled, bins)
    assert edges.size == exact.size
    # the order statistics around each quantile are at most one rank apart, so the snapped
    # edge is within the grid bin of one of them (2h) or their gap
    sorted_ = np.sort(pooled)
    for e, q in zip(edges[1:-1], np.linspace(0, 1, bins + 1)[1:-1]):
        pos = q * (pooled.size - 1)
        lo = sorted_[max(int(pos) - 1, 0)]
        hi = sorted_[min(int(pos) + 2, pooled.size - 1)]
        assert lo - 2 * h <= e <= hi + 2 * h
    # counts on the snapped edges are sums of grid counts and equal the raw-data counts
    code = np.searchsorted(edges[1:-1], g[:-1], side="right")
    via_grid = np.bincount(code, weights=counts, minlength=edges.size - 1)
    direct = np.bincount(bin_codes(pooled, edges), minlength=edges.size - 1)
    assert np.array_equal(via_grid, direct)


def test_quantile_edges_point_masses_merge():
    g = grid(0.0, 1.0, 100)
    values = np.concatenate([np.zeros(90), np.linspace(0.5, 1.0, 10)])
    edges = quantile_edges(g, histogram(values, g), 5)
    assert edges.tolist() == np.unique(edges).tolist()
    assert edges[0] == 0.0 and edges[-1] == 1.0 and edges.size < 6
    assert quantile_edges(np.array([2.0]), np.array([7]), 5).tolist() == [2.0]
