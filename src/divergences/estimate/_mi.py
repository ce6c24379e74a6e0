"""Public mutual-information and conditional mutual-information estimators."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from scipy import special

from .._arrays import check_choice, log_base
from . import _discrete, _input, _kde, _knn, _parametric
from ._result import (
    Estimate,
    add_null_variance,
    bias_aware_interval,
    check_level,
    finalize,
    from_local,
    resample_interval,
    z_value,
)

# The trained critics of _neural (named here so that listing methods does not import torch).
NEURAL_METHODS = ("infonce", "nwj", "dv", "mine", "smile")
MI_METHODS = ("auto", "ksg", "ksg2", "mixed", "ross", "discrete", "binned", "gaussian",
              "gaussian_copula", "kde", "mist", *NEURAL_METHODS)
CMI_METHODS = ("auto", "ksg", "discrete", "gaussian")
CIS = ("auto", "normal", "bootstrap", "bias_aware")
CMI_CIS = CIS
KNN_MI = ("ksg", "ksg2", "mixed", "ross")  # ci="auto" gives them the bias-aware interval
ATOM_FRACTION = 0.05

Local = Callable[[np.ndarray], np.ndarray]


def _distinct_rows(a: np.ndarray) -> int:
    return int(np.unique(a[:, 0]).size if a.shape[1] == 1 else np.unique(a, axis=0).shape[0])


def discrete_valued(a: np.ndarray) -> bool:
    """A float sample whose rows take at most ``max(2, sqrt(n))`` distinct values.

    Such a column (a count, a rating, a coarsely rounded measurement) is a discrete variable
    with well-filled cells (``sqrt(n)`` rows each on average): ``"auto"`` codes its values as
    symbols and uses the discrete or Ross estimator, which is what the data are. On the fair
    affairs data every column but one qualifies (4 to 77 values in 6,366 rows).
    """
    n = a.shape[0]
    return _distinct_rows(a) <= max(2.0, math.sqrt(n))


def auto_mi_method(xa: np.ndarray, xd: bool, ya: np.ndarray, yd: bool) -> str:
    n = xa.shape[0]
    d = xa.shape[1] + ya.shape[1]
    if xd and yd:
        return "discrete"
    if xd or yd:
        return "ross"
    if d > 2 and n < 10 * 2 ** (d / 2):
        return "gaussian_copula"
    return "ksg"  # mutual_information's "auto" then also weighs the copula value


def _zero(n: int, level: float, method: str, why: str) -> Estimate:
    """An exact 0 (a constant sample, or two identical samples): no estimation error."""
    return Estimate(value=0.0, stderr=0.0, ci_low=0.0, ci_high=0.0, method=method, n=n,
                    level=level, ci_method="exact", details={"exact_zero": why})


def _refuse_ties(method: str, pairs: tuple[tuple[str, np.ndarray], ...]) -> None:
    """KSG and Ross count neighbours strictly inside a radius: on exact ties the radius is 0
    and the counts are wrong (a rounded binormal: 0.574 nats against 0.366 with ties broken and
    0.340 for the unrounded data), so ``noise=0`` on tied data is refused."""
    for name, a in pairs:
        if _input.has_ties(a):
            raise ValueError(
                f"{name} has repeated values and noise=0: method={method!r} counts neighbours "
                "strictly inside a radius that ties make 0, which gives a wrong value; use "
                "noise='auto' (ties broken at the data's resolution, MI unchanged), "
                "method='mixed', or integer data for a discrete variable"
            )


def gaussian_bias(n: int, dx: int, dy: int) -> float:
    """Exact bias of the maximum-likelihood Gaussian MI estimate from ``n`` normal rows.

    With ``S`` the maximum-likelihood covariance of ``p`` normal columns, ``n S`` is Wishart
    with ``n - 1`` degrees of freedom, so ``E log det S = log det Sigma + b(p)`` with
    ``b(p) = sum_{i=1}^{p} psi((n - i) / 2) + p log(2 / n)`` whatever ``Sigma`` is. The bias of
    ``1/2 (log det S_x + log det S_y - log det S)`` is therefore
    ``1/2 (b(d_x) + b(d_y) - b(d_x + d_y))``, about ``d_x d_y / (2n)``.
    """
    def b(p: int) -> float:
        i = np.arange(1, p + 1)
        return float(np.sum(special.digamma((n - i) / 2.0)) + p * math.log(2.0 / n))

    return 0.5 * (b(dx) + b(dy) - b(dx + dy))


def _continuous(a: np.ndarray, rng: np.random.Generator, noise: float | str) -> np.ndarray:
    zs, _ = _input.standardize(a.astype(np.float64))
    return _input.jitter(zs, rng, noise)


def _halves_ok(n: int, k: Any) -> bool:
    """Half-samples of ``n // 2`` rows leave room for ``k`` neighbours (``k`` checked later)."""
    return isinstance(k, (int, np.integer)) and not isinstance(k, bool) and n // 2 > k


def _reinterval(
    est: Estimate, stat: Callable[[np.ndarray], float], n: int, *, ci: str, n_boot: int,
    seed: int | None, level: float, replacement: bool,
    ladder: Callable[[int], float] | None = None,
) -> Estimate:
    """Apply ``ci="bootstrap"`` or ``ci="bias_aware"`` (``stat(idx)``: the value on rows idx;
    ``ladder(j)``: the value with ``j`` times the neighbours, for kNN estimators)."""
    if ci == "bootstrap":
        return resample_interval(est, stat, n, n_boot=n_boot, seed=seed, level=level,
                                 replacement=replacement)
    if ci == "bias_aware":
        return bias_aware_interval(est, stat, n, seed=seed, ladder=ladder)
    return est


def _neighbour_ladder(
    local_k: Callable[[np.ndarray, int], np.ndarray], n: int, k: int
) -> Callable[[int], float] | None:
    """``j -> mean(local_k(all rows, j * k))`` when ``4k`` neighbours fit in ``n`` rows."""
    if n <= 4 * k + 1:
        return None
    rows = np.arange(n)
    return lambda j: float(np.mean(local_k(rows, j * k)))


def _finish(
    local_fn: Local, n: int, method: str, *, ci: str, n_boot: int, seed: int | None,
    level: float, replacement: bool, base: float | None, clip: bool,
    details: dict[str, Any] | None = None, null_df: float = 0.0,
    value_fn: Callable[[], float] | None = None,
    ladder: Callable[[int], float] | None = None,
) -> Estimate:
    est = from_local(local_fn(np.arange(n)), method, level=level, details=details)
    if value_fn is not None:  # the same number from the core's closed form
        value = value_fn()
        z = z_value(level)
        est = replace(est, value=value, ci_low=value - z * est.stderr,
                      ci_high=value + z * est.stderr)
    if null_df:
        est = add_null_variance(est, null_df)
    est = _reinterval(est, lambda idx: float(np.mean(local_fn(idx))), n, ci=ci,
                      n_boot=n_boot, seed=seed, level=level, replacement=replacement,
                      ladder=ladder)
    return finalize(est, base=base, clip=clip)


def _check_common(method: str, methods: tuple[str, ...], ci: str, base: Any, level: Any,
                  noise: Any, seed: Any, cis: tuple[str, ...] = CIS
                  ) -> tuple[float, float, int | None]:
    check_choice(method, "method", methods)
    check_choice(ci, "ci", cis)
    log_base(base)
    return check_level(level), _input.check_noise(noise), _input.check_seed(seed)


def mutual_information(
    x: Any,
    y: Any,
    method: str = "auto",
    k: int = 3,
    *,
    bins: int | None = None,
    base: float | None = None,
    ci: str = "auto",
    n_boot: int = 200,
    level: float = 0.95,
    noise: float | str = "auto",
    seed: int | None = 0,
    clip: bool = True,
    neural_options: Mapping[str, Any] | None = None,
) -> Estimate:
    r"""Mutual information :math:`I(X;Y) = \mathrm{KL}(P_{XY} \| P_X P_Y)` from paired samples.

    ``x`` and ``y`` have shapes ``(n,)`` or ``(n, d_x)``, ``(n, d_y)``; row ``i`` of each is one
    joint draw. Integer arrays are discrete (each row a symbol), float arrays continuous.
    Units: nats, or ``base`` units.

    Methods
    -------
    ``"ksg"``
        Kraskov-Stoegbauer-Grassberger estimator 1:
        :math:`\psi(k) + \psi(n) - \langle \psi(n_x+1) + \psi(n_y+1) \rangle` with max-norm
        neighbour counts strictly inside the k-th joint neighbour distance.
    ``"ksg2"``
        KSG estimator 2: :math:`\psi(k) - 1/k + \psi(n) - \langle \psi(n_x) + \psi(n_y)\rangle`.
    ``"mixed"``
        Gao et al. (2017) for discrete-continuous mixtures (point masses allowed on either
        side); no tie-breaking noise is added, exact ties are the point. It is the plug-in
        estimate on purely discrete data and close to KSG on continuous data; with one purely
        discrete side and ``k = 3`` it is biased down (0.64 for a true 0.87 nats at
        ``n = 2000`` in our tests), so ``"auto"`` uses ``"ross"`` there.
    ``"ross"``
        Ross (2014): one side discrete (integer), the other continuous.
    ``"discrete"``
        Both sides integer. Built for sparse tables (``K`` observed symbol counts): of three
        bias corrections, ``H_NSB(X) + H_NSB(Y) - H_NSB(X, Y)`` (NSB entropies with
        alphabets ``K_x``, ``K_y``, ``K_x K_y``), the shuffle-corrected plug-in ``I_plugin -
        mean_b I_plugin(x, perm_b(y))`` (20 seeded permutations) and Miller-Madow, the mean
        of the two closest, with the union of their intervals
        (:func:`divergences.estimate._discrete.mutual_information_codes`, which gives the
        formulas, the standard error and the measurements). At 30 x 30 symbols and n = 1,500 (1.7 draws per
        cell) its bias is within 0.02 nats and its interval covers 89-100% on the
        benchmark's tables (the former Miller-Madow value,
        ``H(X) + H(Y) - H(X,Y) + (K_x + K_y - K_xy - 1) / (2n)``, kept in
        ``details["miller_madow"]``, was +0.10 to +0.16 nats high there).
    ``"binned"``
        Continuous columns cut into ``bins`` equal-width bins (default: about ``n / 5`` joint
        cells, ``max(2, floor((n/5)^(1/d)))`` per column), then ``"discrete"``.
    ``"gaussian"``
        :math:`\tfrac12(\log\det\Sigma_x + \log\det\Sigma_y - \log\det\Sigma)` of the
        maximum-likelihood covariance (:func:`divergences.gaussian.mutual_information`), the CCA
        value :math:`-\tfrac12\sum_j\log(1-\rho_j^2)`; exact for Gaussian data (a model-based
        value otherwise), minus its exact bias under normality (:func:`gaussian_bias`, about
        ``d_x d_y / (2n)``: 0.56 nats for ``d_x = d_y = 25`` at ``n = 600`` if left in;
        stored in ``details["bias_correction"]``). Its standard error adds the chi-squared
        variance ``d_x d_y / (2 n^2)`` that dominates near independence.
    ``"gaussian_copula"``
        ``"gaussian"`` on the normal scores :math:`\Phi^{-1}(\mathrm{rank}/(n+1))` of each
        column: invariant to monotone transforms of the columns.

    ``"kde"``
        Gaussian-kernel densities with leave-one-out resubstitution,
        :math:`\langle \log \hat f_{xy,-i} - \log \hat f_{x,-i} - \log \hat f_{y,-i}\rangle`,
        each bandwidth by maximum leave-one-out likelihood, a warning in the Biroli-Mezard
        extreme-value regime (:mod:`divergences.estimate._kde`); ``O(n^2)`` time. The three
        smoothings do not cancel exactly: at independence it read -0.026 nats at ``n = 300``
        (1-D), and on the benchmark it is biased by -0.03 to -0.1 nats.
    ``"mist"``
        The learned estimator of :func:`mist_mutual_information` (attention over rows and
        columns of the normal scores, shipped weights): its median prediction, the interval
        from its quantile head. Continuous data, at most 5 columns per side, ``n >= 50``
        (above 5,000 rows, chunks of 5,000 averaged). The shipped weights are a placeholder
        that does not yet meet its goals (see its docstring for the measured accuracy).
    ``"infonce"``, ``"nwj"``, ``"dv"``, ``"mine"``, ``"smile"``
        Neural variational lower bounds (torch), trained and evaluated on held-out rows by
        :func:`neural_mutual_information` with its defaults, or with the keyword arguments
        in ``neural_options``; ``ci="normal"`` only.

    ``"auto"`` first reads a float side whose rows take at most ``max(2, sqrt(n))`` distinct
    values (a count, a rating, a coarsely rounded measurement: :func:`discrete_valued`) as a
    discrete variable, its values coded as symbols (``details["x_as_discrete"]``), and breaks
    the ties of the other float sides at the data's resolution (``noise="auto"``, below;
    ``details["x_dequantized"]``). Then it picks ``"discrete"`` when both sides are discrete,
    ``"ross"`` when one side is, ``"gaussian_copula"`` when ``d_x + d_y > 2`` and ``n < 10 * 2^((d_x + d_y) / 2)`` (too few
    points for neighbour estimates; the same threshold triggers the high-dimension warning).
    Otherwise it runs both ``"ksg"`` and ``"gaussian_copula"`` and keeps the copula value
    unless KSG exceeds it by more than ``1.96`` standard errors of the difference. Why: with
    normal-score marginals the Gaussian-copula value is a lower bound of the MI, exact when
    the copula is Gaussian, and free of the kNN bias that grows with dimension and MI; KSG
    significantly above it means non-Gaussian dependence, which KSG captures.
    ``details["auto"]`` holds both values; when the copula value is kept its interval is
    widened to the union with the KSG interval (``ci_method="union"``), since the copula value
    is only a lower bound when the copula is not exactly Gaussian. Measured by
    ``benchmarks/mi.py`` (``benchmarks/RESULTS.md``; 12 tasks, n = 5000, 3 seeds): mean
    absolute error over the suite 0.017 nats for ``"auto"`` against 0.089 for plain KSG
    (k = 3) on the same samples, worst task 0.075 (spiral, where KSG runs) against 0.553
    (plain KSG on the 25+25-dimensional normal); KSG alone was 0.28 nats low on the 5+5-D
    normal, which the copula gets right. With the union of the two intervals and the default
    ``ci``, ``"auto"`` covered the truth in 97-98% of the benchmark's coverage runs (below).
    The rule was set on those tasks; on held-out families it was not tuned on
    (``benchmarks/mi.py --generalisation``: Student-t with 2 degrees of freedom in 3+3
    dimensions, invertible nonlinear maps, a sign mixture, a discrete-continuous mix, a
    zero-inflated column; n = 5000, 3 seeds) its MAE was 0.036 against 0.037 for plain KSG:
    no better, because KSG is what ``auto`` runs on those non-Gaussian copulas, and both
    are 0.13 nats low on the heavy-tailed 3+3 task.
    ``Estimate.method`` says what ran; the rule may change as the benchmark evolves.

    Ties (``noise``). Continuous columns are standardised (MI is invariant to that) and their
    ties broken with seeded noise (:mod:`divergences.estimate._input`). ``noise="auto"``
    (default) spreads each repeated value uniformly over its own cell, half the gap to the
    nearest other value on each side: the original value stays recoverable, so the MI is
    exactly that of the recorded data, and neighbour estimators see no zero distances. A
    number is the half-width of uniform noise on the standardised scale (the rule before
    ``"auto"``, 1e-10 then: on the statsmodels ``fair`` data it left 4,313 tied rows within
    1e-10 of each other, and I(affairs; affairs > 0) read 0.017 [-1.25, 0.11] for a true
    0.629 nats; ``"auto"`` gives 0.629 [0.620, 0.638]). ``noise=0`` adds nothing, and
    ``"ksg"``, ``"ksg2"``, ``"ross"`` and ``"kde"`` refuse tied data then (a ``ValueError``:
    KSG read 0.574 nats for 0.366 on a rounded binormal). ``"mixed"`` uses exact ties by
    design and never adds noise. A constant ``x`` or ``y`` gives exactly 0
    (``method="constant"``, interval ``[0, 0]``).

    Never below zero (``clip``). Mutual information is non-negative, so by default
    (``clip=True``) value and interval are floored at 0: ``Estimate.raw_value`` keeps the
    value before (use it to average many estimates: flooring biases each one up near 0),
    ``Estimate.clipped`` says whether the floor moved anything, and ``details`` keeps
    ``unclipped_value`` and ``unclipped_ci``. ``clip=False`` returns the raw numbers, for
    studies of the estimator itself. The point always lies inside its interval.

    Intervals (``ci``, level ``level``, 95% by default). Every method here is a mean of
    per-sample terms (KSG's digamma terms, the Gaussian log-density ratios, the plug-in
    log-ratios).

    ``"normal"``
        ``value -/+ z * std(terms)/sqrt(n)``. The kNN terms are dependent (they share
        neighbours), so for ``"ksg"``/``"ksg2"``/``"mixed"`` this underestimates the spread by
        10-30% (sampling sd / mean stderr at n = 600 over 150 seeds: 1.22 for rho = 0, 1.32
        for rho = 0.8, 1.39 for a 3+3-D normal), and it ignores the estimator's bias, which
        for KSG at high MI exceeds the standard error.
    ``"bias_aware"``
        :func:`divergences.estimate._result.bias_aware_interval`. Bias: for ``"ksg"``,
        ``"ksg2"``, ``"mixed"`` (and the Frenzel-Pompe CMI) the estimate is recomputed on all
        rows with ``2k`` and ``4k`` neighbours; the bias of a neighbour estimate follows the
        neighbourhood size, ``b(k) ~ c (k/n)^a``, so
        ``b_hat = (T_4k - T_2k) / (2^a (2^a - 1))`` with a cautious ``a = 0.25``. Where
        ``4k`` neighbours do not fit (``n <= 4k + 1``), for ``"ross"`` and for the other
        methods, the half-sample Richardson estimate ``(T_{n/2} - T_n) / (2^a - 1)``
        (``a = 0.35``) is used instead (``details["bias_method"]``). Spread: the estimate is recomputed on the two
        disjoint halves of 2 seeded random splits; their paired differences give a variance
        that includes the dependence between neighbour terms, pooled with the local-term
        variance (never below it). The value is unchanged; the interval is the union of the
        normal interval around it and the one around the bias-corrected value, i.e. widened
        by ``|b_hat|`` on the side of the bias (``details["bias_estimate"]``). About 6x the
        cost of the estimate (0.23 s against 0.04 s for KSG on 20,000 pairs).
    ``"bootstrap"``
        ``n_boot`` half-samples for the neighbour methods, with-replacement resamples for the
        others (seeded; ``n_boot`` times the cost); it fixes the spread, not the bias.
    ``"auto"`` (default)
        ``"bias_aware"`` for the neighbour methods ``"ksg"``, ``"ksg2"``, ``"mixed"``,
        ``"ross"`` (and for the KSG side of ``method="auto"``; its Gaussian-copula side keeps
        the normal interval, its small-sample bias being removed in closed form), ``"normal"``
        for the others, and for samples too small to halve (``n // 2 <= k``).

    Measured coverage of the nominal 95% interval (``benchmarks/mi.py --coverage-only``,
    ``benchmarks/RESULTS.md``; 40 seeds; target 90-98%). n = 1000, KSG ``"normal"`` /
    ``"bias_aware"``: 88/95% binormal, 90/95% half-cube, 28/98% uniform noise, 90/98% 3+3-D
    normal, 90/95% Student-t, 0/100% spiral (mean 64% -> 97%); ``"auto"`` 72% -> 98%
    (mixed task 98%). n = 5000: KSG 88/90%, 88/92%, 20/95%, 95/95%, 80/92%, 2/100% (mean
    62% -> 94%); ``"auto"`` 71% -> 97%. Above the target: spiral (100%; the ladder
    overstates its curvature bias, -0.25 against -0.155 at n = 1000) and ``"auto"`` on the
    3+3-D normal (100%, the union with the KSG interval). An interval accounts for the bias
    only as far as the ladder reveals it.

    >>> import numpy as np
    >>> from divergences.estimate import mutual_information
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=2000)
    >>> y = 0.8 * x + 0.6 * rng.normal(size=2000)    # correlation 0.8
    >>> round(float(-0.5 * np.log(1 - 0.8**2)), 3)    # the true value
    0.511
    >>> e = mutual_information(x, y, method="ksg")
    >>> bool(e.ci_low < 0.511 < e.ci_high)
    True
    >>> round(mutual_information(x, y, method="gaussian").value, 2)
    0.51
    """
    level, noise, seed = _check_common(method, MI_METHODS, ci, base, level, noise, seed)
    if method == "mist":
        if ci not in ("normal", "auto"):
            raise ValueError("method='mist' gives its learnt quantile interval only; "
                             f"got ci={ci!r}")
        from ._mist import mist_mutual_information

        a = (1.0 - level) / 2.0
        return mist_mutual_information(x, y, quantiles=(a, 0.5, 1.0 - a), base=base,
                                       seed=seed, clip=clip)
    if method in NEURAL_METHODS:
        ci = "normal" if ci == "auto" else ci
        if ci != "normal":
            raise ValueError(f"method={method!r} supports ci='normal' only (the held-out "
                             f"batch spread); got ci={ci!r}")
        if neural_options is not None and not isinstance(neural_options, Mapping):
            raise TypeError("neural_options must be a mapping of keyword arguments of "
                            f"neural_mutual_information; got {type(neural_options).__name__}")
        from ._neural import neural_mutual_information  # torch: only when asked for

        est = neural_mutual_information(x, y, method, level=level, seed=seed,
                                        **dict(neural_options or {}))
        return finalize(est, base=base, clip=clip)
    xa, xd = _input.as_sample(x, "x")
    ya, yd = _input.as_sample(y, "y")
    n = _input.same_length(("x", xa), ("y", ya))
    for name, a in (("x", xa), ("y", ya)):
        if _distinct_rows(a) == 1:  # I(X; Y) = 0 exactly when either side is constant
            return finalize(_zero(n, level, "constant", f"{name} is constant"), base=base,
                            clip=clip)
    rng = np.random.default_rng(seed)
    auto_notes: dict[str, Any] = {}
    if method == "auto":
        # a float side with few distinct values is a discrete variable: code its values
        if not xd and discrete_valued(xa):
            xa, xd = _input.codes(xa)[0][:, None], True
            auto_notes["x_as_discrete"] = True
        if not yd and discrete_valued(ya):
            ya, yd = _input.codes(ya)[0][:, None], True
            auto_notes["y_as_discrete"] = True
        if noise == "auto":
            # ties broken once, here, at the data's resolution: the KSG and copula values
            # below then see the same continuous sample, whose MI is that of the data
            for side, a, d in (("x", xa, xd), ("y", ya, yd)):
                if not d and _input.has_ties(a):
                    auto_notes[f"{side}_dequantized"] = True
            xa = xa if xd else _input.dequantize(xa, rng)
            ya = ya if yd else _input.dequantize(ya, rng)
    if method in ("ksg", "ksg2", "ross", "kde") and noise == 0:
        _refuse_ties(method, tuple((nm, a) for nm, a, d in (("x", xa, xd), ("y", ya, yd))
                                   if not d))
    if method == "kde":
        ci = "normal" if ci == "auto" else ci
        if xd or yd:
            raise TypeError("method='kde' needs float (continuous) x and y")
        xa, ya = _input.jitter(xa, rng, noise), _input.jitter(ya, rng, noise)
        est = _kde.kde_mutual_information(xa, ya, level=level)
        est = _reinterval(
            est, lambda idx: _kde.kde_mutual_information(xa[idx], ya[idx], level=level,
                                                          warn=False).value,
            n, ci=ci, n_boot=n_boot, seed=seed, level=level, replacement=False)
        return finalize(est, base=base, clip=clip)
    if method == "auto":
        method = auto_mi_method(xa, xd, ya, yd)
        if ci == "auto" and method == "ksg":
            ci = "bias_aware" if _halves_ok(n, k) else "normal"
        if method == "ksg":
            est = _auto_ksg_or_copula(
                xa, ya, k=k, base=base, ci=ci, n_boot=n_boot, level=level, noise=noise,
                seed=seed, clip=clip)
            return _noted(est, auto_notes)
        if auto_notes:
            est = mutual_information(
                xa, ya, method, k, bins=bins, base=base, ci=ci, n_boot=n_boot, level=level,
                noise=noise, seed=seed, clip=clip)
            return _noted(est, auto_notes)
    if ci == "auto":  # half-samples need n // 2 > k rows
        ci = "bias_aware" if method in KNN_MI and _halves_ok(n, k) else "normal"
    common = dict(ci=ci, n_boot=n_boot, seed=seed, level=level, base=base, clip=clip)
    dx, dy = xa.shape[1], ya.shape[1]

    if method in ("discrete", "binned"):
        if method == "discrete" and not (xd and yd):
            bad = "x" if not xd else "y"
            raise TypeError(
                f"method='discrete' needs integer arrays; {bad} has a float dtype (use "
                "method='binned' to discretise continuous data)"
            )
        n_cont = (0 if xd else dx) + (0 if yd else dy)
        nb = None
        if method == "binned":
            if bins is None:
                nb = _parametric.default_bins(n, max(n_cont, 1))
            else:
                nb = _input.check_int(bins, "bins", 1)
        cx, kx = _input.codes(xa if xd else _parametric.bin_codes(xa, nb))
        cy, ky = _input.codes(ya if yd else _parametric.bin_codes(ya, nb))

        def run(idx: np.ndarray | None) -> Estimate:
            a = cx if idx is None else cx[idx]
            b = cy if idx is None else cy[idx]
            return _discrete.mutual_information_codes(a, kx, b, ky, level, seed)

        est = run(None)
        if nb is not None:
            est = _replace_method(est, "binned", bins=nb)
        est = _reinterval(est, lambda idx: run(idx).value, n, ci=ci, n_boot=n_boot,
                          seed=seed, level=level, replacement=True)
        return finalize(est, base=base, clip=clip)

    if method in ("gaussian", "gaussian_copula"):
        a, b = xa.astype(np.float64), ya.astype(np.float64)
        if method == "gaussian_copula":
            a, b = _parametric.normal_scores(a), _parametric.normal_scores(b)
        if n <= dx + dy + 1:
            raise ValueError(
                f"method={method!r} needs more samples than dimensions: n={n}, "
                f"d_x + d_y = {dx + dy}"
            )

        def local(idx: np.ndarray) -> np.ndarray:
            return _parametric.gaussian_mi_local(a[idx], b[idx])

        bias = gaussian_bias(n, dx, dy)

        def value_fn() -> float:
            ab = np.hstack([a, b])
            centred = ab - ab.mean(axis=0)
            cov = centred.T @ centred / n  # maximum likelihood, as in the local terms
            from .. import gaussian as _gaussian  # torch: only on this method's path

            return float(_gaussian.mutual_information(cov, dx)) - bias

        def local_c(idx: np.ndarray) -> np.ndarray:  # bias-corrected at the resample size
            return local(idx) - gaussian_bias(idx.shape[0], dx, dy)

        return _finish(local_c, n, method, replacement=True, null_df=dx * dy,
                       value_fn=value_fn, details={"bias_correction": bias}, **common)

    if method == "ross":
        if xd == yd:
            raise TypeError(
                "method='ross' needs one discrete (integer) and one continuous (float) "
                f"sample; x is {'discrete' if xd else 'continuous'} and y is "
                f"{'discrete' if yd else 'continuous'}"
            )
        lab_a, cont_a = (xa, ya) if xd else (ya, xa)
        labels, _ = _input.codes(lab_a)
        cont = _continuous(cont_a, rng, noise)
        k = _input.check_k(k, n)
        counts = np.bincount(labels)
        if not bool((counts[labels] > 1).any()):
            raise ValueError("method='ross' needs a label seen at least twice; every label is "
                             "unique")

        def local(idx: np.ndarray) -> np.ndarray:
            lab = np.unique(labels[idx], return_inverse=True)[1].reshape(-1)
            return _knn.ross_local(lab, cont[idx], k)[0]

        kept = int(np.sum(counts[labels] > 1))
        full = local(np.arange(n))
        est = from_local(full, "ross", level=level, details={"k": k, "dropped": n - kept})
        est = _reinterval(est, lambda idx: float(np.mean(local(idx))), n, ci=ci,
                          n_boot=n_boot, seed=seed, level=level, replacement=False)
        return finalize(est, base=base, clip=clip)

    # ksg, ksg2, mixed
    k = _input.check_k(k, n)
    _input.warn_dimension(dx + dy, n, k)
    if method == "mixed":
        a = xa.astype(np.float64) if xd else _input.standardize(xa)[0]
        b = ya.astype(np.float64) if yd else _input.standardize(ya)[0]
        fn = _knn.mixed_local
    else:
        a, b = _continuous(xa, rng, noise), _continuous(ya, rng, noise)
        fn = _knn.ksg1_local if method == "ksg" else _knn.ksg2_local

    def local(idx: np.ndarray) -> np.ndarray:
        return fn(a[idx], b[idx], k)

    if ci != "normal" and n // 2 < k + 1:
        raise ValueError(f"ci={ci!r} half-samples need n // 2 > k; got n={n}, k={k}")
    ladder = _neighbour_ladder(lambda idx, kk: fn(a[idx], b[idx], kk), n, k)
    return _finish(local, n, method, replacement=False, details={"k": k}, ladder=ladder,
                   **common)


def _auto_ksg_or_copula(xa: np.ndarray, ya: np.ndarray, *, k: int, **kw: Any) -> Estimate:
    """``"auto"`` on continuous data with enough rows: KSG unless the copula fits.

    For normal-score marginals the Gaussian copula value is a lower bound of the MI (at fixed
    covariance the joint normal has the largest joint entropy), exact when the copula is
    Gaussian, and it has neither the kNN bias (which grows with dimension and MI) nor the kNN
    variance. So the copula value is kept unless KSG exceeds it significantly, by more than
    ``z_0.975`` standard errors of the difference (errors added in quadrature): then the
    dependence is not Gaussian-copula and KSG is used. When the copula value is kept, the
    interval is the union of the copula and KSG intervals (``ci_method="union"``).
    """
    # the bias-aware interval keeps the local-term stderr, so the pick is the same with it
    first_ci = "bias_aware" if kw["ci"] == "bias_aware" else "normal"
    plain = dict(kw, ci=first_ci, base=None, clip=False)
    ksg = mutual_information(xa, ya, "ksg", k, **plain)
    # the copula value's finite-sample bias is removed in closed form (``gaussian_bias``):
    # its interval stays the normal one under the bias-aware rule
    cop = mutual_information(xa, ya, "gaussian_copula", k, **plain | {"ci": "normal"})
    gap = ksg.value - cop.value
    # the pick uses the local-term stderrs whatever the interval, so ``ci`` never changes it
    se_k = ksg.details.get("local_stderr", ksg.stderr)
    se_c = cop.details.get("local_stderr", cop.stderr)
    threshold = z_value(0.95) * math.sqrt(se_k**2 + se_c**2)
    pick = "ksg" if gap > threshold else "gaussian_copula"
    chosen = ksg if pick == "ksg" else cop
    other = cop if pick == "ksg" else ksg
    if kw["ci"] != first_ci:
        chosen = mutual_information(xa, ya, pick, k, **plain | {"ci": kw["ci"]})
        other = mutual_information(xa, ya, "gaussian_copula" if pick == "ksg" else "ksg", k,
                                   **plain | {"ci": kw["ci"]})
    details = dict(chosen.details)
    details["auto"] = {"ksg": ksg.value, "gaussian_copula": cop.value, "gap": gap,
                       "threshold": threshold}
    if pick == "gaussian_copula":
        # the copula value is a lower bound that KSG did not significantly exceed: the MI may
        # lie anywhere between them, so the interval is the union of the two intervals
        chosen = replace(chosen, ci_low=min(chosen.ci_low, other.ci_low),
                         ci_high=max(chosen.ci_high, other.ci_high), ci_method="union")
    return finalize(replace(chosen, details=details), base=kw["base"], clip=kw["clip"])


def _noted(est: Estimate, notes: Mapping[str, Any]) -> Estimate:
    """Record in ``details`` how ``"auto"`` prepared the data (coded, dequantised)."""
    if not notes:
        return est
    return replace(est, details={**est.details, **notes})


def _replace_method(est: Estimate, method: str, **extra: Any) -> Estimate:
    details = dict(est.details)
    details.update(extra)
    return replace(est, method=method, details=details)


def conditional_mutual_information(
    x: Any,
    y: Any,
    z: Any,
    method: str = "auto",
    k: int = 3,
    *,
    base: float | None = None,
    ci: str = "auto",
    n_boot: int = 200,
    level: float = 0.95,
    noise: float | str = "auto",
    seed: int | None = 0,
    clip: bool = True,
) -> Estimate:
    r"""Conditional mutual information :math:`I(X;Y|Z) = \mathbb{E}_Z\,\mathrm{KL}(P_{XY|Z}\|P_{X|Z}P_{Y|Z})`.

    Methods
    -------
    ``"ksg"``
        Frenzel-Pompe (2007):
        :math:`\psi(k) - \langle \psi(n_{xz}+1) + \psi(n_{yz}+1) - \psi(n_z+1) \rangle`, max-norm
        counts strictly inside the k-th neighbour distance in the joint space. With an integer
        ``z`` (and float ``x``, ``y``) it is computed stratum by stratum,
        :math:`\sum_z p(z)\, I(X;Y|Z=z)` with KSG inside each stratum (strata with ``k`` or
        fewer rows are dropped and counted in ``details["dropped"]``).
    ``"discrete"``
        Plug-in ``H(X,Z) + H(Y,Z) - H(X,Y,Z) - H(Z)`` plus the Miller-Madow corrections
        ``(K_xz + K_yz - K_xyz - K_z) / (2n)``; all three integer.
    ``"gaussian"``
        Log-determinant formula, exact for jointly Gaussian data.

    ``"auto"``: ``"discrete"`` when all three are integer, ``"ksg"`` when ``x`` and ``y`` are
    float (any ``z``); other combinations raise a ``ValueError`` naming the supported ones.
    Ties, units, ``clip`` (CMI is floored at 0 by default) and intervals follow
    :func:`mutual_information`, with the same default: ``ci="auto"`` is ``"bias_aware"`` for
    ``"ksg"`` (``n // 2 > k``) and ``"normal"`` for ``"discrete"`` and ``"gaussian"``.
    Measured coverage of the 95% interval for ``"ksg"`` (Frenzel-Pompe), n = 1000, 40 seeds,
    ``X = S + e_x``, ``Y = S + e_y``, ``S`` the sum of ``Z ~ N(0, I_dz)``, ``corr(e_x, e_y) =
    r``, so ``I(X;Y|Z) = -log(1 - r^2)/2``: ``"normal"`` / ``"bias_aware"`` 92/95% at
    ``r = 0`` (``dz = 1``), 88/90% at ``r = 0.6``, 72/90% at ``r = 0.9``, 50/92% at
    ``r = 0.6`` with ``dz = 3`` (bias -0.027 nats, which the normal interval ignores); the
    bias-aware interval is 1.6-2.5x as wide.

    >>> import numpy as np
    >>> from divergences.estimate import conditional_mutual_information
    >>> rng = np.random.default_rng(1)
    >>> z = rng.normal(size=3000)
    >>> x = z + rng.normal(size=3000)
    >>> y = z + rng.normal(size=3000)          # x and y independent given z
    >>> e = conditional_mutual_information(x, y, z)
    >>> bool(e.ci_low <= 0 < e.ci_high)      # floored at 0: CMI is never negative
    True
    """
    level, noise, seed = _check_common(method, CMI_METHODS, ci, base, level, noise, seed,
                                       cis=CMI_CIS)
    xa, xd = _input.as_sample(x, "x")
    ya, yd = _input.as_sample(y, "y")
    za, zd = _input.as_sample(z, "z")
    n = _input.same_length(("x", xa), ("y", ya), ("z", za))
    if method == "auto":
        if xd and yd and zd:
            method = "discrete"
        elif not xd and not yd:
            method = "ksg"
        else:
            raise ValueError(
                "conditional_mutual_information supports all-integer (x, y, z) "
                "('discrete'), float x and y with any z ('ksg'), or method='gaussian'; "
                f"got x {'integer' if xd else 'float'}, y {'integer' if yd else 'float'}"
            )
    if ci == "auto":  # as in mutual_information: bias-aware for the neighbour estimator
        ci = "bias_aware" if method == "ksg" and _halves_ok(n, k) else "normal"
    rng = np.random.default_rng(seed)
    common = dict(ci=ci, n_boot=n_boot, seed=seed, level=level, base=base, clip=clip)
    if method == "discrete":
        if not (xd and yd and zd):
            bad = [nm for nm, dd in (("x", xd), ("y", yd), ("z", zd)) if not dd]
            raise TypeError(f"method='discrete' needs integer arrays; {', '.join(bad)} float")
        cx, cy, cz = _input.codes(xa)[0], _input.codes(ya)[0], _input.codes(za)[0]

        def run(idx: np.ndarray | None) -> Estimate:
            s = slice(None) if idx is None else idx
            return _discrete.conditional_mi_codes(cx[s], cy[s], cz[s], level)

        est = run(None)
        est = _reinterval(est, lambda idx: run(idx).value, n, ci=ci, n_boot=n_boot,
                          seed=seed, level=level, replacement=True)
        return finalize(est, base=base, clip=clip)
    if method == "gaussian":
        a, b, c = (v.astype(np.float64) for v in (xa, ya, za))
        if n <= a.shape[1] + b.shape[1] + c.shape[1] + 1:
            raise ValueError("method='gaussian' needs more samples than dimensions")

        def glocal(idx: np.ndarray) -> np.ndarray:
            return _parametric.gaussian_cmi_local(a[idx], b[idx], c[idx])

        return _finish(glocal, n, "gaussian", replacement=True,
                       null_df=a.shape[1] * b.shape[1], **common)

    # ksg (Frenzel-Pompe)
    if xd or yd:
        raise TypeError("method='ksg' needs float x and y; use method='discrete' for integers")
    k = _input.check_k(k, n)
    if noise == 0:
        _refuse_ties("ksg", (("x", xa), ("y", ya)) + ((("z", za),) if not zd else ()))
    a, b = _continuous(xa, rng, noise), _continuous(ya, rng, noise)
    if zd:
        zc, _ = _input.codes(za)
        counts = np.bincount(zc)
        keep = counts[zc] > k
        if not keep.any():
            raise ValueError(f"too few samples for k={k}: every stratum of z has <= {k} rows")
        _input.warn_dimension(a.shape[1] + b.shape[1], int(np.max(counts)), k)

        def local(idx: np.ndarray) -> np.ndarray:
            zi = zc[idx]
            parts = []
            for s in np.unique(zi):
                rows = idx[zi == s]
                if rows.size > k:
                    parts.append(_knn.ksg1_local(a[rows], b[rows], k))
            if not parts:
                raise ValueError(f"too few samples for k={k} in every stratum of z")
            return np.concatenate(parts)

        est = from_local(local(np.arange(n)), "ksg", level=level,
                         details={"k": k, "dropped": int(n - keep.sum()), "stratified": True})
        est = _reinterval(est, lambda idx: float(np.mean(local(idx))), n, ci=ci,
                          n_boot=n_boot, seed=seed, level=level, replacement=False)
        return finalize(est, base=base, clip=clip)
    c = _continuous(za, rng, noise)
    _input.warn_dimension(a.shape[1] + b.shape[1] + c.shape[1], n, k)

    def fplocal(idx: np.ndarray) -> np.ndarray:
        return _knn.frenzel_pompe_local(a[idx], b[idx], c[idx], k)

    if ci != "normal" and n // 2 < k + 1:
        raise ValueError(f"ci={ci!r} half-samples need n // 2 > k; got n={n}, k={k}")
    ladder = _neighbour_ladder(
        lambda idx, kk: _knn.frenzel_pompe_local(a[idx], b[idx], c[idx], kk), n, k)
    return _finish(fplocal, n, "ksg", replacement=False, details={"k": k}, ladder=ladder,
                   **common)
