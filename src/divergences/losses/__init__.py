"""Training objectives (torch): distillation losses over logits, hidden states or a top-k teacher.

* :func:`distillation_loss`: ``D(teacher || student)`` per token from full logits, chunked over
  tokens with the gradient computed in the forward pass (no N x V temporaries besides it).
* :func:`fused_linear_distillation_loss`: the same from hidden states and LM-head weights,
  chunked over tokens, the logits never materialised whole.
* :func:`sparse_distillation_loss`: the same against a teacher stored as its top-k
  log-probabilities, the missing mass in one tail bucket (or dropped, or renormalised).
* :class:`DistillationLoss`, :class:`FusedLinearDistillationLoss`,
  :class:`SparseDistillationLoss`: ``nn.Module`` faces.
* The papers' objectives: preference and RL (:func:`f_dpo_loss`, :func:`f_dpg_loss`,
  :func:`dph_penalty`, :func:`selective_entropy_regularizer`), classification and
  distillation (:func:`plackett_luce_distillation_loss`, :func:`sinkhorn_distillation_loss`,
  :func:`balanced_distillation_loss`, :func:`comp_sum_loss`,
  :func:`compositional_nll`, :func:`nce_loss`) and regularisers
  (:func:`attention_entropy_penalty`, :func:`fairness_penalty`,
  :func:`cs_information_bottleneck_loss`), with ``nn.Module`` faces (:class:`FDPOLoss`,
  :class:`SinkhornDistillationLoss`, ...).

Every divergence formula comes from the registry (:mod:`divergences.fdiv`).
"""

from ._bdkd import BDKDOutput, balanced_distillation_loss
from ._classification import (
    CompositionalOutput,
    comp_sum_loss,
    compositional_nll,
    nce_loss,
    plackett_luce_distillation_loss,
    smooth_adversarial_comp_sum_loss,
)
from ._distill import DistillationOutput, distillation_loss
from ._fused_linear import fused_linear_distillation_loss
from ._preference import FDPGOutput, f_dpg_loss, f_dpo_loss
from ._regularizers import (
    CSIBOutput,
    attention_entropy,
    attention_entropy_penalty,
    cs_information_bottleneck_loss,
    fairness_penalty,
    group_divergence,
)
from ._rl import SIRENOutput, dph_penalty, selective_entropy_regularizer, top_p_entropy
from ._sinkd import sinkhorn_distillation_loss
from ._sparse import sparse_distillation_loss
from .modules import DistillationLoss, FusedLinearDistillationLoss, SparseDistillationLoss
from .objective_modules import (
    AttentionEntropyPenalty,
    BalancedDistillationLoss,
    CompSumLoss,
    CSInformationBottleneckLoss,
    DPHPenalty,
    FairnessPenalty,
    FDPOLoss,
    PlackettLuceDistillationLoss,
    SelectiveEntropyRegularizer,
    SinkhornDistillationLoss,
)

__all__ = [
    "AttentionEntropyPenalty",
    "BDKDOutput",
    "BalancedDistillationLoss",
    "CSIBOutput",
    "CSInformationBottleneckLoss",
    "CompSumLoss",
    "CompositionalOutput",
    "DPHPenalty",
    "DistillationLoss",
    "DistillationOutput",
    "FDPGOutput",
    "FDPOLoss",
    "FairnessPenalty",
    "FusedLinearDistillationLoss",
    "PlackettLuceDistillationLoss",
    "SIRENOutput",
    "SelectiveEntropyRegularizer",
    "SinkhornDistillationLoss",
    "SparseDistillationLoss",
    "attention_entropy",
    "attention_entropy_penalty",
    "balanced_distillation_loss",
    "comp_sum_loss",
    "compositional_nll",
    "cs_information_bottleneck_loss",
    "distillation_loss",
    "dph_penalty",
    "f_dpg_loss",
    "f_dpo_loss",
    "fairness_penalty",
    "fused_linear_distillation_loss",
    "group_divergence",
    "nce_loss",
    "plackett_luce_distillation_loss",
    "selective_entropy_regularizer",
    "sinkhorn_distillation_loss",
    "smooth_adversarial_comp_sum_loss",
    "sparse_distillation_loss",
    "top_p_entropy",
]
