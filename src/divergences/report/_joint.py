"""Joint measures: the two-sample MMD test on all numeric columns, and mutual information
of each column with a target."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["JOINT_MAX_ROWS", "benjamini_hochberg", "joint_mmd", "target_information"]

#: Rows per sample used by the joint test (a random subset above this, the same rows for two
#: copies of one table). The Gram matrix of the pooled rows is held in memory and every
#: permutation costs one pass over it (one matrix product per batch of permutations).
JOINT_MAX_ROWS = 500
#: A numeric target with at most this many distinct integer values is treated as classes.
TARGET_MAX_CLASSES = 20


def benjamini_hochberg(pvalues: Any) -> np.ndarray:
    r"""Benjamini-Hochberg adjusted p-values (q-values), NaN entries left out and kept NaN.

    With the ``m`` p-values sorted, :math:`p_{(1)} \le \dots \le p_{(m)}`,
    :math:`q_{(i)} = \min_{j \ge i} \min(1, m\,p_{(j)} / j)`. Rejecting ``q <= alpha`` controls
    the false discovery rate at ``alpha`` for independent (or positively dependent) tests.

    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.5]).tolist()
    [0.04, 0.05333333333333334, 0.05333333333333334, 0.5]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    v = p[ok]
    m = v.size
    if m == 0:
        return out
    order = np.argsort(v, kind="stable")
    scaled = v[order] * m / np.arange(1, m + 1)
    q = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    adjusted = np.empty(m)
    adjusted[order] = q
    out[ok] = adjusted
    return out


def standardize_pooled(r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre and scale every column by the pooled mean and standard deviation.

    Columns constant in the pooled sample carry no information and are dropped; the third
    result is the boolean mask of the kept columns.
    """
    pooled = np.vstack([r, c])
    mean, sd = pooled.mean(axis=0), pooled.std(axis=0)
    keep = sd > 0
    return (r[:, keep] - mean[keep]) / sd[keep], (c[:, keep] - mean[keep]) / sd[keep], keep


def joint_mmd(names: list[str], r: np.ndarray, c: np.ndarray, *, permutations: int,
              seed: int) -> dict[str, Any]:
    """Permutation MMD test (:func:`divergences.kernels.mmd_test`, Gaussian kernel, median
    bandwidth) on the standardised numeric columns ``r`` (n, d), ``c`` (m, d), rows with a
    missing value dropped, at most :data:`JOINT_MAX_ROWS` random rows per sample."""
    r = r[~np.isnan(r).any(axis=1)]
    c = c[~np.isnan(c).any(axis=1)]
    def subset(a: np.ndarray) -> np.ndarray:
        # a function of the row count and seed: two copies of one table keep the same rows
        if a.shape[0] <= JOINT_MAX_ROWS:
            return a
        rng = np.random.default_rng([seed, 3, a.shape[0]])
        return a[np.sort(rng.choice(a.shape[0], JOINT_MAX_ROWS, replace=False))]

    r, c = subset(r), subset(c)
    if r.shape[0] < 2 or c.shape[0] < 2:
        return {"test": "mmd", "statistic": math.nan, "pvalue": math.nan, "columns": names,
                "note": "fewer than 2 complete rows in a sample"}
    zr, zc, keep = standardize_pooled(r, c)
    used = [n for n, k in zip(names, keep) if k]
    if not used:
        return {"test": "mmd", "statistic": math.nan, "pvalue": math.nan, "columns": [],
                "note": "every numeric column is constant"}
    # NumPy samples: the test runs in NumPy and does not import torch
    from .. import kernels as _kernels
    bandwidth = float(_kernels.median_bandwidth(zr, zc))
    res = _kernels.mmd_test(zr, zc, bandwidth=bandwidth, permutations=permutations, seed=seed)
    return {"test": "mmd", "statistic": float(res.statistic), "pvalue": float(res.pvalue),
            "permutations": int(res.permutations),
            "p_floor": bool(float(res.pvalue) <= 1.0 / (1 + int(res.permutations)) + 1e-15),
            "kernel": "gaussian",
            "bandwidth": bandwidth, "columns": used, "n_reference": int(zr.shape[0]),
            "n_current": int(zc.shape[0])}


def _as_mi_sample(values: np.ndarray, kind: str) -> np.ndarray:
    """Numeric -> float64 (continuous); categorical (strings) -> integer codes."""
    if kind == "numeric":
        return values.astype(np.float64)
    return np.unique(values.astype(str), return_inverse=True)[1].reshape(-1).astype(np.int64)


def target_sample(values: np.ndarray, kind: str) -> np.ndarray:
    """The target as an MI sample: classes (integer codes) when categorical or when it holds at
    most :data:`TARGET_MAX_CLASSES` distinct integers, else continuous."""
    if kind == "numeric":
        v = values.astype(np.float64)
        distinct = np.unique(v)
        if distinct.size <= TARGET_MAX_CLASSES and np.all(distinct == np.round(distinct)):
            return np.searchsorted(distinct, v).astype(np.int64)
        return v
    return _as_mi_sample(values, kind)


def target_information(columns: list[tuple[str, str, np.ndarray]], target: np.ndarray,
                       target_missing: np.ndarray, *, seed: int,
                       level: float) -> list[dict[str, Any]]:
    """``I(column; target)`` by :func:`divergences.estimate.mutual_information` (method
    ``"auto"``, normal interval) on the rows of both samples (pooled) where both are present;
    ranked by value, largest first. A negative estimate (and its interval) is set to 0, with
    ``clipped`` true."""
    from ..estimate import mutual_information  # here: it loads torch (see joint_mmd)
    out = []
    for name, kind, values in columns:
        missing = target_missing | _missing_mask(values, kind)
        x = _as_mi_sample(values[~missing], kind)
        y = target[~missing]
        row: dict[str, Any] = {"column": name, "kind": kind, "n": int(x.shape[0])}
        try:
            est = mutual_information(x, y, method="auto", seed=seed, level=level)
        except (ValueError, TypeError) as exc:
            row.update(value=math.nan, stderr=math.nan, ci_low=math.nan, ci_high=math.nan,
                       method="", note=str(exc))
        else:
            value, lo, hi = float(est.value), float(est.ci_low), float(est.ci_high)
            # mutual information is never negative: an estimate below 0 is estimation error
            clipped = value < 0.0
            value, lo, hi = max(value, 0.0), max(min(lo, value), 0.0), max(hi, value, 0.0)
            row.update(value=value, stderr=float(est.stderr), ci_low=lo, ci_high=hi,
                       method=est.method, clipped=clipped)
        out.append(row)
    out.sort(key=lambda d: -d["value"] if not math.isnan(d["value"]) else math.inf)
    for i, row in enumerate(out, 1):
        row["rank"] = i
    return out


def _missing_mask(values: np.ndarray, kind: str) -> np.ndarray:
    if kind == "numeric":
        return np.isnan(values.astype(np.float64))
    return np.array([v is None for v in values], dtype=bool)
