r"""Regularisers for RL fine-tuning of language models: DPH-RL and SIREN.

* :func:`dph_penalty`: DPH-RL (Diversity-Preserving Hybrid RL), the generator-based
  divergence from the initial policy on its own stored samples; official code
  ``seamoke/DPH-RL`` (``verl/trainer/ppo/core_algos.py``: ``kl_penalty`` with ``k3``,
  ``js_low_var``, ``alpha_divergence_f``; called from ``verl/workers/actor/dp_actor.py``).
* :func:`selective_entropy_regularizer`: SIREN (selective entropy regularisation); official
  code ``Linn3a/siren`` (``verl/workers/actor/dp_actor.py``: ``efficient_top_p_sampling``,
  ``mask_by_quantile`` and the ``"siren"`` branch).

Every generator comes from the registry (:mod:`divergences.fdiv`); the entropy is
:func:`divergences.discrete.entropy`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .. import discrete, fdiv
from .._arrays import REDUCTIONS, check_choice, check_range
from ._checks import check_float as _check_float

__all__ = ["SIRENOutput", "dph_penalty", "selective_entropy_regularizer"]

DPH_DIVERGENCES = ("forward_kl", "js", "alpha")
_LOG_RATIO_CLAMP = 20.0   # official k3: the log-ratio is clamped to [-20, 20]
_K3_CLAMP = 10.0          # official k3: the value is clamped to [-10, 10]




def _check_mask(mask: object, shape: torch.Size, name: str) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor; got {type(mask).__name__}")
    if mask.shape != shape:
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        if bool(((mask != 0) & (mask != 1)).any()):
            raise ValueError(f"{name} must hold 0/1 or booleans")
        mask = mask != 0
    return mask


def dph_penalty(
    logp: torch.Tensor,
    logp_init: torch.Tensor,
    divergence: str = "forward_kl",
    alpha: float = 0.2,
    *,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""DPH-RL's divergence penalty from the initial policy, on the initial policy's samples.

    ``logp`` are the current policy's log-probabilities of tokens that the *initial* policy
    :math:`\pi_0` generated (stored samples, e.g. solved prompts), ``logp_init`` are
    :math:`\pi_0`'s log-probabilities of the same tokens, :math:`u = \pi/\pi_0`. Per token:

    * ``"forward_kl"``: :math:`k_3 = u - 1 - \log u`, with :math:`\log u` clamped to [-20, 20]
      and the value to [-10, 10] as in the official code; :math:`\mathbb{E}_{\pi_0}[k_3] =
      \mathrm{KL}(\pi_0\|\pi)` (registry ``alpha`` at :math:`\alpha = 0`);
    * ``"js"``: :math:`f(u) = u\log u - (u+1)\log\frac{u+1}{2}`;
      :math:`\mathbb{E}_{\pi_0}[f(u)] = 2\,\mathrm{JSD}(\pi, \pi_0)` (twice the registry's
      ``js``);
    * ``"alpha"``: :math:`f(u) = (u^{1-\alpha} - (1-\alpha)u - \alpha)/(\alpha(\alpha-1))`,
      ``alpha`` in [0, 1] (default 0.2, the paper's): the registry's Amari ``alpha`` at
      :math:`1 - \alpha`, so :math:`\alpha \to 1` is :math:`k_3` (forward KL) and
      :math:`\alpha \to 0` is :math:`u \log u - u + 1` (reverse KL).

    Each generator has :math:`f(1) = f'(1) = 0`, so the penalty and its gradient vanish at
    :math:`\pi = \pi_0`. For ``"js"`` and ``"alpha"`` the official code has no clamp; we clamp
    :math:`\log u` to [-20, 20] there too (it only matters where :math:`u > 4.8 \times 10^8`),
    so finite inputs never overflow. Computed in float32 at least.

    ``mask`` (same shape, bool or 0/1) selects the response tokens. ``reduction="mean"`` is
    the token mean over the selected tokens (verl's ``token-mean``), ``"sum"`` their sum,
    ``"none"`` the per-token values (0 where masked out).

    >>> import torch
    >>> p0 = torch.tensor([0.5, 0.3, 0.2]); p = torch.tensor([0.4, 0.4, 0.2])
    >>> k3 = dph_penalty(p.log(), p0.log(), reduction="none")
    >>> bool(torch.isclose((p0 * k3).sum(), (p0 * (p0 / p).log()).sum()))   # KL(p0 || p)
    True
    >>> float(dph_penalty(p0.log(), p0.log(), "js"))
    0.0
    """
    lp = _check_float(logp, "logp")
    l0 = _check_float(logp_init, "logp_init")
    if lp.shape != l0.shape:
        raise ValueError(
            f"logp_init must have the shape of logp {tuple(lp.shape)}; got {tuple(l0.shape)}"
        )
    check_choice(divergence, "divergence", DPH_DIVERGENCES)
    a = check_range(alpha, "alpha", 0.0, 1.0)
    check_choice(reduction, "reduction", REDUCTIONS)
    m = None if mask is None else _check_mask(mask, lp.shape, "mask")

    dtype = torch.float64 if lp.dtype == torch.float64 else torch.float32
    s = (lp.to(dtype) - l0.to(dtype)).clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    zero = torch.zeros_like(s)
    if divergence == "forward_kl":
        values = fdiv.get("alpha", alpha=0.0).terms(s, zero).clamp(-_K3_CLAMP, _K3_CLAMP)
    elif divergence == "js":
        values = 2.0 * fdiv.get("js", beta=0.5).terms(s, zero)
    else:
        values = fdiv.get("alpha", alpha=1.0 - a).terms(s, zero)
    if m is not None:
        values = torch.where(m, values, zero)
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    count = values.numel() if m is None else int(m.sum())
    return values.sum() / max(count, 1)


# --------------------------------------------------------------------------------------------
# SIREN
# --------------------------------------------------------------------------------------------


class SIRENOutput(NamedTuple):
    """What :func:`selective_entropy_regularizer` returns.

    ``loss``: ``coef * (H - anchor)^2`` (carries the gradient); ``entropy``: the aggregated
    selective entropy ``H`` (carries the gradient); ``anchor``: the anchor used (detached;
    the current ``H`` when none was given, to store and pass back at later steps);
    ``token_entropy``: the top-p entropy of every token ``(B, T)``; ``keep``: the
    peak-entropy mask ``(B, T)``.
    """

    loss: torch.Tensor
    entropy: torch.Tensor
    anchor: torch.Tensor
    token_entropy: torch.Tensor
    keep: torch.Tensor


def top_p_entropy(logits: torch.Tensor, top_p: float = 0.8) -> torch.Tensor:
    r"""Entropy of the top-p nucleus, renormalised, over the last axis of ``logits``.

    The nucleus is the set of most probable tokens *before* the one at which the cumulative
    probability (descending order) reaches ``top_p``, as in SIREN's official code; the most
    probable token is always in it (when it alone reaches ``top_p`` the entropy is 0, the
    official value). :math:`0 \le H_{top\text{-}p} \le \log |\text{nucleus}|`. Differentiable
    in the logits (the nucleus itself is a discrete choice). Nats, float32 at least.

    >>> import torch, math
    >>> h = top_p_entropy(torch.log(torch.tensor([0.3, 0.3, 0.3, 0.1])), top_p=0.8)
    >>> math.isclose(float(h), math.log(2), rel_tol=1e-6)
    True
    """
    x = _check_float(logits, "logits")
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"logits must have shape (..., V) with V >= 1; got {tuple(x.shape)}")
    p = check_range(top_p, "top_p", 0.0, 1.0, low_open=True)
    lp = discrete.to_log_probs(x, "logits", "logits")
    sorted_lp, _ = lp.sort(dim=-1, descending=True)
    with torch.no_grad():
        cum = sorted_lp.exp().cumsum(-1)
        rank = torch.arange(x.shape[-1], device=x.device)
        nucleus = (cum < p) | (rank == 0)
    kept = torch.where(nucleus, sorted_lp, torch.full_like(sorted_lp, -math.inf))
    renorm = kept - torch.logsumexp(kept, dim=-1, keepdim=True)
    return discrete.entropy(renorm, input="log_probs", validate=False)


def selective_entropy_regularizer(
    logits: torch.Tensor,
    response_mask: torch.Tensor,
    top_p: float = 0.8,
    quantile: float = 0.8,
    anchor: float | torch.Tensor | None = None,
    coef: float = 0.005,
) -> SIRENOutput:
    r"""SIREN: self-anchored penalty on the top-p entropy of the peak-entropy tokens.

    For logits ``(B, T, V)`` and a ``response_mask`` ``(B, T)``:

    1. :math:`H_{bt}` = :func:`top_p_entropy` of each token's distribution (``top_p = 0.8``);
    2. in each response keep the tokens whose entropy is *above* the ``quantile`` (0.8)
       quantile of that response's entropies (``torch.nanquantile``, linear interpolation):
       with :math:`n` response tokens at most :math:`n - 1 - \lfloor q (n-1) \rfloor` are kept
       (20% when :math:`n - 1` is a multiple of 5);
    3. aggregate seq-mean-token-mean: :math:`H` = mean over responses of the mean kept entropy
       (responses with no kept token are left out; ``H = 0`` if none has one);
    4. loss :math:`= c\,(H - H_{anchor})^2` with ``coef`` :math:`c = 0.005`.

    ``anchor=None`` (the first step) takes :math:`H_{anchor} = H` (detached), returned as
    ``anchor`` to be passed back at every later step: the loss and its gradient are 0 there.
    Unlike the official ``mask_by_quantile``, the kept tokens are also restricted to the
    response mask (the official code can keep padding whose entropy is above the threshold).

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> logits = torch.randn(2, 11, 50, generator=g, requires_grad=True)
    >>> mask = torch.ones(2, 11, dtype=torch.bool)
    >>> first = selective_entropy_regularizer(logits, mask)
    >>> first.loss.item(), int(first.keep.sum(-1).max())
    (0.0, 2)
    >>> later = selective_entropy_regularizer(logits * 2, mask, anchor=first.anchor)
    >>> bool(later.loss > 0)
    True
    """
    x = _check_float(logits, "logits")
    if x.ndim != 3:
        raise ValueError(f"logits must have shape (B, T, V); got {tuple(x.shape)}")
    m = _check_mask(response_mask, x.shape[:2], "response_mask")
    q = check_range(quantile, "quantile", 0.0, 1.0)
    c = check_range(coef, "coef", 0.0)
    h = top_p_entropy(x, top_p)
    with torch.no_grad():
        masked = torch.where(m, h.detach(), torch.full_like(h, math.nan))
        valid_rows = m.any(-1)
        safe = torch.where(valid_rows[:, None], masked, torch.zeros_like(masked))
        bound = torch.nanquantile(safe, q, dim=-1, keepdim=True)
        keep = m & (h.detach() > bound)
    zero = torch.zeros_like(h)
    counts = keep.sum(-1)
    row_mean = torch.where(keep, h, zero).sum(-1) / counts.clamp_min(1)
    rows = counts > 0
    H = torch.where(rows, row_mean, torch.zeros_like(row_mean)).sum() / rows.sum().clamp_min(1)
    if anchor is None:
        anc = H.detach()
    else:
        anc = torch.as_tensor(anchor, dtype=H.dtype, device=H.device).detach()
        if anc.numel() != 1 or not bool(torch.isfinite(anc).all()):
            raise ValueError("anchor must be a finite scalar")
        anc = anc.reshape(())
    loss = c * (H - anc).square()
    return SIRENOutput(loss, H, anc, h, keep)
