"""Gaussian, Gaussian-copula, binned and spacing (1-D) estimators, as local terms.

Each estimate is the mean of per-sample terms, so its standard error is
``std(terms) / sqrt(n)``:

* Gaussian entropy: ``-log N(x_i; mean, cov)`` with the maximum-likelihood fit; the mean is
  exactly ``1/2 log det(2 pi e cov)``.
* Gaussian MI: ``log N(x_i, y_i) - log N(x_i) - log N(y_i)`` (each fitted by maximum
  likelihood); the mean is exactly ``1/2 (log det S_x + log det S_y - log det S)``, the CCA
  value ``-1/2 sum log(1 - r_j^2)``. Because each fit is a maximum-likelihood fit, the
  parameter estimation adds no first-order term, so the spread of the terms is the influence
  function and the standard error is first-order correct.
* Spacing estimators (Vasicek 1976, Ebrahimi et al. 1994), ``m``-spacings of the sorted sample
  ``X_(1..n)`` with clamped indices: ``log(n / (c_i m) (X_(i+m) - X_(i-m)))``, ``c_i = 2``
  (Vasicek) or the Ebrahimi boundary weights ``1 + (i-1)/m``, ``2``, ``1 + (n-i)/m``.
  Adjacent terms share spacings, so ``std/sqrt(n)`` is approximate; the variance of the terms
  includes their own noise, which makes it conservative in our tests.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special


def _gauss_logpdf(data: np.ndarray, name: str) -> np.ndarray:
    """Per-row log-density under the maximum-likelihood Gaussian fit of ``data``."""
    n, d = data.shape
    centred = data - data.mean(axis=0)
    cov = centred.T @ centred / n
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        chol = None
    if chol is None or np.min(np.diag(chol)) <= 1e-12 * max(1.0, float(np.max(np.diag(chol)))):
        raise ValueError(
            f"{name} has a singular covariance (constant or collinear columns, or n <= d); "
            "the Gaussian estimate is undefined"
        )
    sol = np.linalg.solve(chol, centred.T)  # (d, n)
    maha = np.sum(sol**2, axis=0)
    logdet = 2.0 * np.sum(np.log(np.diag(chol)))
    return -0.5 * (d * math.log(2 * math.pi) + logdet + maha)


def gaussian_entropy_local(x: np.ndarray) -> np.ndarray:
    return -_gauss_logpdf(x, "x")


def gaussian_mi_local(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (_gauss_logpdf(np.hstack([x, y]), "(x, y)") - _gauss_logpdf(x, "x")
            - _gauss_logpdf(y, "y"))


def gaussian_cmi_local(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return (_gauss_logpdf(np.hstack([x, y, z]), "(x, y, z)") + _gauss_logpdf(z, "z")
            - _gauss_logpdf(np.hstack([x, z]), "(x, z)")
            - _gauss_logpdf(np.hstack([y, z]), "(y, z)"))


def normal_scores(x: np.ndarray) -> np.ndarray:
    """Columnwise ranks (ties averaged) mapped to ``Phi^-1(rank / (n + 1))``."""
    from scipy.stats import rankdata  # scipy.stats costs ~0.5 s to import: only when used

    n = x.shape[0]
    ranks = rankdata(x, axis=0)
    return special.ndtri(ranks / (n + 1.0))


def default_bins(n: int, d: int) -> int:
    """Bins per column so the joint table has about ``n / 5`` cells (at least 2 per column)."""
    return max(2, int((n / 5.0) ** (1.0 / d)))


def bin_codes(x: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bins per column over the sample range; integer codes per column."""
    lo, hi = x.min(axis=0), x.max(axis=0)
    width = np.where(hi > lo, hi - lo, 1.0)
    b = np.floor((x - lo) / width * bins).astype(np.int64)
    return np.clip(b, 0, bins - 1)


def default_window(n: int) -> int:
    """``m = floor(sqrt(n) + 1/2)``, scipy's default window length."""
    return math.floor(math.sqrt(n) + 0.5)


def spacing_local(v: np.ndarray, m: int, method: str) -> np.ndarray:
    """Local terms of the Vasicek or Ebrahimi estimator of a 1-D sample ``v``."""
    n = v.shape[0]
    s = np.sort(v)
    i = np.arange(n)
    diff = s[np.minimum(i + m, n - 1)] - s[np.maximum(i - m, 0)]
    if not bool((diff > 0).all()):
        raise ValueError(
            f"{method} entropy: more than {2 * m} equal values make an m-spacing 0 (entropy "
            "-inf); pass noise > 0 (the default breaks ties) or treat the data as discrete"
        )
    if method == "vasicek":
        c = np.full(n, 2.0)
    else:
        j = i + 1.0
        c = np.where(j <= m, 1.0 + (j - 1.0) / m, np.where(j >= n - m + 1, 1.0 + (n - j) / m,
                                                            2.0))
    return np.log(n / (c * m) * diff)
