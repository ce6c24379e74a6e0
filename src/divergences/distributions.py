r"""Closed-form divergences between two members of one exponential family.

A density of an exponential family is :math:`p_\theta(x) = h(x)\exp(\langle\theta, T(x)\rangle
- A(\theta))` with natural parameters :math:`\theta` and log-partition function :math:`A`.
Every measure here is written once through :math:`A` (the base measure :math:`h` cancels):

.. math:: D_\alpha(p_1\|p_2) = \frac{A(\alpha\theta_1 + (1-\alpha)\theta_2) - \alpha A(\theta_1)
          - (1-\alpha) A(\theta_2)}{\alpha - 1},

:math:`\mathrm{KL}(p_1\|p_2) = A(\theta_2) - A(\theta_1)
- \langle\nabla A(\theta_1), \theta_2 - \theta_1\rangle` (its limit at :math:`\alpha = 1`, the
Bregman divergence of :math:`A`), the Bhattacharyya distance
:math:`D_B = -\log\int\sqrt{p_1p_2} = \tfrac12 A(\theta_1) + \tfrac12 A(\theta_2)
- A(\tfrac{\theta_1+\theta_2}2) = \tfrac12 D_{1/2}` and the squared Hellinger distance
:math:`\int(\sqrt{p_1}-\sqrt{p_2})^2 = 2(1 - e^{-D_B})`, in [0, 2] (the convention of the
registry's ``squared_hellinger``). The Jensen-Shannon divergence has no closed form: :func:`js`
is an exact sum for Bernoulli and Categorical, a sum truncated where the Poisson tails fall
below 1e-20, and a Monte Carlo estimate for the continuous families.

Conventions: natural logarithm (nats); the direction is :math:`D(p_1\|p_2)`, the expectation
under the first argument. For :math:`\alpha > 1` the combination
:math:`\alpha\theta_1 + (1-\alpha)\theta_2` may leave the natural parameter space; the
integral :math:`\int p_1^\alpha p_2^{1-\alpha}` then diverges and the value is ``+inf``.

Families and parameters (``family=`` with tuples or dicts of parameters, or the matching
``torch.distributions`` objects): ``"bernoulli"`` (probs), ``"categorical"`` (probs, last
axis), ``"poisson"`` (rate), ``"exponential"`` (rate), ``"gamma"`` (concentration, rate),
``"beta"`` (concentration1, concentration0), ``"dirichlet"`` (concentration, last axis),
``"normal"`` (loc, scale) and ``"multivariate_normal"`` (loc, covariance_matrix; computed by
:mod:`divergences.gaussian`). Batch axes broadcast; torch in gives torch out
(differentiable), NumPy or floats in give NumPy out.

>>> import torch
>>> from torch.distributions import Gamma
>>> from divergences import distributions as dd
>>> p, q = Gamma(torch.tensor(2.0), torch.tensor(1.0)), Gamma(torch.tensor(3.0), torch.tensor(2.0))
>>> bool(torch.isclose(dd.kl(p, q), torch.distributions.kl_divergence(p, q)))
True
>>> round(float(dd.kl((2.0, 1.0), (3.0, 2.0), family="gamma")), 6)
0.190921
"""

from __future__ import annotations

import math
from typing import Any

import torch

from . import gaussian
from ._arrays import as_tensors
from ._expfam import FAMILIES, Family, family_of_torch

__all__ = ["bhattacharyya", "families", "hellinger", "js", "kl", "renyi"]


def families() -> list[str]:
    """The family names accepted by ``family=``.

    >>> from divergences import distributions as dd
    >>> dd.families()[:3]
    ['bernoulli', 'beta', 'categorical']
    """
    return sorted(FAMILIES)


def _params(x: Any, fam_name: str | None, which: str) -> tuple[str, tuple[Any, ...]]:
    """(family name, parameters) of one argument."""
    if isinstance(x, torch.distributions.Distribution):
        name, params = family_of_torch(x, which)
        if fam_name is not None and fam_name != name:
            raise ValueError(f"family={fam_name!r} but {which} is a {type(x).__name__}")
        return name, params
    if fam_name is None:
        raise TypeError(
            f"{which} is a {type(x).__name__}, not a torch.distributions object: pass "
            f"family= (one of {', '.join(families())}) with a tuple or dict of parameters"
        )
    fam = FAMILIES[fam_name]
    if isinstance(x, dict):
        if set(x) != set(fam.param_names):
            raise ValueError(
                f"{which} for family {fam_name!r} takes parameters {fam.param_names}; "
                f"got {sorted(x)}"
            )
        return fam_name, tuple(x[n] for n in fam.param_names)
    if len(fam.param_names) == 1:
        # A bare value (or a list of probabilities) is the one parameter; a 1-tuple wraps it.
        return fam_name, ((x[0],) if isinstance(x, tuple) and len(x) == 1 else (x,))
    if not isinstance(x, (tuple, list)) or len(x) != len(fam.param_names):
        raise ValueError(
            f"{which} for family {fam_name!r} must be a tuple {fam.param_names}; got {x!r}"
        )
    return fam_name, tuple(x)


def _prepare(p: Any, q: Any, family: str | None) -> tuple[Family, list, list, Any]:
    if family is not None:
        key = family.lower().replace(" ", "_")
        if key not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; choose one of {', '.join(families())}")
        family = key
    n1, a1 = _params(p, family, "p")
    n2, a2 = _params(q, family, "q")
    if n1 != n2:
        raise ValueError(f"p and q must be of one family; p is {n1!r} but q is {n2!r}")
    fam = FAMILIES[n1]
    names = [f"p.{n}" for n in fam.param_names] + [f"q.{n}" for n in fam.param_names]
    tensors, wrap = as_tensors(*a1, *a2, names=names)
    k = len(fam.param_names)
    t1 = fam.validate(tensors[:k], "p")
    t2 = fam.validate(tensors[k:], "q")
    return fam, t1, t2, wrap


_GAUSSIAN_NAMES = (("mean_p", "p.loc"), ("cov_p", "p.covariance_matrix"),
                   ("mean_q", "q.loc"), ("cov_q", "q.covariance_matrix"))


def _gaussian(fn: Any, t1: list, t2: list, **kw: Any) -> torch.Tensor:
    """A :mod:`divergences.gaussian` function; its errors name this module's arguments."""
    try:
        return fn(t1[0], t1[1], t2[0], t2[1], **kw)
    except ValueError as exc:
        msg = str(exc)
        for theirs, ours in _GAUSSIAN_NAMES:
            msg = msg.replace(theirs, ours)
        raise ValueError(msg) from None


def _check_order(order: float) -> float:
    try:
        a = float(order)
    except (TypeError, ValueError):
        raise TypeError(f"order must be a real number; got {order!r}") from None
    if not (a > 0.0) or math.isinf(a):
        raise ValueError(f"order must be a finite number > 0; got {order!r}")
    return a


def kl(p: Any, q: Any, /, *, family: str | None = None) -> Any:
    r"""Kullback-Leibler divergence :math:`\mathrm{KL}(p\|q)` between two members of one family.

    .. math:: \mathrm{KL}(p_1\|p_2) = A(\theta_2) - A(\theta_1)
              - \langle\nabla A(\theta_1), \theta_2 - \theta_1\rangle,

    the Bregman divergence of the log-partition function (natural log, expectation under
    ``p``). ``p`` and ``q`` are ``torch.distributions`` objects of one family, or tuples (or
    dicts) of parameters with ``family=``; see the module docstring for the families. The
    multivariate normal is computed by :func:`divergences.gaussian.kl`.

    >>> import numpy as np
    >>> from divergences import distributions as dd
    >>> float(dd.kl(0.5, 0.5, family="bernoulli"))
    0.0
    >>> bool(np.isclose(dd.kl((0.0, 1.0), (1.0, 2.0), family="normal"),
    ...                 np.log(2) + (1 + 1) / 8 - 0.5))
    True
    """
    fam, t1, t2, wrap = _prepare(p, q, family)
    if fam.name == "multivariate_normal":
        return wrap(_gaussian(gaussian.kl, t1, t2))
    return wrap(fam.kl(t1, t2))


def renyi(p: Any, q: Any, /, *, order: float, family: str | None = None) -> Any:
    r"""Renyi divergence of order ``order`` (:math:`\alpha > 0`) between two members of one family.

    .. math:: D_\alpha(p_1\|p_2) = \frac{1}{\alpha-1}\log\int p_1^\alpha p_2^{1-\alpha}
              = \frac{A(\alpha\theta_1 + (1-\alpha)\theta_2) - \alpha A(\theta_1)
              - (1-\alpha)A(\theta_2)}{\alpha - 1}.

    ``order = 1`` is :func:`kl`. For ``order > 1`` the value is ``+inf`` where
    :math:`\alpha\theta_1 + (1-\alpha)\theta_2` leaves the natural parameter space (the
    integral diverges). Computed as
    :math:`[A(\theta_\alpha) - A(\theta_2) - \alpha(A(\theta_1) - A(\theta_2))]/(\alpha-1)`
    with :math:`\theta_\alpha = \theta_2 + \alpha(\theta_1 - \theta_2)`, so that equal
    parameters give exactly 0.

    >>> from divergences import distributions as dd
    >>> round(float(dd.renyi(2.0, 1.0, family="poisson", order=0.5)), 6)   # (sqrt 2 - 1)^2
    0.171573
    >>> float(dd.renyi(1.0, 3.0, family="exponential", order=2.0))      # 2*1 - 3 < 0
    inf
    """
    a = _check_order(order)
    fam, t1, t2, wrap = _prepare(p, q, family)
    if fam.name == "multivariate_normal":
        if a == 1.0:
            return wrap(_gaussian(gaussian.kl, t1, t2))
        return wrap(_gaussian(gaussian.renyi, t1, t2, alpha=a))
    if a == 1.0:
        return wrap(fam.kl(t1, t2))
    return wrap(fam.renyi(t1, t2, a))


def _bhattacharyya(fam: Family, t1: list, t2: list) -> torch.Tensor:
    if fam.name == "multivariate_normal":
        return _gaussian(gaussian.bhattacharyya, t1, t2)
    return fam.renyi(t1, t2, 0.5) / 2.0


def bhattacharyya(p: Any, q: Any, /, *, family: str | None = None) -> Any:
    r"""Bhattacharyya distance :math:`D_B = -\log\int\sqrt{p_1p_2}`; symmetric, finite.

    .. math:: D_B = \tfrac12 A(\theta_1) + \tfrac12 A(\theta_2)
              - A\big(\tfrac{\theta_1+\theta_2}{2}\big) = \tfrac12 D_{1/2}(p_1\|p_2).

    >>> from divergences import distributions as dd
    >>> float(dd.bhattacharyya((0.0, 1.0), (2.0, 1.0), family="normal"))   # (2-0)^2/8
    0.5
    """
    fam, t1, t2, wrap = _prepare(p, q, family)
    return wrap(_bhattacharyya(fam, t1, t2))


def hellinger(p: Any, q: Any, /, *, family: str | None = None) -> Any:
    r"""Squared Hellinger distance :math:`\int(\sqrt{p_1} - \sqrt{p_2})^2 = 2(1 - e^{-D_B})`.

    The convention of the f-divergence ``squared_hellinger`` of :mod:`divergences.fdiv`
    (generator :math:`(\sqrt t - 1)^2`), in [0, 2], without the factor 1/2 some authors use
    (:func:`divergences.gaussian.hellinger` is the distance :math:`\sqrt{1 - e^{-D_B}}`, the
    square root of half of this). :math:`D_B` is :func:`bhattacharyya`.

    >>> import numpy as np
    >>> from divergences import distributions as dd
    >>> bool(np.isclose(dd.hellinger((0.0, 1.0), (2.0, 1.0), family="normal"),
    ...                 2 * (1 - np.exp(-0.5))))
    True
    """
    fam, t1, t2, wrap = _prepare(p, q, family)
    return wrap(-2.0 * torch.expm1(-_bhattacharyya(fam, t1, t2)))


def js(p: Any, q: Any, /, *, family: str | None = None, samples: int = 200_000,
       seed: int = 0) -> Any:
    r"""Jensen-Shannon divergence :math:`\tfrac12\mathrm{KL}(p_1\|m) + \tfrac12\mathrm{KL}(p_2\|m)`,
    :math:`m = \tfrac12(p_1 + p_2)`, in [0, log 2]. No closed form: computed numerically.

    * Bernoulli, Categorical: the exact finite sum.
    * Poisson: the sum over the counts within 10 standard deviations + 40 of either rate,
      outside which both tails are below 1e-20 (Chernoff bounds).
    * Exponential, Gamma, Beta, Dirichlet, Normal, multivariate Normal: a Monte Carlo
      estimate from ``samples`` draws of each distribution (``seed`` fixes them, so the value
      is reproducible and differentiable through reparameterised draws). Its standard error
      is at most ``0.71 / sqrt(samples)`` nats (about 1.6e-3 at the default): with
      :math:`r = p_2/p_1`, each term under :math:`p_1` is :math:`\log 2 - \log(1 + r)`,
      whose variance is at most :math:`E[\log(1 + r)^2] \le E[r] \le 1`. Memory is
      ``samples`` times the batch size.

    >>> from divergences import distributions as dd
    >>> round(float(dd.js(0.5, 0.5, family="bernoulli")), 6)
    0.0
    """
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer; got {samples!r}")
    fam, t1, t2, wrap = _prepare(p, q, family)
    return wrap(fam.js(t1, t2, samples, seed))
