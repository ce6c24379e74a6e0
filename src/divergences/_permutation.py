"""Shared result type and p-value rule for the permutation and asymptotic tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TestResult:
    """Outcome of an independence or two-sample test (field names follow scipy).

    ``statistic`` is the observed statistic, ``pvalue`` the p-value, ``method`` how the null
    distribution was obtained (``"permutation"`` or ``"gamma"``) and ``permutations`` the
    number of permutations drawn (0 for an asymptotic test).
    """

    __test__ = False  # not a pytest test class

    statistic: float
    pvalue: float
    method: str
    permutations: int = 0


def permutation_pvalue(observed: float, null: np.ndarray) -> float:
    """``(1 + #{null >= observed}) / (1 + B)``: never 0, exact level under exchangeability.

    A relative tolerance of ``1e-12`` counts permuted statistics equal to the observed one
    up to rounding as ties (the identity permutation, for instance).
    """
    null = np.asarray(null, dtype=np.float64)
    tol = 1e-12 * max(1.0, abs(observed))
    return float((1 + np.count_nonzero(null >= observed - tol)) / (1 + null.size))


def check_permutations(permutations: object) -> int:
    """A positive ``int`` number of permutations, else ``TypeError``/``ValueError``."""
    if isinstance(permutations, bool) or not isinstance(permutations, (int, np.integer)):
        raise TypeError(f"permutations must be an int; got {type(permutations).__name__}")
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1; got {permutations}")
    return int(permutations)
