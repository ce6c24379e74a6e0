"""``nn.Module`` faces of the distillation losses: the options at construction, the tensors at call."""

from __future__ import annotations

import torch
from torch import nn

from .. import fdiv
from .._arrays import check_choice
from ._distill import (
    SKEWED,
    DistillationOutput,
    check_options,
    distillation_loss,
    resolve_divergence,
    resolve_vocab,
)
from ._fused_linear import fused_linear_distillation_loss
from ._sparse import TAILS, sparse_distillation_loss

__all__ = ["DistillationLoss", "FusedLinearDistillationLoss", "SparseDistillationLoss"]


def _resolve_names(divergence, beta, alpha, skew):
    """``(alpha, skew)`` as the loss functions take them, checked once at construction.

    The deprecated ``alpha=`` for a skew divergence's mixture weight warns here, once, and is
    stored as ``skew``, so that calls do not warn again.
    """
    resolve_divergence(divergence, beta, alpha, skew, stacklevel=4)
    if isinstance(divergence, str) and divergence in SKEWED and alpha is not None:
        return None, alpha
    return alpha, skew



class DistillationLoss(nn.Module):
    """Module face of :func:`~divergences.losses.distillation_loss`.

    The options (divergence, ``beta``, ``alpha`` (an order), ``temperature``,
    ``ignore_index``, ``reduction``, ``hard_weight``, ``temperature_scaling``, ``chunk_size``,
    ``pad_vocab``, and keyword-only ``skew``, ``vocab``, ``chunk_bytes`` and ``validate``) are
    fixed at construction and checked there (the deprecated ``alpha=`` for a skew
    divergence's weight warns once, there, and is kept as ``skew``); ``forward(student_logits, teacher_logits,
    labels=None, mask=None, num_items_in_batch=None, return_components=False)``.

    >>> import torch
    >>> from divergences.losses import DistillationLoss, distillation_loss
    >>> g = torch.Generator().manual_seed(0)
    >>> s, t = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    >>> crit = DistillationLoss("js", beta=0.5, temperature=2.0)
    >>> torch.equal(crit(s, t), distillation_loss(s, t, "js", beta=0.5, temperature=2.0))
    True
    """

    def __init__(
        self,
        divergence: str | fdiv.FDivergence = "forward_kl",
        beta: float = 0.5,
        alpha: float | None = None,
        temperature: float = 1.0,
        ignore_index: int = -100,
        reduction: str = "mean",
        hard_weight: float = 0.0,
        temperature_scaling: bool = False,
        chunk_size: int | None = None,
        pad_vocab: bool = False,
        *,
        skew: float | None = None,
        vocab: str | None = None,
        chunk_bytes: int | None = None,
        validate: bool = True,
    ) -> None:
        super().__init__()
        check_options(temperature, hard_weight, reduction, chunk_size, chunk_bytes)
        self.divergence = divergence
        self.beta = beta
        self.alpha, self.skew = _resolve_names(divergence, beta, alpha, skew)
        self.vocab = resolve_vocab(vocab, pad_vocab)
        self.temperature = temperature
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.hard_weight = hard_weight
        self.temperature_scaling = temperature_scaling
        self.chunk_size = chunk_size
        self.chunk_bytes = chunk_bytes
        self.validate = validate
        self.pad_vocab = pad_vocab

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        labels: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        return_components: bool = False,
    ) -> torch.Tensor | DistillationOutput:
        return distillation_loss(
            student_logits, teacher_logits, self.divergence, beta=self.beta, alpha=self.alpha,
            temperature=self.temperature, labels=labels, ignore_index=self.ignore_index,
            mask=mask, reduction=self.reduction, num_items_in_batch=num_items_in_batch,
            hard_weight=self.hard_weight, temperature_scaling=self.temperature_scaling,
            return_components=return_components, chunk_size=self.chunk_size,
            chunk_bytes=self.chunk_bytes, validate=self.validate,
            skew=self.skew, vocab=self.vocab,
        )

    def extra_repr(self) -> str:
        name = self.divergence if isinstance(self.divergence, str) else self.divergence.name
        return (f"divergence={name!r}, beta={self.beta}, alpha={self.alpha}, "
                f"skew={self.skew}, temperature={self.temperature}, "
                f"reduction={self.reduction!r}, hard_weight={self.hard_weight}")


class SparseDistillationLoss(nn.Module):
    """Module face of :func:`~divergences.losses.sparse_distillation_loss`.

    Options at construction (``tail``, divergence, ``beta``, ``alpha``, ``temperature``,
    ``ignore_index``, ``reduction``, ``hard_weight``, ``temperature_scaling``, ``chunk_size``,
    ``validate``, keyword-only ``skew`` and ``chunk_bytes``); ``forward(student_logits,
    teacher_topk_indices, teacher_topk_logprobs,
    labels=None, mask=None, num_items_in_batch=None, return_components=False)``.

    >>> import torch
    >>> from divergences.losses import SparseDistillationLoss
    >>> g = torch.Generator().manual_seed(0)
    >>> s, t = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g)
    >>> top = torch.log_softmax(t, -1).topk(4)
    >>> crit = SparseDistillationLoss(tail="bucket", divergence="reverse_kl")
    >>> crit(s, top.indices, top.values).shape
    torch.Size([])
    """

    def __init__(
        self,
        tail: str = "bucket",
        divergence: str | fdiv.FDivergence = "forward_kl",
        beta: float = 0.5,
        alpha: float | None = None,
        temperature: float = 1.0,
        ignore_index: int = -100,
        reduction: str = "mean",
        hard_weight: float = 0.0,
        temperature_scaling: bool = False,
        chunk_size: int | None = None,
        validate: bool = True,
        *,
        skew: float | None = None,
        chunk_bytes: int | None = None,
    ) -> None:
        super().__init__()
        check_choice(tail, "tail", TAILS)
        check_options(temperature, hard_weight, reduction, chunk_size, chunk_bytes)
        self.tail = tail
        self.divergence = divergence
        self.beta = beta
        self.alpha, self.skew = _resolve_names(divergence, beta, alpha, skew)
        self.temperature = temperature
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.hard_weight = hard_weight
        self.temperature_scaling = temperature_scaling
        self.chunk_size = chunk_size
        self.chunk_bytes = chunk_bytes
        self.validate = validate

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_topk_indices: torch.Tensor,
        teacher_topk_logprobs: torch.Tensor,
        labels: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        return_components: bool = False,
    ) -> torch.Tensor | DistillationOutput:
        return sparse_distillation_loss(
            student_logits, teacher_topk_indices, teacher_topk_logprobs, tail=self.tail,
            divergence=self.divergence, beta=self.beta, alpha=self.alpha,
            temperature=self.temperature, labels=labels, ignore_index=self.ignore_index,
            mask=mask, reduction=self.reduction, num_items_in_batch=num_items_in_batch,
            hard_weight=self.hard_weight, temperature_scaling=self.temperature_scaling,
            return_components=return_components, chunk_size=self.chunk_size,
            chunk_bytes=self.chunk_bytes,
            validate=self.validate, skew=self.skew,
        )

    def extra_repr(self) -> str:
        name = self.divergence if isinstance(self.divergence, str) else self.divergence.name
        return (f"tail={self.tail!r}, divergence={name!r}, temperature={self.temperature}, "
                f"reduction={self.reduction!r}")


class FusedLinearDistillationLoss(nn.Module):
    """Module face of :func:`~divergences.losses.fused_linear_distillation_loss`.

    Options at construction (those of :class:`DistillationLoss`, ``skew``, ``vocab``,
    ``chunk_bytes`` and ``validate`` included, plus ``vocab_tile``,
    ``student_logit_scale``,
    ``teacher_logit_scale``, ``student_final_logit_softcapping``,
    ``teacher_final_logit_softcapping``); ``forward(student_hidden, student_weight,
    teacher_hidden, teacher_weight, student_bias=None, teacher_bias=None, labels=None,
    mask=None, num_items_in_batch=None, return_components=False)``.

    >>> import torch
    >>> from divergences.losses import FusedLinearDistillationLoss
    >>> g = torch.Generator().manual_seed(0)
    >>> lm_s = torch.nn.Linear(4, 10, bias=False)
    >>> crit = FusedLinearDistillationLoss("js", beta=0.5)
    >>> hs, ht, wt = torch.randn(6, 4, generator=g), torch.randn(6, 8), torch.randn(10, 8)
    >>> loss = crit(hs, lm_s.weight, ht, wt)
    >>> loss.backward()
    >>> lm_s.weight.grad.shape
    torch.Size([10, 4])
    """

    def __init__(
        self,
        divergence: str | fdiv.FDivergence = "forward_kl",
        beta: float = 0.5,
        alpha: float | None = None,
        temperature: float = 1.0,
        ignore_index: int = -100,
        reduction: str = "mean",
        hard_weight: float = 0.0,
        temperature_scaling: bool = False,
        chunk_size: int | None = None,
        vocab_tile: int | None = None,
        pad_vocab: bool = False,
        student_logit_scale: float = 1.0,
        teacher_logit_scale: float = 1.0,
        student_final_logit_softcapping: float | None = None,
        teacher_final_logit_softcapping: float | None = None,
        *,
        skew: float | None = None,
        vocab: str | None = None,
        chunk_bytes: int | None = None,
        validate: bool = True,
    ) -> None:
        super().__init__()
        check_options(temperature, hard_weight, reduction, chunk_size, chunk_bytes)
        self.divergence = divergence
        self.beta = beta
        self.alpha, self.skew = _resolve_names(divergence, beta, alpha, skew)
        self.vocab = resolve_vocab(vocab, pad_vocab)
        self.temperature = temperature
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.hard_weight = hard_weight
        self.temperature_scaling = temperature_scaling
        self.chunk_size = chunk_size
        self.chunk_bytes = chunk_bytes
        self.validate = validate
        self.vocab_tile = vocab_tile
        self.pad_vocab = pad_vocab
        self.student_logit_scale = student_logit_scale
        self.teacher_logit_scale = teacher_logit_scale
        self.student_final_logit_softcapping = student_final_logit_softcapping
        self.teacher_final_logit_softcapping = teacher_final_logit_softcapping

    def forward(
        self,
        student_hidden: torch.Tensor,
        student_weight: torch.Tensor,
        teacher_hidden: torch.Tensor,
        teacher_weight: torch.Tensor,
        student_bias: torch.Tensor | None = None,
        teacher_bias: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        return_components: bool = False,
    ) -> torch.Tensor | DistillationOutput:
        return fused_linear_distillation_loss(
            student_hidden, student_weight, teacher_hidden, teacher_weight,
            student_bias=student_bias, teacher_bias=teacher_bias, divergence=self.divergence,
            beta=self.beta, alpha=self.alpha, temperature=self.temperature, labels=labels,
            ignore_index=self.ignore_index, mask=mask, reduction=self.reduction,
            num_items_in_batch=num_items_in_batch, hard_weight=self.hard_weight,
            temperature_scaling=self.temperature_scaling, return_components=return_components,
            chunk_size=self.chunk_size, chunk_bytes=self.chunk_bytes, validate=self.validate,
            vocab_tile=self.vocab_tile, vocab=self.vocab,
            skew=self.skew,
            student_logit_scale=self.student_logit_scale,
            teacher_logit_scale=self.teacher_logit_scale,
            student_final_logit_softcapping=self.student_final_logit_softcapping,
            teacher_final_logit_softcapping=self.teacher_final_logit_softcapping,
        )

    def extra_repr(self) -> str:
        name = self.divergence if isinstance(self.divergence, str) else self.divergence.name
        return (f"divergence={name!r}, beta={self.beta}, temperature={self.temperature}, "
                f"reduction={self.reduction!r}, hard_weight={self.hard_weight}")
