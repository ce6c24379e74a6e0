r"""Distillation losses on logits sharded along the vocabulary (tensor / vocab parallelism).

Each rank of a :mod:`torch.distributed` process group holds the same tokens and a slice of the
vocabulary: ``(N, V / world)`` logits (or the matching rows of the LM head). The losses equal
:func:`divergences.losses.distillation_loss` on the logits concatenated along the vocabulary,
values and gradients, on every rank, without any rank ever holding the full vocabulary.

How (per chunk of ``c`` tokens):

1. the global log-normalisers :math:`\log Z = M + \log \sum_v e^{x_v - M}`: an all-reduce MAX
   of the per-token shard maxima :math:`M`, then an all-reduce SUM of the shard sums of
   :math:`e^{x_v - M}` (student and teacher stacked: ``2c`` floats each; ``3c`` when a
   cross-entropy term at temperature 1 needs its own normaliser);
2. the globally normalised log-probabilities restricted to the shard,
   :math:`\ell_v = x_v - \log Z`, and the registry's terms on the shard,
   ``fdiv.get(...).terms(lp_shard, lq_shard, sync=False)`` (the registry stays the one formula
   source; Jensen-Shannon's mixture is elementwise, so it shards too);
3. one all-reduce SUM of ``4c`` floats: the shard sums of the terms (the per-token
   divergence, clamped at 0 as in :func:`divergences.fdiv.evaluate`), the cross-entropy
   contribution of the shard holding the label, and the shard sums of
   :math:`g_v = \partial D / \partial \ell_v` for student and teacher;
4. the gradient with respect to the shard's logits, locally:
   :math:`\partial D / \partial x_v = (g_v - \mathrm{softmax}(x)_v \sum_u g_u) / T`.

So a call makes three all-reduces per chunk (``2c + 2c + 4c`` floats, ``chunk_size=N`` gives
three in all) and the backward pass makes none: the gradient is computed during the forward
pass (float32, or float64 for float64 inputs) and only scaled by the upstream gradient. The
fused-linear form adds one all-reduce SUM of the student's hidden-state gradient (N x H) at
the end of the forward pass (the hidden states are replicated; skip it with
``all_reduce_hidden_grad=False`` when the caller's column-parallel layer does it).

Every rank must call with the same tokens, ``labels``, ``mask`` and options; the loss is
replicated (each rank gets the same value). Collectives are the plain
:mod:`torch.distributed` ones, so any backend works (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from . import fdiv
from ._arrays import check_range
from .losses import _chunked_distill as cd
from .losses._distill import (
    DistillationOutput,
    check_logits,
    check_options,
    reduce_values,
    resolve_divergence,
    token_mask,
    token_weights,
)
from .losses._fused_linear import transform

__all__ = ["vocab_parallel_distillation_loss", "vocab_parallel_fused_linear_distillation_loss"]


# --------------------------------------------------------------------------------------------
# The chunk kernel: values and logit gradients of one chunk of tokens on one shard
# --------------------------------------------------------------------------------------------


class _Setup:
    """What stays fixed over the chunks of one call."""

    def __init__(self, fd: fdiv.FDivergence, inv_t: float, w_soft: float, w_hard: float,
                 with_ce: bool, offset: int, group: Any):
        self.fd = fd
        self.inv_t = inv_t
        self.w_soft = w_soft
        self.w_hard = w_hard
        self.with_ce = with_ce
        self.offset = offset
        self.group = group


def _chunk(cfg: _Setup, zs: torch.Tensor, zt: torch.Tensor, labels: torch.Tensor,
           keep: torch.Tensor, need_s: bool, need_t: bool):
    """``(total, soft, hard, g_s, g_t)`` for a chunk of shard logits ``zs``, ``zt`` (c, v).

    ``zs``, ``zt`` are in the compute dtype; ``g_s``/``g_t`` are the gradients of the summed
    ``total`` with respect to them (``None`` when not needed), zero rows where ``keep`` is
    false.
    """
    inv_t, group = cfg.inv_t, cfg.group
    xs = zs * inv_t if inv_t != 1.0 else zs
    xt = zt * inv_t if inv_t != 1.0 else zt
    ce_sep = cfg.with_ce and inv_t != 1.0
    rows = [xs, xt, zs] if ce_sep else [xs, xt]
    # 1. global normalisers (all-reduce MAX, then SUM of exp relative to the global max)
    m = torch.stack([r.amax(-1) for r in rows])
    dist.all_reduce(m, op=dist.ReduceOp.MAX, group=group)
    zero = torch.zeros((), dtype=m.dtype, device=m.device)
    m = torch.where(torch.isfinite(m), m, zero)
    se = torch.stack([torch.exp(r - m[i].unsqueeze(-1)).sum(-1) for i, r in enumerate(rows)])
    dist.all_reduce(se, op=dist.ReduceOp.SUM, group=group)
    logz = m + torch.log(se)
    lq = xs - logz[0].unsqueeze(-1)
    lp = xt - logz[1].unsqueeze(-1)
    # 2. the registry's terms on the shard and their derivatives in the log-probabilities
    if need_s or need_t:
        with torch.enable_grad():
            lq_l = lq.detach().requires_grad_(need_s)
            lp_l = lp.detach().requires_grad_(need_t)
            local = cfg.fd.terms(lp_l, lq_l, sync=False).sum(-1)
            leaves = [x for x, need in ((lq_l, need_s), (lp_l, need_t)) if need]
            raw = list(torch.autograd.grad(local, leaves, torch.ones_like(local),
                                           materialize_grads=True))
        local = local.detach()
        g_q = raw.pop(0) if need_s else None
        g_p = raw.pop(0) if need_t else None
    else:
        local = cfg.fd.terms(lp, lq, sync=False).sum(-1)
        g_q = g_p = None
    # cross-entropy: the shard holding the label contributes -z[label]
    c = zs.shape[0]
    if cfg.with_ce:
        idx = labels - cfg.offset
        here = (idx >= 0) & (idx < zs.shape[-1])
        safe = torch.where(here, idx, torch.zeros_like(idx))
        picked = zs.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
        ce_local = torch.where(here, -picked, zero)
    else:
        here = safe = None
        ce_local = torch.zeros(c, dtype=zs.dtype, device=zs.device)
    # 3. one all-reduce of the per-token sums
    stats = torch.stack([
        local, ce_local,
        g_q.sum(-1) if g_q is not None else torch.zeros_like(local),
        g_p.sum(-1) if g_p is not None else torch.zeros_like(local),
    ])
    dist.all_reduce(stats, op=dist.ReduceOp.SUM, group=group)
    soft_raw = stats[0]
    soft = soft_raw.clamp_min(0.0)
    logz1 = logz[2] if ce_sep else logz[0]
    hard = logz1 + stats[1] if cfg.with_ce else torch.zeros_like(soft)
    total = soft * cfg.w_soft + hard * cfg.w_hard if cfg.w_hard != 0.0 else soft * cfg.w_soft
    keep_row = keep.unsqueeze(-1)
    # 4. local gradients (clamp_min passes the gradient where soft_raw >= 0)
    g_s = g_t = None
    ws = torch.where(soft_raw >= 0, cfg.w_soft * inv_t, zero).unsqueeze(-1)
    if need_s:
        g_s = (g_q - torch.exp(lq) * stats[2].unsqueeze(-1)) * ws
        if cfg.w_hard != 0.0:
            p1 = torch.exp(zs - logz1.unsqueeze(-1))
            p1 = p1.scatter_add(-1, safe.unsqueeze(-1),
                                -here.to(p1.dtype).unsqueeze(-1))
            g_s = g_s + cfg.w_hard * p1
        g_s = torch.where(keep_row, g_s, zero)
    if need_t:
        g_t = (g_p - torch.exp(lp) * stats[3].unsqueeze(-1)) * ws
        g_t = torch.where(keep_row, g_t, zero)
    return (torch.where(keep, total, zero), torch.where(keep, soft, zero),
            torch.where(keep, hard, zero), g_s, g_t)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


class _StoredGrad(torch.autograd.Function):
    """Runs ``compute(needs) -> (out, soft, hard, grads)`` in the forward pass; the backward
    pass scales the stored gradients by the upstream gradient (no communication), in place
    when ``_chunked_distill.INPLACE_BACKWARD`` (as the single-process loss: a second backward
    through the same graph is then an error)."""

    @staticmethod
    def forward(ctx, compute: Callable, per_token: bool, *inputs: torch.Tensor):
        needs = [inp is not None and ctx.needs_input_grad[2 + i] for i, inp in enumerate(inputs)]
        out, soft, hard, grads = compute(needs)
        ctx.mark_non_differentiable(soft, hard)
        ctx.per_token = per_token
        ctx.grads = grads
        return out, soft, hard

    @staticmethod
    def backward(ctx, go, go_soft, go_hard):
        if ctx.grads is None:
            raise RuntimeError(
                "backward through a vocab-parallel distillation loss ran twice: its stored "
                "gradient is scaled in place and released by the first backward; recompute "
                "the loss instead"
            )
        scale = go.unsqueeze(-1) if ctx.per_token else go
        inplace = cd.INPLACE_BACKWARD
        out = []
        for g in ctx.grads:
            if g is None:
                out.append(None)
                continue
            factor = scale.to(torch.float64 if g.dtype == torch.float64 else torch.float32)
            # per token: g is (..., V_r) and the scale (N, 1) over the flattened tokens
            g2 = g.reshape(-1, g.shape[-1]) if ctx.per_token else g
            if inplace:
                g2.mul_(factor)
                out.append(g)
            else:
                out.append((g2 * factor).to(g.dtype).reshape(g.shape))
        if inplace:
            ctx.grads = None
        return (None, None, *out)


# --------------------------------------------------------------------------------------------
# Shared argument handling
# --------------------------------------------------------------------------------------------


def _group_info(group: Any) -> tuple[int, int]:
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "vocab-parallel losses need an initialised torch.distributed process group "
            "(torch.distributed.init_process_group)"
        )
    return dist.get_rank(group), dist.get_world_size(group)


def _offset(vocab_start_index: int | None, v_local: int, rank: int) -> int:
    if vocab_start_index is None:
        return rank * v_local
    if isinstance(vocab_start_index, bool) or not isinstance(vocab_start_index, int) \
            or vocab_start_index < 0:
        raise ValueError(
            f"vocab_start_index must be a non-negative int or None; got {vocab_start_index!r}"
        )
    return vocab_start_index


def _prepare(divergence, beta, alpha, temperature, hard_weight, reduction, chunk_size,
             labels, return_components, temperature_scaling):
    temp, h = check_options(temperature, hard_weight, reduction, chunk_size)
    fd = resolve_divergence(divergence, beta, alpha)
    if h > 0.0 and labels is None:
        raise ValueError("hard_weight > 0 needs labels for the cross-entropy term")
    with_ce = labels is not None and (h > 0.0 or return_components)
    scale = temp * temp if temperature_scaling else 1.0
    return temp, h, fd, with_ce, scale


def _finish(out, soft, hard, weights, batch, scale, return_components):
    loss = out if weights is not None else out.reshape(batch)
    if not return_components:
        return loss
    return DistillationOutput(
        loss, reduce_values(soft * scale, weights, batch), reduce_values(hard, weights, batch)
    )


# --------------------------------------------------------------------------------------------
# Logits
# --------------------------------------------------------------------------------------------


def vocab_parallel_distillation_loss(
    student_logits_shard: torch.Tensor,
    teacher_logits_shard: torch.Tensor,
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
    group: Any = None,
    vocab_start_index: int | None = None,
) -> torch.Tensor | DistillationOutput:
    r""":func:`~divergences.losses.distillation_loss` on logits sharded along the vocabulary.

    Rank :math:`r` of ``group`` holds ``(..., V_r)`` student and teacher logits, the vocabulary
    entries ``vocab_start_index .. vocab_start_index + V_r - 1`` (default ``r * V_r``: equal
    shards in rank order). With :math:`p = \mathrm{softmax}(t/T)` and
    :math:`q = \mathrm{softmax}(s/T)` over the whole vocabulary, the per-token value is the
    registry's :math:`D_f(p\|q) = \sum_v q_v f(p_v/q_v)` summed over all shards, so the result
    (returned on every rank) equals ``distillation_loss`` on the concatenated logits with the
    same arguments: ``"forward_kl"`` = KL(teacher || student), ``"reverse_kl"``, ``"js"``
    (generalised JSD with weight ``beta``, TRL's endpoints), ``"skew_forward_kl"``,
    ``"skew_reverse_kl"`` (``alpha``), ``"tv"`` or any registry member; ``temperature``
    divides both logits (:math:`T^2` factor only with ``temperature_scaling``);
    ``hard_weight`` mixes in the cross-entropy on ``labels`` at temperature 1; ``labels ==
    ignore_index`` or ``mask == 0`` drops a token; ``reduction`` ``"none" | "sum" | "mean" |
    "batchmean"`` and ``num_items_in_batch`` as there. Natural log (nats).

    Gradients (float32 accumulation, float64 for float64 inputs; bf16/fp16 inputs are upcast)
    flow to this rank's shards: the student's, and the teacher's when it requires grad. They
    are computed during the forward pass; the backward pass is local. Communication per chunk
    of ``c`` tokens (``chunk_size``, automatic by default): all-reduce MAX of ``2c`` floats,
    all-reduce SUM of ``2c`` (``3c`` with a cross-entropy term and ``T != 1``) and of ``4c``.
    ``-inf`` logits are zero-mass entries (a shard may be all ``-inf`` for a token).

    >>> import tempfile, torch, torch.distributed as dist
    >>> from divergences.distributed import vocab_parallel_distillation_loss
    >>> from divergences.losses import distillation_loss
    >>> d = tempfile.mkdtemp()
    >>> dist.init_process_group("gloo", init_method=f"file://{d}/pg", rank=0, world_size=1)
    >>> g = torch.Generator().manual_seed(0)
    >>> s, t = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    >>> loss = vocab_parallel_distillation_loss(s, t, "js", beta=0.5)  # world of one rank
    >>> torch.allclose(loss, distillation_loss(s, t, "js", beta=0.5))
    True
    >>> dist.destroy_process_group()
    """
    s = check_logits(student_logits_shard, "student_logits_shard")
    t = check_logits(teacher_logits_shard, "teacher_logits_shard")
    temp, h, fd, with_ce, scale = _prepare(divergence, beta, alpha, temperature, hard_weight,
                                           reduction, chunk_size, labels, return_components,
                                           temperature_scaling)
    if s.shape != t.shape:
        raise ValueError(
            "student_logits_shard and teacher_logits_shard must have the same shape (same "
            f"batch, same vocabulary shard); got {tuple(s.shape)} and {tuple(t.shape)}"
        )
    if s.device != t.device:
        raise TypeError(f"student_logits_shard is on {s.device} but teacher_logits_shard on "
                        f"{t.device}")
    rank, _ = _group_info(group)
    v_local = s.shape[-1]
    offset = _offset(vocab_start_index, v_local, rank)
    batch = s.shape[:-1]
    keep, flat_labels = token_mask(batch, s.device, labels, mask, ignore_index)
    s2, t2 = s.reshape(-1, v_local), t.reshape(-1, v_local)
    n = s2.shape[0]
    lab = flat_labels if flat_labels is not None else torch.zeros(n, dtype=torch.long,
                                                                  device=s.device)
    dt = _compute_dtype(s)
    masked = labels is not None or mask is not None
    weights = token_weights(keep, batch, reduction, num_items_in_batch, masked, dt)
    cfg = _Setup(fd, 1.0 / temp, (1.0 - h) * scale, h, with_ce, offset, group)
    chunk = chunk_size or cd.auto_chunk(n, v_local)

    def compute(needs):
        need_s, need_t = needs
        total = s2.new_empty(n, dtype=dt)
        soft = s2.new_empty(n, dtype=dt)
        hard = s2.new_empty(n, dtype=dt)
        g_s = torch.empty_like(s2) if need_s else None
        g_t = torch.empty_like(t2) if need_t else None
        for a in range(0, n, chunk):
            e = min(n, a + chunk)
            tc, sc, hc, gs, gt = _chunk(cfg, s2[a:e].to(dt), t2[a:e].to(dt), lab[a:e],
                                        keep[a:e], need_s, need_t)
            total[a:e], soft[a:e], hard[a:e] = tc, sc, hc
            w = None if weights is None else weights[a:e].unsqueeze(-1)
            if g_s is not None:
                g_s[a:e] = (gs if w is None else gs * w).to(g_s.dtype)
            if g_t is not None:
                g_t[a:e] = (gt if w is None else gt * w).to(g_t.dtype)
        out = total if weights is None else (total * weights).sum()
        grads = [None if g is None else g.reshape(x.shape) for g, x in ((g_s, s), (g_t, t))]
        return out, soft, hard, grads

    if torch.is_grad_enabled() and (s.requires_grad or t.requires_grad):
        out, soft, hard = _StoredGrad.apply(compute, weights is None, s, t)
    else:
        out, soft, hard, _ = compute([False, False])
    return _finish(out, soft, hard, weights, batch, scale, return_components)


# --------------------------------------------------------------------------------------------
# Fused linear: vocab-sharded LM heads
# --------------------------------------------------------------------------------------------


def _check_head(h: Any, w: Any, b: Any, who: str) -> None:
    for x, name in ((h, f"{who}_hidden"), (w, f"{who}_weight_shard")):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{name} must be a floating torch tensor")
    if h.ndim < 1 or w.ndim != 2 or h.shape[-1] != w.shape[1]:
        raise ValueError(
            f"{who}_hidden (..., H) and {who}_weight_shard (V_r, H) must share H; got "
            f"{tuple(h.shape)} and {tuple(w.shape)}"
        )
    if b is not None and (not isinstance(b, torch.Tensor) or b.shape != (w.shape[0],)):
        raise ValueError(f"{who}_bias_shard must be a tensor of shape ({w.shape[0]},)")


def _check_scale(x: float, name: str) -> float:
    return check_range(x, name, 0.0, low_open=True)


def _check_cap(x: float | None, name: str) -> float | None:
    return None if x is None else check_range(x, name, 0.0, low_open=True)


def vocab_parallel_fused_linear_distillation_loss(
    student_hidden: torch.Tensor,
    student_weight_shard: torch.Tensor,
    teacher_hidden: torch.Tensor,
    teacher_weight_shard: torch.Tensor,
    student_bias_shard: torch.Tensor | None = None,
    teacher_bias_shard: torch.Tensor | None = None,
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
    group: Any = None,
    vocab_start_index: int | None = None,
    student_logit_scale: float = 1.0,
    teacher_logit_scale: float = 1.0,
    student_final_logit_softcapping: float | None = None,
    teacher_final_logit_softcapping: float | None = None,
    all_reduce_hidden_grad: bool = True,
) -> torch.Tensor | DistillationOutput:
    r""":func:`vocab_parallel_distillation_loss` from hidden states and vocab-sharded LM heads.

    Rank :math:`r` holds the full hidden states ``(..., H_s)`` / ``(..., H_t)`` (replicated)
    and its rows of each LM head, ``(V_r, H)`` weights and ``(V_r,)`` biases. Its logits
    shard is :math:`z = c \tanh((h W_r^\top + b_r)\,\sigma / c)` (``*_logit_scale``
    :math:`\sigma`, ``*_final_logit_softcapping`` :math:`c`, no ``tanh`` when ``None``), formed
    a chunk of tokens at a time and never whole; the value equals
    :func:`~divergences.losses.fused_linear_distillation_loss` with the concatenated heads
    (every other argument as in :func:`vocab_parallel_distillation_loss`).

    Gradients flow to the student's (and, when they require grad, the teacher's) hidden
    states, weight shard and bias shard. The hidden states' gradient is the sum over the
    vocabulary shards: all-reduced over ``group`` (N x H floats, once per call) unless
    ``all_reduce_hidden_grad=False`` (then each rank gets its own shard's part, for callers
    whose tensor-parallel layer reduces it). Weight gradients accumulate in float32.

    >>> import tempfile, torch, torch.distributed as dist
    >>> from divergences.distributed import vocab_parallel_fused_linear_distillation_loss
    >>> from divergences.losses import distillation_loss
    >>> d = tempfile.mkdtemp()
    >>> dist.init_process_group("gloo", init_method=f"file://{d}/pg", rank=0, world_size=1)
    >>> g = torch.Generator().manual_seed(0)
    >>> hs, ws = torch.randn(4, 3, generator=g), torch.randn(7, 3, generator=g)
    >>> ht, wt = torch.randn(4, 5, generator=g), torch.randn(7, 5, generator=g)
    >>> loss = vocab_parallel_fused_linear_distillation_loss(hs, ws, ht, wt, divergence="tv")
    >>> torch.allclose(loss, distillation_loss(hs @ ws.T, ht @ wt.T, "tv"))
    True
    >>> dist.destroy_process_group()
    """
    _check_head(student_hidden, student_weight_shard, student_bias_shard, "student")
    _check_head(teacher_hidden, teacher_weight_shard, teacher_bias_shard, "teacher")
    hs, ws, bs = student_hidden, student_weight_shard, student_bias_shard
    ht, wt, bt = teacher_hidden, teacher_weight_shard, teacher_bias_shard
    if hs.shape[:-1] != ht.shape[:-1]:
        raise ValueError(
            "student_hidden and teacher_hidden must have the same batch shape; got "
            f"{tuple(hs.shape)} and {tuple(ht.shape)}"
        )
    if ws.shape[0] != wt.shape[0]:
        raise ValueError(
            "student_weight_shard and teacher_weight_shard must cover the same vocabulary "
            f"shard; got V_r={ws.shape[0]} and V_r={wt.shape[0]}"
        )
    if ws.shape[0] == 0:
        raise ValueError("the weight shards must have at least one row (V_r >= 1)")
    s_scale = _check_scale(student_logit_scale, "student_logit_scale")
    t_scale = _check_scale(teacher_logit_scale, "teacher_logit_scale")
    s_cap = _check_cap(student_final_logit_softcapping, "student_final_logit_softcapping")
    t_cap = _check_cap(teacher_final_logit_softcapping, "teacher_final_logit_softcapping")
    temp, h, fd, with_ce, scale = _prepare(divergence, beta, alpha, temperature, hard_weight,
                                           reduction, chunk_size, labels, return_components,
                                           temperature_scaling)
    rank, _ = _group_info(group)
    v_local = ws.shape[0]
    offset = _offset(vocab_start_index, v_local, rank)
    batch = hs.shape[:-1]
    keep, flat_labels = token_mask(batch, hs.device, labels, mask, ignore_index)
    hs2, ht2 = hs.reshape(-1, hs.shape[-1]), ht.reshape(-1, ht.shape[-1])
    n = hs2.shape[0]
    lab = flat_labels if flat_labels is not None else torch.zeros(n, dtype=torch.long,
                                                                  device=hs.device)
    dt = _compute_dtype(hs)
    masked = labels is not None or mask is not None
    weights = token_weights(keep, batch, reduction, num_items_in_batch, masked, dt)
    cfg = _Setup(fd, 1.0 / temp, (1.0 - h) * scale, h, with_ce, offset, group)
    chunk = chunk_size or cd.auto_chunk(n, v_local)

    def head(hc, w, b, sc, cap, need):
        """The chunk's logits in the compute dtype, and the map from their gradient to the
        gradient of the pre-transform logits ``h W^T + b``."""
        z_pre = hc.to(dt) @ w.t()
        if b is not None:
            z_pre = z_pre + b
        if sc == 1.0 and cap is None:
            return z_pre, (lambda g: g)
        if not need:
            return transform(z_pre, sc, cap), None
        with torch.enable_grad():
            zl = z_pre.detach().requires_grad_()
            z = transform(zl, sc, cap)
        return z.detach(), (lambda g: torch.autograd.grad(z, zl, g)[0])

    def compute(needs):
        need = dict(zip(("hs", "ws", "bs", "ht", "wt", "bt"), needs))
        need_zs = need["hs"] or need["ws"] or need["bs"]
        need_zt = need["ht"] or need["wt"] or need["bt"]
        total = hs2.new_empty(n, dtype=dt)
        soft = hs2.new_empty(n, dtype=dt)
        hard = hs2.new_empty(n, dtype=dt)
        acc = {
            "hs": hs2.new_zeros(hs2.shape, dtype=dt) if need["hs"] else None,
            "ws": torch.zeros(ws.shape, dtype=dt, device=ws.device) if need["ws"] else None,
            "bs": torch.zeros(v_local, dtype=dt, device=ws.device) if need["bs"] else None,
            "ht": ht2.new_zeros(ht2.shape, dtype=dt) if need["ht"] else None,
            "wt": torch.zeros(wt.shape, dtype=dt, device=wt.device) if need["wt"] else None,
            "bt": torch.zeros(v_local, dtype=dt, device=wt.device) if need["bt"] else None,
        }
        ws_c, wt_c = ws.to(dt), wt.to(dt)
        bs_c = None if bs is None else bs.to(dt)
        bt_c = None if bt is None else bt.to(dt)
        for a in range(0, n, chunk):
            e = min(n, a + chunk)
            zs, back_s = head(hs2[a:e], ws_c, bs_c, s_scale, s_cap, need_zs)
            zt, back_t = head(ht2[a:e], wt_c, bt_c, t_scale, t_cap, need_zt)
            tc, sc, hc, gs, gt = _chunk(cfg, zs, zt, lab[a:e], keep[a:e], need_zs, need_zt)
            total[a:e], soft[a:e], hard[a:e] = tc, sc, hc
            w = None if weights is None else weights[a:e].unsqueeze(-1)
            for g, back, wk, hk, bk, hc_ in (
                (gs, back_s, ws_c, "hs", "bs", hs2[a:e]),
                (gt, back_t, wt_c, "ht", "bt", ht2[a:e]),
            ):
                if g is None:
                    continue
                g = back(g if w is None else g * w)
                wkey = "ws" if hk == "hs" else "wt"
                if acc[hk] is not None:
                    acc[hk][a:e] = g @ wk
                if acc[wkey] is not None:
                    acc[wkey] += g.t() @ hc_.to(dt)
                if acc[bk] is not None:
                    acc[bk] += g.sum(0)
        for hk in ("hs", "ht"):
            if acc[hk] is not None and all_reduce_hidden_grad:
                dist.all_reduce(acc[hk], op=dist.ReduceOp.SUM, group=group)
        out = total if weights is None else (total * weights).sum()
        srcs = {"hs": hs, "ws": ws, "bs": bs, "ht": ht, "wt": wt, "bt": bt}
        grads = [None if acc[k] is None else acc[k].reshape(srcs[k].shape).to(srcs[k].dtype)
                 for k in ("hs", "ws", "bs", "ht", "wt", "bt")]
        return out, soft, hard, grads

    inputs = (hs, ws, bs, ht, wt, bt)
    if torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in inputs):
        if weights is None:
            raise ValueError(
                "reduction='none' gives values only in the fused-linear loss (the weight "
                "gradient sums over tokens); use 'mean', 'sum' or 'batchmean'"
            )
        out, soft, hard = _StoredGrad.apply(compute, False, *inputs)
    else:
        out, soft, hard, _ = compute([False] * 6)
    return _finish(out, soft, hard, weights, batch, scale, return_components)

