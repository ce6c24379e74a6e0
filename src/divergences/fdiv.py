r"""The f-divergence family, written once.

For a convex generator :math:`f` with :math:`f(1) = 0`,

.. math::  D_f(P \,\|\, Q) = \sum_i q_i\, f(p_i / q_i).

The first argument is the one whose density sits in the numerator of the ratio, so
``get("kl")`` gives :math:`\mathrm{KL}(P\|Q) = \sum p \log(p/q)` (generator ``t log t``) and
``get("reverse_kl")`` gives :math:`\mathrm{KL}(Q\|P)` (generator ``-log t``).

Zero mass (the conventions every function in the library follows):

* :math:`p_i = q_i = 0` contributes 0;
* :math:`q_i = 0 < p_i` contributes :math:`p_i \lim_{t\to\infty} f(t)/t` (``slope_inf``;
  ``+inf`` for KL, ``1/2`` for total variation);
* :math:`p_i = 0 < q_i` contributes :math:`q_i f(0^+)` (``f0``; ``0`` for KL, ``+inf`` for
  reverse KL).

Each :class:`FDivergence` evaluates its terms from *log* masses (``pointwise``), so that logits
of magnitude 1e4 never overflow. The registry's members write each term in the canonical form
:math:`q\,[f(t) - f'(1)(t - 1)]` (the added linear term sums to zero over normalised
distributions), which is non-negative term by term, and evaluate it without cancellation:
every member is accurate to a few ulps relative however close ``p`` and ``q`` are, and exactly
0 where they are equal. NaN in an input gives NaN (it is never read as zero mass). Each carries what the rest of the library needs: ``f``,
``f_prime``, ``f_second``, the convex conjugate ``conjugate`` (for variational bounds), and the
density-ratio weight :math:`h(r) = r^2 f''(r)` (``weight``) used by f-distill.

>>> import torch
>>> from divergences import fdiv
>>> fdiv.get("kl").f(torch.tensor([1.0, 2.0]))
tensor([0.0000, 1.3863])
>>> fdiv.get("js", beta=0.5).name
'js'
>>> "reverse_kl" in fdiv.names()
True
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ._arrays import ArrayLike, as_tensors, check_range

__all__ = ["FDivergence", "evaluate", "f_distill_weights", "get", "names", "register"]

Fn = Callable[[torch.Tensor], torch.Tensor]
LogFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PairFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True, eq=False)
class FDivergence:
    r"""One member of the f-divergence family.

    Two members are equal, and hash alike, when their ``name`` and ``params`` agree
    (``get("js", beta=0.5) == get("js")``), so they can key a dict or sit in a set.

    Attributes
    ----------
    name:
        Registry name (``get(name)`` returns it).
    f:
        Generator :math:`f(t)`, convex on :math:`t \ge 0`, with :math:`f(1) = 0`.
    f_prime, f_second:
        :math:`f'(t)` and :math:`f''(t)`.
    f0:
        :math:`f(0^+) = \lim_{t\to 0^+} f(t)` (may be ``inf``).
    slope_inf:
        :math:`\lim_{t\to\infty} f(t)/t` (may be ``inf``).
    pointwise:
        ``pointwise(lp, lq)`` returns :math:`q f(p/q)` from finite log masses
        ``lp = log p``, ``lq = log q``, written to stay finite in log space. When omitted,
        ``exp(lq) * f(exp(lp - lq))`` is used, which can overflow for extreme ratios.
        The registry's own members give ``pointwise_exact`` instead (and ``pointwise`` is
        built from it).
    pointwise_exact:
        ``pointwise_exact(lp, lq, d, p, q, precise)``: the terms from the log masses, the log
        ratio ``d = log(p/q)`` and the masses ``p``, ``q`` (which a caller holding
        probabilities passes exactly, see :meth:`terms`). The registry writes each term in
        the canonical form :math:`q\,[f(t) - f'(1)(t - 1)]` (the added linear term sums to 0
        over normalised distributions), which is non-negative term by term, and evaluates
        it without cancellation (``log1p``/``expm1`` and a short series near :math:`t = 1`)
        when ``precise`` is true: accurate to a few ulps relative however close ``p`` and
        ``q`` are, and exactly 0 where ``p = q``.
    row_sum:
        ``row_sum(lp, lq, masses) -> (values, bound)``: the sum of the canonical terms over
        the last axis by a cheap form without the near-diagonal series, and a bound on its
        rounding error in units of the dtype's eps. :func:`evaluate` keeps a row's value
        when the bound is within ``ROW_ULPS`` of it and evaluates the other rows with the
        precise terms; ``None`` (default): always the precise terms.
    logit_rows:
        ``logit_rows(a, b) -> (values, bound)``: the same from finite logits (``kl``): the
        divergence of ``softmax(a)`` from ``softmax(b)`` without forming either's
        log-probabilities, whose rounding (an ulp of the log-normaliser) would otherwise
        limit the accuracy; used by :func:`evaluate_logits`, checked as ``row_sum`` is.
    tangent_slope:
        :math:`f'(1)`, the slope of the linear term that ``pointwise_exact`` subtracts (0 for
        members whose ``f'(1)`` is 0 and for those given by ``pointwise``). Zero-mass terms
        are then canonical too: :math:`q\,(f(0^+) + f'(1))` and
        :math:`p\,(\lim f(t)/t - f'(1))`.
    conjugate_fn:
        Closed form of the convex conjugate :math:`f^*(u) = \sup_{t\ge0} (tu - f(t))`, or
        ``None``. The method :meth:`conjugate` evaluates it, or solves it numerically
        (differentiably) when it is ``None``.
    pointwise_partial:
        ``pointwise_partial(lp, lq)`` (or ``(lp, lq, precise)`` for the registry's members)
        returns ``(terms, d terms / d lq)``: the terms as ``pointwise`` gives them and their
        partial derivative with respect to ``log q``, in a form that stays finite for finite
        log masses (the chain rule through ``pointwise`` can form ``0 * inf``); with
        ``precise=False`` the plain terms :math:`q f(p/q)` (see :meth:`terms_and_partial`). Used by
        :meth:`terms_and_partial`; members without it fall back to autograd through
        ``pointwise``.
    params:
        Parameters of a parametric member (``beta`` for ``js``, ``skew`` for ``skew_kl`` and
        ``skew_reverse_kl``, ``alpha`` (an order) for ``alpha``).
    upper_bound:
        :math:`\sup D_f` over all pairs of distributions (``inf`` if unbounded):
        :math:`f(0) + \lim f(t)/t`.
    symmetric:
        Whether :math:`D_f(P\|Q) = D_f(Q\|P)` for all pairs.
    log_based:
        Whether the value is a logarithmic quantity (KL, JS, ...), so that ``base=`` converts
        its units. For the others (TV, chi-square, Hellinger, alpha) passing ``base`` to a
        measure is a ``ValueError``.
    """

    name: str
    f: Fn
    f_prime: Fn
    f_second: Fn
    f0: float
    slope_inf: float
    pointwise: LogFn | None = None
    conjugate_fn: Fn | None = None
    f_prime_log: Fn | None = None
    pointwise_partial: PairFn | None = None
    params: dict[str, float] = field(default_factory=dict)
    symmetric: bool = False
    log_based: bool = True
    description: str = ""
    pointwise_exact: Callable[..., torch.Tensor] | None = None
    tangent_slope: float = 0.0
    row_sum: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None
    logit_rows: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None

    def _key(self) -> tuple:
        return (self.name, tuple(sorted((k, float(v)) for k, v in self.params.items())))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FDivergence):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def upper_bound(self) -> float:
        return self.f0 + self.slope_inf

    def weight(self, r: torch.Tensor) -> torch.Tensor:
        r"""Density-ratio weight :math:`h(r) = r^2 f''(r)` (f-distill, Uni-Instruct).

        >>> get("reverse_kl").weight(torch.tensor([0.5, 2.0]))
        tensor([1., 1.])
        """
        return r * r * self.f_second(r)

    def conjugate(self, u: torch.Tensor) -> torch.Tensor:
        r""":math:`f^*(u) = \sup_{t \ge 0}\,(t u - f(t))`; ``inf`` outside the domain.

        Differentiable in ``u`` (:math:`df^*/du = t^*`, the maximiser), also where it is
        solved numerically (members without ``conjugate_fn``: skew KLs, Jeffreys): the
        maximiser is found without gradient and :math:`t^* u - f(t^*)` is returned with
        :math:`t^*` held fixed, whose gradient is :math:`t^*` by the envelope theorem. It is
        ``+inf`` for :math:`u \ge` ``slope_inf`` (where the supremum is unbounded) and
        :math:`-f(0^+)` where the supremum sits at :math:`t = 0`.

        >>> get("kl").conjugate(torch.tensor([0.0, 1.0]))
        tensor([0.3679, 1.0000])
        """
        if self.conjugate_fn is not None:
            return self.conjugate_fn(u)
        return _numeric_conjugate(self, u)

    def derivative_log(self, log_t: torch.Tensor) -> torch.Tensor:
        r""":math:`f'(e^{s})` evaluated from the log-ratio :math:`s` (stable for large :math:`|s|`)."""
        if self.f_prime_log is not None:
            return self.f_prime_log(log_t)
        return self.f_prime(torch.exp(log_t))

    def terms(
        self,
        lp: torch.Tensor,
        lq: torch.Tensor,
        *,
        sync: bool = True,
        zero_mass: bool | None = None,
        precise: bool = True,
        masses: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        r"""Elementwise :math:`q_i f(p_i/q_i)` from log masses, zero-mass conventions included.

        ``lp``, ``lq`` are log-probabilities; ``-inf`` marks zero mass. The gradient is finite
        wherever the value is: masked entries never see a ``log 0`` in the backward pass.
        NaN in either argument gives NaN in that term (it is never read as zero mass).

        The registry's members give the canonical terms :math:`q\,[f(t) - f'(1)(t-1)]`, each
        non-negative; their sum is :math:`D_f` for normalised distributions. ``precise=True``
        (default) evaluates them without cancellation, to a few ulps relative; ``False``
        skips the near-diagonal series (cheaper; absolute error of order ``eps * q |log t|``
        per term), as the training losses may. ``masses=(p, q)``: the probabilities that
        ``lp``, ``lq`` are the logs of, when the caller holds them; the log-ratio is then
        formed as ``log1p((p - q) / q)`` rather than a difference of rounded logs, which is
        what makes the result accurate however close ``p`` and ``q`` are.

        ``sync=False`` never reads a tensor back to the host (no data-dependent branch, so it
        traces under ``torch.compile(fullgraph=True)``): it always takes the masked path, and
        a member without the needed limit yields NaN there instead of raising.

        ``zero_mass=False`` is the caller's promise that no entry is ``-inf`` (finite logits,
        say): the bookkeeping is skipped. ``None`` (default) finds out.
        """
        if zero_mass is False:
            return self._pointwise(lp, lq, precise, masses)
        # One reduction answers "is there any zero mass (or NaN)?" without building masks:
        # the sum of log-probabilities is finite exactly when no entry is -inf or NaN
        # (barring float overflow, which only sends us down the exact masked path below).
        if zero_mass is None and sync and bool(torch.isfinite(lp.sum()) & torch.isfinite(lq.sum())):
            return self._pointwise(lp, lq, precise, masses)
        pos_p = lp > -math.inf
        pos_q = lq > -math.inf
        both = pos_p & pos_q
        zero = torch.zeros((), dtype=lp.dtype, device=lp.device)
        lp_s = torch.where(both, lp, zero)
        lq_s = torch.where(both, lq, zero)
        m_s = None
        if masses is not None:
            one = torch.ones((), dtype=lp.dtype, device=lp.device)
            m_s = (torch.where(both, masses[0], one), torch.where(both, masses[1], one))
        out = torch.where(both, self._pointwise(lp_s, lq_s, precise, m_s), zero)
        only_p = pos_p & ~pos_q
        only_q = pos_q & ~pos_p
        slope, f0 = self._edge_limits()
        out = out + _edge(only_p, lp, slope, self.name, "slope_inf", sync)
        out = out + _edge(only_q, lq, f0, self.name, "f0", sync)
        return _nan_where(out, lp, lq)

    def _edge_limits(self) -> tuple[float, float]:
        """``(slope_inf, f0)`` of the canonical terms (the linear term's share included)."""
        c = self.tangent_slope if self.pointwise_exact is not None else 0.0
        return self.slope_inf - c, self.f0 + c

    def terms_and_partial(
        self,
        lp: torch.Tensor,
        lq: torch.Tensor,
        *,
        sync: bool = False,
        zero_mass: bool | None = None,
        precise: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``(terms, a)``: :meth:`terms` and :math:`a_i = \partial t_i / \partial \log q_i`.

        No host synchronisation. The partial with respect to :math:`\log p` follows from
        1-homogeneity, :math:`t(\log p + c, \log q + c) = e^c t`: it is :math:`t - a`
        wherever :math:`t` is finite. Zero mass: where :math:`q_i = 0` the term does not
        depend on :math:`\log q_i`, so :math:`a_i = 0`; where :math:`p_i = 0 < q_i` the term
        is :math:`q_i f(0^+)`, so :math:`a_i = t_i` when ``f0`` is finite and 0 (a constant
        ``inf`` term) when it is not. NaN in either argument gives NaN in both outputs.
        ``zero_mass=False`` promises no ``-inf`` entry; ``sync=True`` (as in :meth:`terms`)
        lets it find out with one reduction and a host read, and skip the zero-mass
        bookkeeping when there is none. No host synchronisation by default.

        ``precise=True`` gives exactly the canonical, non-negative values of
        ``terms(precise=True)`` and their partials. ``precise=False`` (default here: the
        training losses, which sum the terms over the vocabulary and clamp the sum at 0) gives
        the plain closed form :math:`q f(p/q)` and its partial, the cheapest form that is
        exactly 0 where ``p = q`` and NaN wherever an input is, without the near-diagonal
        series (absolute error of order ``eps * q |log t|`` per term, so a term near 0 can
        round below it): for members with :math:`f'(1) \ne 0` (KL, reverse KL, the skew
        KLs) a term is the canonical one plus :math:`f'(1)(p - q)`, so it can be negative,
        while the sum over a normalised row is the same :math:`D_f`, and the partial is the
        canonical one minus :math:`f'(1) q`, which the log-normaliser's share ``- q S`` of a
        logit gradient cancels exactly.

        >>> import torch
        >>> lp, lq = torch.log(torch.tensor([0.5, 0.5])), torch.log(torch.tensor([0.25, 0.75]))
        >>> t, a = get("kl").terms_and_partial(lp, lq)
        >>> a   # d/d log q of p log(p/q) is -p
        tensor([-0.5000, -0.5000])
        >>> get("kl").terms_and_partial(lp, lq, precise=True)[1]  # of p log(p/q) - p + q
        tensor([-0.2500,  0.2500])
        """
        if self.pointwise_partial is None:
            return self._autograd_partial(lp, lq, zero_mass, precise)
        if zero_mass is False or (
            zero_mass is None and sync and bool(torch.isfinite(lp.sum() + lq.sum()))
        ):
            return self._partial(lp, lq, precise)
        pos_p = lp > -math.inf
        pos_q = lq > -math.inf
        both = pos_p & pos_q
        zero = torch.zeros((), dtype=lp.dtype, device=lp.device)
        t_in, a_in = self._partial(torch.where(both, lp, zero), torch.where(both, lq, zero),
                                   precise)
        out = torch.where(both, t_in, zero)
        only_p = pos_p & ~pos_q
        only_q = pos_q & ~pos_p
        # the plain terms (precise=False) have the plain limits
        slope, f0 = self._edge_limits() if precise else (self.slope_inf, self.f0)
        edge_q = _edge(only_q, lq, f0, self.name, "f0", sync=False)
        out = out + _edge(only_p, lp, slope, self.name, "slope_inf", sync=False) + edge_q
        a = torch.where(both, a_in, edge_q if math.isfinite(f0) else zero)
        return _nan_where(out, lp, lq), _nan_where(a, lp, lq)

    def _partial(self, lp, lq, precise):
        if self.pointwise_exact is not None:  # the registry's members take ``precise``
            return self.pointwise_partial(lp, lq, precise)
        return self.pointwise_partial(lp, lq)

    def _autograd_partial(self, lp, lq, zero_mass, precise=True):
        # torch.func.vjp traces under torch.compile; eager autograd is cheaper outside it.
        def fn(x):
            return self.terms(lp, x, sync=False, zero_mass=zero_mass, precise=precise)

        if torch.compiler.is_compiling():
            t, vjp_fn = torch.func.vjp(fn, lq)
            return t, vjp_fn(torch.ones_like(t))[0]
        with torch.enable_grad():
            x = lq.detach().requires_grad_()
            t = fn(x)
            (a,) = torch.autograd.grad(t, x, torch.ones_like(t))
        return t.detach(), _nan_where(a, lp, lq)

    def _pointwise(self, lp: torch.Tensor, lq: torch.Tensor, precise: bool = True,
                   masses: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        if self.pointwise_exact is not None:
            if masses is None:
                return self.pointwise_exact(lp, lq, lp - lq, torch.exp(lp), torch.exp(lq),
                                            precise)
            p, q = masses
            return self.pointwise_exact(lp, lq, _log_ratio(p, q, lp, lq), p, q, precise)
        if self.pointwise is not None:
            return self.pointwise(lp, lq)
        return torch.exp(lq) * self.f(torch.exp(lp - lq))


def _nan_where(out: torch.Tensor, lp: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
    """``out`` with NaN wherever ``lp`` or ``lq`` is NaN (the masks above read NaN as 0 mass)."""
    return torch.where(torch.isnan(lp) | torch.isnan(lq), torch.full_like(out, math.nan), out)


def _log_ratio(p: torch.Tensor, q: torch.Tensor, lp: torch.Tensor, lq: torch.Tensor):
    r"""``log(p / q)`` from the masses: ``log1p((p - q) / q)`` where ``q/2 <= p <= 2q`` (``p - q``
    is then exact), ``log(p / q)`` where the ratio is a normal number, ``lp - lq`` elsewhere."""
    with torch.no_grad():
        r = p / q
        near = (r >= 0.5) & (r <= 2.0)
        normal = (r > torch.finfo(r.dtype).tiny) & (r < torch.finfo(r.dtype).max) & ~near
    one = torch.ones((), dtype=p.dtype, device=p.device)
    q_near = torch.where(near, q, one)
    d_near = torch.log1p((torch.where(near, p, one) - q_near) / q_near)
    q_norm = torch.where(normal, q, one)
    d_norm = torch.log(torch.where(normal, p, one) / q_norm)
    d = torch.where(near, d_near, torch.where(normal, d_norm, lp - lq))
    return torch.where(torch.isnan(r), r, d)


def _edge(mask: torch.Tensor, logmass: torch.Tensor, limit: float, name: str, what: str,
          sync: bool = True):
    """Contribution of mass that the other distribution lacks: ``mass * limit``."""
    if limit == 0.0 or (sync and not bool(mask.any())):
        return torch.zeros((), dtype=logmass.dtype, device=logmass.device)
    if sync and math.isnan(limit):
        raise ValueError(
            f"f-divergence {name!r} has no {what} limit; give FDivergence({what}=...) to "
            "evaluate it where one distribution has zero mass"
        )
    zero = torch.zeros((), dtype=logmass.dtype, device=logmass.device)
    if math.isinf(limit) or math.isnan(limit):
        # The value is infinite whatever the mass: a constant, so no gradient flows.
        return torch.where(mask, torch.full_like(logmass, limit), zero)
    safe = torch.where(mask, logmass, zero)
    return torch.where(mask, torch.exp(safe) * limit, zero)


def evaluate(
    f: FDivergence,
    lp: torch.Tensor,
    lq: torch.Tensor,
    *,
    sync: bool = True,
    zero_mass: bool | None = None,
    precise: bool = True,
    masses: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    r""":math:`D_f(P\|Q)` over the last axis from log-probabilities ``lp``, ``lq``.

    The registry's terms are non-negative, so their sum is too; the result is also clamped
    at 0 (for user-defined members, whose terms may be signed), which keeps NaN. ``sync``,
    ``zero_mass``, ``precise`` and ``masses`` as in :meth:`FDivergence.terms`; ``lp`` and
    ``lq`` may be ``None`` when ``masses`` are given and positive (their logs are then formed
    only where needed).

    Members with a cheap row form (``row_sum``: ``kl``, ``js``) evaluate rows without zero
    mass by it, without the near-diagonal series, and keep a row's value when their bound on
    its rounding error is within ``ROW_ULPS`` (16) ulps of it (away from ``p = q``; the typical
    error is well under an ulp); the other rows, those near ``p = q``, take the precise
    terms. Their gradients come from the closed-form partials (double backward included).

    With ``masses=(p, q)`` the value is the literal :math:`\sum_i q_i f(p_i/q_i)` of the
    numbers given: the canonical terms' sum plus :math:`f'(1) \sum_i (p_i - q_i)` (0 when both
    sum to exactly 1; the differences are exact where ``p`` and ``q`` are close). From log
    masses alone it is the canonical sum, :math:`D_f` of the distributions normalised.
    """
    out = None
    if lp is None:  # masses only, known positive (discrete's probabilities)
        if precise and f.row_sum is not None and sync:
            out = _checked_rows(f, None, None, masses)
        else:
            lp, lq = torch.log(masses[0]), torch.log(masses[1])
    elif precise and f.row_sum is not None and sync and zero_mass is not True:
        # no zero mass and no NaN (one reduction each tells): the cheap row form, checked
        if zero_mass is False or bool(torch.isfinite(lp.sum()) & torch.isfinite(lq.sum())):
            out = _checked_rows(f, lp, lq, masses)
    if out is None:
        out = f.terms(lp, lq, sync=sync, zero_mass=zero_mass, precise=precise,
                      masses=masses).sum(-1)
    if masses is not None and f.pointwise_exact is not None and f.tangent_slope != 0.0:
        out = out + f.tangent_slope * (masses[0] - masses[1]).sum(-1)
    return out.clamp_min(0.0)


# evaluate() keeps a row's cheap value (FDivergence.row_sum) when its rounding-error bound is
# within this many ulps of the value: away from p = q the cheap forms are that accurate in the
# worst case (typically to well under an ulp), and the rows near p = q, where they are not,
# are the ones that take the precise terms and their series.
ROW_ULPS = 16.0


def _checked_rows(f: FDivergence, lp: torch.Tensor, lq: torch.Tensor, masses):
    val, bound = f.row_sum(lp, lq, masses)
    with torch.no_grad():
        # NaN or inf anywhere in a row (an overflowing cheap form) fails the test as well
        bad = ~(bound <= ROW_ULPS * val)
        idx = bad.reshape(-1).nonzero().squeeze(1)
    if idx.numel() == 0:
        return val
    if lp is None:
        lp, lq = masses  # logs of the rows that need them only, below
    n = max(lp.shape[-1], lq.shape[-1])
    shape = (*val.shape, n)

    def rows(x, at):
        return x.expand(shape).reshape(-1, n)[at]

    def pick(at):
        if masses is None:
            return rows(lp, at), rows(lq, at), None
        m = (rows(masses[0], at), rows(masses[1], at))
        if lp is masses[0]:
            return torch.log(m[0]), torch.log(m[1]), m
        return rows(lp, at), rows(lq, at), m

    def precise(at):
        x, y, m = pick(at)
        return f.terms(x, y, zero_mass=False, masses=m).sum(-1)

    return _replace_rows(val, bound, bad, idx, lambda at: f.row_sum(*pick(at))[0], precise)


def _replace_rows(val, bound, bad, idx, cheap, precise):
    """``val`` with the rows ``idx`` (flat indices; ``bad`` their mask) replaced by
    ``precise(idx)``; ``cheap(rows)`` evaluates the cheap form again on the given rows."""
    out = val.reshape(-1)
    finite = bool(torch.isfinite(bound.reshape(-1)[idx]).all()) if val.requires_grad else True
    if val.requires_grad and finite:
        # Near p = q the cheap form loses digits of the value, not of its closed-form
        # partials (q - p and the like, formed without the cancelling sums): keep those and
        # take only the precise value. Differentiating the precise terms of gathered rows
        # instead would scatter their gradient into a zero tensor of the input's size
        # (a third of the backward pass at (1000, 1000)).
        with torch.no_grad():
            fix = precise(idx).to(val.dtype) - out[idx]
        return (out + out.new_zeros(out.shape).index_copy_(0, idx, fix)).reshape(val.shape)
    if val.requires_grad:
        # A rejected row's cheap form overflowed: its backward pass would form 0 * inf.
        # Differentiate the cheap form on the kept rows only.
        keep = (~bad).reshape(-1).nonzero().squeeze(1)
        out = out.detach().new_zeros(out.shape).index_copy(0, keep, cheap(keep))
    fix = precise(idx)
    return out.index_copy(0, idx, fix.to(val.dtype)).reshape(val.shape)


def evaluate_logits(f: FDivergence, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r""":math:`D_f(\mathrm{softmax}(a)\|\mathrm{softmax}(b))` over the last axis from finite
    logits of one shape, for members with ``logit_rows`` (else from their log-softmax by
    :func:`evaluate`).

    The cheap row form works on the logits themselves; a row is kept when its rounding-error
    bound is within ``ROW_ULPS`` ulps of its value, and the others (``p`` close to ``q``)
    take the precise terms of their log-softmax. Gradients in closed form, double backward
    included.
    """
    if f.logit_rows is None:
        return evaluate(f, torch.log_softmax(a, -1), torch.log_softmax(b, -1), zero_mass=False)
    val, bound = f.logit_rows(a, b)
    with torch.no_grad():
        bad = ~(bound <= ROW_ULPS * val)
        idx = bad.reshape(-1).nonzero().squeeze(1)
    if idx.numel() == 0:
        return val.clamp_min(0.0)
    n = a.shape[-1]
    a2, b2 = a.reshape(-1, n), b.reshape(-1, n)

    def precise(at):
        return f.logit_rows(a2[at], b2[at], precise=True)

    out = _replace_rows(val, bound, bad, idx, lambda at: f.logit_rows(a2[at], b2[at])[0],
                        precise)
    return out.clamp_min(0.0)


def f_distill_weights(
    log_density_ratio: ArrayLike,
    divergence: str | FDivergence = "js",
    *,
    clip: tuple[float, float] | None = (0.1, 20.0),
    normalize: bool = True,
    dim: int | None = None,
    **params: float,
) -> Any:
    r"""Per-sample weights :math:`h(r) = r^2 f''(r)` of f-distill and Uni-Instruct.

    Distilling a diffusion model by minimising :math:`D_f(p \| q_\theta)` turns the score
    difference of variational score distillation into a weighted one, each sample weighted by
    :math:`h(r)` of its density ratio :math:`r = p/q` (f-distill, Xu et al. 2025). Uni-Instruct
    (Wang et al. 2025, arXiv:2505.20755, Theorem 3.1) expands :math:`D_f` along the forward
    diffusion with the same weight: for :math:`dx = g\,dW`,
    :math:`\frac{d}{dt} D_f(p_t \| q_t) = -\frac{g^2}{2} E_{q_t}[h(r_t) \|\nabla \log p_t -
    \nabla \log q_t\|^2]` (checked numerically in ``tests/test_fdiv_uni_instruct.py``;
    the paper's statement itself could not be retrieved, so its notation may differ).
    ``log_density_ratio`` is
    :math:`\log r` (a discriminator's logit, typically). The ratio is clipped to ``clip``
    (``(0.1, 20)`` as in the official code; ``None`` for no clipping), :math:`h` comes from the
    registry (:meth:`FDivergence.weight`), and with ``normalize=True`` the weights are divided by
    their mean over ``dim`` (all entries by default), so the batch mean is 1.

    Weights carry no gradient (they multiply a gradient; they are not optimised). NumPy in,
    NumPy out; torch in, torch out.

    ``reverse_kl`` gives 1 everywhere, ``kl`` gives :math:`r`, ``js`` :math:`\propto r/(1+r)`,
    ``squared_hellinger`` :math:`\propto \sqrt r`, ``jeffreys`` :math:`1 + r`, ``neyman_chi2``
    :math:`\propto 1/r`. Total variation has :math:`f'' = 0` away from :math:`r = 1`: its
    weights are 0, and a group whose weights are all 0 normalises to 1 (uniform weights, the
    limit of any constant weight), never to 0/0.

    >>> import numpy as np
    >>> from divergences.fdiv import f_distill_weights
    >>> w = f_distill_weights(np.log([0.5, 1.0, 4.0]), "kl")
    >>> np.round(w, 4), float(w.mean())
    (array([0.2727, 0.5455, 2.1818]), 1.0)
    >>> f_distill_weights(np.log([0.01, 100.0]), "kl", normalize=False)   # clipped to [0.1, 20]
    array([ 0.1, 20. ])
    >>> f_distill_weights(np.log([0.5, 2.0]), "tv")
    array([1., 1.])
    """
    fd = get(divergence, **params)
    (t,), wrap = as_tensors(log_density_ratio, names=("log_density_ratio",))
    with torch.no_grad():
        if bool(torch.isnan(t).any()):
            raise ValueError("log_density_ratio contains NaN")
        r = torch.exp(t)
        if clip is not None:
            lo, hi = clip
            check_range(lo, "clip[0]", 0.0, low_open=True)
            check_range(hi, "clip[1]", lo)
            r = r.clamp(lo, hi)
        elif bool(torch.isinf(r).any()) or bool((r == 0).any()):
            raise ValueError("log_density_ratio gives a ratio of 0 or inf; pass clip=(lo, hi)")
        h = fd.weight(r)
        if normalize:
            mean = h.mean() if dim is None else h.mean(dim=dim, keepdim=True)
            zero = mean == 0
            h = torch.where(zero, torch.ones_like(h), h / torch.where(zero, 1.0, mean))
    return wrap(h)


# --------------------------------------------------------------------------------------------
# Numerical helpers
# --------------------------------------------------------------------------------------------

# psi(x) = e^x - 1 - x = x^2 sum_j x^j / (j + 2)!; on |x| < 1/2 the series is truncated where
# the next term is below half an ulp of the dtype (7 terms for float32, 14 for float64).
_PSI_COEF = [1.0 / math.factorial(j + 2) for j in range(16)]
_PSI_CUT = 0.5
# Beyond this argument a * psi(x) is formed as b - a (1 + x), b = a e^x (no overflow).
_FAR = 10.0


def _psi(x: torch.Tensor, precise: bool = True) -> torch.Tensor:
    r""":math:`\psi(x) = e^x - 1 - x \ge 0`, to about an ulp (``precise``) for every ``x``.

    ``expm1(x) - x`` loses :math:`\log_2(2/|x|)` bits near 0; there the Taylor series (in the
    dtype's precision) takes over. ``precise=False``: ``expm1(x) - x`` clamped at 0.
    """
    if not precise:
        return (torch.expm1(x) - x).clamp_min(0.0)
    k = 14 if x.dtype == torch.float64 else 7
    xs = x.clamp(-_PSI_CUT, _PSI_CUT)
    inplace = not (torch.is_grad_enabled() and xs.requires_grad)
    acc = torch.full_like(xs, _PSI_COEF[k])
    for j in range(k - 1, -1, -1):
        acc = acc.mul_(xs).add_(_PSI_COEF[j]) if inplace else acc * xs + _PSI_COEF[j]
    series = acc * (xs * xs)
    near = (x > -_PSI_CUT) & (x < _PSI_CUT)
    return torch.where(near, series, torch.expm1(x) - x)


def _apsi(a: torch.Tensor, x: torch.Tensor, b: torch.Tensor, precise: bool = True):
    r""":math:`a\,\psi(x) = b - a - a x \ge 0` with :math:`b = a e^x` given.

    This is the canonical KL term :math:`a \log(a/b) - a + b` with :math:`x = \log(b/a)`:
    ``a psi(x)`` up to ``x = 10`` and ``b - a (1 + x)`` beyond (no overflow, and no
    cancellation there). Exactly 0 at ``x = 0`` either way; ``precise=False`` forms
    ``psi`` as ``expm1(x) - x`` (clamped at 0) instead of by its series near 0.
    """
    far = x > _FAR
    near = a * _psi(x.clamp_max(_FAR), precise)
    return torch.where(far, b - a * (1.0 + x.clamp_min(_FAR)), near)


def _log_mix(x: torch.Tensor, w: float) -> torch.Tensor:
    r""":math:`\log(1 - w + w e^x)` for :math:`w \in [0, 1]`: ``log1p(w expm1(x))``, exact
    (0) at ``x = 0``, accurate near it and without overflow for large ``x``."""
    if w == 0.0:
        return torch.zeros_like(x)
    if w == 1.0:
        return x
    big = x > 30.0
    inner = torch.log1p(w * torch.expm1(x.clamp_max(30.0)))
    xb = x.clamp_min(30.0)
    outer = xb + math.log(w) + torch.log1p(((1.0 - w) / w) * torch.exp(-xb))
    return torch.where(big, outer, inner)


def _log_mix_pair(d: torch.Tensor, b: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(log(m/p), log(m/q))`` for :math:`m = b p + (1 - b) q`, :math:`0 < b < 1`, from
    ``d = log(p/q)``, without a branch: with :math:`w` the weight of the smaller mass,
    :math:`\log(m / \max(p, q)) = \mathrm{log1p}(w\,\mathrm{expm1}(-|d|))` (in
    :math:`[\log(1 - w), 0]`, no overflow), and the other side adds :math:`|d|`. Exactly 0 at
    ``d = 0``; NaN where ``d`` is. Accurate to an ulp or so of :math:`|d|` (absolute), which is
    what a loss summing the terms needs, not to a few ulps relative near ``d = 0``."""
    em = torch.expm1(d.abs().neg_())
    # w = 1 - b where p > q (d > 0), b where p < q
    w = 0.5 if b == 0.5 else torch.sign(d).mul_(0.5 - b).add_(0.5)
    if torch.is_grad_enabled() and d.requires_grad:  # out of place, for autograd
        hi = torch.log1p(em * w)
        pos = d.clamp_min(0.0)
        return hi + (pos - d), hi + pos
    hi = em.mul_(w).log1p_()
    pos = d.clamp_min(0.0)
    # log(m/q) = hi + max(d, 0), log(m/p) = hi + max(-d, 0) = hi + max(d, 0) - d
    u_q = hi + pos
    return pos.sub_(d).add_(hi), u_q


def _hi(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return torch.maximum(p, q)


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(-x))`` for ``x >= 0``, accurate at both ends (Maechler 2012)."""
    return torch.where(
        x < math.log(2.0), torch.log(-torch.expm1(-x)), torch.log1p(-torch.exp(-x))
    )


def _log_abs_diff(lp: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
    """``log |p - q|`` from ``log p`` and ``log q`` without forming ``p`` or ``q``."""
    hi = torch.maximum(lp, lq)
    gap = (lp - lq).abs()
    # gap == 0 gives log 0 = -inf (p == q): the right value; keep its gradient finite.
    safe_gap = torch.where(gap > 0, gap, torch.ones_like(gap))
    out = torch.where(gap > 0, hi + _log1mexp(safe_gap), torch.full_like(gap, -math.inf))
    return torch.where(torch.isnan(gap), gap, out)


def _numeric_conjugate(fd: FDivergence, u: torch.Tensor) -> torch.Tensor:
    r""":math:`f^*(u) = t^* u - f(t^*)`, :math:`t^*` solving :math:`f'(t) = u` by bisection in
    :math:`\log t` (float64, without gradient); :math:`t^*` is then held fixed, so the
    gradient in ``u`` is :math:`t^*` (envelope theorem).

    Ends of the domain: ``+inf`` for ``u > slope_inf``; at ``u = slope_inf`` the supremum is
    the limit of :math:`t u - f(t)` as :math:`t \to \infty`, finite for some members (skew
    KL: :math:`(1 - s)/s`) and ``+inf`` for others (skew reverse KL at 0), told apart by
    whether it still grows between :math:`t = e^{30}` and :math:`e^{60}`; :math:`-f(0^+)`
    for ``u <= f'(0^+)``, where the supremum sits at :math:`t = 0`."""
    dtype = u.dtype if u.is_floating_point() else torch.float64
    u = u.to(dtype)
    with torch.no_grad():
        u64 = u.detach().to(torch.float64)
        lo = torch.full_like(u64, -60.0)
        hi = torch.full_like(u64, 60.0)
        for _ in range(200):
            mid = (lo + hi) / 2
            up = fd.f_prime(torch.exp(mid)) < u64
            lo = torch.where(up, mid, lo)
            hi = torch.where(up, hi, mid)
        t64 = torch.exp((lo + hi) / 2)
        beyond = u64 > fd.slope_inf
        at_slope = u64 == fd.slope_inf
        edge_val = torch.full_like(u64, math.inf)
        if math.isfinite(fd.slope_inf) and bool(at_slope.any()):
            edge_val = torch.full_like(u64, _limit_at_slope(fd))
        at_zero = u64 <= fd.f_prime(torch.tensor(math.exp(-60.0), dtype=torch.float64))
        nan = torch.isnan(u64)
        safe = ~(beyond | at_slope | at_zero | nan)
        t64 = torch.where(safe, t64, torch.ones_like(t64))
    t = t64.to(dtype)
    val = t * u - fd.f(t).to(dtype)
    val = torch.where(at_slope.to(u.device), edge_val.to(device=u.device, dtype=dtype), val)
    val = torch.where(beyond.to(u.device), torch.full_like(val, math.inf), val)
    val = torch.where(at_zero.to(u.device), torch.full_like(val, -fd.f0), val)
    return torch.where(nan.to(u.device), u, val)


def _limit_at_slope(fd: FDivergence) -> float:
    """``lim_{t -> inf} (t slope_inf - f(t))``: ``inf`` if it still grows between ``t = e^12``
    and ``e^16``, else Aitken's extrapolation from ``t = e^8, e^12, e^16`` (the approach is
    geometric in ``1/t`` for the members that need it: skew KL)."""
    t = torch.tensor([math.exp(8.0), math.exp(12.0), math.exp(16.0)], dtype=torch.float64)
    g = (t * fd.slope_inf - fd.f(t)).tolist()
    d1, d2 = g[1] - g[0], g[2] - g[1]
    if not all(map(math.isfinite, g)) or abs(d2) > 1e-3 * max(1.0, abs(g[2])):
        return math.inf
    return g[2] - d2 * d2 / (d2 - d1) if d2 != d1 else g[2]


def _xlogx(t: torch.Tensor) -> torch.Tensor:
    return torch.special.xlogy(t, t)


def _domain(u: torch.Tensor, ok: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    return torch.where(ok, value, torch.full_like(value, math.inf))


def _deprecated_alpha(name: str, skew: float | None, alpha: float | None,
                      default: float, stacklevel: int = 4) -> float:
    """The mixture weight of a skew divergence from ``skew=`` (or the deprecated ``alpha=``)."""
    if alpha is not None:
        if skew is not None:
            raise TypeError(f"{name}: give skew= only (alpha= is its deprecated spelling)")
        warnings.warn(
            f"{name}(alpha=...) is deprecated and will be removed in the next release: the "
            "mixture weight is now called skew= (alpha is reserved for orders, as in the "
            "alpha and Renyi divergences)",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        return alpha
    return default if skew is None else skew


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

_FACTORIES: dict[str, Callable[..., FDivergence]] = {}
_ALIASES = {"forward_kl": "kl", "chi2": "pearson_chi2", "hellinger_squared": "squared_hellinger"}


def register(name: str) -> Callable[[Callable[..., FDivergence]], Callable[..., FDivergence]]:
    """Decorator that files a factory ``(**params) -> FDivergence`` under ``name``."""

    def deco(factory: Callable[..., FDivergence]) -> Callable[..., FDivergence]:
        if name in _FACTORIES or name in _ALIASES:
            raise ValueError(f"an f-divergence named {name!r} is already registered")
        _FACTORIES[name] = factory
        return factory

    return deco


def names() -> list[str]:
    """The registered f-divergence names (aliases excluded), sorted."""
    return sorted(_FACTORIES)


def get(name: str | FDivergence, **params: Any) -> FDivergence:
    """The registered f-divergence ``name``, built with ``params`` (``beta=``, ``skew=``, ``alpha=``).

    An :class:`FDivergence` passes through unchanged. Aliases: ``forward_kl`` is ``kl``,
    ``chi2`` is ``pearson_chi2``. ``alpha`` is an order (the ``alpha`` member); the skew KLs
    take their mixture weight as ``skew=`` (``alpha=`` there is deprecated).

    >>> get("alpha", alpha=0.5).params
    {'alpha': 0.5}
    >>> get("skew_kl", skew=0.1).params
    {'skew': 0.1}
    >>> get("kld")
    Traceback (most recent call last):
    ...
    ValueError: unknown f-divergence 'kld'; choose one of: alpha, jeffreys, js, kl, le_cam, neyman_chi2, pearson_chi2, reverse_kl, skew_kl, skew_reverse_kl, squared_hellinger, triangular, tv (aliases: forward_kl, chi2, hellinger_squared)
    """
    if isinstance(name, FDivergence):
        if params:
            raise ValueError("parameters cannot be given with an FDivergence instance")
        return name
    key = _ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in _FACTORIES:
        raise ValueError(
            f"unknown f-divergence {name!r}; choose one of: {', '.join(names())} "
            f"(aliases: {', '.join(_ALIASES)})"
        )
    try:
        return _FACTORIES[key](**params)
    except TypeError as exc:
        raise TypeError(f"f-divergence {key!r}: {exc}") from None


def _exact(kernel):
    """``pointwise(lp, lq)`` from a kernel ``(lp, lq, d, p, q, precise)``."""
    return lambda lp, lq: kernel(lp, lq, lp - lq, torch.exp(lp), torch.exp(lq), True)


# Each kernel below returns the canonical term q [f(t) - f'(1)(t - 1)] >= 0 from
# d = log(p/q) and the masses p, q (lp, lq for forms that must not overflow).


def _kl_kernel(lp, lq, d, p, q, precise):
    # p log(p/q) - p + q = p psi(log(q/p)); without the series: q - p + p d (exactly 0 at
    # p = q, no overflow)
    if not precise:
        return (q - p + p * d).clamp_min(0.0)
    return _apsi(p, -d, q)


class _RowSum(torch.autograd.Function):
    """``(values, bound)``: row sums of elementwise terms whose partials come in closed form
    from ``fn(x, y, logs) -> (values, g_x, g_y, bound, s_x, s_y)``, the partials being
    ``s_x * g_x`` and ``s_y * g_y`` (the scalars save a pass over the data); autograd through
    the cheap forms would leave the cancelling mixture derivatives to rounding. The backward
    pass uses the saved partials, or forms them again with a graph when one is asked for
    (double backward)."""

    @staticmethod
    def forward(ctx, x, y, fn, logs):
        # grads=(needs x, needs y): a form may skip the partial nobody asked for (then None)
        val, gx, gy, bound, sx, sy = fn(x, y, logs, grads=tuple(ctx.needs_input_grad[:2]))
        ctx.fn, ctx.logs, ctx.signs = fn, logs, (sx, sy)
        ctx.save_for_backward(x, y, gx, gy)
        ctx.mark_non_differentiable(bound)
        return val, bound

    @staticmethod
    def backward(ctx, go, _):
        x, y, gx, gy = ctx.saved_tensors
        if torch.is_grad_enabled():
            _, gx, gy, _, _, _ = ctx.fn(x, y, ctx.logs)
        sx, sy = ctx.signs
        go = go.unsqueeze(-1)
        need_x, need_y = ctx.needs_input_grad[:2]
        return (((go * sx) * gx).sum_to_size(x.shape) if need_x else None,
                ((go * sy) * gy).sum_to_size(y.shape) if need_y else None, None, None)


def _row_sum(fn, x, y, logs):
    """``(values, bound)`` of ``fn`` (see :class:`_RowSum`), through it when a gradient is
    wanted."""
    if torch.is_grad_enabled() and (x.requires_grad or y.requires_grad):
        return _RowSum.apply(x, y, functools.partial(_in_blocks, fn), logs)
    val, _, _, bound, _, _ = _in_blocks(fn, x, y, logs, grads=False)
    return val, bound


# Rows per block of the cheap row forms: their dozen passes over a block of this many elements
# run from cache and reuse the allocator's memory, where over a whole (1000, 1000) input each
# pass streams from memory and each temporary maps fresh pages (2-3x slower, measured; 2**17
# to 2**19 were alike).
ROW_BLOCK_ELEMENTS = 1 << 19


def _in_blocks(fn, x, y, logs, grads=True):
    """``fn(x, y, logs, grads)`` over blocks of rows of 2-D inputs of one shape."""
    rows = max(1, ROW_BLOCK_ELEMENTS // max(1, x.shape[-1]))
    # Forward values only: with partials the blocks' outputs are copied into whole-size
    # partials, which cost more than the cache saves (1.8x at (100, 32000) from masses)
    if (x.dim() != 2 or x.shape != y.shape or x.shape[0] <= rows or grads
            or (torch.is_grad_enabled() and (x.requires_grad or y.requires_grad))):
        return fn(x, y, logs, grads=grads)
    n = x.shape[0]
    val = bound = gx = gy = None
    for s in range(0, n, rows):
        v, a, b, bd, sx, sy = fn(x[s : s + rows], y[s : s + rows], logs, grads=grads)
        if val is None:
            val, bound = v.new_empty(n), bd.new_empty(n)
            gx = None if a is None else a.new_empty((n, *a.shape[1:]))
            gy = None if b is None else b.new_empty((n, *b.shape[1:]))
        val[s : s + rows] = v
        bound[s : s + rows] = bd
        if a is not None:
            gx[s : s + rows] = a
        if b is not None:
            gy[s : s + rows] = b
    return val, gx, gy, bound, sx, sy


def _kl_elementwise(x, y, logs, grads=True):
    """KL's cheap canonical terms, their partials and the rows' rounding-error bound (eps)."""
    # in place (fewer temporaries: at 2**21-element row blocks each one costs as much as
    # the arithmetic) unless the partials must carry a graph (double backward)
    inplace = not (torch.is_grad_enabled() and (x.requires_grad or y.requires_grad))
    if logs:
        # p psi(v), v = log(q/p): psi = expm1(v) - v loses log2(2/|v|) bits near 0 only.
        # d/d log q = q - p = p expm1(v) and d/d log p = p log(p/q) = -p v sum to the term.
        v = y - x
        p = torch.exp(x)
        with torch.no_grad():
            vmax = v.amax(-1).clamp_min_(0.0)
        if inplace:
            gy = torch.expm1(v).mul_(p)
            pv = v.mul_(p)
        else:
            gy = torch.expm1(v) * p
            pv = v * p
        with torch.no_grad():
            # expm1's, the products' and the subtraction's ulps, and v's own rounding (half
            # an ulp) amplified by e^v, at most by the row's largest v
            buf = torch.abs(gy, out=p) if inplace else gy.abs()
            agy = buf.sum(-1)
            apv = torch.abs(pv, out=buf).sum(-1)
            bound = apv.add_(agy).add_(agy * vmax * 0.5).mul_(1.5)
        # the row sum as two sums: their cancellation is within the bound's terms
        val = gy.sum(-1) - pv.sum(-1)
        return val, pv, gy, bound, -1.0, 1.0
    # from the masses: q - p is exact where they are close, log(p/q) to half an ulp
    p, q = x, y
    d = (p / q).log_() if inplace else torch.log(p / q)
    u = q - p
    pd = p * d
    val = u.sum(-1) + pd.sum(-1)
    with torch.no_grad():
        asum = torch.abs(pd, out=pd).sum(-1) if inplace else pd.abs().sum(-1)
        bound = (u.abs().sum(-1) + asum.mul_(2.0) + p.sum(-1)).mul_(0.75)
    # d/dp = log(p/q), d/dq = 1 - p/q
    return val, d, (u.div_(q) if inplace else u / q) if grads else None, bound, 1.0, 1.0


def _kl_logit_elementwise(a, b, _logs, grads=True):
    """KL(softmax(a) || softmax(b)) per row from logits, its partials and rounding bound.

    With p = softmax(a), u = b - a and any per-row shift c, KL = log E_p[e^(u - c)] -
    E_p[u - c] exactly; c = E_p[u] makes both pieces small, so with z = u - c the value is
    log1p(E_p expm1(z)) - E_p z: one exp-like pass (softmax's), one expm1 and no
    log-normaliser, whose ulp (|lse| ~ 12 at V = 128k) would cost tens of ulps.
    Expectations weigh by p / sum(p): softmax's own normaliser carries tens of ulps at
    V = 128k in float32.
    """
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return _kl_logit_graph(a, b)
    # Three buffers of the input's size, reused in place: at 2**20 elements a fresh one costs
    # as much as a pass over it (the allocator maps new pages), and each pass is cheap.
    p = torch.softmax(a, -1)
    r = p.sum(-1).reciprocal_()
    z = torch.sub(b, a)
    w = torch.mul(p, z)
    c = w.sum(-1).mul_(r)
    z.sub_(c.unsqueeze(-1))
    s2 = torch.mul(p, z, out=w).sum(-1).mul_(r)
    apz = torch.abs(z, out=w).mul_(p).sum(-1).mul_(r)
    pe = torch.expm1(z, out=w).mul_(p)
    s1 = pe.sum(-1).mul_(r)
    gx = gy = None
    need_x, need_y = grads if isinstance(grads, tuple) else (grads, grads)
    if need_x or need_y:
        # z is free for scratch when its partial is not wanted; else a fourth buffer
        tmp = torch.mul(pe, z, out=z) if not need_x else pe * z
        sez = tmp.sum(-1).mul_(r)
        ape = torch.abs(pe, out=tmp).sum(-1).mul_(r)
        # d/da = p (d - E_p d) = -p (z - E_p z);  d/db = q - p = p e^z / E_p e^z - p
        if need_x:
            gx = z.sub_(s2.unsqueeze(-1)).mul_(p).mul_(r.unsqueeze(-1))
        if need_y:
            gy = pe.addcmul_(p, s1.unsqueeze(-1), value=-1.0)
            gy = gy.mul_((r / (1.0 + s1)).unsqueeze(-1))
    else:
        sez = z.mul_(pe).sum(-1).mul_(r)  # p e z >= 0: e and z share their sign
        ape = torch.abs(pe, out=pe).sum(-1).mul_(r)
    val = torch.log1p(s1).sub_(s2)
    return val, gx, gy, _kl_logit_bound(val, c, ape, apz, sez), -1.0, 1.0


def _kl_logit_bound(val, c, ape, apz, sez):
    # In eps units: expm1's and the products' ulps and the sums' (E|p e| and E p|z|); u's
    # rounding (half an ulp of |u| <= |z| + |c|) times |q - p| <= p |e| + T p; softmax's few
    # ulps per p times the value.
    ac = c.abs()
    t = val.clamp_min(0.0)
    return (ape + apz).mul_(1.5).add_((sez + ac * ape + t * (apz + ac)).mul_(0.5)).add_(t * 4.0)


def _kl_logit_graph(a, b):
    # the same with a graph through the partials (double backward)
    p = torch.softmax(a, -1)
    r = 1.0 / p.sum(-1, keepdim=True)
    z = b - a
    c = (p * z).sum(-1, keepdim=True) * r
    z = z - c
    s2 = (p * z).sum(-1, keepdim=True) * r
    pe = torch.expm1(z) * p
    s1 = pe.sum(-1, keepdim=True) * r
    val = (torch.log1p(s1) - s2).squeeze(-1)
    gx = p * r * (z - s2)
    gy = (pe * r - p * r * s1) / (1.0 + s1)
    with torch.no_grad():
        bound = _kl_logit_bound(val, c.squeeze(-1), (pe.abs().sum(-1, keepdim=True) * r).squeeze(-1),
                                ((p * z.abs()).sum(-1, keepdim=True) * r).squeeze(-1),
                                ((pe * z).sum(-1, keepdim=True) * r).squeeze(-1))
    return val, gx, gy, bound, -1.0, 1.0


def _kl_logit_rows(a, b, precise=False):
    if not precise:
        return _row_sum(_kl_logit_elementwise, a, b, True)
    # The rows near p = q (and those whose cheap form overflowed), to a few ulps: the same
    # identity with the shift c = lse(b) - lse(a), which keeps p e^z = exp(log q) <= 1, and
    # the terms p psi(z) by their series near z = 0. b - a is exact where b is close to a.
    la = torch.log_softmax(a, -1)
    p = torch.exp(la)
    r = 1.0 / p.sum(-1)
    c = torch.logsumexp(b, -1) - torch.logsumexp(a, -1)
    z = (b - a) - c.unsqueeze(-1)
    q_ = _apsi(p, z, torch.exp(la + z)).sum(-1) * r
    s_ = torch.linalg.vecdot(p, z) * r
    # log1p(q_ + s_) - s_, written q_ - psi(log1p(q_ + s_)) (no cancellation at small s_)
    return q_ - _psi(torch.log1p(q_ + s_))


def _kl_rows(lp, lq, masses):
    x, y = (lp, lq) if masses is None else masses
    return _row_sum(_kl_elementwise, x, y, masses is None)


def _kl_partial(lp, lq, precise=False):
    d = lp - lq
    if precise:
        p, q = torch.exp(lp), torch.exp(lq)
        return _kl_kernel(lp, lq, d, p, q, True), q - p
    # plain p log(p/q) and -p; (0 * d) makes the partial NaN where either input is
    p = torch.exp(lp)
    return p * d, (d * 0.0).sub_(p)


def _reverse_kl_kernel(lp, lq, d, p, q, precise):
    # q log(q/p) - q + p = q psi(log(p/q))
    if not precise:
        return (p - q - q * d).clamp_min(0.0)
    return _apsi(q, d, p)


def _reverse_kl_partial(lp, lq, precise=False):
    if precise:
        p, q = torch.exp(lp), torch.exp(lq)
        d = lp - lq
        return _reverse_kl_kernel(lp, lq, d, p, q, True), -q * d
    # plain q log(q/p) and its partial q log(q/p) + q
    q = torch.exp(lq)
    t = q * (lq - lp)
    return t, t + q


@register("kl")
def _kl() -> FDivergence:
    return FDivergence(
        name="kl",
        tangent_slope=1.0,
        f=_xlogx,
        f_prime=lambda t: torch.log(t) + 1.0,
        f_second=lambda t: 1.0 / t,
        f0=0.0,
        slope_inf=math.inf,
        pointwise=_exact(_kl_kernel),
        pointwise_exact=_kl_kernel,
        pointwise_partial=_kl_partial,
        row_sum=_kl_rows,
        logit_rows=_kl_logit_rows,
        conjugate_fn=lambda u: torch.exp(u - 1.0),
        f_prime_log=lambda s: s + 1.0,
        description="Kullback-Leibler KL(P||Q) = sum p log(p/q)",
    )


@register("reverse_kl")
def _reverse_kl() -> FDivergence:
    return FDivergence(
        name="reverse_kl",
        tangent_slope=-1.0,
        f=lambda t: -torch.log(t),
        f_prime=lambda t: -1.0 / t,
        f_second=lambda t: 1.0 / (t * t),
        f0=math.inf,
        slope_inf=0.0,
        pointwise=_exact(_reverse_kl_kernel),
        pointwise_exact=_reverse_kl_kernel,
        pointwise_partial=_reverse_kl_partial,
        conjugate_fn=lambda u: _domain(u, u < 0, -1.0 - torch.log(-u.clamp_max(-1e-300))),
        f_prime_log=lambda s: -torch.exp(-s),
        description="reverse Kullback-Leibler KL(Q||P) = sum q log(q/p)",
    )


@register("js")
def _js(beta: float = 0.5) -> FDivergence:
    b = check_range(beta, "beta", 0.0, 1.0)

    def mix(d):
        # u_p = log(m/p), u_q = log(m/q), m = b p + (1 - b) q; exactly 0 at d = 0.
        return _log_mix(-d, 1.0 - b), _log_mix(d, b)

    def kernel(lp, lq, d, p, q, precise):
        u_p, u_q = mix(d)
        if not precise:  # f'(1) = 0: the classic form, non-negative term by term
            return (-(b * p * u_p + (1.0 - b) * q * u_q)).clamp_min(0.0)
        m = b * p + (1.0 - b) * q  # a sum of positives: exact to an ulp
        return b * _apsi(p, u_p, m) + (1.0 - b) * _apsi(q, u_q, m)

    def partial(lp, lq, precise=False):
        # d/d log q: the log m terms cancel against the mixture's own derivative.
        d = lp - lq
        p, q = torch.exp(lp), torch.exp(lq)
        if precise:
            return kernel(lp, lq, d, p, q, True), -(1.0 - b) * q * mix(d)[1]
        if b in (0.0, 1.0):  # m is p or q: identically 0
            z = d * 0.0
            return z, z.clone()
        # f'(1) = 0: plain and canonical agree. u_p = log(m/p), u_q = log(m/q) from one
        # log1p each side of the larger mass (no overflow, exactly 0 at d = 0).
        u_p, u_q = _log_mix_pair(d, b)
        pu = p.mul_(u_p)
        qu = q.mul_(u_q)
        return pu.mul_(-b).sub_(qu, alpha=1.0 - b), qu.mul_(-(1.0 - b))

    def f(t):
        m = b * t + (1.0 - b)
        return b * _xlogx(t) - _xlogx(m)

    def f_prime(t):
        return b * (torch.log(t) - torch.log(b * t + (1.0 - b)))

    def conjugate(u):
        if b in (0.0, 1.0):
            return _domain(u, u <= 0, torch.zeros_like(u))
        ok = u < -b * math.log(b)
        inner = 1.0 - b * torch.exp(torch.where(ok, u, torch.zeros_like(u)) / b)
        return _domain(u, ok, -(1.0 - b) * (torch.log(inner) - math.log1p(-b)))

    lb = math.log(b) if b > 0 else -math.inf
    l1b = math.log1p(-b) if b < 1 else -math.inf

    rounding = 2.0 + 0.5 / min(b, 1.0 - b) if 0.0 < b < 1.0 else 0.0

    def elementwise(x, y, logs, grads=True):
        # terms and their partials in (x, y): log masses (logs) or masses. The log m
        # derivatives cancel in closed form: d/dp = -b log(m/p), d/dq = -(1 - b) log(m/q)
        if logs:
            d = x - y
            p, q = torch.exp(x), torch.exp(y)
        else:
            p, q = x, y
            d = torch.log(p / q)
        u_p, u_q = _log_mix_pair(d, b)
        # in place (fewer temporaries) on the exps, unless the partials must carry a graph
        inplace = logs and not (torch.is_grad_enabled()
                                   and (x.requires_grad or y.requires_grad))
        bp, bq = (p.mul_(u_p), q.mul_(u_q)) if inplace else (p * u_p, q * u_q)
        bp.mul_(b)
        bq.mul_(1.0 - b)
        # the row sum as two sums of opposite signs: their cancellation is within the bound
        val = (bp.sum(-1) + bq.sum(-1)).neg_().add_(0.0)  # + 0: no -0.0 at p = q
        with torch.no_grad():
            # rounding-error bound: the two sides' products and their u's (log1p's ulp and
            # its argument's, and the |d| added on the smaller mass's side, which is at most
            # twice that side's u / min(b, 1 - b))
            buf = torch.abs(bp, out=d) if inplace or (not logs and not grads) else bp.abs()
            bound = buf.sum(-1)
            bound = bound.add_(torch.abs(bq, out=buf).sum(-1)).mul_(rounding)
        if logs:
            return val, bp, bq, bound, -1.0, -1.0
        return val, u_p, u_q, bound, -b, -(1.0 - b)

    def rows(lp, lq, masses):
        x, y = (lp, lq) if masses is None else masses
        return _row_sum(elementwise, x, y, masses is None)

    def f_prime_log(s):
        return b * (s - torch.logaddexp(s + lb, torch.full_like(s, l1b)))

    ent = -(b * math.log(b) if b > 0 else 0.0) - ((1 - b) * math.log1p(-b) if b < 1 else 0.0)
    return FDivergence(
        name="js",
        f=f,
        f_prime=f_prime,
        f_second=lambda t: b * (1.0 - b) / (t * (b * t + (1.0 - b))),
        f0=-(1.0 - b) * math.log1p(-b) if b < 1 else 0.0,
        slope_inf=-b * math.log(b) if b > 0 else 0.0,
        pointwise=_exact(kernel),
        pointwise_exact=kernel,
        pointwise_partial=partial,
        row_sum=rows if 0.0 < b < 1.0 else None,
        conjugate_fn=conjugate,
        f_prime_log=f_prime_log,
        params={"beta": b},
        symmetric=b == 0.5,
        description=f"generalised Jensen-Shannon, beta={b}: bounded by {ent:.6g} nats",
    )


@register("skew_kl")
def _skew_kl(skew: float | None = None, *, alpha: float | None = None) -> FDivergence:
    a = check_range(_deprecated_alpha("skew_kl", skew, alpha, 0.1), "skew", 0.0, 1.0)
    la = math.log(a) if a > 0 else -math.inf

    def kernel(lp, lq, d, p, q, precise):
        # KL(p || m), m = a p + (1 - a) q, canonical: p psi(log(m/p)); u = log(m/p).
        u = _log_mix(-d, 1.0 - a)
        return _apsi(p, u, a * p + (1.0 - a) * q, precise)

    def partial(lp, lq, precise=False):
        d = lp - lq
        if not precise:
            if a == 0.0:
                return _kl_partial(lp, lq)
            if a == 1.0:  # m = p
                z = d * 0.0
                return z, z.clone()
            # plain p log(p/m) = -p u and its partial -(1 - a) q p/m = -(1 - a) e^(lq - u)
            u, _ = _log_mix_pair(d, a)
            t = torch.exp(lp).mul_(u).neg_()
            return t, torch.exp(lq - u).mul_(-(1.0 - a))
        p, q = torch.exp(lp), torch.exp(lq)
        u = _log_mix(-d, 1.0 - a)
        # d/d log q of p log(p/m) - (1 - a)(p - q): (1 - a) q (1 - p/m)
        return _apsi(p, u, a * p + (1.0 - a) * q, precise), -(1.0 - a) * q * torch.expm1(-u)

    def f(t):
        return _xlogx(t) - torch.special.xlogy(t, a * t + (1.0 - a))

    def f_prime(t):
        m = a * t + (1.0 - a)
        return torch.log(t) - torch.log(m) + (1.0 - a) / m

    return FDivergence(
        name="skew_kl",
        tangent_slope=1.0 - a,
        f=f,
        f_prime=f_prime,
        f_second=lambda t: (1.0 - a) ** 2 / (t * (a * t + 1.0 - a) ** 2),
        f0=0.0,
        slope_inf=-la if a > 0 else math.inf,
        pointwise=_exact(kernel),
        pointwise_exact=kernel,
        pointwise_partial=partial,
        params={"skew": a},
        description=f"skew KL(P || {a}P + {1 - a}Q) (DistiLLM)",
    )


@register("skew_reverse_kl")
def _skew_reverse_kl(skew: float | None = None, *, alpha: float | None = None) -> FDivergence:
    a = check_range(_deprecated_alpha("skew_reverse_kl", skew, alpha, 0.1), "skew", 0.0, 1.0)
    la = math.log(a) if a > 0 else -math.inf

    def kernel(lp, lq, d, p, q, precise):
        # KL(q || m), m = a q + (1 - a) p, canonical: q psi(log(m/q)); u = log(m/q).
        u = _log_mix(d, 1.0 - a)
        return _apsi(q, u, a * q + (1.0 - a) * p, precise)

    def partial(lp, lq, precise=False):
        d = lp - lq
        if not precise:
            if a == 0.0:
                return _reverse_kl_partial(lp, lq)
            if a == 1.0:  # m = q
                z = d * 0.0
                return z, z.clone()
            # plain q log(q/m) = -q u and its partial -q u + q - a q^2/m, q^2/m = q e^-u
            _, u = _log_mix_pair(d, 1.0 - a)
            q = torch.exp(lq)
            t = q * u
            t.neg_()
            return t, torch.exp(lq - u).mul_(-a).add_(t).add_(q)
        p, q = torch.exp(lp), torch.exp(lq)
        u = _log_mix(d, 1.0 - a)
        t = _apsi(q, u, a * q + (1.0 - a) * p, precise)
        return t, -q * u - a * q * torch.expm1(-u)

    def f(t):
        return -torch.log(a + (1.0 - a) * t)

    return FDivergence(
        name="skew_reverse_kl",
        tangent_slope=-(1.0 - a),
        f=f,
        f_prime=lambda t: -(1.0 - a) / (a + (1.0 - a) * t),
        f_second=lambda t: (1.0 - a) ** 2 / (a + (1.0 - a) * t) ** 2,
        f0=-la if a > 0 else math.inf,
        slope_inf=0.0,
        pointwise=_exact(kernel),
        pointwise_exact=kernel,
        pointwise_partial=partial,
        params={"skew": a},
        description=f"skew reverse KL(Q || {a}Q + {1 - a}P) (DistiLLM)",
    )


def _tv_kernel(lp, lq, d, p, q, precise):
    if not precise:
        return 0.5 * (p - q).abs()
    return 0.5 * _hi(p, q) * -torch.expm1(-d.abs())


def _tv_partial(lp, lq, precise=False):
    p, q = torch.exp(lp), torch.exp(lq)
    u = p - q
    # (u * 0) is 0, or NaN where u is: sign(NaN) is 0
    a = torch.sign(u).mul_(q).mul_(-0.5).add_(u * 0.0)
    if precise:
        return _tv_kernel(lp, lq, lp - lq, p, q, True), a
    return u.abs_().mul_(0.5), a


@register("tv")
def _tv() -> FDivergence:
    def conjugate(u):
        return _domain(u, u <= 0.5, torch.maximum(u, torch.full_like(u, -0.5)))

    return FDivergence(
        name="tv",
        log_based=False,
        f=lambda t: 0.5 * (t - 1.0).abs(),
        f_prime=lambda t: 0.5 * torch.sign(t - 1.0),
        f_second=lambda t: torch.zeros_like(t),
        f0=0.5,
        slope_inf=0.5,
        pointwise=_exact(_tv_kernel),
        pointwise_exact=_tv_kernel,
        pointwise_partial=_tv_partial,
        conjugate_fn=conjugate,
        symmetric=True,
        description="total variation 1/2 sum |p - q|",
    )


def _hellinger_kernel(lp, lq, d, p, q, precise):
    if not precise:
        return (torch.exp(lp / 2) - torch.exp(lq / 2)) ** 2
    # (sqrt p - sqrt q)^2 = max(p, q) (1 - exp(-|d|/2))^2
    return _hi(p, q) * torch.expm1(-d.abs() / 2) ** 2


def _hellinger_partial(lp, lq, precise=False):
    sq = torch.exp(lq / 2)
    u = torch.exp(lp / 2) - sq
    t = _hellinger_kernel(lp, lq, lp - lq, torch.exp(lp), torch.exp(lq), True) if precise \
        else u * u
    return t, -u * sq


@register("squared_hellinger")
def _squared_hellinger() -> FDivergence:
    def conjugate(u):
        ok = u < 1
        return _domain(u, ok, u / (1.0 - torch.where(ok, u, torch.zeros_like(u))))

    return FDivergence(
        name="squared_hellinger",
        log_based=False,
        f=lambda t: (torch.sqrt(t) - 1.0) ** 2,
        f_prime=lambda t: 1.0 - torch.rsqrt(t),
        f_second=lambda t: 0.5 * t**-1.5,
        f0=1.0,
        slope_inf=1.0,
        pointwise=_exact(_hellinger_kernel),
        pointwise_exact=_hellinger_kernel,
        pointwise_partial=_hellinger_partial,
        conjugate_fn=conjugate,
        f_prime_log=lambda s: -torch.expm1(-s / 2),
        symmetric=True,
        description="squared Hellinger sum (sqrt p - sqrt q)^2, in [0, 2]",
    )


def _chi2_kernel(lp, lq, d, p, q, precise):
    # (p - q)^2 / q: q expm1(d)^2 for d <= 30, exp(2 lp - lq) expm1(-d)^2 beyond (no overflow
    # where the value is finite).
    if not precise:
        return torch.exp(2.0 * _log_abs_diff(lp, lq) - lq)
    big = d > 30.0
    near = q * torch.expm1(d.clamp_max(30.0)) ** 2
    far = torch.exp(2.0 * lp - lq) * torch.expm1(-d.clamp_min(30.0)) ** 2
    return torch.where(big, far, near)


@register("pearson_chi2")
def _pearson() -> FDivergence:
    def conjugate(u):
        return torch.where(u >= -2.0, u + u * u / 4.0, torch.full_like(u, -1.0))

    def partial(lp, lq, precise=False):
        t = _chi2_kernel(lp, lq, lp - lq, torch.exp(lp), torch.exp(lq), precise)
        return t, torch.exp(lq) - torch.exp(2.0 * lp - lq)

    return FDivergence(
        name="pearson_chi2",
        log_based=False,
        f=lambda t: (t - 1.0) ** 2,
        f_prime=lambda t: 2.0 * (t - 1.0),
        f_second=lambda t: torch.full_like(t, 2.0),
        f0=1.0,
        slope_inf=math.inf,
        pointwise=_exact(_chi2_kernel),
        pointwise_exact=_chi2_kernel,
        pointwise_partial=partial,
        conjugate_fn=conjugate,
        f_prime_log=lambda s: 2.0 * torch.expm1(s),
        description="Pearson chi-square sum (p - q)^2 / q",
    )


def _neyman_kernel(lp, lq, d, p, q, precise):
    return _chi2_kernel(lq, lp, -d, q, p, precise)


@register("neyman_chi2")
def _neyman() -> FDivergence:
    def conjugate(u):
        ok = u <= 1
        return _domain(u, ok, 2.0 - 2.0 * torch.sqrt(1.0 - torch.where(ok, u, torch.ones_like(u))))

    def partial(lp, lq, precise=False):
        t = _neyman_kernel(lp, lq, lp - lq, torch.exp(lp), torch.exp(lq), precise)
        return t, 2.0 * (torch.exp(2.0 * lq - lp) - torch.exp(lq))

    return FDivergence(
        name="neyman_chi2",
        log_based=False,
        f=lambda t: (1.0 - t) ** 2 / t,
        f_prime=lambda t: 1.0 - 1.0 / (t * t),
        f_second=lambda t: 2.0 / t**3,
        f0=math.inf,
        slope_inf=1.0,
        pointwise=_exact(_neyman_kernel),
        pointwise_exact=_neyman_kernel,
        pointwise_partial=partial,
        conjugate_fn=conjugate,
        f_prime_log=lambda s: -torch.expm1(-2.0 * s),
        description="Neyman chi-square sum (p - q)^2 / p",
    )


def _jeffreys_kernel(lp, lq, d, p, q, precise):
    if not precise:
        return (p - q) * d
    e = d.abs()
    return _hi(p, q) * -torch.expm1(-e) * e


def _jeffreys_partial(lp, lq, precise=False):
    p, q = torch.exp(lp), torch.exp(lq)
    d = lp - lq
    return _jeffreys_kernel(lp, lq, d, p, q, precise), q * (lq - lp) + q - p


@register("jeffreys")
def _jeffreys() -> FDivergence:
    return FDivergence(
        name="jeffreys",
        f=lambda t: (t - 1.0) * torch.log(t),
        f_prime=lambda t: torch.log(t) + 1.0 - 1.0 / t,
        f_second=lambda t: 1.0 / t + 1.0 / (t * t),
        f0=math.inf,
        slope_inf=math.inf,
        pointwise=_exact(_jeffreys_kernel),
        pointwise_exact=_jeffreys_kernel,
        pointwise_partial=_jeffreys_partial,
        f_prime_log=lambda s: s - torch.expm1(-s),
        symmetric=True,
        description="Jeffreys KL(P||Q) + KL(Q||P)",
    )


@register("alpha")
def _alpha(alpha: float = 0.5) -> FDivergence:
    a = check_range(alpha, "alpha")

    def one_side(lp, d, p, q, a, precise):
        # q f(p/q), f(t) = (t^a - a t - (1 - a)) / (a (a - 1)), for a >= 1/2, as
        #   [p psi(-d) + p psi((a - 1) d) / (a - 1)] / a:
        # the KL term plus a correction of the sign of a - 1, no larger than it for a >= 1/2
        # (no cancellation for a >= 1, at most a factor 2 at a = 1/2), exactly 0 at d = 0.
        kl_part = _apsi(p, -d, q, precise)
        if a == 1.0:
            return kl_part
        x = (a - 1.0) * d
        # p psi(x) = p e^x - p - p x; p e^x = exp(lp + x) = p^a q^(1-a)
        corr = _apsi(p, x, torch.exp(lp + x), precise) / (a - 1.0)
        # for a < 1 the correction is negative: rounding must not take the sum below 0
        return ((kl_part + corr) / a).clamp_min(0.0)

    def kernel(lp, lq, d, p, q, precise):
        # Amari duality D_a(P||Q) = D_{1-a}(Q||P) keeps the division by a away from 0.
        if a >= 0.5:
            return one_side(lp, d, p, q, a, precise)
        return one_side(lq, -d, q, p, 1.0 - a, precise)

    def f(t):
        if a == 1.0:
            return _xlogx(t) - t + 1.0
        if a == 0.0:
            return -torch.log(t) + t - 1.0
        return (t**a - a * t - (1.0 - a)) / (a * (a - 1.0))

    def f_prime(t):
        if a == 1.0:
            return torch.log(t)
        return (t ** (a - 1.0) - 1.0) / (a - 1.0)

    def conjugate(u):
        if a == 1.0:
            return torch.expm1(u)
        if a == 0.0:
            ok = u < 1
            return _domain(u, ok, -torch.log1p(-torch.where(ok, u, torch.zeros_like(u))))
        w = 1.0 + (a - 1.0) * u
        ok = w > 0
        val = (torch.where(ok, w, torch.ones_like(w)) ** (a / (a - 1.0)) - 1.0) / a
        if a > 1.0:
            # t >= 0 constrains the supremum: below u = -1/(a-1) it sits at t = 0.
            return torch.where(ok, val, torch.full_like(val, -f0))
        return _domain(u, ok, val)

    f0 = 1.0 / a if a > 0 else math.inf
    slope = 1.0 / (1.0 - a) if a < 1 else math.inf
    return FDivergence(
        name="alpha",
        log_based=False,
        f=f,
        f_prime=f_prime,
        f_second=lambda t: t ** (a - 2.0),
        f0=f0,
        slope_inf=slope,
        pointwise=_exact(kernel),
        pointwise_exact=kernel,
        conjugate_fn=conjugate,
        f_prime_log=lambda s: s if a == 1.0 else torch.expm1((a - 1.0) * s) / (a - 1.0),
        params={"alpha": a},
        symmetric=a == 0.5,
        description=f"Amari alpha-divergence, alpha={a}",
    )


def _triangular_fd(name: str, c: float) -> FDivergence:
    # c * (t - 1)^2 / (t + 1): triangular discrimination (c = 1) and Le Cam (c = 1/2).
    def kernel(lp, lq, d, p, q, precise):
        if not precise:
            return c * torch.exp(2.0 * _log_abs_diff(lp, lq) - torch.logaddexp(lp, lq))
        # (p - q)^2 / (p + q) = max(p, q) (1 - e^-|d|)^2 / (1 + e^-|d|)
        e = d.abs()
        return c * _hi(p, q) * torch.expm1(-e) ** 2 / (1.0 + torch.exp(-e))

    def partial(lp, lq, precise=False):
        # c (p - q)^2 / s with s = p + q; d/d log q = -c (q/s) ((p - q)/s) (3p + q).
        ls = torch.logaddexp(lp, lq)
        ps, qs = torch.exp(lp - ls), torch.exp(lq - ls)
        t = kernel(lp, lq, lp - lq, torch.exp(lp), torch.exp(lq), precise)
        return t, -c * qs * (ps - qs) * (3.0 * torch.exp(lp) + torch.exp(lq))

    def conjugate(u):
        v = u / c
        core = 4.0 - 4.0 * torch.sqrt(1.0 - torch.where(v < 1, v, torch.zeros_like(v))) - v
        val = torch.where(v >= -3.0, core, torch.full_like(v, -1.0))
        return _domain(u, v < 1, c * val)

    return FDivergence(
        name=name,
        log_based=False,
        f=lambda t: c * (t - 1.0) ** 2 / (t + 1.0),
        f_prime=lambda t: c * (1.0 - 4.0 / (t + 1.0) ** 2),
        f_second=lambda t: c * 8.0 / (t + 1.0) ** 3,
        f0=c,
        slope_inf=c,
        pointwise=_exact(kernel),
        pointwise_exact=kernel,
        pointwise_partial=partial,
        conjugate_fn=conjugate,
        symmetric=True,
        description=f"{c:g} * sum (p - q)^2 / (p + q)",
    )


@register("triangular")
def _triangular() -> FDivergence:
    return _triangular_fd("triangular", 1.0)


@register("le_cam")
def _le_cam() -> FDivergence:
    return _triangular_fd("le_cam", 0.5)
