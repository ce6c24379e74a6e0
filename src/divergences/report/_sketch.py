r"""Mergeable sketches of a column, for data read partition by partition (pure NumPy).

Each partition of a data set yields a small summary of every column; summaries of two
partitions *merge* into the summary of their concatenation, so that a cluster reduces any
number of partitions in a tree, and the result does not depend on how the rows were split:
``merge(sketch(a), sketch(b)) == sketch(concat(a, b))`` (exactly for the counts, minima and
maxima; to rounding for the moments).

:class:`NumericSketch`
    count of present values, count of missing (NaN) values, minimum, maximum, mean and sum of
    squared deviations (merged by Chan et al.'s pairwise update), and the counts of each
    distinct value while there are at most ``cap`` of them (``None`` beyond; a numeric column
    given in ``categorical=`` is compared as categories from these counts); and, for the
    detection of numeric ID columns, whether every value is an integer, the first and last
    present values and whether the values strictly increase (or decrease) in row order
    (merged in partition order).
:class:`CategoricalSketch`
    count of each category (text) and of missing values.
:func:`histogram`
    exact counts on a fixed grid of edges, with the bin convention of
    :func:`divergences.report._columns.bin_codes` (interior edges belong to the bin above,
    values outside the grid go to the end bins); merged by addition.

From merged histograms on an equal-width grid of width ``h`` (:func:`grid`):

* :func:`quantile_edges`: the adaptive (pooled-quantile) bin edges, each interior edge *snapped*
  to a grid edge, within ``h`` of the exact pooled quantile;
* :func:`wasserstein_from_histograms`: :math:`W_1 = \int |F_r - F_c|\,dx` by the trapezoid
  rule on the grid, where the two CDFs are exact at every grid edge; the error is at most
  :math:`h \sum_b \max(r_b, c_b) \le 2h` (``r_b``, ``c_b`` the bin frequencies), returned with
  the value;
* :func:`ks_from_histograms`: :math:`\max_i |F_r(g_i) - F_c(g_i)|` over the grid edges, a lower
  bound of the Kolmogorov-Smirnov statistic, which exceeds it by at most
  :math:`\max_b \max(r_b, c_b)` (returned with the value).

>>> import numpy as np
>>> a, b = np.array([0.0, 1.0, np.nan]), np.array([2.0, 5.0])
>>> NumericSketch.of(a).merge(NumericSketch.of(b)) == NumericSketch.of(np.concatenate([a, b]))
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DISTINCT_CAP",
    "CategoricalSketch",
    "NumericSketch",
    "grid",
    "histogram",
    "ks_from_histograms",
    "merge_occupancy",
    "occupancy",
    "quantile_edges",
    "wasserstein_from_histograms",
]

#: Distinct values counted per numeric column (enough for a numeric column that
#: ``categorical=`` asks to compare as categories with the dask engine).
DISTINCT_CAP = 11


def _merge_counts(a: dict[Any, int] | None, b: dict[Any, int] | None,
                  cap: int | None) -> dict[Any, int] | None:
    if a is None or b is None:
        return None
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    if cap is not None and len(out) > cap:
        return None
    return out


@dataclass(frozen=True)
class NumericSketch:
    """Summary of a numeric column (see the module docstring); build with :meth:`of`.

    ``mean`` and ``m2`` (sum of squared deviations from the mean) are NaN and 0 without
    present values; ``minimum``/``maximum`` are ``+inf``/``-inf`` then. ``distinct`` maps each
    value to its count while there are at most ``cap`` values, else is ``None``. ``integer``:
    every present value is a whole number; ``first``/``last``: the first and last present
    values in row order (NaN without values); ``increasing``/``decreasing``: the present
    values strictly increase/decrease in row order (true for fewer than two values). Merges
    must follow the row order (``a.merge(b)``: ``a``'s rows come first).

    >>> s = NumericSketch.of(np.array([1.0, 2.0, 2.0, np.nan]))
    >>> s.n, s.missing, s.minimum, s.maximum, s.mean, s.variance
    (3, 1, 1.0, 2.0, 1.6666666666666667, 0.2222222222222222)
    >>> s.distinct
    {1.0: 1, 2.0: 2}
    """

    n: int
    missing: int
    minimum: float
    maximum: float
    mean: float
    m2: float
    distinct: dict[float, int] | None
    cap: int = DISTINCT_CAP
    integer: bool = True
    first: float = math.nan
    last: float = math.nan
    increasing: bool = True
    decreasing: bool = True

    @classmethod
    def of(cls, values: np.ndarray, cap: int = DISTINCT_CAP) -> NumericSketch:
        """The sketch of a 1-d float array (NaN = missing)."""
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        nan = np.isnan(v)
        x = v[~nan]
        n = int(x.size)
        if n == 0:
            return cls(0, int(nan.sum()), math.inf, -math.inf, math.nan, 0.0, {}, cap)
        mean = float(x.mean())
        m2 = float(np.sum((x - mean) ** 2))
        vals, counts = np.unique(x, return_counts=True)
        distinct = ({float(a): int(c) for a, c in zip(vals, counts)} if vals.size <= cap
                    else None)
        step = np.diff(x)
        return cls(n, int(nan.sum()), float(x.min()), float(x.max()), mean, m2, distinct, cap,
                   integer=bool(np.all(vals == np.round(vals))), first=float(x[0]),
                   last=float(x[-1]), increasing=bool(np.all(step > 0)),
                   decreasing=bool(np.all(step < 0)))

    def merge(self, other: NumericSketch) -> NumericSketch:
        """The sketch of the concatenation of the two partitions."""
        n = self.n + other.n
        if self.n == 0 or other.n == 0:
            base = other if self.n == 0 else self
            mean, m2 = base.mean, base.m2
        else:
            delta = other.mean - self.mean
            mean = self.mean + delta * other.n / n
            m2 = self.m2 + other.m2 + delta * delta * self.n * other.n / n
        if self.n == 0 or other.n == 0:
            a = other if self.n == 0 else self
            order = dict(first=a.first, last=a.last, increasing=a.increasing,
                         decreasing=a.decreasing)
        else:
            order = dict(first=self.first, last=other.last,
                         increasing=(self.increasing and other.increasing
                                     and self.last < other.first),
                         decreasing=(self.decreasing and other.decreasing
                                     and self.last > other.first))
        return NumericSketch(n, self.missing + other.missing, min(self.minimum, other.minimum),
                             max(self.maximum, other.maximum), mean, m2,
                             _merge_counts(self.distinct, other.distinct, self.cap), self.cap,
                             integer=self.integer and other.integer, **order)

    @property
    def variance(self) -> float:
        """Population variance ``m2 / n`` (NaN without values)."""
        return self.m2 / self.n if self.n else math.nan

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericSketch):
            return NotImplemented
        keys = ("n", "missing", "minimum", "maximum", "distinct", "cap", "integer",
                "increasing", "decreasing")
        same = all(getattr(self, k) == getattr(other, k) for k in keys) and all(
            getattr(self, k) == getattr(other, k) or (math.isnan(getattr(self, k))
                                                      and math.isnan(getattr(other, k)))
            for k in ("first", "last"))
        if not same or self.n == 0:
            return same
        return (math.isclose(self.mean, other.mean, rel_tol=1e-9, abs_tol=1e-12)
                and math.isclose(self.m2, other.m2, rel_tol=1e-9, abs_tol=1e-12))

    __hash__ = None  # type: ignore[assignment]


def occupancy(values: np.ndarray, low: int, size: int) -> tuple[np.ndarray, bool]:
    """Which of the integers ``low, ..., low + size - 1`` occur among ``values`` (NaN
    skipped; every present value an integer in that range), as a packed bitmap, and whether
    one occurs twice. Merged with :func:`merge_occupancy`: a value twice in one data set,
    in one partition or in two, makes the column not unique per row. Memory: ``size / 8``
    bytes.

    >>> bits, twice = occupancy(np.array([3.0, 5.0, np.nan]), 3, 4)
    >>> np.unpackbits(bits)[:4].tolist(), twice
    ([1, 0, 1, 0], False)
    >>> merge_occupancy((bits, twice), occupancy(np.array([6.0, 5.0]), 3, 4))[1]
    True
    """
    v = np.asarray(values, dtype=np.float64)
    x = v[~np.isnan(v)].astype(np.int64) - low
    u, counts = np.unique(x, return_counts=True)
    bits = np.zeros((size + 7) // 8, dtype=np.uint8)
    np.bitwise_or.at(bits, u >> 3, (128 >> (u & 7)).astype(np.uint8))
    return bits, bool((counts > 1).any())


def merge_occupancy(a: tuple[np.ndarray, bool],
                    b: tuple[np.ndarray, bool]) -> tuple[np.ndarray, bool]:
    """The occupancy of two sets of rows together (:func:`occupancy`)."""
    return a[0] | b[0], a[1] or b[1] or bool((a[0] & b[0]).any())


@dataclass(frozen=True)
class CategoricalSketch:
    """Category counts (text) and the number of missing values; build with :meth:`of`.

    >>> s = CategoricalSketch.of(np.array(["a", None, "b", "a"], dtype=object))
    >>> s.counts, s.missing, s.n
    ({'a': 2, 'b': 1}, 1, 3)
    """

    counts: dict[str, int] = field(default_factory=dict)
    missing: int = 0

    @classmethod
    def of(cls, values: np.ndarray) -> CategoricalSketch:
        """The sketch of a 1-d object array of strings and ``None`` (missing)."""
        v = np.asarray(values, dtype=object).reshape(-1)
        miss = np.array([x is None for x in v], dtype=bool)
        present = v[~miss].astype(str)
        if present.size == 0:
            return cls({}, int(miss.sum()))
        cats, counts = np.unique(present, return_counts=True)
        return cls({str(a): int(c) for a, c in zip(cats, counts)}, int(miss.sum()))

    def merge(self, other: CategoricalSketch) -> CategoricalSketch:
        """The sketch of the concatenation of the two partitions."""
        return CategoricalSketch(_merge_counts(self.counts, other.counts, None) or {},
                                 self.missing + other.missing)

    @property
    def n(self) -> int:
        """Number of present values."""
        return int(sum(self.counts.values()))


def grid(lo: float, hi: float, bins: int) -> np.ndarray:
    """``bins + 1`` equal-width edges from ``lo`` to ``hi``; one edge when ``lo == hi``.

    >>> grid(0.0, 1.0, 4).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    >>> grid(3.0, 3.0, 4).tolist()
    [3.0]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        raise ValueError(f"grid needs finite lo <= hi; got {lo}, {hi}")
    if bins < 1:
        raise ValueError(f"bins must be >= 1; got {bins}")
    if hi == lo:
        return np.array([float(lo)])
    return np.linspace(lo, hi, bins + 1)


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts (int64) of the non-NaN ``values`` in the ``max(len(edges) - 1, 1)`` bins of
    ``edges``: interior edges belong to the bin above, values outside go to the end bins (the
    convention of :func:`divergences.report._columns.bin_codes`).

    >>> histogram(np.array([0.0, 0.5, 1.0, 2.0, np.nan]), np.array([0.0, 0.5, 1.0])).tolist()
    [1, 3]
    """
    e = np.asarray(edges, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[~np.isnan(v)]
    k = max(e.size - 1, 1)
    codes = np.searchsorted(e[1:-1], v, side="right")
    return np.bincount(codes, minlength=k).astype(np.int64)


def _cdf(counts: np.ndarray) -> np.ndarray:
    """CDF at every grid edge: ``F_0 = 0``, ``F_i = sum_{b < i} counts_b / n``."""
    c = np.asarray(counts, dtype=np.float64)
    return np.concatenate([[0.0], np.cumsum(c)]) / c.sum()


def quantile_edges(edges: np.ndarray, counts: np.ndarray, bins: int) -> np.ndarray:
    """Pooled-quantile bin edges from a histogram on an equal-width grid, snapped to the grid.

    Quantile ``j / bins`` is interpolated linearly within the grid bin that holds it (the CDF is
    exact at the grid edges), then rounded to the nearest grid edge; the first and last edges
    are the grid's (the minimum and maximum). Repeated edges merge, as in
    :func:`divergences.report._columns.adaptive_edges`; every edge lies within one grid width of
    the exact quantile, and bin counts on these edges are sums of grid counts (exact).

    >>> quantile_edges(grid(0.0, 8.0, 8), np.ones(8, dtype=np.int64), 2).tolist()
    [0.0, 4.0, 8.0]
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.size == 1:
        return e.copy()
    f = _cdf(counts)
    q = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    # grid bin b holds quantile q when F_b <= q < F_{b+1}
    b = np.clip(np.searchsorted(f, q, side="right") - 1, 0, e.size - 2)
    mass = f[b + 1] - f[b]
    frac = np.where(mass > 0, (q - f[b]) / np.where(mass > 0, mass, 1.0), 0.0)
    idx = np.clip(np.rint(b + np.clip(frac, 0.0, 1.0)).astype(np.int64), 0, e.size - 1)
    return np.unique(np.concatenate([e[:1], e[idx], e[-1:]]))


def wasserstein_from_histograms(edges: np.ndarray, counts_r: np.ndarray,
                                counts_c: np.ndarray) -> tuple[float, float]:
    r"""``(W1, error bound)`` from two histograms on the same equal-width grid.

    ``W1 ~ sum_b h (|D_b| + |D_{b+1}|) / 2`` with ``D = F_r - F_c`` at the grid edges; within a
    bin ``|D|`` moves by at most ``max(r_b, c_b)``, so the error is at most
    ``h sum_b max(r_b, c_b)`` (between ``h`` and ``2h``).

    >>> w, err = wasserstein_from_histograms(grid(0.0, 4.0, 4), np.array([1, 0, 0, 0]),
    ...                                      np.array([0, 0, 0, 1]))
    >>> w, err
    (3.0, 2.0)
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.size == 1:
        return 0.0, 0.0
    h = float(e[1] - e[0])
    d = np.abs(_cdf(counts_r) - _cdf(counts_c))
    value = float(h * np.sum(d[:-1] + d[1:]) / 2.0)
    pr = np.asarray(counts_r, np.float64) / np.sum(counts_r)
    pc = np.asarray(counts_c, np.float64) / np.sum(counts_c)
    return value, float(h * np.sum(np.maximum(pr, pc)))


def ks_from_histograms(counts_r: np.ndarray, counts_c: np.ndarray) -> tuple[float, float]:
    r"""``(max_i |F_r(g_i) - F_c(g_i)|, error bound)`` from two histograms on one grid.

    The value is a lower bound of the two-sample Kolmogorov-Smirnov statistic; the statistic
    exceeds it by at most ``max_b max(r_b, c_b)``, the largest bin frequency.

    >>> ks_from_histograms(np.array([2, 0]), np.array([0, 2]))
    (1.0, 1.0)
    """
    d = np.abs(_cdf(counts_r) - _cdf(counts_c))
    pr = np.asarray(counts_r, np.float64) / np.sum(counts_r)
    pc = np.asarray(counts_c, np.float64) / np.sum(counts_c)
    return float(d.max()), float(np.max(np.maximum(pr, pc)))
