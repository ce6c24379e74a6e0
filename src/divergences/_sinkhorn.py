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

Unbalanced transport (KL penalties of strength ``rho`` on the marginals instead of
constraints) runs through the same functions with ``rho`` given: the updates are damped by
:func:`damping`, each iteration takes the best translation of the potentials in closed form,
and Newton steps use the unbalanced semi-dual's Hessian.

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
    # Unbalanced: the potentials are f + tau and g - tau, with f, g as stored (see solve).
    tau: torch.Tensor | None = None


def damping(eps: float, rho: float | None) -> float:
    """The factor ``1 / (1 + eps/rho)`` of the unbalanced updates (1 when balanced).

    With KL penalties ``rho KL(P 1 || a)`` on the marginals instead of constraints, the
    optimality condition in ``f`` reads ``f (1/eps + 1/rho) = softmin / eps``: the balanced
    update, scaled by this factor (Chizat et al., 2018; Sejourne et al., 2019).
    """
    return 1.0 if rho is None else 1.0 / (1.0 + eps / rho)


def _undamped(eps: float, rho: float | None) -> float:
    """``1 - damping(eps, rho)`` as ``eps / (eps + rho)``: the subtraction ``1.0 - lam`` loses
    its digits when ``eps << rho`` (7 of them at eps/rho = 1e-9, a relative error of 2e-8 in
    the plan once multiplied by a translation of 2e5)."""
    return 0.0 if rho is None else eps / (eps + rho)


def _marginal_error(logw: torch.Tensor, h_old: torch.Tensor, s: torch.Tensor,
                    eps: float, rho: float | None = None,
                    h_true: torch.Tensor | None = None) -> float:
    """The L1 error of a marginal's optimality condition, max over the batch.

    ``s`` is the (undamped) soft-min computed from the other potential. Balanced:
    ``sum_j |w_j exp((h_old - s)/eps) - w_j|``, the distance between the plan's marginal and
    ``w``. Unbalanced, the marginal of the optimal plan is ``w exp(-h/rho)`` instead of ``w``:
    ``sum_j |w_j exp((h_old - s)/eps) - w_j exp(-h_old/rho)|``, zero exactly at the fixed
    point ``h = damping * s``, divided by the total mass ``sum_j w_j`` (1 when balanced) so
    that ``tol`` means the same for measures of any mass. ``h_true``: the potential itself
    where ``h_old`` and ``s`` are both stored shifted by a constant (see :func:`solve`).
    """
    if rho is None:
        w = logw.exp()
        return float((torch.exp(logw + (h_old - s) / eps) - w).abs().sum(-1).max())
    target = torch.exp(logw - (h_old if h_true is None else h_true) / rho)
    err = (torch.exp(logw + (h_old - s) / eps) - target).abs().sum(-1)
    return float((err / torch.logsumexp(logw, -1).exp()).max())


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


def _semi_dual(a, b, f, g, eps: float, rho: float | None) -> float:
    """The dual objective at ``(T(g), g)`` (``f = T(g)`` exact), in float64, summed over the
    batch: ``<a, f> + <b, g>`` balanced; unbalanced the plan's mass is ``<a, e^{-f/rho}>``.
    """
    f, g = f.to(a.dtype), g.to(b.dtype)
    if rho is None:
        return float(torch.where(a > 0, a * f, 0.0).sum() + torch.where(b > 0, b * g, 0.0).sum())
    ea = torch.where(a > 0, a * torch.expm1(-f / rho), 0.0).sum(-1)
    eb = torch.where(b > 0, b * torch.expm1(-g / rho), 0.0).sum(-1)
    ma, mb = a.sum(-1), b.sum(-1)
    return float((-rho * (ea + eb) - eps * (ea + ma - ma * mb)).sum())


def newton(cost: Cost, loga: torch.Tensor, logb: torch.Tensor, eps: float, g: torch.Tensor,
           tol: float, max_steps: int = NEWTON_MAX_STEPS, rho: float | None = None,
           tau: torch.Tensor | None = None):
    """Damped Newton steps on the semi-dual ``G(g) = D(T(g), g)`` (``T(g)`` the exact ``f``
    update) from ``g``; returns ``(f, g, column error, steps, tau)``.

    Balanced: ``grad G = b - P^T 1`` and ``-eps Hess G = M = diag(P^T 1) - P^T diag(1/a) P``
    (``P`` the plan of ``(T(g), g)``, whose rows sum to ``a``), positive semi-definite with
    the constants as its null space (``g + c`` is the same solution): the step solves
    ``(M + mean(c) 1 1^T / m + ridge) d = eps (b - P^T 1)`` by Cholesky, in float64.
    Unbalanced (``rho``, ``lam = 1/(1 + eps/rho)``, row sums ``r = a e^{-f/rho}``):
    ``grad G = b e^{-g/rho} - P^T 1`` and ``-eps Hess G = diag(P^T 1 + (eps/rho) b e^{-g/rho})
    - lam P^T diag(1/r) P``, positive definite (``df/dg = lam diag(1/r) P`` by implicit
    differentiation of the row condition). The step length is halved until ``G`` rises by at
    least 1e-4 of its linear prediction (Armijo) or the error halves; the steps stop when no
    length is accepted (far from the solution, where Sinkhorn then carries on). Rows of the
    returned plan are exact. Unbalanced potentials are stored shifted by ``tau`` as in
    :func:`solve`; after each step the best translation is taken (:func:`_translation`).
    """
    dt = torch.float64
    a, b = loga.exp().to(dt), logb.exp().to(dt)
    lam = damping(eps, rho)
    m = g.shape[-1]
    eye = torch.eye(m, dtype=dt, device=g.device)
    # the dense cost (formed here on the online backend: at most NEWTON_MAX_SIDE^2 entries)
    cm = pairwise_cost(cost.x, cost.y, cost.p) if cost.online else cost.c_xy

    def update_f(g_):
        return _f_update(cost, eps, g_, logb, rho, tau)

    def target(g_):  # the optimal plan's column sums, given g
        if rho is None:
            return b
        return b * torch.exp(-(g_ if tau is None else g_ - tau).to(dt) / rho)

    def semi_dual(f_, g_):
        if tau is not None:
            f_, g_ = f_ + tau, g_ - tau
        return _semi_dual(a, b, f_, g_, eps, rho)

    f = update_f(g)
    err, steps = math.inf, 0
    while True:
        plan = _log_plan(cm, eps, f, g, loga, logb).to(dt).exp_()
        c = plan.sum(1)
        tb = target(g)
        err = float(((c - tb).abs().sum(-1) / b.sum(-1)).max())
        if err <= tol or steps >= max_steps:
            break
        scale = c.amax(-1, keepdim=True)[..., None]
        if rho is None:
            q = plan / torch.where(a > 0, a, 1.0).sqrt()[:, :, None]
            mat = torch.diag_embed(c) - q.transpose(1, 2) @ q + scale / m
        else:
            r = plan.sum(2)
            q = plan / torch.where(r > 0, r, 1.0).sqrt()[:, :, None]
            # + the balanced case's 1 1^T term: the constants are nearly a null direction
            # when eps/rho is small (curvature ~ eps/rho), where a Newton step would amplify
            # rounding (it stalled at an error of 1e-6 at eps/rho = 1e-9); the translation
            # taken after each step handles that direction exactly instead
            mat = (torch.diag_embed(c + (eps / rho) * tb) - lam * (q.transpose(1, 2) @ q)
                   + scale / m)
        mat = mat + eye * (1e-12 * scale)
        fac, info = torch.linalg.cholesky_ex(mat)
        rhs = ((tb - c) * eps)[..., None]
        if int(info.max()) == 0:
            d = torch.cholesky_solve(rhs, fac)[..., 0]
        else:  # numerically indefinite: least squares
            d = torch.linalg.lstsq(mat, rhs).solution[..., 0]
        g0 = semi_dual(f, g)
        slope = float(((tb - c) * d).sum())
        d = d.to(g.dtype)
        t, accepted = 1.0, False
        for _ in range(40):
            g_t = g + t * d
            f_t = update_f(g_t)
            if semi_dual(f_t, g_t) >= g0 + 1e-4 * t * slope:
                accepted = True
            else:
                c_t = _log_plan(cm, eps, f_t, g_t, loga, logb).to(dt).exp_().sum(1)
                accepted = (float(((c_t - target(g_t)).abs().sum(-1) / b.sum(-1)).max())
                            < 0.5 * err)
            if accepted:
                break
            t *= 0.5
        if not accepted:
            break
        f, g, steps = f_t, g_t, steps + 1
        if tau is not None:
            tau = tau + _translation(loga, logb, f + tau, g - tau, rho)
            f = update_f(g)
    return f, g, err, steps, tau


def _f_update(cost: Cost, eps: float, g, logb, rho: float | None, tau):
    """The ``f`` update from ``g`` (stored shifted by ``tau`` when not None): the soft-min,
    damped by ``lam``; with ``f = f~ + tau``, ``g = g~ - tau`` it reads
    ``f~ = lam softmin(g~) - (1 - lam) tau``."""
    lam = damping(eps, rho)
    f = cost.softmin(eps, g, logb, "x")
    if lam != 1.0:
        f.mul_(lam)
    if tau is not None:
        f.sub_(tau * _undamped(eps, rho))
    return f


def _translation(loga, logb, f, g, rho: float) -> torch.Tensor:
    """The best ``t`` for the pair ``(f + t, g - t)`` in the unbalanced dual, ``(B, 1)``:
    ``t = rho/2 log(<a, e^{-f/rho}> / <b, e^{-g/rho}>)`` (the entropic term does not depend
    on ``t``; the two marginal terms balance)."""
    return 0.5 * rho * (torch.logsumexp(loga - f / rho, -1, keepdim=True)
                        - torch.logsumexp(logb - g / rho, -1, keepdim=True))


def _iterate(cost: Cost, loga, logb, eps: float, g, tol: float, max_iter: int, omega: float,
             use_newton: bool, rho: float | None = None, tau: torch.Tensor | None = None):
    """Sinkhorn at one epsilon from ``g`` until the L1 marginal error is at most ``tol``;
    ``(f, g, error, iterations, newton steps, tau)``. ``rho``: unbalanced updates (damped),
    the potentials stored shifted by ``tau`` (see :func:`solve`)."""
    lam = damping(eps, rho)
    f = _f_update(cost, eps, g, logb, rho, tau)
    err, best, stalled, it, steps, history = math.inf, math.inf, 0, 0, 0, []
    while it < max_iter:
        it += 1
        g_new = cost.softmin(eps, f, loga, "y")
        err = _marginal_error(logb, g, g_new, eps, rho, None if tau is None else g - tau)
        if lam != 1.0:
            g_new.mul_(lam)
        if tau is not None:
            g_new.add_(tau * _undamped(eps, rho))
        if err <= tol or it == max_iter:
            return f, g_new, err, it, steps, tau
        if tau is not None:
            # The unbalanced updates leave (f + t, g - t) for last: that direction contracts
            # only by damping^2 per iteration (0.998 at epsilon/rho = 1e-3, thousands of
            # iterations), yet its best t has a closed form (the entropic term does not
            # depend on it): t = rho/2 log(<a, e^{-f/rho}> / <b, e^{-g/rho}>). Taking it
            # every iteration is Sejourne et al.'s translation-invariant Sinkhorn (2022).
            # It moves only the stored shift: the plan depends on f~ + g~ alone.
            tau = tau + _translation(loga, logb, f + tau, g_new - tau, rho)
        history.append(err)
        if use_newton and len(history) > NEWTON_WINDOW and err > 0.5 * history[-1 - NEWTON_WINDOW]:
            f2, g2, err2, k, tau = newton(cost, loga, logb, eps, g_new, tol, rho=rho, tau=tau)
            steps += k
            if err2 <= tol:
                return f2, g2, err2, it, steps, tau
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
        f_new = _f_update(cost, eps, g, logb, rho, tau)
        f = f_new if omega == 1.0 else torch.lerp(f, f_new, omega)
    return f, g, err, it, steps, tau


def solve(cost: Cost, loga: torch.Tensor, logb: torch.Tensor, epsilon: float,
          schedule: list[float], tol: float, max_iter: int,
          omega: float | None = None, newton_steps: bool | None = None,
          rho: float | None = None) -> Result:
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

    ``rho`` (not ``None``): unbalanced transport, KL penalties of strength ``rho`` on both
    marginals; the updates are damped (:func:`damping`), the error is that of the
    marginals' optimality condition (:func:`_marginal_error`), and each iteration also takes
    the best translation ``(f + t, g - t)`` in closed form (see :func:`_iterate`). The
    potentials are then stored as ``f~ = f - tau``, ``g~ = g + tau`` with the accumulated
    translation ``tau`` (``Result.tau``) kept apart: with measures of different mass the
    optimum has ``f ~ -g ~ rho/2 log(m(a)/m(b))`` (1e5 at rho = 1e6 and masses 100 and 150),
    and the plan's exponent ``(f + g - C)/eps`` would lose ``|f|/eps`` ulps to cancellation
    (it stalled at an error of 2e-6); ``f~ + g~`` carries no such offset.
    """
    omega = OVERRELAXATION if omega is None else float(omega)
    use_newton = _newton_ok(cost) if newton_steps is None else bool(newton_steps)
    with torch.no_grad():
        g = torch.zeros_like(logb)
        tau = None if rho is None else g.new_zeros((g.shape[0], 1))
        steps = 0
        for eps in schedule[:-1]:
            _, g, _, _, k, tau = _iterate(cost, loga, logb, eps, g, stage_tol(tol, use_newton),
                                          STAGE_MAX_ITER, omega, use_newton, rho, tau)
            steps += k
        f, g, err, it, k, tau = _iterate(cost, loga, logb, epsilon, g, tol, max_iter, omega,
                                         use_newton, rho, tau)
        return Result(f, g, err, it, err <= tol, steps + k, tau)


def solve_symmetric(cost: Cost, loga: torch.Tensor, epsilon: float, schedule: list[float],
                    tol: float, max_iter: int, rho: float | None = None) -> Result:
    """The self-transport problem ``OT_eps(a, a)``: averaged updates ``f <- (f + T f) / 2``.

    Its optimal potentials are equal (``f = g``), so one potential suffices. The error is the
    L1 distance between the row sums of the symmetric plan and ``a`` (with ``rho``: of the
    unbalanced optimality condition, ``T`` damped as in :func:`solve`).
    """
    with torch.no_grad():
        f = torch.zeros_like(loga)
        for eps in schedule[:-1]:
            f = 0.5 * (f + damping(eps, rho) * cost.softmin(eps, f, loga, "x"))
        lam = damping(epsilon, rho)
        err, it = math.inf, 0
        while it < max_iter:
            it += 1
            ft = cost.softmin(epsilon, f, loga, "x")
            err = _marginal_error(loga, f, ft, epsilon, rho)
            if err <= tol:
                break
            f = 0.5 * (f + lam * ft)
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


def _dual_value(a, b, f, g, eps: float | None = None, rho: float | None = None) -> torch.Tensor:
    """The dual objective at the potentials ``f``, ``g``, zero weights contributing nothing.

    Balanced: ``<a, f> + <b, g>`` (a zero weight's potential may be inf). Unbalanced (KL
    penalties ``rho``, generalised KLs with their mass terms):

    ``rho <a, 1 - e^{-f/rho}> + rho <b, 1 - e^{-g/rho}> - eps (m(P) - m(a) m(b))``

    with the plan's mass ``m(P) = <a, e^{-f/rho}> = <b, e^{-g/rho}>`` at the optimum (taken as
    the mean of the two), written with ``expm1`` so that large ``rho`` loses nothing.
    """
    if rho is None:
        return torch.where(a > 0, a * f, 0.0).sum(-1) + torch.where(b > 0, b * g, 0.0).sum(-1)
    ea = torch.where(a > 0, a * torch.expm1(-f / rho), 0.0).sum(-1)
    eb = torch.where(b > 0, b * torch.expm1(-g / rho), 0.0).sum(-1)
    ma, mb = a.sum(-1), b.sum(-1)
    return -(rho + 0.5 * eps) * (ea + eb) - eps * (0.5 * (ma + mb) - ma * mb)


def _weight_gradients(a, b, f, g, eps: float, rho: float | None):
    """``dOT/da``, ``dOT/db`` at the optimum: ``f``, ``g`` when balanced; unbalanced,
    ``rho (1 - e^{-f/rho}) - eps e^{-f/rho} + eps m(b)`` (and the same for ``b``)."""
    if rho is None:
        return f, g
    ma, mb = a.sum(-1, keepdim=True), b.sum(-1, keepdim=True)
    ga = -(rho + eps) * torch.expm1(-f / rho) - eps + eps * mb
    gb = -(rho + eps) * torch.expm1(-g / rho) - eps + eps * ma
    return ga, gb


class EnvelopeValue(torch.autograd.Function):
    """``<a, f> + <b, g>`` with envelope-theorem gradients.

    Inputs ``x``, ``y``, ``a``, ``b`` may require grad; ``f``, ``g`` are the converged
    potentials (constants). Backward: ``a -> f``, ``b -> g``, and the plan
    ``P_ij = a_i b_j exp((f_i + g_j - C_ij)/eps)`` contracted with the cost gradient for the
    points. ``ctx_cost`` is a :class:`Cost` built on centred copies of the points (the cost,
    hence the gradient, is translation invariant).
    """

    @staticmethod
    def forward(ctx, x, y, a, b, f, g, loga, logb, eps, cost, rho=None, tau=None):
        ft, gt = (f, g) if tau is None else (f + tau, g - tau)
        ctx.save_for_backward(f, g, loga, logb, a.detach(), b.detach(), ft, gt)
        ctx.eps, ctx.cost, ctx.rho = eps, cost, rho
        return _dual_value(a, b, ft, gt, eps, rho)

    @staticmethod
    def backward(ctx, grad):
        f, g, loga, logb, a, b, ft, gt = ctx.saved_tensors
        need = ctx.needs_input_grad
        gx = gy = ga = gb = None
        cost, eps = ctx.cost, ctx.eps
        if need[0]:
            gx = grad[:, None, None] * _cost_gradient(cost, eps, f, g, loga, logb, "x")
        if need[1]:
            gy = grad[:, None, None] * _cost_gradient(cost, eps, f, g, loga, logb, "y")
        if need[2] or need[3]:
            da, db = _weight_gradients(a, b, ft, gt, eps, ctx.rho)
            ga = grad[:, None] * da if need[2] else None
            gb = grad[:, None] * db if need[3] else None
        return gx, gy, ga, gb, None, None, None, None, None, None, None, None


class EnvelopeMatrix(torch.autograd.Function):
    """``<a, f> + <b, g>`` for a given cost matrix, with envelope-theorem gradients:
    ``a -> f``, ``b -> g`` and the cost to the plan ``P``."""

    @staticmethod
    def forward(ctx, c, a, b, f, g, loga, logb, eps, cost, rho=None, tau=None):
        ft, gt = (f, g) if tau is None else (f + tau, g - tau)
        ctx.save_for_backward(f, g, loga, logb, a.detach(), b.detach(), ft, gt)
        ctx.eps, ctx.cost, ctx.rho = eps, cost, rho
        return _dual_value(a, b, ft, gt, eps, rho)

    @staticmethod
    def backward(ctx, grad):
        f, g, loga, logb, a, b, ft, gt = ctx.saved_tensors
        need = ctx.needs_input_grad
        gc = ga = gb = None
        if need[0]:
            gc = grad[:, None, None] * plan(ctx.cost, ctx.eps, f, g, loga, logb)
        if need[1] or need[2]:
            da, db = _weight_gradients(a, b, ft, gt, ctx.eps, ctx.rho)
            ga = grad[:, None] * da if need[1] else None
            gb = grad[:, None] * db if need[2] else None
        return gc, ga, gb, None, None, None, None, None, None, None, None


def plan(cost: Cost, eps: float, f, g, loga, logb) -> torch.Tensor:
    """The dense plan ``(B, n, m)``."""
    out = torch.empty(cost.x.shape[0], cost.x.shape[1], cost.y.shape[1],
                      dtype=f.dtype, device=f.device)
    for s, e, logp in cost.log_plan_blocks(eps, f, g, loga, logb, "x"):
        out[:, s:e] = logp.exp_()
    return out
