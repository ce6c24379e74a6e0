"""Per-column measures between a reference sample and a current sample.

Numeric columns
    ``js``          Jensen-Shannon divergence (nats, in ``[0, ln 2]``) between the histograms of
                    the two samples on *adaptive bins*: quantile bins of the pooled sample
                    (:func:`adaptive_edges`), through :func:`divergences.js`.
    ``wasserstein`` Wasserstein-1 distance in the units of the column
                    (:func:`divergences.transport.wasserstein_1d`).
    ``psi``         Population stability index ``sum_i (r_i - c_i) log(r_i / c_i)`` on the same
                    bins, which is Jeffreys' divergence ``KL(r||c) + KL(c||r)``
                    (:func:`divergences.jeffreys`) of the histograms smoothed with 0.5 added to
                    every bin count (so that an empty bin gives a finite value).
    ``ks``          Kolmogorov-Smirnov statistic ``sup_x |F_r(x) - F_c(x)|``
                    (:func:`scipy.stats.ks_2samp`).
    ``kl``          ``KL(reference || current)`` by the k-nearest-neighbour estimator
                    :func:`divergences.estimate.kl` (nats; can be negative by estimation
                    error), on dequantised values when the column has ties
                    (:func:`tie_noise`).

Categorical columns
    ``js``    Jensen-Shannon divergence of the category frequencies.
    ``tv``    Total variation distance (:func:`divergences.tv`), in ``[0, 1]``.
    ``chi2``  Pearson chi-square divergence ``sum_i (r_i - c_i)^2 / c_i``
              (:func:`divergences.chi2`) of the frequencies smoothed with 0.5 added to every
              category count.

Uncertainty, for every measure: a percentile bootstrap interval (each sample resampled with
replacement, ``n_boot`` times, bins and categories held fixed) and a permutation p-value
(the pooled rows relabelled at random ``permutations`` times;
``p = (1 + #{null >= observed}) / (1 + permutations)``). ``kl`` is the exception for the
interval: with-replacement resamples create exact duplicates, which break nearest-neighbour
distances, so its interval is the half-sampling bootstrap of :func:`divergences.estimate.kl`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from .. import discrete
from .. import estimate as _estimate
from .. import transport as _transport
from .._permutation import permutation_pvalue

__all__ = [
    "CATEGORICAL_MEASURES",
    "NUMERIC_MEASURES",
    "ColumnResult",
    "Measure",
    "adaptive_edges",
    "bin_codes",
    "compare_categorical",
    "compare_numeric",
    "smoothed",
    "tie_noise",
]

NUMERIC_MEASURES = ("js", "wasserstein", "psi", "ks", "kl")
CATEGORICAL_MEASURES = ("js", "tv", "chi2")
UNITS = {"js": "nats", "wasserstein": "column units", "psi": "nats", "ks": "probability",
         "kl": "nats", "tv": "probability", "chi2": "ratio"}
SMOOTHING = 0.5   # pseudo-count added to every bin for psi and chi2
_CHUNK = 64       # replicates computed per batch (bounds memory for large samples)


@dataclass(frozen=True)
class Measure:
    """One measure of one column: value, ``level`` bootstrap interval, permutation p-value.

    ``qvalue`` is the Benjamini-Hochberg adjusted p-value across the columns that have this
    measure (filled by :func:`divergences.report.compare`).
    """

    name: str
    value: float
    ci_low: float
    ci_high: float
    pvalue: float
    qvalue: float = math.nan
    units: str = ""


@dataclass
class ColumnResult:
    """All measures of one column, with what is needed to draw it.

    ``edges``: the adaptive bin edges (numeric) used by ``js`` and ``psi``; ``categories``:
    the sorted categories (categorical). ``reference_counts``/``current_counts``: the
    histogram counts on those bins or categories.
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


def n_bins(n_min: int) -> int:
    """Number of adaptive bins: ``clip(ceil(2 * n^(1/3)), 5, 50)`` (Rice rule), n the smaller sample.

    >>> n_bins(212)
    12
    """
    return int(min(50, max(5, math.ceil(2.0 * n_min ** (1.0 / 3.0)))))


def adaptive_edges(pooled: np.ndarray, bins: int) -> np.ndarray:
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


def _hist_stats(cr: np.ndarray, cc: np.ndarray, k: int, kind: str) -> dict[str, np.ndarray]:
    """Histogram measures for a batch: codes (B, n), (B, m) -> {name: (B,)}."""
    hr, hc = _counts(cr, k), _counts(cc, k)
    out = {"js": np.asarray(discrete.js(_probs(hr), _probs(hc)), dtype=np.float64)}
    if kind == "numeric":
        out["psi"] = np.asarray(discrete.jeffreys(smoothed(hr), smoothed(hc)), dtype=np.float64)
    else:
        out["tv"] = np.asarray(discrete.tv(_probs(hr), _probs(hc)), dtype=np.float64)
        out["chi2"] = np.asarray(discrete.chi2(smoothed(hr), smoothed(hc)), dtype=np.float64)
    return out


def _value_stats(r: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    """Sample measures for a batch of numeric samples (B, n), (B, m) -> {name: (B,)}."""
    w = np.atleast_1d(np.asarray(_transport.wasserstein_1d(r, c), dtype=np.float64))
    ks = np.atleast_1d(np.asarray(stats.ks_2samp(r, c, axis=-1).statistic, dtype=np.float64))
    return {"wasserstein": w, "ks": ks}


def tie_noise(pooled: np.ndarray) -> float:
    """Tie-breaking noise for :func:`divergences.estimate.kl` on a pooled 1-d sample.

    Values recorded at a finite resolution repeat, and nearest-neighbour distances of 0
    (broken by noise of 1e-10) blow up the estimate. Such a sample is *dequantised*: the noise
    half-width is half the smallest gap between distinct values, on the standardised scale
    the estimator works on (divided by the pooled standard deviation). Without ties: the
    estimator's default, 1e-10.

    >>> bool(tie_noise(np.array([0.0, 1.0, 1.0, 3.0])) == 0.5 / np.std([0.0, 1.0, 1.0, 3.0]))
    True
    """
    distinct = np.unique(pooled)
    sd = float(np.std(pooled))
    if distinct.size == pooled.size or distinct.size < 2 or sd == 0:
        return 1e-10
    return 0.5 * float(np.diff(distinct).min()) / sd


def _knn_kl(r: np.ndarray, c: np.ndarray, seed: int, noise: float) -> float:
    # the value only (a permutation null): no interval work
    return float(_estimate.kl(r, c, seed=seed, noise=noise, ci="normal").value)


def _batches(total: int, rows: int) -> list[tuple[int, int]]:
    """Replicate ranges of at most ``_CHUNK`` replicates and about 4M indices each."""
    step = max(1, min(_CHUNK, 4_000_000 // max(rows, 1)))
    return [(s, min(total, s + step)) for s in range(0, total, step)]


def _percentile(values: np.ndarray, level: float) -> tuple[float, float]:
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [a, 1.0 - a])
    return float(lo), float(hi)


def _assemble(names: tuple[str, ...], observed: dict[str, float], boot: dict[str, np.ndarray],
              null: dict[str, np.ndarray], level: float,
              intervals: dict[str, tuple[float, float]] | None = None) -> dict[str, Measure]:
    out = {}
    for name in names:
        lo, hi = (intervals or {}).get(name) or _percentile(boot[name], level)
        out[name] = Measure(name, float(observed[name]), lo, hi,
                            permutation_pvalue(observed[name], null[name]), units=UNITS[name])
    return out


def compare_numeric(name: str, r: np.ndarray, c: np.ndarray, *, permutations: int, n_boot: int,
                    level: float, seed: int, missing: tuple[int, int] = (0, 0)) -> ColumnResult:
    """All numeric measures of one column (``r``, ``c``: 1-d float arrays without NaN)."""
    n, m = r.size, c.size
    pooled = np.concatenate([r, c])
    edges = adaptive_edges(pooled, n_bins(min(n, m)))
    k = max(len(edges) - 1, 1)
    codes = bin_codes(pooled, edges)
    cr, cc = codes[:n], codes[n:]

    observed = {key: float(v[0]) for key, v in _hist_stats(cr[None], cc[None], k, "numeric").items()}
    observed.update({key: float(v[0]) for key, v in _value_stats(r[None], c[None]).items()})
    noise = tie_noise(pooled)
    kl_est = _estimate.kl(r, c, seed=seed, ci="bootstrap", n_boot=n_boot, noise=noise)
    observed["kl"] = float(kl_est.value)

    rng = np.random.default_rng([seed, 1])
    boot: dict[str, list[np.ndarray]] = {key: [] for key in NUMERIC_MEASURES if key != "kl"}
    for s, e in _batches(n_boot, n + m):
        ir, ic = rng.integers(0, n, (e - s, n)), rng.integers(0, m, (e - s, m))
        for key, v in {**_hist_stats(cr[ir], cc[ic], k, "numeric"),
                       **_value_stats(r[ir], c[ic])}.items():
            boot[key].append(v)

    null: dict[str, list[np.ndarray]] = {key: [] for key in NUMERIC_MEASURES}
    prng = np.random.default_rng([seed, 2])
    for s, e in _batches(permutations, n + m):
        perm = prng.permuted(np.tile(np.arange(n + m), (e - s, 1)), axis=1)
        pr, pc = perm[:, :n], perm[:, n:]
        for key, v in {**_hist_stats(codes[pr], codes[pc], k, "numeric"),
                       **_value_stats(pooled[pr], pooled[pc])}.items():
            null[key].append(v)
        null["kl"].append(np.array([_knn_kl(pooled[a], pooled[b], seed, noise) for a, b in zip(pr, pc)]))

    measures = _assemble(
        NUMERIC_MEASURES, observed, {key: np.concatenate(v) for key, v in boot.items()},
        {key: np.concatenate(v) for key, v in null.items()}, level,
        intervals={"kl": (float(kl_est.ci_low), float(kl_est.ci_high))})
    return ColumnResult(
        name=name, kind="numeric", n_reference=n, n_current=m, missing_reference=missing[0],
        missing_current=missing[1], measures=measures,
        reference_counts=_counts(cr[None], k)[0].astype(int).tolist(),
        current_counts=_counts(cc[None], k)[0].astype(int).tolist(), edges=edges.tolist())


def compare_categorical(name: str, r: np.ndarray, c: np.ndarray, *, permutations: int,
                        n_boot: int, level: float, seed: int,
                        missing: tuple[int, int] = (0, 0)) -> ColumnResult:
    """All categorical measures of one column (``r``, ``c``: 1-d arrays of strings)."""
    n, m = r.size, c.size
    categories, codes = np.unique(np.concatenate([r, c]), return_inverse=True)
    codes = codes.reshape(-1)
    k = len(categories)
    cr, cc = codes[:n], codes[n:]
    observed = {key: float(v[0])
                for key, v in _hist_stats(cr[None], cc[None], k, "categorical").items()}

    rng = np.random.default_rng([seed, 1])
    boot: dict[str, list[np.ndarray]] = {key: [] for key in CATEGORICAL_MEASURES}
    for s, e in _batches(n_boot, n + m):
        ir, ic = rng.integers(0, n, (e - s, n)), rng.integers(0, m, (e - s, m))
        for key, v in _hist_stats(cr[ir], cc[ic], k, "categorical").items():
            boot[key].append(v)
    null: dict[str, list[np.ndarray]] = {key: [] for key in CATEGORICAL_MEASURES}
    prng = np.random.default_rng([seed, 2])
    for s, e in _batches(permutations, n + m):
        perm = prng.permuted(np.tile(np.arange(n + m), (e - s, 1)), axis=1)
        for key, v in _hist_stats(codes[perm[:, :n]], codes[perm[:, n:]], k,
                                  "categorical").items():
            null[key].append(v)
    measures = _assemble(CATEGORICAL_MEASURES, observed,
                         {key: np.concatenate(v) for key, v in boot.items()},
                         {key: np.concatenate(v) for key, v in null.items()}, level)
    return ColumnResult(
        name=name, kind="categorical", n_reference=n, n_current=m,
        missing_reference=missing[0], missing_current=missing[1], measures=measures,
        reference_counts=_counts(cr[None], k)[0].astype(int).tolist(),
        current_counts=_counts(cc[None], k)[0].astype(int).tolist(),
        categories=[str(x) for x in categories.tolist()])
