r"""Distillation losses over full logits: argument handling, divergences and reductions.

The chunked computation lives in :mod:`._chunked_distill`; the formulas in the registry
(:mod:`divergences.fdiv`). This module resolves the divergence name, validates and flattens
the inputs, builds the per-chunk row function and applies the reduction.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch

from .. import fdiv
from .._arrays import check_choice, check_range
from . import _chunked_distill as cd

__all__ = ["DistillationOutput", "distillation_loss", "resolve_divergence"]

DIVERGENCES = ("forward_kl", "reverse_kl", "js", "skew_forward_kl", "skew_reverse_kl", "tv")
LOSS_REDUCTIONS = ("none", "sum", "mean", "batchmean")


class DistillationOutput(NamedTuple):
    """What ``return_components=True`` gives.

    ``loss`` is ``(1 - hard_weight) * distillation + hard_weight * cross_entropy`` and carries
    the gradient; ``distillation`` (``temperature**2``-scaled when ``temperature_scaling``) and
    ``cross_entropy`` (zero without ``labels``) are detached values, reduced the same way.
    """

    loss: torch.Tensor
    distillation: torch.Tensor
    cross_entropy: torch.Tensor


def resolve_divergence(
    divergence: str | fdiv.FDivergence, beta: float = 0.5, alpha: float = 0.1
) -> fdiv.FDivergence:
    """The registry member that gives ``divergence`` as ``D_f(teacher || student)``.

    ``forward_kl`` -> ``kl``; ``reverse_kl`` -> ``reverse_kl``; ``js`` -> ``js(beta)`` with
    ``beta = 0`` giving ``kl`` and ``beta = 1`` giving ``reverse_kl`` (TRL's endpoints);
    ``skew_forward_kl`` -> ``skew_kl(alpha)``; ``skew_reverse_kl`` ->
    ``skew_reverse_kl(alpha)``; ``tv``; any other registry name (``alpha`` takes ``alpha``),
    or an :class:`~divergences.fdiv.FDivergence` as is.

    >>> resolve_divergence("js", beta=0.0).name
    'kl'
    >>> resolve_divergence("skew_forward_kl", alpha=0.1).params
    {'alpha': 0.1}
    """
    if isinstance(divergence, fdiv.FDivergence):
        return divergence
    if not isinstance(divergence, str):
        raise TypeError(
            f"divergence must be a name or an FDivergence; got {type(divergence).__name__}"
        )
    b = check_range(beta, "beta", 0.0, 1.0)
    a = check_range(alpha, "alpha", 0.0, 1.0)
    if divergence == "forward_kl":
        return fdiv.get("kl")
    if divergence == "reverse_kl":
        return fdiv.get("reverse_kl")
    if divergence == "js":
        if b == 0.0:
            return fdiv.get("kl")
        if b == 1.0:
            return fdiv.get("reverse_kl")
        return fdiv.get("js", beta=b)
    if divergence == "skew_forward_kl":
        return fdiv.get("skew_kl", alpha=a)
    if divergence == "skew_reverse_kl":
        return fdiv.get("skew_reverse_kl", alpha=a)
    if divergence in ("alpha", "skew_kl"):
        return fdiv.get(divergence, alpha=a)
    try:
        return fdiv.get(divergence)
    except ValueError:
        raise ValueError(
            f"divergence must be one of {', '.join(map(repr, DIVERGENCES))} or a registry "
            f"name ({', '.join(fdiv.names())}); got {divergence!r}"
        ) from None


# --------------------------------------------------------------------------------------------
# Validation shared by the three entry points
# --------------------------------------------------------------------------------------------


def check_logits(x: Any, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor; got dtype {x.dtype}")
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(
            f"{name} must have shape (..., V) with V >= 1; got {tuple(x.shape)}"
        )
    return x


def check_options(
    temperature: float, hard_weight: float, reduction: str, chunk_size: int | None
) -> tuple[float, float]:
    t = check_range(temperature, "temperature", 0.0, low_open=True)
    if math.isinf(t):
        raise ValueError("temperature must be finite; got inf")
    h = check_range(hard_weight, "hard_weight", 0.0, 1.0)
    check_choice(reduction, "reduction", LOSS_REDUCTIONS)
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")
    return t, h


def token_mask(
    batch: torch.Size,
    device: torch.device,
    labels: torch.Tensor | None,
    mask: torch.Tensor | None,
    ignore_index: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Flat boolean keep-mask (N,) and flat labels (N,) or ``None``."""
    keep = torch.ones(batch, dtype=torch.bool, device=device)
    flat_labels = None
    if labels is not None:
        if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.is_complex():
            raise TypeError("labels must be an integer torch tensor")
        if labels.shape != batch:
            raise ValueError(
                f"labels must have the logits' batch shape {tuple(batch)}; got {tuple(labels.shape)}"
            )
        labels = labels.to(device=device, dtype=torch.long)
        keep = keep & (labels != ignore_index)
        flat_labels = labels.reshape(-1)
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            raise TypeError("mask must be a torch tensor")
        if mask.shape != batch:
            raise ValueError(
                f"mask must have the logits' batch shape {tuple(batch)}; got {tuple(mask.shape)}"
            )
        keep = keep & (mask.to(device) != 0)
    return keep.reshape(-1), flat_labels


def token_weights(
    keep: torch.Tensor,
    batch: torch.Size,
    reduction: str,
    num_items_in_batch: int | torch.Tensor | None,
    masked: bool,
    dtype: torch.dtype,
) -> torch.Tensor | None:
    """Per-token weights (N,) whose dot product with the per-token values is the reduced loss.

    ``None`` for ``reduction="none"``. No host synchronisation: counts stay tensors.
    """
    w = keep.to(dtype)
    if num_items_in_batch is not None:
        if reduction == "none":
            raise ValueError("num_items_in_batch needs a reduction other than 'none'")
        if isinstance(num_items_in_batch, torch.Tensor):
            return w / num_items_in_batch.to(device=w.device, dtype=dtype)
        n = check_range(num_items_in_batch, "num_items_in_batch", 0.0, low_open=True)
        return w / n
    if reduction == "none":
        return None
    if reduction == "sum":
        return w
    if reduction == "batchmean" and not masked:
        return w / float(batch[0] if len(batch) else 1)
    return w / w.sum().clamp_min(1.0)


def reduce_values(values: torch.Tensor, weights: torch.Tensor | None,
                  batch: torch.Size) -> torch.Tensor:
    """Per-token ``values`` (N,) reduced with :func:`token_weights` (or reshaped to ``batch``)."""
    if weights is None:
        return values.reshape(batch)
    return (values * weights.to(values.dtype)).sum()


def pad_last(x: torch.Tensor, v: int) -> torch.Tensor:
    """Pad the last axis with ``-inf`` (zero mass) to length ``v``."""
    return torch.nn.functional.pad(x, (0, v - x.shape[-1]), value=-math.inf)


# --------------------------------------------------------------------------------------------
# distillation_loss
# --------------------------------------------------------------------------------------------


class _DenseRows:
    """Row function of :func:`distillation_loss`: ``(soft, hard)`` per row of a chunk, and the
    same values with their gradients in closed form (:meth:`values_and_grads`)."""

    def __init__(self, fd: fdiv.FDivergence, temperature: float, with_ce: bool):
        self.fd = fd
        self.inv_t = 1.0 / temperature
        self.with_ce = with_ce

    def _log_probs(self, s: torch.Tensor, t: torch.Tensor):
        tt = t.to(s.dtype)
        # Vocabularies of different sizes (pad_vocab=True): pad the chunk, not the input.
        v = max(s.shape[-1], tt.shape[-1])
        sp = pad_last(s, v) if s.shape[-1] < v else s
        tp = pad_last(tt, v) if tt.shape[-1] < v else tt
        inv_t = self.inv_t
        lq = torch.log_softmax(sp * inv_t if inv_t != 1.0 else sp, dim=-1)
        lp = torch.log_softmax(tp * inv_t if inv_t != 1.0 else tp, dim=-1)
        ls = lq if inv_t == 1.0 or not self.with_ce else torch.log_softmax(sp, dim=-1)
        return lq, lp, ls

    def __call__(self, s: torch.Tensor, t: torch.Tensor, labels: torch.Tensor):
        lq, lp, ls = self._log_probs(s, t)
        soft = cd.evaluate(self.fd, lp, lq)
        if not self.with_ce:
            return soft, torch.zeros_like(soft)
        return soft, -ls.gather(-1, labels.unsqueeze(-1)).squeeze(-1)

    def values_and_grads(self, s, others, w_soft, w_hard, need_s, diff_idx):
        """``(total, soft, hard, [grad_s, *grads of others[diff_idx]])`` without autograd.

        With ``a = d terms / d log q`` from the registry (:meth:`FDivergence.terms_and_partial`)
        and ``S = sum_v a_v``, the derivative of ``D`` with respect to the student's logits is
        ``(a - q S) / T`` (the ``- q S`` is the log-normaliser's share); the teacher's is
        ``(b - p B) / T`` with ``b = terms - a`` (1-homogeneity of the terms). Where the
        registry clamped ``D`` at 0 no gradient flows, as through ``clamp_min``.
        """
        t, labels = others
        vs, vt = s.shape[-1], t.shape[-1]
        lq, lp, ls = self._log_probs(s, t)
        # On CPU a host read costs nothing, so look once per chunk for zero mass and skip
        # the masking when there is none; elsewhere (and under torch.compile) never sync.
        sync = lq.device.type == "cpu" and not torch.compiler.is_compiling()
        terms, a = self.fd.terms_and_partial(lp, lq, sync=sync)
        d = terms.sum(-1)
        zero = torch.zeros((), dtype=d.dtype, device=d.device)
        cs = torch.where(d >= 0.0, w_soft * self.inv_t, zero).unsqueeze(-1)
        soft = d.clamp_min(0.0)
        grads: list[torch.Tensor | None] = []
        g_t = None
        if 0 in diff_idx:
            b = torch.where(torch.isfinite(terms), terms - a, zero)
            p = torch.exp(lp)
            g_t = b.addcmul_(p, b.sum(-1, keepdim=True), value=-1.0).mul_(cs)[:, :vt]
        del terms
        if self.with_ce:
            hard = -ls.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        else:
            hard = torch.zeros_like(soft)
        if need_s:
            q = torch.exp(lq)
            g = a.addcmul_(q, a.sum(-1, keepdim=True), value=-1.0).mul_(cs)
            if self.with_ce and w_hard != 0.0:
                q1 = q if ls is lq else torch.exp(ls)
                g.add_(q1, alpha=w_hard)
                g.scatter_add_(-1, labels.unsqueeze(-1),
                               torch.full_like(hard, -w_hard).unsqueeze(-1))
            grads.append(g[:, :vs])
        else:
            grads.append(None)
        if 0 in diff_idx:
            grads.append(g_t)
        total = soft * w_soft + hard * w_hard if w_hard != 0.0 else soft * w_soft
        return total, soft, hard, grads


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
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
) -> torch.Tensor | DistillationOutput:
    r"""Token-level distillation loss :math:`D(\text{teacher} \,\|\, \text{student})` from logits.

    For each token, with :math:`p = \mathrm{softmax}(t/T)` (teacher) and
    :math:`q = \mathrm{softmax}(s/T)` (student) over the last axis, the value is the registry's
    :math:`D_f(p\|q) = \sum_v q_v f(p_v/q_v)` (``fdiv.evaluate``), computed in float32 (float64
    for float64 inputs) from log-probabilities:

    * ``"forward_kl"``: :math:`\mathrm{KL}(p\|q)`; ``"reverse_kl"``: :math:`\mathrm{KL}(q\|p)`;
    * ``"js"``: :math:`\beta\,\mathrm{KL}(p\|m) + (1-\beta)\,\mathrm{KL}(q\|m)`,
      :math:`m = \beta p + (1-\beta) q`, with TRL's (GKD) endpoints: ``beta=0`` is forward KL
      and ``beta=1`` reverse KL (the generalised JSD itself vanishes there);
    * ``"skew_forward_kl"``: :math:`\mathrm{KL}(p \| \alpha p + (1-\alpha) q)`;
      ``"skew_reverse_kl"``: :math:`\mathrm{KL}(q \| \alpha q + (1-\alpha) p)` (DistiLLM);
    * ``"tv"``: :math:`\tfrac12 \sum |p - q|`; any other registry name, or an
      :class:`~divergences.fdiv.FDivergence`, as :math:`D_f(p\|q)`.

    The per-token loss is :math:`(1-h)\,c\,D + h\,\mathrm{CE}` with :math:`h` = ``hard_weight``,
    :math:`c = T^2` when ``temperature_scaling`` else 1, and CE the cross-entropy of the
    student at temperature 1 on ``labels``. Tokens whose label is ``ignore_index``, or where
    ``mask == 0``, contribute 0 (value and gradient).

    Parameters
    ----------
    student_logits, teacher_logits:
        ``(..., V)`` tensors with the same batch shape, any float dtype (half precision is
        accumulated in float32). Different ``V`` is a ``ValueError`` unless ``pad_vocab=True``,
        which pads the smaller vocabulary with ``-inf`` logits (zero mass; chunk by chunk,
        never a padded copy of the input). ``-inf`` logits are masked entries: exact values
        (``inf`` where the divergence is infinite) and finite gradients. Gradients flow to
        both (the teacher's only when it requires grad).
    reduction:
        ``"none"`` (per token, batch shape, zeros where ignored), ``"sum"``, ``"mean"`` (over
        kept tokens; 0 with a zero gradient when none is kept) or ``"batchmean"`` (as TRL:
        the mean over kept tokens when ``labels`` or ``mask`` is given, else the sum divided
        by the size of the first batch axis).
    num_items_in_batch:
        If given (int or tensor), the loss is the sum divided by it (gradient accumulation
        over micro-batches); overrides ``reduction`` (which must not be ``"none"``).
    return_components:
        Return a :class:`DistillationOutput` ``(loss, distillation, cross_entropy)``.
    chunk_size:
        Tokens per chunk (default: ``N / 256``, kept between ``2**16 / V`` and ``2**20 / V``).
        Peak memory above the inputs is the gradient (N x V in the logits' dtype) plus about
        8 float32 temporaries of chunk x V (1.03 x N*V*4 bytes in all, measured as peak
        resident memory at (2048, 32000) in float32, "js"; members without closed-form
        partials in the registry, such as ``alpha``, go through autograd per chunk: about 26
        temporaries, 1.12). The backward pass scales the stored gradient in place, so a
        second backward through the same graph is an error.

    The gradient is formed during the forward pass in closed form:
    :math:`\partial D / \partial s_v = (a_v - q_v \sum_u a_u) / T` with
    :math:`a = \partial\,\text{terms} / \partial \log q` from the registry.

    Returns a float32 tensor (float64 for float64 inputs): a scalar, or the batch shape for
    ``reduction="none"``. No host synchronisation on accelerators (on CPU tensors one free
    read per chunk checks for ``-inf`` logits); traces under ``torch.compile``.

    >>> import torch
    >>> from divergences.losses import distillation_loss
    >>> from divergences import kl
    >>> g = torch.Generator().manual_seed(0)
    >>> s, t = torch.randn(2, 3, 5, generator=g), torch.randn(2, 3, 5, generator=g)
    >>> loss = distillation_loss(s, t)
    >>> torch.allclose(loss, kl(t, s, input="logits").mean())
    True
    >>> labels = torch.tensor([[0, 1, -100], [2, -100, -100]])
    >>> per_token = distillation_loss(s, t, "js", beta=0.5, labels=labels, reduction="none")
    >>> per_token[0, 2].item(), per_token.shape
    (0.0, torch.Size([2, 3]))
    """
    s = check_logits(student_logits, "student_logits")
    t = check_logits(teacher_logits, "teacher_logits")
    temp, h = check_options(temperature, hard_weight, reduction, chunk_size)
    fd = resolve_divergence(divergence, beta, alpha)
    if s.shape[:-1] != t.shape[:-1]:
        raise ValueError(
            "student_logits and teacher_logits must have the same batch shape; got "
            f"{tuple(s.shape)} and {tuple(t.shape)}"
        )
    if s.device != t.device:
        raise TypeError(f"student_logits is on {s.device} but teacher_logits on {t.device}")
    vs, vt = s.shape[-1], t.shape[-1]
    if vs != vt and not pad_vocab:
        raise ValueError(
            f"vocabulary sizes differ: student_logits has V={vs}, teacher_logits has "
            f"V={vt}; pass pad_vocab=True to pad the smaller one with -inf (zero mass)"
        )
    if h > 0.0 and labels is None:
        raise ValueError("hard_weight > 0 needs labels for the cross-entropy term")
    batch = s.shape[:-1]
    v = max(vs, vt)
    keep, flat_labels = token_mask(batch, s.device, labels, mask, ignore_index)
    with_ce = flat_labels is not None and (h > 0.0 or return_components)
    s2 = s.reshape(-1, vs)
    t2 = t.reshape(-1, vt)
    n = s2.shape[0]
    safe_labels = (
        torch.where(keep, flat_labels, torch.zeros_like(flat_labels))
        if flat_labels is not None else torch.zeros(n, dtype=torch.long, device=s.device)
    )
    scale = temp * temp if temperature_scaling else 1.0
    chunk = chunk_size or cd.auto_chunk(n, v)
    masked = labels is not None or mask is not None
    out_dtype = torch.float64 if s.dtype == torch.float64 else torch.float32
    weights = token_weights(keep, batch, reduction, num_items_in_batch, masked, out_dtype)
    out, soft, hard = cd.chunked_loss(
        _DenseRows(fd, temp, with_ce), s2, [t2, safe_labels], [True, False], keep,
        w_soft=(1.0 - h) * scale, w_hard=h, chunk=chunk, weights=weights,
    )
    loss = out if weights is not None else out.reshape(batch)
    if not return_components:
        return loss
    return DistillationOutput(
        loss, reduce_values(soft * scale, weights, batch), reduce_values(hard, weights, batch)
    )
