"""Language-model diagnostics: per-token statistics, detection tests, membership scores,
decoding processors, test-time merging coefficients and attention-entropy probes; and
distillation in a Hugging Face ``Trainer`` (:class:`DistillationTrainer`,
:func:`distillation_compute_loss`, :func:`on_policy_inputs`).

Nothing here imports ``transformers`` at import time; the adapters accept any ``torch`` model
(or callable) and import ``transformers`` lazily where they need it (the optional ``[llm]``
extra); the distillation names load ``transformers`` on first use.
"""

from typing import TYPE_CHECKING

from ._attention import AttentionEntropyProbe, attention_entropy
from ._decoding import SelectiveContrastiveLogitsProcessor, selective_contrastive_logits
from ._detection import DetectionResult, detection_test
from ._membership import dc_pdd_score, min_k_percent, reference_frequencies
from ._merging import merge_parameters, merge_predictions, t3_coefficients
from ._stats import CausalLMScorer, Scorer, TokenStatistics, token_statistics

if TYPE_CHECKING:
    from ._trainer import DistillationTrainer, distillation_compute_loss, on_policy_inputs

# Loaded on first use: ._trainer imports transformers (the [llm] extra).
_TRAINER_NAMES = ("DistillationTrainer", "distillation_compute_loss", "on_policy_inputs")


def __getattr__(name: str):
    if name in _TRAINER_NAMES:
        try:
            from . import _trainer
        except ImportError as e:
            if not (e.name or "").startswith("transformers"):
                raise
            raise ImportError(
                f"divergences.llm.{name} needs transformers: pip install 'divergences[llm]'"
            ) from e
        return getattr(_trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_TRAINER_NAMES))


__all__ = [
    "AttentionEntropyProbe",
    "CausalLMScorer",
    "DetectionResult",
    "DistillationTrainer",
    "Scorer",
    "SelectiveContrastiveLogitsProcessor",
    "TokenStatistics",
    "attention_entropy",
    "dc_pdd_score",
    "detection_test",
    "distillation_compute_loss",
    "merge_parameters",
    "merge_predictions",
    "min_k_percent",
    "on_policy_inputs",
    "reference_frequencies",
    "selective_contrastive_logits",
    "t3_coefficients",
    "token_statistics",
]
