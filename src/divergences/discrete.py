r"""Exact measures between discrete distributions held explicitly.

Every function here takes the same keyword arguments:

``input``
    What the arrays hold: ``"probs"`` (default), ``"logits"`` (normalised with a log-softmax
    along ``dim``) or ``"log_probs"``.
``dim``
    The support axis (default ``-1``). Other axes are a batch and broadcast between the two
    arguments; the support sizes must match.
``reduction``
    ``"none"`` (one value per batch entry, the default), ``"sum"`` or ``"mean"``.
``base``
    ``None`` for nats (natural log), ``2`` for bits, any positive number other than 1. Only
    for logarithmic measures (KL, JS, skew KL, Jeffreys, Renyi, Bhattacharyya, entropy,
    cross-entropy, logarithmic registry members): :func:`tv`, :func:`chi2`,
    :func:`hellinger`, :func:`alpha_divergence` and non-logarithmic members in
    :func:`f_divergence` raise a ``ValueError`` when it is given.
``normalize``
    ``False`` (default): probabilities must sum to one, and log-probabilities log-sum-exp to
    zero, within a tolerance set by each argument's own dtype and the support size ``n``:
    ``max(floor, eps * (1 + ln n))`` with ``eps`` the dtype's machine epsilon and ``floor``
    ``1e-6`` (float64), ``1e-4`` (float32) or ``1e-2`` (float16/bfloat16); otherwise a
    ``ValueError``. (Rounding each of ``n`` log-probabilities moves their log-sum-exp by at
    most ``eps/2`` times the entropy, ``<= eps/2 * ln n``: torch's own bfloat16
    ``log_softmax`` passes; an input off by more than the tolerance is rejected.) A bfloat16
    argument next to a float32 one is checked at bfloat16's tolerance. ``True`` rescales each
    distribution to sum to one first (probabilities and log-probabilities; logits are always
    normalised, and ``normalize=True`` with ``input="logits"`` is a ``ValueError``).
``validate``
    ``True`` (default) checks the inputs for NaN, infinities, negative mass and
    normalisation; NaN is a ``ValueError`` naming the argument. ``False`` skips the checks
    (one pass over the data each) for speed; NaN then propagates to the result (never read
    as zero mass).

Conventions: ``0 log 0 = 0``; ``KL(p||q) = +inf`` where ``q = 0 < p`` (see :mod:`divergences.fdiv`
for the general rule). Finite logits never produce ``inf`` or NaN. Probabilities that are
exactly zero have a finite (zero) gradient. Every divergence is accurate to a few ulps relative
however close ``p`` and ``q`` are (the registry's cancellation-free terms; from probabilities
the log-ratio is formed as ``log1p((p - q) / q)``), and exactly 0 for identical inputs. Results
are clamped at 0 where the true value cannot be negative, so rounding never gives a negative
divergence.

NumPy (or list) input gives NumPy output; torch input gives torch output, differentiable and on
the input's device. float16/bfloat16 are computed in float32 and returned as float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from . import _chunked, fdiv
from ._arrays import (
    INPUTS,
    REDUCTIONS,
    ArrayLike,
    as_tensors,
    broadcast_pair,
    check_choice,
    check_range,
    compute_dtype,
    finish,
    log_base,
    move_support_last,
    safe_sqrt,
    source_dtype,
)

__all__ = [
    "alpha_divergence",
    "bhattacharyya",
    "chi2",
    "cross_entropy",
    "entropy",
    "f_divergence",
    "hellinger",
    "jeffreys",
    "js",
    "kl",
    "renyi",
    "skew_kl",
    "tv",
]

_SUM_TOL = {torch.float64: 1e-6, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 1e-2}


def sum_tolerance(dtype: torch.dtype, n: int) -> float:
    """Normalisation tolerance for an argument of ``dtype`` over a support of ``n`` entries.

    ``max(floor, eps * (1 + ln n))``: rounding ``n`` probabilities (or log-probabilities) to
    ``dtype`` moves their sum (log-sum-exp) by at most about ``eps/2 * (1 + ln n)``; the
    floors are the historical tolerances (``1e-6``, ``1e-4``, ``1e-2``).

    >>> round(sum_tolerance(torch.bfloat16, 32000), 4)
    0.0889
    >>> sum_tolerance(torch.float32, 32000)
    0.0001
    """
    floor = _SUM_TOL.get(dtype, 1e-4)
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else 2.0**-52
    return max(floor, eps * (1.0 + math.log(max(n, 1))))


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def check_distribution(
    x: torch.Tensor, input: str, name: str, *, normalize: bool = False, validate: bool = True,
    dtype: torch.dtype | None = None,
) -> bool:
    """Validate ``x`` (a whole input, support last) and say whether it has no zero mass.

    Returns ``True`` when every entry has positive mass (no zero probability, no ``-inf``
    logit), which lets the evaluation skip its zero-mass bookkeeping. Each check is a
    reduction; elementwise masks are only built on the failure path, to name the problem.
    ``dtype``: the dtype the argument arrived in (its normalisation tolerance,
    :func:`sum_tolerance`), when ``x`` has since been promoted; ``x.dtype`` by default.
    """
    tol = sum_tolerance(dtype or x.dtype, x.shape[-1])
    if x.shape[-1] == 0:
        raise ValueError(f"{name} has an empty support")
    if x.numel() == 0:
        return True
    # One reduction settles the common case: a finite sum means no NaN, no inf, so no row
    # without mass either. Elementwise checks run only when it is not finite.
    finite = bool(torch.isfinite(x.sum()))
    if input in ("logits", "log_probs"):
        what = "logits" if input == "logits" else "log-probabilities"
        if validate and not finite:
            _check_not(torch.isnan(x), name, "contains NaN")
            _check_not(x == math.inf, name, f"contains +inf {what}")
        if (validate or normalize) and not finite:
            _check_not(x.amax(dim=-1) == -math.inf, name,
                       "has a row with no mass" if input == "log_probs"
                       else "has a row whose logits are all -inf")
        if input == "log_probs" and validate and not normalize:
            lse = torch.logsumexp(x.to(compute_dtype(x.dtype)), dim=-1)
            _check_not(lse.abs() > tol, name,
                       f"log-probabilities do not log-sum-exp to 0 (tolerance {tol:g}); "
                       "pass normalize=True to renormalise")
        return finite
    if validate:
        if not finite:
            _check_not(torch.isnan(x), name, "contains NaN")
            _check_not(torch.isinf(x), name, "contains inf")
        _check_not(x.min() < 0, name, "contains negative probabilities")
        total = x.to(compute_dtype(x.dtype)).sum(dim=-1)
        if normalize:
            _check_not(total <= 0, name, "has a row with no mass")
        else:
            _check_not((total - 1.0).abs() > tol, name,
                       f"probabilities do not sum to 1 (tolerance {tol:g}); "
                       "pass normalize=True to renormalise")
    return bool(x.min() > 0)


def log_probs(
    x: torch.Tensor, input: str, *, normalize: bool = False, positive: bool = False
) -> torch.Tensor:
    """Log-probabilities over the last axis, in the compute dtype; no checks, no host sync.

    ``positive=True`` (no zero mass, as :func:`check_distribution` reports) takes the plain
    ``log``; otherwise zero probabilities become ``-inf`` with a finite gradient.
    """
    x = x.to(compute_dtype(x.dtype))
    if input == "logits":
        return torch.log_softmax(x, dim=-1)
    if input == "log_probs":
        return x - torch.logsumexp(x, dim=-1, keepdim=True) if normalize else x
    if normalize:
        x = x / x.sum(dim=-1, keepdim=True)
    if positive:
        return torch.log(x)
    zero = x == 0
    # log of a masked copy: the backward pass never sees log(0), so zero mass keeps a
    # finite gradient. NaN (and, unvalidated, negative mass) stays NaN: never zero mass.
    safe = torch.log(torch.where(zero, torch.ones_like(x), x))
    return torch.where(zero, torch.full_like(x, -math.inf), safe)


def to_log_probs(
    x: torch.Tensor, input: str, name: str, *, normalize: bool = False, validate: bool = True,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Validated log-probabilities over the last axis (``-inf`` for zero mass)."""
    positive = check_distribution(x, input, name, normalize=normalize, validate=validate,
                                  dtype=dtype)
    return log_probs(x, input, normalize=normalize, positive=positive)


def _check_not(bad: torch.Tensor, name: str, what: str) -> None:
    if bool(bad.any()):
        raise ValueError(f"{name} {what}")


def _check_args(input: str, reduction: str, normalize: bool) -> None:
    check_choice(input, "input", INPUTS)
    check_choice(reduction, "reduction", REDUCTIONS)
    if normalize and input == "logits":
        # an argument that cannot apply is an error, not ignored
        raise ValueError(
            "normalize=True does not apply to input='logits': logits are always normalised "
            "(log-softmax); it rescales probabilities and log-probabilities"
        )


# row(lp, lq, zero_mass, masses) -> per-row values; zero_mass=False promises no -inf entry;
# masses is (p, q) for probability input (for an accurate log-ratio), else None.
Pair = Callable[..., torch.Tensor]


def _probs(x: torch.Tensor, normalize: bool) -> torch.Tensor:
    x = x.to(compute_dtype(x.dtype))
    return x / x.sum(dim=-1, keepdim=True) if normalize else x


def _pairwise(
    p: ArrayLike,
    q: ArrayLike,
    row: Pair,
    *,
    input: str,
    dim: int,
    reduction: str,
    base: float | None,
    normalize: bool,
    validate: bool,
    what: str | None = None,
) -> Any:
    """Shared driver: check arguments, convert, evaluate ``row(lp, lq)`` per batch entry.

    ``what`` names a non-logarithmic measure: then ``base`` is an error."""
    _check_args(input, reduction, normalize)
    log_base(base, what)
    dt_p, dt_q = source_dtype(p), source_dtype(q)
    (tp, tq), wrap = as_tensors(p, q, names=("p", "q"), keep_half=True)
    tp = move_support_last(tp, dim, "p")
    tq = move_support_last(tq, dim, "q")
    tp, tq = broadcast_pair(tp, tq, ("p", "q"))
    batch = tp.shape[:-1]
    if input == "logits" and getattr(row, "logits", None) is not None and tp.shape[-1] > 0:
        # Logits need no check when the value comes out finite: NaN, +inf or -inf anywhere
        # in a row makes that row's value NaN or inf on this path, and then the checks below
        # run (and raise, or take the zero-mass path). Saves two passes over the inputs.
        def logits_fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return row.logits(a.to(compute_dtype(a.dtype)), b.to(compute_dtype(b.dtype)))

        values = _rows(logits_fn, tp, tq, batch)
        if bool(torch.isfinite(values).all()):
            return finish(values, wrap, reduction=reduction, base=None if what else base)
    # Checks run once on the whole inputs; the blocks below then run without host syncs.
    pos_p = check_distribution(tp, input, "p", normalize=normalize, validate=validate,
                               dtype=dt_p)
    pos_q = check_distribution(tq, input, "q", normalize=normalize, validate=validate,
                               dtype=dt_q)
    zero_mass = not (pos_p and pos_q)

    def fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if input == "probs":
            pa, pb = _probs(a, normalize), _probs(b, normalize)
            if not zero_mass and getattr(row, "masses_only", False):
                # every mass positive: the row forms the logs it needs itself, if any
                return row(None, None, False, (pa, pb))
            lp = log_probs(pa, input, positive=pos_p)
            lq = log_probs(pb, input, positive=pos_q)
            return row(lp, lq, zero_mass, (pa, pb))
        lp = log_probs(a, input, normalize=normalize, positive=pos_p)
        lq = log_probs(b, input, normalize=normalize, positive=pos_q)
        return row(lp, lq, zero_mass, None)

    values = _rows(fn, tp, tq, batch)
    return finish(values, wrap, reduction=reduction, base=None if what else base)


def _rows(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], tp: torch.Tensor,
          tq: torch.Tensor, batch: torch.Size) -> torch.Tensor:
    """``fn`` over the rows of ``tp``, ``tq`` (support last), shaped ``batch``."""
    if tp.is_contiguous() and tq.is_contiguous():
        flat = _chunked.rowwise(fn, tp.reshape(-1, tp.shape[-1]), tq.reshape(-1, tq.shape[-1]))
        return flat.reshape(batch)
    return fn(tp, tq)  # broadcast inputs: evaluate whole rather than copy the expanded views


def _single(
    p: ArrayLike, row: Callable[..., torch.Tensor], *, input: str, dim: int,
    reduction: str, base: float | None, normalize: bool, validate: bool,
) -> Any:
    _check_args(input, reduction, normalize)
    log_base(base)
    dt = source_dtype(p)
    (tp,), wrap = as_tensors(p, names=("p",), keep_half=True)
    tp = move_support_last(tp, dim, "p")
    lp = to_log_probs(tp, input, "p", normalize=normalize, validate=validate, dtype=dt)
    probs = _probs(tp, normalize) if input == "probs" else None
    return finish(row(lp, probs), wrap, reduction=reduction, base=base)


# --------------------------------------------------------------------------------------------
# f-divergences
# --------------------------------------------------------------------------------------------


def f_divergence(
    p: ArrayLike,
    q: ArrayLike,
    /,
    f: str | fdiv.FDivergence = "kl",
    *,
    input: str = "probs",
    dim: int = -1,
    reduction: str = "none",
    base: float | None = None,
    normalize: bool = False,
    validate: bool = True,
    **params: float,
) -> Any:
    r""":math:`D_f(P\|Q) = \sum_i q_i f(p_i/q_i)` for a registry name or an :class:`~divergences.fdiv.FDivergence`.

    ``params`` are the member's parameters (``beta=`` for ``"js"``, ``skew=`` for
    ``"skew_kl"`` and ``"skew_reverse_kl"``, ``alpha=`` (an order) for ``"alpha"``). Zero mass
    follows the conventions of :mod:`divergences.fdiv`. ``base`` converts units only for
    logarithmic members (``FDivergence.log_based``); for TV, chi-square, Hellinger and
    alpha-divergences giving it is a ``ValueError``.

    >>> import numpy as np
    >>> from divergences import f_divergence
    >>> p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    >>> round(float(f_divergence(p, q, "pearson_chi2")), 6)   # (0.4^2)/0.9 + (0.4^2)/0.1
    1.777778
    >>> round(float(f_divergence(p, q, "js", beta=0.5)), 6)
    0.101749
    """
    fd = fdiv.get(f, **params)
    what = None if fd.log_based else f"the f-divergence {fd.name!r}"
    return _named(fd, p, q, input, dim, reduction, base, normalize, validate, what)


def _evaluate(fd: fdiv.FDivergence):
    def row(lp, lq, zm, masses):
        return fdiv.evaluate(fd, lp, lq, zero_mass=zm, masses=masses)

    # fdiv.evaluate takes positive probabilities without their logs (lp = lq = None) and
    # forms logs only for the rows its cheap form cannot vouch for
    row.masses_only = True
    if fd.logit_rows is not None:
        # finite logits: evaluated from the logits themselves (no log-softmax rounding)
        row.logits = lambda a, b: fdiv.evaluate_logits(fd, a, b)
    return row


def _named(fd: fdiv.FDivergence, p, q, input, dim, reduction, base, normalize, validate,
           what=None):
    return _pairwise(p, q, _evaluate(fd), input=input, dim=dim, reduction=reduction, base=base,
                     normalize=normalize, validate=validate, what=what)


def kl(
    p: ArrayLike,
    q: ArrayLike,
    /,
    *,
    input: str = "probs",
    dim: int = -1,
    reduction: str = "none",
    base: float | None = None,
    normalize: bool = False,
    validate: bool = True,
) -> Any:
    r"""Kullback-Leibler divergence :math:`\mathrm{KL}(p\|q) = \sum_i p_i \log(p_i/q_i)`.

    The expectation is under the first argument. Unlike ``torch.nn.functional.kl_div`` the
    arguments are never swapped. ``0 log(0/q) = 0``; ``+inf`` where ``q_i = 0 < p_i``.

    >>> import numpy as np
    >>> from divergences import kl
    >>> p, q = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.25, 0.5])
    >>> bool(float(kl(p, q)) == np.log(2))
    True
    >>> float(kl(q, p))
    inf
    >>> import torch
    >>> s = torch.tensor([[2.0, 0.0, -1.0]], requires_grad=True)
    >>> t = torch.tensor([[1.0, 1.0, 1.0]])
    >>> loss = kl(t, s, input="logits", reduction="mean")   # KL(teacher || student)
    >>> loss.backward()
    >>> s.grad   # softmax(s) - softmax(t)
    tensor([[ 0.5105, -0.2191, -0.2913]])
    """
    return _named(fdiv.get("kl"), p, q, input, dim, reduction, base, normalize, validate)


def js(
    p: ArrayLike,
    q: ArrayLike,
    /,
    *,
    beta: float = 0.5,
    input: str = "probs",
    dim: int = -1,
    reduction: str = "none",
    base: float | None = None,
    normalize: bool = False,
    validate: bool = True,
) -> Any:
    r"""Generalised Jensen-Shannon divergence.

    .. math:: \mathrm{JS}_\beta(p, q) = \beta\,\mathrm{KL}(p\|m) + (1-\beta)\,\mathrm{KL}(q\|m),
              \quad m = \beta p + (1-\beta) q,

    with ``beta`` in [0, 1]. It is bounded by the entropy of ``(beta, 1 - beta)`` (``ln 2`` at
    ``beta = 0.5``, where it is symmetric) and is 0 at ``beta = 0`` or ``1``. Always finite.
    ``js(p, q) ** 0.5`` in base 2 is ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.

    >>> import numpy as np
    >>> from divergences import js
    >>> bool(float(js([1.0, 0.0], [0.0, 1.0])) == np.log(2))
    True
    >>> round(float(js([0.2, 0.8], [0.6, 0.4], base=2)), 6)
    0.124511
    """
    return _named(fdiv.get("js", beta=beta), p, q, input, dim, reduction, base, normalize,
                  validate)


def skew_kl(
    p: ArrayLike,
    q: ArrayLike,
    /,
    skew: float | None = None,
    *,
    input: str = "probs",
    dim: int = -1,
    reduction: str = "none",
    base: float | None = None,
    normalize: bool = False,
    validate: bool = True,
    alpha: float | None = None,
) -> Any:
    r"""Skew KL divergence :math:`\mathrm{KL}(p \,\|\, s\,p + (1-s)\,q)` (DistiLLM), ``s = skew``.

    ``skew`` (default 0.1) is the mixture weight, in [0, 1]: ``skew = 0`` is ``KL(p||q)``;
    any ``skew > 0`` keeps it finite (at most ``-log skew``). ``alpha=`` is its former,
    deprecated spelling (a ``DeprecationWarning``; removed in the next release): ``alpha``
    now always means an order, as in :func:`renyi` and :func:`alpha_divergence`.

    >>> from divergences import skew_kl, kl
    >>> p, q = [0.3, 0.7], [0.6, 0.4]
    >>> bool(abs(skew_kl(p, q, skew=0.0) - kl(p, q)) < 1e-12)
    True
    >>> round(float(skew_kl([1.0, 0.0], [0.0, 1.0], skew=0.1)), 6)   # -log 0.1
    2.302585
    """
    s = fdiv._deprecated_alpha("skew_kl", skew, alpha, 0.1, stacklevel=3)
    return _named(fdiv.get("skew_kl", skew=s), p, q, input, dim, reduction, base,
                  normalize, validate)


def tv(
    p: ArrayLike,
    q: ArrayLike,
    /,
    *,
    input: str = "probs",
    dim: int = -1,
    reduction: str = "none",
    base: float | None = None,
    normalize: bool = False,
    validate: bool = True,
) -> Any:
    r"""Total variation distance :math:`\tfrac12 \sum_i |p_i - q_i|`, in [0, 1].

    TV has no logarithm: ``base`` does not apply, and giving it is a ``ValueError``.

    >>> from divergences import tv
    >>> float(tv([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]))
    0.5
    """
    return _named(fdiv.get("tv"), p, q, input, dim, reduction, base, normalize, validate,
                  "total variation")


def chi2(
    p: ArrayLike,
    q: ArrayLike,
    /,
    *,
    input: str = "probs",
    dim: int = -1,
    reduction: str = "none",
    base: float | None = None,
    normalize: bool = False,
    validate: bool = True,
) -> Any:
    r"""Pearson chi-square divergence :math:`\sum_i (p_i - q_i)^2 / q_i`.

    ``+inf`` where ``q_i = 0 < p_i``. With extreme logits the true value can exceed the
    floating-point range, and then it is ``inf`` (the terms are formed in log space, so this
    only happens when the value itself overflows). No logarithm: ``base`` is a ``ValueError``.

    >>> from divergences import chi2
    >>> round(float(chi2([0.5, 0.5], [0.9, 0.1])), 6)
    1.777778
    """
    return _named(fdiv.get("pearson_chi2"), p, q, input, dim, reduction, base, normalize,
                  validate, "chi-square")


def jeffreys(
    p: ArrayLike,
    q: ArrayLike,
    /,
    *,
    input: str = "probs",
    dim: int = -1,
    reduction: str = "none",
    base: float | None = None,
    normalize: bool = False,
    validate: bool = True,
) -> Any:
    r"""Jeffreys divergence :math:`\mathrm{KL}(p\|q) + \mathrm{KL}(q\|p) = \sum (p-q)\log(p/q)`.

    >>> from divergences import jeffreys, kl
    >>> p, q = [0.2, 0.8], [0.5, 0.5]
    >>> bool(abs(jeffreys(p, q) - (kl(p, q) + kl(q, p))) < 1e-12)
    True
    """
    return _named(fdiv.get("jeffreys"), p, q, input, dim, reduction, base, normalize, validate)


def alpha_divergence(
    p: ArrayLike,
    q: ArrayLike,
    /,
    alpha: float = 0.5,
    *,
    input: str = "probs",
    dim: int = -1,
    reduction: str = "none",
    base: float | None = None,
    normalize: bool = False,
    validate: bool = True,
) -> Any:
    r"""Amari alpha-divergence :math:`\frac{\sum_i p_i^\alpha q_i^{1-\alpha} - 1}{\alpha(\alpha-1)}`.

    Continuous in ``alpha``: ``alpha -> 1`` gives ``KL(p||q)`` and ``alpha -> 0`` gives
    ``KL(q||p)`` (the terms are evaluated in a form without 0/0 near both limits);
    ``alpha = 0.5`` is twice the squared Hellinger sum ``2 sum (sqrt p - sqrt q)^2``. Not a
    logarithmic quantity: ``base`` is a ``ValueError``.

    >>> from divergences import alpha_divergence, kl
    >>> p, q = [0.2, 0.8], [0.5, 0.5]
    >>> bool(abs(alpha_divergence(p, q, alpha=1.0) - kl(p, q)) < 1e-12)
    True
    >>> bool(abs(alpha_divergence(p, q, alpha=1e-9) - kl(q, p)) < 1e-8)
    True
    """
    return _named(fdiv.get("alpha", alpha=alpha), p, q, input, dim, reduction, base, normalize,
                  validate, "the alpha-divergence")


def hellinger(
    p: ArrayLike,
    q: ArrayLike,
    /,
    *,
    input: str = "probs",
    dim: int = -1,
    reduction: str = "none",
    base: float | None = None,
    normalize: bool = False,
    validate: bool = True,
) -> Any:
    r"""Hellinger distance :math:`\sqrt{\tfrac12 \sum_i (\sqrt{p_i} - \sqrt{q_i})^2}`, in [0, 1].

    The square root of half the registry's ``squared_hellinger`` f-divergence. At ``p = q`` the
    distance is not differentiable; its gradient there is taken as 0. No logarithm: ``base``
    is a ``ValueError``.

    >>> from divergences import hellinger
    >>> float(hellinger([1.0, 0.0], [0.0, 1.0]))
    1.0
    """
    fd = fdiv.get("squared_hellinger")

    def row(lp, lq, zm, masses):
        return safe_sqrt(fdiv.evaluate(fd, lp, lq, zero_mass=zm, masses=masses) / 2.0
                         ).clamp_max(1.0)

    return _pairwise(p, q, row, input=input, dim=dim, reduction=reduction, base=base,
                     normalize=normalize, validate=validate, what="the Hellinger distance")



# --------------------------------------------------------------------------------------------
# Renyi family (functions of the Hellinger integral sum p^a q^(1-a), not f-divergences)
# --------------------------------------------------------------------------------------------


def _renyi_row(alpha: float) -> Pair:
    a = alpha
    kl_fd = fdiv.get("kl")
    if a == 1.0:
        return _evaluate(kl_fd)
    amari = fdiv.get("alpha", alpha=a) if math.isfinite(a) and a > 0 else None

    def masks(lp, lq):
        # zero mass is exactly -inf; NaN is not zero mass (it propagates)
        zp, zq = lp == -math.inf, lq == -math.inf
        both = ~(zp | zq)
        zero = torch.zeros((), dtype=lp.dtype, device=lp.device)
        return zp, zq, both, torch.where(both, lp, zero), torch.where(both, lq, zero)

    def lse_form(lp, lq, zm):
        # log sum p^a q^(1-a) / (a - 1) by a log-sum-exp: right when the sum is far from 1
        if math.isinf(a):
            if not zm:
                return (lp - lq).amax(-1)
            zp, zq, both, lp_s, lq_s = masks(lp, lq)
            z = torch.where(both, lp_s - lq_s, torch.full_like(lp, -math.inf))
            z = torch.where(~zp & zq, torch.full_like(lp, math.inf), z)
            return z.amax(-1)
        if a == 0.0:
            # -log q(supp p), as -log1p(-q(p = 0)) when that mass is small (exactly 0 when
            # the supports agree)
            zp = lp == -math.inf
            lq_out = torch.where(zp, lq, torch.full_like(lq, -math.inf))
            out_mass = torch.exp(torch.logsumexp(lq_out, dim=-1))
            lq_in = torch.where(zp, torch.full_like(lq, -math.inf), lq)
            inner = -torch.logsumexp(lq_in, dim=-1)
            small = -torch.log1p(-out_mass.clamp_max(0.5))
            nan = torch.isnan(lp).any(-1) | torch.isnan(lq).any(-1)
            out = torch.where(out_mass < 0.5, small, inner)
            return torch.where(nan, torch.full_like(out, math.nan), out)
        if not zm:
            return torch.logsumexp(a * lp + (1.0 - a) * lq, dim=-1) / (a - 1.0)
        zp, zq, both, lp_s, lq_s = masks(lp, lq)
        z = torch.where(both, a * lp_s + (1.0 - a) * lq_s, torch.full_like(lp, -math.inf))
        if a > 1.0:  # p > 0 = q makes p^a q^(1-a) infinite
            z = torch.where(~zp & zq, torch.full_like(lp, math.inf), z)
        z = torch.where(torch.isnan(lp) | torch.isnan(lq), torch.full_like(lp, math.nan), z)
        return torch.logsumexp(z, dim=-1) / (a - 1.0)

    def row(lp, lq, zm, masses=None):
        far = lse_form(lp, lq, zm)
        if amari is None:
            return far.clamp_min(0.0)
        # Near the diagonal sum p^a q^(1-a) = 1 + a (a - 1) A_a with A_a the Amari
        # divergence (cancellation-free registry terms): log1p keeps D_a accurate to a few
        # ulps however close p and q are, and exactly 0 for identical inputs.
        # Rows are routed by the log-sum-exp value (S = exp((a - 1) far)), and the rows
        # that take `far` feed the Amari branch q in place of p: a zero, finite-gradient
        # input there. Evaluated on the raw inputs, that branch overflows for logits far
        # apart, and its inf derivative times where()'s zero gradient is a NaN gradient.
        with torch.no_grad():
            use_near = torch.expm1((a - 1.0) * far).abs() < 0.5
        keep = use_near.unsqueeze(-1)
        lp_n = torch.where(keep, lp, lq)
        m_n = None if masses is None else (torch.where(keep, masses[0], masses[1]), masses[1])
        s = a * (a - 1.0) * fdiv.evaluate(amari, lp_n, lq, zero_mass=zm, masses=m_n)
        near = torch.log1p(s.clamp(-0.5, 0.5)) / (a - 1.0)
        out = torch.where(use_near, near, far)
        return torch.where(torch.isnan(s), s, out).clamp_min(0.0)

    return row


def renyi(
    p: ArrayLike,
    q: ArrayLike,
    /,
    alpha: float = 0.5,
    *,
    input: str = "probs",
    dim: int = -1,
    reduction: str = "none",
    base: float | None = None,
    normalize: bool = False,
    validate: bool = True,
) -> Any:
    r"""Renyi divergence :math:`D_\alpha(p\|q) = \frac{1}{\alpha-1}\log\sum_i p_i^\alpha q_i^{1-\alpha}`.

    ``alpha`` in [0, inf]: ``alpha = 1`` is ``KL(p||q)`` (and the value is continuous there),
    ``alpha = 0.5`` is twice the Bhattacharyya distance, ``alpha = inf`` is
    ``log max_i p_i/q_i``, ``alpha = 0`` is ``-log q(supp p)``. Non-decreasing in ``alpha``.

    >>> from divergences import renyi, kl
    >>> p, q = [0.2, 0.8], [0.5, 0.5]
    >>> bool(abs(renyi(p, q, alpha=1.0) - kl(p, q)) < 1e-12)
    True
    >>> round(float(renyi(p, q, alpha=float("inf"))), 6)   # log(0.8 / 0.5)
    0.470004
    """
    a = check_range(alpha, "alpha", 0.0)
    return _pairwise(p, q, _renyi_row(a), input=input, dim=dim, reduction=reduction, base=base,
                     normalize=normalize, validate=validate)


def bhattacharyya(
    p: ArrayLike,
    q: ArrayLike,
    /,
    *,
    input: str = "probs",
    dim: int = -1,
    reduction: str = "none",
    base: float | None = None,
    normalize: bool = False,
    validate: bool = True,
) -> Any:
    r"""Bhattacharyya distance :math:`-\log \sum_i \sqrt{p_i q_i}` (half the Renyi divergence of order 1/2).

    ``+inf`` for disjoint supports.

    >>> import numpy as np
    >>> from divergences import bhattacharyya
    >>> round(float(bhattacharyya([0.5, 0.5], [0.9, 0.1])), 6)
    0.111572
    """
    half = _renyi_row(0.5)
    return _pairwise(p, q, lambda lp, lq, zm, m: half(lp, lq, zm, m) / 2.0, input=input, dim=dim,
                     reduction=reduction, base=base, normalize=normalize, validate=validate)


# --------------------------------------------------------------------------------------------
# Entropy and cross-entropy: divergences from the counting measure
# --------------------------------------------------------------------------------------------


def _neg_kl_to_counting(lp: torch.Tensor, probs: torch.Tensor | None = None) -> torch.Tensor:
    # H(p) = -KL(p || counting measure) = -sum p log p, 0 log 0 = 0. (The registry's canonical
    # KL terms add q - p, which sums to n - 1 against the unnormalised counting measure, so
    # the classic terms are formed here.) NaN propagates.
    if probs is not None:
        pos = probs > 0  # log of a masked copy: a finite (zero) gradient at p = 0
        safe = torch.log(torch.where(pos, probs, torch.ones_like(probs)))
        return (-probs * safe).sum(-1).clamp_min(0.0)
    zero = lp == -math.inf
    safe = torch.where(zero, torch.zeros_like(lp), lp)
    return torch.where(zero, torch.zeros_like(lp), -torch.exp(safe) * safe).sum(-1).clamp_min(0.0)


def entropy(
    p: ArrayLike,
    /,
    *,
    input: str = "probs",
    dim: int = -1,
    reduction: str = "none",
    base: float | None = None,
    normalize: bool = False,
    validate: bool = True,
) -> Any:
    r"""Shannon entropy :math:`H(p) = -\sum_i p_i \log p_i` (``0 log 0 = 0``).

    Minus the KL divergence from the counting measure (``q_i = 1``), computed directly as
    ``-sum p log p``. In [0, log n].

    >>> import numpy as np
    >>> from divergences import entropy
    >>> float(entropy([0.25, 0.25, 0.25, 0.25], base=2))
    2.0
    >>> bool(np.isclose(entropy([0.5, 0.5, 0.0]), np.log(2)))
    True
    """
    return _single(p, _neg_kl_to_counting, input=input, dim=dim, reduction=reduction,
                   base=base, normalize=normalize, validate=validate)


def cross_entropy(
    p: ArrayLike,
    q: ArrayLike,
    /,
    *,
    input: str = "probs",
    dim: int = -1,
    reduction: str = "none",
    base: float | None = None,
    normalize: bool = False,
    validate: bool = True,
) -> Any:
    r"""Cross-entropy :math:`H(p, q) = -\sum_i p_i \log q_i = H(p) + \mathrm{KL}(p\|q)`.

    ``+inf`` where ``q_i = 0 < p_i``.

    >>> import numpy as np
    >>> from divergences import cross_entropy
    >>> bool(np.isclose(cross_entropy([1.0, 0.0], [0.25, 0.75]), np.log(4)))
    True
    """
    kl_fd = fdiv.get("kl")

    def row(lp, lq, zm, masses):
        probs = None if masses is None else masses[0]
        return _neg_kl_to_counting(lp, probs) + fdiv.evaluate(kl_fd, lp, lq, zero_mass=zm,
                                                              masses=masses)

    return _pairwise(p, q, row, input=input, dim=dim, reduction=reduction, base=base,
                     normalize=normalize, validate=validate)
