r"""Log-domain Sinkhorn with epsilon-scaling, on a dense or a block-wise (online) cost.

Everything here works on a leading batch axis: points ``x`` of shape ``(B, n, d)``, ``y`` of
shape ``(B, m, d)``, log-weights ``(B, n)`` and ``(B, m)``. The public wrappers live in
:mod:`divergences.transport`.

Two cost backends share one interface (:class:`Cost`):

``"tensorized"``
    The ``(B, n, m)`` cost matrix (and its transpose, so that both half-steps reduce along
    contiguous memory) is formed once; each half-step is one fused ``u - C/eps`` and one
    ``logsumexp``.
``"online"``
    The cost is never stored: each half-step walks over blocks of rows, recomputes the
    ``(B, rows, m)`` cost block from the points and reduces it. Memory is linear in
    ``n + m`` (plus one block of :data:`BLOCK_ELEMENTS` entries), time is one cost
    evaluation per entry per half-step.

Gradients never go through the iterations. :class:`EnvelopeValue` returns the dual value
``<a, f> + <b, g>`` of converged potentials and, by the envelope theorem, backpropagates
``f`` to ``a``, ``g`` to ``b`` and the plan ``P`` to the cost (hence to the points),
block-wise on the online backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Entries per cost block on the online backend (4 MiB of float32): large enough to keep the
# per-block overhead small, small enough to stay in cache-sized pieces.
BLOCK_ELEMENTS = 1 << 20

# backend="auto" uses the dense cost matrix up to this many entries B * n * m, and the online
# backend above it. Measured per soft-min (benchmarks/transport.py, section "backends",
# RESULTS.md 2026-11-29 16:55, one thread, interleaved): dense is faster up to 2,500 points
# (online/dense 1.4-3.4 at d = 2, 1.2-1.3 at d = 16 and 64); at 5,000 the two are even
# (0.85-0.99); at 10,000 dense is even or faster (1.02-1.41). Speed therefore never argues for
# switching early, and above 5,000 it does not argue for dense either, so memory decides: at
# 5,000 x 5,000 the dense matrix, its transpose and one temporary take about 300 MB in float32
# (600 MB in float64), at 20,000 per side about 5 GB, where the online backend needs 27 MB
# above its inputs (section "online"). geomloss switches at the same 5,000^2 pairs.
AUTO_MAX_ENTRIES = 5000 * 5000

# Over-relaxation of the Sinkhorn updates at the target epsilon (see :func:`solve`). Measured
# (benchmarks/transport.py, section "overrelaxation", RESULTS.md: soft-min
# evaluations to reach tol=1e-3 on the benchmark clouds at epsilon=0.01, n=1500, float64,
# annealing included): omega = 1: 64, 1.3: 44, 1.5: 36, 1.7: 52, 1.9: 128; the value error
# against a converged solve is no larger.
OVERRELAXATION = 1.5
# Iterations without a new best marginal error before the solver falls back to omega = 1.
RELAXATION_PATIENCE = 20


def pairwise_cost(x: torch.Tensor, y: torch.Tensor, p: float) -> torch.Tensor:
    """``||x_i - y_j||^p`` for ``x`` ``(B, r, d)`` and ``y`` ``(B, m, d)``: ``(B, r, m)``.

    ``p = 2`` uses ``|x|^2 + |y|^2 - 2 x.y`` (one matrix product; callers centre the points
    so that the cancellation stays small), clamped at 0. Other ``p`` use exact differences.
    """
    if p == 2:
        sq = (x * x).sum(-1)[..., :, None] + (y * y).sum(-1)[..., None, :]
        return torch.baddbmm(sq, x, y.transpose(-1, -2), alpha=-2.0).clamp_min_(0.0)
    d = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")
    return d if p == 1 else d.pow(p)


def _lse_(z: torch.Tensor) -> torch.Tensor:
    """``logsumexp`` over the last axis, overwriting ``z`` (a temporary).

    Two passes and no extra ``z``-sized allocation; about twice as fast as ``torch.logsumexp``
    on CPU. Rows always hold a finite entry here (weights sum to 1), so the max is finite.
    """
    m = z.amax(dim=-1, keepdim=True)
    return z.sub_(m).exp_().sum(dim=-1).log_().add_(m[..., 0])


class Cost:
    """Soft-min reductions of the cost ``C_ij = ||x_i - y_j||^p`` between two point clouds."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, p: float, online: bool,
                 block_elements: int | None = None) -> None:
        self.x, self.y, self.p, self.online = x, y, p, online
        self.block = block_elements or BLOCK_ELEMENTS
        self._c_yx: torch.Tensor | None = None
        if not online:
            self.c_xy = pairwise_cost(x, y, p)

    @property
    def c_yx(self) -> torch.Tensor:
        """The transposed cost, made contiguous on first use (the symmetric solver never does)."""
        if self._c_yx is None:
            self._c_yx = self.c_xy.transpose(-1, -2).contiguous()
        return self._c_yx

    def _rows(self, n_cols: int) -> int:
        return max(1, self.block // max(1, n_cols * self.x.shape[0]))

    def softmin(self, eps: float, h: torch.Tensor, logw: torch.Tensor, side: str) -> torch.Tensor:
        """``-eps log sum_j w_j exp((h_j - C_ij)/eps)`` for every row ``i``.

        ``side="x"`` reduces over the ``y`` points (``h``, ``logw`` of length ``m``) and
        returns one value per ``x`` point; ``side="y"`` the other way round.
        """
        u = logw + h / eps
        if not self.online:
            c = self.c_xy if side == "x" else self.c_yx
            return _lse_(torch.sub(u[:, None, :], c, alpha=1.0 / eps)).mul_(-eps)
        rows, cols = (self.x, self.y) if side == "x" else (self.y, self.x)
        out = torch.empty(rows.shape[:2], dtype=u.dtype, device=u.device)
        step = self._rows(cols.shape[1])
        for s in range(0, rows.shape[1], step):
            c = pairwise_cost(rows[:, s : s + step], cols, self.p)
            out[:, s : s + step] = _lse_(torch.sub(u[:, None, :], c, alpha=1.0 / eps))
        return out.mul_(-eps)

    def log_plan_blocks(self, eps: float, f, g, loga, logb, side: str):
        """Yield ``(start, stop, log P block)``; ``side="y"`` yields blocks of ``P^T``."""
        if side == "x":
            rows, cols, fr, gc, lr, lc = self.x, self.y, f, g, loga, logb
        else:
            rows, cols, fr, gc, lr, lc = self.y, self.x, g, f, logb, loga
        step = self._rows(cols.shape[1]) if self.online else rows.shape[1]
        for s in range(0, rows.shape[1], step):
            if self.online:
                c = pairwise_cost(rows[:, s : s + step], cols, self.p)
            else:
                c = self.c_xy if side == "x" else self.c_yx
            left = (lr + fr / eps)[:, s : s + step, None]
            right = (lc + gc / eps)[:, None, :]
            yield s, s + c.shape[1], torch.sub(left + right, c, alpha=1.0 / eps)


def epsilon_schedule(diameter: float, p: float, epsilon: float, scaling: float | None):
    """Decreasing epsilons from ``diameter^p`` down to ``epsilon`` by factors ``scaling``."""
    top = diameter**p
    if scaling is None or not top > epsilon:
        return [epsilon]
    k = math.ceil(math.log(top / epsilon) / math.log(1.0 / scaling))
    return [top * scaling**i for i in range(k)] + [epsilon]


def diameter(*clouds: torch.Tensor) -> float:
    """An upper bound on the distance between any two points: the bounding box diagonal."""
    lo = torch.stack([c.amin(dim=(0, 1)) for c in clouds]).amin(0)
    hi = torch.stack([c.amax(dim=(0, 1)) for c in clouds]).amax(0)
    return float(torch.linalg.vector_norm(hi - lo))


@dataclass
class Result:
    f: torch.Tensor
    g: torch.Tensor
    error: float
    iterations: int
    converged: bool


def _marginal_error(logw: torch.Tensor, h_old: torch.Tensor, h_new: torch.Tensor,
                    eps: float) -> float:
    """``sum_j |w_j exp((h_old - h_new)/eps) - w_j|``, the L1 error of a marginal, max over batch."""
    w = logw.exp()
    return float((torch.exp(logw + (h_old - h_new) / eps) - w).abs().sum(-1).max())


def solve(cost: Cost, loga: torch.Tensor, logb: torch.Tensor, epsilon: float,
          schedule: list[float], tol: float, max_iter: int,
          omega: float | None = None) -> Result:
    """Alternating log-domain Sinkhorn; one sweep per annealing stage, then to convergence.

    The error is the L1 distance between the plan's column sums and ``b`` after an update
    of ``f`` (the row sums are then exact). At the target epsilon the updates are
    over-relaxed, ``f <- (1 - omega) f + omega T(g)`` (and the same for ``g``), with
    ``omega`` = :data:`OVERRELAXATION` by default; ``omega = 1`` is plain Sinkhorn. Both have
    the same fixed point. If the error has not improved on its best value for
    :data:`RELAXATION_PATIENCE` iterations, the solver falls back to ``omega = 1``, which
    always converges. The returned pair is a plain (unrelaxed) update, ``g = T(f)``, so the
    column sums of its plan are exact. Runs without autograd.
    """
    omega = OVERRELAXATION if omega is None else float(omega)
    with torch.no_grad():
        g = torch.zeros_like(logb)
        for eps in schedule[:-1]:
            f = cost.softmin(eps, g, logb, "x")
            g = cost.softmin(eps, f, loga, "y")
        f = cost.softmin(epsilon, g, logb, "x")
        err, best, stalled, it = math.inf, math.inf, 0, 0
        while it < max_iter:
            it += 1
            g_new = cost.softmin(epsilon, f, loga, "y")
            err = _marginal_error(logb, g, g_new, epsilon)
            if err <= tol or it == max_iter:
                g = g_new
                break
            if err < best:
                best, stalled = err, 0
            else:
                stalled += 1
                if stalled >= RELAXATION_PATIENCE:
                    omega = 1.0
            g = g_new if omega == 1.0 else torch.lerp(g, g_new, omega)
            f_new = cost.softmin(epsilon, g, logb, "x")
            f = f_new if omega == 1.0 else torch.lerp(f, f_new, omega)
        return Result(f, g, err, it, err <= tol)


def solve_symmetric(cost: Cost, loga: torch.Tensor, epsilon: float, schedule: list[float],
                    tol: float, max_iter: int) -> Result:
    """The self-transport problem ``OT_eps(a, a)``: averaged updates ``f <- (f + T f) / 2``.

    Its optimal potentials are equal (``f = g``), so one potential suffices. The error is the
    L1 distance between the row sums of the symmetric plan and ``a``.
    """
    with torch.no_grad():
        f = torch.zeros_like(loga)
        for eps in schedule[:-1]:
            f = 0.5 * (f + cost.softmin(eps, f, loga, "x"))
        err, it = math.inf, 0
        while it < max_iter:
            it += 1
            ft = cost.softmin(epsilon, f, loga, "x")
            err = _marginal_error(loga, f, ft, epsilon)
            if err <= tol:
                break
            f = 0.5 * (f + ft)
        return Result(f, f, err, it, err <= tol)


def _cost_gradient(cost: Cost, eps: float, f, g, loga, logb, side: str) -> torch.Tensor:
    """``sum_j P_ij grad_1 c(x_i, y_j)`` for every row point (``side="y"``: with ``P^T``)."""
    rows, cols = (cost.x, cost.y) if side == "x" else (cost.y, cost.x)
    out = torch.empty_like(rows)
    p = cost.p
    for s, e, logp in cost.log_plan_blocks(eps, f, g, loga, logb, side):
        plan = logp.exp_()
        r = rows[:, s:e]
        if p == 2:
            out[:, s:e] = 2.0 * (plan.sum(-1, keepdim=True) * r - torch.bmm(plan, cols))
            continue
        # d/dx ||x - y||^p = p ||x - y||^(p-2) (x - y), taken as 0 where x = y.
        # Exact differences (no matrix-product cancellation), a sub-block at a time.
        step = max(1, (cost.block // max(1, cols.shape[1] * r.shape[-1] * r.shape[0])))
        for t in range(0, r.shape[1], step):
            diff = r[:, t : t + step, None, :] - cols[:, None, :, :]
            dist = torch.linalg.vector_norm(diff, dim=-1)
            pos = dist > 0
            w = torch.where(pos, torch.where(pos, dist, 1.0).pow(p - 2.0), 0.0)
            w = p * w * plan[:, t : t + step]
            out[:, s + t : s + t + w.shape[1]] = (w[..., None] * diff).sum(-2)
    return out


class EnvelopeValue(torch.autograd.Function):
    """``<a, f> + <b, g>`` with envelope-theorem gradients.

    Inputs ``x``, ``y``, ``a``, ``b`` may require grad; ``f``, ``g`` are the converged
    potentials (constants). Backward: ``a -> f``, ``b -> g``, and the plan
    ``P_ij = a_i b_j exp((f_i + g_j - C_ij)/eps)`` contracted with the cost gradient for the
    points. ``ctx_cost`` is a :class:`Cost` built on centred copies of the points (the cost,
    hence the gradient, is translation invariant).
    """

    @staticmethod
    def forward(ctx, x, y, a, b, f, g, loga, logb, eps, cost):
        ctx.save_for_backward(f, g, loga, logb)
        ctx.eps, ctx.cost = eps, cost
        fa = torch.where(a > 0, a * f, 0.0).sum(-1)
        gb = torch.where(b > 0, b * g, 0.0).sum(-1)
        return fa + gb

    @staticmethod
    def backward(ctx, grad):
        f, g, loga, logb = ctx.saved_tensors
        need = ctx.needs_input_grad
        gx = gy = ga = gb = None
        cost, eps = ctx.cost, ctx.eps
        if need[0]:
            gx = grad[:, None, None] * _cost_gradient(cost, eps, f, g, loga, logb, "x")
        if need[1]:
            gy = grad[:, None, None] * _cost_gradient(cost, eps, f, g, loga, logb, "y")
        if need[2]:
            ga = grad[:, None] * f
        if need[3]:
            gb = grad[:, None] * g
        return gx, gy, ga, gb, None, None, None, None, None, None


def plan(cost: Cost, eps: float, f, g, loga, logb) -> torch.Tensor:
    """The dense plan ``(B, n, m)``."""
    out = torch.empty(cost.x.shape[0], cost.x.shape[1], cost.y.shape[1],
                      dtype=f.dtype, device=f.device)
    for s, e, logp in cost.log_plan_blocks(eps, f, g, loga, logb, "x"):
        out[:, s:e] = logp.exp_()
    return out
