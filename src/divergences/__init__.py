"""divergences: information-theoretic measures for machine learning.

Everything is a divergence: one f-divergence core (:mod:`divergences.fdiv`), stable in log
space, serves exact measures (this namespace and :mod:`divergences.gaussian`), estimates from
samples and training losses.

>>> import divergences as dv
>>> round(float(dv.kl([0.5, 0.5], [0.9, 0.1])), 6)
0.510826
"""

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Everything loads on first use (PEP 562). The exact measures and the registry run on torch,
# which takes a second or more to import: `import divergences` (and so `divergences --help`,
# whose module lives in this package) must not pay for it before a measure is called.
# `divergences.estimate` (scipy.spatial), `divergences.losses` or `divergences.llm` likewise
# cost their import time only for the code that uses them.
_SUBMODULES = frozenset({
    "bounds", "coupling", "dependence", "discrete", "distributed", "distributions", "estimate",
    "fdiv",
    "gaussian", "kernels", "llm", "losses", "report", "text", "transport",
})
# name -> module that defines it
_NAMES = {
    **{n: "discrete" for n in (
        "alpha_divergence", "bhattacharyya", "chi2", "cross_entropy", "entropy", "f_divergence",
        "hellinger", "jeffreys", "js", "kl", "renyi", "skew_kl", "tv",
    )},
    "FDivergence": "fdiv",
}

if TYPE_CHECKING:  # static tools see the eager imports
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


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    elif name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    else:
        raise AttributeError(f"module 'divergences' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES | set(_NAMES))

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
