"""Exponential families through their natural parameters and log-partition function A.

Private to :mod:`divergences.distributions`. Each family maps its usual parameters to a list
of natural-parameter tensors (``event_ndim`` trailing axes each) and supplies ``A``, its
gradient (the mean of the sufficient statistic) and the natural parameter space. KL and
Renyi are then written once in :class:`Family`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import distributions as td

_LOG2 = math.log(2.0)


def _sum_event(x: torch.Tensor, ndim: int) -> torch.Tensor:
    return x.sum(dim=tuple(range(-ndim, 0))) if ndim else x


def _expand_ok(ok: torch.Tensor, ndim: int) -> torch.Tensor:
    return ok.reshape(ok.shape + (1,) * ndim)


def _require(cond: torch.Tensor, name: str, constraint: str, t: torch.Tensor) -> None:
    bad = ~cond
    if bool(bad.any()):
        raise ValueError(
            f"{name} must be {constraint}; got {float(t.detach()[bad.expand(t.shape)][0])!r}"
        )


def _finite(t: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite; it has NaN or inf entries")


class Family:
    name: str = ""
    param_names: tuple[str, ...] = ()
    eta_ndim: tuple[int, ...] = ()
    discrete: bool = False

    def validate(self, params: Sequence[torch.Tensor], which: str) -> list[torch.Tensor]:
        raise NotImplementedError

    def natural(self, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    def log_partition(self, eta: Sequence[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def grad_log_partition(self, eta: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    def in_domain(self, eta: Sequence[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def torch_dist(self, params: Sequence[torch.Tensor]) -> td.Distribution:
        raise NotImplementedError

    def standardize(self, p1: Sequence[torch.Tensor], p2: Sequence[torch.Tensor]
                    ) -> tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]]:
        """The pair after a common change of variable that leaves every divergence unchanged."""
        return p1, p2

    def _inner(self, a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
        return sum(_sum_event(x * y, k) for x, y, k in zip(a, b, self.eta_ndim))

    def natural_pair(self, p1: Sequence[torch.Tensor], p2: Sequence[torch.Tensor]
                     ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        p1, p2 = self.standardize(p1, p2)
        return self.natural(p1), self.natural(p2)

    def kl(self, p1: Sequence[torch.Tensor], p2: Sequence[torch.Tensor]) -> torch.Tensor:
        e1, e2 = self.natural_pair(p1, p2)
        diff = [y - x for x, y in zip(e1, e2)]
        mean1 = self.grad_log_partition(e1)
        # Bregman form: equal parameters give exactly 0 (diff is 0, A(e2) - A(e1) is 0).
        value = (self.log_partition(e2) - self.log_partition(e1)) - self._inner(mean1, diff)
        return value.clamp_min(0.0)

    def renyi(self, p1: Sequence[torch.Tensor], p2: Sequence[torch.Tensor],
              a: float) -> torch.Tensor:
        e1, e2 = self.natural_pair(p1, p2)
        # theta_2 + a (theta_1 - theta_2), not a theta_1 + (1 - a) theta_2: exact at p1 = p2.
        ea = [y + a * (x - y) for x, y in zip(e1, e2)]
        ok = self.in_domain(ea)
        # Outside the natural parameter space A is undefined (NaN, and NaN gradients through
        # torch.where): evaluate it at theta_2 there and replace the value by +inf.
        safe = [torch.where(_expand_ok(ok, k), x, y) for x, y, k in zip(ea, e2, self.eta_ndim)]
        a1, a2 = self.log_partition(e1), self.log_partition(e2)
        value = ((self.log_partition(safe) - a2) - a * (a1 - a2)) / (a - 1.0)
        return torch.where(ok, value.clamp_min(0.0), torch.full_like(value, math.inf))

    def js(self, p1: Sequence[torch.Tensor], p2: Sequence[torch.Tensor], samples: int,
           seed: int) -> torch.Tensor:
        d1, d2 = self.torch_dist(p1), self.torch_dist(p2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            x1 = d1.rsample((samples,))
            x2 = d2.rsample((samples,))

        def half(x: torch.Tensor, own: td.Distribution) -> torch.Tensor:
            lo, l1, l2 = own.log_prob(x), d1.log_prob(x), d2.log_prob(x)
            return (_LOG2 + lo - torch.logaddexp(l1, l2)).mean(0)

        return (0.5 * (half(x1, d1) + half(x2, d2))).clamp_min(0.0)


# --------------------------------------------------------------------------------------------
# Discrete families
# --------------------------------------------------------------------------------------------


class Categorical(Family):
    """eta = log p (overcomplete), A(eta) = log sum exp(eta); zeros are handled exactly."""

    name = "categorical"
    param_names = ("probs",)
    eta_ndim = (1,)
    discrete = True

    def validate(self, params, which):
        (p,) = params
        name = f"{which}.probs"
        if p.ndim < 1:
            raise ValueError(f"{name} must have shape (..., k) with k >= 1; got a scalar")
        _finite(p, name)
        _require(p >= 0, name, "non-negative", p)
        s = p.sum(-1, keepdim=True)
        tol = 1e-6 if p.dtype == torch.float64 else 1e-4
        _require((s - 1).abs() <= tol, name, f"a probability vector (sum 1 within {tol})", s)
        return [p / s]

    def _probs(self, params):
        return params[0]

    def kl(self, p1, p2):
        p, q = self._probs(p1), self._probs(p2)
        pz, qz = p == 0, q == 0
        # Logs of 1 at zeros keep the unused branch (and its gradient) finite.
        lp = torch.log(torch.where(pz, torch.ones_like(p), p))
        lq = torch.log(torch.where(qz, torch.ones_like(q), q))
        t = torch.where(pz, torch.zeros_like(p * q), p * (lp - lq))
        t = torch.where(qz & ~pz, torch.full_like(t, math.inf), t)
        return t.sum(-1).clamp_min(0.0)

    def renyi(self, p1, p2, a):
        p, q = self._probs(p1), self._probs(p2)
        pz, qz = p == 0, q == 0
        lp = torch.log(torch.where(pz, torch.ones_like(p), p))
        lq = torch.log(torch.where(qz, torch.ones_like(q), q))
        ea = lq + a * (lp - lq)
        ea = torch.where(pz | (qz & (a < 1)), torch.full_like(ea, -math.inf), ea)
        ea = torch.where(qz & ~pz & (a > 1), torch.full_like(ea, math.inf), ea)
        a1 = torch.logsumexp(torch.where(pz, torch.full_like(lp, -math.inf), lp), -1)
        a2 = torch.logsumexp(torch.where(qz, torch.full_like(lq, -math.inf), lq), -1)
        value = ((torch.logsumexp(ea, -1) - a2) - a * (a1 - a2)) / (a - 1.0)
        return value.clamp_min(0.0)

    def js(self, p1, p2, samples, seed):
        p, q = self._probs(p1), self._probs(p2)
        m = 0.5 * (p + q)
        ms = torch.where(m == 0, torch.ones_like(m), m)

        def term(x):
            xs = torch.where(x == 0, torch.ones_like(x), x)
            return torch.where(x == 0, torch.zeros_like(x * ms), x * torch.log(xs / ms))

        return (0.5 * (term(p) + term(q))).sum(-1).clamp_min(0.0)


class Bernoulli(Categorical):
    """The two-category Categorical (1 - p, p); minimal form eta = logit p, A = softplus."""

    name = "bernoulli"
    param_names = ("probs",)

    def validate(self, params, which):
        (p,) = params
        name = f"{which}.probs"
        _finite(p, name)
        _require((p >= 0) & (p <= 1), name, "in [0, 1]", p)
        return [p]

    def _probs(self, params):
        p = params[0]
        return torch.stack([1.0 - p, p], -1)


class Poisson(Family):
    """eta = log rate, A = exp(eta)."""

    name = "poisson"
    param_names = ("rate",)
    eta_ndim = (0,)
    discrete = True

    def validate(self, params, which):
        (r,) = params
        _finite(r, f"{which}.rate")
        _require(r > 0, f"{which}.rate", "> 0", r)
        return [r]

    def natural(self, params):
        return [torch.log(params[0])]

    def log_partition(self, eta):
        return torch.exp(eta[0])

    def grad_log_partition(self, eta):
        return [torch.exp(eta[0])]

    def in_domain(self, eta):
        return torch.ones_like(eta[0], dtype=torch.bool)

    def js(self, p1, p2, samples, seed):
        r1, r2 = p1[0], p2[0]
        top = float(torch.maximum(r1.detach().max(), r2.detach().max()))
        bottom = float(torch.minimum(r1.detach().min(), r2.detach().min()))
        # Outside rate -+ (10 sd + 40) both tails are below 1e-20 (Chernoff bounds).
        kmax = math.ceil(top + 10.0 * math.sqrt(top) + 40.0)
        kmin = max(0, math.floor(bottom - 10.0 * math.sqrt(bottom) - 40.0))
        k = torch.arange(kmin, kmax + 1, dtype=r1.dtype, device=r1.device)
        r1, r2 = torch.broadcast_tensors(r1, r2)
        r1, r2 = r1.unsqueeze(-1), r2.unsqueeze(-1)
        lf = torch.lgamma(k + 1.0)
        l1 = k * torch.log(r1) - r1 - lf
        l2 = k * torch.log(r2) - r2 - lf
        lm = torch.logaddexp(l1, l2) - _LOG2
        t = torch.exp(l1) * (l1 - lm) + torch.exp(l2) * (l2 - lm)
        return (0.5 * t.sum(-1)).clamp_min(0.0)


# --------------------------------------------------------------------------------------------
# Continuous families
# --------------------------------------------------------------------------------------------


class Exponential(Family):
    """eta = -rate, A = -log(-eta)."""

    name = "exponential"
    param_names = ("rate",)
    eta_ndim = (0,)

    def validate(self, params, which):
        (r,) = params
        _finite(r, f"{which}.rate")
        _require(r > 0, f"{which}.rate", "> 0", r)
        return [r]

    def standardize(self, p1, p2):
        # Rescaling x leaves divergences unchanged; rate 1 for q keeps A's terms of order 1,
        # so that their differences do not cancel digits at extreme rates.
        return [p1[0] / p2[0]], [torch.ones_like(p2[0])]

    def natural(self, params):
        return [-params[0]]

    def log_partition(self, eta):
        return -torch.log(-eta[0])

    def grad_log_partition(self, eta):
        return [-1.0 / eta[0]]

    def in_domain(self, eta):
        return eta[0] < 0

    def torch_dist(self, params):
        return td.Exponential(params[0], validate_args=False)


class Gamma(Family):
    """eta = (concentration - 1, -rate), A = lgamma(eta1 + 1) - (eta1 + 1) log(-eta2)."""

    name = "gamma"
    param_names = ("concentration", "rate")
    eta_ndim = (0, 0)

    def validate(self, params, which):
        for n, t in zip(self.param_names, params):
            _finite(t, f"{which}.{n}")
            _require(t > 0, f"{which}.{n}", "> 0", t)
        return list(params)

    def standardize(self, p1, p2):
        # As for the Exponential: a common rescaling of x, so that q has rate 1.
        return [p1[0], p1[1] / p2[1]], [p2[0], torch.ones_like(p2[1])]

    def natural(self, params):
        return [params[0] - 1.0, -params[1]]

    def log_partition(self, eta):
        a = eta[0] + 1.0
        return torch.lgamma(a) - a * torch.log(-eta[1])

    def grad_log_partition(self, eta):
        a = eta[0] + 1.0
        return [torch.digamma(a) - torch.log(-eta[1]), -a / eta[1]]

    def in_domain(self, eta):
        return (eta[0] > -1) & (eta[1] < 0)

    def torch_dist(self, params):
        return td.Gamma(params[0], params[1], validate_args=False)


class Beta(Family):
    """eta = (a - 1, b - 1), A = lgamma(a) + lgamma(b) - lgamma(a + b)."""

    name = "beta"
    param_names = ("concentration1", "concentration0")
    eta_ndim = (0, 0)

    def validate(self, params, which):
        for n, t in zip(self.param_names, params):
            _finite(t, f"{which}.{n}")
            _require(t > 0, f"{which}.{n}", "> 0", t)
        return list(params)

    def natural(self, params):
        return [params[0] - 1.0, params[1] - 1.0]

    def log_partition(self, eta):
        a, b = eta[0] + 1.0, eta[1] + 1.0
        return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)

    def grad_log_partition(self, eta):
        a, b = eta[0] + 1.0, eta[1] + 1.0
        s = torch.digamma(a + b)
        return [torch.digamma(a) - s, torch.digamma(b) - s]

    def in_domain(self, eta):
        return (eta[0] > -1) & (eta[1] > -1)

    def torch_dist(self, params):
        return td.Beta(params[0], params[1], validate_args=False)


class Dirichlet(Family):
    """eta = concentration - 1, A = sum lgamma(c) - lgamma(sum c)."""

    name = "dirichlet"
    param_names = ("concentration",)
    eta_ndim = (1,)

    def validate(self, params, which):
        (c,) = params
        name = f"{which}.concentration"
        if c.ndim < 1 or c.shape[-1] < 2:
            raise ValueError(f"{name} must have shape (..., k) with k >= 2; got {tuple(c.shape)}")
        _finite(c, name)
        _require(c > 0, name, "> 0", c)
        return [c]

    def natural(self, params):
        return [params[0] - 1.0]

    def log_partition(self, eta):
        c = eta[0] + 1.0
        return torch.lgamma(c).sum(-1) - torch.lgamma(c.sum(-1))

    def grad_log_partition(self, eta):
        c = eta[0] + 1.0
        return [torch.digamma(c) - torch.digamma(c.sum(-1, keepdim=True))]

    def in_domain(self, eta):
        return (eta[0] > -1).all(-1)

    def torch_dist(self, params):
        return td.Dirichlet(params[0], validate_args=False)


class Normal(Family):
    """eta = (mu / s^2, -1 / (2 s^2)), A = -eta1^2 / (4 eta2) - log(-2 eta2) / 2."""

    name = "normal"
    param_names = ("loc", "scale")
    eta_ndim = (0, 0)

    def validate(self, params, which):
        loc, scale = params
        _finite(loc, f"{which}.loc")
        _finite(scale, f"{which}.scale")
        _require(scale > 0, f"{which}.scale", "> 0", scale)
        return [loc, scale]

    def standardize(self, p1, p2):
        # The affine map x -> (x - loc_q) / scale_q leaves divergences unchanged; without it
        # A(theta) grows like (loc / scale)^2 and its differences lose the digits of a small
        # divergence between two distant-from-0 normals (5e-7 relative at loc 100, scale 0.01).
        (m1, s1), (m2, s2) = p1, p2
        return [(m1 - m2) / s2, s1 / s2], [torch.zeros_like(m2), torch.ones_like(s2)]

    def natural(self, params):
        loc, scale = params
        prec = 1.0 / (scale * scale)
        return [loc * prec, -0.5 * prec]

    def log_partition(self, eta):
        return -eta[0] ** 2 / (4.0 * eta[1]) - 0.5 * torch.log(-2.0 * eta[1])

    def grad_log_partition(self, eta):
        mean = -eta[0] / (2.0 * eta[1])
        return [mean, mean * mean - 0.5 / eta[1]]

    def in_domain(self, eta):
        return eta[1] < 0

    def torch_dist(self, params):
        return td.Normal(params[0], params[1], validate_args=False)


class MultivariateNormal(Family):
    """Computed by :mod:`divergences.gaussian`; here only parameters and sampling."""

    name = "multivariate_normal"
    param_names = ("loc", "covariance_matrix")

    def validate(self, params, which):
        loc, cov = params
        if loc.ndim < 1 or cov.ndim < 2:
            raise ValueError(
                f"{which}.loc must have shape (..., d) and {which}.covariance_matrix "
                f"(..., d, d); got {tuple(loc.shape)} and {tuple(cov.shape)}"
            )
        _finite(loc, f"{which}.loc")
        _finite(cov, f"{which}.covariance_matrix")
        return [loc, cov]

    def torch_dist(self, params):
        return td.MultivariateNormal(params[0], covariance_matrix=params[1],
                                     validate_args=False)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Bernoulli(), Categorical(), Poisson(), Exponential(), Gamma(), Beta(), Dirichlet(),
    Normal(), MultivariateNormal(),
)}

_TORCH = (
    (td.Bernoulli, "bernoulli", ("probs",)),
    (td.Categorical, "categorical", ("probs",)),
    (td.Poisson, "poisson", ("rate",)),
    (td.Exponential, "exponential", ("rate",)),
    (td.Gamma, "gamma", ("concentration", "rate")),
    (td.Beta, "beta", ("concentration1", "concentration0")),
    (td.Dirichlet, "dirichlet", ("concentration",)),
    (td.Normal, "normal", ("loc", "scale")),
    (td.MultivariateNormal, "multivariate_normal", ("loc", "covariance_matrix")),
)


def family_of_torch(d: td.Distribution, which: str) -> tuple[str, tuple[torch.Tensor, ...]]:
    """(family name, parameters) of a ``torch.distributions`` object."""
    for cls, name, attrs in _TORCH:
        if type(d) is cls:
            return name, tuple(getattr(d, a) for a in attrs)
    supported = ", ".join(c.__name__ for c, _, _ in _TORCH)
    raise ValueError(f"{which} is a {type(d).__name__}; supported families: {supported}")
