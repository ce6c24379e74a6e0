"""The :class:`Estimate` every estimator returns, and the interval machinery behind it."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import special

from .._arrays import check_range, log_base

__all__ = ["Estimate"]


def _units(base: float | None, unit: str | None = None) -> str:
    if unit is not None:
        return unit
    if base is None:
        return "nats"
    if base == 2:
        return "bits"
    if base == 10:
        return "hartleys"
    return f"log{base:g} units"


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its standard error and confidence interval.

    ``value``
        The estimate, in nats (``base=None``) or in ``base`` units.
    ``stderr``
        Its standard error (same units). How it is computed is said by ``ci_method`` and by
        the docstring of the estimator that produced it.
    ``ci_low``, ``ci_high``
        A ``level`` (95% by default) confidence interval. ``ci_method="normal"`` means
        ``value -/+ z * stderr`` with ``z`` the normal quantile; ``"bootstrap"`` means the
        percentile (with-replacement) or half-sampling interval described by the estimator.
    ``method``
        The estimator that was run (``"auto"`` is resolved to the method it picked).
    ``n``
        The number of samples it used.
    ``base``
        ``None`` for nats, else the logarithm base of the units.
    ``unit``
        ``None`` for information units (set by ``base``); otherwise the name of the units of
        a quantity that is not an information, e.g. ``"data units"`` for
        :func:`~divergences.estimate.wasserstein_dependency`.
    ``clipped``
        ``True`` when the estimate is of a non-negative quantity (mutual information,
        conditional MI, KL, JS, Shannon entropy) and its raw value or interval fell below 0
        and was floored at 0 (estimation error: the quantity itself is never negative).
    ``raw_value``
        For a non-negative quantity, the value before flooring (the same as ``value`` when
        nothing was clipped); an average of many estimates should use it, since flooring
        biases each one up near 0. ``None`` for quantities that may be negative
        (differential entropy) or when ``clip=False`` was asked for.
    ``details``
        Method-specific extras (``k``, per-sample terms, neighbour counts, ...); not compared.

    ``float(est)`` is ``est.value``. :meth:`to_base` converts units. Every estimator returns
    ``ci_low <= value <= ci_high``.

    >>> from divergences.estimate import Estimate
    >>> e = Estimate(value=0.6931471805599453, stderr=0.01, ci_low=0.6735, ci_high=0.7127,
    ...              method="plugin", n=1000)
    >>> float(e)
    0.6931471805599453
    >>> e
    Estimate(0.6931 nats, stderr 0.01, 95% CI [0.6735, 0.7127], method='plugin', n=1000)
    >>> round(e.to_base(2).value, 6)
    1.0
    """

    value: float
    stderr: float
    ci_low: float
    ci_high: float
    method: str
    n: int
    base: float | None = None
    level: float = 0.95
    ci_method: str = "normal"
    unit: str | None = None
    clipped: bool = False
    raw_value: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __float__(self) -> float:
        return float(self.value)

    def __repr__(self) -> str:
        return (
            f"Estimate({self.value:.4g} {_units(self.base, self.unit)}, stderr {self.stderr:.2g}, "
            f"{self.level:.0%} CI [{self.ci_low:.4g}, {self.ci_high:.4g}], "
            f"method={self.method!r}, n={self.n})"
        )

    @property
    def units(self) -> str:
        """``"nats"``, ``"bits"``, ... as a word (or ``unit`` when it is set)."""
        return _units(self.base, self.unit)

    def to_base(self, base: float | None) -> Estimate:
        """The same estimate in ``base`` units (``None`` for nats, ``2`` for bits)."""
        if self.unit is not None:
            raise ValueError(f"this estimate is in {self.unit}, not an information unit; "
                             "it has no base to convert")
        old = 1.0 if self.base is None else math.log(self.base)
        new = log_base(base)
        factor = old / (1.0 if new is None else new)
        return replace(
            self,
            value=self.value * factor,
            stderr=self.stderr * factor,
            ci_low=self.ci_low * factor,
            ci_high=self.ci_high * factor,
            raw_value=None if self.raw_value is None else self.raw_value * factor,
            base=base,
        )


# --------------------------------------------------------------------------------------------
# Construction helpers used by the estimators
# --------------------------------------------------------------------------------------------


def check_level(level: float) -> float:
    return check_range(level, "level", 0.0, 1.0, low_open=True, high_open=True)


def z_value(level: float) -> float:
    return float(special.ndtri(0.5 + level / 2.0))


def from_local(
    local: np.ndarray, method: str, *, offset: float = 0.0, level: float = 0.95,
    details: Mapping[str, Any] | None = None,
) -> Estimate:
    """An estimate that is ``offset + mean(local)``, stderr ``std(local) / sqrt(n)``."""
    n = int(local.shape[0])
    value = float(offset + np.mean(local))
    stderr = float(np.std(local, ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    return make(value, stderr, method, n, level=level, details=details)


def make(
    value: float, stderr: float, method: str, n: int, *, level: float = 0.95,
    ci_method: str = "normal", ci: tuple[float, float] | None = None,
    details: Mapping[str, Any] | None = None,
) -> Estimate:
    if ci is None:
        z = z_value(level)
        ci = (value - z * stderr, value + z * stderr)
    return Estimate(
        value=float(value), stderr=float(stderr), ci_low=float(ci[0]), ci_high=float(ci[1]),
        method=method, n=int(n), level=level, ci_method=ci_method,
        details=dict(details or {}),
    )


def add_null_variance(est: Estimate, df: float) -> Estimate:
    """Add the second-order variance ``df / (2 n^2)`` of a likelihood-ratio-type estimate.

    At independence the first-order (delta-method) standard error of a plug-in or Gaussian
    MI vanishes, while ``2 n I_hat`` is asymptotically chi-squared with ``df`` degrees of
    freedom, whose standard deviation gives ``sqrt(2 df) / (2n)``. Adding this variance keeps
    the interval honest near 0 and is negligible far from it.
    """
    n = est.n
    stderr = math.sqrt(est.stderr**2 + df / (2.0 * n * n))
    z = z_value(est.level)
    return replace(est, stderr=stderr, ci_low=est.value - z * stderr,
                   ci_high=est.value + z * stderr)


def finalize(est: Estimate, *, base: float | None, clip: bool) -> Estimate:
    """The last step of every estimator: interval check, ``clip``, units.

    The interval must hold its own point. The estimators build both from one procedure so
    that it does; should a resampling interval still miss the point (a percentile interval
    of a biased statistic can), it is extended to reach it (``details["interval_extended"]``)
    rather than returned contradicting the point.

    ``clip`` (non-negative quantities): value and interval are floored at 0; ``raw_value``
    keeps the value before, ``clipped`` says whether anything moved, and
    ``details["unclipped_value"]``, ``details["unclipped_ci"]`` keep the raw numbers.
    A NaN value stays NaN.
    """
    if not est.ci_low <= est.value <= est.ci_high and not math.isnan(est.value):
        details = dict(est.details)
        details["interval_extended"] = (est.ci_low, est.ci_high)
        est = replace(est, ci_low=min(est.ci_low, est.value), ci_high=max(est.ci_high, est.value),
                      details=details)
    if clip:
        details = dict(est.details)
        details["unclipped_value"] = est.value
        details["unclipped_ci"] = (est.ci_low, est.ci_high)
        moved = bool(est.value < 0 or est.ci_low < 0 or est.ci_high < 0)
        est = replace(est, value=_floor(est.value), ci_low=_floor(est.ci_low),
                      ci_high=_floor(est.ci_high), clipped=moved, raw_value=est.value,
                      details=details)
    if base is not None:
        est = est.to_base(base)
    return est


def _floor(v: float) -> float:
    return v if math.isnan(v) else max(v, 0.0)


Statistic = Callable[[np.ndarray], float]


def resample_interval(
    est: Estimate, statistic: Statistic, n: int, *, n_boot: int, seed: int | None,
    level: float, replacement: bool,
) -> Estimate:
    """Replace the interval of ``est`` by a resampling interval.

    ``statistic(idx)`` recomputes the estimate on the rows ``idx``.

    ``replacement=True``: the ordinary bootstrap (``n`` rows drawn with replacement);
    stderr is the spread of the replicates and the interval their percentiles re-centred on
    the point, ``[T_n - (q_50 - q_lo), T_n + (q_hi - q_50)]`` (``q`` the replicates'
    quantiles): the plain percentile interval of a biased statistic can miss ``T_n``.

    ``replacement=False``: half-sampling (``n // 2`` rows drawn without replacement), used by
    nearest-neighbour and spacing estimators, which a with-replacement bootstrap breaks (the
    duplicated rows sit at distance 0 from each other). For a mean of ``n`` terms,
    ``Var(T_{n/2} - T_n) = sigma^2 (2/n - 1/n) = sigma^2 / n = Var(T_n)``, so the spread of
    the half-sample replicates around ``T_n`` estimates the standard error of ``T_n``
    directly; the interval is the normal one, ``T_n -/+ z * stderr`` (half-size estimates
    carry a different small-sample bias, which would shift a percentile interval).
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)):
        raise TypeError(f"n_boot must be an integer; got {type(n_boot).__name__}")
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2; got {n_boot}")
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    m = n if replacement else n // 2
    for b in range(n_boot):
        if replacement:
            idx = rng.integers(0, n, size=n)
        else:
            idx = rng.choice(n, size=m, replace=False)
        reps[b] = statistic(idx)
    alpha = (1.0 - level) / 2.0
    if replacement:
        # The percentile interval re-centred on the point: the replicates of a biased
        # statistic (a plug-in MI, say) sit around T_n + bias, so their raw percentiles can
        # exclude T_n itself; their spread around their median is kept, their centre moved
        # to T_n, so the point always lies inside its interval.
        stderr = float(np.std(reps, ddof=1))
        q_lo, med, q_hi = np.quantile(reps, [alpha, 0.5, 1.0 - alpha])
        lo, hi = est.value - (med - q_lo), est.value + (q_hi - med)
    else:
        stderr = float(np.std(reps, ddof=1))
        z = z_value(level)
        lo, hi = est.value - z * stderr, est.value + z * stderr
    details = dict(est.details)
    details.update(n_boot=n_boot, bootstrap="with replacement" if replacement else "half-sampling")
    return replace(est, stderr=stderr, ci_low=float(lo), ci_high=float(hi),
                   ci_method="bootstrap", details=details)


def bias_aware_interval(
    est: Estimate, statistic: Statistic, n: int, *, seed: int | None, splits: int = 2,
    rate: float = 0.35, ladder: Callable[[int], float] | None = None,
    ladder_rate: float = 0.25,
) -> Estimate:
    r"""The bias-aware interval: the estimated finite-sample bias widens the interval.

    ``statistic(idx)`` recomputes the estimate on the rows ``idx``; for a nearest-neighbour
    estimator, ``ladder(j)`` recomputes it on all rows with ``j`` times as many neighbours.

    Bias, neighbour ladder (when ``ladder`` is given). The bias of a k-nearest-neighbour
    estimate is governed by the size of the neighbourhoods, about ``b(k) = c (k/n)^a``, so
    the estimates with ``2k`` and ``4k`` neighbours differ by ``b(k) 2^a (2^a - 1)`` and
    :math:`\hat b = (T_{4k} - T_{2k}) / (2^a (2^a - 1))` estimates the bias of ``T_k``, with
    ``a = ladder_rate`` (default 0.25, a factor 4.45). Cautious because boundary biases
    fall off more slowly in ``k`` than the ladder's two rungs suggest: on the uniform-noise
    task the bias is 1.65 (n = 1000) and 2.26 (n = 5000) times ``T_4k - T_2k``; with
    ``a = 0.35`` (a factor 2.86) its coverage at n = 5000 was 80%, with 0.25 90%, and no
    other task of the suite changed (their ladders show little bias). The
    rungs ``2k, 4k`` rather than ``k, 2k``: the step from ``k`` is dominated by small-``k``
    effects that the digamma terms leave (KSG on the benchmark's Student-t task at
    ``n = 5000``: ``T_6 - T_3 = -0.001`` against a bias of -0.011). All rows are used at every
    rung, so this is much less noisy than the half-sample estimate below (standard deviation
    0.035 against 0.08 on the uniform-noise task at ``n = 1000``), which is what lifted that
    task's coverage from 72% to 92% (``benchmarks/RESULTS.md``).

    Bias, half samples (no ``ladder``). With ``b(n) = c / n^a``, the mean ``T_m`` of the
    ``2 * splits`` half-sample estimates (``m = n // 2``) gives (Richardson)
    :math:`\hat b = (T_m - T_n) / ((n/m)^a - 1)`, ``a = rate``.

    ``rate`` (default 0.35) is deliberately slow: the bias of the nearest-neighbour
    estimators at high MI decays more slowly than ``1/n`` (KSG on the benchmark's spiral
    task: -0.15 nats at ``n = 1000``, -0.075 at ``n = 5000``, ``a`` about 0.43), and a smaller
    ``a`` gives a larger, more cautious ``|b_hat|``.

    Standard error. The rows are split ``splits`` times (seeded) into two disjoint halves
    ``A_s``, ``B_s``. For a statistic with ``sqrt(n)`` fluctuations,
    ``Var((T_A - T_B) / 2) = Var(T_m) / 2 = Var(T_n)`` for disjoint halves, so
    ``v_h = mean_s (T_{A_s} - T_{B_s})^2 / 4`` estimates ``Var(T_n)`` including the dependence
    between nearest-neighbour local terms, which the local-term variance ``se^2`` of ``est``
    ignores (10-30% too small for KSG); ``v_h`` has only ``splits`` degrees of freedom. The
    stderr becomes the pooled :math:`\max(se, \sqrt{(se^2 + v_h)/2})`: never below the
    local-term one (a noisy variance estimate that happens to be small would otherwise
    shorten the interval: at independence that cost 1-2 of 30 covers in our tests).

    Interval: the point estimate is unchanged; the interval is the union of the normal
    interval around ``T_n`` and the same interval around the bias-corrected ``T_n - b_hat``:
    ``[T_n - z s - max(b_hat, 0), T_n + z s + max(-b_hat, 0)]`` with ``s`` the pooled
    stderr. ``details`` gains ``bias_estimate`` (``b_hat``), ``bias_method``
    (``"neighbour_ladder"`` or ``"half_samples"``), ``ladder_values`` (``T_2k``, ``T_4k``),
    ``half_sample_mean`` (``T_m``), ``half_samples``, ``local_stderr`` (``se``),
    ``bias_splits`` and ``bias_rate``. Costs about ``splits`` extra full-size evaluations, plus
    the two rungs of the ladder. Coverage measured on the benchmark suite:
    ``benchmarks/RESULTS.md``.
    """
    rng = np.random.default_rng(seed)
    m = n // 2
    halves = []
    for _ in range(splits):
        perm = rng.permutation(n)
        halves += [statistic(perm[:m]), statistic(perm[m:2 * m])]
    h = np.asarray(halves)
    t_m = float(np.mean(h))
    details = dict(est.details)
    if ladder is not None:
        rungs = (float(ladder(2)), float(ladder(4)))
        b_hat = (rungs[1] - rungs[0]) / (2.0**ladder_rate * (2.0**ladder_rate - 1.0))
        details.update(bias_method="neighbour_ladder", ladder_values=rungs)
    else:
        b_hat = (t_m - est.value) / ((n / m) ** rate - 1.0)
        details.update(bias_method="half_samples")
    v_h = float(np.mean((h[0::2] - h[1::2]) ** 2) / 4.0)
    stderr = max(est.stderr, math.sqrt((est.stderr**2 + v_h) / 2.0))
    z = z_value(est.level)
    details.update(bias_estimate=b_hat, half_sample_mean=t_m, half_samples=halves,
                   local_stderr=est.stderr, bias_splits=splits,
                   bias_rate=ladder_rate if ladder is not None else rate)
    return replace(est, stderr=stderr, ci_low=est.value - z * stderr - max(b_hat, 0.0),
                   ci_high=est.value + z * stderr + max(-b_hat, 0.0), ci_method="bias_aware",
                   details=details)
