r"""O(n log n) distance covariance terms for univariate samples (NumPy, float64).

The three sums every distance covariance estimator is built from (with
``a_ij = |x_i - x_j|`` and ``b_ij = |y_i - y_j|``) are

* ``S1 = sum_ij a_ij b_ij``,
* ``S2 = sum_i a_i. b_i.`` (row sums ``a_i. = sum_j a_ij``),
* ``S3 = a.. b..`` (grand sums).

``S2`` and ``S3`` need the row sums only, which a sort and a prefix sum give in
O(n log n). ``S1`` is the hard term. Sort the pairs by ``x``; for ``j`` before ``i``,
``x_i - x_j >= 0`` and ``|y_i - y_j| = s_ij (y_i - y_j)`` with ``s_ij = sign(y_i - y_j)``, so

``S1 / 2 = sum_i [x_i y_i C_1(i) - x_i C_y(i) - y_i C_x(i) + C_xy(i)]``,
``C_f(i) = sum_{j < i} s_ij f_j = 2 D_f(i) - E_f(i)``,

where ``E_f(i) = sum_{j<i} f_j`` is a prefix sum and ``D_f(i) = sum_{j<i, y_j<y_i} f_j`` is a
two-dimensional dominance sum. Ties do not matter: a tie in ``x`` or ``y`` makes the pair's
term zero whatever sign is used, so ties are broken by position.

The dominance sums come from a bottom-up merge sort over the x-order (the idea of
Huo & Székely 2016 and Chaudhuri & Hu 2019), written with whole-array NumPy operations: at
level ``l`` the positions are grouped in blocks of ``2^l`` kept sorted by ``y``-rank; for each
element of a right block, ``np.searchsorted`` counts the elements of its left sibling with a
smaller ``y`` and a prefix sum over the left blocks gives their ``f`` sums. The same counts give
the merged order of the next level. Each level is O(n log n) in C (the searches), so the whole
is O(n log^2 n) operations but with no Python loop over the data.

Numerics: the data are centred and scaled to unit maximum absolute deviation first (distance
covariance is translation invariant and ``S1, S2, S3`` scale by ``s_x s_y``), so nothing can
overflow, and every prefix sum is of O(1) values. Counts are exact integers (int64).
"""

from __future__ import annotations

import numpy as np


def _exclusive_cumsum(v: np.ndarray) -> np.ndarray:
    """Prefix sums ``out[..., k] = sum_{j<k} v[..., j]`` with a leading zero (length + 1)."""
    out = np.zeros((*v.shape[:-1], v.shape[-1] + 1), dtype=np.float64)
    np.cumsum(v, axis=-1, out=out[..., 1:])
    return out


def _row_sums_sorted(xs: np.ndarray) -> np.ndarray:
    """``a_(k) = sum_j |xs_k - xs_j|`` for sorted ``xs``: ``(2k - n) xs_k + T - 2 P_k``."""
    n = xs.shape[0]
    p = _exclusive_cumsum(xs)
    k = np.arange(n, dtype=np.float64)
    return (2.0 * k - n) * xs + (p[-1] - 2.0 * p[:-1])


def _row_sums(x: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """``a_i. = sum_j |x_i - x_j|`` in the original order, O(n log n)."""
    if order is None:
        order = np.argsort(x, kind="stable")
    out = np.empty_like(x)
    out[order] = _row_sums_sorted(x[order])
    return out


def _cross_sum_sorted(xs: np.ndarray, ys: np.ndarray, rank: np.ndarray) -> float:
    """``sum_{j<i} |x_i - x_j| |y_i - y_j|`` for ``xs`` sorted ascending (O(n log n)).

    ``rank`` is a permutation of ``0..n-1`` ordering ``ys`` (ties broken any way).

    ``sum_i [x_i y_i C_1 - x_i C_y - y_i C_x + C_xy]`` with ``C_f = 2 D_f - E_f`` splits into
    an ``E`` part (prefix sums in x-order, computed once) and a ``D`` part that each merge level
    adds to directly, so no per-element accumulator is carried. A table with one row per
    element, ``[position, y-rank, y, x]``, is kept sorted by ``(position >> level, y-rank)``:
    every per-level step reads it sequentially and the merge is one row scatter.
    """
    n = xs.shape[0]
    e = _exclusive_cumsum(np.stack([ys, xs, xs * ys]))[:, :-1]
    e_part = float(np.sum(xs * ys * np.arange(n) - xs * e[0] - ys * e[1] + e[2]))
    table = np.empty((n, 4), dtype=np.float64)
    table[:, 0] = np.arange(n)
    table[:, 1] = rank
    table[:, 2] = ys
    table[:, 3] = xs
    d_part = 0.0
    level = 0
    while (1 << level) < n:
        half = 1 << level
        pos = table[:, 0].astype(np.int64)
        block = pos >> level
        odd = (block & 1).astype(bool)
        # integer indices and take(): much faster than boolean-mask indexing of rows
        i_left = np.flatnonzero(~odd)
        i_right = np.flatnonzero(odd)
        group = block >> 1
        r = table[:, 1].astype(np.int64)
        g_left = group.take(i_left)
        g_right = group.take(i_right)
        key_left = g_left * n + r.take(i_left)
        key_right = g_right * n + r.take(i_right)
        # every group before g is complete: its left and right halves hold `half` rows each
        start_left = g_left * half
        start_right = g_right * half
        left_rows = table.take(i_left, axis=0)
        right_rows = table.take(i_right, axis=0)
        # right rows: how many rows of the left sibling have a smaller y-rank, and their sums
        below_right = np.searchsorted(key_left, key_right) - start_right
        yl, xl = left_rows[:, 2], left_rows[:, 3]
        cum = _exclusive_cumsum(np.stack([yl, xl, xl * yl]))
        lo, hi = start_right, start_right + below_right
        dy, dx, dxy = (cum[:, hi] - cum[:, lo])
        yr, xr = right_rows[:, 2], right_rows[:, 3]
        d_part += float(np.sum(xr * yr * below_right - xr * dy - yr * dx + dxy))
        # left rows: how many rows of the right sibling have a smaller y-rank (the merge)
        below_left = np.searchsorted(key_right, key_left) - start_left
        idx_left = np.arange(left_rows.shape[0]) - start_left
        idx_right = np.arange(right_rows.shape[0]) - start_right
        table[g_left * (2 * half) + idx_left + below_left] = left_rows
        table[g_right * (2 * half) + idx_right + below_right] = right_rows
        level += 1
    return 2.0 * d_part - e_part


Terms = tuple[float, float, float, float]


def total_distance(x: np.ndarray) -> float:
    """``sum_ij |x_i - x_j|`` of a 1-D float sample in O(n log n) (the energy distance's sums).

    Standardised first, as :func:`stats_terms`, so the prefix sums stay O(1).
    """
    v, s = _standardise(x)
    if s == 0.0:
        return 0.0
    return float(_row_sums(v).sum()) * s


def _standardise(v: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and divide by the largest absolute deviation (``1`` for a constant sample)."""
    v = np.asarray(v, dtype=np.float64)
    v = v - v.mean()
    s = float(np.max(np.abs(v))) if v.size else 0.0
    return (v / s, s) if s > 0 else (v, 0.0)


def stats_terms(x: np.ndarray, y: np.ndarray, variances: bool = True) -> list[Terms]:
    """Terms ``(S1, S2, S3, scale)`` of ``(x, y)`` and, with ``variances``, of ``(x, x)`` and
    ``(y, y)``, for 1-D float arrays of equal length, in O(n log n) with one sort per sample.

    The sums are those of the standardised data; the sums of the data themselves are
    ``scale * S``. Keeping the factor apart lets the caller combine the sums before scaling,
    so a finite result never overflows on the way. For ``y = x``,
    ``S1 = sum_ij (x_i - x_j)^2 = 2 n sum (x - mean)^2`` needs no dominance sums.
    """
    x, sx = _standardise(x)
    y, sy = _standardise(y)
    n = x.shape[0]
    order_x = np.argsort(x, kind="stable")
    order_y = np.argsort(y, kind="stable")
    a = _row_sums(x, order_x)
    b = _row_sums(y, order_y)
    zero = (0.0, 0.0, 0.0, 1.0)
    if sx == 0.0 or sy == 0.0:
        cov = zero
    else:
        rank_y = np.empty(n, dtype=np.int64)
        rank_y[order_y] = np.arange(n)
        s1 = 2.0 * _cross_sum_sorted(x[order_x], y[order_x], rank_y[order_x])
        cov = (s1, float(np.dot(a, b)), float(a.sum() * b.sum()), sx * sy)
    out = [cov]
    if variances:
        for v, r, sv in ((x, a, sx), (y, b, sy)):
            out.append(zero if sv == 0.0 else
                       (2.0 * n * float(np.dot(v, v)), float(np.dot(r, r)),
                        float(r.sum()) ** 2, sv * sv))
    return out
