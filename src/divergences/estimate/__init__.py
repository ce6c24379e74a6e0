"""Estimates of entropy, mutual information and divergences from samples.

Every estimator returns an :class:`Estimate` (``value``, ``stderr``, ``ci_low``, ``ci_high``,
``method``, ``n``; ``float(est)`` is the value). Samples are arrays of shape ``(n,)`` or
``(n, d)``: integer arrays are discrete (each row one symbol), float arrays continuous.
Units are nats unless ``base=`` is given. Randomness (tie-breaking noise, resampling,
permutations) is driven by an explicit ``seed`` (default 0): results are reproducible.

>>> import numpy as np
>>> from divergences.estimate import mutual_information
>>> rng = np.random.default_rng(0)
>>> x = rng.integers(0, 4, size=5000)
>>> e = mutual_information(x, x)              # I(X; X) = H(X) = log 4
>>> round(e.value, 2), e.method
(1.39, 'discrete')
"""

import importlib
from typing import TYPE_CHECKING, Any

# Where each public name lives. The estimators load on first use (PEP 562), so that
# ``from divergences.estimate import mutual_information`` does not pay for the neural and
# learned estimators' torch import, nor the spectral ones' clustering code.
_NAMES = {
    "Estimate": "_result",
    "IndependenceTestResult": "_permutation",
    "compressed_mutual_information": "_compressed",
    "conditional_mutual_information": "_mi",
    "diffusion_spectral_entropy": "_spectral",
    "diffusion_spectral_mutual_information": "_spectral",
    "entropy": "_entropy",
    "independence_test": "_permutation",
    "js": "_divergence",
    "kl": "_divergence",
    "mist_mutual_information": "_mist",
    "mutual_info_scores": "_features",
    "mutual_information": "_mi",
    "neural_mutual_information": "_neural",
    "wasserstein_dependency": "_neural",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ._compressed import compressed_mutual_information
    from ._divergence import js, kl
    from ._entropy import entropy
    from ._features import mutual_info_scores
    from ._mi import conditional_mutual_information, mutual_information
    from ._mist import mist_mutual_information
    from ._neural import neural_mutual_information, wasserstein_dependency
    from ._permutation import IndependenceTestResult, independence_test
    from ._result import Estimate
    from ._spectral import diffusion_spectral_entropy, diffusion_spectral_mutual_information


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'divergences.estimate' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES))


__all__ = [
    "Estimate",
    "IndependenceTestResult",
    "compressed_mutual_information",
    "conditional_mutual_information",
    "diffusion_spectral_entropy",
    "diffusion_spectral_mutual_information",
    "entropy",
    "independence_test",
    "js",
    "kl",
    "mist_mutual_information",
    "mutual_info_scores",
    "mutual_information",
    "neural_mutual_information",
    "wasserstein_dependency",
]
