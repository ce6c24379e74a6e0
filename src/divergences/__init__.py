"""divergences: information-theoretic measures for machine learning.

Everything is a divergence: one f-divergence core (:mod:`divergences.fdiv`), stable in log
space, serves exact measures (this namespace and :mod:`divergences.gaussian`), estimates from
samples and training losses.

>>> import divergences as dv
>>> round(float(dv.kl([0.5, 0.5], [0.9, 0.1])), 6)
0.510826
"""

import importlib
from typing import Any

from . import fdiv
from .discrete import (
    alpha_divergence,
    bhattacharyya,
    chi2,
    cross_entropy,
    entropy,
    f_divergence,
    hellinger,
    jeffreys,
    js,
    kl,
    renyi,
    skew_kl,
    tv,
)
from .fdiv import FDivergence

__version__ = "0.1.0"

# Subpackages load on first use (PEP 562): `import divergences` stays as cheap as the core, and
# `divergences.estimate` (scipy.spatial), `divergences.losses` or `divergences.llm` cost their
# import time only for the code that uses them.
_SUBMODULES = frozenset({
    "bounds", "coupling", "dependence", "distributed", "estimate", "gaussian", "kernels", "llm",
    "losses", "report", "text", "transport",
})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'divergences' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES)

__all__ = [
    "FDivergence",
    "alpha_divergence",
    "bhattacharyya",
    "bounds",
    "chi2",
    "coupling",
    "cross_entropy",
    "dependence",
    "distributed",
    "entropy",
    "estimate",
    "f_divergence",
    "fdiv",
    "gaussian",
    "hellinger",
    "jeffreys",
    "js",
    "kernels",
    "kl",
    "llm",
    "losses",
    "renyi",
    "report",
    "skew_kl",
    "text",
    "transport",
    "tv",
]
