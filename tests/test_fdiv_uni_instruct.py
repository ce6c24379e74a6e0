r"""Uni-Instruct's diffusion expansion of an f-divergence, checked numerically.

Uni-Instruct (Wang et al. 2025, arXiv:2505.20755, Theorem 3.1, "diffusion expansion of the
f-divergence family") writes a data-space f-divergence as a time integral, along the forward
diffusion, of score differences weighted by a function of the density ratio. For the heat flow
:math:`dx = g\,dW` (densities :math:`p_t, q_t`, scores :math:`s_p, s_q`, ratio
:math:`r_t = p_t/q_t`) the identity reads

.. math::
    \frac{d}{dt} D_f(p_t \,\|\, q_t)
      = -\frac{g^2}{2}\, \mathbb{E}_{q_t}\!\big[h(r_t)\,\|s_p - s_q\|^2\big],
    \qquad h(r) = r^2 f''(r),

so :math:`D_f(p_0\|q_0) = D_f(p_T\|q_T) + \int_0^T \frac{g^2}{2}\mathbb{E}_{q_t}[h(r_t)
\|s_p - s_q\|^2]\,dt` (the paper takes :math:`T \to \infty`, where the last divergence
vanishes). The weight :math:`h` is the registry's :meth:`FDivergence.weight`, the same function
:func:`divergences.fdiv.f_distill_weights` returns (f-distill, Uni-Instruct). The identity is
derived in one line: :math:`\partial_t D_f = \int \partial_t q\,(f - r f') + \partial_t p\,f'`,
:math:`\partial_t = \frac{g^2}{2}\Delta`, integrate by parts and use
:math:`\nabla r = r\,(s_p - s_q)`.

The check: 1-D Gaussian mixtures (closed under the heat flow: each variance grows by
:math:`g^2 t`), exact scores, :math:`D_f` by quadrature on a wide grid through the registry's
``terms`` (the one formula of each divergence), the time derivative by central differences, the
time integral by Gauss-Legendre in :math:`\log(1+t)`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from divergences import fdiv

# every registry member with a twice-differentiable generator (tv's |t - 1| / 2 is not)
SMOOTH = ["kl", "reverse_kl", "js", "squared_hellinger", "jeffreys", "pearson_chi2",
          "neyman_chi2", "alpha", "le_cam", "triangular", "skew_kl", "skew_reverse_kl"]

# p_0 and q_0: two-component mixtures (weights, means, variances) with equal largest variance,
# so that every density ratio stays finite on the grid
P0 = ((0.6, 0.4), (-1.0, 1.5), (0.5, 1.0))
Q0 = ((0.5, 0.5), (0.0, 2.0), (1.0, 0.7))
G = 1.3   # diffusion coefficient g


def _mixture(params, t, x):
    """log-density and score of a Gaussian mixture after heat flow for time t."""
    w, mu, var = (torch.tensor(v, dtype=torch.float64) for v in params)
    v = var + G * G * t
    z = x[:, None] - mu
    logc = torch.log(w) - 0.5 * torch.log(2 * math.pi * v) - 0.5 * z * z / v
    logp = torch.logsumexp(logc, -1)
    resp = torch.exp(logc - logp[:, None])
    score = (resp * (-z / v)).sum(-1)
    return logp, score


def _grid(t, n=3001):
    half = 14.0 * math.sqrt(1.0 + G * G * t) + 3.0
    x = torch.linspace(-half, half, n, dtype=torch.float64)
    return x, float(x[1] - x[0])


def _divergence(fd, t):
    x, dx = _grid(t)
    lp, _ = _mixture(P0, t, x)
    lq, _ = _mixture(Q0, t, x)
    logdx = math.log(dx)
    return float(fd.terms(lp + logdx, lq + logdx).sum())


def _dissipation(fd, t):
    r""":math:`\frac{g^2}{2}\mathbb{E}_{q_t}[h(r_t)(s_p - s_q)^2]` by quadrature."""
    x, dx = _grid(t)
    lp, sp = _mixture(P0, t, x)
    lq, sq = _mixture(Q0, t, x)
    h = fd.weight(torch.exp(lp - lq))
    return float(0.5 * G * G * (torch.exp(lq) * h * (sp - sq) ** 2).sum() * dx)


@pytest.mark.parametrize("name", SMOOTH)
@pytest.mark.parametrize("t", [0.0, 0.4, 3.0])
def test_time_derivative_is_minus_weighted_score_gap(name, t):
    fd = fdiv.get(name)
    delta = 1e-4
    if t == 0.0:   # one-sided (second order) at the start of the flow
        d = (-3 * _divergence(fd, 0.0) + 4 * _divergence(fd, delta)
             - _divergence(fd, 2 * delta)) / (2 * delta)
    else:
        d = (_divergence(fd, t + delta) - _divergence(fd, t - delta)) / (2 * delta)
    rhs = _dissipation(fd, t)
    assert rhs > 0
    assert d == pytest.approx(-rhs, rel=1e-6)


@pytest.mark.parametrize("name", ["kl", "reverse_kl", "js", "squared_hellinger",
                                  "pearson_chi2", "neyman_chi2"])
def test_divergence_equals_integrated_weighted_score_gap(name):
    fd = fdiv.get(name)
    horizon = 200.0
    nodes, weights = np.polynomial.legendre.leggauss(48)
    smax = math.log1p(horizon)
    s = 0.5 * smax * (nodes + 1.0)
    integral = 0.0
    for si, wi in zip(s, weights):
        t = math.expm1(si)
        integral += 0.5 * smax * wi * (1.0 + t) * _dissipation(fd, t)   # dt = (1 + t) ds
    d0 = _divergence(fd, 0.0)
    dT = _divergence(fd, horizon)
    print(f"\n{name}: D_f(p_0||q_0) = {d0:.10f}, D_f(p_T||q_T) + integral = "
          f"{dT + integral:.10f} (D_f(p_T||q_T) = {dT:.3e})")
    assert dT < 1e-2 * d0                      # the flow has almost merged the two
    assert d0 == pytest.approx(dT + integral, rel=1e-7)


def test_reverse_kl_weight_is_one_vsd_case():
    # reverse KL (h = 1) is variational score distillation: the unweighted score gap
    fd = fdiv.get("reverse_kl")
    x, dx = _grid(0.7)
    lp, sp = _mixture(P0, 0.7, x)
    lq, sq = _mixture(Q0, 0.7, x)
    plain = float(0.5 * G * G * (torch.exp(lq) * (sp - sq) ** 2).sum() * dx)
    assert _dissipation(fd, 0.7) == pytest.approx(plain, rel=1e-12)
    w = fdiv.f_distill_weights(lp - lq, "reverse_kl", clip=None, normalize=False)
    torch.testing.assert_close(w, torch.ones_like(w), rtol=1e-14, atol=0)


def test_weights_proportional_to_official_f_distill_table():
    # NVlabs FastGen, fastgen/methods/distribution_matching/f_distill.py (the f-distill /
    # Uni-Instruct code): h(r) per divergence, up to the constant the batch-mean removes.
    r = torch.tensor([0.1, 0.3, 1.0, 2.5, 20.0], dtype=torch.float64)
    official = {"reverse_kl": torch.ones_like(r), "kl": r, "js": 1 - 1 / (1 + r),
                "neyman_chi2": 1 / r, "squared_hellinger": r.sqrt(), "jeffreys": 1 + r}
    for name, h in official.items():
        w = fdiv.f_distill_weights(r.log(), name)        # clipped to [0.1, 20], mean 1
        torch.testing.assert_close(w, h / h.mean(), rtol=1e-12, atol=0)
