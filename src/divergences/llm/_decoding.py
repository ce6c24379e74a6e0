"""Uncertainty-aware selective contrastive decoding (USCD; Wang et al., 2024)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .. import discrete
from .._arrays import ArrayLike, as_tensors, broadcast_pair, check_range

__all__ = ["SelectiveContrastiveLogitsProcessor", "selective_contrastive_logits"]


def selective_contrastive_logits(
    standard_logits: ArrayLike,
    lame_logits: ArrayLike,
    mu: float = 0.005,
    lam: float = 2 / 3,
    weight: float = 0.7,
) -> Any:
    r"""USCD's rule for one decoding step, as log-scores over the vocabulary (last axis).

    With :math:`p = \mathrm{softmax}(\text{standard})` (the standard prompt),
    :math:`q = \mathrm{softmax}(\text{lame})` (the "lame" prompt) and :math:`V` the vocabulary
    size, per row:

    * if :math:`\mathrm{std}(p) > \mu` (sample standard deviation over the vocabulary, as
      ``torch.std``): the standard distribution is kept, returned as :math:`\log p`;
    * otherwise tokens with :math:`p_v < \lambda / V` are dropped (``-inf``) and the others
      score :math:`\log(p_v - w\,q_v)`, computed as
      :math:`\log p_v + \log(1 - w\,q_v/p_v)`; kept tokens with :math:`p_v \le w\,q_v` also get
      ``-inf`` (the reference code's ``log`` of a non-positive value, mapped to ``-inf``).
      If that leaves no finite score in a row (every kept token has :math:`p_v \le w q_v`;
      not covered by the paper), the row falls back to :math:`\log p` on the kept tokens.

    The scores are not renormalised (sampling and argmax only need them up to a constant).
    Computed in at least float32; NumPy in gives NumPy out. The argmax of :math:`p` is always
    kept (:math:`\max_v p_v \ge 1/V \ge \lambda/V` for :math:`\lambda \le 1`).

    >>> import torch
    >>> flat = torch.zeros(1, 4)                                   # std(p) = 0 <= mu
    >>> lame = torch.tensor([[2.0, 0.0, 0.0, 0.0]])
    >>> out = selective_contrastive_logits(flat, lame)
    >>> bool(out.argmax() != 0)                                    # token 0 penalised
    True
    >>> peaked = torch.tensor([[5.0, 0.0, 0.0, 0.0]])              # std(p) > mu: unchanged
    >>> torch.equal(selective_contrastive_logits(peaked, lame), torch.log_softmax(peaked, -1))
    True
    """
    m = check_range(mu, "mu", 0.0)
    lm = check_range(lam, "lam", 0.0, 1.0)
    w = check_range(weight, "weight", 0.0)
    (s, t), wrap = as_tensors(standard_logits, lame_logits,
                              names=("standard_logits", "lame_logits"), keep_half=True)
    if s.ndim == 0 or t.ndim == 0:
        raise ValueError("standard_logits and lame_logits need a vocabulary axis")
    s, t = broadcast_pair(s, t, ("standard_logits", "lame_logits"))
    lp = discrete.to_log_probs(s, "logits", "standard_logits")
    lq = discrete.to_log_probs(t, "logits", "lame_logits")
    V = s.shape[-1]
    certain = lp.exp().std(dim=-1, keepdim=True) > m if V > 1 else torch.ones_like(
        lp[..., :1], dtype=torch.bool)
    keep = lp >= math.log(lm / V) if lm > 0 else torch.ones_like(lp, dtype=torch.bool)
    ratio = w * torch.exp(lq - lp)                  # w q / p; p > 0 for finite logits
    pos = keep & (ratio < 1)
    contrast = lp + torch.log1p(-torch.where(pos, ratio, torch.zeros_like(ratio)))
    neg_inf = torch.full_like(lp, -math.inf)
    contrast = torch.where(pos, contrast, neg_inf)
    empty = ~pos.any(dim=-1, keepdim=True)
    contrast = torch.where(empty, torch.where(keep, lp, neg_inf), contrast)
    return wrap(torch.where(certain, lp, contrast))


class SelectiveContrastiveLogitsProcessor:
    """USCD as a ``transformers`` logits processor (``__call__(input_ids, scores)``).

    The model generates from the *standard* prompt (the first ``prompt_length`` ids of
    ``input_ids``). At each step the tokens generated so far are appended to the *lame*
    prompt (``lame_input_ids``, ``[B, P]``, e.g. the standard prompt without its few-shot
    examples), ``lame_scorer`` (a :class:`~divergences.llm.Scorer`: ids ``[B, T]`` -> logits
    ``[B, T, V]``, the same model) scores it, and its last position's logits are combined
    with ``scores`` by :func:`selective_contrastive_logits`. With beam search or several
    samples per prompt, ``input_ids`` has ``k * B`` rows and each lame prompt is repeated
    ``k`` times (``repeat_interleave``, the order ``generate`` uses). The lame prompt is
    re-scored in full at each step (no cache). Nothing from ``transformers`` is imported;
    pass it in ``LogitsProcessorList([...])`` or ``generate(logits_processor=[...])``.

    >>> import torch
    >>> lame = torch.tensor([[1, 2]])
    >>> scorer = lambda ids: torch.zeros(ids.shape[0], ids.shape[1], 4)
    >>> proc = SelectiveContrastiveLogitsProcessor(scorer, lame, prompt_length=3)
    >>> proc(torch.tensor([[0, 1, 2, 3]]), torch.zeros(1, 4)).shape
    torch.Size([1, 4])
    """

    def __init__(
        self,
        lame_scorer: Callable[[torch.Tensor], torch.Tensor],
        lame_input_ids: torch.Tensor,
        prompt_length: int,
        *,
        mu: float = 0.005,
        lam: float = 2 / 3,
        weight: float = 0.7,
    ) -> None:
        if not callable(lame_scorer):
            raise TypeError("lame_scorer must be callable (ids -> logits)")
        if not isinstance(lame_input_ids, torch.Tensor) or lame_input_ids.ndim != 2 \
                or lame_input_ids.is_floating_point():
            raise ValueError("lame_input_ids must be an integer torch tensor of shape [B, P]")
        if isinstance(prompt_length, bool) or not isinstance(prompt_length, int) \
                or prompt_length < 0:
            raise ValueError(f"prompt_length must be a non-negative int; got {prompt_length!r}")
        check_range(mu, "mu", 0.0)
        check_range(lam, "lam", 0.0, 1.0)
        check_range(weight, "weight", 0.0)
        self.lame_scorer = lame_scorer
        self.lame_input_ids = lame_input_ids
        self.prompt_length = prompt_length
        self.mu, self.lam, self.weight = mu, lam, weight

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        rows = input_ids.shape[0]
        b = self.lame_input_ids.shape[0]
        if rows % b:
            raise ValueError(f"input_ids has {rows} rows, not a multiple of the {b} lame "
                             "prompts")
        lame = self.lame_input_ids.to(input_ids.device).repeat_interleave(rows // b, dim=0)
        ids = torch.cat([lame, input_ids[:, self.prompt_length:]], dim=1)
        with torch.no_grad():
            out = self.lame_scorer(ids)
            lame_logits = getattr(out, "logits", out)[:, -1, :]
            if lame_logits.shape[-1] != scores.shape[-1]:   # padded vocabularies
                lame_logits = lame_logits[..., :scores.shape[-1]]
            new = selective_contrastive_logits(scores, lame_logits, mu=self.mu, lam=self.lam,
                                               weight=self.weight)
        return new.to(scores.dtype)
