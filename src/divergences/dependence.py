r"""Distance covariance family: dCov, dCor, JdCov, CCdCov and their permutation tests;
energy distance and partial distance covariance / correlation (energy statistics).

Samples are arrays of shape ``(n,)`` (univariate) or ``(n, d)`` (``n`` observations of a
``d``-vector); the observations of all arguments are paired row by row. Distances are
Euclidean, ``a_ij = ||x_i - x_j||^exponent`` (``exponent = 1`` by default; any
``0 < exponent < 2`` gives a characterisation of independence, as in dcor's ``exponent``).

Estimators (the same definitions as ``dcor`` 0.7):

* **V-statistic** (``unbiased=False``, the default): with the double-centred matrix
  ``A_ij = a_ij - a_i. / n - a_.j / n + a.. / n^2``,
  ``dCov_n^2(x, y) = (1/n^2) sum_ij A_ij B_ij`` (``dcor.distance_covariance_sqr``); it is
  ``>= 0`` and :func:`distance_covariance` returns its square root, like
  ``dcor.distance_covariance``.
* **U-statistic** (``unbiased=True``): with the U-centred matrix
  ``Ã_ij = a_ij - a_i./(n-2) - a_.j/(n-2) + a../((n-1)(n-2))`` for ``i != j`` and ``Ã_ii = 0``,
  ``dCov_U^2 = (1/(n(n-3))) sum_{i != j} Ã_ij B̃_ij`` (``dcor.u_distance_covariance_sqr``), an
  unbiased estimator of the population ``dCov^2``. It can be negative, so it has no square root:
  ``unbiased=True`` needs ``squared=True``.
* ``dCor^2 = dCov^2(x, y) / sqrt(|dCov^2(x, x) dCov^2(y, y)|)``, and 0 when the denominator
  is 0 (a constant sample), as in dcor.

Algorithms: ``method="auto"`` uses the O(n log n) algorithm of :mod:`divergences._dcov_fast`
when both samples are univariate and no gradient is needed, and the O(n^2) ``"naive"``
algorithm otherwise. The naive algorithm works on blocks of rows (two passes: row sums,
then centred products), so memory stays O(n) beyond a block of about ``2^22`` distances; it
is differentiable in torch. The fast algorithm computes in float64 NumPy and returns the
input's type (no gradient); it agrees with the naive one to about 1e-12 relative at n = 1000.
For independent samples ``dCov^2`` is about ``1/n`` of the sums it is computed from, so
rounding grows with ``n``: against an 80-bit reference we measured relative errors of
``2.5e-10`` at n = 1e5 and ``9e-9`` at n = 1e6 for independent normal data (dcor 0.7:
``8e-10`` and ``3e-8``), and about ``1e-12`` for dependent data. Data of any finite magnitude
work (the fast path standardises first, so nothing overflows).

:func:`hsic` and :func:`hsic_test` live in :mod:`divergences.kernels` and are re-exported here,
with the other dependence measures.

NumPy in gives NumPy out; torch in gives torch out (same device). float16/bfloat16 compute
in float32.

References: Székely, Rizzo & Bakirov (2007), Measuring and testing dependence by correlation
of distances; Székely & Rizzo (2014), Partial distance correlation with methods for
dissimilarities (U-centring); Huo & Székely (2016), Fast computing for distance covariance;
Chakraborty & Zhang (2019), Distance metrics for measuring joint dependence with application
to causal inference (JdCov); Lee, Antonio, Avanzi, Marchi & Zhou (2025), Machine learning
with multitype protected attributes: intersectional fairness through regularisation (CCdCov).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from . import _dcov_fast
from ._arrays import ArrayLike, as_samples, as_tensors, check_choice, check_range, safe_sqrt
from ._permutation import TestResult, check_permutations, permutation_pvalue
from .kernels import hsic, hsic_test

__all__ = [
    "TestResult",
    "concatenated_distance_covariance",
    "distance_correlation",
    "distance_covariance",
    "distance_covariance_test",
    "energy_distance",
    "hsic",
    "hsic_test",
    "joint_distance_covariance",
    "partial_distance_correlation",
    "partial_distance_covariance",
]

METHODS = ("auto", "naive", "fast")
_BLOCK_ELEMENTS = 1 << 22  # distances (times the dimension) per block of rows
_TEST_MATRIX_MAX_N = 2000  # permutation test: permuted matrices up to here, fast path above


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------



def _prepare(
    arrays: Sequence[ArrayLike], names: Sequence[str], *, min_n: int
) -> tuple[list[torch.Tensor], Any]:
    ts, wrap = as_tensors(*arrays, names=names)
    ts = [as_samples(t, n) for t, n in zip(ts, names)]
    sizes = {t.shape[0] for t in ts}
    if len(sizes) > 1:
        listed = ", ".join(f"{n} has {t.shape[0]}" for t, n in zip(ts, names))
        raise ValueError(f"the samples must have the same number of observations; {listed}")
    n = ts[0].shape[0]
    if n < min_n:
        raise ValueError(f"need at least {min_n} observations; got {n}")
    return ts, wrap


def _check_exponent(exponent: float) -> float:
    if isinstance(exponent, bool) or not isinstance(exponent, (int, float, np.floating,
                                                                np.integer)):
        raise TypeError(f"exponent must be a number in (0, 2); got {type(exponent).__name__}")
    e = float(exponent)
    if not 0.0 < e < 2.0:  # outside (0, 2) dCov no longer characterises independence
        raise ValueError(f"exponent must be in the open interval (0, 2); got {exponent!r}")
    return e


def _check_finite(ts: Sequence[torch.Tensor], names: Sequence[str]) -> None:
    for t, name in zip(ts, names):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or infinite values")


def _needs_grad(ts: Sequence[torch.Tensor]) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in ts)


def _use_fast(method: str, ts: Sequence[torch.Tensor], exponent: float = 1.0) -> bool:
    check_choice(method, "method", METHODS)
    univariate = all(t.shape[1] == 1 for t in ts) and exponent == 1.0
    if method == "fast":
        if not univariate:
            raise ValueError("method='fast' needs univariate samples (shape (n,) or (n, 1)) "
                             "and exponent=1")
        return True
    if method == "naive":
        return False
    return univariate and not _needs_grad(ts)


# --------------------------------------------------------------------------------------------
# The O(n^2) blocked algorithm (differentiable)
# --------------------------------------------------------------------------------------------


def _distances(a: torch.Tensor, b: torch.Tensor, exponent: float = 1.0) -> torch.Tensor:
    """``||a_i - b_j||^exponent`` between rows, with a finite gradient at 0."""
    if a.shape[1] == 1 and exponent == 1.0:
        return (a - b.T).abs()
    sq = (a[:, None, :] - b[None, :, :]).square().sum(-1)
    pos = sq > 0
    # the inner where keeps the power's infinite derivative at 0 out of the gradient
    safe = torch.where(pos, sq, torch.ones_like(sq))
    return torch.where(pos, safe.pow(0.5 * exponent), torch.zeros_like(sq))


def _row_blocks(n: int, d: int) -> Iterator[tuple[int, int]]:
    rows = max(1, _BLOCK_ELEMENTS // max(1, n * d))
    for start in range(0, n, rows):
        yield start, min(n, start + rows)


def _centred_blocks(
    ts: Sequence[torch.Tensor], unbiased: bool, exponent: float = 1.0
) -> Iterator[tuple[list[torch.Tensor], torch.Tensor | None]]:
    """Yield blocks of rows of the double-centred (or U-centred) distance matrices.

    Each item is ``(blocks, off_diagonal)``: one ``(rows, n)`` block per sample and, for U-centring,
    the mask of the entries off the diagonal (``None`` for double centring).
    """
    n = ts[0].shape[0]
    d = max(t.shape[1] for t in ts)
    row_sums = []
    for t in ts:
        parts = [_distances(t[s:e], t, exponent).sum(1) for s, e in _row_blocks(n, d)]
        row_sums.append(torch.cat(parts))
    totals = [r.sum() for r in row_sums]
    if unbiased:
        k_row, k_tot = 1.0 / (n - 2), 1.0 / ((n - 1) * (n - 2))
    else:
        k_row, k_tot = 1.0 / n, 1.0 / n**2
    for s, e in _row_blocks(n, d):
        blocks = []
        for t, r, tot in zip(ts, row_sums, totals):
            dist = _distances(t[s:e], t, exponent)
            blocks.append(dist - k_row * r[s:e, None] - k_row * r[None, :] + k_tot * tot)
        mask = None
        if unbiased:
            idx = torch.arange(s, e, device=ts[0].device)
            mask = idx[:, None] != torch.arange(n, device=ts[0].device)[None, :]
        yield blocks, mask


def _naive_stats(
    x: torch.Tensor, y: torch.Tensor, unbiased: bool, exponent: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dCov^2(x, y), dCov^2(x, x), dCov^2(y, y))`` by centred distance matrices."""
    n = x.shape[0]
    sums = [x.new_zeros(()), x.new_zeros(()), x.new_zeros(())]
    for (a, b), mask in _centred_blocks([x, y], unbiased, exponent):
        if mask is not None:
            a = torch.where(mask, a, torch.zeros_like(a))
            b = torch.where(mask, b, torch.zeros_like(b))
        sums[0] = sums[0] + (a * b).sum()
        sums[1] = sums[1] + (a * a).sum()
        sums[2] = sums[2] + (b * b).sum()
    denom = n * (n - 3) if unbiased else n * n
    return sums[0] / denom, sums[1] / denom, sums[2] / denom


# --------------------------------------------------------------------------------------------
# Combining the O(n log n) terms (one place for the estimator formulas)
# --------------------------------------------------------------------------------------------


def _dcov_from_terms(s1: float, s2: float, s3: float, n: int, unbiased: bool) -> float:
    """dCov^2 from ``S1 = sum a_ij b_ij``, ``S2 = sum a_i. b_i.``, ``S3 = a.. b..``."""
    if unbiased:
        return (s1 - 2.0 * s2 / (n - 2) + s3 / ((n - 1) * (n - 2))) / (n * (n - 3))
    return s1 / n**2 - 2.0 * s2 / n**3 + s3 / n**4


def _fast_stats(
    x: torch.Tensor, y: torch.Tensor, unbiased: bool, variances: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    xn = x.detach().cpu().to(torch.float64).numpy()[:, 0]
    yn = y.detach().cpu().to(torch.float64).numpy()[:, 0]
    n = xn.shape[0]
    values = []
    for *terms, scale in _dcov_fast.stats_terms(xn, yn, variances):
        v = _dcov_from_terms(*terms, n, unbiased) * scale
        values.append(torch.tensor(v, dtype=x.dtype, device=x.device))
    if not variances:
        values += [None, None]
    return tuple(values)


def _stats(x: torch.Tensor, y: torch.Tensor, unbiased: bool, method: str,
           variances: bool = True, exponent: float = 1.0):
    """``(dCov^2(x, y), dCov^2(x, x), dCov^2(y, y))``; the last two may be ``None`` when
    ``variances=False`` (the fast path then skips them)."""
    if _use_fast(method, [x, y], exponent):
        return _fast_stats(x, y, unbiased, variances)
    return _naive_stats(x, y, unbiased, exponent)


def _unit_scale(t: torch.Tensor) -> torch.Tensor:
    """``t`` divided by its (constant, detached) largest absolute deviation from the mean.

    Distance correlation is scale invariant, so this changes nothing but the range of the
    intermediate values: ``dCov^2(x, x)`` of data near ``1e200`` would overflow otherwise.
    """
    with torch.no_grad():
        s = (t - t.mean(0)).abs().max()
        s = torch.where(s > 0, s, torch.ones_like(s))
    return t / s



def _check_squared(unbiased: bool, squared: bool, what: str) -> None:
    if not isinstance(unbiased, bool):
        raise TypeError(f"unbiased must be a bool; got {type(unbiased).__name__}")
    if not isinstance(squared, bool):
        raise TypeError(f"squared must be a bool; got {type(squared).__name__}")
    if unbiased and not squared:
        raise ValueError(
            f"the unbiased (U-statistic) {what} can be negative and has no square root; "
            "pass squared=True"
        )


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def distance_covariance(
    x: ArrayLike,
    y: ArrayLike,
    /,
    *,
    unbiased: bool = False,
    squared: bool = False,
    method: str = "auto",
    exponent: float = 1.0,
) -> Any:
    r"""Distance covariance of paired samples ``x`` (n, p) and ``y`` (n, q).

    ``squared=False`` (default): ``dCov_n(x, y) = sqrt(dCov_n^2)``, with the V-statistic
    ``dCov_n^2 = (1/n^2) sum_ij A_ij B_ij`` of the double-centred distance matrices (the value
    of ``dcor.distance_covariance``). ``squared=True``: ``dCov_n^2`` itself
    (``dcor.distance_covariance_sqr``). ``unbiased=True, squared=True``: the U-statistic
    ``(1/(n(n-3))) sum_{i != j} Ã_ij B̃_ij`` (``dcor.u_distance_covariance_sqr``), which needs
    ``n >= 4`` and can be negative.

    ``method``: ``"auto"`` (O(n log n) for univariate samples with ``exponent=1`` unless a
    gradient is needed, as dcor), ``"naive"`` (O(n^2), differentiable) or ``"fast"``
    (univariate, ``exponent=1`` only). ``exponent`` (``0 < exponent < 2``) raises the
    distances to that power, ``a_ij = ||x_i - x_j||^exponent`` (dcor's ``exponent``).

    >>> import numpy as np
    >>> x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    >>> y = np.array([1.0, 4.0, 9.0, 16.0, 25.0])
    >>> round(float(distance_covariance(x, y, squared=True)), 6)
    7.296
    >>> bool(np.isclose(distance_covariance(x, y) ** 2, distance_covariance(x, y, squared=True)))
    True
    >>> round(float(distance_covariance(x, y, exponent=0.5)), 6)   # dcor: 0.954937
    0.954937
    """
    _check_squared(unbiased, squared, "distance covariance")
    exponent = _check_exponent(exponent)
    ts, wrap = _prepare([x, y], ("x", "y"), min_n=4 if unbiased else 1)
    _check_finite(ts, ("x", "y"))
    cov, _, _ = _stats(ts[0], ts[1], unbiased, method, variances=False, exponent=exponent)
    return wrap(cov if squared else safe_sqrt(cov))


def distance_correlation(
    x: ArrayLike,
    y: ArrayLike,
    /,
    *,
    unbiased: bool = False,
    squared: bool = False,
    method: str = "auto",
    exponent: float = 1.0,
) -> Any:
    r"""Distance correlation of paired samples ``x`` (n, p) and ``y`` (n, q), in [0, 1].

    ``dCor^2 = dCov^2(x, y) / sqrt(|dCov^2(x, x) dCov^2(y, y)|)`` (0 when the denominator is
    0, i.e. a constant sample). ``squared=False`` returns ``dCor = sqrt(dCor^2)`` from the
    V-statistics (``dcor.distance_correlation``); ``squared=True`` returns ``dCor^2``
    (``dcor.distance_correlation_sqr``); ``unbiased=True, squared=True`` uses the U-statistics
    (``dcor.u_distance_correlation_sqr``, bias-corrected, can be slightly negative).
    Invariant under translation, orthogonal transformation and scaling of either sample.
    ``exponent`` and ``method`` as in :func:`distance_covariance`.

    >>> import numpy as np
    >>> x = np.linspace(-1.0, 1.0, 9)
    >>> float(distance_correlation(x, x))
    1.0
    >>> round(float(distance_correlation(x, x**2)), 6)
    0.500268
    """
    _check_squared(unbiased, squared, "distance correlation")
    exponent = _check_exponent(exponent)
    ts, wrap = _prepare([x, y], ("x", "y"), min_n=4 if unbiased else 1)
    _check_finite(ts, ("x", "y"))
    cov, vx, vy = _stats(_unit_scale(ts[0]), _unit_scale(ts[1]), unbiased, method,
                         exponent=exponent)
    den2 = (vx * vy).abs()
    pos = den2 > 0
    den = torch.where(pos, den2, torch.ones_like(den2)).sqrt()
    r2 = torch.where(pos, cov / den, torch.zeros_like(cov))
    return wrap(r2 if squared else safe_sqrt(r2))


def joint_distance_covariance(*xs: ArrayLike, c: float = 1.0) -> Any:
    r"""Joint distance covariance ``JdCov^2(X_1, ..., X_d; c)`` (U-statistic), ``d >= 2``.

    Chakraborty & Zhang (2019): ``JdCov^2 = E[prod_i (U_i(X_i, X_i') + c)] - c^d`` with
    ``U_i(x, x') = E|x - X_i'| + E|X_i - x'| - |x - x'| - E|X_i - X_i'|``, which expands to
    ``c^(d-2) sum_{i<j} dCov^2(X_i, X_j) + c^(d-3) sum_{i<j<k} dCov^2(X_i, X_j, X_k) + ...
    + dCov^2(X_1, ..., X_d)``; it is 0 if and only if the ``X_i`` are mutually independent.
    The estimator replaces ``U_i`` by minus the U-centred distance matrix ``-Ã_i``:

    ``JdCov_n^2 = (1/(n(n-3))) sum_{k != l} prod_i (c - Ã_i(k, l)) - c^d (n-1)/(n-3)``.

    The subtracted constant removes the ``c^d`` term exactly (the first-order terms vanish
    because U-centred matrices have zero row sums), so for ``d = 2`` the value equals the
    U-statistic ``dCov_U^2(X_1, X_2)`` for every ``c``. Needs ``n >= 4``. Differentiable.
    Not scale invariant (as in the paper); standardise the samples first when they have
    different units.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=50), rng.normal(size=50)
    >>> bool(np.isclose(joint_distance_covariance(x, y, c=2.0),
    ...                 distance_covariance(x, y, unbiased=True, squared=True)))
    True
    """
    if len(xs) < 2:
        raise ValueError(f"joint_distance_covariance needs at least 2 samples; got {len(xs)}")
    c = check_range(c, "c", 0.0)
    names = [f"xs[{i}]" for i in range(len(xs))]
    ts, wrap = _prepare(xs, names, min_n=4)
    n, d = ts[0].shape[0], len(ts)
    total = ts[0].new_zeros(())
    for blocks, mask in _centred_blocks(ts, unbiased=True):
        prod = c - blocks[0]
        for b in blocks[1:]:
            prod = prod * (c - b)
        total = total + torch.where(mask, prod, torch.zeros_like(prod)).sum()
    value = total / (n * (n - 3)) - c**d * (n - 1) / (n - 3)
    return wrap(value)


def concatenated_distance_covariance(
    x: ArrayLike, *attributes: ArrayLike, unbiased: bool = True
) -> Any:
    r"""Concatenated distance covariance ``CCdCov^2(x; s_1, ..., s_k) = dCov^2(x, [s_1 ... s_k])``.

    Lee et al. (2025): the distance covariance between ``x`` (e.g. the predictions) and the
    vector formed by concatenating the attributes ``s_j`` (each ``(n,)`` or ``(n, d_j)``) along
    the feature axis. It is 0 (in population) if and only if ``x`` is independent of the
    attributes jointly, which catches intersectional (gerrymandering) dependence that
    per-attribute penalties miss. ``unbiased=True`` (default, the paper's penalty) gives the
    U-statistic, ``False`` the V-statistic. Differentiable.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> s1, s2 = rng.integers(0, 2, 40), rng.normal(size=40)
    >>> x = s1 * s2 + 0.1 * rng.normal(size=40)
    >>> bool(concatenated_distance_covariance(x, s1, s2) > 0.01)
    True
    """
    if not attributes:
        raise ValueError("concatenated_distance_covariance needs at least one attribute")
    if not isinstance(unbiased, bool):
        raise TypeError(f"unbiased must be a bool; got {type(unbiased).__name__}")
    names = ["x"] + [f"attributes[{i}]" for i in range(len(attributes))]
    ts, wrap = _prepare([x, *attributes], names, min_n=4 if unbiased else 1)
    s = torch.cat(ts[1:], dim=1)
    cov, _, _ = _stats(ts[0], s, unbiased, "auto", variances=False)
    return wrap(cov)


def _mean_distance(a: torch.Tensor, b: torch.Tensor, exponent: float) -> torch.Tensor:
    """``(1 / (n m)) sum_ij ||a_i - b_j||^exponent`` by blocks of rows (O(n) memory)."""
    rows = max(1, _BLOCK_ELEMENTS // max(1, b.shape[0] * a.shape[1]))
    total = a.new_zeros(())
    for s in range(0, a.shape[0], rows):
        total = total + _distances(a[s:s + rows], b, exponent).sum()
    return total / (a.shape[0] * b.shape[0])


def energy_distance(x: ArrayLike, y: ArrayLike, /, *, exponent: float = 1.0) -> Any:
    r"""Energy distance between the samples ``x`` (n, d) and ``y`` (m, d).

    ``E(x, y) = 2 mean_ij ||x_i - y_j||^a - mean_ij ||x_i - x_j||^a - mean_ij ||y_i - y_j||^a``
    with ``a = exponent`` (``0 < a < 2``; default 1), all means over every pair including
    ``i = j`` (V-statistics, the value of ``dcor.energy_distance``). It is ``>= 0`` and 0 in
    population only when the distributions are equal (Székely & Rizzo 2013, Energy statistics:
    a class of statistics based on distances). The samples may have different sizes but the
    same dimension. For 1-D samples with ``exponent=1`` and no gradient needed the sums come
    from sorted prefix sums in O((n + m) log(n + m)); otherwise O(nm) by blocks of rows,
    differentiable in torch.

    >>> import numpy as np
    >>> float(energy_distance(np.array([0.0, 1.0]), np.array([2.0, 3.0])))
    3.0
    """
    exponent = _check_exponent(exponent)
    ts, wrap = as_tensors(x, y, names=("x", "y"))
    a, b = as_samples(ts[0], "x"), as_samples(ts[1], "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y must have the same dimension; x has {a.shape[1]} columns, "
                         f"y has {b.shape[1]}")
    if a.shape[0] == 0 or b.shape[0] == 0:
        raise ValueError("x and y need at least one observation each")
    _check_finite([a, b], ("x", "y"))
    if a.shape[1] == 1 and exponent == 1.0 and not _needs_grad([a, b]):
        an = a.detach().cpu().double().numpy()[:, 0]
        bn = b.detach().cpu().double().numpy()[:, 0]
        n, m = an.shape[0], bn.shape[0]
        # the cross sum is the pooled sample's total less the two within-sample totals
        sxx, syy = float(_dcov_fast.total_distance(an)), float(_dcov_fast.total_distance(bn))
        sxy = 0.5 * (float(_dcov_fast.total_distance(np.concatenate([an, bn]))) - sxx - syy)
        value = 2.0 * sxy / (n * m) - sxx / n**2 - syy / m**2
        return wrap(torch.tensor(value, dtype=a.dtype, device=a.device))
    value = (2.0 * _mean_distance(a, b, exponent) - _mean_distance(a, a, exponent)
             - _mean_distance(b, b, exponent))
    return wrap(value)


def _u_products(ts: Sequence[torch.Tensor], exponent: float) -> torch.Tensor:
    """All ``sum_{i != j} Ã_ij B̃_ij / (n(n-3))`` between the U-centred matrices of ``ts``."""
    n = ts[0].shape[0]
    k = len(ts)
    out = ts[0].new_zeros((k, k))
    for blocks, mask in _centred_blocks(ts, True, exponent):
        flat = torch.stack([torch.where(mask, b, torch.zeros_like(b)).reshape(-1)
                            for b in blocks])
        out = out + flat @ flat.T
    return out / (n * (n - 3))


def partial_distance_covariance(
    x: ArrayLike, y: ArrayLike, z: ArrayLike, /, *, exponent: float = 1.0
) -> Any:
    r"""Partial distance covariance ``pdCov(x, y; z)`` (Székely & Rizzo 2014).

    With ``Ã, B̃, C̃`` the U-centred distance matrices of ``x``, ``y``, ``z`` (see the module
    docstring) and the inner product ``<A, B> = (1/(n(n-3))) sum_{i != j} A_ij B_ij``, the
    projection of ``Ã`` orthogonal to ``C̃`` is ``P_z(x) = Ã - (<Ã, C̃> / <C̃, C̃>) C̃`` (``Ã``
    itself when ``<C̃, C̃> = 0``), and ``pdCov = <P_z(x), P_z(y)>
    = <Ã, B̃> - <Ã, C̃><B̃, C̃> / <C̃, C̃>`` (``dcor.partial_distance_covariance``). It can be
    negative. Needs ``n >= 4``; differentiable; ``exponent`` as in :func:`distance_covariance`.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=200)
    >>> x, y = z + 0.1 * rng.normal(size=200), z + 0.1 * rng.normal(size=200)
    >>> bool(abs(partial_distance_covariance(x, y, z)) < 0.1 * distance_covariance(x, y)**2)
    True
    """
    exponent = _check_exponent(exponent)
    ts, wrap = _prepare([x, y, z], ("x", "y", "z"), min_n=4)
    _check_finite(ts, ("x", "y", "z"))
    g = _u_products(ts, exponent)
    cc = g[2, 2]
    pos = cc != 0
    safe = torch.where(pos, cc, torch.ones_like(cc))
    return wrap(g[0, 1] - torch.where(pos, g[0, 2] * g[1, 2] / safe, torch.zeros_like(cc)))


def partial_distance_correlation(
    x: ArrayLike, y: ArrayLike, z: ArrayLike, /, *, exponent: float = 1.0
) -> Any:
    r"""Partial distance correlation ``pdCor(x, y; z)`` (Székely & Rizzo 2014), in [-1, 1].

    With ``R_uv = <U, V> / sqrt(<U, U><V, V>)`` the bias-corrected squared distance
    correlation of the U-centred matrices (0 when the denominator is 0, clipped to [-1, 1]),
    ``pdCor = (R_xy - R_xz R_yz) / (sqrt(1 - R_xz^2) sqrt(1 - R_yz^2))``, and 0 when the
    denominator is 0 (``dcor.partial_distance_correlation``). Scale invariant; needs
    ``n >= 4``; differentiable; ``exponent`` as in :func:`distance_covariance`.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=200)
    >>> x, y = z + 0.1 * rng.normal(size=200), z + 0.1 * rng.normal(size=200)
    >>> bool(partial_distance_correlation(x, y, z) < 0.2 < distance_correlation(x, y))
    True
    """
    exponent = _check_exponent(exponent)
    ts, wrap = _prepare([x, y, z], ("x", "y", "z"), min_n=4)
    _check_finite(ts, ("x", "y", "z"))
    g = _u_products([_unit_scale(t) for t in ts], exponent)

    def corr(i: int, j: int) -> torch.Tensor:
        d2 = g[i, i] * g[j, j]
        pos = d2 != 0
        r = torch.where(pos, g[i, j] / torch.where(pos, d2, torch.ones_like(d2)).sqrt(),
                        torch.zeros_like(d2))
        return r.clamp(-1.0, 1.0)

    rxy, rxz, ryz = corr(0, 1), corr(0, 2), corr(1, 2)
    den = safe_sqrt(1.0 - rxz**2) * safe_sqrt(1.0 - ryz**2)
    pos = den != 0
    out = torch.where(pos, (rxy - rxz * ryz) / torch.where(pos, den, torch.ones_like(den)),
                      torch.zeros_like(den))
    return wrap(out)


def distance_covariance_test(
    x: ArrayLike,
    y: ArrayLike,
    /,
    *,
    permutations: int = 999,
    seed: int | None = None,
    exponent: float = 1.0,
) -> TestResult:
    r"""Permutation test of independence with the V-statistic ``dCov_n^2(x, y)``.

    The rows of ``y`` are permuted ``permutations`` times (``numpy.random.default_rng(seed)``);
    the p-value is ``(1 + #{dCov^2_perm >= dCov^2_obs}) / (1 + permutations)``, which is never 0
    and gives an exact level-``alpha`` test. Returns a :class:`TestResult` (``statistic``,
    ``pvalue``). Up to ``n = 2000`` (or for multivariate samples) the centred distance matrices
    are computed once (O(n^2) memory) and permuted; above that, univariate samples use the
    O(n log n) algorithm for every permutation (O(n) memory; ``exponent=1`` only, as there is
    no fast algorithm for other exponents). ``exponent`` as in :func:`distance_covariance`.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=60)
    >>> distance_covariance_test(x, x**2, permutations=99, seed=0).pvalue
    0.01
    """
    p = check_permutations(permutations)
    exponent = _check_exponent(exponent)
    ts, _ = _prepare([x, y], ("x", "y"), min_n=2)
    _check_finite(ts, ("x", "y"))
    rng = np.random.default_rng(seed)
    if ts[0].shape[0] > _TEST_MATRIX_MAX_N and _use_fast("auto", ts, exponent):
        xn = ts[0].detach().cpu().double().numpy()[:, 0]
        yn = ts[1].detach().cpu().double().numpy()[:, 0]
        n = xn.shape[0]

        def stat(v: np.ndarray) -> float:
            *terms, scale = _dcov_fast.stats_terms(xn, v, variances=False)[0]
            return _dcov_from_terms(*terms, n, False) * scale

        observed = stat(yn)
        null = np.array([stat(yn[rng.permutation(n)]) for _ in range(p)])
        return TestResult(observed, permutation_pvalue(observed, null), "permutation", p)
    with torch.no_grad():
        a, b = _full_centred(ts, exponent)
    an = a.cpu().numpy()
    bn = b.cpu().numpy()
    n = an.shape[0]
    observed = float(np.sum(an * bn)) / n**2
    null = np.empty(p)
    for k in range(p):
        perm = rng.permutation(n)
        null[k] = float(np.sum(an * bn[np.ix_(perm, perm)])) / n**2
    return TestResult(observed, permutation_pvalue(observed, null), "permutation", p)


def _full_centred(ts: Sequence[torch.Tensor], exponent: float = 1.0) -> list[torch.Tensor]:
    """Whole double-centred matrices (for the permutation test), built from row blocks."""
    out = [[], []]
    for blocks, _ in _centred_blocks([ts[0].double(), ts[1].double()], False, exponent):
        out[0].append(blocks[0])
        out[1].append(blocks[1])
    return [torch.cat(out[0]), torch.cat(out[1])]

