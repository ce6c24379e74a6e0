r"""Kernel measures between samples: MMD, Cauchy-Schwarz divergence, CS-QMI and HSIC.

Samples are arrays of shape ``(n,)`` (univariate) or ``(n, d)``; ``x`` and ``y`` may have
different sizes for the two-sample measures (:func:`mmd`, :func:`cauchy_schwarz`) and must be
paired row by row for the dependence measures (:func:`cs_mutual_information`, :func:`hsic`).

Kernels (``kernel=``), functions of the Euclidean distance ``r = ||x - y||`` and a bandwidth
``h > 0``; every one has ``k(x, x) = 1``:

* ``"gaussian"``: ``k = exp(-r^2 / (2 h^2))`` (the convention everywhere in this package),
* ``"laplacian"``: ``k = exp(-r / h)``,
* ``"imq"`` (inverse multiquadric): ``k = (1 + r^2 / h^2)^(-1/2)``,
* ``"rational_quadratic"`` (shape ``alpha = 1``): ``k = (1 + r^2 / (2 h^2))^(-1)``.

Bandwidth (``bandwidth=``): a positive number, or ``"median"``, the median heuristic:
``h`` is the median of the distances ``||z_i - z_j||`` over the pairs ``i < j`` of the pooled
sample (``x`` and ``y`` stacked for the two-sample measures; each variable on its own for the
dependence measures). Above 1,000 points the median is taken over 1,000 evenly spaced points
(deterministic). If that median is 0 (mostly tied data) the mean positive distance is used,
and 1 if all points coincide. The heuristic is computed without gradient: ``h`` is a constant
for autograd.

Kernel sums are computed block by block in log space (``log k`` and log-sum-exp), so no Gram
matrix beyond a block of about ``2^22`` entries is formed by :func:`mmd`,
:func:`cauchy_schwarz` and :func:`cs_mutual_information`, and the logarithms of tiny kernel
means never underflow. HSIC forms the ``n x n`` Gram matrices.

NumPy in gives NumPy out; torch in gives torch out, differentiable in the samples, on the same
device. Values are in nats where a logarithm is involved.

References: Gretton et al. (2012), A kernel two-sample test (JMLR); Principe (2010),
Information theoretic learning (Cauchy-Schwarz divergence and quadratic MI); Yu et al. (2024),
Cauchy-Schwarz divergence information bottleneck; Gretton et al. (2005, 2008), Measuring
statistical dependence with Hilbert-Schmidt norms / A kernel statistical test of
independence; Song et al. (2012), Feature selection via dependence maximization (unbiased HSIC).
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ._permutation import TestResult, check_permutations, permutation_pvalue


class _LazyModule:
    """A module imported on its first attribute access.

    :func:`mmd_test` and :func:`median_bandwidth` compute NumPy input in NumPy, so that the
    comparison report (and anything else that passes NumPy arrays) never pays torch's import;
    torch and the torch-side array plumbing load when a function needs them.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


if TYPE_CHECKING:
    import torch

    from . import _arrays
    from ._arrays import ArrayLike
else:
    torch = _LazyModule("torch")
    _arrays = _LazyModule("divergences._arrays")
    ArrayLike = Any

__all__ = [
    "KERNELS",
    "TestResult",
    "cauchy_schwarz",
    "cs_mutual_information",
    "hsic",
    "hsic_test",
    "median_bandwidth",
    "mmd",
    "mmd_linear",
    "mmd_test",
]

KERNELS = ("gaussian", "laplacian", "imq", "rational_quadratic")
_BLOCK_ELEMENTS = 1 << 22
_MEDIAN_POINTS = 1000


# --------------------------------------------------------------------------------------------
# Kernels in log space
# --------------------------------------------------------------------------------------------


def _xp(a: Any) -> Any:
    """The array namespace of ``a``: NumPy for NumPy arrays, torch for tensors."""
    return np if isinstance(a, np.ndarray) else torch


def _is_torch(*arrays: Any) -> bool:
    # a tensor cannot exist unless torch was imported: this test never imports it
    t = sys.modules.get("torch")
    return t is not None and any(isinstance(a, t.Tensor) for a in arrays)


def _sq_distances(a: Any, b: Any) -> Any:
    """Squared Euclidean distances between rows (exact differences, no cancellation),
    accumulated one coordinate at a time: an ``(n, m)`` temporary, never ``(n, m, d)``."""
    out = (a[:, :1] - b[:, :1].T) ** 2
    for k in range(1, a.shape[1]):
        out = out + (a[:, k:k + 1] - b[:, k:k + 1].T) ** 2
    return out


def _sqrt0(x: Any) -> Any:
    """``sqrt(max(x, 0))``; on tensors with gradient 0 at 0 (:func:`_arrays.safe_sqrt`)."""
    if isinstance(x, np.ndarray):
        return np.sqrt(np.maximum(x, 0.0))
    return _arrays.safe_sqrt(x)


def _log_kernel(kernel: str, h: torch.Tensor | float) -> Callable[[Any], Any]:
    """``log k`` as a function of the squared distance (NumPy or torch, as it comes)."""
    if kernel == "gaussian":
        return lambda sq: -sq / (2.0 * h * h)
    if kernel == "laplacian":
        return lambda sq: -_sqrt0(sq) / h
    if kernel == "imq":
        return lambda sq: -0.5 * _xp(sq).log1p(sq / (h * h))
    return lambda sq: -_xp(sq).log1p(sq / (2.0 * h * h))


def _row_blocks(n: int, m: int, d: int):
    rows = max(1, _BLOCK_ELEMENTS // max(1, m * d))
    for start in range(0, n, rows):
        yield start, min(n, start + rows)


def _log_kernel_sum(
    a: torch.Tensor, b: torch.Tensor, logk: Callable, *, exclude_diagonal: bool = False
) -> torch.Tensor:
    """``log sum_ij k(a_i, b_j)`` (over ``i != j`` with ``exclude_diagonal``), blockwise."""
    parts = []
    for s, e in _row_blocks(a.shape[0], b.shape[0], a.shape[1]):
        lk = logk(_sq_distances(a[s:e], b))
        if exclude_diagonal:
            idx = torch.arange(s, e, device=a.device)
            diag = idx[:, None] == torch.arange(b.shape[0], device=a.device)[None, :]
            lk = lk.masked_fill(diag, -math.inf)
        parts.append(torch.logsumexp(lk.reshape(-1), 0))
    return torch.logsumexp(torch.stack(parts), 0)


def _log_row_sums(a: torch.Tensor, logk: Callable) -> torch.Tensor:
    """``log sum_j k(a_i, a_j)`` for every ``i``."""
    parts = []
    for s, e in _row_blocks(a.shape[0], a.shape[0], a.shape[1]):
        parts.append(torch.logsumexp(logk(_sq_distances(a[s:e], a)), 1))
    return torch.cat(parts)


def _gram(a: Any, logk: Callable) -> Any:
    """The Gram matrix ``k(a_i, a_j)`` (NumPy or torch, as ``a`` comes)."""
    return _xp(a).exp(logk(_sq_distances(a, a)))


# --------------------------------------------------------------------------------------------
# Input handling and bandwidth
# --------------------------------------------------------------------------------------------



def _check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    # an accepted value costs no import; a rejected one gets the package's one error message
    if isinstance(value, str) and value in choices:
        return value
    return _arrays.check_choice(value, name, choices)


def _check_positive(value: Any, name: str) -> float:
    if (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)) and value > 0):
        return float(value)
    return _arrays.check_range(value, name, 0.0, low_open=True)


def _numpy_samples(arrays: tuple[Any, ...], names: tuple[str, ...]) -> list[np.ndarray]:
    """NumPy (or list) samples as ``(n, d)`` float arrays of one dtype, as the torch path
    would compute them: integers and booleans in float64, float16 in float32, float32 kept
    unless mixed with float64. Invalid input is handed to the torch path's checks, so that
    the errors are the same whichever path runs."""
    out = []
    for a, name in zip(arrays, names):
        try:
            arr = np.asarray(a)
        except (ValueError, TypeError):
            arr = np.asarray([], dtype=object)
        if arr.dtype.kind in "biu":
            arr = arr.astype(np.float64)
        elif arr.dtype == np.float16:
            arr = arr.astype(np.float32)
        elif arr.dtype.kind != "f":
            _arrays._to_numpy(a, name)  # raises the TypeError that names the argument
            raise TypeError(f"{name} must be an array of real numbers")
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or not np.isfinite(arr).all():
            _arrays.as_samples(torch.from_numpy(arr), name)  # raises the shape/finite error
        out.append(arr)
    dtype = np.result_type(*out)
    return [np.ascontiguousarray(a, dtype=dtype) for a in out]


def _prepare(
    x: ArrayLike, y: ArrayLike, *, paired: bool, min_n: int = 1, numpy_ok: bool = False
) -> tuple[Any, Any, Any]:
    """Both samples as ``(n, d)`` arrays of one dtype: torch tensors (and the wrapper back to
    the caller's kind), or with ``numpy_ok`` NumPy arrays where no tensor was passed (the
    wrapper is then ``None``)."""
    if numpy_ok and not _is_torch(x, y):
        tx, ty = _numpy_samples((x, y), ("x", "y"))
        wrap = None
    else:
        (tx, ty), wrap = _arrays.as_tensors(x, y, names=("x", "y"))
        tx, ty = _arrays.as_samples(tx, "x"), _arrays.as_samples(ty, "y")
    if paired and tx.shape[0] != ty.shape[0]:
        raise ValueError(
            "x and y must have the same number of observations (paired samples); got "
            f"{tx.shape[0]} and {ty.shape[0]}"
        )
    if not paired and tx.shape[1] != ty.shape[1]:
        raise ValueError(
            f"x and y must have the same dimension; got {tx.shape[1]} and {ty.shape[1]}"
        )
    for t, name in ((tx, "x"), (ty, "y")):
        if t.shape[0] < min_n:
            raise ValueError(f"{name} needs at least {min_n} observations; got {t.shape[0]}")
    return tx, ty, wrap


def _as_numpy64(a: Any) -> np.ndarray:
    if isinstance(a, np.ndarray):
        return a.astype(np.float64)
    return a.detach().double().cpu().numpy()


def _median_heuristic(z: Any) -> float:
    # the same points, pairs and float64 arithmetic for NumPy and torch samples
    if z.shape[0] > _MEDIAN_POINTS:
        idx = np.linspace(0, z.shape[0] - 1, _MEDIAN_POINTS).round().astype(np.int64)
        z = z[idx] if isinstance(z, np.ndarray) else z[torch.as_tensor(idx, device=z.device)]
    n = z.shape[0]
    if n < 2:
        return 1.0
    iu, ju = np.triu_indices(n, k=1)
    if isinstance(z, np.ndarray):
        sq = _sq_distances(z, z)[iu, ju]
    else:
        with torch.no_grad():
            sq = _sq_distances(z.detach(), z.detach())
        sq = _as_numpy64(sq)[iu, ju]
    d = np.sqrt(np.maximum(_as_numpy64(sq), 0.0))
    med = float(np.median(d))  # the mean of the middle two
    if med > 0:
        return med
    pos = d[d > 0]
    return float(pos.mean()) if pos.size else 1.0


def _concat(samples: tuple[Any, ...]) -> Any:
    if isinstance(samples[0], np.ndarray):
        return np.concatenate(samples, 0)
    return torch.cat(samples, 0)


def _bandwidth(bandwidth: Any, *samples: Any, name: str = "bandwidth") -> float:
    if isinstance(bandwidth, str):
        _check_choice(bandwidth, name, ("median",))
        return _median_heuristic(_concat(samples))
    return _check_positive(bandwidth, name)


def median_bandwidth(x: ArrayLike, y: ArrayLike | None = None) -> float:
    """The median heuristic: median pairwise distance of the pooled sample ``[x; y]``.

    See the module notes for the subsampling rule above 1,000 points and the fallbacks for
    tied data. Returns a Python float; NumPy input is computed in NumPy (torch is not
    imported), tensors in torch, with equal results.

    >>> median_bandwidth([0.0, 1.0, 3.0])
    2.0
    """
    arrays = (x,) if y is None else (x, y)
    names = ("x", "y")[: len(arrays)]
    if _is_torch(*arrays):
        ts, _ = _arrays.as_tensors(*arrays, names=names)
        return _median_heuristic(torch.cat([_arrays.as_samples(t, n)
                                            for t, n in zip(ts, names)], 0))
    return _median_heuristic(np.concatenate(_numpy_samples(arrays, names), 0))


# --------------------------------------------------------------------------------------------
# MMD
# --------------------------------------------------------------------------------------------


def _mmd_sq(tx: torch.Tensor, ty: torch.Tensor, logk: Callable, unbiased: bool) -> torch.Tensor:
    n, m = tx.shape[0], ty.shape[0]
    if unbiased:
        kxx = torch.exp(_log_kernel_sum(tx, tx, logk, exclude_diagonal=True)) / (n * (n - 1))
        kyy = torch.exp(_log_kernel_sum(ty, ty, logk, exclude_diagonal=True)) / (m * (m - 1))
    else:
        kxx = torch.exp(_log_kernel_sum(tx, tx, logk)) / (n * n)
        kyy = torch.exp(_log_kernel_sum(ty, ty, logk)) / (m * m)
    kxy = torch.exp(_log_kernel_sum(tx, ty, logk)) / (n * m)
    return kxx + kyy - 2.0 * kxy


def mmd(
    x: ArrayLike,
    y: ArrayLike,
    /,
    *,
    kernel: str = "gaussian",
    bandwidth: float | str = "median",
    unbiased: bool = True,
) -> Any:
    r"""Squared maximum mean discrepancy ``MMD^2(P, Q)`` from ``x ~ P`` (n, d), ``y ~ Q`` (m, d).

    ``unbiased=True`` (default): the U-statistic
    ``1/(n(n-1)) sum_{i != j} k(x_i, x_j) + 1/(m(m-1)) sum_{i != j} k(y_i, y_j)
    - 2/(nm) sum_ij k(x_i, y_j)``, unbiased for ``MMD^2`` and so negative at times when
    ``P = Q``; needs ``n, m >= 2``. ``unbiased=False``: the V-statistic (all pairs, diagonals
    included, means over ``n^2`` and ``m^2``), ``>= 0`` and equal to the squared RKHS distance
    between the empirical mean embeddings. Symmetric in ``x, y``. See the module notes for
    ``kernel`` and ``bandwidth``.

    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0]]); y = np.array([[0.0], [2.0]])
    >>> k = lambda a, b: np.exp(-(a - b) ** 2 / 2)
    >>> v = mmd(x, y, bandwidth=1.0, unbiased=False)
    >>> bool(np.isclose(v, (2 + 2 * k(0, 1)) / 4 + (2 + 2 * k(0, 2)) / 4
    ...                   - 2 * (k(0, 0) + k(0, 2) + k(1, 0) + k(1, 2)) / 4))
    True
    """
    if not isinstance(unbiased, bool):
        raise TypeError(f"unbiased must be a bool; got {type(unbiased).__name__}")
    _check_choice(kernel, "kernel", KERNELS)
    tx, ty, wrap = _prepare(x, y, paired=False, min_n=2 if unbiased else 1)
    h = _bandwidth(bandwidth, tx, ty)
    return wrap(_mmd_sq(tx, ty, _log_kernel(kernel, h), unbiased))


def mmd_linear(
    x: ArrayLike,
    y: ArrayLike,
    /,
    *,
    kernel: str = "gaussian",
    bandwidth: float | str = "median",
) -> Any:
    r"""Linear-time unbiased estimate of ``MMD^2`` (Gretton et al. 2012, section 6).

    With ``m = min(n_x, n_y) // 2`` pairs, ``MMD_l^2 = (1/m) sum_i h_i`` where
    ``h_i = k(x_{2i}, x_{2i+1}) + k(y_{2i}, y_{2i+1}) - k(x_{2i}, y_{2i+1}) - k(x_{2i+1}, y_{2i})``
    (0-based; observations beyond ``2m`` are unused). O(n) time and memory; higher variance
    than :func:`mmd`. The median bandwidth uses at most 1,000 pooled points, so it stays cheap.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2)) + 1.0
    >>> bool(mmd_linear(x, y) > 0.1)
    True
    """
    _check_choice(kernel, "kernel", KERNELS)
    tx, ty, wrap = _prepare(x, y, paired=False, min_n=2)
    h = _bandwidth(bandwidth, tx, ty)
    logk = _log_kernel(kernel, h)
    m = min(tx.shape[0], ty.shape[0]) // 2
    x1, x2 = tx[0 : 2 * m : 2], tx[1 : 2 * m : 2]
    y1, y2 = ty[0 : 2 * m : 2], ty[1 : 2 * m : 2]

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(logk((a - b).square().sum(-1)))

    return wrap((k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)).mean())


def mmd_test(
    x: ArrayLike,
    y: ArrayLike,
    /,
    *,
    kernel: str = "gaussian",
    bandwidth: float | str = "median",
    permutations: int = 999,
    seed: int | None = None,
) -> TestResult:
    r"""Permutation two-sample test with the unbiased ``MMD^2`` statistic.

    The pooled sample is relabelled at random ``permutations`` times
    (``numpy.random.default_rng(seed)``), with the bandwidth fixed from the observed pooled
    sample; ``pvalue = (1 + #{MMD^2_perm >= MMD^2_obs}) / (1 + permutations)``. The Gram
    matrix of the pooled sample is formed once (``N^2`` float64 values for ``N`` pooled
    points); every statistic, observed and permuted, is computed from it by one formula
    (:func:`_mmd_from_labels`). NumPy (or list) input is computed in NumPy without importing
    torch; tensors in torch (float64 Gram matrix, no gradient); both give the same result.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(40, 2)), rng.normal(size=(40, 2)) + 1.5
    >>> mmd_test(x, y, permutations=99, seed=0).pvalue
    0.01
    """
    p = check_permutations(permutations)
    _check_choice(kernel, "kernel", KERNELS)
    tx, ty, _ = _prepare(x, y, paired=False, min_n=2, numpy_ok=True)
    h = _bandwidth(bandwidth, tx, ty)
    z = _concat((tx, ty))
    if isinstance(z, np.ndarray):
        k = _gram(z.astype(np.float64), _log_kernel(kernel, h))
    else:
        with torch.no_grad():
            k = _gram(z.double(), _log_kernel(kernel, h)).cpu().numpy()
    np.fill_diagonal(k, 0.0)
    n = tx.shape[0]
    rng = np.random.default_rng(seed)
    labels = np.zeros((z.shape[0], _PERMUTATION_BATCH))
    null = np.empty(p)
    for s in range(0, p, _PERMUTATION_BATCH):
        b = min(_PERMUTATION_BATCH, p - s)
        labels[:] = 0.0
        for j in range(b):
            labels[rng.permutation(z.shape[0])[:n], j] = 1.0
        null[s:s + b] = _mmd_from_labels(k, labels[:, :b], n)
    observed = float(_mmd_from_labels(k, (np.arange(z.shape[0]) < n)[:, None] * 1.0, n)[0])
    return TestResult(observed, permutation_pvalue(observed, null), "permutation", p)


#: Permutations of :func:`mmd_test` evaluated by one matrix product (memory: this many
#: columns of pooled-sample length, twice).
_PERMUTATION_BATCH = 128


def _mmd_from_labels(k: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    r"""Unbiased ``MMD^2`` of relabellings of the pooled sample, from its Gram matrix.

    ``k`` (N, N) is the Gram matrix of the pooled sample with its diagonal set to 0,
    ``labels`` (N, B) the 0/1 indicators of the ``n`` rows called ``x`` in each of ``B``
    relabellings. ``a = s' K s`` is the ``x``-``x`` sum, ``c = s' K 1`` gives the
    ``x``-``y`` sum ``c - a`` and the ``y``-``y`` sum ``1'K1 - 2c + a``: one matrix product
    for all ``B`` statistics instead of three gathered blocks per relabelling.
    """
    m = k.shape[0] - n
    row = k.sum(1)
    a = np.einsum("ib,ib->b", labels, k @ labels)
    c = labels.T @ row
    sxy = c - a
    syy = row.sum() - 2.0 * c + a
    return a / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)


# --------------------------------------------------------------------------------------------
# Cauchy-Schwarz divergence and quadratic mutual information
# --------------------------------------------------------------------------------------------


def cauchy_schwarz(
    x: ArrayLike,
    y: ArrayLike,
    /,
    *,
    kernel: str = "gaussian",
    bandwidth: float | str = "median",
) -> Any:
    r"""Cauchy-Schwarz divergence ``D_CS(P, Q)`` from ``x ~ P`` (n, d) and ``y ~ Q`` (m, d).

    ``D_CS = log mean_ij k(x_i, x_j) + log mean_ij k(y_i, y_j) - 2 log mean_ij k(x_i, y_j)``
    (means over all pairs, diagonals included: the kernel-density plug-in of
    ``-log (int p q)^2 / (int p^2 int q^2)``). By the Cauchy-Schwarz inequality in the RKHS it
    is ``>= 0`` (rounding below 0 is clamped), symmetric, and 0 for identical samples. Each
    log-mean is a log-sum-exp of ``log k``, so it stays finite for far-apart samples or tiny
    bandwidths. Nats.

    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0]]); y = np.array([[3.0], [4.0]])
    >>> kxx = (2 + 2 * np.exp(-0.5)) / 4
    >>> kxy = (np.exp(-4.5) + np.exp(-8.0) + np.exp(-2.0) + np.exp(-4.5)) / 4
    >>> bool(np.isclose(cauchy_schwarz(x, y, bandwidth=1.0), 2 * np.log(kxx) - 2 * np.log(kxy)))
    True
    """
    _check_choice(kernel, "kernel", KERNELS)
    tx, ty, wrap = _prepare(x, y, paired=False)
    h = _bandwidth(bandwidth, tx, ty)
    logk = _log_kernel(kernel, h)
    n, m = tx.shape[0], ty.shape[0]
    value = (
        _log_kernel_sum(tx, tx, logk) - 2 * math.log(n)
        + _log_kernel_sum(ty, ty, logk) - 2 * math.log(m)
        - 2.0 * (_log_kernel_sum(tx, ty, logk) - math.log(n) - math.log(m))
    )
    return wrap(value.clamp_min(0.0))


def cs_mutual_information(
    x: ArrayLike,
    y: ArrayLike,
    /,
    *,
    kernel: str = "gaussian",
    bandwidth: float | str = "median",
    bandwidth_y: float | str | None = None,
) -> Any:
    r"""Cauchy-Schwarz quadratic mutual information ``I_CS(X; Y)`` from paired samples.

    With Gram matrices ``K_ij = k(x_i, x_j)`` and ``L_ij = k(y_i, y_j)`` over ``N`` pairs
    (Yu et al. 2024, CS-IB):

    ``I_CS = log(tr(K L) / N^2) + log(1'K1 1'L1 / N^4) - 2 log(1'K L 1 / N^3)``,

    the CS divergence between the joint and the product of marginals embedded with the product
    kernel, hence ``>= 0`` (rounding clamped), 0 when ``K`` or ``L`` is constant. ``bandwidth``
    sets the kernel of ``x``; ``bandwidth_y`` that of ``y`` (``None``: the same rule as
    ``bandwidth``; the median heuristic runs on each variable separately). Computed from
    row log-sums (``1'KL1 = sum_i (K1)_i (L1)_i``) in O(N) memory per block. Nats.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=200)
    >>> dep = cs_mutual_information(x, x + 0.1 * rng.normal(size=200))
    >>> ind = cs_mutual_information(x, rng.normal(size=200))
    >>> bool(dep > 10 * ind >= 0)
    True
    """
    _check_choice(kernel, "kernel", KERNELS)
    tx, ty, wrap = _prepare(x, y, paired=True)
    hx = _bandwidth(bandwidth, tx)
    hy = _bandwidth(bandwidth if bandwidth_y is None else bandwidth_y, ty, name="bandwidth_y")
    lkx, lky = _log_kernel(kernel, hx), _log_kernel(kernel, hy)
    n = tx.shape[0]
    parts = []
    for s, e in _row_blocks(n, n, max(tx.shape[1], ty.shape[1])):
        lk = lkx(_sq_distances(tx[s:e], tx)) + lky(_sq_distances(ty[s:e], ty))
        parts.append(torch.logsumexp(lk.reshape(-1), 0))
    log_tr = torch.logsumexp(torch.stack(parts), 0)  # log tr(KL) = log sum_ij K_ij L_ij
    rx, ry = _log_row_sums(tx, lkx), _log_row_sums(ty, lky)
    log_k1 = torch.logsumexp(rx, 0)
    log_l1 = torch.logsumexp(ry, 0)
    log_kl1 = torch.logsumexp(rx + ry, 0)
    value = (log_tr - 2 * math.log(n)) + (log_k1 + log_l1 - 4 * math.log(n)) \
        - 2.0 * (log_kl1 - 3 * math.log(n))
    return wrap(value.clamp_min(0.0))


# --------------------------------------------------------------------------------------------
# HSIC
# --------------------------------------------------------------------------------------------


def _hsic_from_grams(k: torch.Tensor, g: torch.Tensor, unbiased: bool) -> torch.Tensor:
    """HSIC from Gram matrices ``K = k`` and ``L = g`` (the one place of both estimators)."""
    n = k.shape[0]
    if not unbiased:
        kc = k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()
        return (kc * g).sum() / (n * n)  # tr(K H L H) / n^2, as tr(HKH L) = tr(KHLH)
    eye = torch.eye(n, dtype=torch.bool, device=k.device)
    kt = k.masked_fill(eye, 0.0)
    lt = g.masked_fill(eye, 0.0)
    term1 = (kt * lt).sum()
    term2 = kt.sum() * lt.sum() / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (kt.sum(1) * lt.sum(1)).sum()
    return (term1 + term2 - term3) / (n * (n - 3))


def _hsic_grams(tx, ty, kernel, bandwidth, bandwidth_y):
    hx = _bandwidth(bandwidth, tx)
    hy = _bandwidth(bandwidth if bandwidth_y is None else bandwidth_y, ty, name="bandwidth_y")
    return _gram(tx, _log_kernel(kernel, hx)), _gram(ty, _log_kernel(kernel, hy))


def hsic(
    x: ArrayLike,
    y: ArrayLike,
    /,
    *,
    kernel: str = "gaussian",
    bandwidth: float | str = "median",
    bandwidth_y: float | str | None = None,
    unbiased: bool = False,
) -> Any:
    r"""Hilbert-Schmidt independence criterion of paired samples ``x`` (n, p), ``y`` (n, q).

    ``unbiased=False`` (default): the biased V-statistic ``HSIC_b = tr(K H L H) / n^2`` with
    ``H = I - 11'/n`` (Gretton et al. 2008; the 2005 paper divides by ``(n-1)^2`` instead:
    multiply by ``n^2/(n-1)^2`` to convert). ``>= 0``. ``unbiased=True``: the unbiased
    estimator of Song et al. (2012), with ``K~, L~`` the Gram matrices with zeroed diagonals,
    ``[tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3))``; needs ``n >= 4``
    and can be negative. With the kernel ``-||x - x'||`` both reduce to the V- and
    U-statistics of the squared distance covariance. Bandwidths as in
    :func:`cs_mutual_information`. Forms ``n x n`` Gram matrices. Differentiable.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=100)
    >>> bool(hsic(x, x**2) > 5 * hsic(x, rng.normal(size=100)))
    True
    """
    if not isinstance(unbiased, bool):
        raise TypeError(f"unbiased must be a bool; got {type(unbiased).__name__}")
    _check_choice(kernel, "kernel", KERNELS)
    tx, ty, wrap = _prepare(x, y, paired=True, min_n=4 if unbiased else 1)
    k, g = _hsic_grams(tx, ty, kernel, bandwidth, bandwidth_y)
    return wrap(_hsic_from_grams(k, g, unbiased))


def hsic_test(
    x: ArrayLike,
    y: ArrayLike,
    /,
    *,
    method: str = "permutation",
    kernel: str = "gaussian",
    bandwidth: float | str = "median",
    bandwidth_y: float | str | None = None,
    permutations: int = 999,
    seed: int | None = None,
) -> TestResult:
    r"""Independence test with the biased statistic ``HSIC_b = tr(KHLH) / n^2``.

    ``method="permutation"``: the rows of ``y`` are permuted ``permutations`` times
    (``numpy.random.default_rng(seed)``); ``pvalue = (1 + #{HSIC_perm >= HSIC_obs}) /
    (1 + permutations)``. ``method="gamma"``: the gamma approximation of Gretton et al. (2008)
    to the null distribution of ``n HSIC_b``, with the null mean
    ``(1 + mu_x mu_y - mu_x - mu_y) / n`` (``mu`` the mean off-diagonal kernel value; every
    kernel here has ``k(x, x) = 1``) and the null variance
    ``72 (n-4)(n-5) / (n(n-1)(n-2)(n-3)) * mean_{i != j} ((HKH)_ij (HLH)_ij / 6)^2``; fast
    (one evaluation) but approximate, and needs ``n >= 6``. ``statistic`` is ``HSIC_b``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=80)
    >>> hsic_test(x, np.sin(3 * x), permutations=99, seed=0).pvalue
    0.01
    >>> hsic_test(x, np.sin(3 * x), method="gamma").pvalue < 0.01
    True
    """
    _check_choice(method, "method", ("permutation", "gamma"))
    _check_choice(kernel, "kernel", KERNELS)
    tx, ty, _ = _prepare(x, y, paired=True, min_n=6 if method == "gamma" else 2)
    with torch.no_grad():
        k, g = _hsic_grams(tx.double(), ty.double(), kernel, bandwidth, bandwidth_y)
        kn, ln = k.cpu().numpy(), g.cpu().numpy()
    n = kn.shape[0]
    kc = kn - kn.mean(0, keepdims=True) - kn.mean(1, keepdims=True) + kn.mean()
    observed = float(np.sum(kc * ln)) / n**2
    if method == "gamma":
        from scipy import stats

        lc = ln - ln.mean(0, keepdims=True) - ln.mean(1, keepdims=True) + ln.mean()
        v = (kc * lc / 6.0) ** 2
        var = (v.sum() - np.trace(v)) / (n * (n - 1))
        var = var * 72.0 * (n - 4) * (n - 5) / (n * (n - 1) * (n - 2) * (n - 3))
        mu_x = (kn.sum() - np.trace(kn)) / (n * (n - 1))
        mu_y = (ln.sum() - np.trace(ln)) / (n * (n - 1))
        mean = (1.0 + mu_x * mu_y - mu_x - mu_y) / n
        if var <= 0 or mean <= 0:  # a constant sample: no evidence of dependence
            return TestResult(observed, 1.0, "gamma", 0)
        shape, scale = mean**2 / var, var * n / mean
        pvalue = float(stats.gamma.sf(n * observed, shape, scale=scale))
        return TestResult(observed, pvalue, "gamma", 0)
    p = check_permutations(permutations)
    rng = np.random.default_rng(seed)
    null = np.empty(p)
    for b in range(p):
        perm = rng.permutation(n)
        null[b] = float(np.sum(kc * ln[np.ix_(perm, perm)])) / n**2
    return TestResult(observed, permutation_pvalue(observed, null), "permutation", p)
