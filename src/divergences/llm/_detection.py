r"""Zero-shot detection of text not written by an in-house model (Radvand et al., 2025).

Radvand, Abdolmaleki, Mostagir & Tewari, *Zero-shot statistical tests for LLM-generated text
detection using finite sample concentration inequalities*, arXiv:2501.02406 (v1-v4, 2025;
code: github.com/TaraRadvand74/LLM-text-detection, notebooks).

Provenance of the threshold (checked 2026-11, see the report of issue 7): the paper's abstract
(v1, v3, v4) states the result used here -- under A, the log-perplexity of a string under A
concentrates around its average entropy under A except with probability exponentially small
in the length -- but the theorem itself (its constants and its assumption on the
log-probabilities) could not be read: the stored arXiv pages give only the abstract and front
matter, the official repository could not be fetched (its stored README lists only three
notebooks), and the demo's ``detector.py`` is not stored. The threshold implemented is therefore our own
derivation of such a bound (Azuma-Hoeffding for bounded martingale differences, written out in
:func:`detection_test`), not a transcription of the paper's :math:`\tau_N`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._arrays import ArrayLike, check_range
from ._stats import token_statistics

__all__ = ["DetectionResult", "detection_test"]


@dataclass
class DetectionResult:
    """Outcome of :func:`detection_test`, one entry per sequence.

    ``statistic = |log_perplexity - entropy|``; ``reject`` is true where the text is judged
    *not* written by the model (``statistic > threshold``); ``p_value`` is the bound's tail
    probability (or the empirical one with calibration): small means "unlikely under the
    model". ``bound_threshold`` is the concentration-bound threshold, ``empirical_threshold``
    the calibrated one (``None`` without calibration); ``threshold`` is the one used.
    ``n_tokens`` counts the scored (unmasked) tokens.
    """

    statistic: Any
    log_perplexity: Any
    entropy: Any
    threshold: Any
    reject: Any
    p_value: Any
    bound_threshold: Any
    empirical_threshold: Any
    n_tokens: Any


def detection_test(
    logits: ArrayLike,
    input_ids: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    shift: bool = False,
    alpha: float = 0.05,
    calibration: ArrayLike | None = None,
    log_prob_range: float | None = None,
    chunk_size: int | None = None,
) -> DetectionResult:
    r"""Test "this text was written by model A" from A's logits on it (Radvand et al.).

    With :math:`p_n = p_A(\cdot \mid y_{<n})` over the :math:`N` scored tokens:

    * log-perplexity :math:`l = -\frac1N \sum_n \log p_n(y_n)`;
    * average entropy :math:`H = \frac1N \sum_n H(p_n)`;
    * statistic :math:`S = |l - H|`; reject "written by A" when :math:`S > \tau_N`.

    Under A, :math:`Z_n = -\log p_n(y_n) - H(p_n)` has conditional mean 0 given the history,
    so :math:`\sum_n Z_n = N(l - H)` is a martingale, and :math:`Z_n` lies in an interval of
    length :math:`c_n = \log \max_v p_n(v) - \log \min_v p_n(v)` (the logit range) known
    given the history. The bound implemented is the Azuma-Hoeffding inequality for such
    bounded martingale differences (our derivation of the kind of bound the paper proves; the
    paper's own theorem, with its constants, could not be read, see the module notes):

    .. math:: P(|l - H| \ge \tau) \le 2 \exp\!\Big(-\frac{2 N^2 \tau^2}{\sum_n c_n^2}\Big),
       \qquad \tau_N = \frac1N \sqrt{\tfrac12 \textstyle\sum_n c_n^2 \log(2/\alpha)}.

    ``log_prob_range=c`` uses a uniform range (:math:`c_n = c`: every log-probability A can
    assign lies in an interval of width :math:`c`, a bounded-log-probability assumption),
    giving :math:`\tau_N = c\sqrt{\log(2/\alpha)/(2N)}`. With a ``c`` that holds for the
    model, the false-rejection rate on A's own texts is at most :math:`\alpha` for every
    :math:`N` (a theorem). By default the per-step logit ranges of the text at hand are
    plugged in: tighter, exact when the ranges do not depend on the sampled tokens, and
    otherwise a plug-in approximation
    (Azuma-Hoeffding needs ranges fixed in advance; a model could in principle shrink its
    later ranges after an unlucky start). The bound's ``p_value`` is
    :math:`\min(1, 2\exp(-2N^2S^2/\sum c_n^2))`. It is conservative; the calibrated
    threshold is the practical one. The tests measure the false-rejection rate of both forms
    on models' own samples (it stays below :math:`\alpha`).

    ``calibration``: statistics :math:`S` of texts sampled from A *at the same length* (run
    this function on A's samples and pass ``.statistic``). Then the threshold is the
    :math:`\lceil (m+1)(1-\alpha) \rceil`-th smallest of the :math:`m` values (``inf`` if
    that exceeds :math:`m`), the p-value is :math:`(1 + \#\{S_j \ge S\})/(m+1)`, and the
    decision uses this threshold.

    ``logits``/``input_ids``/``mask``/``shift``/``chunk_size``: as in
    :func:`~divergences.llm.token_statistics`; a sequence is ``[..., T]`` and the batch axes
    give one test each. Nats. NumPy in gives NumPy out.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> logits = torch.randn(1, 400, 8, generator=g)
    >>> ids = torch.distributions.Categorical(logits=logits).sample()   # text from the model
    >>> r = detection_test(logits, ids)
    >>> bool(r.reject[0]), bool(r.statistic[0] < r.bound_threshold[0])
    (False, True)
    """
    a = check_range(alpha, "alpha", 0.0, 1.0, low_open=True, high_open=True)
    if log_prob_range is not None:
        check_range(log_prob_range, "log_prob_range", 0.0, low_open=True)
    stats = token_statistics(logits, input_ids, mask, shift=shift, chunk_size=chunk_size)
    is_numpy = isinstance(stats.logprob, np.ndarray)
    lp = torch.as_tensor(stats.logprob)
    h = torch.as_tensor(stats.entropy)
    m = torch.as_tensor(stats.mask)
    with torch.no_grad():
        n = m.sum(-1)
        if bool((n == 0).any()):
            raise ValueError("every sequence needs at least one unmasked token")
        nf = n.to(lp.dtype)
        l_ppl = -(lp * m).sum(-1) / nf
        ent = (h * m).sum(-1) / nf
        stat = (l_ppl - ent).abs()
        if log_prob_range is None:
            lg = torch.as_tensor(logits if not isinstance(logits, (list, tuple))
                                 else np.asarray(logits))
            if shift:
                lg = lg[..., :-1, :]
            rng = (lg.amax(-1) - lg.amin(-1)).to(lp.dtype)
            c2 = (rng.square() * m).sum(-1)
        else:
            c2 = nf * float(log_prob_range) ** 2
        bound_tau = torch.sqrt(0.5 * c2 * math.log(2.0 / a)) / nf
        safe_c2 = torch.where(c2 > 0, c2, torch.ones_like(c2))
        bound_p = torch.where(
            c2 > 0, (2.0 * torch.exp(-2.0 * nf.square() * stat.square() / safe_c2)).clamp(max=1.0),
            (stat == 0).to(lp.dtype))
        emp_tau = None
        if calibration is not None:
            cal = torch.as_tensor(np.asarray(calibration.detach().cpu() if isinstance(
                calibration, torch.Tensor) else calibration, dtype=np.float64)).reshape(-1)
            if cal.numel() == 0 or not bool(torch.isfinite(cal).all()):
                raise ValueError("calibration must be a non-empty array of finite statistics")
            k = math.ceil((cal.numel() + 1) * (1.0 - a))
            srt = torch.sort(cal).values
            tau_e = float(srt[k - 1]) if k <= cal.numel() else math.inf
            emp_tau = torch.full_like(stat, tau_e)
            p_val = (1.0 + (cal[None, :] >= stat.reshape(-1, 1).double()).sum(-1)) / (
                cal.numel() + 1.0)
            p_val = p_val.reshape(stat.shape).to(stat.dtype)
            tau = emp_tau
        else:
            p_val, tau = bound_p, bound_tau
        reject = stat > tau

    def out(t: torch.Tensor | None) -> Any:
        if t is None:
            return None
        return t.detach().cpu().numpy() if is_numpy else t

    return DetectionResult(statistic=out(stat), log_perplexity=out(l_ppl), entropy=out(ent),
                           threshold=out(tau), reject=out(reject), p_value=out(p_val),
                           bound_threshold=out(bound_tau), empirical_threshold=out(emp_tau),
                           n_tokens=out(n))
