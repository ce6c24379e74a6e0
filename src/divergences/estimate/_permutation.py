"""Permutation test of independence with an estimator (or dependence measure) as statistic."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._arrays import check_choice
from .._permutation import TestResult, check_permutations, permutation_pvalue
from . import _input
from ._mi import MI_METHODS, auto_mi_method, mutual_information

STATISTICS = ("mi", "dcor", "hsic")
BLOCK = 25  # permutations per independently seeded block
_PROVIDERS = {"dcor": ("divergences.dependence", "distance_correlation"),
              "hsic": ("divergences.kernels", "hsic")}


@dataclass(frozen=True)
class IndependenceTestResult(TestResult):
    """:class:`~divergences._permutation.TestResult` plus what the statistic was.

    ``statistic_name`` (``"mi"``, ``"dcor"``, ``"hsic"``), ``estimator`` (for ``"mi"``, the
    MI method that ran) and ``null_distribution`` (the permuted statistics).
    """

    __test__ = False

    statistic_name: str = "mi"
    estimator: str = ""
    null_distribution: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False,
                                          compare=False)


def _provider(statistic: str) -> Callable[..., Any]:
    module, name = _PROVIDERS[statistic]
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"statistic={statistic!r} needs {module}.{name}, which could not be imported "
            f"({exc}); use statistic='mi'"
        ) from None
    return getattr(mod, name)


def independence_test(
    x: Any,
    y: Any,
    statistic: str = "mi",
    permutations: int = 1000,
    seed: int | None = 0,
    *,
    method: str = "auto",
    k: int = 3,
    n_jobs: int = -1,
) -> IndependenceTestResult:
    r"""Permutation test of :math:`H_0: X \perp Y` from paired samples.

    The statistic ``T`` is computed on ``(x, y)`` and on ``permutations`` copies with the rows
    of ``y`` shuffled (seeded by ``seed``), which breaks any dependence while keeping both
    marginals. The p-value is ``(1 + #{T_b >= T}) / (1 + B)`` (the +1 correction makes it a
    valid, never-zero p-value under exchangeability; one-sided, large ``T`` is evidence of
    dependence).

    Statistics: ``"mi"`` (:func:`mutual_information` with ``method`` and ``k``; ``"auto"`` is
    resolved once on the observed data and the same estimator is used for every permutation),
    ``"dcor"`` (:func:`divergences.dependence.distance_correlation`) and ``"hsic"``
    (:func:`divergences.kernels.hsic`); the last two are imported on first use.

    Parallel: the permutations are cut into blocks of 25; block ``b`` draws its permutations
    from its own generator, ``SeedSequence(seed).spawn(...)[b]``, so the null distribution
    depends on ``seed`` only, never on how many workers ran the blocks: ``n_jobs=1`` and
    ``n_jobs=8`` give bit-identical results. ``n_jobs`` threads (``-1``: ``os.cpu_count()``)
    run the blocks: threads, not processes, because the kNN MI statistics spend most of
    their time in scipy's k-d tree queries and numpy kernels, which release the GIL, and
    threads need no copy of the data.

    Returns an :class:`IndependenceTestResult` with scipy's field names ``statistic`` and
    ``pvalue``.

    >>> import numpy as np
    >>> from divergences.estimate import independence_test
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=300)
    >>> res = independence_test(x, x**2 + 0.5 * rng.normal(size=300), permutations=99)
    >>> res.pvalue     # 1 / (1 + 99): no permutation reached the observed MI
    0.01
    """
    check_choice(statistic, "statistic", STATISTICS)
    check_choice(method, "method", MI_METHODS)
    permutations = check_permutations(permutations)
    seed = _input.check_seed(seed)
    n_jobs = _check_jobs(n_jobs)
    xa, xd = _input.as_sample(x, "x")
    ya, yd = _input.as_sample(y, "y")
    n = _input.same_length(("x", xa), ("y", ya))
    if statistic == "mi":
        resolved = auto_mi_method(xa, xd, ya, yd) if method == "auto" else method
        xin = xa if xd else xa.astype(np.float64)
        yin = ya if yd else ya.astype(np.float64)

        def stat(yy: np.ndarray) -> float:
            # raw values: a floor at 0 would tie every permuted value below 0 with an
            # observed one below 0 and blunt the ordering the p-value counts on
            return mutual_information(xin, yy, method=resolved, k=k, seed=seed,
                                      ci="normal", clip=False).value
    else:
        fn = _provider(statistic)
        resolved = statistic
        xin = xa.astype(np.float64)
        yin = ya.astype(np.float64)

        def stat(yy: np.ndarray) -> float:
            return float(fn(xin, yy))

    observed = stat(yin)
    sizes = [min(BLOCK, permutations - s) for s in range(0, permutations, BLOCK)]
    children = np.random.SeedSequence(seed).spawn(len(sizes))

    def block(b: int) -> list[float]:
        rng = np.random.default_rng(children[b])
        return [stat(yin[rng.permutation(n)]) for _ in range(sizes[b])]

    workers = min(n_jobs, len(sizes))
    if workers == 1:
        parts = [block(b) for b in range(len(sizes))]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(block, range(len(sizes))))
    null = np.array([v for part in parts for v in part])
    return IndependenceTestResult(
        statistic=float(observed), pvalue=permutation_pvalue(observed, null),
        method="permutation", permutations=permutations, statistic_name=statistic,
        estimator=resolved, null_distribution=null,
    )


def _check_jobs(n_jobs: object) -> int:
    """``n_jobs`` as a positive worker count; ``-1`` means every CPU."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)):
        raise TypeError(f"n_jobs must be an int (-1 for all CPUs); got {type(n_jobs).__name__}")
    if n_jobs == -1:
        return os.cpu_count() or 1
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1 or -1 (all CPUs); got {n_jobs}")
    return int(n_jobs)
