"""Training objectives (torch): distillation losses over logits, hidden states or a top-k teacher.

* :func:`distillation_loss`: ``D(teacher || student)`` per token from full logits, chunked over
  tokens with the gradient computed in the forward pass (no N x V temporaries besides it).
* :func:`fused_linear_distillation_loss`: the same from hidden states and LM-head weights,
  chunked over tokens, the logits never materialised whole.
* :func:`sparse_distillation_loss`: the same against a teacher stored as its top-k
  log-probabilities, the missing mass in one tail bucket (or dropped, or renormalised).
* :class:`DistillationLoss`, :class:`FusedLinearDistillationLoss`,
  :class:`SparseDistillationLoss`: ``nn.Module`` faces.

Every divergence formula comes from the registry (:mod:`divergences.fdiv`).
"""

from ._distill import DistillationOutput, distillation_loss
from ._fused_linear import fused_linear_distillation_loss
from ._sparse import sparse_distillation_loss
from .modules import DistillationLoss, FusedLinearDistillationLoss, SparseDistillationLoss

__all__ = [
    "DistillationLoss",
    "DistillationOutput",
    "FusedLinearDistillationLoss",
    "SparseDistillationLoss",
    "distillation_loss",
    "fused_linear_distillation_loss",
    "sparse_distillation_loss",
]
