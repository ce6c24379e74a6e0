"""Kernel density (Gaussian kernel) entropy and mutual information, leave-one-out.

On standardised columns ``z`` (the log-scales are added back to entropies; MI is invariant),
the leave-one-out density at each sample is

.. math:: \\hat f_{-i}(z_i) = \\frac{1}{n-1}\\sum_{j\\ne i} (2\\pi h^2)^{-d/2}
          e^{-\\|z_i - z_j\\|^2 / (2h^2)},

computed as a log-sum-exp (finite for finite data: never ``-inf``), in row chunks so that
memory is ``O(chunk * n)``, not ``O(n^2)`` (time is ``O(n^2 d)``).

**Bandwidth**: the ``h`` maximising the leave-one-out log-likelihood
:math:`\\sum_i \\log \\hat f_{-i}(z_i)`, the KL-optimal choice. It is searched on a grid of 12
log-spaced values from ``0.02`` to ``3`` times Silverman's ``n^{-1/(d+4)}`` and refined by a
bounded scalar search around the best grid point. Above 1000 rows the search runs on a seeded
subsample of 1000 rows and the result is rescaled by ``(1000 / n)^{1/(d+4)}``, the rate of the
optimal bandwidth.

**Regime** (Biroli and Mezard, kernel density estimation in large dimensions): for ``n`` points
in ``d`` dimensions write ``alpha = log(n) / d``. For unit-variance Gaussian data and a
Gaussian kernel of width ``h``, the kernel sum at a typical point is dominated by the points
of a tilted Gaussian, ``N(z / (1 + h^2), h^2 / (1 + h^2))`` per coordinate, whose
Kullback-Leibler divergence from the data distribution is, per dimension,

.. math:: a_1(h) = \\tfrac12\\Big(s^2 + \\tfrac{1}{(1+h^2)^2} - 1 - \\log s^2\\Big),\\quad
          s^2 = \\frac{h^2}{1+h^2}.

``n = e^{alpha d}`` points populate that region only when ``alpha > a_1(h)``; below it the
sum is dominated by the few nearest points (the **extreme-value** regime, where the estimate is
a nearest-neighbour estimate with a wrong constant). The second moment of the kernel sum is
dominated by the tilt with ``h / sqrt(2)``: ``alpha > a_1(h / sqrt 2)`` is the **CLT** regime,
in between the **heavy-tailed** one. ``details["regime"]`` reports it and a ``UserWarning``
is raised in the extreme-value regime.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from . import _input
from ._result import Estimate, from_local

SELECT_ROWS = 1000
CHUNK = 512


def loo_log_density(z: np.ndarray, hs: np.ndarray) -> np.ndarray:
    """Leave-one-out log-densities, shape ``(len(hs), n)``, of the rows of ``z``."""
    n, d = z.shape
    hs = np.asarray(hs, dtype=np.float64)
    out = np.empty((hs.size, n))
    sq = np.sum(z * z, axis=1)
    const = -math.log(n - 1) - 0.5 * d * np.log(2.0 * math.pi * hs * hs)
    for s in range(0, n, CHUNK):
        e = min(n, s + CHUNK)
        d2 = np.maximum(sq[s:e, None] + sq[None, :] - 2.0 * z[s:e] @ z.T, 0.0)
        d2[np.arange(e - s), np.arange(s, e)] = np.inf  # leave the point itself out
        near = np.min(d2, axis=1, keepdims=True)  # log-sum-exp shift: the largest term is 1
        excess = d2 - near
        for t, h in enumerate(hs):
            c = 1.0 / (2.0 * h * h)
            out[t, s:e] = (np.log(np.sum(np.exp(-c * excess), axis=1)) - c * near[:, 0]
                           + const[t])
    return out


def select_bandwidth(z: np.ndarray, seed: int | None = 0) -> float:
    """The maximum leave-one-out likelihood bandwidth (see the module docstring)."""
    n, d = z.shape
    sub = z
    if n > SELECT_ROWS:
        rows = np.random.default_rng(seed).choice(n, SELECT_ROWS, replace=False)
        sub = z[rows]
    m = sub.shape[0]
    silverman = m ** (-1.0 / (d + 4))
    grid = silverman * np.geomspace(0.02, 3.0, 12)
    ll = loo_log_density(sub, grid).sum(axis=1)
    best = int(np.argmax(ll))
    lo = math.log(grid[max(best - 1, 0)])
    hi = math.log(grid[min(best + 1, grid.size - 1)])
    h = grid[best]
    if hi > lo:
        from scipy import optimize  # imported where used: a slow import

        res = optimize.minimize_scalar(
            lambda lh: -float(loo_log_density(sub, np.array([math.exp(lh)])).sum()),
            bounds=(lo, hi), method="bounded", options={"xatol": 1e-3})
        if -res.fun > ll[best]:
            h = math.exp(float(res.x))
    return float(h * (m / n) ** (1.0 / (d + 4)))


def tilt_rate(h: float) -> float:
    """``a_1(h)``: KL rate (per dimension) of the region that dominates the kernel sum."""
    s2 = h * h / (1.0 + h * h)
    return 0.5 * (s2 + 1.0 / (1.0 + h * h) ** 2 - 1.0 - math.log(s2))


def regime(n: int, d: int, h: float) -> tuple[str, float]:
    """``("clt" | "heavy_tailed" | "extreme_value", alpha)`` for ``n`` points, ``d`` dims."""
    alpha = math.log(n) / d
    if alpha > tilt_rate(h / math.sqrt(2.0)):
        return "clt", alpha
    if alpha > tilt_rate(h):
        return "heavy_tailed", alpha
    return "extreme_value", alpha


def _warn_regime(name: str, n: int, d: int, h: float) -> None:
    kind, alpha = regime(n, d, h)
    if kind == "extreme_value":
        warnings.warn(
            f"kde ({name}): alpha = log(n)/d = {alpha:.3g} is below {tilt_rate(h):.3g}, the "
            f"extreme-value regime of Biroli-Mezard for bandwidth h={h:.3g} (n={n}, d={d}): "
            "each density value is dominated by a few nearest points; prefer a "
            "nearest-neighbour or Gaussian-copula estimate",
            UserWarning, stacklevel=4)


def kde_entropy_local(z: np.ndarray, seed: int | None = 0, warn: bool = True
                      ) -> tuple[np.ndarray, dict[str, float | str]]:
    """``-log f_{-i}(z_i)`` at the selected bandwidth, and the details."""
    n, d = z.shape
    if n < 3:
        raise ValueError(f"kde needs at least 3 samples; got n={n}")
    h = select_bandwidth(z, seed)
    if warn:
        _warn_regime("x", n, d, h)
    kind, alpha = regime(n, d, h)
    return -loo_log_density(z, np.array([h]))[0], {"bandwidth": h, "regime": kind,
                                                    "alpha": alpha}


def kde_mutual_information(x: np.ndarray, y: np.ndarray, *, level: float = 0.95,
                           seed: int | None = 0, warn: bool = True) -> Estimate:
    """``mean(log f_xy - log f_x - log f_y)`` of leave-one-out KDEs, each its own bandwidth."""
    a, _ = _input.standardize(x.astype(np.float64))
    b, _ = _input.standardize(y.astype(np.float64))
    hx, dx = kde_entropy_local(a, seed, warn)
    hy, dy = kde_entropy_local(b, seed, warn)
    hxy, dxy = kde_entropy_local(np.hstack([a, b]), seed, warn)
    details = {"bandwidth": {"x": dx["bandwidth"], "y": dy["bandwidth"],
                             "xy": dxy["bandwidth"]},
               "regime": dxy["regime"], "alpha": dxy["alpha"]}
    return from_local(hx + hy - hxy, "kde", level=level, details=details)


__all__ = ["kde_entropy_local", "kde_mutual_information", "loo_log_density", "regime",
           "select_bandwidth", "tilt_rate"]
