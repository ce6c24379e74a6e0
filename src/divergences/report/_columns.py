r"""Per-column measures between a reference sample and a current sample.

Numeric columns
    ``js``          Jensen-Shannon divergence (nats, in ``[0, ln 2]``) between the histograms of
                    the two samples on :data:`BINS` bins at the deciles of the pooled sample
                    (:func:`adaptive_edges`; repeated quantiles merge), through
                    :func:`divergences.js`. The number of bins does not grow with the row
                    count, so the value estimates the same quantity on 500 rows and on
                    5,000,000: the divergence between the two decile-binned distributions.
    ``wasserstein`` Wasserstein-1 distance in the units of the column
                    (:func:`divergences.transport.wasserstein_1d`).
    ``psi``         Population stability index ``sum_i (r_i - c_i) log(r_i / c_i)`` on the same
                    bins, which is Jeffreys' divergence ``KL(r||c) + KL(c||r)``
                    (:func:`divergences.jeffreys`) of the histograms smoothed with 0.5 added to
                    every bin count (so that an empty bin gives a finite value).
    ``ks``          Kolmogorov-Smirnov statistic ``sup_x |F_r(x) - F_c(x)|``
                    (:func:`scipy.stats.ks_2samp`).
    ``kl``          ``KL(reference || current)`` by the k-nearest-neighbour estimator
                    :func:`divergences.estimate.kl` with its defaults: the bias-aware
                    interval, ties broken at the data's resolution (``noise="auto"``),
                    floored at 0.

Categorical columns
    ``js``    Jensen-Shannon divergence of the category frequencies.
    ``tv``    Total variation distance (:func:`divergences.tv`), in ``[0, 1]``.
    ``chi2``  Pearson chi-square divergence ``sum_i (r_i - c_i)^2 / c_i``
              (:func:`divergences.chi2`) of the frequencies smoothed with 0.5 added to every
              category count.

**Point and interval, one procedure.** The plug-in value of a divergence between two samples
is biased upwards (two samples of one distribution give a positive value). Every measure but
``kl`` is reported *bias-corrected by the bootstrap*: with ``T`` the plug-in value and ``T*``
its ``n_boot`` bootstrap replicates (each sample resampled with replacement; bins and
categories held fixed), the value is ``T_bc = 2 T - mean(T*)`` and the interval is
``T_bc + quantiles(T* - mean(T*))`` at ``(1 - level) / 2`` and ``(1 + level) / 2``, widened
to contain ``T_bc`` if needed. ``kl`` takes the value and interval of
:func:`divergences.estimate.kl` (the neighbour estimator is already bias-corrected).
**Non-negative measures are never below zero**: a negative value or bound is set to 0 and
:attr:`Measure.clipped` says the point was (it also clips at the upper bound ``ln 2`` of
``js`` and ``1`` of ``ks`` and ``tv``). Two identical samples give exactly 0 everywhere.

**P-values** test ``H0``: both samples come from one distribution.

* ``ks``: :func:`scipy.stats.ks_2samp` (exact for small samples, asymptotic for large ones).
* categorical columns, when every expected count is at least 5 (Cochran's rule): the Pearson
  chi-square test of the ``2 x k`` table for ``tv`` and ``chi2``, the likelihood-ratio
  (G) test for ``js`` (whose statistic is ``2 N`` times the weighted JS divergence);
  otherwise the permutation tests below.
* ``js``, ``psi``, ``wasserstein`` of numeric columns: permutation tests (for ``js`` and
  ``psi``, a relabelling of the rows is drawn as the multivariate hypergeometric split of the
  pooled bin counts it amounts to, so its cost does not grow with the row count; for
  ``wasserstein`` a relabelling splits the copies of each distinct pooled value the same way,
  at most :data:`PERMUTATION_CELLS` distinct values x permutations in all), *adaptive in
  number*: ``permutations`` relabellings of the pooled rows, then ten times more (99, 999,
  9999, ...) while a measure has fewer than :data:`MIN_EXCEEDANCES` permuted statistics at
  least as large as the observed one, up to ``max_permutations``;
  ``p = (1 + #{null >= observed}) / (1 + B)``. When no permuted statistic reaches the
  observed one, ``p = 1 / (1 + B)`` is the *floor*: :attr:`Measure.p_floor` is set and the
  true p-value is at most that.
* ``kl`` has no p-value (NaN): a permutation test of the neighbour estimator costs a
  neighbour search per permutation and tests the same ``H0`` as ``ks``.

The permutation and bootstrap replicates of a numeric column are drawn as counts per distinct
pooled value (multivariate hypergeometric and multinomial, the distributions the row-level
draws have) and evaluated from cumulative counts over the sorted distinct values (one pass
per replicate, no sort): a replicate costs the number of distinct values, not of rows.

The **drift decision** of a column (:func:`decide`, run by :func:`divergences.report.compare`)
rests on one test per column, ``KS`` for numeric and ``chi-square`` for categorical columns,
and on Fisher's exact test of equal missing shares, Benjamini-Hochberg adjusted together.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "BINS",
    "CATEGORICAL_MEASURES",
    "NUMERIC_MEASURES",
    "ColumnResult",
    "Measure",
    "adaptive_edges",
    "bin_codes",
    "compare_categorical",
    "compare_numeric",
    "smoothed",
]

NUMERIC_MEASURES = ("js", "wasserstein", "psi", "ks", "kl")
CATEGORICAL_MEASURES = ("js", "tv", "chi2")
UNITS = {"js": "nats", "wasserstein": "column units", "psi": "nats", "ks": "probability",
         "kl": "nats", "tv": "probability", "chi2": "ratio"}
#: Upper bounds of the bounded measures (the bias-corrected value is clipped to them).
UPPER = {"js": math.log(2.0), "ks": 1.0, "tv": 1.0}
SMOOTHING = 0.5        # pseudo-count added to every bin for psi and chi2
#: Pooled-quantile bins of a numeric column (deciles), whatever the row count.
BINS = 10
#: Permutations are added until this many permuted statistics reach the observed one.
MIN_EXCEEDANCES = 10
#: Default ceiling of the adaptive number of permutations.
MAX_PERMUTATIONS = 9999


def permutation_cap(columns: int, alpha: float, maximum: int = MAX_PERMUTATIONS) -> int:
    """The most permutations a column needs: the first of 99, 999, 9999, ... whose floor
    ``1 / (1 + B)`` is at most ``alpha / columns``, so that a p-value at the floor survives
    the Benjamini-Hochberg adjustment over ``columns`` columns at level ``alpha``; never above
    ``maximum``. More would refine p-values that no decision depends on.

    >>> permutation_cap(30, 0.05), permutation_cap(120, 0.05), permutation_cap(1, 0.05)
    (999, 9999, 99)
    """
    b = 99
    while (b + 1) * alpha < columns and b < maximum:
        b = 10 * (b + 1) - 1
    return min(b, maximum)
#: Cochran's rule: asymptotic chi-square p-values when every expected count is at least this.
MIN_EXPECTED = 5.0
_CELLS = 4_000_000     # replicate x row cells per batch (bounds memory)
#: Permutations x distinct values at most for the Wasserstein permutation test (its time):
#: for a continuous column of a million rows per data set, the ``permutations`` asked for
#: and no more.
PERMUTATION_CELLS = 200_000_000


@dataclass(frozen=True)
class Measure:
    """One measure of one column: value, ``level`` interval, p-value and how they were made.

    ``value``, ``ci_low``, ``ci_high``: the (bias-corrected) estimate and its interval, with
    ``ci_low <= value <= ci_high`` always. ``pvalue``: the p-value of the test named by
    ``test`` (``"KS"``, ``"chi-square"``, ``"G-test"``, ``"permutation (999)"``; empty and
    NaN for ``kl``). ``qvalue``: the Benjamini-Hochberg adjusted p-value across the columns
    that have this measure (filled by :func:`divergences.report.compare`). ``clipped``: the
    estimate fell below 0 (or above the measure's upper bound) and was set to the bound, with
    the interval. ``p_floor``: a permutation p-value at its floor ``1 / (1 + B)``, no permuted
    statistic having reached the observed one (the true p-value is at most ``pvalue``).
    ``plugin``: the plug-in value before bias correction and clipping (the statistic the
    test was run on; for ``kl``, the estimator's value before clipping).
    """

    name: str
    value: float
    ci_low: float
    ci_high: float
    pvalue: float
    qvalue: float = math.nan
    units: str = ""
    clipped: bool = False
    p_floor: bool = False
    test: str = ""
    plugin: float = math.nan


@dataclass
class ColumnResult:
    """All measures of one column, the drift decision, and what is needed to draw it.

    ``n_reference``/``n_current``: present (non-missing) values compared;
    ``missing_reference``/``missing_current``: missing values, counted (their shares of the
    rows are :attr:`missing_share_reference` and :attr:`missing_share_current`).
    ``missing_pvalue``/``missing_qvalue``: Fisher's exact test that both data sets miss the
    same share (NaN when neither misses a value). ``drift``: the one-line decision;
    ``decided_by``: the test that made it, e.g. ``"KS q=0.003"``,
    ``"chi-square q=0.21"``, ``"missing 2.0% -> 15.0% q=1e-05"``; ``drift_test``,
    ``drift_pvalue``, ``drift_qvalue``: the column's distribution test (KS for numeric,
    chi-square for categorical columns) and its adjusted p-value. ``edges``: the bin edges
    (numeric) used by ``js`` and ``psi``; ``categories``: the sorted categories (categorical);
    ``reference_counts``/``current_counts``: the counts on those bins or categories.
    ``notes``: what could not be computed and why (e.g. an estimator that could not run).
    """

    name: str
    kind: str
    n_reference: int
    n_current: int
    missing_reference: int
    missing_current: int
    measures: dict[str, Measure]
    reference_counts: list[int]
    current_counts: list[int]
    edges: list[float] | None = None
    categories: list[str] | None = None
    plot: dict[str, Any] = field(default_factory=dict, repr=False)
    drift: bool = False
    decided_by: str = ""
    drift_test: str = ""
    drift_pvalue: float = math.nan
    drift_qvalue: float = math.nan
    missing_pvalue: float = math.nan
    missing_qvalue: float = math.nan
    notes: list[str] = field(default_factory=list)

    @property
    def missing_share_reference(self) -> float:
        """Share of the reference rows where the column is missing."""
        return _share(self.missing_reference, self.n_reference)

    @property
    def missing_share_current(self) -> float:
        """Share of the current rows where the column is missing."""
        return _share(self.missing_current, self.n_current)


def _share(missing: int, present: int) -> float:
    total = missing + present
    return missing / total if total else math.nan


def n_bins(n_min: int = 0) -> int:
    """Bins of a numeric column: :data:`BINS`, whatever the sample size (kept as a function
    for callers that pass it).

    >>> n_bins(212), n_bins(2_000_000)
    (10, 10)
    """
    del n_min
    return BINS


def adaptive_edges(pooled: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Quantile bin edges of the pooled sample; repeated quantiles (point masses) merge.

    >>> adaptive_edges(np.arange(10.0), 2).tolist()
    [0.0, 4.5, 9.0]
    >>> adaptive_edges(np.zeros(5), 4).tolist()
    [0.0]
    """
    return np.unique(np.quantile(pooled, np.linspace(0.0, 1.0, bins + 1)))


def bin_codes(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each value: ``len(edges) - 1`` bins (one bin if all edges coincide).

    Interior edges belong to the bin above them; values outside the edges go to the end bins.

    >>> bin_codes(np.array([0.0, 4.5, 9.0, 20.0]), np.array([0.0, 4.5, 9.0])).tolist()
    [0, 1, 1, 1]
    """
    return np.searchsorted(edges[1:-1], values, side="right")


def _counts(codes: np.ndarray, k: int) -> np.ndarray:
    """Batched bincount: ``codes`` (B, n) -> counts (B, k)."""
    b = codes.shape[0]
    flat = (codes + np.arange(b)[:, None] * k).ravel()
    return np.bincount(flat, minlength=b * k).reshape(b, k).astype(np.float64)


def smoothed(counts: np.ndarray) -> np.ndarray:
    """``(counts + 0.5) / (n + 0.5 k)`` along the last axis (add-one-half smoothing).

    >>> smoothed(np.array([1.0, 0.0])).tolist()
    [0.75, 0.25]
    """
    c = np.asarray(counts, dtype=np.float64) + SMOOTHING
    return c / c.sum(-1, keepdims=True)


def _probs(counts: np.ndarray) -> np.ndarray:
    return counts / counts.sum(-1, keepdims=True)


def _xlogy_ratio(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``sum p log(p / q)`` along the last axis with ``0 log 0 = 0`` (``q > 0`` where ``p > 0``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / np.where(q > 0, q, 1.0)), 0.0)
    return t.sum(-1)


def hist_measures(hr: np.ndarray, hc: np.ndarray, kind: str) -> dict[str, np.ndarray]:
    """Histogram measures of count vectors ``hr`` (B, k), ``hc`` (B, k) -> ``{name: (B,)}``:
    ``js`` and ``psi`` (numeric) or ``js``, ``tv``, ``chi2`` (categorical), clamped at 0.

    The formulas of :func:`divergences.js`, :func:`divergences.jeffreys`,
    :func:`divergences.tv` and :func:`divergences.chi2` in NumPy: thousands of replicates of a
    ten-bin histogram are computed in one call, where the library's torch dispatch would cost
    more than the arithmetic (the tests check both agree).

    >>> h = hist_measures(np.array([[3.0, 1.0]]), np.array([[1.0, 3.0]]), "categorical")
    >>> round(float(h["tv"][0]), 3), round(float(h["js"][0]), 4)
    (0.5, 0.1308)
    """
    hr, hc = np.atleast_2d(hr).astype(np.float64), np.atleast_2d(hc).astype(np.float64)
    pr, pc = _probs(hr), _probs(hc)
    mix = 0.5 * (pr + pc)
    out = {"js": np.maximum(0.5 * (_xlogy_ratio(pr, mix) + _xlogy_ratio(pc, mix)), 0.0)}
    if kind == "numeric":
        sr, sc = smoothed(hr), smoothed(hc)
        out["psi"] = np.maximum(((sr - sc) * np.log(sr / sc)).sum(-1), 0.0)
    else:
        out["tv"] = 0.5 * np.abs(pr - pc).sum(-1)
        sr, sc = smoothed(hr), smoothed(hc)
        out["chi2"] = np.maximum(((sr - sc) ** 2 / sc).sum(-1), 0.0)
    return out


# --------------------------------------------------------------------------------------------
# Estimates, intervals and p-values shared by both kinds of column
# --------------------------------------------------------------------------------------------


def bias_corrected(name: str, plugin: float, boot: np.ndarray,
                   level: float) -> tuple[float, float, float, bool]:
    """``(value, ci_low, ci_high, clipped)`` from a plug-in value and its bootstrap
    replicates: ``2 T - mean(T*)`` and the replicates' spread around it (module docstring).

    >>> bias_corrected("js", 0.0, np.array([0.01, 0.02, 0.03]), 0.9)
    (0.0, 0.0, 0.0, True)
    """
    boot = np.asarray(boot, dtype=np.float64)
    mean = float(boot.mean()) if boot.size else plugin
    value = 2.0 * plugin - mean
    a = (1.0 - level) / 2.0
    lo_dev, hi_dev = (np.quantile(boot - mean, [a, 1.0 - a]) if boot.size else (0.0, 0.0))
    lo, hi = min(value + float(lo_dev), value), max(value + float(hi_dev), value)
    return clip(name, value, lo, hi)


def clip(name: str, value: float, lo: float, hi: float) -> tuple[float, float, float, bool]:
    """Floor a non-negative measure (and its interval) at 0, cap a bounded one at its upper
    bound; ``clipped`` says whether the value itself moved.

    >>> clip("kl", -0.2, -0.5, 0.1)
    (0.0, 0.0, 0.1, True)
    """
    top = UPPER.get(name, math.inf)
    clipped = value < 0.0 or value > top
    value, lo, hi = (min(max(v, 0.0), top) for v in (value, lo, hi))
    return value, min(lo, value), max(hi, value), clipped


def _exceed(null: np.ndarray, observed: float) -> int:
    # statistics equal to the observed one up to rounding count as reaching it
    return int(np.count_nonzero(null >= observed - 1e-12 * max(1.0, abs(observed))))


def adaptive_permutation(observed: dict[str, float], draw: Callable[[int], dict[str, np.ndarray]],
                         start: int, maximum: int) -> dict[str, tuple[float, bool, int]]:
    """Permutation p-values of several statistics sharing their permutations, adaptive in
    number: ``start`` permutations, then 10 times more while a statistic has fewer than
    ``min(MIN_EXCEEDANCES, (B + 1) / 10)`` exceedances among the ``B`` so far, up to
    ``maximum``. ``draw(b)`` returns ``b`` more
    permuted values of every statistic. Result: ``{name: (pvalue, at_floor, B)}``.

    >>> rng = np.random.default_rng(0)
    >>> res = adaptive_permutation({"t": 9.0}, lambda b: {"t": rng.normal(size=b)}, 99, 9999)
    >>> res["t"]
    (0.0001, True, 9999)
    """
    hits = dict.fromkeys(observed, 0)
    total, target = 0, start
    while True:
        for name, null in draw(target - total).items():
            hits[name] += _exceed(null, observed[name])
        total = target
        # more permutations only while some p-value is small and its estimate rests on few
        # exceedances (a p-value of 0.4 from 19 permutations needs no refinement)
        need = min(MIN_EXCEEDANCES, 0.1 * (total + 1))
        if total >= maximum or min(hits.values()) >= need:
            break
        target = min(maximum, 10 * (total + 1) - 1)
    return {name: ((1 + h) / (1 + total), h == 0, total) for name, h in hits.items()}


def _batch(rows: int) -> int:
    return max(1, _CELLS // max(rows, 1))


# --------------------------------------------------------------------------------------------
# Numeric columns
# --------------------------------------------------------------------------------------------


class _Sorted:
    """The pooled sample as its sorted distinct values; statistics of replicates from
    cumulative counts.

    A replicate (a relabelling or a bootstrap resample) says how many copies of each distinct
    pooled value go to the reference (``wr``) and to the current sample (``wc``). Every
    measure depends on it through these counts only: the two empirical CDFs step at the
    distinct values, so the Wasserstein-1 distance is ``sum |F_r - F_c| dz`` over the gaps
    between them, the KS statistic the largest ``|F_r - F_c|``, and the bin counts are
    differences of the cumulative counts at each bin's first value. A column with ``G``
    distinct values costs ``G`` per replicate whatever its row count (most real columns are
    rounded or integer-valued: ties cost nothing).

    Replicates are drawn in these counts directly, with the distribution the row-level draw
    has: a relabelling of the pooled rows splits the copies of the values by a multivariate
    hypergeometric draw (:meth:`permutation`); resampling each sample's rows with replacement
    gives multinomial counts on its own values (:meth:`bootstrap`).
    """

    def __init__(self, pooled: np.ndarray, edges: np.ndarray, n: int) -> None:
        self.z, self.inverse = np.unique(pooled, return_inverse=True)
        self.inverse = self.inverse.reshape(-1)
        self.dz = np.diff(self.z)
        self.sizes = np.bincount(self.inverse, minlength=self.z.size)
        self.ref = np.bincount(self.inverse[:n], minlength=self.z.size)
        self.k = max(len(edges) - 1, 1)
        codes = bin_codes(self.z, edges)
        self.starts = np.searchsorted(codes, np.arange(self.k + 1))
        self.starts[-1] = self.z.size
        self.n, self.m = n, pooled.size - n

    def stats(self, wr: np.ndarray, wc: np.ndarray | None = None, *,
              wasserstein_only: bool = False) -> dict[str, np.ndarray]:
        """Statistics of replicates with counts ``wr``, ``wc`` (B, G) per distinct value;
        ``wc=None`` means the rest of the pooled copies (a relabelling)."""
        cr = np.cumsum(wr, axis=1, dtype=np.float64)
        cc = (np.cumsum(self.sizes, dtype=np.float64) - cr if wc is None
              else np.cumsum(wc, axis=1, dtype=np.float64))
        nr, nc = cr[:, -1:], cc[:, -1:]
        gap = np.abs(cr / nr - cc / nc)
        out = {"wasserstein": gap[:, :-1] @ self.dz if self.dz.size else np.zeros(len(wr))}
        if wasserstein_only:
            return out
        out["ks"] = gap.max(axis=1)
        # counts below each bin's first value (0 before the first bin)
        last = self.starts - 1
        below_r = np.where(last >= 0, cr[:, np.maximum(last, 0)], 0.0)
        below_c = np.where(last >= 0, cc[:, np.maximum(last, 0)], 0.0)
        out.update(hist_measures(np.diff(below_r, axis=1), np.diff(below_c, axis=1), "numeric"))
        return out

    def observed(self) -> dict[str, float]:
        wr = self.ref[None].astype(np.float64)
        return {k: float(v[0]) for k, v in self.stats(wr).items()}

    def bootstrap(self, b: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        cur = self.sizes - self.ref
        wr = rng.multinomial(self.n, self.ref / self.n, size=b)
        wc = rng.multinomial(self.m, cur / self.m, size=b)
        return self.stats(wr, wc)

    def permutation(self, b: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        # numpy's "marginals" draw costs a step per distinct value, "count" one per row
        method = "marginals" if 20 * self.z.size < self.n else "count"
        wr = rng.multivariate_hypergeometric(self.sizes, self.n, size=b, method=method)
        return self.stats(wr, wasserstein_only=True)


def _replicates(fn: Callable[[int], dict[str, np.ndarray]], total: int,
                rows: int) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {}
    step = _batch(rows)
    for s in range(0, total, step):
        for key, v in fn(min(step, total - s)).items():
            out.setdefault(key, []).append(v)
    return {k: np.concatenate(v) for k, v in out.items()}


def _kl_measure(r: np.ndarray, c: np.ndarray, seed: int,
                level: float) -> tuple[Measure, str | None]:
    vr, nr = np.unique(r, return_counts=True)
    vc, nc = np.unique(c, return_counts=True)
    if np.array_equal(vr, vc) and np.array_equal(nr * c.size, nc * r.size):
        # one empirical distribution on both sides (a file against itself, a constant
        # column): exactly 0
        return Measure("kl", 0.0, 0.0, 0.0, math.nan, units=UNITS["kl"], plugin=0.0), None
    try:
        # imported here: the estimators load torch, which importing the report must not
        from .. import estimate as _estimate
        # the estimator's default breaks ties at the data's resolution (noise="auto")
        est = _estimate.kl(r, c, seed=seed, level=level)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        nan = math.nan
        return Measure("kl", nan, nan, nan, nan, units=UNITS["kl"]), f"kl not estimated: {msg}"
    raw = getattr(est, "raw_value", None)
    raw = float(est.value) if raw is None else float(raw)
    value, lo, hi = float(est.value), float(est.ci_low), float(est.ci_high)
    if not all(math.isfinite(v) for v in (value, lo, hi)):
        nan = math.nan
        return (Measure("kl", nan, nan, nan, nan, units=UNITS["kl"]),
                "kl not estimated: the neighbour estimator gave a non-finite value")
    value, lo, hi, clipped = clip("kl", value, min(lo, value), max(hi, value))
    clipped = clipped or raw < 0.0
    return Measure("kl", value, lo, hi, math.nan, units=UNITS["kl"], clipped=clipped,
                   plugin=raw), None


def ks_test(r: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """The two-sample Kolmogorov-Smirnov statistic and p-value (:func:`scipy.stats.ks_2samp`,
    exact for small samples, asymptotic for large ones), the numeric columns' drift test.

    With tied values (counts, rounded data) both p-values are those of continuous data,
    which are conservative: the test then rejects less often than its level, never more
    (``tests/report/test_compare.py`` checks it on Poisson counts).

    >>> ks_test(np.arange(10.0), np.arange(10.0) + 0.5)
    (0.1, 1.0)
    """
    from scipy import stats  # here: scipy.stats takes a second to import, --help must not

    with warnings.catch_warnings():
        # with ties the exact distribution may fail; scipy then falls back to the asymptotic
        # one, which is what we want, without the warning reaching the user
        warnings.simplefilter("ignore", RuntimeWarning)
        ks = stats.ks_2samp(r, c)
    return float(ks.statistic), float(ks.pvalue)


def compare_numeric(name: str, r: np.ndarray, c: np.ndarray, *, permutations: int, n_boot: int,
                    level: float, seed: int, missing: tuple[int, int] = (0, 0),
                    max_permutations: int = MAX_PERMUTATIONS) -> ColumnResult:
    """All numeric measures of one column (``r``, ``c``: 1-d float arrays without NaN)."""
    n, m = r.size, c.size
    pooled = np.concatenate([r, c])
    edges = adaptive_edges(pooled, BINS)
    srt = _Sorted(pooled, edges, n)
    plugin = srt.observed()
    ks_stat, ks_p = ks_test(r, c)
    plugin["ks"] = ks_stat

    rng = np.random.default_rng([seed, 1])
    boot = _replicates(lambda b: srt.bootstrap(b, rng), n_boot, srt.z.size)
    cap = max(permutations, max_permutations)
    # js and psi depend on the rows only through the bin counts: relabelling the rows splits
    # the pooled bin counts by a multivariate hypergeometric draw, whatever the row count
    hrng = np.random.default_rng([seed, 2])
    pooled_bins = np.bincount(bin_codes(pooled, edges), minlength=srt.k).astype(np.int64)

    def draw_bins(b: int) -> dict[str, np.ndarray]:
        pr = hrng.multivariate_hypergeometric(pooled_bins, n, size=b).astype(np.float64)
        return hist_measures(pr, pooled_bins - pr, "numeric")

    perm = adaptive_permutation({k: plugin[k] for k in ("js", "psi")}, draw_bins,
                                permutations, cap)
    # wasserstein needs the split of every distinct value: at most PERMUTATION_CELLS in all
    prng = np.random.default_rng([seed, 3])
    w_cap = max(permutations, min(cap, PERMUTATION_CELLS // srt.z.size))
    perm.update(adaptive_permutation(
        {"wasserstein": plugin["wasserstein"]},
        lambda b: {"wasserstein": _replicates(lambda bb: srt.permutation(bb, prng), b,
                                              srt.z.size)["wasserstein"]},
        permutations, w_cap))
    measures: dict[str, Measure] = {}
    for key in ("js", "wasserstein", "psi", "ks"):
        value, lo, hi, clipped = bias_corrected(key, plugin[key], boot[key], level)
        if key == "ks":
            p, floor, test = ks_p, False, "KS"
        else:
            p, floor, b = perm[key]
            test = f"permutation ({b})"
        measures[key] = Measure(key, value, lo, hi, p, units=UNITS[key], clipped=clipped,
                                p_floor=floor, test=test, plugin=plugin[key])
    measures["kl"], note = _kl_measure(r, c, seed, level)
    hr = np.bincount(bin_codes(r, edges), minlength=srt.k)
    hc = np.bincount(bin_codes(c, edges), minlength=srt.k)
    res = ColumnResult(
        name=name, kind="numeric", n_reference=n, n_current=m, missing_reference=missing[0],
        missing_current=missing[1], measures={k: measures[k] for k in NUMERIC_MEASURES},
        reference_counts=hr.astype(int).tolist(), current_counts=hc.astype(int).tolist(),
        edges=edges.tolist(), drift_test="KS", drift_pvalue=ks_p)
    if note:
        res.notes.append(note)
    return res


# --------------------------------------------------------------------------------------------
# Categorical columns
# --------------------------------------------------------------------------------------------


def _pearson(hr: np.ndarray, hc: np.ndarray) -> np.ndarray:
    """Pearson's chi-square statistic of the 2 x k tables (B, k), (B, k)."""
    tot = hr + hc
    nr, nc = hr.sum(-1, keepdims=True), hc.sum(-1, keepdims=True)
    n = nr + nc
    er, ec = tot * nr / n, tot * nc / n
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(tot > 0, (hr - er) ** 2 / er + (hc - ec) ** 2 / ec, 0.0)
    return s.sum(-1)


def table_tests(hr: np.ndarray, hc: np.ndarray, seed: int, permutations: int,
                max_permutations: int = MAX_PERMUTATIONS) -> dict[str, tuple[float, bool, str]]:
    """P-values of ``js``, ``tv``, ``chi2`` and the chi-square decision test (``"pearson"``) of
    two count vectors: ``{name: (pvalue, at_floor, test)}`` (see the module docstring).

    >>> t = table_tests(np.array([60.0, 40.0]), np.array([40.0, 60.0]), 0, 99)
    >>> round(t["pearson"][0], 4), t["pearson"][2]
    (0.0047, 'chi-square')
    """
    hr, hc = np.asarray(hr, dtype=np.float64), np.asarray(hc, dtype=np.float64)
    keep = (hr + hc) > 0
    hr, hc = hr[keep], hc[keep]
    k = hr.size
    if k < 2:
        return {name: (1.0, False, "chi-square") for name in ("js", "tv", "chi2", "pearson")}
    from scipy import stats  # here: see compare_numeric

    table = np.vstack([hr, hc])
    expected = stats.contingency.expected_freq(table)
    if expected.min() >= MIN_EXPECTED:
        p = float(stats.chi2_contingency(table, correction=False).pvalue)
        g = float(stats.chi2_contingency(table, correction=False,
                                         lambda_="log-likelihood").pvalue)
        return {"js": (g, False, "G-test"), "tv": (p, False, "chi-square"),
                "chi2": (p, False, "chi-square"), "pearson": (p, False, "chi-square")}
    pooled = (hr + hc).astype(np.int64)
    nr = int(hr.sum())
    rng = np.random.default_rng([seed, 2])

    def draw(b: int) -> dict[str, np.ndarray]:
        out: dict[str, list[np.ndarray]] = {}
        for s in range(0, b, _batch(k)):
            pr = rng.multivariate_hypergeometric(pooled, nr, size=min(_batch(k), b - s))
            pr = pr.astype(np.float64)
            pc = pooled - pr
            for key, v in {**hist_measures(pr, pc, "categorical"),
                           "pearson": _pearson(pr, pc)}.items():
                out.setdefault(key, []).append(v)
        return {key: np.concatenate(v) for key, v in out.items()}

    observed = {key: float(v[0]) for key, v in hist_measures(hr, hc, "categorical").items()}
    observed["pearson"] = float(_pearson(hr[None], hc[None])[0])
    res = adaptive_permutation(observed, draw, permutations,
                               max(permutations, max_permutations))
    return {key: (p, floor, f"chi-square (permutation, {b})" if key == "pearson"
                  else f"permutation ({b})") for key, (p, floor, b) in res.items()}


def compare_categorical(name: str, r: np.ndarray, c: np.ndarray, *, permutations: int,
                        n_boot: int, level: float, seed: int,
                        missing: tuple[int, int] = (0, 0),
                        max_permutations: int = MAX_PERMUTATIONS) -> ColumnResult:
    """All categorical measures of one column (``r``, ``c``: 1-d arrays of strings)."""
    n = r.size
    categories, codes = np.unique(np.concatenate([r, c]), return_inverse=True)
    codes = codes.reshape(-1)
    k = len(categories)
    hr = np.bincount(codes[:n], minlength=k).astype(np.float64)
    hc = np.bincount(codes[n:], minlength=k).astype(np.float64)
    return categorical_from_counts(name, [str(x) for x in categories.tolist()], hr, hc,
                                   permutations=permutations, n_boot=n_boot, level=level,
                                   seed=seed, missing=missing, max_permutations=max_permutations)


def categorical_from_counts(name: str, categories: list[str], hr: np.ndarray, hc: np.ndarray,
                            *, permutations: int, n_boot: int, level: float, seed: int,
                            missing: tuple[int, int] = (0, 0),
                            max_permutations: int = MAX_PERMUTATIONS) -> ColumnResult:
    """All categorical measures from the category counts of the two samples (the bootstrap
    resamples each sample's counts from a multinomial: the same as resampling its rows)."""
    hr, hc = np.asarray(hr, dtype=np.float64), np.asarray(hc, dtype=np.float64)
    n, m = int(hr.sum()), int(hc.sum())
    plugin = {key: float(v[0]) for key, v in hist_measures(hr, hc, "categorical").items()}
    rng = np.random.default_rng([seed, 1])
    boot: dict[str, list[np.ndarray]] = {}
    k = hr.size
    for s in range(0, n_boot, _batch(k)):
        b = min(_batch(k), n_boot - s)
        br = rng.multinomial(n, hr / n, size=b).astype(np.float64)
        bc = rng.multinomial(m, hc / m, size=b).astype(np.float64)
        for key, v in hist_measures(br, bc, "categorical").items():
            boot.setdefault(key, []).append(v)
    tests = table_tests(hr, hc, seed, permutations, max_permutations)
    measures = {}
    for key in CATEGORICAL_MEASURES:
        value, lo, hi, clipped = bias_corrected(key, plugin[key], np.concatenate(boot[key]),
                                                level)
        p, floor, test = tests[key]
        measures[key] = Measure(key, value, lo, hi, p, units=UNITS[key], clipped=clipped,
                                p_floor=floor, test=test, plugin=plugin[key])
    return ColumnResult(
        name=name, kind="categorical", n_reference=n, n_current=m,
        missing_reference=missing[0], missing_current=missing[1], measures=measures,
        reference_counts=hr.astype(int).tolist(), current_counts=hc.astype(int).tolist(),
        categories=categories, drift_test=tests["pearson"][2], drift_pvalue=tests["pearson"][0])


# --------------------------------------------------------------------------------------------
# The decision
# --------------------------------------------------------------------------------------------


def missing_test(result: ColumnResult) -> None:
    """Fisher's exact test of equal missing shares, stored in ``result.missing_pvalue``
    (left NaN when neither data set misses a value)."""
    if result.missing_reference == 0 and result.missing_current == 0:
        return
    from scipy import stats  # here: see compare_numeric

    table = [[result.missing_reference, result.n_reference],
             [result.missing_current, result.n_current]]
    result.missing_pvalue = float(stats.fisher_exact(table).pvalue)


def _q(x: float) -> str:
    return f"{x:.2g}" if x >= 1e-3 else f"{x:.1e}"


def decide(results: list[ColumnResult], alpha: float) -> None:
    """Fill ``drift_qvalue``, ``missing_qvalue``, ``drift`` and ``decided_by`` of every
    column: the distribution tests of all columns and the missing-share tests, adjusted
    together by Benjamini-Hochberg; a column drifts when one of its q-values is at most
    ``alpha``. ``decided_by`` names the test with the smallest q-value among those that
    flagged the column, else the distribution test."""
    from ._joint import benjamini_hochberg
    pvals = [r.drift_pvalue for r in results] + [r.missing_pvalue for r in results]
    q = benjamini_hochberg(pvals)
    for i, r in enumerate(results):
        r.drift_qvalue = float(q[i])
        r.missing_qvalue = float(q[len(results) + i])
        dist = f"{r.drift_test} q={_q(r.drift_qvalue)}" if not math.isnan(r.drift_qvalue) \
            else f"{r.drift_test} not run"
        miss = (f"missing {r.missing_share_reference:.1%} -> {r.missing_share_current:.1%} "
                f"q={_q(r.missing_qvalue)}")
        flags = [(qv, text) for qv, text in ((r.drift_qvalue, dist), (r.missing_qvalue, miss))
                 if not math.isnan(qv) and qv <= alpha]
        r.drift = bool(flags)
        r.decided_by = min(flags)[1] if flags else dist
