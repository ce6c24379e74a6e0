"""divergences: information-theoretic measures for machine learning.

Everything is a divergence: one f-divergence core (:mod:`divergences.fdiv`), stable in log
space, serves exact measures (this namespace and :mod:`divergences.gaussian`), estimates from
samples and training losses.

>>> import divergences as dv
>>> round(float(dv.kl([0.5, 0.5], [0.9, 0.1])), 6)
0.510826
"""

from . import (
    bounds,
    coupling,
    dependence,
    estimate,
    fdiv,
    gaussian,
    kernels,
    llm,
    losses,
    text,
    transport,
)
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

__all__ = [
    "FDivergence",
    "alpha_divergence",
    "bhattacharyya",
    "bounds",
    "chi2",
    "coupling",
    "cross_entropy",
    "dependence",
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
    "skew_kl",
    "text",
    "transport",
    "tv",
]
