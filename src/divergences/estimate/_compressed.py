"""Mutual information after lossy compression (information-bottleneck analysis of layers)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .._arrays import log_base
from . import _input, _knn
from ._result import Estimate, check_level, finalize, from_local

Compressor = Callable[[np.ndarray], np.ndarray]


def _pca(a: np.ndarray, dim: int) -> np.ndarray:
    """The first ``dim`` principal-component scores of ``a`` (centred), uncorrelated columns."""
    centred = a - a.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:dim].T


def _whiten(a: np.ndarray) -> tuple[np.ndarray, float]:
    """``a`` whitened by its sample covariance, and ``log|det W|`` of the whitening map."""
    centred = a - a.mean(axis=0)
    cov = centred.T @ centred / a.shape[0]
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        chol = None
    diag = None if chol is None else np.diag(chol)
    if diag is None or diag.min() <= 1e-7 * max(diag.max(), 1e-300):
        raise ValueError("the compressed sample has a singular covariance (collinear "
                         "columns): lower dim")
    w = np.linalg.solve(chol, centred.T).T
    return w, -float(np.sum(np.log(np.diag(chol))))


def compressed_mutual_information(
    x: Any,
    y: Any,
    compressor: str | Compressor = "pca",
    *,
    dim: int | None = None,
    noise_std: float | None = None,
    k: int = 3,
    base: float | None = None,
    level: float = 0.95,
    noise: float = 1e-10,
    seed: int | None = 0,
) -> Estimate:
    r"""Mutual information after compressing the samples, by kNN entropies on whitened data.

    The analysis of information flow through a network layer by lossy compression: ``x``
    (inputs, ``(n, d_x)``) and ``y`` (a layer's outputs, ``(n, d_y)``) are each compressed to
    ``dim`` columns, by PCA (``compressor="pca"``, the first ``dim`` principal components; all
    of them when ``dim`` is ``None``) or by a callable ``compressor(array) -> (n, m) array``
    (an encoder you trained), then whitened by their sample covariance.

    ``noise_std=None``: :math:`I(X'; Y') = h(X') + h(Y') - h(X', Y')` with Kozachenko-Leonenko
    entropies (Euclidean, ``k`` neighbours) of the whitened compressed samples. Whitening is
    a block-linear invertible map, to which MI is invariant, and Euclidean neighbour
    distances are invariant to the rotation by which any two whitenings differ; so the
    estimate is unchanged by an invertible linear map of ``x`` or ``y`` (when nothing is
    discarded by the compression).

    ``noise_std=sigma``: ``y`` must be a deterministic function of ``x`` (the layer's output
    before noise; ``x`` itself then only fixes ``n``); the layer is made stochastic, ``L = y + sigma Z`` with ``Z`` standard
    normal (seeded), and :math:`I(X; L) = h(L') - h(L' \mid X)`, where the conditional entropy
    of the compressed noise is exact: PCA components are orthonormal, so ``L' | X`` is
    ``f(X)' + sigma Z'`` with :math:`h(\sigma Z') = \tfrac m2\log(2\pi e\sigma^2)`;
    :math:`h(L')` is the kNN entropy (whitened, the log-determinant of the whitening map added
    back). Only PCA keeps that exact, so ``noise_std`` needs ``compressor="pca"``.

    Standard error and interval: ``std/sqrt(n)`` of the per-sample entropy terms (see
    :func:`divergences.estimate.mutual_information` for how far that is from the sampling
    spread of kNN estimates). Units: nats, or ``base`` units.

    >>> import math
    >>> import numpy as np
    >>> from divergences.estimate import compressed_mutual_information
    >>> x = np.random.default_rng(1).normal(size=(4000, 1)) * 2.0
    >>> e = compressed_mutual_information(x, x, noise_std=1.0)   # I(X; X + Z)
    >>> round(0.5 * math.log(1 + 4.0), 3)                        # the true value
    0.805
    >>> bool(abs(e.value - 0.805) < 0.05)
    True
    """
    log_base(base)
    level = check_level(level)
    noise = _input.check_noise(noise)
    seed = _input.check_seed(seed)
    xa, _ = _input.as_sample(x, "x")
    ya, _ = _input.as_sample(y, "y")
    n = _input.same_length(("x", xa), ("y", ya))
    k = _input.check_k(k, n)
    xa, ya = xa.astype(np.float64), ya.astype(np.float64)
    if isinstance(compressor, str):
        if compressor != "pca":
            raise ValueError(f"compressor must be 'pca' or a callable; got {compressor!r}")
    elif not callable(compressor):
        raise TypeError(f"compressor must be 'pca' or a callable; got "
                        f"{type(compressor).__name__}")
    if dim is not None:
        dim = _input.check_int(dim, "dim", 1)
    rng = np.random.default_rng(seed)

    def compress(a: np.ndarray, name: str) -> np.ndarray:
        if callable(compressor):
            out = np.asarray(compressor(a), dtype=np.float64)
            if out.ndim == 1:
                out = out[:, None]
            if out.ndim != 2 or out.shape[0] != n or not np.isfinite(out).all():
                raise ValueError(f"compressor({name}) must return a finite (n, m) array with "
                                 f"n={n} rows; got shape {out.shape}")
            return out
        m = a.shape[1] if dim is None else dim
        if m > a.shape[1]:
            raise ValueError(f"dim={m} is larger than the {a.shape[1]} columns of {name}")
        return _pca(a, m)

    def prep(a: np.ndarray) -> tuple[np.ndarray, float]:
        w, logdet = _whiten(a)
        return _input.jitter(w, rng, noise), logdet

    if noise_std is None:
        xw, _ = prep(compress(xa, "x"))
        yw, _ = prep(compress(ya, "y"))
        _input.warn_dimension(xw.shape[1] + yw.shape[1], n, k)
        local = (_knn.kl_entropy_local(xw, k) + _knn.kl_entropy_local(yw, k)
                 - _knn.kl_entropy_local(np.hstack([xw, yw]), k))
        est = from_local(local, "compressed", level=level,
                         details={"k": k, "dims": (xw.shape[1], yw.shape[1])})
        return finalize(est, base=base, clip=True)  # MI: never below 0

    sigma = float(noise_std)
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"noise_std must be a positive finite number; got {noise_std!r}")
    if callable(compressor):
        raise ValueError("noise_std needs compressor='pca': the conditional entropy of the "
                         "noise is exact only after an orthonormal projection")
    layer = ya + sigma * rng.standard_normal(ya.shape)
    lc = compress(layer, "y")
    lw, logdet = prep(lc)
    m = lw.shape[1]
    _input.warn_dimension(m, n, k)
    noise_entropy = 0.5 * m * math.log(2 * math.pi * math.e * sigma**2)
    # h(L') = h(W L') - log|det W|
    est = from_local(_knn.kl_entropy_local(lw, k), "compressed", offset=-logdet - noise_entropy,
                     level=level, details={"k": k, "dims": (m,), "noise_entropy": noise_entropy})
    return finalize(est, base=base, clip=True)  # MI: never below 0
