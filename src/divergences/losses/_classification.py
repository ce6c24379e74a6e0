r"""Classification and density-model objectives: PLD, comp-sum, compositional NLL and NCE.

* :func:`plackett_luce_distillation_loss`: Plackett-Luce distillation (PLD), a
  teacher-weighted Plackett-Luce likelihood of the teacher's ranking with the true label first.
* :func:`comp_sum_loss`, :func:`smooth_adversarial_comp_sum_loss`: the comp-sum family of
  Mao, Mohri & Zhong (2023), *Cross-entropy loss functions: theoretical analysis and
  applications* (ICML). ``l_tau`` is minus the derivative of the Amari alpha generator
  (registry ``alpha``, :math:`\alpha = \tau`) at :math:`p_y`.
* :func:`compositional_nll`, :func:`nce_loss`: maximum likelihood of an unnormalised model
  written as a compositional objective (the log-partition's inner expectation tracked by a
  moving average), and noise-contrastive estimation (Gutmann & Hyvärinen, 2010) beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from .. import fdiv
from .._arrays import REDUCTIONS, check_choice, check_range, compute_dtype, reduce
from ._checks import check_float as _check_float

__all__ = [
    "CompositionalOutput",
    "comp_sum_loss",
    "compositional_nll",
    "nce_loss",
    "plackett_luce_distillation_loss",
    "smooth_adversarial_comp_sum_loss",
]

_EXP_CAP = 80.0




def _check_logits_labels(
    logits: object, labels: object, name: str = "logits"
) -> tuple[torch.Tensor, torch.Tensor]:
    x = _check_float(logits, name)
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (..., C) with C >= 1; got {tuple(x.shape)}")
    if bool((x == math.inf).any()):
        raise ValueError(f"{name} contains +inf")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch tensor; got {type(labels).__name__}")
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"labels must be an integer tensor; got dtype {labels.dtype}")
    if labels.shape != x.shape[:-1]:
        raise ValueError(
            f"labels must have shape {tuple(x.shape[:-1])} (the batch of {name}); "
            f"got {tuple(labels.shape)}"
        )
    return x, labels.long()


def _valid_labels(labels: torch.Tensor, c: int, ignore_index: int) -> torch.Tensor:
    valid = labels != ignore_index
    bad = valid & ((labels < 0) | (labels >= c))
    if bool(bad.any()):
        raise ValueError(f"labels must lie in [0, {c}) or equal ignore_index={ignore_index}")
    return valid


def _masked_reduce(values: torch.Tensor, valid: torch.Tensor, reduction: str) -> torch.Tensor:
    values = torch.where(valid, values, torch.zeros_like(values))
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    return values.sum() / valid.sum().clamp_min(1)


# --------------------------------------------------------------------------------------------
# Plackett-Luce distillation
# --------------------------------------------------------------------------------------------


def plackett_luce_distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_temperature: float = 4.0,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Plackett-Luce distillation (PLD): a teacher-weighted list-wise ranking loss.

    The target ranking :math:`\pi^*` puts the true label first, then the other classes by
    descending teacher logit (ties by class index). With weights
    :math:`q = \mathrm{softmax}(t / \tau_T)` and unscaled student logits :math:`s`,

    .. math:: L = \sum_{k=1}^{C} q_{\pi^*_k}
              \Big(\log\sum_{l \ge k} e^{s_{\pi^*_l}} - s_{\pi^*_k}\Big),

    the Plackett-Luce negative log-likelihood of :math:`\pi^*` with stage :math:`k` weighted by
    the teacher's probability of the class chosen there. It replaces cross-entropy: with
    :math:`q = (1, 0, \dots)` on the label it *is* cross-entropy. Convex in :math:`s` and
    invariant to adding a constant to :math:`s`. The ranking is a discrete choice (no gradient);
    the weights are differentiable in the teacher logits. Default :math:`\tau_T = 4`
    (CIFAR-100 in the paper). Computed in float32 at least.

    Shapes: logits ``(..., C)``, ``labels`` ``(...)``; entries equal to ``ignore_index`` are
    left out; ``reduction="mean"`` averages over the others.

    >>> import torch
    >>> s = torch.tensor([[2.0, 0.5, -1.0]]); t = torch.tensor([[1e4, 0.0, 0.0]])
    >>> ce = torch.nn.functional.cross_entropy(s, torch.tensor([0]))
    >>> bool(torch.isclose(plackett_luce_distillation_loss(s, t, torch.tensor([0]), 1.0), ce))
    True
    """
    s, y = _check_logits_labels(student_logits, labels, "student_logits")
    t = _check_float(teacher_logits, "teacher_logits")
    if t.shape != s.shape:
        raise ValueError(
            f"teacher_logits must have the shape of student_logits {tuple(s.shape)}; "
            f"got {tuple(t.shape)}"
        )
    if bool((t.abs() == math.inf).any()):
        raise ValueError("teacher_logits must be finite")
    tau = check_range(teacher_temperature, "teacher_temperature", 0.0, low_open=True)
    check_choice(reduction, "reduction", REDUCTIONS)
    c = s.shape[-1]
    valid = _valid_labels(y, c, ignore_index)
    dtype = compute_dtype(torch.promote_types(s.dtype, t.dtype))
    s = s.to(dtype)
    t = t.to(dtype)
    safe_y = torch.where(valid, y, torch.zeros_like(y))
    with torch.no_grad():
        key = t.detach().clone()
        key.scatter_(-1, safe_y[..., None], math.inf)
        order = torch.sort(key, dim=-1, descending=True, stable=True).indices
    q = torch.softmax(t / tau, dim=-1).gather(-1, order)
    sp = s.gather(-1, order)
    suffix_lse = torch.logcumsumexp(sp.flip(-1), dim=-1).flip(-1)
    values = (q * (suffix_lse - sp)).sum(-1)
    return _masked_reduce(values, valid, reduction)


# --------------------------------------------------------------------------------------------
# Comp-sum losses
# --------------------------------------------------------------------------------------------


def _comp_sum_terms(log_py: torch.Tensor, tau: float) -> torch.Tensor:
    """``l_tau(p_y) = -f'_tau(p_y)`` with ``f'`` of the Amari alpha generator at ``alpha = tau``."""
    fd = fdiv.get("alpha", alpha=tau)
    if tau < 1.0:
        # p_y^(tau - 1) = exp((tau - 1) log p_y): cap the exponent so the value stays finite.
        log_py = log_py.clamp_min(_EXP_CAP / (tau - 1.0))
    return -fd.derivative_log(log_py)


def comp_sum_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    tau: float = 1.0,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Comp-sum loss :math:`\ell_\tau = (1 - p_y^{\tau-1})/(\tau - 1)`, :math:`p = \mathrm{softmax}`.

    Mao, Mohri & Zhong (2023): :math:`\tau = 0` the sum-exponential loss
    :math:`\sum_{y'\ne y} e^{h_{y'} - h_y}`, :math:`\tau = 1` cross-entropy (the limit, taken
    continuously: the value is :math:`-\log p_y \cdot \mathrm{exprel}((\tau-1)\log p_y)`),
    :math:`1 < \tau < 2` generalised cross-entropy, :math:`\tau = 2` mean absolute error
    :math:`1 - p_y`. For :math:`\tau > 1` it is bounded by :math:`1/(\tau-1)`. It is minus the
    Amari :math:`\alpha`-generator's derivative (registry ``alpha``, :math:`\alpha = \tau`) at
    :math:`p_y`. For :math:`\tau < 1` the exponent :math:`(\tau-1)\log p_y` is capped at 80
    (the loss is finite for every finite logit). ``tau`` is any real number >= 0.

    >>> import torch
    >>> h = torch.tensor([[1.0, 2.0, 0.5]]); y = torch.tensor([1])
    >>> p = torch.softmax(h, -1)[0, 1]
    >>> bool(torch.isclose(comp_sum_loss(h, y, tau=2.0), 1 - p))
    True
    >>> bool(torch.isclose(comp_sum_loss(h, y), torch.nn.functional.cross_entropy(h, y)))
    True
    """
    x, y = _check_logits_labels(logits, labels)
    t = check_range(tau, "tau", 0.0)
    if math.isinf(t):
        raise ValueError("tau must be finite")
    check_choice(reduction, "reduction", REDUCTIONS)
    valid = _valid_labels(y, x.shape[-1], ignore_index)
    lp = torch.log_softmax(x.to(compute_dtype(x.dtype)), dim=-1)
    safe_y = torch.where(valid, y, torch.zeros_like(y))
    log_py = lp.gather(-1, safe_y[..., None])[..., 0]
    return _masked_reduce(_comp_sum_terms(log_py, t), valid, reduction)


def smooth_adversarial_comp_sum_loss(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    labels: torch.Tensor,
    tau: float = 1.0,
    nu: float = 1.0,
    gamma: float = 0.03,
    *,
    steps: int = 10,
    step_size: float | None = None,
    norm: str = "inf",
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Smooth adversarial comp-sum loss with a PGD inner maximisation.

    .. math:: \tilde\ell = \ell_\tau(h(x), y)
              + \nu \sup_{\|x' - x\| \le \gamma} \|h(x') - h(x)\|_2,

    (Mao, Mohri & Zhong 2023, the smooth adversarial comp-sum losses). The supremum is
    approximated by ``steps`` steps of projected gradient ascent on :math:`\|h(x') - h(x)\|_2^2` in the ``norm`` ball (``"inf"``: sign steps and
    clipping; ``"2"``: normalised-gradient steps and radial projection), step size
    ``step_size`` (default ``2.5 gamma / steps``), from a random start in the ball (uniform per
    coordinate for ``"inf"``, a random direction at radius ``gamma / 2`` for ``"2"``; drawn
    with ``generator``: at ``x'= x`` itself the gradient of the gap is 0). The adversarial point is found without
    building a graph through the ascent and then held fixed; the returned loss is
    differentiable in the model's parameters. ``x`` is ``(N, ...)``, ``model(x)`` ``(N, C)``.

    >>> import torch
    >>> torch.manual_seed(0) is not None
    True
    >>> net = torch.nn.Linear(2, 3)
    >>> x = torch.randn(4, 2); y = torch.tensor([0, 1, 2, 0])
    >>> plain = comp_sum_loss(net(x), y, tau=1.5)
    >>> gen = torch.Generator().manual_seed(0)
    >>> robust = smooth_adversarial_comp_sum_loss(net, x, y, tau=1.5, nu=1.0, gamma=0.1,
    ...                                           generator=gen)
    >>> bool(robust > plain)
    True
    >>> bool(torch.isclose(smooth_adversarial_comp_sum_loss(net, x, y, 1.5, nu=0.0), plain))
    True
    """
    if not callable(model):
        raise TypeError(f"model must be callable; got {type(model).__name__}")
    xt = _check_float(x, "x")
    n_ = check_range(nu, "nu", 0.0)
    g = check_range(gamma, "gamma", 0.0)
    check_choice(norm, "norm", ("inf", "2"))
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int; got {steps!r}")
    alpha = 2.5 * g / max(steps, 1) if step_size is None else check_range(
        step_size, "step_size", 0.0, low_open=True)
    check_choice(reduction, "reduction", REDUCTIONS)
    h = model(xt)
    base = comp_sum_loss(h, labels, tau, reduction="none")
    if n_ == 0.0 or g == 0.0:
        return reduce(base, reduction)
    h_ref = h.detach()
    dims = tuple(range(1, xt.ndim))
    rng_device = xt.device if generator is None else generator.device
    noise = torch.rand(xt.shape, generator=generator, dtype=xt.dtype,
                       device=rng_device).to(xt.device)
    if norm == "inf":
        x_adv = xt.detach() + g * (2.0 * noise - 1.0)
    else:
        d = 2.0 * noise - 1.0
        dn = d.flatten(1).norm(dim=1).clamp_min(1e-12)
        x_adv = xt.detach() + 0.5 * g * d / dn.view(-1, *([1] * len(dims)))
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            gap = (model(x_adv) - h_ref).square().sum()
            (grad,) = torch.autograd.grad(gap, x_adv)
        with torch.no_grad():
            if norm == "inf":
                x_adv = x_adv + alpha * grad.sign()
                x_adv = xt.detach() + (x_adv - xt.detach()).clamp(-g, g)
            else:
                gn = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
                x_adv = x_adv + alpha * grad / gn.view(-1, *([1] * len(dims)))
                d = x_adv - xt.detach()
                dn = d.flatten(1).norm(dim=1).clamp_min(1e-12)
                scale = (g / dn).clamp(max=1.0)
                x_adv = xt.detach() + d * scale.view(-1, *([1] * len(dims)))
    diff = model(x_adv.detach()) - h
    sq = diff.square().sum(-1)
    # ||.||_2 with a finite gradient at 0
    pos = sq > 0
    dist = torch.where(pos, torch.where(pos, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))
    return reduce(base + n_ * dist.to(base.dtype), reduction)


# --------------------------------------------------------------------------------------------
# Unnormalised models: compositional NLL and NCE
# --------------------------------------------------------------------------------------------


class CompositionalOutput(NamedTuple):
    """What :func:`compositional_nll` returns: ``loss`` (carries the gradient; its value is the
    NLL estimate ``-mean f(x) + log u``) and ``log_inner``, the updated moving average
    ``log u`` (detached), to pass back at the next step."""

    loss: torch.Tensor
    log_inner: torch.Tensor


def compositional_nll(
    data_log_scores: torch.Tensor,
    noise_log_scores: torch.Tensor,
    noise_log_probs: torch.Tensor,
    log_inner: float | torch.Tensor | None = None,
    momentum: float = 0.1,
) -> CompositionalOutput:
    r"""Negative log-likelihood of an unnormalised model as a compositional objective.

    For a model :math:`p_\theta(x) = e^{f_\theta(x)}/Z_\theta`, data :math:`x_i` and noise
    :math:`y_j \sim q`,

    .. math:: \mathrm{NLL}(\theta) = -\frac1n\sum_i f_\theta(x_i)
              + \log \mathbb{E}_{q}\big[e^{f_\theta(y)}/q(y)\big],

    an outer function (log) of an inner expectation. The inner expectation is tracked by a
    moving average :math:`u \leftarrow (1-\gamma)\,u + \gamma\,\hat m`, with
    :math:`\hat m = \frac1m\sum_j e^{f(y_j) - \log q(y_j)}` (``momentum`` :math:`\gamma`,
    kept in log space), and the gradient is the compositional one:
    :math:`-\overline{\nabla f(x)} + \nabla\hat m / u`, which has far less bias than
    :math:`\nabla \log \hat m` for small noise batches. ``log_inner=None`` (the first step)
    starts :math:`u` at :math:`\hat m`.

    Arguments: ``data_log_scores`` :math:`f(x_i)` ``(n,)``, ``noise_log_scores``
    :math:`f(y_j)` ``(m,)``, ``noise_log_probs`` :math:`\log q(y_j)` ``(m,)``.

    >>> import torch, math
    >>> mu = torch.zeros((), requires_grad=True)
    >>> x = torch.tensor([0.5, 1.5]); y = torch.linspace(-6, 6, 601)
    >>> log_q = torch.full_like(y, -math.log(12.0))            # uniform noise on [-6, 6]
    >>> f = lambda z: -0.5 * (z - mu) ** 2
    >>> out = compositional_nll(f(x), f(y), log_q)
    >>> out.loss.backward()
    >>> round(float(mu.grad), 3)            # d NLL / d mu = -(mean(x) - mu) at mu = 0
    -1.0
    """
    fx = _check_float(data_log_scores, "data_log_scores")
    fy = _check_float(noise_log_scores, "noise_log_scores")
    lq = _check_float(noise_log_probs, "noise_log_probs")
    for t, name in ((fx, "data_log_scores"), (fy, "noise_log_scores")):
        if t.ndim != 1 or t.numel() == 0:
            raise ValueError(f"{name} must have shape (n,) with n >= 1; got {tuple(t.shape)}")
    if lq.shape != fy.shape:
        raise ValueError(
            f"noise_log_probs must have the shape of noise_log_scores {tuple(fy.shape)}; "
            f"got {tuple(lq.shape)}"
        )
    g = check_range(momentum, "momentum", 0.0, 1.0, low_open=True)
    dtype = compute_dtype(torch.promote_types(fx.dtype, fy.dtype))
    fx, fy, lq = fx.to(dtype), fy.to(dtype), lq.to(dtype)
    log_m = torch.logsumexp(fy - lq, 0) - math.log(fy.shape[0])
    if log_inner is None:
        log_u = log_m.detach()
    else:
        prev = torch.as_tensor(log_inner, dtype=dtype, device=fx.device).detach()
        if prev.numel() != 1 or not bool(torch.isfinite(prev).all()):
            raise ValueError("log_inner must be a finite scalar")
        prev = prev.reshape(())
        if g == 1.0:
            log_u = log_m.detach()
        else:
            log_u = torch.logaddexp(prev + math.log1p(-g), log_m.detach() + math.log(g))
    # value: -mean f(x) + log u; gradient: -mean grad f(x) + grad m / u
    loss = -fx.mean() + torch.exp(log_m - log_u) - 1.0 + log_u
    return CompositionalOutput(loss, log_u)


def nce_loss(
    data_log_scores: torch.Tensor,
    noise_log_scores: torch.Tensor,
    data_noise_log_probs: torch.Tensor,
    noise_log_probs: torch.Tensor,
    *,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Noise-contrastive estimation (Gutmann & Hyvärinen 2010) for an unnormalised model.

    The model's log-density :math:`f_\theta` must carry its own normalising constant as a
    parameter (e.g. ``f(x) = g(x) + c``). With :math:`n` data points, :math:`m` noise points
    from :math:`q`, :math:`\nu = m/n` and :math:`G(z) = f(z) - \log q(z) - \log\nu`,

    .. math:: L = -\frac1n\Big[\sum_i \log\sigma(G(x_i)) + \sum_j \log\sigma(-G(y_j))\Big],

    the logistic loss of telling data from noise; at its optimum :math:`e^{f} = p_{data}`
    (self-normalised). ``reduction``: ``"mean"`` (the formula), ``"sum"`` (times :math:`n`),
    ``"none"`` (the ``n + m`` per-point terms, data first).

    Arguments: ``data_log_scores`` :math:`f(x_i)`, ``noise_log_scores`` :math:`f(y_j)`,
    ``data_noise_log_probs`` :math:`\log q(x_i)`, ``noise_log_probs`` :math:`\log q(y_j)`.

    >>> import torch, math
    >>> fx = torch.tensor([0.0, -1.0]); lqx = torch.tensor([-1.0, -1.5])
    >>> fy = torch.tensor([-2.0]); lqy = torch.tensor([-0.5])
    >>> G = lambda f, lq: f - lq - math.log(0.5)
    >>> ref = -(torch.nn.functional.logsigmoid(G(fx, lqx)).sum()
    ...         + torch.nn.functional.logsigmoid(-G(fy, lqy)).sum()) / 2
    >>> bool(torch.isclose(nce_loss(fx, fy, lqx, lqy), ref))
    True
    """
    fx = _check_float(data_log_scores, "data_log_scores")
    fy = _check_float(noise_log_scores, "noise_log_scores")
    lqx = _check_float(data_noise_log_probs, "data_noise_log_probs")
    lqy = _check_float(noise_log_probs, "noise_log_probs")
    for t, name in ((fx, "data_log_scores"), (fy, "noise_log_scores")):
        if t.ndim != 1 or t.numel() == 0:
            raise ValueError(f"{name} must have shape (n,) with n >= 1; got {tuple(t.shape)}")
    if lqx.shape != fx.shape:
        raise ValueError(f"data_noise_log_probs must have shape {tuple(fx.shape)}; "
                         f"got {tuple(lqx.shape)}")
    if lqy.shape != fy.shape:
        raise ValueError(f"noise_log_probs must have shape {tuple(fy.shape)}; "
                         f"got {tuple(lqy.shape)}")
    check_choice(reduction, "reduction", REDUCTIONS)
    n, m = fx.shape[0], fy.shape[0]
    log_nu = math.log(m / n)
    dtype = compute_dtype(torch.promote_types(fx.dtype, fy.dtype))
    gx = fx.to(dtype) - lqx.to(dtype) - log_nu
    gy = fy.to(dtype) - lqy.to(dtype) - log_nu
    terms = torch.cat([-torch.nn.functional.logsigmoid(gx),
                       -torch.nn.functional.logsigmoid(-gy)])
    if reduction == "none":
        return terms
    total = terms.sum()
    return total if reduction == "sum" else total / n
