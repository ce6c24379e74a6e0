r"""Optimal transport between weighted point clouds.

Conventions (the same in every function here):

Point clouds
    ``x`` of shape ``(n, d)`` holds ``n`` points in ``R^d``; a 1-D ``x`` of shape ``(n,)`` is
    ``n`` points on the line. :func:`sinkhorn`, :func:`sinkhorn_divergence` and
    :func:`monge_gap` also take a batch of problems ``(B, n, d)`` and return ``B`` values.
    :func:`wasserstein_1d` takes samples along the last axis (``(..., n)``).
Weights
    ``a`` (for ``x``) and ``b`` (for ``y``) are probability vectors over the points, uniform
    when ``None``. They must be finite, non-negative and sum to 1 (tolerance ``1e-6`` in
    float64, ``1e-4`` in float32); zero weights are allowed. Unbalanced transport
    (``reach=`` on :func:`sinkhorn` and :func:`sinkhorn_divergence`, ``rho=`` on
    :func:`sinkhorn_cost`) takes any non-negative weights of positive total mass.
Cost
    ``c(x, y) = ||x - y||^p`` (Euclidean norm), ``p >= 1``. Note that geomloss uses
    ``||x - y||^2 / 2`` for ``p = 2``: our values are twice its values at twice its epsilon.
    :func:`sinkhorn_cost` takes a precomputed cost matrix instead (POT's ``M``).
Plans
    ``return_plan=True`` on :func:`sinkhorn`, :func:`sinkhorn_cost`,
    :func:`wasserstein_exact` and :func:`wasserstein_1d` also returns the (optimal) plan
    ``P``, ``(n, m)``, rows for ``x``'s points and columns for ``y``'s.
Values
    :func:`sinkhorn` returns the entropic transport *cost*
    ``OT_eps(a, b) = min_P <P, C> + eps KL(P || a b^T)`` (a ``p``-th power, like ``W_p^p``);
    :func:`wasserstein_1d`, :func:`wasserstein_exact` and :func:`sliced_wasserstein` return
    *distances* ``W_p = (min_P <P, C>)^(1/p)`` (POT's ``wasserstein_1d`` and ``emd2`` return
    ``W_p^p``).

NumPy (or list) input gives NumPy output; torch input gives torch output, differentiable and on
the input's device. The entropic functions differentiate by the envelope theorem: the potentials
are computed without autograd and only the final value carries gradients (``a -> f``,
``b -> g``, points through the plan), so the gradient is exact at convergence and costs one
extra pass, whatever the number of iterations.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import _sinkhorn
from ._arrays import (
    REDUCTIONS,
    ArrayLike,
    as_tensors,
    check_choice,
    check_range,
    reduce,
)
from .discrete import entropy, to_log_probs

__all__ = [
    "ConvergenceWarning",
    "max_sliced_wasserstein",
    "monge_gap",
    "sinkhorn",
    "sinkhorn_cost",
    "sinkhorn_divergence",
    "sliced_wasserstein",
    "wasserstein_1d",
    "wasserstein_exact",
]

BACKENDS = ("auto", "tensorized", "online")


class ConvergenceWarning(UserWarning):
    """An iterative solver stopped at ``max_iter`` before reaching its tolerance."""


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _check_finite(t: torch.Tensor, name: str) -> None:
    if bool(torch.isnan(t).any()):
        raise ValueError(f"{name} contains NaN")
    if bool(torch.isinf(t).any()):
        raise ValueError(f"{name} contains inf; it must be finite")


def _weights(w: torch.Tensor | None, shape: torch.Size, like: torch.Tensor, name: str,
             balanced: bool = True):
    """Weights of shape ``shape`` (``(B, n)``) and their log (``-inf`` at zero), detached.

    ``balanced``: a probability vector per problem. Otherwise (unbalanced transport) any
    finite non-negative weights with a positive total mass.
    """
    if w is None:
        w = torch.full(shape, 1.0 / shape[-1], dtype=like.dtype, device=like.device)
    else:
        given = tuple(w.shape)
        if w.ndim == len(shape) - 1:
            w = w[None]
        if tuple(w.shape) != tuple(shape):
            raise ValueError(
                f"{name} must have shape {tuple(shape[1:]) if shape[0] == 1 else tuple(shape)} "
                f"(one weight per point); got {given}"
            )
    if balanced:
        return w, to_log_probs(w.detach(), "probs", name)
    wd = w.detach()
    _check_finite(wd, name)
    if bool((wd < 0).any()):
        raise ValueError(f"{name} contains negative weights; the weights of a measure are >= 0")
    if bool((wd.sum(-1) <= 0).any()):
        raise ValueError(f"{name} has total mass 0; each measure needs a positive total mass")
    return w, torch.log(wd)


def _clouds(x: ArrayLike, y: ArrayLike, a: ArrayLike | None, b: ArrayLike | None,
            names: tuple[str, str] = ("x", "y"), balanced: bool = True):
    """Convert and check two point clouds and their weights; add a batch axis if absent."""
    arrays = [x, y] + [w for w in (a, b) if w is not None]
    wnames = [n for n, w in zip(("a", "b"), (a, b)) if w is not None]
    tensors, wrap = as_tensors(*arrays, names=[*names, *wnames])
    tx, ty = tensors[0], tensors[1]
    tw = dict(zip(wnames, tensors[2:]))
    if tx.ndim != ty.ndim or tx.ndim not in (1, 2, 3):
        raise ValueError(
            f"{names[0]} and {names[1]} must both have shape (n,), (n, d) or (batch, n, d); "
            f"got {tuple(tx.shape)} and {tuple(ty.shape)}"
        )
    batched = tx.ndim == 3
    if tx.ndim == 1:
        tx, ty = tx[:, None], ty[:, None]
    if not batched:
        tx, ty = tx[None], ty[None]
    if tx.shape[0] != ty.shape[0] or tx.shape[-1] != ty.shape[-1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same batch size and dimension d; got "
            f"shapes {tuple(tx.shape[int(not batched):])} and {tuple(ty.shape[int(not batched):])}"
        )
    for t, n in ((tx, names[0]), (ty, names[1])):
        if t.shape[1] == 0:
            raise ValueError(f"{n} must hold at least one point")
        _check_finite(t, n)
    wa, la = _weights(tw.get("a"), tx.shape[:2], tx, "a", balanced)
    wb, lb = _weights(tw.get("b"), ty.shape[:2], ty, "b", balanced)
    return tx, ty, wa, la, wb, lb, wrap, batched


def _options(epsilon, p, tol, max_iter, scaling, backend):
    eps = check_range(epsilon, "epsilon", 0.0, low_open=True, high_open=True)
    p = check_range(p, "p", 1.0, high_open=True)
    tol = check_range(tol, "tol", 0.0, low_open=True)
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer; got {max_iter!r}")
    if scaling is not None:
        scaling = check_range(scaling, "scaling", 0.0, 1.0, low_open=True, high_open=True)
    check_choice(backend, "backend", BACKENDS)
    return eps, p, tol, int(max_iter), scaling


@dataclass
class _Setup:
    eps: float
    p: float
    tol: float
    max_iter: int
    schedule: list
    online: bool
    shift: torch.Tensor
    rho: float | None = None


def _rho(value, name: str, p: float = 1.0) -> float | None:
    """``value**p`` for a positive finite ``value`` (``reach`` or ``rho``), ``None`` for None."""
    if value is None:
        return None
    return check_range(value, name, 0.0, low_open=True, high_open=True) ** p


def _setup(clouds, epsilon, p, tol, max_iter, scaling, backend, sizes, reach=None) -> _Setup:
    eps, p, tol, max_iter, scaling = _options(epsilon, p, tol, max_iter, scaling, backend)
    rho = _rho(reach, "reach", p)
    det = [c.detach() for c in clouds]
    schedule = _sinkhorn.epsilon_schedule(_sinkhorn.diameter(*det), p, eps, scaling)
    if backend == "auto":
        online = max(sizes) > _sinkhorn.AUTO_MAX_ENTRIES
    else:
        online = backend == "online"
    shift = torch.cat(det, dim=1).mean(dim=1, keepdim=True)
    return _Setup(eps, p, tol, max_iter, schedule, online, shift, rho)


def _warn(res: _sinkhorn.Result, s: _Setup, what: str) -> None:
    if not res.converged:
        warnings.warn(
            f"{what} did not converge: marginal error {res.error:.3g} > tol={s.tol:g} after "
            f"max_iter={s.max_iter} iterations at epsilon={s.eps:g}; increase max_iter or "
            "epsilon, or loosen tol",
            ConvergenceWarning,
            stacklevel=3,
        )


def _ot(s: _Setup, x, y, a, la, b, lb, symmetric: bool = False):
    """``OT_eps`` per batch entry (with gradients) and the solver's result."""
    cost = _sinkhorn.Cost(x.detach() - s.shift, y.detach() - s.shift, s.p, s.online)
    if symmetric:
        res = _sinkhorn.solve_symmetric(cost, la, s.eps, s.schedule, s.tol, s.max_iter,
                                        rho=s.rho)
    else:
        res = _sinkhorn.solve(cost, la, lb, s.eps, s.schedule, s.tol, s.max_iter, rho=s.rho)
    value = _sinkhorn.EnvelopeValue.apply(x, y, a, b, res.f, res.g, la, lb, s.eps, cost,
                                          s.rho, res.tau)
    return value, res, cost


def _out(values: torch.Tensor, wrap, batched: bool, reduction: str):
    if not batched:
        values = values[0]
    return wrap(reduce(values, reduction))


# --------------------------------------------------------------------------------------------
# Entropic transport
# --------------------------------------------------------------------------------------------


def sinkhorn(
    x: ArrayLike,
    y: ArrayLike,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    epsilon: float = 0.05,
    p: float = 2,
    return_plan: bool = False,
    *,
    tol: float = 1e-3,
    max_iter: int = 1000,
    scaling: float | None = 0.5,
    backend: str = "auto",
    reach: float | None = None,
    reduction: str = "none",
) -> Any:
    r"""Entropic optimal transport cost between weighted point clouds.

    .. math:: \mathrm{OT}_\varepsilon(a, b) = \min_{P \in U(a, b)} \langle P, C\rangle
              + \varepsilon\,\mathrm{KL}(P \,\|\, a b^\top),
              \qquad C_{ij} = \|x_i - y_j\|^p,

    over couplings ``P`` with row sums ``a`` and column sums ``b``. Computed from the dual
    ``<a, f> + <b, g>`` of log-domain Sinkhorn potentials ``f``, ``g`` (never NaN or inf for
    finite input, however small ``epsilon``). It is in the units of the cost (a ``p``-th
    power of distance) and tends to the exact transport cost ``W_p^p`` as ``epsilon -> 0``.
    ``OT_eps`` is not 0 for identical inputs; :func:`sinkhorn_divergence` is.

    Parameters
    ----------
    x, y
        Points ``(n, d)`` and ``(m, d)`` (or ``(n,)``, ``(m,)`` on the line), or batches
        ``(B, n, d)``, ``(B, m, d)`` solved together.
    a, b
        Weights ``(n,)``, ``(m,)`` (``(B, n)``, ``(B, m)`` for batches); uniform if ``None``.
    epsilon
        Regularisation, in the units of the cost, > 0.
    p
        Exponent of the cost, ``p >= 1``.
    return_plan
        Also return the plan ``P`` (``(n, m)`` or ``(B, n, m)``; formed densely, without
        gradient).
    tol
        Stop when the L1 error of the plan's marginal, ``sum_j |(P^T 1)_j - b_j|``, is at most
        ``tol`` (for every batch entry).
    max_iter
        Iterations at the target ``epsilon``; if ``tol`` is not reached a
        :class:`ConvergenceWarning` is issued and the last iterate is used.
    scaling
        Epsilon-scaling: solve first at ``epsilon = diameter^p``, then at epsilons divided by
        ``1/scaling`` down to ``epsilon`` (``0.5`` halves it each stage), each stage to a
        marginal error of 1e-2 (1e-1 above 2,048^2 cost entries; at most 50 iterations) from
        the previous stage's potentials. ``None`` starts at the target.
    backend
        ``"tensorized"`` forms the ``n x m`` cost matrix; ``"online"`` never does (block-wise
        log-sum-exp, memory linear in ``n + m``, one cost evaluation per entry per
        half-iteration); ``"auto"`` takes ``"tensorized"`` up to ``B*n*m = 5000^2`` entries and
        ``"online"`` above. Both give the same iterates (up to rounding).
    reach
        ``None``: balanced transport (the plan's marginals are ``a`` and ``b``). A distance
        ``> 0``: unbalanced transport (see below) with ``rho = reach**p``; ``a`` and ``b``
        are then any non-negative weights of positive total mass.
    reduction
        ``"none"``, ``"sum"`` or ``"mean"`` over the batch.

    Gradients (torch input) flow to ``x``, ``y``, ``a`` and ``b`` by the envelope theorem:
    ``dOT/da = f``, ``dOT/db = g`` (defined up to a constant on the simplex) and
    ``dOT/dC = P``; they are exact at convergence.

    Unbalanced transport (``reach`` given; geomloss's ``reach``, POT's
    ``ot.unbalanced.sinkhorn_unbalanced`` with ``reg = epsilon``, ``reg_m = rho``): the
    marginal constraints become penalties,

    .. math:: \mathrm{OT}_{\varepsilon,\rho}(a, b) = \min_{P \ge 0} \langle P, C\rangle
              + \varepsilon\,\mathrm{KL}(P \,\|\, a b^\top)
              + \rho\,\mathrm{KL}(P\mathbf 1 \,\|\, a)
              + \rho\,\mathrm{KL}(P^\top\mathbf 1 \,\|\, b),

    with the generalised :math:`\mathrm{KL}(p \,\|\, q) = \sum_i p_i \log(p_i/q_i) - p_i + q_i`
    (mass terms included, so measures of different total mass compare). Moving mass further
    than about ``reach`` costs more than destroying it at one end and creating it at the
    other, so outliers and mass differences no longer force long transports. The updates are
    the balanced ones damped by ``1 / (1 + epsilon/rho)``; ``tol`` bounds the L1 error of the
    marginals' optimality condition :math:`P^\top \mathbf 1 = b\, e^{-g/\rho}` relative to
    the total mass of ``b``. The value
    is the dual

    .. math:: \rho \langle a, 1 - e^{-f/\rho}\rangle + \rho \langle b, 1 - e^{-g/\rho}\rangle
              - \varepsilon\,(m(P) - m(a)\, m(b))

    (``m`` the total mass), equal to the minimum above at convergence; gradients:
    :math:`\partial \mathrm{OT}/\partial C = P` and
    :math:`\partial \mathrm{OT}/\partial a = \rho (1 - e^{-f/\rho}) - \varepsilon e^{-f/\rho}
    + \varepsilon\, m(b)`.
    As ``reach -> inf`` it tends to the balanced value (for probability weights).
    geomloss's ``p = 2`` cost is ``|x - y|^2 / 2``: our value at ``(epsilon, reach)`` is twice
    geomloss's ``debias=False`` value at ``blur = sqrt(epsilon / 2)``,
    ``reach = reach / sqrt(2)``.

    Convergence: Sinkhorn converges linearly, but its rate degrades as ``epsilon`` falls below
    the spread of the costs: when the plan is almost a permutation, mass moves between nearly
    disconnected blocks by about ``exp(-gap/epsilon)`` per iteration. Each annealing stage is
    therefore solved before the next (a stage that lags leaves its error in exactly those
    slow modes), the updates are over-relaxed (``f <- f + omega (T(g) - f)``,
    ``omega = 1.5``, falling back to plain updates if the error stalls; about 40% fewer
    iterations on the benchmark clouds, ``benchmarks/transport.py``, section
    ``overrelaxation``), and where the error still stalls on a problem with at most 2,048
    points in ``y`` and 2,048^2 cost entries, damped Newton steps on the dual finish the solve
    (quadratic convergence; one step costs ``O(n m^2)``). POT's test problem (``arange(10)``,
    ``epsilon = 0.1``, ``tol = 1e-9``) converges in 6 Newton steps after the annealing, and
    200 x 150 points in 3-D at ``epsilon = 1e-3`` in about 50 ms, where one sweep per stage
    had not converged after 10,000 iterations. When ``tol`` is not met the warning says so;
    the value returned is then the dual objective of the last iterate (one of its marginals
    is exact, so its plan has mass 1), which is a lower bound on ``OT_eps``.

    >>> import numpy as np
    >>> from divergences.transport import sinkhorn
    >>> x = np.array([[0.0, 0.0], [1.0, 0.0]])
    >>> y = x + [0.0, 1.0]                 # the optimal plan moves each point by 1
    >>> round(float(sinkhorn(x, y, epsilon=1e-3)), 6)   # 1 + eps KL(diag/2 || 1/4) = 1 + eps log 2
    1.000693
    >>> value, plan = sinkhorn(x, y, epsilon=1e-3, return_plan=True)
    >>> np.round(plan, 3)
    array([[0.5, 0. ],
           [0. , 0.5]])

    Unbalanced: with ``reach`` well below the distance 1, moving the mass costs more than
    destroying it and creating it again, ``rho m(a) + rho m(b) = 2 * 0.3**2``, and the plan
    keeps almost none of it:

    >>> value, plan = sinkhorn(x, y, epsilon=1e-3, reach=0.3, return_plan=True)
    >>> round(float(plan.sum()), 2), round(float(value), 3)
    (0.0, 0.18)
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    tx, ty, wa, la, wb, lb, wrap, batched = _clouds(x, y, a, b, balanced=reach is None)
    s = _setup((tx, ty), epsilon, p, tol, max_iter, scaling, backend,
               [tx.shape[0] * tx.shape[1] * ty.shape[1]], reach)
    value, res, cost = _ot(s, tx, ty, wa, la, wb, lb)
    _warn(res, s, "sinkhorn")
    out = _out(value, wrap, batched, reduction)
    if not return_plan:
        return out
    with torch.no_grad():
        plan = _sinkhorn.plan(cost, s.eps, res.f, res.g, la, lb)
    return out, wrap(plan if batched else plan[0])


def sinkhorn_cost(
    cost: ArrayLike,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    epsilon: float = 0.05,
    return_plan: bool = False,
    *,
    tol: float = 1e-3,
    max_iter: int = 1000,
    scaling: float | None = 0.5,
    rho: float | None = None,
    reduction: str = "none",
) -> Any:
    r"""Entropic optimal transport for a precomputed cost matrix (POT's ``ot.sinkhorn2(a, b, M, reg)``
    argument order, with ``reg = epsilon``).

    .. math:: \mathrm{OT}_\varepsilon(a, b) = \min_{P \in U(a, b)} \langle P, C\rangle
              + \varepsilon\,\mathrm{KL}(P \,\|\, a b^\top)

    for ``cost`` ``C`` of shape ``(n, m)`` (or ``(B, n, m)``: a batch), finite and
    non-negative, and weights ``a`` ``(n,)``, ``b`` ``(m,)`` (uniform if ``None``). The
    same solver as :func:`sinkhorn` (log-domain, annealed from ``max C`` down to
    ``epsilon``, Newton steps where it stalls); the value includes the entropic term, so it
    is POT's ``sinkhorn2`` value plus ``epsilon KL(P || a b^T)``. Gradients (torch input) by
    the envelope theorem: ``dOT/dC = P``, ``dOT/da = f``, ``dOT/db = g``.
    ``return_plan=True`` also returns ``P``.

    ``rho`` (> 0, in the units of the cost) makes it unbalanced, as ``reach**p`` does in
    :func:`sinkhorn` (same objective, value and gradients): POT's
    ``ot.unbalanced.sinkhorn_unbalanced(a, b, M, reg=epsilon, reg_m=rho)`` gives the same
    plan; its ``sinkhorn_unbalanced2`` returns ``<P, M>`` only. ``a`` and ``b`` are then any
    non-negative weights of positive total mass.

    >>> import numpy as np
    >>> from divergences.transport import sinkhorn_cost
    >>> c = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> value, plan = sinkhorn_cost(c, epsilon=1e-3, return_plan=True)
    >>> np.round(plan, 3)
    array([[0.5, 0. ],
           [0. , 0.5]])
    >>> round(float(value), 6)     # 0 + eps KL(diag/2 || 1/4) = eps log 2
    0.000693
    >>> value, plan = sinkhorn_cost(c, [1.0, 1.0], [0.5, 0.5], epsilon=1e-3, rho=1.0,
    ...                             return_plan=True)
    >>> np.round(plan, 3)          # mass 2 against mass 1: the plan settles in between
    array([[0.707, 0.   ],
           [0.   , 0.707]])
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    arrays = [cost] + [w for w in (a, b) if w is not None]
    wnames = [n for n, w in zip(("a", "b"), (a, b)) if w is not None]
    tensors, wrap = as_tensors(*arrays, names=["cost", *wnames])
    tc = tensors[0]
    tw = dict(zip(wnames, tensors[1:]))
    if tc.ndim not in (2, 3) or tc.shape[-1] == 0 or tc.shape[-2] == 0:
        raise ValueError(f"cost must have shape (n, m) or (batch, n, m) with n, m >= 1; "
                         f"got {tuple(tc.shape)}")
    batched = tc.ndim == 3
    if not batched:
        tc = tc[None]
    _check_finite(tc, "cost")
    if bool((tc < 0).any()):
        raise ValueError("cost contains negative entries; a transport cost is >= 0")
    balanced = rho is None
    wa, la = _weights(tw.get("a"), tc.shape[:2], tc, "a", balanced)
    wb, lb = _weights(tw.get("b"), (tc.shape[0], tc.shape[2]), tc, "b", balanced)
    eps, _, tol, max_iter, scaling = _options(epsilon, 1.0, tol, max_iter, scaling, "tensorized")
    rho = _rho(rho, "rho")
    top = float(tc.detach().amax())
    schedule = _sinkhorn.epsilon_schedule(top, 1.0, eps, scaling)
    solver_cost = _sinkhorn.Cost.from_matrix(tc.detach())
    res = _sinkhorn.solve(solver_cost, la, lb, eps, schedule, tol, max_iter, rho=rho)
    _warn(res, _Setup(eps, 1.0, tol, max_iter, schedule, False, None), "sinkhorn_cost")
    value = _sinkhorn.EnvelopeMatrix.apply(tc, wa, wb, res.f, res.g, la, lb, eps, solver_cost,
                                           rho, res.tau)
    out = _out(value, wrap, batched, reduction)
    if not return_plan:
        return out
    with torch.no_grad():
        plan = _sinkhorn.plan(solver_cost, eps, res.f, res.g, la, lb)
    return out, wrap(plan if batched else plan[0])


def sinkhorn_divergence(
    x: ArrayLike,
    y: ArrayLike,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    epsilon: float = 0.05,
    p: float = 2,
    *,
    tol: float = 1e-3,
    max_iter: int = 1000,
    scaling: float | None = 0.5,
    backend: str = "auto",
    reach: float | None = None,
    reduction: str = "none",
) -> Any:
    r"""Debiased Sinkhorn divergence.

    .. math:: S_\varepsilon(a, b) = \mathrm{OT}_\varepsilon(a, b)
              - \tfrac12 \mathrm{OT}_\varepsilon(a, a) - \tfrac12 \mathrm{OT}_\varepsilon(b, b)

    with :math:`\mathrm{OT}_\varepsilon` of :func:`sinkhorn` (same cost, arguments and
    gradients). It is 0 for identical inputs, symmetric, and non-negative for ``p <= 2``
    (where the Gibbs kernel ``exp(-C/eps)`` is positive definite; Feydy et al., 2019);
    rounding is clamped at 0. As ``epsilon -> 0`` it tends to ``W_p^p``; as ``epsilon -> inf``
    to an energy-distance MMD. The self terms use the symmetric fixed point
    ``f = (f + T(f)) / 2``, which converges in a few iterations. Identical inputs (same
    points and weights) give exactly 0: the cross term is then the self term.

    With ``reach`` (unbalanced, ``rho = reach**p``, see :func:`sinkhorn`), as in geomloss
    and Sejourne et al. (2019),

    .. math:: S_{\varepsilon,\rho}(a, b) = \mathrm{OT}_{\varepsilon,\rho}(a, b)
              - \tfrac12 \mathrm{OT}_{\varepsilon,\rho}(a, a)
              - \tfrac12 \mathrm{OT}_{\varepsilon,\rho}(b, b)
              + \tfrac{\varepsilon}{2} (m(a) - m(b))^2,

    the last term (``m`` the total mass) making it non-negative and 0 only for ``a = b``; the
    weights need not sum to 1. It is twice geomloss's value at ``blur = sqrt(epsilon / 2)``,
    ``reach = reach / sqrt(2)`` for ``p = 2`` (geomloss's cost is ``|x - y|^2 / 2``).

    >>> import numpy as np
    >>> from divergences.transport import sinkhorn_divergence
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(30, 2))
    >>> float(sinkhorn_divergence(x, x))
    0.0
    >>> bool(sinkhorn_divergence(x, x + 1.0) > 0.9)   # W_2^2 = 2 for a shift by (1, 1)
    True
    >>> half = np.full(30, 0.5 / 30)                    # the same points at half the mass
    >>> round(float(sinkhorn_divergence(x, x, b=half, reach=1.0)), 4)
    0.0849
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    tx, ty, wa, la, wb, lb, wrap, batched = _clouds(x, y, a, b, balanced=reach is None)
    n, m = tx.shape[1], ty.shape[1]
    s = _setup((tx, ty), epsilon, p, tol, max_iter, scaling, backend,
               [tx.shape[0] * n * m, tx.shape[0] * n * n, tx.shape[0] * m * m], reach)
    aa, r_aa, _ = _ot(s, tx, tx, wa, la, wa, la, symmetric=True)
    results = [r_aa]
    if torch.equal(tx, ty) and torch.equal(wa, wb):
        # the same measure: OT(a, b) is OT(a, a), and S is 0 exactly (rounding would leave
        # the difference of two solves), with the gradient through the self term
        ab = bb = aa
    else:
        ab, r_ab, _ = _ot(s, tx, ty, wa, la, wb, lb)
        bb, r_bb, _ = _ot(s, ty, ty, wb, lb, wb, lb, symmetric=True)
        results += [r_ab, r_bb]
    for r in results:
        _warn(r, s, "sinkhorn_divergence")
    values = ab - 0.5 * (aa + bb)
    if s.rho is not None:
        values = values + 0.5 * s.eps * (wa.sum(-1) - wb.sum(-1)) ** 2
    return _out(values.clamp_min(0.0), wrap, batched, reduction)


def monge_gap(
    x: ArrayLike,
    tx: ArrayLike,
    a: ArrayLike | None = None,
    epsilon: float = 0.05,
    *,
    tol: float = 1e-3,
    max_iter: int = 1000,
    scaling: float | None = 0.5,
    backend: str = "auto",
    reduction: str = "none",
) -> Any:
    r"""Entropic Monge gap of a map ``T`` from reference points ``x`` and their images ``tx``.

    .. math:: \mathcal{M}_\varepsilon(T) = \sum_i a_i\, c(x_i, T(x_i))
              - W_{c,\varepsilon}(\rho, T_\sharp\rho),\qquad c(x, y) = \|x - y\|^2,

    with :math:`\rho = \sum_i a_i \delta_{x_i}` (uniform ``a`` by default) and
    :math:`T_\sharp\rho = \sum_i a_i \delta_{T(x_i)}` (Uscidda & Cuturi, 2023, Eq. 8). As in
    ott-jax (``monge_gap_from_samples``, which uses ``SinkhornOutput.ent_reg_cost``), the
    entropic term is included with the Shannon entropy of the plan,
    :math:`W_{c,\varepsilon} = \min_P \langle P, C\rangle - \varepsilon H(P)`, i.e.
    ``OT_eps(a, a) - eps (H(a) + H(a))`` with ``OT_eps`` of :func:`sinkhorn`. This keeps the
    gap non-negative; in fact it is at least ``eps H(a)`` (the plan ``diag(a)`` is feasible),
    and for an optimal map (``T(x) = A x + b`` with ``A`` symmetric positive definite, a
    gradient of a convex function) it tends to exactly ``eps H(a)`` (``eps log n``) as
    ``epsilon -> 0``, while for maps that are not optimal (a rotation) it stays positive.
    The cost is the squared Euclidean norm (ott-jax's ``SqEuclidean``, no factor 1/2);
    ``epsilon`` is absolute (ott-jax defaults to a fraction of the mean cost).

    ``x`` and ``tx`` have the same shape ``(n, d)`` (or ``(B, n, d)``); gradients flow to both.

    >>> import numpy as np
    >>> from divergences.transport import monge_gap
    >>> x = np.random.default_rng(0).normal(size=(20, 2))
    >>> A = np.array([[2.0, 0.5], [0.5, 1.0]])                   # symmetric positive definite
    >>> gap = monge_gap(x, x @ A + 1.0, epsilon=1e-2)
    >>> bool(abs(gap - 1e-2 * np.log(20)) < 1e-3)                # the entropic floor eps log n
    True
    >>> rot = np.array([[0.0, -1.0], [1.0, 0.0]])                 # a quarter turn
    >>> bool(monge_gap(x, x @ rot, epsilon=1e-2) > 1.0)
    True
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    t0, t1, wa, la, _, _, wrap, batched = _clouds(x, tx, a, None, names=("x", "tx"))
    if t0.shape != t1.shape:
        raise ValueError(
            f"x and tx must have the same shape (tx holds the images T(x_i)); got "
            f"{tuple(t0.shape[int(not batched):])} and {tuple(t1.shape[int(not batched):])}"
        )
    s = _setup((t0, t1), epsilon, 2, tol, max_iter, scaling, backend,
               [t0.shape[0] * t0.shape[1] ** 2])
    ot, res, _ = _ot(s, t0, t1, wa, la, wa, la)
    _warn(res, s, "monge_gap")
    displacement = (wa * ((t0 - t1) ** 2).sum(-1)).sum(-1)
    h = entropy(wa, validate=False)
    values = displacement - (ot - 2.0 * s.eps * h)
    return _out(values, wrap, batched, reduction)


# --------------------------------------------------------------------------------------------
# Exact transport
# --------------------------------------------------------------------------------------------


def _root(v: torch.Tensor, p: float) -> torch.Tensor:
    """``v^(1/p)`` with a zero (not NaN) gradient at ``v = 0``."""
    if p == 1:
        return v
    pos = v > 0
    return torch.where(pos, torch.where(pos, v, 1.0).pow(1.0 / p), 0.0)


def _sorted_cdf(v: torch.Tensor, w: torch.Tensor | None):
    vs, idx = torch.sort(v, dim=-1)
    n = v.shape[-1]
    if w is None:
        cdf = torch.arange(1, n + 1, dtype=v.dtype, device=v.device).expand_as(v) / n
    else:
        cdf = torch.cumsum(w.gather(-1, idx), dim=-1)
    return vs, cdf, idx


def _quantile_coupling(x, a, y, b):
    """The monotone coupling along the last axis: pieces of mass ``dt`` joining the sorted
    samples ``ix`` of ``x`` and ``iy`` of ``y`` (positions in sorted order), over the merged
    breakpoints of the two CDFs; also the sorted samples and the sorting permutations."""
    xs, cx, px = _sorted_cdf(x, a)
    ys, cy, py = _sorted_cdf(y, b)
    t, _ = torch.sort(torch.cat([cx, cy], dim=-1), dim=-1)
    t0 = torch.cat([torch.zeros_like(t[..., :1]), t[..., :-1]], dim=-1)
    dt = t - t0
    mid = (0.5 * (t + t0)).detach().contiguous()
    ix = torch.searchsorted(cx.detach().contiguous(), mid).clamp_max_(x.shape[-1] - 1)
    iy = torch.searchsorted(cy.detach().contiguous(), mid).clamp_max_(y.shape[-1] - 1)
    return dt, ix, iy, xs, ys, px, py


def _w1d_power(x, a, y, b, p: float) -> torch.Tensor:
    """``int_0^1 |F^-1(t) - G^-1(t)|^p dt`` along the last axis (quantile coupling)."""
    dt, ix, iy, xs, ys, _, _ = _quantile_coupling(x, a, y, b)
    diff = (xs.gather(-1, ix) - ys.gather(-1, iy)).abs()
    return (dt * (diff if p == 1 else diff.pow(p))).sum(-1)


def _w1d_plan(x, a, y, b) -> torch.Tensor:
    """The monotone (optimal) plan ``(..., n, m)`` in the samples' original order."""
    with torch.no_grad():
        dt, ix, iy, _, _, px, py = _quantile_coupling(x, a, y, b)
        n, m = x.shape[-1], y.shape[-1]
        flat = px.gather(-1, ix) * m + py.gather(-1, iy)
        plan = dt.new_zeros((*dt.shape[:-1], n * m)).scatter_add_(-1, flat, dt)
        return plan.reshape(*dt.shape[:-1], n, m)


def _weights_1d(w, like: torch.Tensor, name: str) -> torch.Tensor | None:
    if w is None:
        return None
    if w.shape != like.shape:
        raise ValueError(
            f"{name} must have the shape of its samples {tuple(like.shape)}; got {tuple(w.shape)}"
        )
    to_log_probs(w.detach(), "probs", name)   # validates: finite, >= 0, sums to 1
    return w


def wasserstein_1d(
    x: ArrayLike,
    y: ArrayLike,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    p: float = 1,
    *,
    reduction: str = "none",
    return_plan: bool = False,
) -> Any:
    r"""Exact ``p``-Wasserstein distance between weighted samples on the line.

    .. math:: W_p(\mu, \nu) = \Big(\int_0^1 |F^{-1}(t) - G^{-1}(t)|^p\,dt\Big)^{1/p},

    with ``F``, ``G`` the weighted empirical CDFs (the monotone coupling is optimal for every
    convex cost). Integrated exactly over the merged breakpoints of the two CDFs:
    ``O((n + m) log(n + m))``. ``x`` ``(..., n)`` and ``y`` ``(..., m)`` hold samples along
    the last axis; leading axes are a batch (equal on both sides). Weights ``a``, ``b`` have
    the shapes of ``x``, ``y`` (uniform if ``None``). For ``p = 1`` this is
    ``scipy.stats.wasserstein_distance``. Differentiable in the samples and weights.
    ``return_plan=True`` also returns the optimal (monotone) plan, ``(..., n, m)`` with
    rows and columns in the samples' given order (without gradient; with ``reduction``
    applied to the values only).

    >>> from divergences.transport import wasserstein_1d
    >>> float(wasserstein_1d([0.0, 1.0, 3.0], [5.0, 6.0, 8.0]))
    5.0
    >>> round(float(wasserstein_1d([0.0, 1.0], [0.0, 1.0], a=[0.25, 0.75], p=2)), 6)
    0.5
    >>> value, plan = wasserstein_1d([1.0, 0.0], [0.0, 1.0], a=[0.25, 0.75], return_plan=True)
    >>> plan
    array([[0.  , 0.25],
           [0.5 , 0.25]])
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    p = check_range(p, "p", 1.0, high_open=True)
    arrays = [x, y] + [w for w in (a, b) if w is not None]
    wnames = [n for n, w in zip(("a", "b"), (a, b)) if w is not None]
    tensors, wrap = as_tensors(*arrays, names=["x", "y", *wnames])
    tx, ty = tensors[0], tensors[1]
    tw = dict(zip(wnames, tensors[2:]))
    if tx.ndim == 0 or ty.ndim == 0 or tx.shape[:-1] != ty.shape[:-1]:
        raise ValueError(
            "x and y must hold samples along their last axis with equal batch axes; got shapes "
            f"{tuple(tx.shape)} and {tuple(ty.shape)}"
        )
    for t, n in ((tx, "x"), (ty, "y")):
        if t.shape[-1] == 0:
            raise ValueError(f"{n} must hold at least one sample")
        _check_finite(t, n)
    wa = _weights_1d(tw.get("a"), tx, "a")
    wb = _weights_1d(tw.get("b"), ty, "b")
    values = _root(_w1d_power(tx, wa, ty, wb, p), p)
    if not return_plan:
        return wrap(reduce(values, reduction))
    return wrap(reduce(values, reduction)), wrap(_w1d_plan(tx, wa, ty, wb))


def sliced_wasserstein(
    x: ArrayLike,
    y: ArrayLike,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    n_projections: int = 128,
    p: float = 2,
    seed: int | None = 0,
    *,
    projections: ArrayLike | None = None,
    reduction: str = "none",
) -> Any:
    r"""Monte Carlo sliced ``p``-Wasserstein distance between weighted point clouds.

    .. math:: SW_p(\mu, \nu) = \Big(\frac1K \sum_{k=1}^K
              W_p^p(\theta_k{}_\sharp\mu, \theta_k{}_\sharp\nu)\Big)^{1/p},

    with ``K = n_projections`` directions ``theta_k`` drawn uniformly on the unit sphere
    (Gaussian draws normalised, from a ``torch.Generator`` seeded with ``seed``; ``None`` draws
    fresh ones) and each 1-D distance exact (:func:`wasserstein_1d`). The same directions are
    used for every batch entry. Shapes and weights as in :func:`sinkhorn`. In 1-D every
    direction is ``+-1`` and this is :func:`wasserstein_1d` exactly. ``projections``: your
    own directions instead, ``(K, d)`` (each row normalised to unit length; then
    ``n_projections`` and ``seed`` are not used). POT's ``projections`` argument is the
    transpose, ``(d, K)``, used as given.

    >>> import numpy as np
    >>> from divergences.transport import sliced_wasserstein
    >>> x = np.random.default_rng(0).normal(size=(100, 3))
    >>> float(sliced_wasserstein(x, x))
    0.0
    >>> bool(sliced_wasserstein(x, x + 1.0) > 0.5)
    True
    >>> round(float(sliced_wasserstein(x, x + [1.0, 0.0, 0.0], projections=[[1.0, 0.0, 0.0]])), 6)
    1.0
    """
    powers, p, wrap, batched = _sliced_powers(x, y, a, b, n_projections, p, seed, projections)
    return _out(_root(powers.mean(-1), p), wrap, batched, reduction)


def max_sliced_wasserstein(
    x: ArrayLike,
    y: ArrayLike,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    n_projections: int = 128,
    p: float = 2,
    seed: int | None = 0,
    *,
    projections: ArrayLike | None = None,
    reduction: str = "none",
) -> Any:
    r"""Max-sliced ``p``-Wasserstein distance: the largest 1-D distance over the directions.

    .. math:: \max_{k} W_p(\theta_k{}_\sharp\mu, \theta_k{}_\sharp\nu),

    over ``n_projections`` random unit directions (or your ``projections``), as in
    :func:`sliced_wasserstein` and POT's ``max_sliced_wasserstein_distance``: a Monte Carlo
    lower bound on the max over the whole sphere (Deshpande et al., 2019), which is itself at
    most ``W_p``. Differentiable in the points (through the maximising direction).

    >>> import numpy as np
    >>> from divergences.transport import max_sliced_wasserstein
    >>> x = np.random.default_rng(0).normal(size=(100, 2))
    >>> d = [[1.0, 0.0], [0.0, 1.0]]
    >>> round(float(max_sliced_wasserstein(x, x + [3.0, 0.0], projections=d)), 6)
    3.0
    """
    powers, p, wrap, batched = _sliced_powers(x, y, a, b, n_projections, p, seed, projections)
    return _out(_root(powers.amax(-1), p), wrap, batched, reduction)


def _sliced_powers(x, y, a, b, n_projections, p, seed, projections):
    """``W_p^p`` of the projections on each direction, ``(B, K)``; also ``p``, the output
    wrapper and whether the input was batched."""
    p = check_range(p, "p", 1.0, high_open=True)
    tx, ty, wa, _, wb, _, wrap, batched = _clouds(x, y, a, b)
    if projections is None:
        if isinstance(n_projections, bool) or not isinstance(n_projections, (int, np.integer)) \
                or n_projections < 1:
            raise ValueError(f"n_projections must be a positive integer; got {n_projections!r}")
        if seed is not None and (isinstance(seed, bool)
                                 or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an integer or None; got {type(seed).__name__}")
        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(seed))
        theta = torch.randn(int(n_projections), tx.shape[-1], generator=gen,
                            dtype=torch.float64)
    else:
        theta = torch.as_tensor(np.asarray(projections, dtype=np.float64)
                                if not isinstance(projections, torch.Tensor)
                                else projections.detach().double().cpu())
        if theta.ndim != 2 or theta.shape[1] != tx.shape[-1] or theta.shape[0] == 0:
            raise ValueError(f"projections must have shape (K, d) = (K, {tx.shape[-1]}) with "
                             f"K >= 1; got {tuple(theta.shape)}")
        _check_finite(theta, "projections")
        if bool((torch.linalg.vector_norm(theta, dim=-1) == 0).any()):
            raise ValueError("projections has a zero row; each row is a direction")
    theta = (theta / torch.linalg.vector_norm(theta, dim=-1, keepdim=True)).to(tx)
    px = (tx @ theta.T).transpose(-1, -2)            # (B, K, n)
    py = (ty @ theta.T).transpose(-1, -2)
    k = theta.shape[0]
    wa = wa[:, None, :].expand(-1, k, -1)
    wb = wb[:, None, :].expand(-1, k, -1)
    return _w1d_power(px, wa, py, wb, p), p, wrap, batched


def _exact_cost(x: torch.Tensor, y: torch.Tensor, p: float) -> torch.Tensor:
    """``||x_i - y_j||^p`` from the differences themselves, so equal points cost exactly 0.

    (``|x|^2 + |y|^2 - 2 x.y``, the matrix-product form Sinkhorn uses on large clouds, leaves
    a rounding residue of order ``eps |x|^2`` on the diagonal: ``W_2(x, x)`` came out 1e-8.)
    The exact solver's problems are small, so the ``(n, m, d)`` differences are affordable.
    """
    diff = x[:, None, :] - y[None, :, :]
    sq = (diff * diff).sum(-1)
    if p == 2:
        return sq
    # sqrt with a zero (not NaN) gradient at 0, then the p-th power
    return _root(sq, 2.0).pow(p)


def wasserstein_exact(
    x: ArrayLike,
    y: ArrayLike,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    p: float = 2,
    *,
    return_plan: bool = False,
) -> Any:
    r"""Exact ``p``-Wasserstein distance between small weighted point clouds.

    .. math:: W_p(a, b) = \Big(\min_{P \in U(a, b)} \sum_{ij} P_{ij} \|x_i - y_j\|^p\Big)^{1/p}.

    The cost is formed from the differences ``x_i - y_j``, so equal points cost exactly 0 and
    ``wasserstein_exact(x, x)`` is exactly 0. Solved in float64 with SciPy:
    ``linear_sum_assignment`` when ``n = m`` and both weights are
    uniform (then an optimal plan is a permutation), otherwise ``linprog`` (HiGHS) on the
    ``n*m``-variable transport LP. For small problems (the LP has ``n*m`` variables; a few
    hundred points per side). Differentiable (torch input): in the points through the optimal
    plan, in the weights through the LP's dual potentials. Points ``(n, d)`` or ``(n,)``; no
    batch axis. ``return_plan=True`` also returns an optimal plan ``(n, m)`` (a vertex of the
    transport polytope; without gradient).

    >>> from divergences.transport import wasserstein_exact
    >>> float(wasserstein_exact([[0.0], [1.0]], [[1.0], [2.0]]))
    1.0
    >>> round(float(wasserstein_exact([[0.0], [1.0]], [[0.0]], a=[0.5, 0.5], p=2)), 6)
    0.707107
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(20, 3)) + 1e3
    >>> float(wasserstein_exact(x, x))
    0.0
    >>> value, plan = wasserstein_exact([[0.0], [1.0]], [[1.0], [0.0]], return_plan=True)
    >>> plan
    array([[0. , 0.5],
           [0.5, 0. ]])
    """
    from scipy.optimize import linear_sum_assignment, linprog
    from scipy.sparse import csr_matrix as _csr
    from scipy.sparse import eye, kron, vstack

    p = check_range(p, "p", 1.0, high_open=True)
    tx, ty, wa, _, wb, _, wrap, batched = _clouds(x, y, a, b)
    if batched:
        raise ValueError("wasserstein_exact takes one problem: x (n, d) and y (m, d), no batch")
    tx, ty, wa, wb = tx[0], ty[0], wa[0], wb[0]
    n, m = tx.shape[0], ty.shape[0]
    shift = torch.cat([tx, ty]).detach().mean(0)
    cost = _exact_cost(tx - shift, ty - shift, p)
    c = cost.detach().cpu().double().numpy()
    an = wa.detach().cpu().double().numpy()
    bn = wb.detach().cpu().double().numpy()
    an, bn = an / an.sum(), bn / bn.sum()
    weight_grad = wa.requires_grad or wb.requires_grad
    uniform = n == m and np.allclose(an, 1.0 / n, rtol=0, atol=1e-12) \
        and np.allclose(bn, 1.0 / m, rtol=0, atol=1e-12)
    u = v = None
    if uniform and not weight_grad:
        rows, cols = linear_sum_assignment(c)
        plan = np.zeros((n, m))
        plan[rows, cols] = 1.0 / n
    else:
        a_eq = vstack([kron(eye(n), _csr(np.ones((1, m)))), kron(_csr(np.ones((1, n))), eye(m))])
        res = linprog(c.ravel(), A_eq=a_eq.tocsr(), b_eq=np.concatenate([an, bn]),
                      bounds=(0, None), method="highs")
        if res.status != 0:  # pragma: no cover - the transport LP is always feasible
            raise RuntimeError(f"linprog failed on the transport problem: {res.message}")
        plan = res.x.reshape(n, m)
        u, v = res.eqlin.marginals[:n], res.eqlin.marginals[n:]
    value = (torch.as_tensor(plan, dtype=cost.dtype, device=cost.device) * cost).sum()
    if u is not None and weight_grad:
        tu = torch.as_tensor(u, dtype=cost.dtype, device=cost.device)
        tv = torch.as_tensor(v, dtype=cost.dtype, device=cost.device)
        value = value + (tu * (wa - wa.detach())).sum() + (tv * (wb - wb.detach())).sum()
    if not return_plan:
        return wrap(_root(value, p))
    return wrap(_root(value, p)), wrap(torch.as_tensor(plan, dtype=cost.dtype,
                                                       device=cost.device))

