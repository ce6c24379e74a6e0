"""``nn.Module`` faces of the papers' objectives: hyper-parameters at construction, tensors at call.

Each module stores its options, checks them when it is built, and calls the pure function of
:mod:`divergences.losses` in ``forward``; none has learnable parameters (except
:class:`AttentionEntropyPenalty` with ``learnable_theta=True``, the paper's learnable
per-head targets). :class:`SelectiveEntropyRegularizer` also keeps SIREN's anchor (a buffer,
saved in the ``state_dict``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .._arrays import REDUCTIONS, ArrayLike, check_choice, check_range
from ._bdkd import BDKDOutput, balanced_distillation_loss, check_bdkd_options
from ._classification import comp_sum_loss, plackett_luce_distillation_loss
from ._preference import F_DPO_DIVERGENCES, f_dpo_loss
from ._regularizers import (
    FAIRNESS_KINDS,
    CSIBOutput,
    attention_entropy_penalty,
    cs_information_bottleneck_loss,
    fairness_penalty,
)
from ._rl import DPH_DIVERGENCES, SIRENOutput, dph_penalty, selective_entropy_regularizer
from ._sinkd import check_sinkd_options, sinkhorn_distillation_loss

__all__ = [
    "AttentionEntropyPenalty",
    "BalancedDistillationLoss",
    "CSInformationBottleneckLoss",
    "CompSumLoss",
    "DPHPenalty",
    "FDPOLoss",
    "FairnessPenalty",
    "PlackettLuceDistillationLoss",
    "SelectiveEntropyRegularizer",
    "SinkhornDistillationLoss",
]


def _finite(value: float, name: str, low: float = -math.inf, **kw: bool) -> float:
    v = check_range(value, name, low, **kw)
    if math.isinf(v):
        raise ValueError(f"{name} must be finite; got {v}")
    return v


class FDPOLoss(nn.Module):
    """Module face of :func:`~divergences.losses.f_dpo_loss`.

    Options at construction (``divergence``, ``beta``, ``alpha``, ``label_smoothing``,
    ``reduction``); ``forward(policy_chosen_logps, policy_rejected_logps,
    reference_chosen_logps, reference_rejected_logps)``.

    >>> import torch
    >>> w, l = torch.tensor([-4.0, -3.0]), torch.tensor([-6.0, -2.0])
    >>> rw, rl = torch.tensor([-5.0, -3.5]), torch.tensor([-5.0, -2.5])
    >>> crit = FDPOLoss("js", beta=0.2)
    >>> torch.equal(crit(w, l, rw, rl), f_dpo_loss(w, l, rw, rl, "js", beta=0.2))
    True
    """

    def __init__(self, divergence: str = "reverse_kl", beta: float = 0.1, alpha: float = 0.5,
                 label_smoothing: float = 0.0, reduction: str = "mean") -> None:
        super().__init__()
        check_choice(divergence, "divergence", F_DPO_DIVERGENCES)
        _finite(beta, "beta", 0.0, low_open=True)
        _finite(alpha, "alpha")
        check_range(label_smoothing, "label_smoothing", 0.0, 0.5)
        check_choice(reduction, "reduction", REDUCTIONS)
        self.divergence = divergence
        self.beta = beta
        self.alpha = alpha
        self.label_smoothing = label_smoothing
        self.reduction = reduction

    def forward(self, policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                reference_chosen_logps: torch.Tensor,
                reference_rejected_logps: torch.Tensor) -> torch.Tensor:
        return f_dpo_loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
                          reference_rejected_logps, divergence=self.divergence, beta=self.beta,
                          alpha=self.alpha, label_smoothing=self.label_smoothing,
                          reduction=self.reduction)

    def extra_repr(self) -> str:
        return (f"divergence={self.divergence!r}, beta={self.beta}, alpha={self.alpha}, "
                f"label_smoothing={self.label_smoothing}, reduction={self.reduction!r}")


class SinkhornDistillationLoss(nn.Module):
    """Module face of :func:`~divergences.losses.sinkhorn_distillation_loss` (SinKD).

    Options at construction (``temperature``, ``epsilon``, ``n_iter``, ``scale``, ``stable``,
    ``reduction``); ``forward(student_logits, teacher_logits)``.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> s, t = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    >>> crit = SinkhornDistillationLoss(epsilon=0.05, stable=True)
    >>> torch.equal(crit(s, t), sinkhorn_distillation_loss(s, t, epsilon=0.05, stable=True))
    True
    """

    def __init__(self, temperature: float = 2.0, epsilon: float = 0.1, n_iter: int = 20,
                 scale: float = 1e-3, stable: bool = False, reduction: str = "sum") -> None:
        super().__init__()
        check_sinkd_options(temperature, epsilon, n_iter, scale, stable, reduction)
        self.temperature = temperature
        self.epsilon = epsilon
        self.n_iter = n_iter
        self.scale = scale
        self.stable = stable
        self.reduction = reduction

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return sinkhorn_distillation_loss(student_logits, teacher_logits, self.temperature,
                                          self.epsilon, self.n_iter, self.scale,
                                          stable=self.stable, reduction=self.reduction)

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, epsilon={self.epsilon}, n_iter={self.n_iter}, "
                f"scale={self.scale}, stable={self.stable}, reduction={self.reduction!r}")


class BalancedDistillationLoss(nn.Module):
    """Module face of :func:`~divergences.losses.balanced_distillation_loss` (BD-KD).

    Options at construction (``temperature``, ``balance``, ``gap_scale``, ``teacher_weight``,
    ``reduction``); ``forward(student_logits, teacher_logits, mask=None)`` returns the
    :class:`~divergences.losses.BDKDOutput` (``.loss`` trains both networks).

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> s, t = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    >>> crit = BalancedDistillationLoss(temperature=2.0, balance="soft")
    >>> ref = balanced_distillation_loss(s, t, 2.0, "soft")
    >>> torch.equal(crit(s, t).loss, ref.loss)
    True
    """

    def __init__(self, temperature: float = 1.0, balance: str | float = "hard",
                 gap_scale: float = 1.0, teacher_weight: float = 1.0,
                 reduction: str = "mean") -> None:
        super().__init__()
        check_bdkd_options(temperature, balance, gap_scale, teacher_weight, reduction)
        self.temperature = temperature
        self.balance = balance
        self.gap_scale = gap_scale
        self.teacher_weight = teacher_weight
        self.reduction = reduction

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                mask: torch.Tensor | None = None) -> BDKDOutput:
        return balanced_distillation_loss(student_logits, teacher_logits, self.temperature,
                                          self.balance, gap_scale=self.gap_scale,
                                          teacher_weight=self.teacher_weight, mask=mask,
                                          reduction=self.reduction)

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, balance={self.balance!r}, "
                f"gap_scale={self.gap_scale}, teacher_weight={self.teacher_weight}, "
                f"reduction={self.reduction!r}")


class PlackettLuceDistillationLoss(nn.Module):
    """Module face of :func:`~divergences.losses.plackett_luce_distillation_loss` (PLD).

    Options at construction (``teacher_temperature``, ``ignore_index``, ``reduction``);
    ``forward(student_logits, teacher_logits, labels)``.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> s, t = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    >>> y = torch.tensor([0, 5, 2, 1])
    >>> crit = PlackettLuceDistillationLoss(teacher_temperature=2.0)
    >>> torch.equal(crit(s, t, y), plackett_luce_distillation_loss(s, t, y, 2.0))
    True
    """

    def __init__(self, teacher_temperature: float = 4.0, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__()
        check_range(teacher_temperature, "teacher_temperature", 0.0, low_open=True)
        check_choice(reduction, "reduction", REDUCTIONS)
        self.teacher_temperature = teacher_temperature
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        return plackett_luce_distillation_loss(student_logits, teacher_logits, labels,
                                               self.teacher_temperature,
                                               ignore_index=self.ignore_index,
                                               reduction=self.reduction)

    def extra_repr(self) -> str:
        return (f"teacher_temperature={self.teacher_temperature}, "
                f"ignore_index={self.ignore_index}, reduction={self.reduction!r}")


class CompSumLoss(nn.Module):
    """Module face of :func:`~divergences.losses.comp_sum_loss` (a drop-in for
    ``nn.CrossEntropyLoss``: ``tau=1`` is cross-entropy).

    Options at construction (``tau``, ``ignore_index``, ``reduction``);
    ``forward(logits, labels)``.

    >>> import torch
    >>> h, y = torch.tensor([[1.0, 2.0, 0.5]]), torch.tensor([1])
    >>> bool(torch.isclose(CompSumLoss()(h, y), torch.nn.CrossEntropyLoss()(h, y)))
    True
    """

    def __init__(self, tau: float = 1.0, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__()
        _finite(tau, "tau", 0.0)
        check_choice(reduction, "reduction", REDUCTIONS)
        self.tau = tau
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return comp_sum_loss(logits, labels, self.tau, ignore_index=self.ignore_index,
                             reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, ignore_index={self.ignore_index}, reduction={self.reduction!r}"


class DPHPenalty(nn.Module):
    """Module face of :func:`~divergences.losses.dph_penalty` (DPH-RL).

    Options at construction (``divergence``, ``alpha``, ``reduction``);
    ``forward(logp, logp_init, mask=None)``.

    >>> import torch
    >>> p0 = torch.tensor([0.5, 0.3, 0.2]).log(); p = torch.tensor([0.4, 0.4, 0.2]).log()
    >>> torch.equal(DPHPenalty("js")(p, p0), dph_penalty(p, p0, "js"))
    True
    """

    def __init__(self, divergence: str = "forward_kl", alpha: float = 0.2,
                 reduction: str = "mean") -> None:
        super().__init__()
        check_choice(divergence, "divergence", DPH_DIVERGENCES)
        check_range(alpha, "alpha", 0.0, 1.0)
        check_choice(reduction, "reduction", REDUCTIONS)
        self.divergence = divergence
        self.alpha = alpha
        self.reduction = reduction

    def forward(self, logp: torch.Tensor, logp_init: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return dph_penalty(logp, logp_init, self.divergence, self.alpha, mask=mask,
                           reduction=self.reduction)

    def extra_repr(self) -> str:
        return (f"divergence={self.divergence!r}, alpha={self.alpha}, "
                f"reduction={self.reduction!r}")


class SelectiveEntropyRegularizer(nn.Module):
    """Module face of :func:`~divergences.losses.selective_entropy_regularizer` (SIREN),
    keeping the self-anchor.

    Options at construction (``top_p``, ``quantile``, ``coef``); ``forward(logits,
    response_mask)`` returns the :class:`~divergences.losses.SIRENOutput`. The first call
    (no anchor yet) stores the selective entropy it measured as the anchor (a buffer, in the
    ``state_dict``); later calls penalise the distance to it. :meth:`reset_anchor` forgets it.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> logits = torch.randn(2, 11, 30, generator=g)
    >>> mask = torch.ones(2, 11, dtype=torch.bool)
    >>> reg = SelectiveEntropyRegularizer()
    >>> float(reg(logits, mask).loss), bool(reg.anchor is not None)
    (0.0, True)
    >>> bool(reg(2 * logits, mask).loss > 0)
    True
    """

    anchor_value: torch.Tensor

    def __init__(self, top_p: float = 0.8, quantile: float = 0.8, coef: float = 0.005) -> None:
        super().__init__()
        check_range(top_p, "top_p", 0.0, 1.0, low_open=True)
        check_range(quantile, "quantile", 0.0, 1.0)
        _finite(coef, "coef", 0.0)
        self.top_p = top_p
        self.quantile = quantile
        self.coef = coef
        # NaN = no anchor yet; a buffer of fixed shape so that state_dicts always load.
        self.register_buffer("anchor_value", torch.tensor(math.nan))

    @property
    def anchor(self) -> torch.Tensor | None:
        """The stored anchor entropy, or ``None`` before the first call."""
        return None if bool(torch.isnan(self.anchor_value)) else self.anchor_value

    def reset_anchor(self) -> None:
        """Forget the anchor: the next call sets a new one."""
        self.anchor_value.fill_(math.nan)

    def forward(self, logits: torch.Tensor, response_mask: torch.Tensor) -> SIRENOutput:
        anchor = self.anchor
        out = selective_entropy_regularizer(logits, response_mask, self.top_p, self.quantile,
                                            anchor=anchor, coef=self.coef)
        if anchor is None:
            self.anchor_value = out.anchor.detach().to(self.anchor_value).clone()
        return out

    def extra_repr(self) -> str:
        return f"top_p={self.top_p}, quantile={self.quantile}, coef={self.coef}"


class AttentionEntropyPenalty(nn.Module):
    """Module face of :func:`~divergences.losses.attention_entropy_penalty`.

    Options at construction (``theta``, ``gamma``, ``causal``, ``coef``, ``reduction``);
    ``forward(attn_weights)``. ``theta`` is a scalar or a per-head ``(H,)`` sequence/tensor;
    by default a fixed hyper-parameter (a non-persistent buffer, so it follows ``.to()``).
    ``learnable_theta=True`` makes it an ``nn.Parameter`` (the paper learns one target per
    head; give ``num_heads`` when ``theta`` is a scalar).

    >>> import torch
    >>> a = torch.softmax(torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(0)), -1)
    >>> pen = AttentionEntropyPenalty(theta=[0.5, 0.7], coef=1.0)
    >>> torch.equal(pen(a), attention_entropy_penalty(a, torch.tensor([0.5, 0.7]), coef=1.0))
    True
    >>> len(list(AttentionEntropyPenalty(0.5, learnable_theta=True, num_heads=2).parameters()))
    1
    """

    theta: torch.Tensor

    def __init__(self, theta: float | Sequence[float] | torch.Tensor = 0.5, gamma: float = 0.2,
                 causal: bool = False, coef: float = 1e-5, reduction: str = "sum", *,
                 learnable_theta: bool = False, num_heads: int | None = None) -> None:
        super().__init__()
        _finite(gamma, "gamma", 0.0)
        _finite(coef, "coef", 0.0)
        if not isinstance(causal, bool):
            raise TypeError(f"causal must be a bool; got {type(causal).__name__}")
        check_choice(reduction, "reduction", REDUCTIONS)
        try:
            th = torch.as_tensor(theta, dtype=torch.get_default_dtype())
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"theta must be a number or a sequence of numbers; got {theta!r}") from None
        if th.ndim > 1:
            raise ValueError(f"theta must be a scalar or have shape (H,); got {tuple(th.shape)}")
        if not bool(torch.isfinite(th).all()):
            raise ValueError("theta must be finite")
        if num_heads is not None:
            if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
                raise ValueError(f"num_heads must be a positive int; got {num_heads!r}")
            if th.ndim == 0:
                th = th.expand(num_heads)
            elif th.shape[0] != num_heads:
                raise ValueError(f"theta has {th.shape[0]} entries but num_heads={num_heads}")
        th = th.clone()
        self.gamma = gamma
        self.causal = causal
        self.coef = coef
        self.reduction = reduction
        self.learnable_theta = learnable_theta
        if learnable_theta:
            self.theta = nn.Parameter(th)
        else:
            self.register_buffer("theta", th, persistent=False)

    def forward(self, attn_weights: torch.Tensor) -> torch.Tensor:
        return attention_entropy_penalty(attn_weights, self.theta, self.gamma, causal=self.causal,
                                         coef=self.coef, reduction=self.reduction)

    def extra_repr(self) -> str:
        return (f"gamma={self.gamma}, causal={self.causal}, coef={self.coef}, "
                f"reduction={self.reduction!r}, learnable_theta={self.learnable_theta}")


class FairnessPenalty(nn.Module):
    """Module face of :func:`~divergences.losses.fairness_penalty`.

    Options at construction (``kind``, ``lam``); ``forward(predictions, protected)``.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> y, s = torch.randn(32, generator=g), torch.randn(32, generator=g)
    >>> torch.equal(FairnessPenalty(lam=2.0)(y, s), fairness_penalty(y, s, lam=2.0))
    True
    """

    def __init__(self, kind: str = "dcov", lam: float = 1.0) -> None:
        super().__init__()
        check_choice(kind, "kind", FAIRNESS_KINDS)
        check_range(lam, "lam", 0.0)
        self.kind = kind
        self.lam = lam

    def forward(self, predictions: ArrayLike,
                protected: ArrayLike | Sequence[ArrayLike]) -> Any:
        return fairness_penalty(predictions, protected, self.kind, lam=self.lam)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, lam={self.lam}"


class CSInformationBottleneckLoss(nn.Module):
    """Module face of :func:`~divergences.losses.cs_information_bottleneck_loss` (CS-IB).

    Options at construction (``beta``, ``prediction``, ``bandwidth``, ``bandwidth_t``);
    ``forward(x, t, y, y_pred)`` returns the :class:`~divergences.losses.CSIBOutput`.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(32, 3, generator=g); t = torch.tanh(x[:, :2])
    >>> y = x[:, 0]; y_hat = y + 0.1 * torch.randn(32, generator=g)
    >>> out = CSInformationBottleneckLoss(beta=0.1)(x, t, y, y_hat)
    >>> torch.equal(out.loss, cs_information_bottleneck_loss(x, t, y, y_hat, 0.1).loss)
    True
    """

    def __init__(self, beta: float = 0.01, prediction: str = "joint",
                 bandwidth: float | str = "median",
                 bandwidth_t: float | str | None = None) -> None:
        super().__init__()
        check_range(beta, "beta", 0.0)
        check_choice(prediction, "prediction", ("joint", "conditional"))
        for name, bw in (("bandwidth", bandwidth), ("bandwidth_t", bandwidth_t)):
            if bw is None and name == "bandwidth_t":
                continue
            if isinstance(bw, str):
                check_choice(bw, name, ("median",))
            else:
                check_range(bw, name, 0.0, low_open=True)
        self.beta = beta
        self.prediction = prediction
        self.bandwidth = bandwidth
        self.bandwidth_t = bandwidth_t

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                y_pred: torch.Tensor) -> CSIBOutput:
        return cs_information_bottleneck_loss(x, t, y, y_pred, self.beta,
                                              prediction=self.prediction,
                                              bandwidth=self.bandwidth,
                                              bandwidth_t=self.bandwidth_t)

    def extra_repr(self) -> str:
        return (f"beta={self.beta}, prediction={self.prediction!r}, "
                f"bandwidth={self.bandwidth!r}, bandwidth_t={self.bandwidth_t!r}")
