"""Public entropy estimator."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .._arrays import check_choice, log_base
from . import _discrete, _input, _kde, _knn, _parametric
from ._result import (
    Estimate,
    bias_aware_interval,
    check_level,
    finalize,
    from_local,
    resample_interval,
)

ENTROPY_METHODS = (
    "auto", *_discrete.ENTROPY_METHODS, "knn", "kde", "gaussian", "vasicek", "ebrahimi",
    "van_es", "correa",
)
SPACING = ("vasicek", "ebrahimi", "van_es", "correa")
CONTINUOUS = ("knn", "kde", "gaussian", *SPACING)
CIS = ("auto", "normal", "bootstrap", "bias_aware")
TIED_WARN_FRACTION = 0.05  # repeated rows above this share get a warning (point masses)


def auto_entropy_method(discrete: bool, d: int) -> str:
    if discrete:
        return "grassberger"
    return "ebrahimi" if d == 1 else "knn"


def entropy(
    x: Any,
    method: str = "auto",
    *,
    k: int = 3,
    window: int | None = None,
    alphabet_size: int | None = None,
    base: float | None = None,
    ci: str = "auto",
    n_boot: int = 200,
    level: float = 0.95,
    noise: float | str = "auto",
    seed: int | None = 0,
    axis: int | None = None,
) -> Any:
    r"""Entropy of the distribution ``x`` was drawn from, with a standard error and interval.

    ``x`` has shape ``(n,)`` or ``(n, d)``. Integer (or boolean) arrays are discrete, each row
    one symbol, and the result is the Shannon entropy :math:`-\sum_s p_s \log p_s`; float
    arrays are continuous and the result is the differential entropy
    :math:`-\int f \log f` (which can be negative). Units: nats, or ``base`` units.

    Methods
    -------
    Discrete: ``"plugin"``, ``"miller_madow"``, ``"grassberger"``, ``"chao_shen"``,
    ``"jackknife"``, ``"nsb"`` (Bayesian; needs ``alphabet_size``, the number of possible
    symbols) (formulas in :mod:`divergences.estimate._discrete`).
    Continuous: ``"knn"`` (Kozachenko-Leonenko,
    :math:`\psi(n) - \psi(k) + \log V_d + \frac{d}{n}\sum_i \log \varepsilon_i` with
    :math:`\varepsilon_i` the Euclidean distance to the k-th neighbour and :math:`V_d` the unit
    ball volume), ``"kde"`` (Gaussian-kernel density, leave-one-out resubstitution
    :math:`-\frac1n\sum_i \log \hat f_{-i}(x_i)`, bandwidth by maximum leave-one-out
    likelihood, a ``UserWarning`` in the extreme-value regime of Biroli-Mezard; see
    :mod:`divergences.estimate._kde`, ``details`` has ``bandwidth``, ``regime``, ``alpha``;
    ``O(n^2)`` time), ``"gaussian"``  (:math:`\tfrac12 \log\det(2\pi e\,\Sigma)`, maximum
    likelihood), ``"vasicek"`` and ``"ebrahimi"`` (1-D m-spacing estimators, window
    ``m = floor(sqrt(n) + 1/2)`` (scipy's default; ``(n - 1) // 2`` for ``n < 5``) unless
    ``window`` is given; as in :func:`scipy.stats.differential_entropy`, ``1 <= window`` and
    ``2 * window < n``, else a ``ValueError`` naming ``window``; the half samples of the
    intervals use ``min(window, (rows - 1) // 2)``); ``"van_es"`` (Van Es 1992, the
    m-spacing mean without edge terms,
    :math:`\frac{1}{n-m}\sum_{i=1}^{n-m}\log\bigl(\frac{n+1}{m}(X_{(i+m)} - X_{(i)})\bigr)
    + \sum_{k=m}^{n}\frac1k - \log\frac{n+1}{m}`; its local terms are the ``n - m`` logs)
    and ``"correa"`` (Correa 1995, a local linear regression of the order statistics on their
    ranks: :math:`-\frac1n\sum_{i=1}^n \log \frac{\sum_{j=i-m}^{i+m}(X_{(j)} -
    \bar X_{(i)})(j - i)}{n \sum_{j=i-m}^{i+m}(X_{(j)} - \bar X_{(i)})^2}` with
    :math:`X_{(j)} = X_{(1)}` for ``j < 1``, :math:`X_{(n)}` for ``j > n`` and
    :math:`\bar X_{(i)}` the window mean); both with the same window rule, equal to
    :func:`scipy.stats.differential_entropy` with ``method="van es"`` / ``"correa"``.

    ``axis``: ``None`` (default) reads ``x`` as ``(n,)`` or ``(n, d)``. An integer asks for one
    1-D spacing entropy (``"vasicek"``, ``"ebrahimi"``, ``"van_es"``, ``"correa"``; ``"auto"``
    is ``"ebrahimi"``) per slice along the other axes, the samples lying along ``axis``, as
    ``scipy.stats.differential_entropy(x, axis=axis)``: the result is a NumPy object array of
    :class:`Estimate` with the shape of ``x`` less ``axis`` (a 1-D ``x`` gives one
    :class:`Estimate`); ``np.vectorize(lambda e: e.value, otypes=[float])`` reads the values.

    ``"auto"`` picks ``"grassberger"`` for discrete data (low bias when many symbols are rare),
    ``"ebrahimi"`` for 1-D continuous data (smaller bias than the kNN estimator at small
    ``n``) and ``"knn"`` in higher dimension. The rule may change as the benchmark evolves;
    ``Estimate.method`` says what ran.

    Continuous data are standardised per column before the neighbour or spacing search (the
    log-scales are added back) and ties are broken by seeded noise (see
    :mod:`divergences.estimate._input`). ``noise="auto"`` (default) spreads each repeated
    value over its cell at the data's resolution: for measurements rounded to a grid that
    restores the rounding error, and the estimate is that of the unrounded variable (a
    normal rounded to 0.1: ``"knn"`` 1.40, ``"ebrahimi"`` 1.43, ``"vasicek"`` 1.42, ``"kde"``
    1.42 for 1.419 nats). When more than 5% of the rows repeat, a ``UserWarning`` says so: a
    variable with point masses has differential entropy ``-inf``, and a finite value is the
    entropy of the spread data. A number ``noise`` is a fixed half-width on the standardised
    scale; far below the resolution it packs each tie group into a sliver and the value
    follows ``log(noise)`` (-18.4 nats with 1e-10 on that rounded normal), which is warned
    about too. With ``noise=0`` repeated values that make a distance 0 raise a
    ``ValueError`` instead of returning ``-inf``. Shannon entropies (integer data) are never
    negative: value and interval are floored at 0 (``Estimate.raw_value`` keeps the raw
    value).

    Interval (``level``, default 95%): ``ci="normal"`` uses ``value -/+ z * stderr`` with the
    delta-method (discrete), jackknife (``"jackknife"``) or local-term (``std/sqrt(n)`` of
    the per-sample terms whose mean is the estimate) standard error; ``ci="bootstrap"``
    resamples ``n_boot`` times with ``seed`` (with replacement for discrete and Gaussian,
    half-sampling for neighbour and spacing methods, see
    :func:`divergences.estimate._result.resample_interval`); ``ci="bias_aware"`` widens the
    interval by an estimate of the bias on its side
    (:func:`divergences.estimate._result.bias_aware_interval`: for ``"knn"`` from the same
    estimator with ``2k`` and ``4k`` neighbours, otherwise from half samples) and pools the
    standard error with a half-sample one; for ``"kde"`` the half samples re-select their
    bandwidth, so the bias the bandwidth brings shows (Richardson rate 0.25: boundary bias
    decays like the bandwidth, about ``n^(-1/5)``). ``ci="auto"`` (default) is
    ``"bias_aware"`` for the estimators with an uncorrected bias: ``"knn"`` (when
    ``n > 4k + 1``), ``"kde"`` and ``"vasicek"`` (``n >= 12``) and ``"plugin"``; ``"normal"``
    for the others.

    Measured coverage of the default 95% interval (``benchmarks/coverage.py``, n = 1000, 40
    seeds, ``benchmarks/RESULTS.md``): ``"knn"`` 92% on a 1-D normal, 98% on a 3-D normal
    (bias -0.037 nats; 80% with ``ci="normal"``), 95% on an exponential and 100% on the
    uniform square (boundary bias +0.036; 47% with ``ci="normal"``). ``"kde"`` is biased
    wherever the density has edges or heavy skew and in 3-D (exponential +0.12, uniform
    square +0.11, 3-D normal +0.06 nats): the default interval covers 85%, 98% and 100%
    there (28%, 0% and 57% with ``ci="normal"``), 95% on a 1-D normal.
    ``"ebrahimi"`` 95%, ``"vasicek"`` 98% on a 1-D normal and on an exponential (80% and
    93% with ``ci="normal"``: it is biased low), ``"gaussian"`` 95-98% on normal data.
    Discrete, 10 uniform and 50 Zipf symbols at n = 1000: 90-100% (``"plugin"`` 100%, 88-90%
    with ``ci="normal"``; ``"grassberger"`` 90% on the uniform task, 95.5% over 200 seeds,
    with its parity-term variance; 82% without).

    >>> import numpy as np
    >>> from divergences.estimate import entropy
    >>> e = entropy(np.array([0, 1, 0, 1, 2, 2, 0, 1]), method="plugin", base=2)
    >>> round(e.value, 4)   # counts 3, 3, 2
    1.5613
    >>> z = np.random.default_rng(0).normal(size=(2000, 2))
    >>> e = entropy(z, method="knn")
    >>> round(float(np.log(2 * np.pi * np.e)), 3)   # the true value
    2.838
    >>> bool(e.ci_low < 2.838 < e.ci_high)
    True
    >>> cols = entropy(z, method="correa", axis=0)   # one per column
    >>> [round(c.value, 2) for c in cols]   # scipy's differential_entropy: 1.434, 1.430
    [1.43, 1.43]
    """
    if axis is not None:
        return _along_axis(x, axis, method, window=window, base=base, ci=ci, n_boot=n_boot,
                           level=level, noise=noise, seed=seed)
    check_choice(method, "method", ENTROPY_METHODS)
    check_choice(ci, "ci", CIS)
    log_base(base)
    level = check_level(level)
    noise = _input.check_noise(noise)
    seed = _input.check_seed(seed)
    arr, discrete = _input.as_sample(x, "x")
    n, d = arr.shape
    if method == "auto":
        method = auto_entropy_method(discrete, d)
    if method in _discrete.ENTROPY_METHODS:
        if not discrete:
            raise TypeError(
                f"method={method!r} needs discrete data (an integer array); x has a float "
                "dtype: cast it to integers, or use a continuous method"
            )
        code, _ = _input.codes(arr)
        if ci == "auto":  # the plug-in alone has an uncorrected bias (about -(K-1)/(2n))
            ci = "bias_aware" if method == "plugin" and n >= 4 else "normal"

        alphabet = None if alphabet_size is None else _input.check_int(
            alphabet_size, "alphabet_size", 1)

        def run_discrete(idx: np.ndarray | None) -> Estimate:
            c = code if idx is None else np.unique(code[idx], return_inverse=True)[1]
            return _discrete.entropy_from_codes(c.reshape(-1), int(c.max()) + 1, method, level,
                                                alphabet)

        est = run_discrete(None)
        if ci == "bootstrap":
            est = resample_interval(est, lambda idx: run_discrete(idx).value, n,
                                    n_boot=n_boot, seed=seed, level=level, replacement=True)
        elif ci == "bias_aware":
            _check_halves(n, 1)
            est = bias_aware_interval(est, lambda idx: run_discrete(idx).value, n, seed=seed)
        return finalize(est, base=base, clip=True)  # Shannon entropy is never negative

    # continuous
    z = arr.astype(np.float64)
    if method in SPACING and d != 1:
        raise ValueError(f"method={method!r} is for 1-D samples; x has {d} columns")
    constant = np.flatnonzero(np.ptp(z, axis=0) == 0)
    if constant.size:
        raise ValueError(
            f"x column {int(constant[0])} is constant: a point mass has differential entropy "
            "-inf (pass integer data for the Shannon entropy of a discrete variable)"
        )
    zs, scale = _input.standardize(z)
    _warn_ties(zs, noise)
    zs = _input.jitter(zs, np.random.default_rng(seed), noise)
    offset = float(np.sum(np.log(scale)))
    local_fn: Callable[[np.ndarray], np.ndarray]
    details: dict[str, Any] = {}
    if method == "knn":
        k = _input.check_k(k, n)
        _input.warn_dimension(d, n, k)
        details["k"] = k

        def local_fn(a: np.ndarray) -> np.ndarray:
            return _knn.kl_entropy_local(a, k)
    elif method == "kde":
        _, kde_details = _kde.kde_entropy_local(zs, seed)
        details.update(kde_details)
        bandwidth = float(kde_details["bandwidth"])

        def local_fn(a: np.ndarray) -> np.ndarray:  # fixed bandwidth (and no re-warning)
            return -_kde.loo_log_density(a, np.array([bandwidth]))[0]
    elif method == "gaussian":
        if n <= d:
            raise ValueError(f"gaussian entropy needs more samples than dimensions; got n={n}, d={d}")

        def local_fn(a: np.ndarray) -> np.ndarray:
            return _parametric.gaussian_entropy_local(a)
    else:  # spacing
        if n < 3:
            raise ValueError(f"{method} entropy needs at least 3 samples; got n={n}")
        if window is None:
            m = _spacing_window(n)
        else:
            m = _input.check_int(window, "window", 1)
            if not 2 * m < n:  # scipy's rule: the m-spacings need 2m < n points
                raise ValueError(
                    f"window must be less than half the sample size (2 * window < n, as in "
                    f"scipy.stats.differential_entropy); got window={m} for n={n}"
                )
        details["window"] = m

        def local_fn(a: np.ndarray) -> np.ndarray:
            # half samples (intervals) keep 2m < rows: the given window, or the default
            mm = m if window is not None else _spacing_window(a.shape[0])
            mm = max(1, min(mm, (a.shape[0] - 1) // 2))
            if method == "van_es":
                return _van_es_local(a[:, 0], mm)
            if method == "correa":
                return _correa_local(a[:, 0], mm)
            return _parametric.spacing_local(a[:, 0], mm, method)

    est = from_local(local_fn(zs), method, offset=offset, level=level, details=details)
    if method == "van_es":  # its mean runs over n - m spacings, but all n samples were used
        est = dataclasses.replace(est, n=n)
    if ci == "auto":
        auto_ba = (method == "knn" and n > 4 * k + 1) or (
            method in ("kde", "vasicek") and n >= 12)
        ci = "bias_aware" if auto_ba else "normal"
    if ci == "bias_aware":
        _check_halves(n, k if method == "knn" else 2)
        ladder = None
        rate = 0.35

        def stat(idx: np.ndarray) -> float:
            return offset + float(np.mean(local_fn(zs[idx])))

        if method == "knn" and n > 4 * k + 1:
            def ladder(j: int) -> float:
                return offset + float(np.mean(_knn.kl_entropy_local(zs, j * k)))
        elif method == "kde":
            # The bandwidth is re-selected on each half: its bias (edges, skew, dimension)
            # comes from the bandwidth, which a fixed one would hide. Boundary bias decays
            # like h ~ n^(-1/5), hence the slow rate.
            rate = 0.25

            def stat(idx: np.ndarray) -> float:  # re-selects the bandwidth
                return offset + float(np.mean(_kde.kde_entropy_local(zs[idx], seed,
                                                                     warn=False)[0]))
        est = bias_aware_interval(est, stat, n, seed=seed, ladder=ladder, rate=rate)
    elif ci == "bootstrap":
        replacement = method == "gaussian"  # kde: half-samples at the selected bandwidth
        if method == "knn" and n // 2 < k + 1:
            raise ValueError(f"ci='bootstrap' half-samples need n // 2 > k; got n={n}, k={k}")
        est = resample_interval(
            est, lambda idx: offset + float(np.mean(local_fn(zs[idx]))), n, n_boot=n_boot,
            seed=seed, level=level, replacement=replacement,
        )
    return finalize(est, base=base, clip=False)


def _warn_ties(zs: np.ndarray, noise: float | str) -> None:
    """Say what a continuous entropy of data with repeated values means, or that it is wrong.

    A variable with point masses has differential entropy ``-inf``; a finite estimate from
    tied data is the entropy of the data with their ties spread out. With ``noise="auto"``
    the spread is the data's own resolution (:func:`._input.dequantize`), which estimates the
    entropy of the unrounded variable when the data are rounded measurements. A fixed tiny
    ``noise`` instead packs each tie group into a cell of width ``2 * noise``: the value then
    follows ``log(noise)`` (the kNN entropy of a normal rounded to 0.1 read -18 nats with the
    old default 1e-10, against 1.42).
    """
    share = _input.tied_fraction(zs)
    if share <= TIED_WARN_FRACTION:
        return
    if isinstance(noise, str):
        warnings.warn(
            f"x has repeated values ({share:.0%} of rows repeat an earlier row): they were "
            "spread over cells at the data's resolution (noise='auto'), so this is the "
            "differential entropy of the dequantised data, close to that of the unrounded "
            "variable for rounded measurements; a variable with point masses has "
            "differential entropy -inf (pass integers for the Shannon entropy of a discrete "
            "variable)", UserWarning, stacklevel=3)
    elif noise > 0:
        warnings.warn(
            f"x has repeated values ({share:.0%} of rows repeat an earlier row) and "
            f"noise={noise:g} spreads each tie group over a cell of width {2 * noise:g}: the "
            "estimate then reflects log(noise), not the data; use noise='auto' (ties broken "
            "at the data's resolution) or integer data for a discrete variable",
            UserWarning, stacklevel=3)


def _spacing_window(n: int) -> int:
    """scipy's default ``floor(sqrt(n) + 1/2)``, kept below ``n / 2`` for ``n < 5``."""
    return max(1, min(_parametric.default_window(n), (n - 1) // 2))


def _along_axis(x: Any, axis: int, method: str, **kwargs: Any) -> Any:
    """One spacing entropy per 1-D slice of ``x`` along ``axis`` (scipy's ``axis``)."""
    check_choice(method, "method", ("auto", *SPACING))
    arr = np.asarray(x)
    if arr.ndim == 0:
        raise ValueError("x must have at least one dimension for axis=")
    if not isinstance(axis, (int, np.integer)) or not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"axis must be an integer in [-{arr.ndim}, {arr.ndim}); got {axis!r}")
    if arr.ndim == 1:
        return entropy(arr, method, **kwargs)
    moved = np.moveaxis(arr, axis, -1)
    out = np.empty(moved.shape[:-1], dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = entropy(moved[idx], method, **kwargs)
    return out


def _van_es_local(v: np.ndarray, m: int) -> np.ndarray:
    """Van Es (1992): the ``n - m`` terms whose mean is the estimate (constant folded in)."""
    n = v.shape[0]
    s = np.sort(v)
    diff = s[m:] - s[:-m]
    if not bool((diff > 0).all()):
        raise ValueError(
            f"van_es entropy: more than {m} equal values make an m-spacing 0 (entropy -inf); "
            "pass noise > 0 (the default breaks ties) or treat the data as discrete"
        )
    # the bias correction sum_{k=m}^{n} 1/k replaces log(n + 1) - log(m) of the plain mean
    const = float(np.sum(1.0 / np.arange(m, n + 1, dtype=np.float64)))
    return np.log(diff) + const


def _correa_local(v: np.ndarray, m: int) -> np.ndarray:
    """Correa (1995): ``-log`` of the local regression slope of order statistic on rank."""
    n = v.shape[0]
    s = np.sort(v)
    padded = np.concatenate([np.full(m, s[0]), s, np.full(m, s[-1])])
    dj = np.arange(-m, m + 1, dtype=np.float64)[:, None]
    out = np.empty(n)
    step = max(1, 2_000_000 // (2 * m + 1))  # bounds the (2m + 1, block) window matrix
    for lo in range(0, n, step):
        i = np.arange(lo, min(n, lo + step))
        w = padded[i[None, :] + m + dj.astype(np.intp)]
        dev = w - w.mean(axis=0, keepdims=True)
        num = np.sum(dev * dj, axis=0)
        den = n * np.sum(dev * dev, axis=0)
        if not bool((num > 0).all()):
            raise ValueError(
                f"correa entropy: {2 * m + 1} equal values in a window make its slope 0 "
                "(entropy -inf); pass noise > 0 (the default breaks ties) or treat the data "
                "as discrete"
            )
        out[lo:lo + step] = np.log(den / num)
    return out


def _check_halves(n: int, k: int) -> None:
    if n // 2 < k + 1:
        raise ValueError(f"ci='bias_aware' half-samples need n // 2 > {k}; got n={n}")
