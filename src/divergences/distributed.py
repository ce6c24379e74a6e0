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

import functools
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from . import _stored_grad, fdiv
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


@dataclass(frozen=True)
class _Setup:
    """What stays fixed over the chunks of one call (one entry per token in ``keep``,
    ``labels`` and ``weights``; ``weights`` is ``None`` for ``reduction="none"``)."""

    fd: fdiv.FDivergence
    inv_t: float
    w_soft: float
    w_hard: float
    with_ce: bool
    offset: int
    group: Any
    chunk: int
    keep: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor | None


def _chunk(cfg: _Setup, zs: torch.Tensor, zt: torch.Tensor, labels: torch.Tensor,
           keep: torch.Tensor, row_weight: torch.Tensor | None, need_s: bool, need_t: bool):
    """``(total, soft, hard, g_s, g_t)`` for a chunk of shard logits ``zs``, ``zt`` (c, v).

    ``zs``, ``zt`` are in the compute dtype; ``g_s``/``g_t`` are the gradients of the chunk's
    ``sum(row_weight * total)`` (ones when ``None``) with respect to them (``None`` when not
    needed), zero rows where ``keep`` is false (by selection).
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
    # 2. the registry's terms on the shard and their partials in log q (closed form where
    # the registry has it); the partial in log p is terms - a (1-homogeneity)
    if need_s or need_t:
        terms, a = cfg.fd.terms_and_partial(lp, lq, sync=False)
    else:
        terms, a = cfg.fd.terms(lp, lq, sync=False), None
    local = terms.sum(-1)
    b = cd.teacher_partial(terms, a) if need_t else None
    del terms
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
        a.sum(-1) if need_s else torch.zeros_like(local),
        b.sum(-1) if need_t else torch.zeros_like(local),
    ])
    dist.all_reduce(stats, op=dist.ReduceOp.SUM, group=group)
    soft_raw = stats[0]
    # A NaN logit on any shard makes the token's global normaliser NaN: its loss is NaN.
    soft = cd.nan_rows(soft_raw.clamp_min(0.0), logz[0], logz[1])
    logz1 = logz[2] if ce_sep else logz[0]
    hard = logz1 + stats[1] if cfg.with_ce else torch.zeros_like(soft)
    total = soft * cfg.w_soft + hard * cfg.w_hard if cfg.w_hard != 0.0 else soft * cfg.w_soft
    # 4. local gradients (clamp_min passes the gradient where soft_raw >= 0)
    g_s = g_t = None
    cs = torch.where(soft_raw >= 0, cd.row_coef(cfg.w_soft * inv_t, row_weight, soft_raw),
                     zero).unsqueeze(-1)
    if need_s:
        g_s = cd.soft_grad_(a, torch.exp(lq), stats[2].unsqueeze(-1), cs)
        if cfg.w_hard != 0.0:
            ch = cd.row_coef(cfg.w_hard, row_weight, soft_raw)
            cd.hard_grad_(g_s, torch.exp(zs - logz1.unsqueeze(-1)), ch.unsqueeze(-1))
            cd.sub_onehot_(g_s, safe, torch.where(here, ch, zero))  # the label's shard only
        g_s = _stored_grad.select_rows(keep, g_s)
    if need_t:
        g_t = cd.soft_grad_(b, torch.exp(lp), stats[3].unsqueeze(-1), cs)
        g_t = _stored_grad.select_rows(keep, g_t)
    return (torch.where(keep, total, zero), torch.where(keep, soft, zero),
            torch.where(keep, hard, zero), g_s, g_t)


def _logits_forward(cfg: _Setup, needs, s: torch.Tensor, t: torch.Tensor):
    """The :class:`~divergences._stored_grad.Kernel` forward of the logits loss."""
    need_s, need_t = needs
    v = s.shape[-1]
    s2, t2 = s.reshape(-1, v), t.reshape(-1, v)
    n = s2.shape[0]
    dt = _stored_grad.compute_dtype(s)
    total = s2.new_empty(n, dtype=dt)
    soft = s2.new_empty(n, dtype=dt)
    hard = s2.new_empty(n, dtype=dt)
    g_s = _stored_grad.new_grad(s) if need_s else None
    g_t = _stored_grad.new_grad(t) if need_t else None
    for a in range(0, n, cfg.chunk):
        e = min(n, a + cfg.chunk)
        w = None if cfg.weights is None else cfg.weights[a:e]
        tc, sc, hc, gs, gt = _chunk(cfg, s2[a:e].to(dt), t2[a:e].to(dt), cfg.labels[a:e],
                                    cfg.keep[a:e], w, need_s, need_t)
        total[a:e], soft[a:e], hard[a:e] = tc, sc, hc
        if g_s is not None:
            g_s.view(n, v)[a:e] = gs
        if g_t is not None:
            g_t.view(n, v)[a:e] = gt
    out = total if cfg.weights is None else (total * cfg.weights).sum()
    return out, (soft, hard), [g_s, g_t]


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


def _prepare(divergence, beta, alpha, skew, temperature, hard_weight, reduction, chunk_size,
             labels, return_components, temperature_scaling):
    temp, h = check_options(temperature, hard_weight, reduction, chunk_size)
    fd = resolve_divergence(divergence, beta, alpha, skew, stacklevel=4)
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
    alpha: float | None = None,
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
    *,
    skew: float | None = None,
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
    "batchmean"`` and ``num_items_in_batch`` as there; ``skew`` is the skew divergences'
    mixture weight and ``alpha`` the order of ``divergence="alpha"`` (``alpha=`` as the skew
    weight is deprecated). Natural log (nats). A NaN logit on any rank in a counted token
    makes the loss NaN; in a dropped token it has no effect.

    Gradients (float32 accumulation, float64 for float64 inputs; bf16/fp16 inputs are upcast)
    flow to this rank's shards: the student's, and the teacher's when it requires grad. They
    are computed during the forward pass and stored in the logits' dtype (float32 for
    float16); the backward pass is local. A second backward pass through the same graph forms
    them again (the same collectives, on every rank; it needs the input tensors alive);
    double backward (``create_graph=True``) raises a ``RuntimeError``. Communication per chunk
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
    temp, h, fd, with_ce, scale = _prepare(divergence, beta, alpha, skew, temperature,
                                           hard_weight, reduction, chunk_size, labels,
                                           return_components, temperature_scaling)
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
    n = keep.shape[0]
    lab = flat_labels if flat_labels is not None else torch.zeros(n, dtype=torch.long,
                                                                  device=s.device)
    dt = _stored_grad.compute_dtype(s)
    masked = labels is not None or mask is not None
    weights = token_weights(keep, batch, reduction, num_items_in_batch, masked, dt)
    cfg = _Setup(fd, 1.0 / temp, (1.0 - h) * scale, h, with_ce, offset, group,
                 chunk_size or cd.auto_chunk(n, v_local), keep, lab, weights)
    # No reference for double backward: it would need differentiable collectives.
    kernel = _stored_grad.Kernel("vocab_parallel_distillation_loss",
                                 functools.partial(_logits_forward, cfg),
                                 per_row=weights is None)
    out, soft, hard = _stored_grad.apply(kernel, s, t)
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
    alpha: float | None = None,
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
    *,
    skew: float | None = None,
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
    whose tensor-parallel layer reduces it). Weight gradients accumulate in float32. Dropped
    tokens' hidden states are zeroed by selection before any product over tokens.

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
    temp, h, fd, with_ce, scale = _prepare(divergence, beta, alpha, skew, temperature,
                                           hard_weight, reduction, chunk_size, labels,
                                           return_components, temperature_scaling)
    rank, _ = _group_info(group)
    v_local = ws.shape[0]
    offset = _offset(vocab_start_index, v_local, rank)
    batch = hs.shape[:-1]
    keep, flat_labels = token_mask(batch, hs.device, labels, mask, ignore_index)
    n = keep.shape[0]
    lab = flat_labels if flat_labels is not None else torch.zeros(n, dtype=torch.long,
                                                                  device=hs.device)
    dt = _stored_grad.compute_dtype(hs)
    masked = labels is not None or mask is not None
    weights = token_weights(keep, batch, reduction, num_items_in_batch, masked, dt)
    cfg = _Setup(fd, 1.0 / temp, (1.0 - h) * scale, h, with_ce, offset, group,
                 chunk_size or cd.auto_chunk(n, v_local), keep, lab, weights)
    heads = _Heads(s_scale, s_cap, t_scale, t_cap, all_reduce_hidden_grad)
    inputs = (hs, ws, bs, ht, wt, bt)
    if (weights is None and torch.is_grad_enabled()
            and any(x is not None and x.requires_grad for x in inputs)):
        raise ValueError(
            "reduction='none' gives values only in the fused-linear loss (the weight "
            "gradient sums over tokens); use 'mean', 'sum' or 'batchmean'"
        )
    kernel = _stored_grad.Kernel("vocab_parallel_fused_linear_distillation_loss",
                                 functools.partial(_fused_forward, cfg, heads))
    out, soft, hard = _stored_grad.apply(kernel, *inputs)
    return _finish(out, soft, hard, weights, batch, scale, return_components)


@dataclass(frozen=True)
class _Heads:
    """The LM heads' logit transforms, and whether to all-reduce the hidden states' gradient."""

    s_scale: float
    s_cap: float | None
    t_scale: float
    t_cap: float | None
    all_reduce_hidden_grad: bool


def _head(hc, w, b, sc, cap, need, dt):
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


def _fused_forward(cfg: _Setup, heads: _Heads, needs, hs, ws, bs, ht, wt, bt):
    """The :class:`~divergences._stored_grad.Kernel` forward of the fused-linear loss."""
    keys = ("hs", "ws", "bs", "ht", "wt", "bt")
    srcs = dict(zip(keys, (hs, ws, bs, ht, wt, bt)))
    need = dict(zip(keys, needs))
    need_zs = need["hs"] or need["ws"] or need["bs"]
    need_zt = need["ht"] or need["wt"] or need["bt"]
    dt = _stored_grad.compute_dtype(hs)
    hs2, ht2 = hs.reshape(-1, hs.shape[-1]), ht.reshape(-1, ht.shape[-1])
    n, v_local = hs2.shape[0], ws.shape[0]
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
    ws_c, wt_c = ws.detach().to(dt), wt.detach().to(dt)
    bs_c = None if bs is None else bs.detach().to(dt)
    bt_c = None if bt is None else bt.detach().to(dt)
    for a in range(0, n, cfg.chunk):
        e = min(n, a + cfg.chunk)
        k_c = cfg.keep[a:e]
        # Dropped tokens leave by selection, before any product over tokens: a NaN in
        # their hidden states cannot reach the weights' gradients.
        hs_c = _stored_grad.select_rows(k_c, hs2[a:e].detach().to(dt))
        ht_c = _stored_grad.select_rows(k_c, ht2[a:e].detach().to(dt))
        zs, back_s = _head(hs_c, ws_c, bs_c, heads.s_scale, heads.s_cap, need_zs, dt)
        zt, back_t = _head(ht_c, wt_c, bt_c, heads.t_scale, heads.t_cap, need_zt, dt)
        w = None if cfg.weights is None else cfg.weights[a:e]
        tc, sc, hc, gs, gt = _chunk(cfg, zs, zt, cfg.labels[a:e], k_c, w, need_zs, need_zt)
        total[a:e], soft[a:e], hard[a:e] = tc, sc, hc
        for g, back, wk, hk, wkey, bk, h_c in (
            (gs, back_s, ws_c, "hs", "ws", "bs", hs_c),
            (gt, back_t, wt_c, "ht", "wt", "bt", ht_c),
        ):
            if g is None:
                continue
            g = back(g)
            if acc[hk] is not None:
                acc[hk][a:e] = g @ wk
            if acc[wkey] is not None:
                acc[wkey] += g.t() @ h_c
            if acc[bk] is not None:
                acc[bk] += g.sum(0)
    for hk in ("hs", "ht"):
        if acc[hk] is not None and heads.all_reduce_hidden_grad:
            dist.all_reduce(acc[hk], op=dist.ReduceOp.SUM, group=cfg.group)
    out = total if cfg.weights is None else (total * cfg.weights).sum()
    grads = [None if acc[k] is None
             else acc[k].reshape(srcs[k].shape).to(_stored_grad.store_dtype(srcs[k]))
             for k in keys]
    return out, (soft, hard), grads
