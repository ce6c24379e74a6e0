"""Language-model diagnostics: per-token statistics, detection tests, membership scores,
decoding processors, test-time merging coefficients and attention-entropy probes.

Nothing here imports ``transformers`` at import time; the adapters accept any ``torch`` model
(or callable) and import ``transformers`` lazily where they need it (the optional ``[llm]``
extra).
"""

from ._attention import AttentionEntropyProbe, attention_entropy
from ._decoding import SelectiveContrastiveLogitsProcessor, selective_contrastive_logits
from ._detection import DetectionResult, detection_test
from ._membership import dc_pdd_score, min_k_percent, reference_frequencies
from ._merging import merge_parameters, merge_predictions, t3_coefficients
from ._stats import CausalLMScorer, Scorer, TokenStatistics, token_statistics

__all__ = [
    "AttentionEntropyProbe",
    "CausalLMScorer",
    "DetectionResult",
    "Scorer",
    "SelectiveContrastiveLogitsProcessor",
    "TokenStatistics",
    "attention_entropy",
    "dc_pdd_score",
    "detection_test",
    "merge_parameters",
    "merge_predictions",
    "min_k_percent",
    "reference_frequencies",
    "selective_contrastive_logits",
    "t3_coefficients",
    "token_statistics",
]
