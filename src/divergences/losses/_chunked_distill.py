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
gradient (the one unavoidable N x V tensor, in the input's dtype) are kept. The backward pass
scales the stored gradient by the upstream gradient, in place.

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

import torch

from .. import fdiv

# Rows per chunk. A chunk's closed-form gradient needs about 8 float32 temporaries of chunk x V
# (the autograd fallback, for members without closed-form partials, about 26), so a chunk of
# N/256 tokens keeps them near 0.03 x N*V*4 bytes (0.1 with autograd), beside the gradient
# itself (1.0): measured extra peak resident memory 1.026 x N*V*4 bytes at (N, V) =
# (2048, 32000), float32, "js" (1.12 with autograd).
# The chunk stays between 2**16 elements (below that the per-chunk overhead dominates; the
# absolute memory is a few MiB) and 2**20 elements (about 4 MiB per temporary).
CHUNK_FRACTION = 256
MIN_CHUNK_ELEMENTS = 1 << 16
MAX_CHUNK_ELEMENTS = 1 << 20

# The backward pass scales the stored gradient in place and hands it on (no second N x V
# buffer); a second backward through the same graph is then an error. Tests that need repeated
# backward passes (gradcheck) switch this off.
INPLACE_BACKWARD = True

RowFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def auto_chunk(n: int, v: int) -> int:
    """Rows per chunk: ``ceil(n / 256)`` clamped to ``[2**16 // v, 2**20 // v]`` and ``[1, n]``."""
    v = max(v, 1)
    lo = max(1, MIN_CHUNK_ELEMENTS // v)
    hi = max(1, MAX_CHUNK_ELEMENTS // v)
    rows = min(max(-(-n // CHUNK_FRACTION), lo), hi)
    return max(1, min(rows, n))


def evaluate(fd: fdiv.FDivergence, lp: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
    """``fdiv.evaluate(fd, lp, lq, sync=False)``: the registry's terms summed over the last
    axis, clamped at 0, with no host synchronisation (traces under ``torch.compile``)."""
    return fdiv.evaluate(fd, lp, lq, sync=False)


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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
    """Values and float32 gradients of one chunk.

    ``fn(student_f32, *others) -> (soft, hard)`` maps a chunk of rows to two per-row values;
    the per-row loss is ``w_soft * soft + w_hard * hard``, zero where ``keep`` is false.
    Returns ``(total, soft, hard, grads)`` with ``grads[0]`` the gradient of the chunk's summed
    loss with respect to ``student`` and ``grads[1 + i]`` that for ``others[i]`` when
    ``diff[i]`` (float32, zero rows where ``keep`` is false; ``None`` where not asked for).
    """
    s32 = student.to(torch.float32) if student.dtype != torch.float64 else student
    diff_idx = [i for i, d in enumerate(diff) if d]
    primals = [s32] + [
        others[i].to(torch.float32) if others[i].dtype != torch.float64 else others[i]
        for i in diff_idx
    ]
    keep_row = keep.unsqueeze(-1)

    def combined(*prim: torch.Tensor):
        args = list(others)
        for j, i in enumerate(diff_idx):
            args[i] = prim[1 + j]
        soft, hard = fn(prim[0], *args)
        total = soft * w_soft + hard * w_hard if w_hard != 0.0 else soft * w_soft
        return total, (soft, hard)

    closed_form = getattr(fn, "values_and_grads", None)
    if not need_student_grad and not diff_idx:
        total, (soft, hard) = combined(*primals)
        grads: list[torch.Tensor | None] = [None] * (1 + len(others))
    else:
        if closed_form is not None:
            # The row function knows its own gradient: no autograd graph, a handful of
            # temporaries instead of about 26.
            args = [primals[1 + diff_idx.index(i)] if i in diff_idx else o
                    for i, o in enumerate(others)]
            total, soft, hard, raw = closed_form(s32, args, w_soft, w_hard, need_student_grad,
                                                 diff_idx)
        else:
            total, soft, hard, raw = _vjp(combined, primals)
        zero = torch.zeros((), dtype=total.dtype, device=total.device)
        grads = [torch.where(keep_row, raw[0], zero) if need_student_grad else None]
        grads += [None] * len(others)
        for j, i in enumerate(diff_idx):
            grads[1 + i] = torch.where(keep_row, raw[1 + j], zero)
    zero_v = torch.zeros((), dtype=total.dtype, device=total.device)
    return (
        torch.where(keep, total, zero_v),
        torch.where(keep, soft, zero_v),
        torch.where(keep, hard, zero_v),
        grads,
    )


def _vjp(combined, primals):
    """Values and the vector-Jacobian product with ones: ``torch.autograd.grad`` in eager mode
    (cheap, and no import of the compiler stack), ``torch.func.vjp`` under ``torch.compile``
    (which traces it without a graph break)."""
    if torch.compiler.is_compiling():
        total, vjp_fn, (soft, hard) = torch.func.vjp(combined, *primals, has_aux=True)
        return total, soft, hard, vjp_fn(torch.ones_like(total))
    with torch.enable_grad():
        prim = [p.detach().requires_grad_() for p in primals]
        total, (soft, hard) = combined(*prim)
        raw = torch.autograd.grad(total, prim, torch.ones_like(total), allow_unused=True,
                                  materialize_grads=True)
    return total.detach(), soft.detach(), hard.detach(), raw


def _out_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _values_only(fn, chunk, w_soft, w_hard, keep, student, others):
    n = student.shape[0]
    dt = _out_dtype(student)
    total = student.new_empty(n, dtype=dt)
    soft = student.new_empty(n, dtype=dt)
    hard = student.new_empty(n, dtype=dt)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        t_c, s_c, h_c, _ = chunk_values_and_grads(
            fn, student[s:e], [o[s:e] for o in others], [False] * len(others), keep[s:e],
            w_soft, w_hard, need_student_grad=False,
        )
        total[s:e] = t_c.to(dt)
        soft[s:e] = s_c.to(dt)
        hard[s:e] = h_c.to(dt)
    return total, soft, hard


class _ChunkedLoss(torch.autograd.Function):
    """``(out, soft, hard)``: ``out`` is the per-token total, or with ``weights`` the scalar
    ``sum(weights * total)``; only ``out`` is differentiable."""

    @staticmethod
    def forward(ctx, fn, chunk, w_soft, w_hard, diff, keep, weights, student, *others):
        n = student.shape[0]
        dt = _out_dtype(student)
        need_s = ctx.needs_input_grad[7]
        need_o = [bool(d) and ctx.needs_input_grad[8 + i] for i, d in enumerate(diff)]
        total = student.new_empty(n, dtype=dt)
        soft = student.new_empty(n, dtype=dt)
        hard = student.new_empty(n, dtype=dt)
        g_s = torch.empty_like(student) if need_s else None
        g_o = [torch.empty_like(o) if need else None for o, need in zip(others, need_o)]
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            t_c, s_c, h_c, grads = chunk_values_and_grads(
                fn, student[s:e], [o[s:e] for o in others], need_o, keep[s:e], w_soft, w_hard,
                need_student_grad=need_s,
            )
            total[s:e] = t_c.to(dt)
            soft[s:e] = s_c.to(dt)
            hard[s:e] = h_c.to(dt)
            # With weights the reduction is folded in before the (single) rounding to the
            # input's dtype; the backward then only multiplies by the upstream scalar.
            w = None if weights is None else weights[s:e].unsqueeze(-1).to(grads[0].dtype
                                                                             if need_s else dt)
            if g_s is not None:
                g_s[s:e] = (grads[0] if w is None else grads[0] * w).to(g_s.dtype)
            for i, g in enumerate(g_o):
                if g is not None:
                    gi = grads[1 + i]
                    g[s:e] = (gi if w is None else gi * w.to(gi.dtype)).to(g.dtype)
        out = total if weights is None else (total * weights.to(dt)).sum()
        ctx.mark_non_differentiable(soft, hard)
        ctx.per_token = weights is None
        # Kept as attributes, not saved tensors: the backward hands each buffer on as the
        # gradient and drops its own reference, so AccumulateGrad can adopt it without a copy.
        ctx.grads = [g_s, *g_o]
        return out, soft, hard

    @staticmethod
    def backward(ctx, go, go_soft, go_hard):
        grads = ctx.grads
        if grads is None:
            raise RuntimeError(
                "backward through a chunked distillation loss ran twice: its stored gradient "
                "is scaled in place and released by the first backward (retain_graph=True "
                "does not keep it); recompute the loss instead"
            )
        scale = go.unsqueeze(-1) if ctx.per_token else go
        out = []
        for g in grads:
            if g is None:
                out.append(None)
                continue
            factor = scale.to(torch.float32 if g.dtype != torch.float64 else g.dtype)
            # In place: the buffer is this Function's own. For half dtypes the product is
            # formed in float32 and rounded once (exact when go == 1).
            out.append(g.mul_(factor) if INPLACE_BACKWARD else (g * factor).to(g.dtype))
        if INPLACE_BACKWARD:
            ctx.grads = None
        return (None, None, None, None, None, None, None, *out)


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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(out, soft, hard)`` for 2-D ``student`` (N, V) and row-aligned ``others``.

    Per row, ``total = w_soft * soft + w_hard * hard`` (zero where ``keep`` is false);
    ``out`` is ``total`` (N,) or, given ``weights`` (N,), the scalar ``sum(weights * total)``.
    ``out`` is differentiable with respect to ``student`` and each ``others[i]`` with
    ``diff[i]``, through the stored-gradient Function when a gradient is needed; ``soft``
    and ``hard`` (per row) are values only.
    """
    others = list(others)
    wants = student.requires_grad or any(o.requires_grad for o, d in zip(others, diff) if d)
    if not (torch.is_grad_enabled() and wants):
        total, soft, hard = _values_only(fn, chunk, w_soft, w_hard, keep, student, others)
        out = total if weights is None else (total * weights.to(total.dtype)).sum()
        return out, soft, hard
    return _ChunkedLoss.apply(fn, chunk, w_soft, w_hard, tuple(diff), keep, weights, student,
                              *others)
