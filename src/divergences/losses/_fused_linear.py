r"""Distillation loss from hidden states and LM-head weights, without the full logits.

The tokens are processed ``chunk`` at a time. For each chunk the student's and the teacher's
logits (chunk x V) are formed, the per-token loss and its gradient with respect to the
student's pre-activation logits are computed (the same row function and registry terms as
:func:`distillation_loss`), and that gradient is contracted at once into the gradients of the
student's hidden states, LM-head weight and bias. What stays in memory: those gradients (the
size of the inputs they belong to, the weight's accumulated in float32) and O(N) statistics; the
N x V logits never exist.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .. import fdiv
from .._arrays import check_range
from . import _chunked_distill as cd
from ._distill import (
    DistillationOutput,
    _dense_row_fn,
    check_options,
    reduce_values,
    resolve_divergence,
    token_mask,
    token_weights,
)

__all__ = ["fused_linear_distillation_loss"]


def head_logits(
    h: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
) -> torch.Tensor:
    """``h @ w.T + b`` in the inputs' dtype (a half-precision matmul stays half)."""
    z = h @ w.t()
    return z + b if b is not None else z


def transform(z: torch.Tensor, scale: float, softcap: float | None) -> torch.Tensor:
    """``z * scale``, then ``softcap * tanh(z / softcap)`` when a soft cap is set (Gemma 2)."""
    if scale != 1.0:
        z = z * scale
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    return z


def _pad(z: torch.Tensor, v: int) -> torch.Tensor:
    return torch.nn.functional.pad(z, (0, v - z.shape[-1]), value=-math.inf)


class _FusedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cfg, keep, weights, labels, hs, ws, bs, ht, wt, bt):
        (row_fn, chunk, w_soft, w_hard, s_scale, s_cap, t_scale, t_cap, v) = cfg
        n = hs.shape[0]
        vs = ws.shape[0]
        dt = torch.float64 if hs.dtype == torch.float64 else torch.float32
        acc = torch.float64 if ws.dtype == torch.float64 else torch.float32
        need_h, need_w = ctx.needs_input_grad[4], ctx.needs_input_grad[5]
        need_b = bs is not None and ctx.needs_input_grad[6]
        out = torch.zeros((), dtype=dt, device=hs.device)
        soft = hs.new_empty(n, dtype=dt)
        hard = hs.new_empty(n, dtype=dt)
        g_h = torch.empty_like(hs) if need_h else None
        g_w = torch.zeros(ws.shape, dtype=acc, device=ws.device) if need_w else None
        g_b = torch.zeros(vs, dtype=acc, device=ws.device) if need_b else None
        need_any = need_h or need_w or need_b

        def student_fn(z_pre, zt, lab):
            z = transform(z_pre, s_scale, s_cap)
            if z.shape[-1] < v:
                z = _pad(z, v)
            return row_fn(z, zt, lab)

        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            h_c = hs[s:e]
            z_pre = head_logits(h_c, ws, bs)
            zt = transform(head_logits(ht[s:e], wt, bt).to(dt), t_scale, t_cap)
            if zt.shape[-1] < v:
                zt = _pad(zt, v)
            tot, s_c, h_cv, grads = cd.chunk_values_and_grads(
                student_fn, z_pre, [zt, labels[s:e]], [False, False], keep[s:e], w_soft,
                w_hard, need_student_grad=need_any,
            )
            wc = weights[s:e].to(dt)
            out = out + (tot.to(dt) * wc).sum()
            soft[s:e] = s_c.to(dt)
            hard[s:e] = h_cv.to(dt)
            if not need_any:
                continue
            g = grads[0] * wc.unsqueeze(-1).to(grads[0].dtype)  # (c, V_s), float32
            if g_h is not None:
                g_h[s:e] = (g.to(ws.dtype) @ ws).to(g_h.dtype)
            if g_w is not None:
                g_w.addmm_(g.t().to(acc), h_c.to(acc))
            if g_b is not None:
                g_b.add_(g.sum(0).to(acc))
        ctx.mark_non_differentiable(soft, hard)
        ctx.grads = [g_h, None if g_w is None else g_w.to(ws.dtype),
                     None if g_b is None else g_b.to(bs.dtype)]
        return out, soft, hard

    @staticmethod
    def backward(ctx, go, go_soft, go_hard):
        grads = ctx.grads
        if grads is None:
            raise RuntimeError(
                "backward through a fused-linear distillation loss ran twice: its stored "
                "gradients are scaled in place and released by the first backward; recompute "
                "the loss instead"
            )
        out = []
        for g in grads:
            if g is None:
                out.append(None)
                continue
            factor = go.to(torch.float32 if g.dtype != torch.float64 else g.dtype)
            out.append(g.mul_(factor) if cd.INPLACE_BACKWARD else (g * factor).to(g.dtype))
        if cd.INPLACE_BACKWARD:
            ctx.grads = None
        return (None, None, None, None, out[0], out[1], out[2], None, None, None)


def _check_pair(h: Any, w: Any, b: Any, who: str) -> tuple[torch.Tensor, torch.Tensor, Any]:
    for name, x in ((f"{who}_hidden", h), (f"{who}_weight", w)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{name} must be a floating torch tensor")
    if h.ndim < 1:
        raise ValueError(f"{who}_hidden must have shape (..., H); got a scalar")
    if w.ndim != 2 or w.shape[1] != h.shape[-1] or w.shape[0] < 1:
        raise ValueError(
            f"{who}_weight must have shape (V, H) with H = {who}_hidden.shape[-1] = "
            f"{h.shape[-1]}; got {tuple(w.shape)}"
        )
    if b is not None:
        if not isinstance(b, torch.Tensor) or not b.is_floating_point():
            raise TypeError(f"{who}_bias must be a floating torch tensor or None")
        if b.shape != (w.shape[0],):
            raise ValueError(f"{who}_bias must have shape ({w.shape[0]},); got {tuple(b.shape)}")
    return h, w, b


def fused_linear_distillation_loss(
    student_hidden: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_hidden: torch.Tensor,
    teacher_weight: torch.Tensor,
    student_bias: torch.Tensor | None = None,
    teacher_bias: torch.Tensor | None = None,
    divergence: str | fdiv.FDivergence = "forward_kl",
    beta: float = 0.5,
    alpha: float = 0.1,
    temperature: float = 1.0,
    labels: torch.Tensor | None = None,
    ignore_index: int = -100,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
    num_items_in_batch: int | torch.Tensor | None = None,
    hard_weight: float = 0.0,
    temperature_scaling: bool = False,
    return_components: bool = False,
    chunk_size: int | None = None,
    pad_vocab: bool = False,
    student_logit_scale: float = 1.0,
    teacher_logit_scale: float = 1.0,
    student_final_logit_softcapping: float | None = None,
    teacher_final_logit_softcapping: float | None = None,
) -> torch.Tensor | DistillationOutput:
    r""":func:`distillation_loss` on the logits of two linear heads, never materialised whole.

    The logits are :math:`z = c \tanh((h W^\top + b)\,\sigma / c)` per model, with
    :math:`\sigma` = ``*_logit_scale`` and :math:`c` = ``*_final_logit_softcapping`` (no
    ``tanh`` when ``None``); everything else (divergence names, ``temperature``, masking,
    reductions, ``hard_weight``, components, ``pad_vocab``) is as in
    :func:`distillation_loss`, whose per-token values this reproduces.

    ``student_hidden`` ``(..., H_s)`` with ``student_weight`` ``(V_s, H_s)``;
    ``teacher_hidden`` ``(..., H_t)`` (same batch shape; ``H_t`` may differ) with
    ``teacher_weight`` ``(V_t, H_t)``. Gradients flow to the student's hidden states, weight
    and bias; the teacher is treated as frozen (no gradient). The tokens are processed
    ``chunk_size`` at a time (default as :func:`distillation_loss`): each chunk's logits
    (chunk x V, twice) are formed, differentiated in float32 and contracted into the
    gradients at once. Memory beyond those gradients (the weight's accumulated in float32):
    the chunk temporaries only. The loss must be reduced when a gradient is needed
    (``reduction="none"`` gives values only).

    >>> import torch
    >>> from divergences.losses import distillation_loss, fused_linear_distillation_loss
    >>> g = torch.Generator().manual_seed(0)
    >>> hs, ws = torch.randn(6, 4, generator=g), torch.randn(10, 4, generator=g)
    >>> ht, wt = torch.randn(6, 5, generator=g), torch.randn(10, 5, generator=g)
    >>> a = fused_linear_distillation_loss(hs, ws, ht, wt, divergence="js")
    >>> torch.allclose(a, distillation_loss(hs @ ws.T, ht @ wt.T, "js"))
    True
    """
    hs, ws, bs = _check_pair(student_hidden, student_weight, student_bias, "student")
    ht, wt, bt = _check_pair(teacher_hidden, teacher_weight, teacher_bias, "teacher")
    temp, h = check_options(temperature, hard_weight, reduction, chunk_size)
    fd = resolve_divergence(divergence, beta, alpha)
    s_scale = check_range(student_logit_scale, "student_logit_scale", 0.0, low_open=True)
    t_scale = check_range(teacher_logit_scale, "teacher_logit_scale", 0.0, low_open=True)
    s_cap = None if student_final_logit_softcapping is None else check_range(
        student_final_logit_softcapping, "student_final_logit_softcapping", 0.0, low_open=True)
    t_cap = None if teacher_final_logit_softcapping is None else check_range(
        teacher_final_logit_softcapping, "teacher_final_logit_softcapping", 0.0, low_open=True)
    if hs.shape[:-1] != ht.shape[:-1]:
        raise ValueError(
            "student_hidden and teacher_hidden must have the same batch shape; got "
            f"{tuple(hs.shape)} and {tuple(ht.shape)}"
        )
    devices = {x.device for x in (hs, ws, ht, wt, bs, bt) if x is not None}
    if len(devices) > 1:
        raise TypeError(f"all tensors must be on one device; got {sorted(map(str, devices))}")
    vs, vt = ws.shape[0], wt.shape[0]
    if vs != vt and not pad_vocab:
        raise ValueError(
            f"vocabulary sizes differ: student_weight has V={vs}, teacher_weight has V={vt}; "
            "pass pad_vocab=True to pad the smaller one with -inf (zero mass)"
        )
    if h > 0.0 and labels is None:
        raise ValueError("hard_weight > 0 needs labels for the cross-entropy term")
    v = max(vs, vt)
    batch = hs.shape[:-1]
    keep, flat_labels = token_mask(batch, hs.device, labels, mask, ignore_index)
    with_ce = flat_labels is not None and (h > 0.0 or return_components)
    hs2 = hs.reshape(-1, hs.shape[-1])
    ht2 = ht.reshape(-1, ht.shape[-1])
    n = hs2.shape[0]
    safe_labels = (
        torch.where(keep, flat_labels, torch.zeros_like(flat_labels))
        if flat_labels is not None else torch.zeros(n, dtype=torch.long, device=hs.device)
    )
    scale = temp * temp if temperature_scaling else 1.0
    masked = labels is not None or mask is not None
    dt = torch.float64 if hs.dtype == torch.float64 else torch.float32
    weights = token_weights(keep, batch, reduction, num_items_in_batch, masked, dt)
    wants = torch.is_grad_enabled() and any(
        x is not None and x.requires_grad for x in (hs, ws, bs))
    if weights is None:
        if wants:
            raise ValueError(
                "reduction='none' gives values only in the fused-linear loss; use 'mean', "
                "'sum' or 'batchmean' (or num_items_in_batch) to train"
            )
        weights_run = torch.ones(n, dtype=dt, device=hs.device)
    else:
        weights_run = weights
    cfg = (_dense_row_fn(fd, temp, with_ce), chunk_size or cd.auto_chunk(n, v),
           (1.0 - h) * scale, h, s_scale, s_cap, t_scale, t_cap, v)
    if wants:
        out, soft, hard = _FusedLinear.apply(cfg, keep, weights_run, safe_labels, hs2, ws, bs,
                                             ht2.detach(), wt.detach(),
                                             None if bt is None else bt.detach())
    else:
        out, soft, hard = _FusedLinear.forward(_NoGradCtx(), cfg, keep, weights_run,
                                               safe_labels, hs2, ws, bs, ht2, wt, bt)
    if weights is None:
        total = (1.0 - h) * scale * soft + h * hard
        loss = total.reshape(batch)
    else:
        loss = out
    if not return_components:
        return loss
    return DistillationOutput(
        loss, reduce_values(soft * scale, weights, batch), reduce_values(hard, weights, batch)
    )


class _NoGradCtx:
    """Stand-in context for running the forward without autograd (values only)."""

    needs_input_grad = (False,) * 10

    def mark_non_differentiable(self, *args: Any) -> None:
        pass
