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
        self._work: torch.Tensor | None = None
        if not online:
            self.c_xy = pairwise_cost(x, y, p)

    @classmethod
    def from_matrix(cls, c: torch.Tensor) -> Cost:
        """A dense cost given as a ``(B, n, m)`` matrix (no points: ``x``, ``y`` are empty
        ``(B, n, 0)`` and ``(B, m, 0)`` placeholders that carry the shapes)."""
        self = cls.__new__(cls)
        self.x = c.new_empty((c.shape[0], c.shape[1], 0))
        self.y = c.new_empty((c.shape[0], c.shape[2], 0))
        self.p, self.online, self.block, self._c_yx, self._work = (None, False, BLOCK_ELEMENTS,
                                                                    None, None)
        self.c_xy = c
        return self

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
            # Row blocks of about BLOCK_ELEMENTS entries through one reused work buffer: the
            # passes of a soft-min (shift, max, exp, sum) run on a cache-sized block, the cost
            # is read once, and the temporary is one block (4 MiB) instead of B * n * m
            # entries (100 MB at 5,000^2 in float32, beside the cost and its transpose).
            # A fresh whole-matrix temporary per call mapped new pages each time.
            step = min(self._rows(c.shape[2]), c.shape[1])
            size = c.shape[0] * step * c.shape[2]
            if self._work is None or self._work.dtype != u.dtype or self._work.numel() < size:
                self._work = torch.empty(size, dtype=u.dtype, device=u.device)
            out = torch.empty(c.shape[:2], dtype=u.dtype, device=u.device)
            ub = u[:, None, :]
            for s in range(0, c.shape[1], step):
                blk = c[:, s : s + step]
                z = self._work[: blk.numel()].view(blk.shape)
                out[:, s : s + step] = _lse_(torch.sub(ub, blk, alpha=1.0 / eps, out=z))
            return out.mul_(-eps)
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
    newton_steps: int = 0


def _marginal_error(logw: torch.Tensor, h_old: torch.Tensor, h_new: torch.Tensor,
                    eps: float) -> float:
    """``sum_j |w_j exp((h_old - h_new)/eps) - w_j|``, the L1 error of a marginal, max over batch."""
    w = logw.exp()
    return float((torch.exp(logw + (h_old - h_new) / eps) - w).abs().sum(-1).max())


# Annealing: each stage of the epsilon schedule is solved to this L1 marginal error (at most
# STAGE_MAX_ITER iterations) before the next, smaller epsilon starts from its potentials. With
# one sweep per stage (the former default) the potentials lag the schedule; at a small target
# epsilon the lag sits in the slow modes of Sinkhorn (mass moving along a chain of nearly
# disconnected blocks, contracting by about exp(-gap/epsilon) per iteration) and never left:
# POT's test problem (arange(10), epsilon 0.1, tol 1e-9) stalled at 3e-4 after 10,000
# iterations, 200 x 150 points in 3-D at epsilon 1e-3 at 7e-2.
STAGE_TOL = 1e-2
STAGE_TOL_LARGE = 1e-1
STAGE_MAX_ITER = 50

# Newton steps on the semi-dual take over when Sinkhorn stalls (the error not halved in
# NEWTON_WINDOW iterations) on problems with at most NEWTON_MAX_SIDE points on the second side
# and NEWTON_MAX_SIDE^2 cost entries (one step: a plan, an (m, m) matrix product and its
# Cholesky factorisation, O(n m^2)); they converge quadratically where Sinkhorn crawls.
NEWTON_MAX_SIDE = 2048
NEWTON_WINDOW = 10
NEWTON_MAX_STEPS = 30


def stage_tol(tol: float, use_newton: bool) -> float:
    """The marginal error an annealing stage is solved to: :data:`STAGE_TOL` where Newton
    steps can finish a stalled stage, :data:`STAGE_TOL_LARGE` where they cannot (large or
    online costs, where each iteration is expensive and a stage's extra iterations cost more
    than the target's: on the benchmark clouds at n = 3,000, 105 soft-mins at 1e-2 against
    77 at 1e-1 and 75 with one sweep per stage)."""
    return max(tol, STAGE_TOL if use_newton else STAGE_TOL_LARGE)


def _newton_ok(cost: Cost) -> bool:
    # by size only, so that both backends take the same path (and give the same iterates)
    b, n, m = cost.x.shape[0], cost.x.shape[1], cost.y.shape[1]
    return m <= NEWTON_MAX_SIDE and b * n * m <= NEWTON_MAX_SIDE**2


def _log_plan(c: torch.Tensor, eps: float, f, g, loga, logb) -> torch.Tensor:
    return (loga + f / eps)[:, :, None] + (logb + g / eps)[:, None, :] - c / eps


def newton(cost: Cost, loga: torch.Tensor, logb: torch.Tensor, eps: float, g: torch.Tensor,
           tol: float, max_steps: int = NEWTON_MAX_STEPS):
    """Damped Newton steps on the semi-dual ``G(g) = <a, T(g)> + <b, g>`` (``T(g)`` the
    exact ``f`` update) from ``g``; returns ``(f, g, column error, steps)``.

    ``grad G = b - P^T 1`` and ``-eps Hess G = M = diag(P^T 1) - P^T diag(1/a) P`` (``P`` the
    plan of ``(T(g), g)``, whose rows sum to ``a``), positive semi-definite with the constants
    as its null space (``g + c`` is the same solution): the step solves
    ``(M + mean(c) 1 1^T / m + ridge) d = eps (b - P^T 1)`` by Cholesky, in float64. The step
    length is halved until ``G`` rises by at least 1e-4 of its linear prediction (Armijo) or
    the error halves; the steps stop when no length is accepted (far from the solution, where
    Sinkhorn then carries on). Rows of the returned plan are exact.
    """
    dt = torch.float64
    a, b = loga.exp().to(dt), logb.exp().to(dt)
    m = g.shape[-1]
    eye = torch.eye(m, dtype=dt, device=g.device)
    # the dense cost (formed here on the online backend: at most NEWTON_MAX_SIDE^2 entries)
    cm = pairwise_cost(cost.x, cost.y, cost.p) if cost.online else cost.c_xy
    f = cost.softmin(eps, g, logb, "x")
    err, steps = math.inf, 0
    while True:
        plan = _log_plan(cm, eps, f, g, loga, logb).to(dt).exp_()
        c = plan.sum(1)
        err = float((c - b).abs().sum(-1).max())
        if err <= tol or steps >= max_steps:
            break
        q = plan / a.sqrt()[:, :, None]
        scale = c.amax(-1, keepdim=True)[..., None]
        mat = torch.diag_embed(c) - q.transpose(1, 2) @ q + scale / m + eye * (1e-12 * scale)
        fac, info = torch.linalg.cholesky_ex(mat)
        rhs = ((b - c) * eps)[..., None]
        if int(info.max()) == 0:
            d = torch.cholesky_solve(rhs, fac)[..., 0]
        else:  # numerically indefinite: least squares
            d = torch.linalg.lstsq(mat, rhs).solution[..., 0]
        g0 = float((a * f.to(dt)).sum() + (b * g.to(dt)).sum())
        slope = float(((b - c) * d).sum())
        d = d.to(g.dtype)
        t, accepted = 1.0, False
        for _ in range(40):
            g_t = g + t * d
            f_t = cost.softmin(eps, g_t, logb, "x")
            if float((a * f_t.to(dt)).sum() + (b * g_t.to(dt)).sum()) >= g0 + 1e-4 * t * slope:
                accepted = True
            else:
                c_t = _log_plan(cm, eps, f_t, g_t, loga, logb).to(dt).exp_().sum(1)
                accepted = float((c_t - b).abs().sum(-1).max()) < 0.5 * err
            if accepted:
                break
            t *= 0.5
        if not accepted:
            break
        f, g, steps = f_t, g_t, steps + 1
    return f, g, err, steps


def _iterate(cost: Cost, loga, logb, eps: float, g, tol: float, max_iter: int, omega: float,
             use_newton: bool):
    """Sinkhorn at one epsilon from ``g`` until the L1 marginal error is at most ``tol``;
    ``(f, g, error, iterations, newton steps)``."""
    f = cost.softmin(eps, g, logb, "x")
    err, best, stalled, it, steps, history = math.inf, math.inf, 0, 0, 0, []
    while it < max_iter:
        it += 1
        g_new = cost.softmin(eps, f, loga, "y")
        err = _marginal_error(logb, g, g_new, eps)
        if err <= tol or it == max_iter:
            return f, g_new, err, it, steps
        history.append(err)
        if use_newton and len(history) > NEWTON_WINDOW and err > 0.5 * history[-1 - NEWTON_WINDOW]:
            f2, g2, err2, k = newton(cost, loga, logb, eps, g_new, tol)
            steps += k
            if err2 <= tol:
                return f2, g2, err2, it, steps
            # no convergence yet (steps stopped far from the solution): Sinkhorn resumes
            # from the best point, and may call Newton again a window later
            f, g, history = f2, g2, []
            continue
        if err < best:
            best, stalled = err, 0
        else:
            stalled += 1
            if stalled >= RELAXATION_PATIENCE:
                omega = 1.0
        g = g_new if omega == 1.0 else torch.lerp(g, g_new, omega)
        f_new = cost.softmin(eps, g, logb, "x")
        f = f_new if omega == 1.0 else torch.lerp(f, f_new, omega)
    return f, g, err, it, steps


def solve(cost: Cost, loga: torch.Tensor, logb: torch.Tensor, epsilon: float,
          schedule: list[float], tol: float, max_iter: int,
          omega: float | None = None, newton_steps: bool | None = None) -> Result:
    """Log-domain Sinkhorn with annealing: each stage to :func:`stage_tol`, then the target.

    The error is the L1 distance between the plan's column sums and ``b`` (the row sums are
    exact after an update of ``f``). At every epsilon the updates are over-relaxed,
    ``f <- (1 - omega) f + omega T(g)`` (and the same for ``g``), with ``omega`` =
    :data:`OVERRELAXATION` by default; ``omega = 1`` is plain Sinkhorn. Both have the same
    fixed point. If the error has not improved on its best value for
    :data:`RELAXATION_PATIENCE` iterations, the solver falls back to ``omega = 1``, which
    always converges. Where the error stalls on a small dense problem, damped Newton steps
    (:func:`newton`) finish the solve (``newton_steps=None``: when :func:`_newton_ok`, by
    size;
    ``False`` never). One marginal of the returned pair is exact. ``iterations`` counts
    the Sinkhorn iterations at the target epsilon. Runs without autograd.
    """
    omega = OVERRELAXATION if omega is None else float(omega)
    use_newton = _newton_ok(cost) if newton_steps is None else bool(newton_steps)
    with torch.no_grad():
        g = torch.zeros_like(logb)
        steps = 0
        for eps in schedule[:-1]:
            _, g, _, _, k = _iterate(cost, loga, logb, eps, g, stage_tol(tol, use_newton),
                                     STAGE_MAX_ITER, omega, use_newton)
            steps += k
        f, g, err, it, k = _iterate(cost, loga, logb, epsilon, g, tol, max_iter, omega,
                                    use_newton)
        return Result(f, g, err, it, err <= tol, steps + k)


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


def _dual_value(a, b, f, g) -> torch.Tensor:
    """``<a, f> + <b, g>``, zero weights contributing nothing (their potentials may be inf)."""
    return torch.where(a > 0, a * f, 0.0).sum(-1) + torch.where(b > 0, b * g, 0.0).sum(-1)


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
        return _dual_value(a, b, f, g)

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


class EnvelopeMatrix(torch.autograd.Function):
    """``<a, f> + <b, g>`` for a given cost matrix, with envelope-theorem gradients:
    ``a -> f``, ``b -> g`` and the cost to the plan ``P``."""

    @staticmethod
    def forward(ctx, c, a, b, f, g, loga, logb, eps, cost):
        ctx.save_for_backward(f, g, loga, logb)
        ctx.eps, ctx.cost = eps, cost
        return _dual_value(a, b, f, g)

    @staticmethod
    def backward(ctx, grad):
        f, g, loga, logb = ctx.saved_tensors
        need = ctx.needs_input_grad
        gc = ga = gb = None
        if need[0]:
            gc = grad[:, None, None] * plan(ctx.cost, ctx.eps, f, g, loga, logb)
        if need[1]:
            ga = grad[:, None] * f
        if need[2]:
            gb = grad[:, None] * g
        return gc, ga, gb, None, None, None, None, None, None


def plan(cost: Cost, eps: float, f, g, loga, logb) -> torch.Tensor:
    """The dense plan ``(B, n, m)``."""
    out = torch.empty(cost.x.shape[0], cost.x.shape[1], cost.y.shape[1],
                      dtype=f.dtype, device=f.device)
    for s, e, logp in cost.log_plan_blocks(eps, f, g, loga, logb, "x"):
        out[:, s:e] = logp.exp_()
    return out
