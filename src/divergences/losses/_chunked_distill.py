"""Token-chunked loss with the gradient computed during the forward pass.

A distillation loss over a vocabulary of V entries needs, per token, two log-softmaxes, the
divergence terms and their derivatives: several float32 temporaries of N x V each when done
whole. Here the tokens are processed ``chunk`` rows at a time. For each chunk, the per-token
values and their gradient with respect to the student logits (and, when asked, the teacher's)
are computed together in float32: in closed form when the row function offers it
(``fn.values_and_grads``; the dense distillation rows do, from the registry's
:meth:`~divergences.fdiv.FDivergence.terms_and_partial`), otherwise by ``torch.autograd.grad``
on the chunk (:func:`torch.func.vjp` under ``torch.compile``); only the per-token values
(O(N)) and the
gradient (the one unavoidable N x V tensor) are kept. The stored-gradient rules (dtype,
masking, backward, double backward) are :mod:`divergences._stored_grad`'s; the distillation
gradient itself, ``c (a - q S) / T + h (softmax - onehot)``, has its one home here
(:func:`soft_grad_`, :func:`hard_grad_`, :func:`sub_onehot_`), shared with the fused-linear
and vocabulary-parallel paths.

The chunk loop has no data-dependent control flow and, off the CPU, no host synchronisation
(on CPU tensors, where reading a value back costs nothing, the closed form looks once per
chunk for zero mass to skip its masking), so the whole
thing traces under ``torch.compile(fullgraph=True)`` (the loop is unrolled: compile time grows
with ``N / chunk``).

The divergence terms come from the registry (:func:`divergences.fdiv.evaluate` with
``sync=False``: no data-dependent branch, so no graph break).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .. import _stored_grad, fdiv

# Rows per chunk. A chunk's closed-form gradient needs about 8 temporaries of chunk x V in the
# compute dtype (the autograd fallback, for members without closed-form partials, about 26).
#
# On the CPU the default is ceil(N / 256) rows, so the temporaries stay near 0.03 x N*V*4
# bytes beside the gradient itself (1.0): measured extra peak resident memory 1.026 x N*V*4
# bytes at (N, V) = (2048, 32000), float32, "js" (1.12 with autograd). The chunk stays between
# 2**16 elements (below that the per-chunk overhead dominates; the absolute memory is a few
# MiB) and 2**20 elements (about 4 MiB per temporary: larger chunks leave the cache; fwd+bwd
# at (2048, 32000) "js", best of 3 on a busy machine: 0.43-0.49 s with 8 to 32 rows, 0.74 s
# with 128).
#
# On an accelerator every operation is a kernel launch (about 140 per chunk), so the chunk is
# sized from a memory budget in bytes instead: 1/8 of the device's free memory (the caching
# allocator's idle blocks included), between 64 MiB and 1 GiB. At 1 GiB a temporary holds
# 32M float32 entries, tens of microseconds of memory traffic per operation against a few
# of launch overhead; at (2048, 128256) that is 8 chunks where the CPU rule gives 256.
CHUNK_FRACTION = 256
MIN_CHUNK_ELEMENTS = 1 << 16
MAX_CHUNK_ELEMENTS = 1 << 20
CLOSED_FORM_TEMPS = 8
AUTOGRAD_TEMPS = 26
ACCEL_FREE_FRACTION = 8
MIN_ACCEL_BUDGET = 64 << 20
MAX_ACCEL_BUDGET = 1 << 30
# Devices whose free memory is not asked (and every device under torch.compile, where the
# chunk count is baked into the graph and must not follow the allocator's state).
FIXED_ACCEL_BUDGET = 512 << 20

RowFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def accelerator_budget(free_bytes: int) -> int:
    """Default chunk budget in bytes for a device with ``free_bytes`` of free memory:
    ``free_bytes / 8`` clamped to ``[64 MiB, 1 GiB]``.

    >>> accelerator_budget(100 << 30) == 1 << 30
    True
    >>> accelerator_budget(1 << 30) // (1 << 20)
    128
    """
    return int(min(max(free_bytes // ACCEL_FREE_FRACTION, MIN_ACCEL_BUDGET), MAX_ACCEL_BUDGET))


def default_budget(device: torch.device | str | None) -> int | None:
    """Default bytes for one chunk's temporaries on ``device``; ``None`` on the CPU, whose
    default is the row rule of :func:`auto_chunk` (cache-sized chunks).

    CUDA: :func:`accelerator_budget` of the free memory (``torch.cuda.mem_get_info``, a driver
    query, not a stream synchronisation) plus the caching allocator's reserved but unused
    bytes; under ``torch.compile``, and on other accelerators, a fixed 512 MiB.
    """
    dev = torch.device("cpu" if device is None else device)
    if dev.type == "cpu":
        return None
    if dev.type != "cuda" or torch.compiler.is_compiling():
        return FIXED_ACCEL_BUDGET
    free, _ = torch.cuda.mem_get_info(dev)
    idle = torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
    return accelerator_budget(free + max(idle, 0))


def rows_for_budget(n: int, row_bytes: int, budget: int) -> int:
    """Rows whose temporaries (``row_bytes`` each) fit in ``budget`` bytes: in ``[1, n]``.

    >>> rows_for_budget(2048, 8 * 4 * 128256, 1 << 30)
    261
    """
    return max(1, min(n, budget // max(1, row_bytes)))


def auto_chunk(n: int, v: int, budget: int | None = None, *, temps: int = CLOSED_FORM_TEMPS,
               itemsize: int = 4) -> int:
    """Rows per chunk of ``n`` rows of ``v`` entries.

    Without ``budget`` (the CPU default): ``ceil(n / 256)`` clamped to
    ``[2**16 // v, 2**20 // v]`` and ``[1, n]``. With ``budget`` (bytes for the chunk's
    temporaries: ``temps`` tensors of ``chunk x v`` entries of ``itemsize`` bytes):
    :func:`rows_for_budget`. At ``(2048, 128256)`` the CPU rule gives 8 rows (256 chunks); a
    1 GiB budget 261 rows (8 chunks).

    >>> auto_chunk(2048, 128256), auto_chunk(2048, 128256, budget=1 << 30)
    (8, 261)
    """
    v = max(v, 1)
    if budget is not None:
        return rows_for_budget(n, temps * itemsize * v, budget)
    lo = max(1, MIN_CHUNK_ELEMENTS // v)
    hi = max(1, MAX_CHUNK_ELEMENTS // v)
    rows = min(max(-(-n // CHUNK_FRACTION), lo), hi)
    return max(1, min(rows, n))


def check_chunk_bytes(chunk_bytes: int | None) -> int | None:
    """``chunk_bytes`` as given: ``None`` or a positive int (bytes)."""
    if chunk_bytes is not None and (
        isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1
    ):
        raise ValueError(f"chunk_bytes must be a positive int (bytes) or None; got "
                         f"{chunk_bytes!r}")
    return chunk_bytes


def pick_chunk(n: int, v: int, device: torch.device, chunk_size: int | None,
               chunk_bytes: int | None, *, temps: int = CLOSED_FORM_TEMPS,
               itemsize: int = 4) -> int:
    """Rows per chunk for a loss call: ``chunk_size`` when given, else from ``chunk_bytes``
    (or the device's :func:`default_budget`) through :func:`auto_chunk`."""
    if chunk_size is not None:
        return chunk_size
    budget = chunk_bytes if chunk_bytes is not None else default_budget(device)
    return auto_chunk(n, v, budget, temps=temps, itemsize=itemsize)


def evaluate(fd: fdiv.FDivergence, lp: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
    """``fdiv.evaluate(fd, lp, lq, sync=False, precise=False)``: the registry's terms summed
    over the last axis, clamped at 0, with no host synchronisation (traces under
    ``torch.compile``), without the near-diagonal series (a loss's value does not need the
    last ulps of a term near 0; the gradient path's values are of the same precision)."""
    return fdiv.evaluate(fd, lp, lq, sync=False, precise=False)


# --------------------------------------------------------------------------------------------
# The distillation gradient: its one home (dense, fused-linear and vocab-parallel paths)
# --------------------------------------------------------------------------------------------


def soft_grad_(a: torch.Tensor, q: torch.Tensor, s_sum: torch.Tensor,
               c: torch.Tensor) -> torch.Tensor:
    r"""``c (a - q S)``, in place in ``a``: the soft part of the gradient wrt the logits.

    With ``a = d terms / d log q`` (:meth:`~divergences.fdiv.FDivergence.terms_and_partial`),
    ``q`` the student's probabilities at temperature ``T`` and ``S = sum_v a_v`` (over the
    whole vocabulary: the ``- q S`` is the derivative of the log-normaliser), the derivative
    of ``D`` with respect to the logits is ``(a - q S) / T``; ``c`` carries ``w / T`` per
    row (the loss weight, the reduction's weight, 0 where the registry clamped ``D`` at 0).
    The teacher's is the same with ``b = terms - a`` (:func:`teacher_partial`) and ``p``.
    ``s_sum`` and ``c`` broadcast against ``a`` (a column per row, or a row per column for
    vocabulary-major tiles).
    """
    return a.addcmul_(q, s_sum, value=-1.0).mul_(c)


def teacher_partial(terms: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``d terms / d log p = terms - a`` (1-homogeneity), 0 where a term is infinite."""
    zero = torch.zeros((), dtype=terms.dtype, device=terms.device)
    return torch.where(torch.isfinite(terms), terms - a, zero)


def hard_grad_(g: torch.Tensor, q1: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Adds ``c softmax(z)`` (the cross-entropy's softmax part, ``q1`` at temperature 1) to
    ``g`` in place; :func:`sub_onehot_` adds the ``- c onehot(label)`` part."""
    return g.addcmul_(q1, c)


def sub_onehot_(g: torch.Tensor, labels: torch.Tensor, c: torch.Tensor, dim: int = -1):
    """Subtracts ``c`` at each row's label (``labels`` one per row along the other axis)."""
    return g.scatter_add_(dim, labels.unsqueeze(dim), (-c).reshape(labels.unsqueeze(dim).shape))


def nan_rows(values: torch.Tensor, *logs: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``values`` with NaN in each row where one of ``logs`` has a NaN in its first entry.

    A normalised log-probability row (``log_softmax``, ``z - logsumexp(z)``) is NaN
    everywhere as soon as one logit is NaN, so the first entry tells; ``logs`` of the
    values' shape (one log-normaliser per row) are read as they are. The divergence must not read a NaN as zero
    mass: a NaN input gives a NaN loss.
    """
    bad = None
    for x in logs:
        first = x.select(dim, 0) if x.ndim == values.ndim + 1 else x
        b = torch.isnan(first)
        bad = b if bad is None else bad | b
    if bad is None:
        return values
    return torch.where(bad, torch.full((), torch.nan, dtype=values.dtype,
                                       device=values.device), values)


def row_coef(w: float, row_weight: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """``w`` times the per-row weight (or ``w`` on every row): a (c,) tensor like ``like``."""
    if row_weight is None:
        return torch.full(like.shape, w, dtype=like.dtype, device=like.device)
    return row_weight.to(like.dtype) * w


# --------------------------------------------------------------------------------------------
# The chunk kernel
# --------------------------------------------------------------------------------------------


def chunk_values_and_grads(
    fn: RowFn,
    student: torch.Tensor,
    others: Sequence[torch.Tensor],
    diff: Sequence[bool],
    keep: torch.Tensor,
    w_soft: float,
    w_hard: float,
    need_student_grad: bool = True,
    row_weight: torch.Tensor | None = None,
    out: Sequence[torch.Tensor | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
    """Values and gradients of one chunk.

    ``fn(student_f32, *others) -> (soft, hard)`` maps a chunk of rows to two per-row values;
    the per-row loss is ``w_soft * soft + w_hard * hard``, zero where ``keep`` is false.
    Returns ``(total, soft, hard, grads)`` with ``grads[0]`` the gradient of the chunk's
    ``sum(row_weight * total)`` (``row_weight`` ones when ``None``) with respect to
    ``student`` and ``grads[1 + i]`` that for ``others[i]`` when ``diff[i]`` (zero rows
    where ``keep`` is false, by selection; ``None`` where not asked for). They are written
    into ``out[...]`` (aligned with ``grads``) when given, else returned in float32 (float64
    for float64 inputs).
    """
    s32 = student.to(torch.float32) if student.dtype != torch.float64 else student
    diff_idx = [i for i, d in enumerate(diff) if d]
    primals = [s32] + [
        others[i].to(torch.float32) if others[i].dtype != torch.float64 else others[i]
        for i in diff_idx
    ]

    def combined(*prim: torch.Tensor):
        args = list(others)
        for j, i in enumerate(diff_idx):
            args[i] = prim[1 + j]
        soft, hard = fn(prim[0], *args)
        total = soft * w_soft + hard * w_hard if w_hard != 0.0 else soft * w_soft
        return total, (soft, hard)

    closed_form = getattr(fn, "values_and_grads", None)
    grads: list[torch.Tensor | None] = [None] * (1 + len(others))
    if not need_student_grad and not diff_idx:
        total, (soft, hard) = combined(*primals)
    else:
        if closed_form is not None:
            # The row function knows its own gradient: no autograd graph, a handful of
            # temporaries instead of about 26.
            args = [primals[1 + diff_idx.index(i)] if i in diff_idx else o
                    for i, o in enumerate(others)]
            total, soft, hard, raw = closed_form(s32, args, w_soft, w_hard, need_student_grad,
                                                 diff_idx, row_weight)
        else:
            total, soft, hard, raw = _vjp(combined, primals, row_weight)
        slots = ([0] if need_student_grad else []) + [1 + i for i in diff_idx]
        for k in slots:
            r = raw[0] if k == 0 else raw[1 + diff_idx.index(k - 1)]
            grads[k] = _stored_grad.select_rows(keep, r, out=None if out is None else out[k])
    zero_v = torch.zeros((), dtype=total.dtype, device=total.device)
    return (
        torch.where(keep, total, zero_v),
        torch.where(keep, soft, zero_v),
        torch.where(keep, hard, zero_v),
        grads,
    )


def _vjp(combined, primals, row_weight):
    """Values and the vector-Jacobian product with the row weights (ones without):
    ``torch.autograd.grad`` in eager mode (cheap, and no import of the compiler stack),
    ``torch.func.vjp`` under ``torch.compile`` (which traces it without a graph break)."""
    if torch.compiler.is_compiling():
        total, vjp_fn, (soft, hard) = torch.func.vjp(combined, *primals, has_aux=True)
        return total, soft, hard, vjp_fn(_cotangent(total, row_weight))
    with torch.enable_grad():
        prim = [p.detach().requires_grad_() for p in primals]
        total, (soft, hard) = combined(*prim)
        raw = torch.autograd.grad(total, prim, _cotangent(total, row_weight),
                                  allow_unused=True, materialize_grads=True)
    return total.detach(), soft.detach(), hard.detach(), raw


def _cotangent(total: torch.Tensor, row_weight: torch.Tensor | None) -> torch.Tensor:
    return torch.ones_like(total) if row_weight is None else row_weight.to(total.dtype)


@dataclass(frozen=True)
class ChunkPlan:
    """What stays fixed over the chunks of one :func:`chunked_loss` call.

    ``others`` are the row-aligned non-differentiable arguments of ``fn`` (flattened to
    ``N`` rows); ``diff_at`` the positions, among ``fn``'s arguments after the student,
    of the differentiable ones, which are the kernel's inputs after the student.
    """

    fn: RowFn
    chunk: int
    w_soft: float
    w_hard: float
    keep: torch.Tensor
    weights: torch.Tensor | None
    others: tuple[torch.Tensor | None, ...]
    diff_at: tuple[int, ...]

    def args(self, diff_inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        n = self.keep.shape[0]
        args = list(self.others)
        for i, x in zip(self.diff_at, diff_inputs):
            args[i] = x.reshape(n, -1)
        return args

    def forward(self, needs, student, *diff_inputs):
        n = self.keep.shape[0]
        s2 = student.reshape(n, -1)
        others = self.args(diff_inputs)
        diff = [False] * len(others)
        for i, need in zip(self.diff_at, needs[1:]):
            diff[i] = need
        need_s = needs[0]
        dt = _stored_grad.compute_dtype(student)
        total = s2.new_empty(n, dtype=dt)
        soft = s2.new_empty(n, dtype=dt)
        hard = s2.new_empty(n, dtype=dt)
        g_s = _stored_grad.new_grad(student) if need_s else None
        g_o = [_stored_grad.new_grad(x) if need else None
               for x, need in zip(diff_inputs, needs[1:])]
        bufs: list[torch.Tensor | None] = [None if g_s is None else g_s.view(n, -1)]
        bufs += [None] * len(others)
        for i, g in zip(self.diff_at, g_o):
            bufs[1 + i] = None if g is None else g.view(n, -1)
        for s in range(0, n, self.chunk):
            e = min(n, s + self.chunk)
            # With weights, the reduction's weight is folded into each row's gradient before
            # its one rounding to the stored dtype: the backward pass multiplies by the
            # upstream gradient only.
            t_c, s_c, h_c, _ = chunk_values_and_grads(
                self.fn, s2[s:e], [o[s:e] for o in others], diff, self.keep[s:e],
                self.w_soft, self.w_hard, need_student_grad=need_s,
                row_weight=None if self.weights is None else self.weights[s:e],
                out=[None if b is None else b[s:e] for b in bufs],
            )
            total[s:e] = t_c
            soft[s:e] = s_c
            hard[s:e] = h_c
        out = total if self.weights is None else (total * self.weights.to(dt)).sum()
        return out, (soft, hard), [g_s, *g_o]

    def reference(self, student, *diff_inputs):
        """The same output from plain differentiable torch operations (double backward)."""
        n = self.keep.shape[0]
        others = self.args([_compute(x) for x in diff_inputs])
        soft, hard = self.fn(_compute(student.reshape(n, -1)), *others)
        total = soft * self.w_soft + hard * self.w_hard
        total = torch.where(self.keep, total, torch.zeros((), dtype=total.dtype,
                                                          device=total.device))
        return total if self.weights is None else (total * self.weights.to(total.dtype)).sum()


def _compute(x: torch.Tensor) -> torch.Tensor:
    return x.to(_stored_grad.compute_dtype(x))


def chunked_loss(
    fn: RowFn,
    student: torch.Tensor,
    others: Sequence[torch.Tensor],
    diff: Sequence[bool],
    keep: torch.Tensor,
    *,
    w_soft: float,
    w_hard: float,
    chunk: int,
    weights: torch.Tensor | None = None,
    name: str = "a chunked distillation loss",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(out, soft, hard)`` for ``student`` (..., V) with ``N`` rows and row-aligned
    ``others`` (each ``(N, ...)``, or with ``diff[i]`` any shape with ``N`` rows).

    Per row, ``total = w_soft * soft + w_hard * hard`` (zero where ``keep`` is false);
    ``out`` is ``total`` (N,) or, given ``weights`` (N,), the scalar ``sum(weights * total)``.
    ``out`` is differentiable with respect to ``student`` and each ``others[i]`` with
    ``diff[i]``, through :mod:`divergences._stored_grad` (pass the caller's own tensors, not
    reshaped copies: a second backward pass and double backward find them there); ``soft``
    and ``hard`` (per row) are values only.
    """
    diff_at = tuple(i for i, d in enumerate(diff) if d)
    plan = ChunkPlan(
        fn=fn, chunk=chunk, w_soft=w_soft, w_hard=w_hard, keep=keep, weights=weights,
        others=tuple(None if d else o for o, d in zip(others, diff)), diff_at=diff_at,
    )
    kernel = _stored_grad.Kernel(name, plan.forward, reference=plan.reference,
                                 per_row=weights is None)
    out, soft, hard = _stored_grad.apply(kernel, student, *(others[i] for i in diff_at))
    return out, soft, hard
