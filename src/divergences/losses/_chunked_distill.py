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
and vocabulary-parallel paths, and so has the student's entropy (:func:`entropy`), formed from
the probabilities that the chunk already holds.

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

# ``fn(student, *others) -> (soft, hard, *stats)``: the two parts of the per-row loss, then
# per-row statistics that are values only (the student's entropy), carried beside them.
RowFn = Callable[..., tuple[torch.Tensor, ...]]


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
    """:func:`fdiv.evaluate`: the registry's terms summed over the last axis, clamped at 0.

    On CPU tensors (where a host read costs nothing) as the exact measures do: one look per
    chunk for zero mass, the cheap checked row form for members that have one (``kl``,
    ``js``), the unmasked terms otherwise. Elsewhere, and under ``torch.compile``, no host
    synchronisation: the masked terms without the near-diagonal series (a loss's value does
    not need the last ulps of a term near 0; the gradient path's values are of the same
    precision). Always masking made the forward without a gradient slower than with one: JS
    at (512, 32000) float32 took 490 ms against 122 ms (KL 148 against 116)."""
    sync = _stored_grad.host_reads_free(lq)
    return fdiv.evaluate(fd, lp, lq, sync=sync, precise=sync and fd.row_sum is not None)


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


def plogp_sum(p: torch.Tensor, log_p: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""``sum p log p`` over ``dim`` from ``p`` and its log (no logarithm evaluated), with
    ``0 log 0 = 0``.

    An entry with ``log_p = -inf`` has ``p = exp(-inf) = 0`` exactly, so its product is
    ``0 * -inf = NaN``, which the NaN-skipping sum reads as the 0 of the convention (no mask
    before the product: about the cost of a plain sum). A NaN input reads as 0 too: callers
    mark NaN rows afterwards with :func:`nan_rows`.
    """
    return (p * log_p).nansum(dim)


def entropy(plogp: torch.Tensor, log_z: torch.Tensor | None = None,
            z: torch.Tensor | None = None) -> torch.Tensor:
    r"""Shannon entropy :math:`H = -\sum_v q_v \log q_v` (nats) of :math:`q = e / Z`,
    :math:`Z = \sum_v e_v`, from ``plogp`` :math:`= \sum_v e_v \log e_v` (:func:`plogp_sum`):
    :math:`H = \log Z - \frac{1}{Z} \sum_v e_v \log e_v`; for normalised ``e = q`` (``log_z``
    and ``z`` ``None``) :math:`H = -\sum_v q_v \log q_v`.

    The one formula of the student entropy (dense, chunked and fused-linear paths). With
    ``e`` the exponentials shifted by the row maximum (``log e <= 0``, so ``Z >= 1``) both
    terms are non-negative: nothing cancels, so logits of size ``1e4`` lose no digits
    (``log Z - sum q z`` in the raw logits would keep only about ``1e4 * eps``). The result is
    clamped at 0 (``log Z`` rounded can leave an ulp below it) and is ``+0.0``, never
    ``-0.0``, for a one-hot distribution.
    """
    h = 0.0 - plogp if z is None else log_z - plogp / z
    return h.clamp_min(0.0)


def row_entropy(q: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
    """Per-row :func:`entropy` of normalised probabilities ``q`` and their logs ``lq`` (last
    axis), NaN where a row has a NaN.

    A product ``q lq`` is NaN where an entry is ``-inf`` (zero mass) or NaN. On CPU tensors,
    where a host read costs nothing, the rows are first summed plainly, and only when one
    comes out NaN are they summed again with the convention (:func:`plogp_sum`) and NaN rows
    marked (:func:`nan_rows`). Elsewhere, and under ``torch.compile``, the careful form
    always (no synchronisation).
    """
    # The CPU runs a few rows per chunk, where each small operation costs microseconds: in
    # the loss's forward at (512, 32000) float32, 2-row chunks, single thread, the plain sum
    # took 6.9 ms in all, the careful form 13.4 ms and torch.linalg.vecdot 11.2 ms, of about
    # 275 ms (busy shared machine, best of 15).
    if _stored_grad.host_reads_free(lq):
        plogp = (q * lq).sum(-1)
        if not bool(torch.isnan(plogp).any()):
            return entropy(plogp)
    return nan_rows(entropy(plogp_sum(q, lq)), lq)


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
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], list[torch.Tensor | None]]:
    """Values and gradients of one chunk.

    ``fn(student_f32, *others) -> (soft, hard, *stats)`` maps a chunk of rows to per-row
    values; the per-row loss is ``w_soft * soft + w_hard * hard``, zero where ``keep`` is
    false; ``stats`` (the student's entropy, say) are values only, no gradient. A row
    function may also offer ``fn.values_and_grads(...) -> (total, values, grads)``, the same
    values with their gradients in closed form. Returns ``(total, values, grads)`` with
    ``values = (soft, hard, *stats)`` (each zero where ``keep`` is false) and ``grads[0]``
    the gradient of the chunk's ``sum(row_weight * total)`` (``row_weight`` ones when
    ``None``) with respect to ``student`` and ``grads[1 + i]`` that for ``others[i]`` when
    ``diff[i]`` (zero rows where ``keep`` is false, by selection; ``None`` where not asked
    for). They are written into ``out[...]`` (aligned with ``grads``) when given, else
    returned in float32 (float64 for float64 inputs).
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
        values = tuple(fn(prim[0], *args))
        soft, hard = values[0], values[1]
        total = soft * w_soft + hard * w_hard if w_hard != 0.0 else soft * w_soft
        return total, values

    closed_form = getattr(fn, "values_and_grads", None)
    grads: list[torch.Tensor | None] = [None] * (1 + len(others))
    if not need_student_grad and not diff_idx:
        total, values = combined(*primals)
    else:
        if closed_form is not None:
            # The row function knows its own gradient: no autograd graph, a handful of
            # temporaries instead of about 26.
            args = [primals[1 + diff_idx.index(i)] if i in diff_idx else o
                    for i, o in enumerate(others)]
            total, values, raw = closed_form(s32, args, w_soft, w_hard, need_student_grad,
                                             diff_idx, row_weight)
        else:
            total, values, raw = _vjp(combined, primals, row_weight)
        slots = ([0] if need_student_grad else []) + [1 + i for i in diff_idx]
        for k in slots:
            r = raw[0] if k == 0 else raw[1 + diff_idx.index(k - 1)]
            grads[k] = _stored_grad.select_rows(keep, r, out=None if out is None else out[k])
    zero_v = torch.zeros((), dtype=total.dtype, device=total.device)
    return (
        torch.where(keep, total, zero_v),
        tuple(torch.where(keep, x, zero_v) for x in values),
        grads,
    )


def _vjp(combined, primals, row_weight):
    """Values and the vector-Jacobian product with the row weights (ones without):
    ``torch.autograd.grad`` in eager mode (cheap, and no import of the compiler stack),
    ``torch.func.vjp`` under ``torch.compile`` (which traces it without a graph break)."""
    if torch.compiler.is_compiling():
        total, vjp_fn, values = torch.func.vjp(combined, *primals, has_aux=True)
        return total, values, vjp_fn(_cotangent(total, row_weight))
    with torch.enable_grad():
        prim = [p.detach().requires_grad_() for p in primals]
        total, values = combined(*prim)
        raw = torch.autograd.grad(total, prim, _cotangent(total, row_weight),
                                  allow_unused=True, materialize_grads=True)
    return total.detach(), tuple(x.detach() for x in values), raw


def _cotangent(total: torch.Tensor, row_weight: torch.Tensor | None) -> torch.Tensor:
    return torch.ones_like(total) if row_weight is None else row_weight.to(total.dtype)


@dataclass(frozen=True)
class ChunkPlan:
    """What stays fixed over the chunks of one :func:`chunked_loss` call.

    ``others`` are the row-aligned non-differentiable arguments of ``fn`` (flattened to
    ``N`` rows); ``diff_at`` the positions, among ``fn``'s arguments after the student,
    of the differentiable ones, which are the kernel's inputs after the student; ``stats``
    how many per-row statistics ``fn`` returns after ``(soft, hard)``.
    """

    fn: RowFn
    chunk: int
    w_soft: float
    w_hard: float
    keep: torch.Tensor
    weights: torch.Tensor | None
    others: tuple[torch.Tensor | None, ...]
    diff_at: tuple[int, ...]
    stats: int = 0

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
        values = [s2.new_empty(n, dtype=dt) for _ in range(2 + self.stats)]
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
            t_c, v_c, _ = chunk_values_and_grads(
                self.fn, s2[s:e], [o[s:e] for o in others], diff, self.keep[s:e],
                self.w_soft, self.w_hard, need_student_grad=need_s,
                row_weight=None if self.weights is None else self.weights[s:e],
                out=[None if b is None else b[s:e] for b in bufs],
            )
            total[s:e] = t_c
            for buf, x in zip(values, v_c, strict=True):
                buf[s:e] = x
        out = total if self.weights is None else (total * self.weights.to(dt)).sum()
        return out, tuple(values), [g_s, *g_o]

    def reference(self, student, *diff_inputs):
        """The same output from plain differentiable torch operations (double backward)."""
        n = self.keep.shape[0]
        others = self.args([_compute(x) for x in diff_inputs])
        soft, hard = self.fn(_compute(student.reshape(n, -1)), *others)[:2]
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
    stats: int = 0,
) -> tuple[torch.Tensor, ...]:
    """``(out, soft, hard, *stats)`` for ``student`` (..., V) with ``N`` rows and row-aligned
    ``others`` (each ``(N, ...)``, or with ``diff[i]`` any shape with ``N`` rows).

    Per row, ``total = w_soft * soft + w_hard * hard`` (zero where ``keep`` is false);
    ``out`` is ``total`` (N,) or, given ``weights`` (N,), the scalar ``sum(weights * total)``.
    ``out`` is differentiable with respect to ``student`` and each ``others[i]`` with
    ``diff[i]``, through :mod:`divergences._stored_grad` (pass the caller's own tensors, not
    reshaped copies: a second backward pass and double backward find them there); ``soft``
    and ``hard`` (per row) are values only, as are the ``stats`` per-row statistics that
    ``fn`` returns after them (zero where ``keep`` is false, like ``soft`` and ``hard``).
    """
    diff_at = tuple(i for i, d in enumerate(diff) if d)
    plan = ChunkPlan(
        fn=fn, chunk=chunk, w_soft=w_soft, w_hard=w_hard, keep=keep, weights=weights,
        others=tuple(None if d else o for o, d in zip(others, diff)), diff_at=diff_at,
        stats=stats,
    )
    kernel = _stored_grad.Kernel(name, plan.forward, reference=plan.reference,
                                 per_row=weights is None)
    return _stored_grad.apply(kernel, student, *(others[i] for i in diff_at))
