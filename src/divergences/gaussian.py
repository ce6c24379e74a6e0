r"""Closed forms between multivariate normal distributions.

Every divergence here takes ``(mean_p, cov_p, mean_q, cov_q)``: the means have shape
``(..., d)`` and the covariances ``(..., d, d)``; the leading axes are a batch and broadcast
between all four arguments (one ``q`` against many ``p``, say). The first distribution is the
one the expectation is taken under: ``kl(mean_p, cov_p, mean_q, cov_q)`` is
:math:`\mathrm{KL}(P\|Q)` with :math:`P = N(\mu_p, \Sigma_p)`, :math:`Q = N(\mu_q, \Sigma_q)`.

Keyword arguments shared by every function:

``reduction``
    ``"none"`` (one value per batch entry, the default), ``"sum"`` or ``"mean"``.
``base``
    ``None`` for nats, ``2`` for bits, any positive number other than 1. :func:`hellinger`
    and :func:`wasserstein2` have no logarithm: giving them ``base`` is a ``ValueError``.
``validate``
    ``True`` (default) checks that the inputs are finite and that each covariance is
    symmetric (largest asymmetry at most ``1e-6`` (float64), ``1e-4`` (float32) or ``1e-2``
    (float16/bfloat16) times its largest entry). ``False`` skips these checks. A covariance
    that is not positive definite is a ``ValueError`` either way (``wasserstein2`` accepts
    positive semi-definite ones).

Numerics: the covariances are symmetrised, :math:`\tfrac12(\Sigma + \Sigma^\top)`, and every
formula works from Cholesky factors: log-determinants are twice the sum of the logs of the
factor's diagonal and inverses are triangular solves, never explicit inverses. Each
factorisation is done once per distinct covariance (a single ``cov_q`` broadcast against a
batch of ``cov_p`` is factorised once). The computation is carried out in float64 whatever
the input dtype; the result is cast back to the input's dtype (float32 for float32, float16 and
bfloat16 inputs; float64 stays float64). Results that cannot be negative are clamped at 0.

NumPy (or list) input gives NumPy output; torch input gives torch output, differentiable with
respect to all four arguments and on the input's device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ._arrays import (
    REDUCTIONS,
    ArrayLike,
    as_tensors,
    check_choice,
    check_range,
    finish,
    log_base,
    safe_sqrt,
)

__all__ = [
    "bhattacharyya",
    "hellinger",
    "kl",
    "mutual_information",
    "renyi",
    "wasserstein2",
]

_SYM_TOL = {torch.float64: 1e-6, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 1e-2}
_NAMES = ("mean_p", "cov_p", "mean_q", "cov_q")


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _orig_dtype(x: ArrayLike) -> torch.dtype | None:
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.dtype
    return None


def _check_finite(t: torch.Tensor, name: str) -> None:
    if bool(torch.isnan(t).any()):
        raise ValueError(f"{name} contains NaN")
    if bool(torch.isinf(t).any()):
        raise ValueError(f"{name} contains inf; expected finite values")


def _check_cov_shape(cov: torch.Tensor, name: str) -> int:
    if cov.ndim < 2:
        raise ValueError(
            f"{name} must have shape (..., d, d); got shape {tuple(cov.shape)}"
        )
    if cov.shape[-1] != cov.shape[-2]:
        raise ValueError(
            f"{name} must be square in its last two axes; got shape {tuple(cov.shape)}"
        )
    if cov.shape[-1] == 0:
        raise ValueError(f"{name} must have dimension d >= 1; got shape {tuple(cov.shape)}")
    return cov.shape[-1]


def _symmetrize(cov: torch.Tensor, name: str, tol: float, validate: bool) -> torch.Tensor:
    if validate:
        _check_finite(cov, name)
        asym = (cov - cov.mT).abs().amax(dim=(-2, -1))
        scale = cov.abs().amax(dim=(-2, -1))
        bad = asym > tol * scale
        if bool(bad.any()):
            idx = _first_index(bad)
            raise ValueError(
                f"{name} is not symmetric{idx}: largest |S - S^T| is {float(asym[bad].max()):.3g} "
                f"(tolerance {tol:g} times the largest entry)"
            )
    return 0.5 * (cov + cov.mT)


def _first_index(mask: torch.Tensor) -> str:
    if mask.ndim == 0:
        return ""
    pos = torch.nonzero(mask)[0].tolist()
    return f" at batch index {tuple(pos)}"


def _cholesky(cov: torch.Tensor, name: str) -> torch.Tensor:
    """Lower Cholesky factor; a ``ValueError`` naming ``name`` where ``cov`` is not PD."""
    chol, info = torch.linalg.cholesky_ex(cov)
    _raise_if_failed(info, name)
    return chol


def _raise_if_failed(info: torch.Tensor, name: str) -> None:
    bad = info != 0
    if bool(bad.any()):
        raise ValueError(
            f"{name} is not positive definite{_first_index(bad)} (Cholesky factorisation failed)"
        )


def _cholesky_pair(sp: torch.Tensor, sq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cholesky factors of ``cov_p`` and ``cov_q``, in one batched call when shapes agree."""
    if sp.shape != sq.shape:
        return _cholesky(sp, "cov_p"), _cholesky(sq, "cov_q")
    chol, info = torch.linalg.cholesky_ex(torch.stack((sp, sq)))
    _raise_if_failed(info[0], "cov_p")
    _raise_if_failed(info[1], "cov_q")
    return chol[0], chol[1]


def _logdet(chol: torch.Tensor) -> torch.Tensor:
    """``log det S`` from the Cholesky factor of ``S``."""
    return 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)


def _batch_shape(means: tuple[torch.Tensor, ...], covs: tuple[torch.Tensor, ...]) -> torch.Size:
    try:
        return torch.broadcast_shapes(*(m.shape[:-1] for m in means),
                                      *(c.shape[:-2] for c in covs))
    except RuntimeError:
        shapes = ", ".join(f"{n} {tuple(t.shape)}" for n, t in
                           zip(_NAMES, (means[0], covs[0], means[1], covs[1])))
        raise ValueError(
            f"batch shapes do not broadcast (means are (..., d), covariances (..., d, d)): "
            f"{shapes}"
        ) from None


def _prepare(
    mean_p: ArrayLike,
    cov_p: ArrayLike,
    mean_q: ArrayLike,
    cov_q: ArrayLike,
    validate: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Size, Any, torch.dtype]:
    """Convert, check shapes and symmetry; return float64 tensors, batch shape, wrapper, dtype."""
    (mp, sp, mq, sq), wrap = as_tensors(mean_p, cov_p, mean_q, cov_q, names=_NAMES)
    out_dtype = mp.dtype
    orig = [_orig_dtype(x) for x in (cov_p, cov_q)]
    d_p = _check_cov_shape(sp, "cov_p")
    d_q = _check_cov_shape(sq, "cov_q")
    for name, m, cname, d in (("mean_p", mp, "cov_p", d_p), ("mean_q", mq, "cov_q", d_q)):
        if m.ndim < 1:
            raise ValueError(f"{name} must have shape (..., d); got a scalar")
        if m.shape[-1] != d:
            raise ValueError(
                f"{name} has dimension {m.shape[-1]} (shape {tuple(m.shape)}) but {cname} "
                f"is {d}x{d}"
            )
    if d_p != d_q:
        raise ValueError(
            f"P and Q must have the same dimension; cov_p is {d_p}x{d_p} but cov_q is {d_q}x{d_q}"
        )
    if validate:
        _check_finite(mp, "mean_p")
        _check_finite(mq, "mean_q")
    batch = _batch_shape((mp, mq), (sp, sq))
    mp, sp, mq, sq = (t.to(torch.float64) for t in (mp, sp, mq, sq))
    sp = _symmetrize(sp, "cov_p", _SYM_TOL.get(orig[0] or out_dtype, 1e-4), validate)
    sq = _symmetrize(sq, "cov_q", _SYM_TOL.get(orig[1] or out_dtype, 1e-4), validate)
    return mp, sp, mq, sq, batch, wrap, out_dtype


def _done(values: torch.Tensor, batch: torch.Size, out_dtype: torch.dtype, wrap: Any,
          reduction: str, base: float | None) -> Any:
    values = values.expand(batch).to(out_dtype)
    return finish(values, wrap, reduction=reduction, base=base)


def _check_common(reduction: str, base: float | None, what: str | None = None) -> None:
    check_choice(reduction, "reduction", REDUCTIONS)
    log_base(base, what)


def _solve_lower(chol: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    return torch.linalg.solve_triangular(chol, rhs, upper=False)


def _mahalanobis_sq(chol: torch.Tensor, diff: torch.Tensor) -> torch.Tensor:
    """``diff^T S^{-1} diff`` with ``S = chol chol^T``."""
    z = _solve_lower(chol, diff.unsqueeze(-1))
    return z.square().sum(dim=(-2, -1))



# --------------------------------------------------------------------------------------------
# Kernels on prepared float64 tensors
# --------------------------------------------------------------------------------------------


def _kl(mp, sp, mq, sq) -> torch.Tensor:
    lp, lq = _cholesky_pair(sp, sq)
    d = sp.shape[-1]
    trace = _solve_lower(lq, lp).square().sum(dim=(-2, -1))  # tr(S_q^{-1} S_p)
    quad = _mahalanobis_sq(lq, mq - mp)
    value = 0.5 * (trace + quad - d) + 0.5 * (_logdet(lq) - _logdet(lp))
    return value.clamp_min(0.0)


def _renyi(mp, sp, mq, sq, a: float) -> torch.Tensor:
    if a == 1.0:
        return _kl(mp, sp, mq, sq)
    lp, lq = _cholesky_pair(sp, sq)
    s_a = a * sq + (1.0 - a) * sp
    if a < 1.0:  # a convex combination of positive definite matrices
        l_a = _cholesky(s_a, "the mixed covariance alpha*cov_q + (1-alpha)*cov_p")
        ok = None
    else:
        # For a > 1 the Renyi integral is finite only if S_a is positive definite.
        _, info = torch.linalg.cholesky_ex(s_a.detach())
        ok = info == 0
        eye = torch.eye(s_a.shape[-1], dtype=s_a.dtype, device=s_a.device)
        l_a = torch.linalg.cholesky(torch.where(ok[..., None, None], s_a, eye))
    quad = _mahalanobis_sq(l_a, mp - mq)
    log_ratio = _logdet(l_a) - (1.0 - a) * _logdet(lp) - a * _logdet(lq)
    value = (0.5 * a * quad - log_ratio / (2.0 * (a - 1.0))).clamp_min(0.0)
    if ok is not None:
        value = torch.where(ok, value, torch.full_like(value, math.inf))
    return value


def _w2_squared(mp, sp, mq, sq, batch: torch.Size, tol: tuple[float, float]) -> torch.Tensor:
    d = sp.shape[-1]
    pair = torch.stack((sp.expand(*batch, d, d), sq.expand(*batch, d, d))).reshape(2, -1, d, d)
    # tr (S_q^{1/2} S_p S_q^{1/2})^{1/2} = sum_i sqrt(lambda_i(F^T S F)) for any F with
    # F F^T = S_q (or, the expression being symmetric, F F^T = S_p and S = S_q): the
    # eigenvalues of F^T S F are those of S_q S_p. F is a Cholesky factor where one exists;
    # eigvalsh has a well-defined gradient even for repeated eigenvalues.
    _, info = torch.linalg.cholesky_ex(pair.detach())
    ok = info == 0
    for i, name in ((0, "cov_p"), (1, "cov_q")):
        if not bool(ok[i].all()):
            _check_psd(pair[i].detach()[~ok[i]], name, tol[i])
    eye = torch.eye(d, dtype=pair.dtype, device=pair.device)
    chol = torch.linalg.cholesky(torch.where(ok[..., None, None], pair, eye))
    ok_q = ok[1]
    ok_p = ok[0] & ~ok_q
    neither = ~(ok_q | ok_p)
    sp, sq = pair[0], pair[1]
    factor = torch.where(ok_q[..., None, None], chol[1], chol[0])
    other = torch.where(ok_p[..., None, None], sq, sp)
    if bool(neither.any()):
        # Both singular: F = V diag(sqrt(w)) from the eigendecomposition of S_q, only on the
        # entries that need it (eigenvector gradients are unstable at repeated eigenvalues).
        w, v = torch.linalg.eigh(sq[neither])
        factor = factor.index_put((neither,), v * safe_sqrt(w).unsqueeze(-2))
    m = factor.mT @ other @ factor
    cross = safe_sqrt(torch.linalg.eigvalsh(0.5 * (m + m.mT))).sum(-1)
    trace = torch.diagonal(pair, dim1=-2, dim2=-1).sum(dim=(0, -1))
    mean_term = (mp - mq).square().sum(-1)
    cov_term = (trace - 2.0 * cross).reshape(batch)
    # equal covariances: the covariance part is exactly 0 (the eigenvalue route leaves a
    # residue of order eps * tr, 1.9e-7 in W_2 for a 5 x 5 pair)
    same = (sp == sq).all(-1).all(-1).reshape(batch)
    cov_term = torch.where(same, torch.zeros_like(cov_term), cov_term)
    return (mean_term + cov_term).clamp_min(0.0)


def _check_psd(covs: torch.Tensor, name: str, tol: float) -> None:
    """``ValueError`` unless every matrix in ``covs`` (n, d, d) is PSD to relative ``tol``."""
    with torch.no_grad():
        w = torch.linalg.eigvalsh(covs)
        scale = w.abs().amax(-1).clamp_min(torch.finfo(torch.float64).tiny)
        neg = w.amin(-1) < -tol * scale
    if bool(neg.any()):
        raise ValueError(
            f"{name} is not positive semi-definite: smallest eigenvalue "
            f"{float(w.amin(-1)[neg].min()):.3g} (relative tolerance {tol:.3g})"
        )


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def kl(
    mean_p: ArrayLike,
    cov_p: ArrayLike,
    mean_q: ArrayLike,
    cov_q: ArrayLike,
    /,
    *,
    reduction: str = "none",
    base: float | None = None,
    validate: bool = True,
) -> Any:
    r"""Kullback-Leibler divergence :math:`\mathrm{KL}(P\|Q)` between two normal distributions.

    .. math:: \mathrm{KL}(N(\mu_p,\Sigma_p)\,\|\,N(\mu_q,\Sigma_q)) = \tfrac12\Big[
              \operatorname{tr}(\Sigma_q^{-1}\Sigma_p)
              + (\mu_q-\mu_p)^\top\Sigma_q^{-1}(\mu_q-\mu_p) - d
              + \log\frac{\det\Sigma_q}{\det\Sigma_p}\Big].

    The expectation is under ``P`` (the first mean and covariance). Both covariances must be
    positive definite. The trace is :math:`\|L_q^{-1}L_p\|_F^2` from the Cholesky factors.

    >>> import numpy as np
    >>> from divergences import gaussian
    >>> mp, sp = np.zeros(2), np.eye(2)
    >>> mq, sq = np.array([1.0, 0.0]), 2.0 * np.eye(2)
    >>> closed = 0.5 * (2 / 2 + 1 / 2 - 2 + 2 * np.log(2))
    >>> bool(np.isclose(gaussian.kl(mp, sp, mq, sq), closed))
    True
    >>> float(gaussian.kl(mp, sp, mp, sp))
    0.0
    """
    _check_common(reduction, base)
    mp, sp, mq, sq, batch, wrap, dt = _prepare(mean_p, cov_p, mean_q, cov_q, validate)
    return _done(_kl(mp, sp, mq, sq), batch, dt, wrap, reduction, base)


def renyi(
    mean_p: ArrayLike,
    cov_p: ArrayLike,
    mean_q: ArrayLike,
    cov_q: ArrayLike,
    /,
    *,
    alpha: float = 0.5,
    reduction: str = "none",
    base: float | None = None,
    validate: bool = True,
) -> Any:
    r"""Renyi divergence of order ``alpha`` between two normal distributions.

    With :math:`\Sigma_\alpha = \alpha\Sigma_q + (1-\alpha)\Sigma_p` and
    :math:`\delta = \mu_p - \mu_q`,

    .. math:: D_\alpha(P\|Q) = \frac{\alpha}{2}\,\delta^\top\Sigma_\alpha^{-1}\delta
              - \frac{1}{2(\alpha-1)}\log\frac{\det\Sigma_\alpha}
              {(\det\Sigma_p)^{1-\alpha}(\det\Sigma_q)^{\alpha}},

    the same quantity as :func:`divergences.renyi`,
    :math:`\frac{1}{\alpha-1}\log\int p^\alpha q^{1-\alpha}`. ``alpha > 0``;
    ``alpha = 1`` is :func:`kl`, and the value is continuous there; close to 1 the
    log-determinant term loses digits to cancellation, an absolute error of order
    ``1e-16 * |log det| / |alpha - 1|`` (about ``1e-10`` at ``|alpha - 1| = 1e-5``). For
    ``alpha > 1`` the integral diverges, and the value is ``+inf``, where
    :math:`\Sigma_\alpha` is not positive definite. Non-decreasing in ``alpha``;
    ``alpha = 1/2`` is twice :func:`bhattacharyya`.

    >>> import numpy as np
    >>> from divergences import gaussian
    >>> mp, sp, mq, sq = np.zeros(1), np.eye(1), np.ones(1), 2.0 * np.eye(1)
    >>> bool(np.isclose(gaussian.renyi(mp, sp, mq, sq, alpha=1.0), gaussian.kl(mp, sp, mq, sq)))
    True
    >>> float(gaussian.renyi(mp, 3.0 * sp, mq, sq, alpha=4.0))   # 4*2 - 3*3 < 0
    inf
    """
    a = check_range(alpha, "alpha", 0.0, math.inf, low_open=True, high_open=True)
    _check_common(reduction, base)
    mp, sp, mq, sq, batch, wrap, dt = _prepare(mean_p, cov_p, mean_q, cov_q, validate)
    return _done(_renyi(mp, sp, mq, sq, a), batch, dt, wrap, reduction, base)


def bhattacharyya(
    mean_p: ArrayLike,
    cov_p: ArrayLike,
    mean_q: ArrayLike,
    cov_q: ArrayLike,
    /,
    *,
    reduction: str = "none",
    base: float | None = None,
    validate: bool = True,
) -> Any:
    r"""Bhattacharyya distance :math:`-\log\int\sqrt{pq}`, half the Renyi divergence of order 1/2.

    .. math:: D_B = \tfrac18\,\delta^\top\Sigma^{-1}\delta
              + \tfrac12\log\frac{\det\Sigma}{\sqrt{\det\Sigma_p\det\Sigma_q}},
              \quad \Sigma = \tfrac12(\Sigma_p + \Sigma_q),\ \delta = \mu_p - \mu_q.

    Symmetric in ``P`` and ``Q``; always finite.

    >>> import numpy as np
    >>> from divergences import gaussian
    >>> mp, sp, mq, sq = np.zeros(1), np.eye(1), np.full(1, 2.0), np.eye(1)
    >>> float(gaussian.bhattacharyya(mp, sp, mq, sq))   # (2 - 0)^2 / 8
    0.5
    """
    _check_common(reduction, base)
    mp, sp, mq, sq, batch, wrap, dt = _prepare(mean_p, cov_p, mean_q, cov_q, validate)
    return _done(_renyi(mp, sp, mq, sq, 0.5) / 2.0, batch, dt, wrap, reduction, base)


def hellinger(
    mean_p: ArrayLike,
    cov_p: ArrayLike,
    mean_q: ArrayLike,
    cov_q: ArrayLike,
    /,
    *,
    reduction: str = "none",
    base: float | None = None,
    validate: bool = True,
) -> Any:
    r"""Hellinger distance :math:`\sqrt{1 - \mathrm{BC}(P, Q)}`, in [0, 1].

    :math:`\mathrm{BC} = \int\sqrt{pq} = e^{-D_B}` is the Bhattacharyya coefficient
    (:func:`bhattacharyya` gives :math:`D_B`); this is the continuous counterpart of
    :func:`divergences.hellinger`, :math:`\sqrt{\tfrac12\int(\sqrt p - \sqrt q)^2}`. At
    ``P = Q`` the distance is not differentiable; its gradient there is taken as 0.
    No logarithm: ``base`` is a ``ValueError``.

    >>> import numpy as np
    >>> from divergences import gaussian
    >>> mp, sp, mq, sq = np.zeros(1), np.eye(1), np.full(1, 2.0), np.eye(1)
    >>> bool(np.isclose(gaussian.hellinger(mp, sp, mq, sq), np.sqrt(1 - np.exp(-0.5))))
    True
    """
    _check_common(reduction, base, "the Hellinger distance")
    mp, sp, mq, sq, batch, wrap, dt = _prepare(mean_p, cov_p, mean_q, cov_q, validate)
    d_b = _renyi(mp, sp, mq, sq, 0.5) / 2.0
    value = safe_sqrt(-torch.expm1(-d_b)).clamp_max(1.0)
    return _done(value, batch, dt, wrap, reduction, None)


def wasserstein2(
    mean_p: ArrayLike,
    cov_p: ArrayLike,
    mean_q: ArrayLike,
    cov_q: ArrayLike,
    /,
    *,
    reduction: str = "none",
    base: float | None = None,
    validate: bool = True,
) -> Any:
    r"""2-Wasserstein distance (not squared) between two normal distributions.

    .. math:: W_2(P, Q)^2 = \|\mu_p - \mu_q\|^2 + \operatorname{tr}\Big(\Sigma_p + \Sigma_q
              - 2\big(\Sigma_q^{1/2}\Sigma_p\Sigma_q^{1/2}\big)^{1/2}\Big).

    A metric (symmetric, triangle inequality) in the units of the means; not logarithmic, so
    ``base`` is a ``ValueError``. Exactly 0 for identical inputs (the covariance part is 0
    wherever the two covariances are equal).
    Covariances may be positive semi-definite (a zero covariance is a point mass).

    The trace of the matrix square root is :math:`\sum_i\sqrt{\lambda_i}` over the eigenvalues
    of :math:`F^\top\Sigma_p F` with :math:`FF^\top = \Sigma_q` (the eigenvalues of
    :math:`\Sigma_q\Sigma_p`), computed by a symmetric eigendecomposition with the
    eigenvalues clamped at 0. :math:`F` is the Cholesky factor of :math:`\Sigma_q`, or of
    :math:`\Sigma_p` (roles swapped, same value) when only that one is positive definite; the
    gradient of the eigenvalues is then well defined even for repeated eigenvalues. When both
    covariances are singular, :math:`F` comes from an eigendecomposition of :math:`\Sigma_q`,
    whose gradient is unstable (possibly NaN) at repeated eigenvalues; near singular
    covariances the gradient is large (:math:`\sqrt\lambda` at small :math:`\lambda`). At
    ``P = Q`` the distance is not differentiable; its gradient there is taken as 0. The
    covariance part is a difference of traces, so :math:`W_2^2` carries an absolute rounding
    error of order :math:`10^{-16}\operatorname{tr}(\Sigma_p + \Sigma_q)`.

    >>> import numpy as np
    >>> from divergences import gaussian
    >>> mp, sp = np.zeros(1), np.eye(1)              # N(0, 1)
    >>> mq, sq = np.full(1, 3.0), 4.0 * np.eye(1)    # N(3, 2^2)
    >>> float(gaussian.wasserstein2(mp, sp, mq, sq))   # sqrt(3^2 + (1 - 2)^2)
    3.1622776601683795
    """
    _check_common(reduction, base, "the 2-Wasserstein distance")
    mp, sp, mq, sq, batch, wrap, dt = _prepare(mean_p, cov_p, mean_q, cov_q, validate)
    # eigenvalues down to -tol * (largest |eigenvalue|) count as rounding of a PSD matrix
    tol = tuple(100.0 * sp.shape[-1] * torch.finfo(_orig_dtype(raw) or dt).eps
                for raw in (cov_p, cov_q))
    value = safe_sqrt(_w2_squared(mp, sp, mq, sq, batch, tol))
    return _done(value, batch, dt, wrap, reduction, None)


def mutual_information(
    cov: ArrayLike,
    split: int,
    /,
    *,
    reduction: str = "none",
    base: float | None = None,
    validate: bool = True,
) -> Any:
    r"""Mutual information between the first ``split`` coordinates and the rest of a normal vector.

    For :math:`(X, Y) \sim N(\mu, \Sigma)` with :math:`X` the first ``split`` coordinates,

    .. math:: I(X; Y) = \tfrac12\big(\log\det\Sigma_{XX} + \log\det\Sigma_{YY}
              - \log\det\Sigma\big) = \mathrm{KL}\big(N(\mu,\Sigma)\,\|\,
              N(\mu, \Sigma_{XX}\oplus\Sigma_{YY})\big),

    the KL divergence from the product of the marginals (the trace term of :func:`kl` is
    exactly ``d`` here, so only the log-determinants remain). The Cholesky factor of
    :math:`\Sigma` holds that of :math:`\Sigma_{XX}` as its leading block and that of the
    Schur complement :math:`\Sigma_{YY|X}` as its trailing block, so
    :math:`I = \tfrac12(\log\det\Sigma_{YY} - \log\det\Sigma_{YY|X})` needs two
    factorisations. ``cov`` has shape ``(..., d, d)``, positive definite; ``split`` is an
    integer in ``[1, d - 1]``. The mean plays no part.

    >>> import numpy as np
    >>> from divergences import gaussian
    >>> rho = 0.6
    >>> cov = np.array([[1.0, rho], [rho, 1.0]])
    >>> bool(np.isclose(gaussian.mutual_information(cov, 1), -0.5 * np.log(1 - rho**2)))
    True
    >>> float(gaussian.mutual_information(np.eye(3), 2, base=2))
    0.0
    """
    _check_common(reduction, base)
    (s,), wrap = as_tensors(cov, names=("cov",))
    out_dtype = s.dtype
    d = _check_cov_shape(s, "cov")
    if isinstance(split, bool) or not isinstance(split, (int, np.integer)):
        raise TypeError(f"split must be an integer; got {type(split).__name__}")
    split = int(split)
    if not 1 <= split <= d - 1:
        raise ValueError(f"split must lie in [1, d - 1] = [1, {d - 1}] for cov of shape "
                         f"{tuple(s.shape)}; got {split}")
    s = _symmetrize(s.to(torch.float64), "cov",
                    _SYM_TOL.get(_orig_dtype(cov) or out_dtype, 1e-4), validate)
    chol = _cholesky(s, "cov")
    l_yy = _cholesky(s[..., split:, split:], "cov")
    value = (0.5 * _logdet(l_yy) - torch.log(
        torch.diagonal(chol[..., split:, split:], dim1=-2, dim2=-1)).sum(-1)).clamp_min(0.0)
    return finish(value.to(out_dtype), wrap, reduction=reduction, base=base)
