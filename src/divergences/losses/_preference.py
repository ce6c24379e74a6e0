r"""Preference objectives built on an f-divergence: f-DPO and f-DPG.

Both take the derivative :math:`f'` of a generator from the registry
(:mod:`divergences.fdiv`, ``derivative_log`` evaluates :math:`f'(e^s)` from the log-ratio
:math:`s`), so the formulas live in one place.

* :func:`f_dpo_loss`: Wang et al. (2024), *Beyond reverse KL: generalizing direct preference
  optimization with diverse divergence constraints* (ICLR), as in TRL's ``DPOTrainer``
  (``f_divergence_type``).
* :func:`f_dpg_loss`: Go et al. (2023), *Aligning language models with preferences through
  f-divergence minimization* (ICML); official code ``naver/disco``
  (``disco/tuners/losses/f_divergence.py``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .. import fdiv
from .._arrays import REDUCTIONS, check_choice, check_range, reduce

__all__ = ["FDPGOutput", "f_dpg_loss", "f_dpo_loss"]

F_DPO_DIVERGENCES = ("reverse_kl", "forward_kl", "js", "alpha")

# The exponent (alpha - 1) * log u of u^(alpha - 1) is capped here, as TRL caps it (80 for
# float32/bfloat16); we compute in float64, so the same cap holds for every input dtype.
_EXP_CAP = 80.0
# |beta * (f'(u_w) - f'(u_l))| is clipped here so that the float32 loss stays finite.
_LOGIT_CAP = 1e30
# Below this distance from 1, alpha is treated as 1 (reverse KL), as TRL does.
_ALPHA_ONE_TOL = 1e-6


def _check_logps(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor; got dtype {x.dtype}")
    if bool(torch.isnan(x).any()):
        raise ValueError(f"{name} contains NaN")
    return x


def _fdpo_score(divergence: str, alpha: float):
    """``s -> f'(e^s)`` (up to an additive constant) of the f-DPO generator ``divergence``.

    The policy-side divergence is ``D_f(pi || pi_ref) = E_pi_ref[f(pi / pi_ref)]``, which is the
    registry's ``D_f(P || Q)`` with ``P = pi``, ``Q = pi_ref``.
    """
    if divergence == "reverse_kl" or (
        divergence == "alpha" and abs(alpha - 1.0) < _ALPHA_ONE_TOL
    ):
        # KL(pi || pi_ref): registry "kl", f(t) = t log t, f'(t) = log t + 1.
        fd = fdiv.get("kl")
        return fd.derivative_log
    if divergence == "forward_kl":
        # KL(pi_ref || pi): registry "reverse_kl", f(t) = -log t, f'(t) = -1/t.
        fd = fdiv.get("reverse_kl")
        return lambda s: fd.derivative_log(s.clamp_min(-_EXP_CAP))
    if divergence == "js":
        # The paper's (and TRL's) JS generator u log u - (u+1) log((u+1)/2) is twice the
        # registry's js(beta=1/2): f'(u) = log(2u / (1 + u)).
        fd = fdiv.get("js", beta=0.5)
        return lambda s: 2.0 * fd.derivative_log(s)
    # Amari alpha: f'(u) = (u^(alpha-1) - 1) / (alpha - 1); exponent capped as in TRL.
    fd = fdiv.get("alpha", alpha=alpha)
    a1 = alpha - 1.0
    if a1 < 0:
        return lambda s: fd.derivative_log(s.clamp_min(_EXP_CAP / a1))
    return lambda s: fd.derivative_log(s.clamp_max(_EXP_CAP / a1))


def f_dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    divergence: str = "reverse_kl",
    beta: float = 0.1,
    alpha: float = 0.5,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""f-DPO: direct preference optimisation under an f-divergence constraint.

    With the sequence log-ratios :math:`s_w = \log \pi(y_w|x) - \log \pi_{ref}(y_w|x)` (chosen)
    and :math:`s_l` (rejected), :math:`u = e^s`, and
    :math:`z = \beta\,(f'(u_w) - f'(u_l))`,

    .. math:: \ell = -(1 - \varepsilon) \log\sigma(z) - \varepsilon \log\sigma(-z)

    (:math:`\varepsilon` = ``label_smoothing``, the cDPO/TRL convention). The constraint is
    :math:`D_f(\pi \| \pi_{ref}) = \mathbb{E}_{\pi_{ref}}[f(\pi/\pi_{ref})]` and ``divergence``
    picks :math:`f'` from the registry (additive constants cancel in the difference):

    * ``"reverse_kl"``: :math:`\mathrm{KL}(\pi\|\pi_{ref})`, :math:`f'(u) = \log u + 1`:
      standard DPO;
    * ``"forward_kl"``: :math:`\mathrm{KL}(\pi_{ref}\|\pi)`, :math:`f'(u) = -1/u`;
    * ``"js"``: the paper's generator :math:`u\log u - (u+1)\log\frac{u+1}{2}` (twice the JSD),
      :math:`f'(u) = \log\frac{2u}{1+u}`;
    * ``"alpha"``: Amari's :math:`\alpha`, :math:`f'(u) = (u^{\alpha-1} - 1)/(\alpha - 1)`;
      :math:`\alpha \to 1` is DPO, :math:`\alpha = 0` is ``forward_kl``. The paper's (and older
      TRL versions') coefficient :math:`a` in :math:`(1 - u^{-a})/a` is :math:`1 - \alpha`; TRL 1.x's
      ``f_alpha_divergence_coef`` is this :math:`\alpha`.

    These are TRL ``DPOTrainer`` ``f_divergence_type`` = ``reverse_kl``, ``forward_kl``,
    ``js_divergence``, ``alpha_divergence`` with ``loss_type="sigmoid"``. At
    :math:`\pi = \pi_{ref}` the loss is :math:`\log 2` for every divergence.

    Numerics: computed in float64 (the inputs are one number per sequence; float32 on MPS),
    returned in float64 for float64 input and float32 otherwise. The exponent :math:`(\alpha-1)s` is capped at 80
    (TRL's cap) and :math:`|z|` at 1e30, so any finite log-ratio gives a finite loss and
    gradient in every dtype.

    Inputs are tensors of equal shape (one entry per preference pair); ``reduction`` is
    ``"none" | "sum" | "mean"`` over them.

    >>> import torch, math
    >>> lp = torch.tensor([-5.0, -7.0])
    >>> loss = f_dpo_loss(lp, lp - 1.0, lp, lp - 1.0, divergence="js")
    >>> math.isclose(float(loss), math.log(2), rel_tol=1e-6)
    True
    >>> w, l = torch.tensor([-4.0]), torch.tensor([-6.0])
    >>> ref_w, ref_l = torch.tensor([-5.0]), torch.tensor([-5.0])
    >>> dpo = -torch.nn.functional.logsigmoid(0.1 * ((w - ref_w) - (l - ref_l)))
    >>> bool(torch.allclose(f_dpo_loss(w, l, ref_w, ref_l), dpo))
    True
    """
    names = ("policy_chosen_logps", "policy_rejected_logps", "reference_chosen_logps",
             "reference_rejected_logps")
    ts = [_check_logps(t, n) for t, n in zip(
        (policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
         reference_rejected_logps), names)]
    shape = ts[0].shape
    for t, n in zip(ts[1:], names[1:]):
        if t.shape != shape:
            raise ValueError(
                f"{n} must have the shape of {names[0]} {tuple(shape)}; got {tuple(t.shape)}"
            )
        if t.device != ts[0].device:
            raise TypeError(f"{n} is on {t.device} but {names[0]} is on {ts[0].device}")
    check_choice(divergence, "divergence", F_DPO_DIVERGENCES)
    b = check_range(beta, "beta", 0.0, low_open=True)
    if math.isinf(b):
        raise ValueError("beta must be finite; got inf")
    a = check_range(alpha, "alpha")
    if math.isinf(a):
        raise ValueError("alpha must be finite")
    eps = check_range(label_smoothing, "label_smoothing", 0.0, 0.5)
    check_choice(reduction, "reduction", REDUCTIONS)

    out_dtype = torch.float64 if ts[0].dtype == torch.float64 else torch.float32
    # float64 where the device has it (MPS does not): one number per sequence, so it is free.
    work = torch.float32 if ts[0].device.type == "mps" else torch.float64
    pw, pl, rw, rl = (t.to(work) for t in ts)
    score = _fdpo_score(divergence, a)
    s_w = pw - rw
    s_l = pl - rl
    diff = score(s_w) - score(s_l)
    # two saturated scores (possible in float32 only) differ by inf - inf: call that 0
    diff = torch.nan_to_num(diff, nan=0.0, posinf=_LOGIT_CAP, neginf=-_LOGIT_CAP)
    z = (b * diff).clamp(-_LOGIT_CAP, _LOGIT_CAP)
    losses = -torch.nn.functional.logsigmoid(z)
    if eps > 0:
        losses = (1.0 - eps) * losses - eps * torch.nn.functional.logsigmoid(-z)
    return reduce(losses, reduction).to(out_dtype)


# --------------------------------------------------------------------------------------------
# f-DPG
# --------------------------------------------------------------------------------------------


class FDPGOutput(NamedTuple):
    """What :func:`f_dpg_loss` returns.

    ``loss`` carries the gradient; ``pseudo_rewards`` (``-f'(pi Z / P)``, detached, one per
    sample) are what a moving-average baseline is updated with; ``log_partition`` is the
    batch importance-sampling estimate :math:`\\log \\frac{1}{n}\\sum_i P(x_i)/q(x_i)` of
    :math:`\\log Z` (detached), to feed a running estimate across batches.
    """

    loss: torch.Tensor
    pseudo_rewards: torch.Tensor
    log_partition: torch.Tensor


def f_dpg_loss(
    policy_logps: torch.Tensor,
    target_log_scores: torch.Tensor,
    proposal_logps: torch.Tensor | None = None,
    *,
    divergence: str | fdiv.FDivergence = "js",
    log_partition: float | torch.Tensor | None = None,
    baseline: float | torch.Tensor | None = None,
    reduction: str = "mean",
) -> FDPGOutput:
    r"""f-DPG: policy-gradient surrogate for :math:`D_f(\pi_\theta \| p)`, :math:`p = P/Z`.

    For samples :math:`x_i \sim q` (the proposal; ``proposal_logps=None`` means on-policy,
    :math:`q = \pi`), with :math:`t_i = \pi(x_i) Z / P(x_i)` and importance weight
    :math:`w_i = \pi(x_i)/q(x_i)` (both with :math:`\pi` detached), pseudo-reward
    :math:`R_i = -f'(t_i)` and baseline :math:`b`,

    .. math:: \ell_i = -\,w_i\,(R_i - b)\,\log \pi_\theta(x_i),

    whose expected gradient is
    :math:`\mathbb{E}_q[\nabla\ell] = \mathbb{E}_\pi[f'(\pi/p)\,\nabla\log\pi]
    = \nabla_\theta D_f(\pi_\theta\|p)` (the baseline term has zero mean because
    :math:`\mathbb{E}_\pi[\nabla\log\pi] = 0`). The value of :math:`\ell` is a surrogate, not the
    divergence. This is ``FDivergenceLoss`` of ``naver/disco``.

    ``divergence`` is a registry name or :class:`~divergences.fdiv.FDivergence`, read as
    :math:`D_f(\pi\|p) = \sum_x p(x) f(\pi(x)/p(x))`: ``"kl"`` is :math:`\mathrm{KL}(\pi\|p)`
    (disco's RKL-DPG), ``"reverse_kl"`` is :math:`\mathrm{KL}(p\|\pi)` (DPG),
    ``"js"`` (default, :math:`\beta = 1/2`), ``"tv"``... :math:`f'` comes from the registry's
    ``derivative_log``.

    Numerics: :math:`\log t` is clamped to [-80, 80] and :math:`\log w` to at most 80 (so
    no finite input overflows float32); inside those ranges nothing is changed.

    ``log_partition``: the current (running) estimate of :math:`\log Z`; ``None`` uses this
    batch's importance-sampling estimate (returned as ``log_partition`` either way).
    ``baseline``: the current moving average of the pseudo-rewards (``None``: no baseline);
    update it from the returned ``pseudo_rewards`` (disco uses a window of 1024 samples).

    >>> import torch
    >>> theta = torch.zeros(3, requires_grad=True)
    >>> logp = torch.log_softmax(theta, 0)
    >>> log_P = torch.tensor([1.0, 2.0, 1.0]).log()    # unnormalised target, Z = 4
    >>> log_Z = torch.tensor(4.0).log()
    >>> out = f_dpg_loss(logp, log_P, divergence="kl", log_partition=log_Z, reduction="none")
    >>> (logp.exp().detach() * out.loss).sum().backward()  # exact expectation over x ~ pi
    >>> lp = torch.log_softmax(theta, 0)
    >>> kl = (lp.exp() * (lp - log_P + log_Z)).sum()    # KL(pi || P / Z)
    >>> exact, = torch.autograd.grad(kl, theta)
    >>> bool(torch.allclose(theta.grad, exact, atol=1e-6))
    True
    """
    pol = _check_logps(policy_logps, "policy_logps")
    tgt = _check_logps(target_log_scores, "target_log_scores")
    prop = None if proposal_logps is None else _check_logps(proposal_logps, "proposal_logps")
    if pol.ndim != 1:
        raise ValueError(f"policy_logps must have shape (n,); got {tuple(pol.shape)}")
    for t, n in ((tgt, "target_log_scores"), (prop, "proposal_logps")):
        if t is not None and t.shape != pol.shape:
            raise ValueError(f"{n} must have shape {tuple(pol.shape)}; got {tuple(t.shape)}")
    if pol.numel() == 0:
        raise ValueError("policy_logps is empty")
    if not isinstance(divergence, (str, fdiv.FDivergence)):
        raise TypeError(
            f"divergence must be a name or an FDivergence; got {type(divergence).__name__}"
        )
    fd = fdiv.get(divergence)
    check_choice(reduction, "reduction", REDUCTIONS)

    dtype = torch.float64 if pol.dtype == torch.float64 else torch.float32
    logp = pol.to(dtype)
    logP = tgt.to(dtype)
    log_q = logp.detach() if prop is None else prop.to(dtype).detach()
    n = logp.shape[0]
    batch_log_z = (torch.logsumexp(logP.detach() - log_q, 0) - math.log(n))
    if log_partition is None:
        log_z = batch_log_z
    else:
        log_z = torch.as_tensor(log_partition, dtype=dtype, device=logp.device).detach()
        if not bool(torch.isfinite(log_z).all()):
            raise ValueError("log_partition must be finite")
    log_t = (logp.detach() + log_z - logP.detach()).clamp(-_EXP_CAP, _EXP_CAP)
    rewards = -fd.derivative_log(log_t)
    if baseline is not None:
        b = torch.as_tensor(baseline, dtype=dtype, device=logp.device).detach()
        advantage = rewards - b
    else:
        advantage = rewards
    weights = torch.exp((logp.detach() - log_q).clamp_max(_EXP_CAP))
    losses = -(weights * advantage) * logp
    return FDPGOutput(reduce(losses, reduction), rewards.detach(), batch_log_z.detach())
