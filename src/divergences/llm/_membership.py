"""Pretraining-data (membership) detection: DC-PDD (Zhang et al., 2024) and Min-K% (Shi et al.)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .._arrays import ArrayLike, as_tensors, check_range

__all__ = ["dc_pdd_score", "min_k_percent", "reference_frequencies"]


def _int_tensor(x: Any, name: str) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers; got dtype {t.dtype}")
    return t.long()


def _mask(mask: Any, shape: torch.Size, device: torch.device) -> torch.Tensor:
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    m = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
    if tuple(m.shape) != tuple(shape):
        raise ValueError(f"mask must have shape {tuple(shape)}; got {tuple(m.shape)}")
    return m.to(device).bool()


def reference_frequencies(corpus_ids: Any, vocab_size: int, *, log: bool = True) -> Any:
    r"""Laplace-smoothed token frequencies of a reference corpus.

    :math:`p'(v) = (c_v + 1) / (\sum_u c_u + V)`, with :math:`c_v` the count of token ``v``
    in ``corpus_ids`` (one array of ids, a 2-D array, or a list of arrays; negative ids such
    as ``-100`` padding are skipped). Returns :math:`\log p'` (``log=True``, the input
    :func:`dc_pdd_score` takes) or :math:`p'`, a float64 array of length ``vocab_size``
    (a torch tensor when the ids are one).

    >>> import numpy as np
    >>> np.exp(reference_frequencies([0, 0, 1], 3)).round(3).tolist()   # (2+1, 1+1, 0+1) / 6
    [0.5, 0.333, 0.167]
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) \
            or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive int; got {vocab_size!r}")
    is_torch = isinstance(corpus_ids, torch.Tensor) or (
        isinstance(corpus_ids, (list, tuple)) and len(corpus_ids) > 0
        and all(isinstance(c, torch.Tensor) for c in corpus_ids))
    if isinstance(corpus_ids, (list, tuple)) and len(corpus_ids) > 0 and not np.isscalar(
            corpus_ids[0]):
        parts = [_int_tensor(c, "corpus_ids").reshape(-1).cpu() for c in corpus_ids]
        ids = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
    else:
        ids = _int_tensor(corpus_ids, "corpus_ids").reshape(-1)
    device = ids.device
    ids = ids[ids >= 0]
    if bool((ids >= vocab_size).any()):
        raise ValueError(f"corpus_ids must lie in [0, {vocab_size}); got {int(ids.max())}")
    counts = torch.bincount(ids.cpu(), minlength=int(vocab_size)).double()
    freq = (counts + 1.0) / (counts.sum() + vocab_size)
    out = freq.log() if log else freq
    return out.to(device) if is_torch else out.numpy()


def dc_pdd_score(
    token_logprobs: ArrayLike,
    input_ids: ArrayLike,
    reference_log_frequencies: ArrayLike,
    a: float = 0.01,
    *,
    mask: ArrayLike | None = None,
) -> Any:
    r"""DC-PDD membership score: divergence-calibrated token probabilities (higher = member).

    For a text :math:`x_1..x_T` with model probabilities :math:`p_M(x_i)` (``exp`` of
    ``token_logprobs``) and reference-corpus frequencies :math:`p'(x_i)`:

    .. math:: \alpha_i = \min\big(p_M(x_i) \log\tfrac{1}{p'(x_i)},\ a\big), \qquad
       \text{score} = \frac{1}{|F|}\sum_{i \in F} \alpha_i,

    where :math:`F` holds the *first occurrence* of each distinct token among the unmasked
    positions (repeats are ignored). The score lies in :math:`[0, a]`. Reference
    frequencies from :func:`reference_frequencies` (Laplace smoothing) are positive, so
    unseen tokens give a finite score. A sequence with no unmasked token scores 0.

    Shapes: ``token_logprobs``, ``input_ids`` and ``mask`` ``[..., T]`` (one score per
    sequence), ``reference_log_frequencies`` ``[V]`` (log-probabilities, ``<= 0``).
    Differentiable in ``token_logprobs``. NumPy in gives NumPy out.

    >>> import numpy as np
    >>> lf = np.log([0.5, 0.25, 0.25])
    >>> lp = np.log([0.01, 0.002, 0.5])            # ids 0, 1, 1: the second 1 is a repeat
    >>> float(dc_pdd_score(lp, [0, 1, 1], lf, a=0.01)).__round__(6)   # (0.01*log2, 0.002*log4)
    0.004852
    """
    aa = check_range(a, "a", 0.0, low_open=True)
    (lp, lf), wrap = as_tensors(token_logprobs, reference_log_frequencies,
                                names=("token_logprobs", "reference_log_frequencies"))
    if lf.ndim != 1:
        raise ValueError("reference_log_frequencies must be 1-D (one entry per token); got "
                         f"shape {tuple(lf.shape)}")
    if bool((lf > 1e-9).any()) or not bool(torch.isfinite(lf).all()):
        raise ValueError("reference_log_frequencies must be finite log-probabilities (<= 0)")
    if bool(torch.isnan(lp).any()) or bool((lp > 1e-6).any()):
        raise ValueError("token_logprobs must be log-probabilities (<= 0, no NaN)")
    if lp.ndim == 0:
        raise ValueError("token_logprobs must have a token axis")
    ids = _int_tensor(input_ids, "input_ids").to(lp.device)
    if ids.shape != lp.shape:
        raise ValueError(f"input_ids must have the shape of token_logprobs {tuple(lp.shape)}; "
                         f"got {tuple(ids.shape)}")
    m = _mask(mask, ids.shape, lp.device)
    V = lf.shape[0]
    if bool((m & ((ids < 0) | (ids >= V))).any()):
        raise ValueError(f"input_ids must lie in [0, {V}) at unmasked positions")
    keep = m & _first_occurrence(torch.where(m, ids, -1), m)
    safe = torch.where(m, ids, torch.zeros_like(ids))
    alpha = (lp.exp() * (-lf[safe])).clamp(max=aa)
    alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
    n = keep.sum(-1).clamp_min(1).to(alpha.dtype)
    return wrap(alpha.sum(-1) / n)


def _first_occurrence(ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """True at the first position of each distinct id along the last axis (valid ones only)."""
    T = ids.shape[-1]
    flat = ids.reshape(-1, T)
    pos = torch.arange(T, device=ids.device).expand_as(flat)
    # invalid positions get distinct keys above every id, so they never group with anything
    big = flat.max().clamp_min(0) + 1 if flat.numel() else torch.tensor(1)
    key = torch.where(valid.reshape(-1, T), flat, big + pos)
    sorted_key, perm = torch.sort(key, dim=-1, stable=True)
    first_sorted = torch.ones_like(sorted_key, dtype=torch.bool)
    first_sorted[:, 1:] = sorted_key[:, 1:] != sorted_key[:, :-1]
    first = torch.zeros_like(first_sorted).scatter_(1, perm, first_sorted)
    return first.reshape(ids.shape)


def min_k_percent(token_logprobs: ArrayLike, k: float = 0.2, *,
                  mask: ArrayLike | None = None) -> Any:
    r"""Min-K% Prob (Shi et al., 2024): mean of the lowest ``k`` fraction of token log-probs.

    :math:`\text{score} = \frac{1}{|K|}\sum_{i \in K}\log p_M(x_i)`, :math:`K` the
    :math:`\max(1, \lceil k\,n \rceil)` unmasked tokens with the smallest log-probabilities
    (:math:`n` unmasked tokens). Higher (less negative) means member. One value per sequence
    (``[..., T] -> [...]``); a sequence with no unmasked token gives 0.

    >>> import numpy as np
    >>> float(min_k_percent(np.log([0.5, 0.1, 0.01, 0.9, 0.2]), k=0.4))  # mean(log .01, log .1)
    -3.4538776394910684
    """
    kk = check_range(k, "k", 0.0, 1.0, low_open=True)
    (lp,), wrap = as_tensors(token_logprobs, names=("token_logprobs",))
    if lp.ndim == 0:
        raise ValueError("token_logprobs must have a token axis")
    if bool(torch.isnan(lp).any()):
        raise ValueError("token_logprobs contains NaN")
    m = _mask(mask, lp.shape, lp.device)
    n = m.sum(-1)
    count = torch.ceil(n.to(torch.float64) * kk).long().clamp_min(1)
    filled = torch.where(m, lp, torch.full_like(lp, math.inf))
    srt = torch.sort(filled, dim=-1).values
    take = torch.arange(lp.shape[-1], device=lp.device) < count[..., None]
    take = take & (torch.arange(lp.shape[-1], device=lp.device) < n[..., None])
    vals = torch.where(take, srt, torch.zeros_like(srt))
    return wrap(vals.sum(-1) / count.clamp_max(n.clamp_min(1)).to(lp.dtype))
