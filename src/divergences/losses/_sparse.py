r"""Distillation from a teacher stored offline as its top-k log-probabilities.

Per token the teacher is known on k vocabulary ids only. The student's full distribution is
reduced to the same k ids plus one tail atom (its mass outside those ids, from a masked
log-sum-exp, so no cancellation), and the registry's divergence is evaluated on the k + 1
atoms. The teacher's tail atom depends on ``tail``:

* ``"bucket"``: the teacher's missing mass ``1 - sum(top-k)``;
* ``"zero"``: 0 (the teacher's top-k as stored, unnormalised, zero elsewhere);
* ``"renormalize"``: 0, with the top-k rescaled to sum to one.

With a zero teacher tail, the k + 1 atom value equals the divergence against the full student
distribution: every id outside the top-k carries ``q_v f(0) = q_v f0``, which sums to the tail
atom's ``q_tail f0``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .. import fdiv
from .._arrays import check_choice
from . import _chunked_distill as cd
from ._distill import (
    DistillationOutput,
    check_logits,
    check_options,
    reduce_values,
    resolve_divergence,
    token_mask,
    token_weights,
)

__all__ = ["TAILS", "sparse_distillation_loss"]

TAILS = ("bucket", "zero", "renormalize")


def teacher_atoms(lpk: torch.Tensor, tail: str, eps: float = 0.0) -> torch.Tensor:
    """The teacher's k + 1 log-masses from its top-k log-probabilities (last axis).

    For ``"bucket"``, a missing mass of at most ``k * eps`` (``eps``: the machine epsilon of
    the stored log-probabilities) is rounding, not mass: the bucket is then empty.
    """
    lse = torch.logsumexp(lpk, dim=-1, keepdim=True)
    ninf = torch.full_like(lse, -math.inf)
    if tail == "renormalize":
        has = lse > -math.inf
        lpk = torch.where(has, lpk - torch.where(has, lse, torch.zeros_like(lse)), lpk)
        return torch.cat([lpk, ninf], dim=-1)
    if tail == "zero":
        return torch.cat([lpk, ninf], dim=-1)
    # bucket: log(1 - exp(lse)), -inf when the stored mass reaches 1 (rounding included).
    below = lse < math.log1p(-min(lpk.shape[-1] * eps, 0.5))
    safe = torch.where(below, lse, torch.full_like(lse, -1.0))
    return torch.cat([lpk, torch.where(below, torch.log(-torch.expm1(safe)), ninf)], dim=-1)


def student_atoms(lq: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The student's k + 1 log-masses: ``lq`` at ``idx`` and the log-mass outside ``idx``."""
    in_k = torch.zeros_like(lq, dtype=torch.bool).scatter(-1, idx, True)
    out = torch.where(in_k, torch.full((), -math.inf, dtype=lq.dtype, device=lq.device), lq)
    empty = out.amax(dim=-1, keepdim=True) == -math.inf
    # A row whose ids cover the vocabulary has no tail: keep its log-sum-exp (and gradient)
    # away from an all -inf row.
    safe = torch.where(empty, torch.zeros_like(out), out)
    lq_tail = torch.where(empty, torch.full_like(empty, -math.inf, dtype=lq.dtype),
                          torch.logsumexp(safe, dim=-1, keepdim=True))
    return torch.cat([lq.gather(-1, idx), lq_tail], dim=-1)


def _sparse_row_fn(fd: fdiv.FDivergence, temperature: float, tail: str, with_ce: bool):
    inv_t = 1.0 / temperature

    def fn(s: torch.Tensor, idx: torch.Tensor, lpk: torch.Tensor, labels: torch.Tensor):
        lq = torch.log_softmax(s * inv_t if inv_t != 1.0 else s, dim=-1)
        lp = teacher_atoms(lpk.to(s.dtype), tail, torch.finfo(lpk.dtype).eps)
        soft = cd.evaluate(fd, lp, student_atoms(lq, idx))
        # A NaN anywhere in the row's inputs makes its value NaN (the registry must not read
        # it as zero mass): the student's shows in every log-probability, the teacher's
        # stored top-k only where it is.
        soft = cd.nan_rows(soft, lq)
        soft = torch.where(torch.isnan(lpk).any(-1),
                           torch.full((), torch.nan, dtype=soft.dtype, device=soft.device), soft)
        # the student's entropy from the log-softmax already in hand (values only)
        ent = cd.row_entropy(torch.exp(lq), lq)
        if not with_ce:
            return soft, torch.zeros_like(soft), ent
        ls = lq if inv_t == 1.0 else torch.log_softmax(s, dim=-1)
        return soft, -ls.gather(-1, labels.unsqueeze(-1)).squeeze(-1), ent

    return fn


def _validate_topk(idx: torch.Tensor, lpk: torch.Tensor, v: int, tail: str) -> None:
    if bool(((idx < 0) | (idx >= v)).any()):
        raise ValueError(f"teacher_topk_indices must lie in [0, {v}) (the student's vocabulary)")
    srt = idx.sort(dim=-1).values
    if bool((srt[..., 1:] == srt[..., :-1]).any()):
        raise ValueError("teacher_topk_indices has a repeated id within a token's top-k")
    if bool(torch.isnan(lpk).any()):
        raise ValueError("teacher_topk_logprobs contains NaN")
    lse = torch.logsumexp(lpk.to(torch.float32 if lpk.dtype != torch.float64 else lpk.dtype),
                          dim=-1)
    tol = 1e-2 if lpk.dtype in (torch.float16, torch.bfloat16) else 1e-4
    if bool((lse > tol).any()):
        raise ValueError(
            f"teacher_topk_logprobs must be log-probabilities: their mass exceeds 1 (log-sum-exp "
            f"up to {float(lse.max()):.3g} > {tol:g})"
        )
    if tail == "renormalize" and bool((lse == -math.inf).any()):
        raise ValueError("tail='renormalize' needs some teacher mass in every token's top-k")


def sparse_distillation_loss(
    student_logits: torch.Tensor,
    teacher_topk_indices: torch.Tensor,
    teacher_topk_logprobs: torch.Tensor,
    tail: str = "bucket",
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
    validate: bool = True,
    *,
    skew: float | None = None,
    chunk_bytes: int | None = None,
) -> torch.Tensor | DistillationOutput:
    r"""Distillation loss against a teacher stored as its top-k: :math:`D_f(p\|q)` on k + 1 atoms.

    For each token, the teacher gives log-probabilities :math:`\log p_{i_1..i_k}` on ids
    :math:`i_1..i_k`; the student :math:`q = \mathrm{softmax}(s/T)` over its vocabulary. Both
    become distributions on the k ids plus one tail atom: the student's tail is
    :math:`1 - \sum_j q_{i_j}` (computed as a masked log-sum-exp), the teacher's is
    :math:`1 - \sum_j p_{i_j}` for ``tail="bucket"`` (0 when that is at most ``k`` times the
    machine epsilon of the stored log-probabilities: rounding) and 0 for ``"zero"`` (top-k as stored)
    and ``"renormalize"`` (top-k rescaled to sum to 1). With a zero teacher tail this is exactly
    :math:`D_f` against the full student distribution with the teacher zero outside its top-k.
    The divergence names, ``temperature`` (applied to the student only: the stored teacher
    log-probabilities are used as they are), ``labels``/``mask``, ``reduction``,
    ``num_items_in_batch``, ``hard_weight``, ``temperature_scaling``, ``return_components``,
    ``skew`` (``alpha`` its deprecated spelling for the skew divergences), ``chunk_size`` and
    ``chunk_bytes`` (the chunk's memory budget; here each chunk goes through autograd, about
    26 float32 temporaries of chunk x V) are those of :func:`distillation_loss`, and so are the stored-gradient rules (float32
    for float16 logits; a second backward pass and double backward need the logits alive).
    A NaN in a counted token's student logits, or (with ``validate=False``) in its stored
    top-k, makes the loss NaN; in a dropped token it changes nothing.

    Parameters
    ----------
    student_logits:
        ``(..., V)``, any float dtype; the gradient flows to it (computed chunk by chunk in the
        forward pass, float32).
    teacher_topk_indices:
        ``(..., k)`` integer ids in ``[0, V)``, distinct within a token.
    teacher_topk_logprobs:
        ``(..., k)`` log-probabilities (``-inf`` allowed), total mass at most 1. Treated as
        data: no gradient flows to them.
    tail:
        ``"bucket"`` (default), ``"zero"`` or ``"renormalize"``.
    validate:
        Check ids (range, repeats) and log-probabilities (NaN: an error naming
        ``teacher_topk_logprobs``; mass above 1): a host
        synchronisation, skipped under ``torch.compile`` and with ``validate=False``.

    >>> import torch
    >>> from divergences.losses import distillation_loss, sparse_distillation_loss
    >>> g = torch.Generator().manual_seed(0)
    >>> s, t = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    >>> top = torch.log_softmax(t, -1).topk(6)  # k = V: nothing is missing
    >>> a = sparse_distillation_loss(s, top.indices, top.values, divergence="js")
    >>> torch.allclose(a, distillation_loss(s, t, "js"))
    True
    >>> top3 = torch.log_softmax(t, -1).topk(3)
    >>> float(sparse_distillation_loss(s, top3.indices, top3.values, tail="bucket")) > 0
    True
    """
    s = check_logits(student_logits, "student_logits")
    temp, h = check_options(temperature, hard_weight, reduction, chunk_size, chunk_bytes)
    check_choice(tail, "tail", TAILS)
    fd = resolve_divergence(divergence, beta, alpha, skew)
    idx = _check_indices(teacher_topk_indices, s)
    lpk = _check_logprobs(teacher_topk_logprobs, idx, s)
    v = s.shape[-1]
    if idx.shape[-1] > v:
        raise ValueError(f"teacher_topk_indices has k={idx.shape[-1]} ids per token, more than "
                         f"the vocabulary size V={v}")
    if validate and not torch.compiler.is_compiling():
        _validate_topk(idx, lpk, v, tail)
    if h > 0.0 and labels is None:
        raise ValueError("hard_weight > 0 needs labels for the cross-entropy term")
    batch = s.shape[:-1]
    k = idx.shape[-1]
    keep, flat_labels = token_mask(batch, s.device, labels, mask, ignore_index)
    with_ce = flat_labels is not None and (h > 0.0 or return_components)
    n = keep.shape[0]
    safe_labels = (
        torch.where(keep, flat_labels, torch.zeros_like(flat_labels))
        if flat_labels is not None else torch.zeros(n, dtype=torch.long, device=s.device)
    )
    scale = temp * temp if temperature_scaling else 1.0
    masked = labels is not None or mask is not None
    out_dtype = torch.float64 if s.dtype == torch.float64 else torch.float32
    weights = token_weights(keep, batch, reduction, num_items_in_batch, masked, out_dtype)
    chunk = cd.pick_chunk(n, v, s.device, chunk_size, chunk_bytes, temps=cd.AUTOGRAD_TEMPS,
                          itemsize=out_dtype.itemsize)
    out, soft, hard, ent = cd.chunked_loss(
        _sparse_row_fn(fd, temp, tail, with_ce), s,
        [idx.reshape(-1, k), lpk.detach().reshape(-1, k), safe_labels], [False, False, False],
        keep, w_soft=(1.0 - h) * scale, w_hard=h, chunk=chunk,
        weights=weights, name="sparse_distillation_loss", stats=1,
    )
    loss = out if weights is not None else out.reshape(batch)
    if not return_components:
        return loss
    return DistillationOutput(
        loss, reduce_values(soft * scale, weights, batch), reduce_values(hard, weights, batch),
        ent.reshape(batch),
    )


def _check_indices(idx: Any, s: torch.Tensor) -> torch.Tensor:
    if not isinstance(idx, torch.Tensor) or idx.is_floating_point() or idx.is_complex() \
            or idx.dtype == torch.bool:
        raise TypeError("teacher_topk_indices must be an integer torch tensor")
    if idx.ndim != s.ndim or idx.shape[:-1] != s.shape[:-1] or idx.shape[-1] < 1:
        raise ValueError(
            "teacher_topk_indices must have shape (..., k) with k >= 1 and the batch shape of "
            f"student_logits {tuple(s.shape[:-1])}; got {tuple(idx.shape)}"
        )
    if idx.device != s.device:
        raise TypeError(f"teacher_topk_indices is on {idx.device}, student_logits on {s.device}")
    return idx.to(torch.long)


def _check_logprobs(lpk: Any, idx: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    if not isinstance(lpk, torch.Tensor) or not lpk.is_floating_point():
        raise TypeError("teacher_topk_logprobs must be a floating torch tensor")
    if lpk.shape != idx.shape:
        raise ValueError(
            "teacher_topk_logprobs must have the shape of teacher_topk_indices "
            f"{tuple(idx.shape)}; got {tuple(lpk.shape)}"
        )
    if lpk.device != s.device:
        raise TypeError(f"teacher_topk_logprobs is on {lpk.device}, student_logits on {s.device}")
    return lpk
