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
of magnitude 1e4 never overflow, and carries what the rest of the library needs: ``f``,
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

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ._arrays import ArrayLike, as_tensors, check_range

__all__ = ["FDivergence", "evaluate", "f_distill_weights", "get", "names", "register"]

Fn = Callable[[torch.Tensor], torch.Tensor]
LogFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PairFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class FDivergence:
    r"""One member of the f-divergence family.

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
    conjugate:
        Convex conjugate :math:`f^*(u) = \sup_{t\ge0} (tu - f(t))`. When omitted it is solved
        numerically (bisection on :math:`f'(t) = u`).
    pointwise_partial:
        ``pointwise_partial(lp, lq)`` returns ``(terms, d terms / d lq)``: the terms as
        ``pointwise`` gives them and their partial derivative with respect to ``log q``, in a
        form that stays finite for finite log masses (the chain rule through
        ``pointwise`` can form ``0 * inf``). Used by :meth:`terms_and_partial`; members
        without it fall back to autograd through ``pointwise``.
    params:
        Parameters of a parametric member (``beta`` for ``js``, ``alpha`` for ``alpha``...).
    upper_bound:
        :math:`\sup D_f` over all pairs of distributions (``inf`` if unbounded):
        :math:`f(0) + \lim f(t)/t`.
    symmetric:
        Whether :math:`D_f(P\|Q) = D_f(Q\|P)` for all pairs.
    log_based:
        Whether the value is a logarithmic quantity (KL, JS, ...), so that ``base=`` converts
        its units. For the others (TV, chi-square, Hellinger, alpha) ``base`` is ignored.
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
    ) -> torch.Tensor:
        r"""Elementwise :math:`q_i f(p_i/q_i)` from log masses, zero-mass conventions included.

        ``lp``, ``lq`` are log-probabilities; ``-inf`` marks zero mass. The gradient is finite
        wherever the value is: masked entries never see a ``log 0`` in the backward pass.

        ``sync=False`` never reads a tensor back to the host (no data-dependent branch, so it
        traces under ``torch.compile(fullgraph=True)``): it always takes the masked path, and
        a member without the needed limit yields NaN there instead of raising.

        ``zero_mass=False`` is the caller's promise that no entry is ``-inf`` (finite logits,
        say): the bookkeeping is skipped. ``None`` (default) finds out.
        """
        if zero_mass is False:
            return self._pointwise(lp, lq)
        # One reduction answers "is there any zero mass?" without building masks: the sum
        # of log-probabilities is finite exactly when none is -inf (barring float overflow,
        # which only sends us down the exact masked path below).
        if zero_mass is None and sync and bool(torch.isfinite(lp.sum()) & torch.isfinite(lq.sum())):
            return self._pointwise(lp, lq)
        pos_p = lp > -math.inf
        pos_q = lq > -math.inf
        both = pos_p & pos_q
        zero = torch.zeros((), dtype=lp.dtype, device=lp.device)
        lp_s = torch.where(both, lp, zero)
        lq_s = torch.where(both, lq, zero)
        out = torch.where(both, self._pointwise(lp_s, lq_s), zero)
        only_p = pos_p & ~pos_q
        only_q = pos_q & ~pos_p
        out = out + _edge(only_p, lp, self.slope_inf, self.name, "slope_inf", sync)
        out = out + _edge(only_q, lq, self.f0, self.name, "f0", sync)
        return out

    def terms_and_partial(
        self,
        lp: torch.Tensor,
        lq: torch.Tensor,
        *,
        sync: bool = False,
        zero_mass: bool | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``(terms, a)``: :meth:`terms` and :math:`a_i = \partial t_i / \partial \log q_i`.

        No host synchronisation. The partial with respect to :math:`\log p` follows from
        1-homogeneity, :math:`t(\log p + c, \log q + c) = e^c t`: it is :math:`t - a`
        wherever :math:`t` is finite. Zero mass: where :math:`q_i = 0` the term does not
        depend on :math:`\log q_i`, so :math:`a_i = 0`; where :math:`p_i = 0 < q_i` the term
        is :math:`q_i f(0^+)`, so :math:`a_i = t_i` when ``f0`` is finite and 0 (a constant
        ``inf`` term) when it is not. ``zero_mass=False`` promises no ``-inf`` entry;
        ``sync=True`` (as in :meth:`terms`) lets it find out with one reduction and a host
        read, and skip the zero-mass bookkeeping when there is none. No host
        synchronisation by default.

        >>> import torch
        >>> lp, lq = torch.log(torch.tensor([0.5, 0.5])), torch.log(torch.tensor([0.25, 0.75]))
        >>> t, a = get("kl").terms_and_partial(lp, lq)
        >>> a   # d/d log q of p log(p/q) is -p
        tensor([-0.5000, -0.5000])
        """
        if self.pointwise_partial is None:
            return self._autograd_partial(lp, lq, zero_mass)
        if zero_mass is False or (
            zero_mass is None and sync and bool(torch.isfinite(lp.sum() + lq.sum()))
        ):
            return self.pointwise_partial(lp, lq)
        pos_p = lp > -math.inf
        pos_q = lq > -math.inf
        both = pos_p & pos_q
        zero = torch.zeros((), dtype=lp.dtype, device=lp.device)
        t_in, a_in = self.pointwise_partial(
            torch.where(both, lp, zero), torch.where(both, lq, zero)
        )
        out = torch.where(both, t_in, zero)
        only_p = pos_p & ~pos_q
        only_q = pos_q & ~pos_p
        edge_q = _edge(only_q, lq, self.f0, self.name, "f0", sync=False)
        out = out + _edge(only_p, lp, self.slope_inf, self.name, "slope_inf", sync=False) + edge_q
        a = torch.where(both, a_in, edge_q if math.isfinite(self.f0) else zero)
        return out, a

    def _autograd_partial(self, lp, lq, zero_mass):
        # torch.func.vjp traces under torch.compile; eager autograd is cheaper outside it.
        def fn(x):
            return self.terms(lp, x, sync=False, zero_mass=zero_mass)

        if torch.compiler.is_compiling():
            t, vjp_fn = torch.func.vjp(fn, lq)
            return t, vjp_fn(torch.ones_like(t))[0]
        with torch.enable_grad():
            x = lq.detach().requires_grad_()
            t = fn(x)
            (a,) = torch.autograd.grad(t, x, torch.ones_like(t))
        return t.detach(), a

    def _pointwise(self, lp: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        if self.pointwise is not None:
            return self.pointwise(lp, lq)
        return torch.exp(lq) * self.f(torch.exp(lp - lq))


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
) -> torch.Tensor:
    r""":math:`D_f(P\|Q)` over the last axis from log-probabilities ``lp``, ``lq``.

    Rounding can make a sum of signed terms slightly negative; an f-divergence of normalised
    distributions is never negative, so the result is clamped at 0. ``sync`` as in
    :meth:`FDivergence.terms`, and so is ``zero_mass``.
    """
    return f.terms(lp, lq, sync=sync, zero_mass=zero_mass).sum(-1).clamp_min(0.0)


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
    :math:`\propto 1/r`.

    >>> import numpy as np
    >>> from divergences.fdiv import f_distill_weights
    >>> w = f_distill_weights(np.log([0.5, 1.0, 4.0]), "kl")
    >>> np.round(w, 4), float(w.mean())
    (array([0.2727, 0.5455, 2.1818]), 1.0)
    >>> f_distill_weights(np.log([0.01, 100.0]), "kl", normalize=False)   # clipped to [0.1, 20]
    array([ 0.1, 20. ])
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
            h = h / mean
    return wrap(h)


# --------------------------------------------------------------------------------------------
# Numerical helpers
# --------------------------------------------------------------------------------------------


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
    return torch.where(gap > 0, hi + _log1mexp(safe_gap), torch.full_like(gap, -math.inf))


def _exprel(x: torch.Tensor) -> torch.Tensor:
    """``expm1(x) / x`` with its limit 1 at ``x = 0``."""
    small = x.abs() < 1e-8
    safe = torch.where(small, torch.ones_like(x), x)
    return torch.where(small, 1.0 + x / 2.0, torch.expm1(safe) / safe)


def _numeric_conjugate(fd: FDivergence, u: torch.Tensor) -> torch.Tensor:
    r"""Solve :math:`f'(t) = u` by bisection in :math:`\log t`, then :math:`f^*(u) = tu - f(t)`."""
    u64 = u.detach().to(torch.float64)
    lo = torch.full_like(u64, -60.0)
    hi = torch.full_like(u64, 60.0)
    for _ in range(200):
        mid = (lo + hi) / 2
        up = fd.f_prime(torch.exp(mid)) < u64
        lo = torch.where(up, mid, lo)
        hi = torch.where(up, hi, mid)
    t = torch.exp((lo + hi) / 2)
    val = t * u64 - fd.f(t)
    # Beyond the ends of the search interval the supremum is at t = 0 or does not exist.
    val = torch.where(u64 > fd.slope_inf, torch.full_like(val, math.inf), val)
    at_zero = u64 <= fd.f_prime(torch.tensor(math.exp(-60.0), dtype=torch.float64))
    val = torch.where(at_zero, torch.full_like(val, -fd.f0), val)
    return val.to(u.dtype if u.is_floating_point() else torch.float64)


def _xlogx(t: torch.Tensor) -> torch.Tensor:
    return torch.special.xlogy(t, t)


def _domain(u: torch.Tensor, ok: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    return torch.where(ok, value, torch.full_like(value, math.inf))


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
    """The registered f-divergence ``name``, built with ``params`` (``beta=``, ``alpha=``).

    An :class:`FDivergence` passes through unchanged. Aliases: ``forward_kl`` is ``kl``,
    ``chi2`` is ``pearson_chi2``.

    >>> get("alpha", alpha=0.5).params
    {'alpha': 0.5}
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


def _kl_partial(lp, lq):
    p = torch.exp(lp)
    return p * (lp - lq), -p


def _reverse_kl_partial(lp, lq):
    q = torch.exp(lq)
    t = q * (lq - lp)
    return t, t + q


@register("kl")
def _kl() -> FDivergence:
    return FDivergence(
        name="kl",
        f=_xlogx,
        f_prime=lambda t: torch.log(t) + 1.0,
        f_second=lambda t: 1.0 / t,
        f0=0.0,
        slope_inf=math.inf,
        pointwise=lambda lp, lq: torch.exp(lp) * (lp - lq),
        pointwise_partial=_kl_partial,
        conjugate_fn=lambda u: torch.exp(u - 1.0),
        f_prime_log=lambda s: s + 1.0,
        description="Kullback-Leibler KL(P||Q) = sum p log(p/q)",
    )


@register("reverse_kl")
def _reverse_kl() -> FDivergence:
    return FDivergence(
        name="reverse_kl",
        f=lambda t: -torch.log(t),
        f_prime=lambda t: -1.0 / t,
        f_second=lambda t: 1.0 / (t * t),
        f0=math.inf,
        slope_inf=0.0,
        pointwise=lambda lp, lq: torch.exp(lq) * (lq - lp),
        pointwise_partial=_reverse_kl_partial,
        conjugate_fn=lambda u: _domain(u, u < 0, -1.0 - torch.log(-u.clamp_max(-1e-300))),
        f_prime_log=lambda s: -torch.exp(-s),
        description="reverse Kullback-Leibler KL(Q||P) = sum q log(q/p)",
    )


@register("js")
def _js(beta: float = 0.5) -> FDivergence:
    b = check_range(beta, "beta", 0.0, 1.0)
    lb = math.log(b) if b > 0 else -math.inf
    l1b = math.log1p(-b) if b < 1 else -math.inf

    def pointwise(lp, lq):
        lm = torch.logaddexp(lp + lb, lq + l1b)
        return b * torch.exp(lp) * (lp - lm) + (1.0 - b) * torch.exp(lq) * (lq - lm)

    def partial(lp, lq):
        # d/d log q: the log m terms cancel against the mixture's own derivative.
        lm = torch.logaddexp(lp + lb, lq + l1b)
        qa = (1.0 - b) * torch.exp(lq) * (lq - lm)
        return b * torch.exp(lp) * (lp - lm) + qa, qa

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
        pointwise=pointwise,
        pointwise_partial=partial,
        conjugate_fn=conjugate,
        f_prime_log=f_prime_log,
        params={"beta": b},
        symmetric=b == 0.5,
        description=f"generalised Jensen-Shannon, beta={b}: bounded by {ent:.6g} nats",
    )


@register("skew_kl")
def _skew_kl(alpha: float = 0.1) -> FDivergence:
    a = check_range(alpha, "alpha", 0.0, 1.0)
    la = math.log(a) if a > 0 else -math.inf
    l1a = math.log1p(-a) if a < 1 else -math.inf

    def pointwise(lp, lq):
        lm = torch.logaddexp(lp + la, lq + l1a)
        return torch.exp(lp) * (lp - lm)

    def partial(lp, lq):
        lm = torch.logaddexp(lp + la, lq + l1a)
        p = torch.exp(lp)
        return p * (lp - lm), -(1.0 - a) * p * torch.exp(lq - lm)

    def f(t):
        return _xlogx(t) - torch.special.xlogy(t, a * t + (1.0 - a))

    def f_prime(t):
        m = a * t + (1.0 - a)
        return torch.log(t) - torch.log(m) + (1.0 - a) / m

    return FDivergence(
        name="skew_kl",
        f=f,
        f_prime=f_prime,
        f_second=lambda t: (1.0 - a) ** 2 / (t * (a * t + 1.0 - a) ** 2),
        f0=0.0,
        slope_inf=-la if a > 0 else math.inf,
        pointwise=pointwise,
        pointwise_partial=partial,
        params={"alpha": a},
        description=f"skew KL(P || {a}P + {1 - a}Q) (DistiLLM)",
    )


@register("skew_reverse_kl")
def _skew_reverse_kl(alpha: float = 0.1) -> FDivergence:
    a = check_range(alpha, "alpha", 0.0, 1.0)
    la = math.log(a) if a > 0 else -math.inf
    l1a = math.log1p(-a) if a < 1 else -math.inf

    def pointwise(lp, lq):
        lm = torch.logaddexp(lq + la, lp + l1a)
        return torch.exp(lq) * (lq - lm)

    def partial(lp, lq):
        lm = torch.logaddexp(lq + la, lp + l1a)
        q = torch.exp(lq)
        t = q * (lq - lm)
        return t, t + q * (1.0 - a * torch.exp(lq - lm))

    def f(t):
        return -torch.log(a + (1.0 - a) * t)

    return FDivergence(
        name="skew_reverse_kl",
        f=f,
        f_prime=lambda t: -(1.0 - a) / (a + (1.0 - a) * t),
        f_second=lambda t: (1.0 - a) ** 2 / (a + (1.0 - a) * t) ** 2,
        f0=-la if a > 0 else math.inf,
        slope_inf=0.0,
        pointwise=pointwise,
        pointwise_partial=partial,
        params={"alpha": a},
        description=f"skew reverse KL(Q || {a}Q + {1 - a}P) (DistiLLM)",
    )


def _tv_partial(lp, lq):
    q = torch.exp(lq)
    u = torch.exp(lp) - q
    return 0.5 * u.abs(), -0.5 * q * torch.sign(u)


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
        pointwise=lambda lp, lq: 0.5 * (torch.exp(lp) - torch.exp(lq)).abs(),
        pointwise_partial=_tv_partial,
        conjugate_fn=conjugate,
        symmetric=True,
        description="total variation 1/2 sum |p - q|",
    )


def _hellinger_partial(lp, lq):
    sq = torch.exp(lq / 2)
    u = torch.exp(lp / 2) - sq
    return u * u, -u * sq


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
        pointwise=lambda lp, lq: (torch.exp(lp / 2) - torch.exp(lq / 2)) ** 2,
        pointwise_partial=_hellinger_partial,
        conjugate_fn=conjugate,
        f_prime_log=lambda s: -torch.expm1(-s / 2),
        symmetric=True,
        description="squared Hellinger sum (sqrt p - sqrt q)^2, in [0, 2]",
    )


@register("pearson_chi2")
def _pearson() -> FDivergence:
    def conjugate(u):
        return torch.where(u >= -2.0, u + u * u / 4.0, torch.full_like(u, -1.0))

    return FDivergence(
        name="pearson_chi2",
        log_based=False,
        f=lambda t: (t - 1.0) ** 2,
        f_prime=lambda t: 2.0 * (t - 1.0),
        f_second=lambda t: torch.full_like(t, 2.0),
        f0=1.0,
        slope_inf=math.inf,
        # (p - q)^2 / q = exp(2 log|p - q| - log q): finite whenever the value is.
        pointwise=lambda lp, lq: torch.exp(2.0 * _log_abs_diff(lp, lq) - lq),
        pointwise_partial=lambda lp, lq: (
            torch.exp(2.0 * _log_abs_diff(lp, lq) - lq), torch.exp(lq) - torch.exp(2.0 * lp - lq)
        ),
        conjugate_fn=conjugate,
        f_prime_log=lambda s: 2.0 * torch.expm1(s),
        description="Pearson chi-square sum (p - q)^2 / q",
    )


@register("neyman_chi2")
def _neyman() -> FDivergence:
    def conjugate(u):
        ok = u <= 1
        return _domain(u, ok, 2.0 - 2.0 * torch.sqrt(1.0 - torch.where(ok, u, torch.ones_like(u))))

    return FDivergence(
        name="neyman_chi2",
        log_based=False,
        f=lambda t: (1.0 - t) ** 2 / t,
        f_prime=lambda t: 1.0 - 1.0 / (t * t),
        f_second=lambda t: 2.0 / t**3,
        f0=math.inf,
        slope_inf=1.0,
        pointwise=lambda lp, lq: torch.exp(2.0 * _log_abs_diff(lp, lq) - lp),
        pointwise_partial=lambda lp, lq: (
            torch.exp(2.0 * _log_abs_diff(lp, lq) - lp),
            2.0 * (torch.exp(2.0 * lq - lp) - torch.exp(lq)),
        ),
        conjugate_fn=conjugate,
        f_prime_log=lambda s: -torch.expm1(-2.0 * s),
        description="Neyman chi-square sum (p - q)^2 / p",
    )


def _jeffreys_partial(lp, lq):
    p, q = torch.exp(lp), torch.exp(lq)
    return (p - q) * (lp - lq), q * (lq - lp) + q - p


@register("jeffreys")
def _jeffreys() -> FDivergence:
    return FDivergence(
        name="jeffreys",
        f=lambda t: (t - 1.0) * torch.log(t),
        f_prime=lambda t: torch.log(t) + 1.0 - 1.0 / t,
        f_second=lambda t: 1.0 / t + 1.0 / (t * t),
        f0=math.inf,
        slope_inf=math.inf,
        pointwise=lambda lp, lq: (torch.exp(lp) - torch.exp(lq)) * (lp - lq),
        pointwise_partial=_jeffreys_partial,
        f_prime_log=lambda s: s - torch.expm1(-s),
        symmetric=True,
        description="Jeffreys KL(P||Q) + KL(Q||P)",
    )


@register("alpha")
def _alpha(alpha: float = 0.5) -> FDivergence:
    a = check_range(alpha, "alpha")

    def one_side(lp, lq, a):
        # q f(p/q) with f(t) = (t^a - a t - (1 - a)) / (a (a - 1)), rewritten around a = 1
        # so that a -> 1 reaches KL(P||Q) without 0/0: see the module notes.
        # Two forms: near the diagonal (|(a-1) d| < 1) the exprel form, which has no 0/0 as
        # a -> 1; far from it p^a q^(1-a) = exp(lp + (a-1) d) directly, which cannot overflow
        # where the value is finite. Each branch only sees inputs valid for it, so neither
        # leaks inf into the other's gradient.
        d = lp - lq
        x = (a - 1.0) * d
        near_diag = x.abs() < 1.0
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        p = torch.exp(lp)
        q = torch.exp(lq)
        near = (p * d * _exprel(torch.where(near_diag, x, zero)) + q - p) / a
        if a == 1.0:
            return near
        far = (torch.exp(lp + torch.where(near_diag, zero, x)) - a * p - (1.0 - a) * q) / (
            a * (a - 1.0)
        )
        return torch.where(near_diag, near, far)

    def pointwise(lp, lq):
        # Amari duality D_a(P||Q) = D_{1-a}(Q||P) keeps the division by a away from 0.
        return one_side(lp, lq, a) if a >= 0.5 else one_side(lq, lp, 1.0 - a)

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
        pointwise=pointwise,
        conjugate_fn=conjugate,
        f_prime_log=lambda s: s if a == 1.0 else torch.expm1((a - 1.0) * s) / (a - 1.0),
        params={"alpha": a},
        symmetric=a == 0.5,
        description=f"Amari alpha-divergence, alpha={a}",
    )


def _triangular_fd(name: str, c: float) -> FDivergence:
    # c * (t - 1)^2 / (t + 1): triangular discrimination (c = 1) and Le Cam (c = 1/2).
    def pointwise(lp, lq):
        return c * torch.exp(2.0 * _log_abs_diff(lp, lq) - torch.logaddexp(lp, lq))

    def partial(lp, lq):
        # c (p - q)^2 / s with s = p + q; d/d log q = -c (q/s) ((p - q)/s) (3p + q).
        ls = torch.logaddexp(lp, lq)
        ps, qs = torch.exp(lp - ls), torch.exp(lq - ls)
        return (c * torch.exp(2.0 * _log_abs_diff(lp, lq) - ls),
                -c * qs * (ps - qs) * (3.0 * torch.exp(lp) + torch.exp(lq)))

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
        pointwise=pointwise,
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
