r"""Regularisers: attention entropy, fairness by distance covariance, CS information bottleneck.

* :func:`attention_entropy`, :func:`attention_entropy_penalty`: entropy-guided attention;
  official code ``Nandan91/entropy-guided-attention-llm`` (``entropy_regularization.py``).
* :func:`fairness_penalty`, :func:`group_divergence`: Lee, Antonio, Avanzi, Marchi & Zhou
  (2025), *Machine learning with multitype protected attributes: intersectional fairness
  through regularisation*; the distance covariance family comes from
  :mod:`divergences.dependence`.
* :func:`cs_information_bottleneck_loss`: Yu et al. (2024), *Cauchy-Schwarz divergence
  information bottleneck for regression* (ICLR); official code
  ``SJYuCNEL/Cauchy-Schwarz-Information-Bottleneck`` (``loss_cs.py``); the CS divergence and
  CS-QMI come from :mod:`divergences.kernels`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from .. import dependence, discrete, kernels
from .._arrays import REDUCTIONS, ArrayLike, as_tensors, check_choice, check_range, log_base
from ._checks import check_float as _check_float

__all__ = [
    "CSIBOutput",
    "attention_entropy",
    "attention_entropy_penalty",
    "cs_information_bottleneck_loss",
    "fairness_penalty",
    "group_divergence",
]




# --------------------------------------------------------------------------------------------
# Entropy-guided attention
# --------------------------------------------------------------------------------------------


def _max_entropy(shape: torch.Size, causal: bool, dtype, device) -> torch.Tensor:
    """``log`` of the number of keys each query row attends to, shape ``(T_q,)``."""
    tq, tk = shape[-2], shape[-1]
    if not causal:
        return torch.full((tq,), math.log(tk), dtype=dtype, device=device)
    if tq > tk:
        raise ValueError(f"causal attention needs T_q <= T_k; got T_q={tq}, T_k={tk}")
    # query i (of the last T_q positions) sees keys 0 .. i + (T_k - T_q)
    counts = torch.arange(tk - tq + 1, tk + 1, dtype=dtype, device=device)
    return torch.log(counts)


def attention_entropy(attn_weights: torch.Tensor, causal: bool = False) -> torch.Tensor:
    r"""Shannon entropy (nats) of every attention row: ``(..., T_q, T_k) -> (..., T_q)``.

    :math:`H_i = -\sum_j a_{ij} \log a_{ij}` with :math:`0 \log 0 = 0`
    (:func:`divergences.discrete.entropy`). A uniform row over :math:`T` keys gives
    :math:`\log T`, a one-hot row 0. ``causal=True`` checks that each row puts no mass on the
    keys after it (query :math:`i` of the last :math:`T_q` positions sees
    :math:`i + T_k - T_q + 1` keys); its maximum is then the log of that count.

    >>> import torch, math
    >>> a = torch.tril(torch.ones(3, 3)); a = a / a.sum(-1, keepdim=True)
    >>> torch.allclose(attention_entropy(a, causal=True), torch.log(torch.tensor([1., 2., 3.])))
    True
    """
    a = _check_float(attn_weights, "attn_weights")
    if a.ndim < 2:
        raise ValueError(f"attn_weights must have shape (..., T_q, T_k); got {tuple(a.shape)}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool; got {type(causal).__name__}")
    if bool((a < 0).any()):
        raise ValueError("attn_weights contains negative weights")
    if causal:
        tq, tk = a.shape[-2], a.shape[-1]
        if tq > tk:
            raise ValueError(f"causal attention needs T_q <= T_k; got T_q={tq}, T_k={tk}")
        future = torch.ones(tq, tk, dtype=torch.bool, device=a.device).triu(tk - tq + 1)
        if bool((a.detach() * future).abs().sum() > 0):
            raise ValueError("causal=True but attn_weights puts mass on future keys")
    return discrete.entropy(a, input="probs", validate=False)


def attention_entropy_penalty(
    attn_weights: torch.Tensor,
    theta: torch.Tensor | float,
    gamma: float = 0.2,
    *,
    causal: bool = False,
    coef: float = 1e-5,
    reduction: str = "sum",
) -> torch.Tensor:
    r"""Entropy-guided attention penalty for one layer, ``attn_weights`` ``(B, H, T_q, T_k)``.

    With row entropies :math:`H_{bhi}` (:func:`attention_entropy`), the maximum entropy
    :math:`E_i` of the row and the per-head target fraction :math:`\theta_h` (``theta``,
    shape ``(H,)`` or a scalar; learnable in the paper),

    .. math:: d = H_{bhi} - \theta_h E_i,\qquad
              \text{penalty}_{bhi} = c\; d^2\,[\,|d| > \gamma E_i\,],

    zero inside the band :math:`|d| \le \gamma E_i` (``gamma = 0.2``), ``coef``
    :math:`c = 10^{-5}`. ``causal=False`` uses :math:`E_i = \log T_k` for every row (the
    official code); ``causal=True`` uses the log of the keys row :math:`i` attends to.
    ``reduction``: ``"sum"`` (the official aggregation: summed over batch and query rows,
    averaged over heads; average the layers' values yourself), ``"mean"`` over all
    ``(B, H, T_q)`` rows, ``"none"`` the ``(B, H, T_q)`` penalties.

    >>> import torch
    >>> a = torch.full((1, 2, 4, 4), 0.25)               # uniform rows: H = log 4
    >>> float(attention_entropy_penalty(a, torch.tensor([1.0, 0.9])))   # inside the band
    0.0
    >>> p = attention_entropy_penalty(a, torch.tensor([0.5, 0.5]), coef=1.0, reduction="none")
    >>> bool(torch.allclose(p, (0.5 * torch.log(torch.tensor(4.0))) ** 2))
    True
    """
    a = _check_float(attn_weights, "attn_weights")
    if a.ndim != 4:
        raise ValueError(f"attn_weights must have shape (B, H, T_q, T_k); got {tuple(a.shape)}")
    g = check_range(gamma, "gamma", 0.0)
    c = check_range(coef, "coef", 0.0)
    check_choice(reduction, "reduction", REDUCTIONS)
    h = attention_entropy(a, causal=causal)
    n_heads = a.shape[1]
    th = torch.as_tensor(theta, dtype=h.dtype, device=h.device)
    if th.ndim == 0:
        th = th.expand(n_heads)
    if th.shape != (n_heads,):
        raise ValueError(f"theta must be a scalar or have shape ({n_heads},); got {tuple(th.shape)}")
    e_max = _max_entropy(a.shape, causal, h.dtype, h.device)
    dev = h - th[:, None] * e_max
    outside = dev.abs() > g * e_max
    pen = c * torch.where(outside, dev, torch.zeros_like(dev)).square()
    if reduction == "none":
        return pen
    if reduction == "mean":
        return pen.mean()
    return pen.sum() / n_heads


# --------------------------------------------------------------------------------------------
# Fairness by distance covariance
# --------------------------------------------------------------------------------------------


FAIRNESS_KINDS = ("dcov", "jdcov", "ccdcov")


def fairness_penalty(
    predictions: ArrayLike,
    protected: ArrayLike | Sequence[ArrayLike],
    kind: str = "dcov",
    *,
    lam: float = 1.0,
) -> Any:
    r"""Distance-covariance fairness penalty ``lam * dependence(predictions, protected)``.

    Lee et al. (2025). ``predictions`` :math:`\hat y` ``(n,)`` or ``(n, k)``; ``protected`` one
    attribute ``(n,)``/``(n, d)`` or a sequence of attributes (encode a nominal attribute
    one-hot). ``kind``:

    * ``"dcov"``: :math:`\mathrm{dCov}^2_U(\hat y, s)`, the unbiased (U-centred) estimator
      (:func:`divergences.dependence.distance_covariance` with ``unbiased=True,
      squared=True``); one attribute only;
    * ``"jdcov"``: :math:`\mathrm{JdCov}^2_U(\hat y, s_1, \dots, s_k; c = 1)`
      (:func:`~divergences.dependence.joint_distance_covariance`), which for one attribute
      equals ``"dcov"``;
    * ``"ccdcov"``: :math:`\mathrm{dCov}^2_U(\hat y, [s_1, \dots, s_k])`
      (:func:`~divergences.dependence.concatenated_distance_covariance`).

    The U-statistics are unbiased for the population value, so they can be slightly negative
    for independent data. Differentiable in ``predictions`` (torch); needs ``n >= 4``.
    Calibrate ``lam`` with :func:`group_divergence`.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> s = rng.integers(0, 2, 200).astype(float)
    >>> fair, unfair = rng.normal(size=200), s + 0.3 * rng.normal(size=200)
    >>> bool(fairness_penalty(unfair, s) > 10 * abs(fairness_penalty(fair, s)))
    True
    """
    check_choice(kind, "kind", FAIRNESS_KINDS)
    lam_ = check_range(lam, "lam", 0.0)
    attrs = list(protected) if isinstance(protected, (list, tuple)) else [protected]
    if not attrs:
        raise ValueError("protected must hold at least one attribute")
    if kind == "dcov":
        if len(attrs) != 1:
            raise ValueError(
                f"kind='dcov' takes one protected attribute; got {len(attrs)} "
                "(use kind='jdcov' or 'ccdcov' for several)"
            )
        value = dependence.distance_covariance(predictions, attrs[0], unbiased=True,
                                               squared=True)
    elif kind == "jdcov":
        value = dependence.joint_distance_covariance(predictions, *attrs, c=1.0)
    else:
        value = dependence.concatenated_distance_covariance(predictions, *attrs, unbiased=True)
    return lam_ * value


def group_divergence(
    predictions: ArrayLike,
    groups: ArrayLike,
    *,
    grid_size: int = 512,
    base: float | None = 2.0,
) -> Any:
    r"""Generalised Jensen-Shannon divergence between the groups' prediction distributions.

    For groups :math:`g` with weights :math:`w_g = n_g / n` and prediction densities
    :math:`P_g` (Gaussian kernel density estimates, Scott's bandwidth
    :math:`\sigma_g n_g^{-1/5}` as ``scipy.stats.gaussian_kde``, evaluated on a common grid of
    ``grid_size`` points spanning the data with 4 bandwidths to spare and normalised there),

    .. math:: \mathrm{JS}_w(P_1, \dots, P_G) = \sum_g w_g\, \mathrm{KL}(P_g \,\|\, M),
              \qquad M = \sum_g w_g P_g,

    with the KL terms from :func:`divergences.discrete.kl`. It lies in
    :math:`[0, H(w)]` (0 for identical groups, :math:`H(w)` for separated ones). Bits by
    default (``base=2``, as in the paper, where it calibrates the penalty weight
    :math:`\lambda`); ``base=None`` for nats. ``predictions`` ``(n,)``, ``groups`` ``(n,)``
    labels (any values); a group needs 2 distinct predictions (a constant group borrows the
    pooled spread for its bandwidth). No gradient is needed: computed in float64.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat([0, 1], 300)
    >>> same = group_divergence(rng.normal(size=600), g)
    >>> apart = group_divergence(np.r_[rng.normal(size=300), 50 + rng.normal(size=300)], g)
    >>> bool(same < 0.05), round(float(apart), 4)
    (True, 1.0)
    """
    (pt,), wrap = as_tensors(predictions, names=("predictions",))
    x = pt.detach().to(torch.float64).cpu().reshape(-1) if pt.ndim <= 1 or (
        pt.ndim == 2 and pt.shape[1] == 1) else None
    if x is None:
        raise ValueError(f"predictions must have shape (n,); got {tuple(pt.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("predictions contains NaN or inf")
    gl = groups.detach().cpu().numpy() if isinstance(groups, torch.Tensor) else np.asarray(groups)
    if gl.shape != (x.shape[0],):
        raise ValueError(f"groups must have shape ({x.shape[0]},); got {gl.shape}")
    if isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size < 16:
        raise ValueError(f"grid_size must be an int >= 16; got {grid_size!r}")
    lb = log_base(base)
    labels, inv = np.unique(gl, return_inverse=True)
    if labels.size < 2:
        raise ValueError("groups must contain at least 2 distinct groups")
    inv_t = torch.as_tensor(inv)
    pooled_sd = float(x.std()) if x.numel() > 1 else 0.0
    bws, weights, members = [], [], []
    for k in range(labels.size):
        xs = x[inv_t == k]
        sd = float(xs.std()) if xs.numel() > 1 else 0.0
        if sd <= 0:
            sd = pooled_sd if pooled_sd > 0 else 1.0
        bws.append(sd * xs.numel() ** (-0.2))
        weights.append(xs.numel() / x.numel())
        members.append(xs)
    pad = 4.0 * max(bws)
    grid = torch.linspace(float(x.min()) - pad, float(x.max()) + pad, grid_size,
                          dtype=torch.float64)
    log_dens = []
    for xs, h in zip(members, bws):
        z = (grid[:, None] - xs[None, :]) / h
        log_dens.append(torch.logsumexp(-0.5 * z * z, dim=1))
    lp = torch.log_softmax(torch.stack(log_dens), dim=-1)        # each P_g on the grid
    lw = torch.log(torch.tensor(weights, dtype=torch.float64))
    lm = torch.logsumexp(lw[:, None] + lp, dim=0)                # log M
    kls = discrete.kl(lp, lm.expand_as(lp), input="log_probs", validate=False)
    value = (lw.exp() * kls).sum().clamp_min(0.0)
    if lb is not None:
        value = value / lb
    return wrap(value.to(pt.dtype if pt.is_floating_point() else torch.float64))


# --------------------------------------------------------------------------------------------
# Cauchy-Schwarz information bottleneck
# --------------------------------------------------------------------------------------------


class CSIBOutput(NamedTuple):
    """``loss = prediction + beta * compression``; ``prediction`` is the CS divergence term,
    ``compression`` is ``I_CS(x; t)``. All three carry the gradient."""

    loss: torch.Tensor
    prediction: torch.Tensor
    compression: torch.Tensor


def _as_2d(t: torch.Tensor, name: str) -> torch.Tensor:
    t = _check_float(t, name)
    if t.ndim == 1:
        return t[:, None]
    if t.ndim != 2:
        raise ValueError(f"{name} must have shape (n,) or (n, d); got {tuple(t.shape)}")
    return t


def _conditional_cs(x, y1, y2, h):
    """Official conditional CS divergence (Eq. 18 of the paper), in nats and log space."""
    def lg(a, b):
        return -((a[:, None, :] - b[None, :, :]).square().sum(-1)) / (2.0 * h * h)

    lk = lg(x, x)
    lnorm = torch.logsumexp(2.0 * lk, dim=-1)

    def term(lyy):
        return torch.logsumexp(torch.logsumexp(lk + lyy, dim=-1) - lnorm, dim=0)

    return term(lg(y1, y1)) + term(lg(y2, y2)) - 2.0 * term(lg(y2, y1))


def cs_information_bottleneck_loss(
    x: torch.Tensor,
    t: torch.Tensor,
    y: torch.Tensor,
    y_pred: torch.Tensor,
    beta: float = 0.01,
    *,
    prediction: str = "joint",
    bandwidth: float | str = "median",
    bandwidth_t: float | str | None = None,
) -> CSIBOutput:
    r"""CS-IB objective :math:`D_{CS}(p(y|x) \,\|\, q(\hat y|x)) + \beta\, I_{CS}(x; t)`.

    ``x`` inputs ``(n, d)``, ``t`` the bottleneck representation ``(n, k)``, ``y`` targets and
    ``y_pred`` predictions ``(n,)``/``(n, m)``. Gaussian kernels, nats.

    Prediction term (``prediction=``):

    * ``"joint"`` (default): :func:`divergences.kernels.cauchy_schwarz` between the joint
      samples :math:`(x_i, y_i)` and :math:`(x_i, \hat y_i)` (one bandwidth on the
      concatenation): :math:`\log \overline{K_{pp}} + \log \overline{K_{qq}}
      - 2\log \overline{K_{pq}}`, which is :math:`\ge 0`, symmetric and 0 when
      :math:`\hat y = y`; since both joints share :math:`p(x)` it measures the conditional
      discrepancy;
    * ``"conditional"``: the official code's conditional estimator (Eq. 18): with
      :math:`K = k(x_i, x_j)`, :math:`\sum_j \frac{\sum_i K_{ji} L_{ji}}{\sum_i K_{ji}^2}` for
      :math:`L` the Gram matrices of :math:`y`, :math:`\hat y` and the cross one, combined as
      :math:`\log S_{yy} + \log S_{\hat y\hat y} - 2 \log S_{\hat y y}` (in nats here; the
      official code uses bits). 0 when :math:`\hat y = y`; not exactly symmetric.

    Compression term: :func:`divergences.kernels.cs_mutual_information` ``(x, t)`` with
    ``bandwidth`` for ``x`` and ``bandwidth_t`` for ``t`` (``None``: the same rule). The
    official code uses 10 times the median distance for CS-QMI; pass numbers to follow it.
    ``bandwidth`` for the prediction term must be a number for ``"conditional"`` (``"median"``
    takes the median heuristic of the pooled ``x``). ``beta`` weighs compression.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(64, 3, generator=g); t = torch.tanh(x @ torch.randn(3, 2, generator=g))
    >>> y = x[:, 0] + 0.1 * torch.randn(64, generator=g)
    >>> perfect = cs_information_bottleneck_loss(x, t, y, y.clone(), beta=0.1)
    >>> float(perfect.prediction), bool(perfect.compression > 0)
    (0.0, True)
    """
    xs, ts = _as_2d(x, "x"), _as_2d(t, "t")
    ys, ps = _as_2d(y, "y"), _as_2d(y_pred, "y_pred")
    n = xs.shape[0]
    for a, name in ((ts, "t"), (ys, "y"), (ps, "y_pred")):
        if a.shape[0] != n:
            raise ValueError(f"{name} must have {n} rows (one per row of x); got {a.shape[0]}")
    if ys.shape != ps.shape:
        raise ValueError(
            f"y_pred must have the shape of y {tuple(ys.shape)}; got {tuple(ps.shape)}"
        )
    b = check_range(beta, "beta", 0.0)
    check_choice(prediction, "prediction", ("joint", "conditional"))
    dtype = torch.promote_types(torch.promote_types(xs.dtype, ys.dtype),
                                torch.promote_types(ps.dtype, ts.dtype))
    dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    xs, ts, ys, ps = (a.to(dtype) for a in (xs, ts, ys, ps))
    if prediction == "joint":
        pred = kernels.cauchy_schwarz(torch.cat([xs, ys], 1), torch.cat([xs, ps], 1),
                                      bandwidth=bandwidth)
    else:
        h = kernels.median_bandwidth(xs) if bandwidth == "median" else check_range(
            bandwidth, "bandwidth", 0.0, low_open=True)
        pred = _conditional_cs(xs, ys, ps, h)
    comp = kernels.cs_mutual_information(xs, ts, bandwidth=bandwidth, bandwidth_y=bandwidth_t)
    return CSIBOutput(pred + b * comp, pred, comp)
