r"""Distillation losses over full logits: argument handling, divergences and reductions.

The chunked computation lives in :mod:`._chunked_distill`; the formulas in the registry
(:mod:`divergences.fdiv`). This module resolves the divergence name, validates and flattens
the inputs, builds the per-chunk row function and applies the reduction.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import torch

from .. import _stored_grad, fdiv
from .._arrays import check_choice, check_range
from . import _chunked_distill as cd

__all__ = ["DistillationOutput", "distillation_loss", "resolve_divergence"]

DIVERGENCES = ("forward_kl", "reverse_kl", "js", "skew_forward_kl", "skew_reverse_kl", "tv")
LOSS_REDUCTIONS = ("none", "sum", "mean", "batchmean")


class DistillationOutput(NamedTuple):
    r"""What ``return_components=True`` gives.

    ``loss`` is ``(1 - hard_weight) * distillation + hard_weight * cross_entropy`` and carries
    the gradient; ``distillation`` (``temperature**2``-scaled when ``temperature_scaling``) and
    ``cross_entropy`` (zero without ``labels``) are detached values, reduced the same way.

    ``student_entropy`` is the Shannon entropy of the student's next-token distribution
    :math:`q = \mathrm{softmax}(s / T)` at the loss's ``temperature`` :math:`T`, per token:
    :math:`H(q) = -\sum_v q_v \log q_v` in nats, with :math:`0 \log 0 = 0` (``-inf`` logits
    are zero mass), from 0 (one-hot) to :math:`\log V` (uniform). It is never reduced,
    whatever ``reduction``: it has the logits' batch shape (``(N,)`` for ``(N, V)`` logits,
    ``(B, L)`` for ``(B, L, V)``), is 0 on the tokens that the loss drops (label
    ``ignore_index``, ``mask == 0``; as ``reduction="none"`` gives them), NaN on a counted
    token with a NaN logit, and is a detached float32 tensor (float64 for float64 logits;
    half-precision logits are upcast first): its mean over the counted tokens is its sum
    divided by their number (``(labels != ignore_index).sum()``, say). It is computed in the
    same chunk pass as the loss, from the probabilities that pass already forms, by
    :func:`distillation_loss`, :func:`~divergences.losses.fused_linear_distillation_loss`
    (on the vocabulary the divergence compares: the student's own, or its first
    ``min(V_s, V_t)`` entries renormalised with ``vocab="truncate"``) and
    :func:`~divergences.losses.sparse_distillation_loss` (the student's full vocabulary); it
    is ``None`` from the vocabulary-parallel losses of :mod:`divergences.distributed`, where
    it would need a reduction across the shards. With this fourth field
    the tuple no longer unpacks into three names: read the fields by name.

    >>> import torch
    >>> from divergences.losses import distillation_loss
    >>> g = torch.Generator().manual_seed(0)
    >>> s, t = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    >>> s[0] = torch.tensor([0.0] + [-torch.inf] * 5)   # one-hot: H = 0
    >>> s[1] = 0.0                                        # uniform: H = log 6
    >>> labels = torch.tensor([1, 2, 3, -100])            # the last token is dropped
    >>> out = distillation_loss(s, t, temperature=2.0, labels=labels, return_components=True)
    >>> out.student_entropy.shape, out.student_entropy[0].item(), out.student_entropy[3].item()
    (torch.Size([4]), 0.0, 0.0)
    >>> bool(torch.isclose(out.student_entropy[1], torch.tensor(6.0).log()))
    True
    >>> q = torch.softmax(s[2] / 2.0, -1)
    >>> bool(torch.isclose(out.student_entropy[2], -(q * q.log()).sum()))
    True
    """

    loss: torch.Tensor
    distillation: torch.Tensor
    cross_entropy: torch.Tensor
    student_entropy: torch.Tensor | None = None


# Loss names whose registry member takes a mixture weight (``skew=``), and that member.
SKEWED = {"skew_forward_kl": "skew_kl", "skew_kl": "skew_kl",
          "skew_reverse_kl": "skew_reverse_kl"}
DEFAULT_SKEW = 0.1
VOCAB_MODES = ("error", "pad", "truncate")


def resolve_divergence(
    divergence: str | fdiv.FDivergence,
    beta: float = 0.5,
    alpha: float | None = None,
    skew: float | None = None,
    *,
    stacklevel: int = 3,
) -> fdiv.FDivergence:
    """The registry member that gives ``divergence`` as ``D_f(teacher || student)``.

    ``forward_kl`` -> ``kl``; ``reverse_kl`` -> ``reverse_kl``; ``js`` -> ``js(beta)`` with
    ``beta = 0`` giving ``kl`` and ``beta = 1`` giving ``reverse_kl`` (TRL's endpoints);
    ``skew_forward_kl`` (or ``skew_kl``) -> ``skew_kl`` and ``skew_reverse_kl`` ->
    ``skew_reverse_kl``, with mixture weight ``skew`` in [0, 1] (default 0.1); ``alpha`` ->
    the alpha-divergence of order ``alpha`` (any real order the registry takes; default
    0.5); ``tv``; any other registry name, or an :class:`~divergences.fdiv.FDivergence` as
    is. ``alpha`` is an order, never a mixture weight: ``alpha=`` given for a skew
    divergence is read as ``skew=`` with a ``DeprecationWarning`` (for one release). An
    argument that cannot apply (``alpha`` or ``skew`` for another divergence) is an error.

    >>> resolve_divergence("js", beta=0.0).name
    'kl'
    >>> resolve_divergence("alpha", alpha=2.0).params
    {'alpha': 2.0}
    >>> fd = resolve_divergence("skew_forward_kl", skew=0.2)
    >>> fd.name, list(fd.params.values())
    ('skew_kl', [0.2])
    """
    if isinstance(divergence, fdiv.FDivergence):
        if alpha is not None or skew is not None:
            raise ValueError(
                "alpha and skew cannot be given with an FDivergence instance: its parameters "
                "are fixed; build it with fdiv.get(name, ...) instead"
            )
        return divergence
    if not isinstance(divergence, str):
        raise TypeError(
            f"divergence must be a name or an FDivergence; got {type(divergence).__name__}"
        )
    b = check_range(beta, "beta", 0.0, 1.0)
    if divergence in SKEWED:
        if alpha is not None:
            if skew is not None:
                raise ValueError(
                    "give the skew divergences' mixture weight as skew= only; alpha= is its "
                    "deprecated spelling"
                )
            warnings.warn(
                f"alpha= as the mixture weight of {divergence!r} is deprecated and will be "
                "removed in the next release; use skew= (alpha is the order of the "
                "alpha-divergence)",
                DeprecationWarning, stacklevel=stacklevel,
            )
            w = check_range(alpha, "alpha", 0.0, 1.0)
        else:
            w = check_range(DEFAULT_SKEW if skew is None else skew, "skew", 0.0, 1.0)
        return skew_member(SKEWED[divergence], w)
    if skew is not None:
        raise ValueError(
            f"skew applies to the skew divergences ({', '.join(map(repr, SKEWED))}) only; "
            f"got divergence={divergence!r}"
        )
    if divergence == "alpha":
        return fdiv.get("alpha") if alpha is None else fdiv.get("alpha", alpha=alpha)
    if alpha is not None:
        raise ValueError(
            "alpha is the order of divergence='alpha' and applies to it only; got "
            f"divergence={divergence!r}"
        )
    if divergence == "forward_kl":
        return fdiv.get("kl")
    if divergence == "reverse_kl":
        return fdiv.get("reverse_kl")
    if divergence == "js":
        if b == 0.0:
            return fdiv.get("kl")
        if b == 1.0:
            return fdiv.get("reverse_kl")
        return fdiv.get("js", beta=b)
    try:
        return fdiv.get(divergence)
    except ValueError:
        raise ValueError(
            f"divergence must be one of {', '.join(map(repr, DIVERGENCES))} or a registry "
            f"name ({', '.join(fdiv.names())}); got {divergence!r}"
        ) from None


def _registry_skew_keyword() -> str:
    # Asked once, at import (catch_warnings does not trace under torch.compile).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fdiv.get("skew_kl", skew=0.1)
        except TypeError:
            return "alpha"
    return "skew"


_SKEW_KEYWORD = _registry_skew_keyword()


def skew_member(name: str, w: float) -> fdiv.FDivergence:
    """``fdiv.get(name, skew=w)``, or with the registry's older spelling ``alpha=w``.

    The registry is renaming the skew members' mixture weight from ``alpha`` to ``skew``;
    whichever it takes is passed, so no deprecation warning of its own reaches the user.
    """
    return fdiv.get(name, **{_SKEW_KEYWORD: w})


def resolve_vocab(vocab: str | None, pad_vocab: bool) -> str:
    """``vocab`` (``"error" | "pad" | "truncate"``), with ``pad_vocab=True`` meaning ``"pad"``."""
    if vocab is None:
        return "pad" if pad_vocab else "error"
    check_choice(vocab, "vocab", VOCAB_MODES)
    if pad_vocab and vocab != "pad":
        raise ValueError(f"pad_vocab=True contradicts vocab={vocab!r}; give vocab only")
    return vocab


def check_vocab(mode: str, vs: int, vt: int, names: tuple[str, str]) -> None:
    """Different vocabulary sizes need ``vocab="pad"`` or ``"truncate"``."""
    if vs != vt and mode == "error":
        raise ValueError(
            f"vocabulary sizes differ: {names[0]} has V={vs}, {names[1]} has V={vt}; pass "
            "vocab='truncate' to compare them on the shared first min(V) entries, each "
            "renormalised there (a teacher whose head has padding rows), or vocab='pad' "
            "(pad_vocab=True) to pad the smaller one with zero mass"
        )


def check_padding(fd: fdiv.FDivergence, vs: int, vt: int, student_extra: Any,
                  teacher_extra: Any, names: tuple[str, str]) -> None:
    """With ``vocab="pad"``, an error where padding makes every token's divergence ``inf``.

    Padding one side with zero mass where the other has mass gives ``inf`` wherever the
    divergence's limit there is infinite (``slope_inf`` when the student is padded: forward
    KL; ``f0`` when the teacher is: reverse KL). ``student_extra()`` / ``teacher_extra()``
    say whether the larger side has mass on its extra entries (a host read, skipped under
    ``torch.compile``).
    """
    if vs == vt or torch.compiler.is_compiling():
        return
    if vt > vs and math.isinf(fd.slope_inf) and teacher_extra():
        side, small, big, lim = names[0], vs, vt, "the teacher has mass there"
    elif vs > vt and math.isinf(fd.f0) and student_extra():
        side, small, big, lim = names[1], vt, vs, "the student has mass there"
    else:
        return
    raise ValueError(
        f"vocab='pad' pads {side} from V={small} to V={big} with zero mass, but {lim}, so "
        f"{fd.name} is inf for every token; use vocab='truncate' to drop the {big - small} "
        "extra entries and renormalise over the shared vocabulary, or give them -inf logits"
    )


# --------------------------------------------------------------------------------------------
# Validation shared by the three entry points
# --------------------------------------------------------------------------------------------


def check_logits(x: Any, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor; got dtype {x.dtype}")
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(
            f"{name} must have shape (..., V) with V >= 1; got {tuple(x.shape)}"
        )
    return x


def check_options(
    temperature: float, hard_weight: float, reduction: str, chunk_size: int | None,
    chunk_bytes: int | None = None,
) -> tuple[float, float]:
    t = check_range(temperature, "temperature", 0.0, low_open=True)
    if math.isinf(t):
        raise ValueError("temperature must be finite; got inf")
    h = check_range(hard_weight, "hard_weight", 0.0, 1.0)
    check_choice(reduction, "reduction", LOSS_REDUCTIONS)
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")
    if cd.check_chunk_bytes(chunk_bytes) is not None and chunk_size is not None:
        raise ValueError("give chunk_size (rows) or chunk_bytes (a memory budget), not both")
    return t, h


def row_temps(fd: fdiv.FDivergence) -> int:
    """Temporaries of chunk x V per chunk: fewer with the registry's closed-form partials."""
    return cd.AUTOGRAD_TEMPS if fd.pointwise_partial is None else cd.CLOSED_FORM_TEMPS


def token_mask(
    batch: torch.Size,
    device: torch.device,
    labels: torch.Tensor | None,
    mask: torch.Tensor | None,
    ignore_index: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Flat boolean keep-mask (N,) and flat labels (N,) or ``None``."""
    keep = torch.ones(batch, dtype=torch.bool, device=device)
    flat_labels = None
    if labels is not None:
        if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.is_complex():
            raise TypeError("labels must be an integer torch tensor")
        if labels.shape != batch:
            raise ValueError(
                f"labels must have the logits' batch shape {tuple(batch)}; got {tuple(labels.shape)}"
            )
        labels = labels.to(device=device, dtype=torch.long)
        keep = keep & (labels != ignore_index)
        flat_labels = labels.reshape(-1)
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            raise TypeError("mask must be a torch tensor")
        if mask.shape != batch:
            raise ValueError(
                f"mask must have the logits' batch shape {tuple(batch)}; got {tuple(mask.shape)}"
            )
        keep = keep & (mask.to(device) != 0)
    return keep.reshape(-1), flat_labels


def token_weights(
    keep: torch.Tensor,
    batch: torch.Size,
    reduction: str,
    num_items_in_batch: int | torch.Tensor | None,
    masked: bool,
    dtype: torch.dtype,
) -> torch.Tensor | None:
    """Per-token weights (N,) whose dot product with the per-token values is the reduced loss.

    ``None`` for ``reduction="none"``. No host synchronisation: counts stay tensors.
    """
    w = keep.to(dtype)
    if num_items_in_batch is not None:
        if reduction == "none":
            raise ValueError("num_items_in_batch needs a reduction other than 'none'")
        if isinstance(num_items_in_batch, torch.Tensor):
            return w / num_items_in_batch.to(device=w.device, dtype=dtype)
        n = check_range(num_items_in_batch, "num_items_in_batch", 0.0, low_open=True)
        return w / n
    if reduction == "none":
        return None
    if reduction == "sum":
        return w
    if reduction == "batchmean" and not masked:
        return w / float(batch[0] if len(batch) else 1)
    return w / w.sum().clamp_min(1.0)


def reduce_values(values: torch.Tensor, weights: torch.Tensor | None,
                  batch: torch.Size) -> torch.Tensor:
    """Per-token ``values`` (N,) reduced with :func:`token_weights` (or reshaped to ``batch``)."""
    if weights is None:
        return values.reshape(batch)
    return (values * weights.to(values.dtype)).sum()


def pad_last(x: torch.Tensor, v: int) -> torch.Tensor:
    """Pad the last axis with ``-inf`` (zero mass) to length ``v``."""
    return torch.nn.functional.pad(x, (0, v - x.shape[-1]), value=-math.inf)


# --------------------------------------------------------------------------------------------
# distillation_loss
# --------------------------------------------------------------------------------------------


class _DenseRows:
    """Row function of :func:`distillation_loss`: ``(soft, hard)`` per row of a chunk, and the
    same values with their gradients in closed form (:meth:`values_and_grads`); with
    ``entropy=True`` a third value, the student's entropy per row (values only).

    ``vocab``: ``"pad"`` pads the narrower logits with ``-inf`` (zero mass) to the wider
    width, ``"truncate"`` keeps the first ``min(V_s, V_t)`` columns of both (renormalised by
    the log-softmax over them); the cross-entropy always uses the student's whole
    vocabulary, the entropy the student's distribution that the divergence compares.
    """

    def __init__(self, fd: fdiv.FDivergence, temperature: float, with_ce: bool,
                 vocab: str = "pad", entropy: bool = False):
        self.fd = fd
        self.inv_t = 1.0 / temperature
        self.with_ce = with_ce
        self.truncate = vocab == "truncate"
        self.entropy = entropy

    def _log_probs(self, s: torch.Tensor, t: torch.Tensor):
        tt = t.to(s.dtype)
        inv_t = self.inv_t
        if self.truncate:
            v = min(s.shape[-1], tt.shape[-1])
            sp, tp = s[:, :v], tt[:, :v]
        else:
            # Vocabularies of different sizes: pad the chunk, not the input.
            v = max(s.shape[-1], tt.shape[-1])
            sp = pad_last(s, v) if s.shape[-1] < v else s
            tp = pad_last(tt, v) if tt.shape[-1] < v else tt
        lq = torch.log_softmax(sp * inv_t if inv_t != 1.0 else sp, dim=-1)
        lp = torch.log_softmax(tp * inv_t if inv_t != 1.0 else tp, dim=-1)
        if not self.with_ce or (inv_t == 1.0 and sp.shape[-1] >= s.shape[-1]):
            ls = lq
        else:
            ls = torch.log_softmax(sp if sp.shape[-1] >= s.shape[-1] else s, dim=-1)
        return lq, lp, ls

    def __call__(self, s: torch.Tensor, t: torch.Tensor, labels: torch.Tensor):
        lq, lp, ls = self._log_probs(s, t)
        soft = cd.nan_rows(cd.evaluate(self.fd, lp, lq), lq, lp)
        if not self.with_ce:
            hard = torch.zeros_like(soft)
        else:
            hard = -ls.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        if not self.entropy:
            return soft, hard
        # Values only: no graph through the entropy (the autograd path calls this in
        # grad mode). The one exp the values-only path adds; the gradient path has q.
        lq = lq.detach()
        return soft, hard, cd.row_entropy(torch.exp(lq), lq)

    def values_and_grads(self, s, others, w_soft, w_hard, need_s, diff_idx, row_weight=None):
        """``(total, (soft, hard[, entropy]), [grad_s, *grads of others[diff_idx]])`` without
        autograd (the entropy from the student's probabilities that the gradient needs).

        The gradients are those of ``sum(row_weight * total)`` (the weights folded into each
        row's coefficient, no extra pass). With ``a = d terms / d log q`` from the registry
        (:meth:`FDivergence.terms_and_partial`) and ``S = sum_v a_v``, the derivative of
        ``D`` with respect to the student's logits is ``(a - q S) / T``
        (:func:`~._chunked_distill.soft_grad_`); the teacher's is ``(b - p B) / T`` with
        ``b = terms - a``. Where the registry clamped ``D`` at 0 no gradient flows, as
        through ``clamp_min``.
        """
        t, labels = others
        vs, vt = s.shape[-1], t.shape[-1]
        lq, lp, ls = self._log_probs(s, t)
        # On CPU a host read costs nothing, so look once per chunk for zero mass and skip
        # the masking when there is none; elsewhere (and under torch.compile) never sync.
        sync = _stored_grad.host_reads_free(lq)
        terms, a = self.fd.terms_and_partial(lp, lq, sync=sync)
        d = terms.sum(-1)
        zero = torch.zeros((), dtype=d.dtype, device=d.device)
        cs = torch.where(d >= 0.0, cd.row_coef(w_soft * self.inv_t, row_weight, d),
                         zero).unsqueeze(-1)
        soft = cd.nan_rows(d.clamp_min(0.0), lq, lp)
        grads: list[torch.Tensor | None] = []
        g_t = None
        if 0 in diff_idx:
            b = cd.teacher_partial(terms, a)
            g_t = _fit(cd.soft_grad_(b, torch.exp(lp), b.sum(-1, keepdim=True), cs), vt)
        del terms
        if self.with_ce:
            hard = -ls.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        else:
            hard = torch.zeros_like(soft)
        q = torch.exp(lq) if need_s or self.entropy else None
        values = (soft, hard, cd.row_entropy(q, lq)) if self.entropy else (soft, hard)
        if need_s:
            g = cd.soft_grad_(a, q, a.sum(-1, keepdim=True), cs)
            if self.with_ce and w_hard != 0.0:
                ch = cd.row_coef(w_hard, row_weight, d).unsqueeze(-1)
                q1 = q if ls is lq else torch.exp(ls)
                g = _fit(g, q1.shape[-1])
                cd.hard_grad_(g, q1, ch)
                cd.sub_onehot_(g, labels, ch)
            grads.append(_fit(g, vs))
        else:
            grads.append(None)
        if 0 in diff_idx:
            grads.append(g_t)
        total = soft * w_soft + hard * w_hard if w_hard != 0.0 else soft * w_soft
        return total, values, grads


def _fit(g: torch.Tensor, width: int) -> torch.Tensor:
    """``g`` cut (padding columns) or zero-padded (truncated columns) to ``width`` columns."""
    if g.shape[-1] > width:
        return g[..., :width]
    if g.shape[-1] < width:
        return torch.nn.functional.pad(g, (0, width - g.shape[-1]))
    return g


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    divergence: str | fdiv.FDivergence = "forward_kl",
    beta: float = 0.5,
    alpha: float | None = None,
    temperature: float = 1.0,
    labels: torch.Tensor | None = None,
    ignore_index: int = -100,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
    num_items_in_batch: int | torch.Tensor | None = None,
    hard_weight: float = 0.0,
    temperature_scaling: bool = False,
    return_components: bool = False,
    chunk_size: int | None = None,
    pad_vocab: bool = False,
    *,
    skew: float | None = None,
    vocab: str | None = None,
    chunk_bytes: int | None = None,
    validate: bool = True,
) -> torch.Tensor | DistillationOutput:
    r"""Token-level distillation loss :math:`D(\text{teacher} \,\|\, \text{student})` from logits.

    For each token, with :math:`p = \mathrm{softmax}(t/T)` (teacher) and
    :math:`q = \mathrm{softmax}(s/T)` (student) over the last axis, the value is the registry's
    :math:`D_f(p\|q) = \sum_v q_v f(p_v/q_v)` (``fdiv.evaluate``), computed in float32 (float64
    for float64 inputs) from log-probabilities:

    * ``"forward_kl"``: :math:`\mathrm{KL}(p\|q)`; ``"reverse_kl"``: :math:`\mathrm{KL}(q\|p)`;
    * ``"js"``: :math:`\beta\,\mathrm{KL}(p\|m) + (1-\beta)\,\mathrm{KL}(q\|m)`,
      :math:`m = \beta p + (1-\beta) q`, with TRL's (GKD) endpoints: ``beta=0`` is forward KL
      and ``beta=1`` reverse KL (the generalised JSD itself vanishes there);
    * ``"skew_forward_kl"``: :math:`\mathrm{KL}(p \| \lambda p + (1-\lambda) q)`;
      ``"skew_reverse_kl"``: :math:`\mathrm{KL}(q \| \lambda q + (1-\lambda) p)` (DistiLLM),
      with mixture weight :math:`\lambda` = ``skew`` in [0, 1] (default 0.1);
    * ``"alpha"``: Amari's alpha-divergence of order ``alpha`` (any real order; default 0.5);
    * ``"tv"``: :math:`\tfrac12 \sum |p - q|`; any other registry name, or an
      :class:`~divergences.fdiv.FDivergence`, as :math:`D_f(p\|q)`.

    ``alpha`` is always an order, never a mixture weight: ``alpha=`` with a skew divergence is
    the deprecated spelling of ``skew=`` (a ``DeprecationWarning``; removed in the next
    release), and ``alpha``/``skew`` given for a divergence that does not take them is a
    ``ValueError``.

    The per-token loss is :math:`(1-h)\,c\,D + h\,\mathrm{CE}` with :math:`h` = ``hard_weight``,
    :math:`c = T^2` when ``temperature_scaling`` else 1, and CE the cross-entropy of the
    student at temperature 1 on ``labels``. Tokens whose label is ``ignore_index``, or where
    ``mask == 0``, contribute 0 (value and gradient).

    Parameters
    ----------
    student_logits, teacher_logits:
        ``(..., V)`` tensors with the same batch shape, any float dtype (half precision is
        accumulated in float32). Different ``V`` is handled by ``vocab``. ``-inf`` logits
        are masked entries: exact values (``inf`` where the divergence is infinite) and
        finite gradients. A NaN logit in a counted token makes the loss NaN (never a finite
        value); in a dropped token (``ignore_index``, ``mask == 0``) it changes nothing,
        gradients included. Gradients flow to both (the teacher's only when it requires
        grad).
    vocab:
        Different vocabulary sizes ``V_s != V_t``: ``"error"`` (default) raises;
        ``"truncate"`` keeps the first ``min(V_s, V_t)`` entries of both and renormalises
        each distribution over them (a teacher whose LM head has padding rows, e.g. 152,064
        against 151,936: the student's dropped entries get a zero gradient; the
        cross-entropy still uses the student's whole vocabulary); ``"pad"`` (or
        ``pad_vocab=True``) pads the smaller one with ``-inf`` logits (zero mass; chunk by
        chunk, never a padded copy of the input). Padding is a ``ValueError`` where the
        larger side has mass on its extra entries and the divergence is then infinite for
        every token (forward KL with a larger teacher, reverse KL with a larger student): a
        host read checks this, once per call, outside ``torch.compile`` and with
        ``validate=True``.
    reduction:
        ``"none"`` (per token, batch shape, zeros where ignored), ``"sum"``, ``"mean"`` (over
        kept tokens; 0 with a zero gradient when none is kept) or ``"batchmean"`` (as TRL:
        the mean over kept tokens when ``labels`` or ``mask`` is given, else the sum divided
        by the size of the first batch axis).
    num_items_in_batch:
        If given (int or tensor), the loss is the sum divided by it (gradient accumulation
        over micro-batches); overrides ``reduction`` (which must not be ``"none"``).
    return_components:
        Return a :class:`DistillationOutput` ``(loss, distillation, cross_entropy,
        student_entropy)``: the last is the per-token entropy of the student's
        :math:`\mathrm{softmax}(s/T)` in nats (detached, never reduced, 0 on dropped
        tokens), formed in the same chunk pass from the probabilities it already holds: one
        product and sum per chunk (without a gradient, an ``exp`` more): a few percent of
        the forward time (on the CPU at (512, 32000) float32, 2-row chunks, about 5% with a
        gradient); nothing unless asked.
    chunk_size:
        Tokens per chunk; by default chosen from ``chunk_bytes``. Peak memory above the inputs
        is the gradient (N x V in the logits' dtype, float32 for float16) plus about 8
        float32 temporaries of chunk x V (members without closed-form partials in the
        registry, such as ``alpha``, go through autograd per chunk: about 26).
    chunk_bytes:
        Memory budget in bytes for one chunk's temporaries (keyword-only; not with
        ``chunk_size``): ``chunk = budget / (8 * 4 * V)`` tokens (26 temporaries for the
        autograd members, 8-byte entries for float64), at least 1. Default by device: on CPU
        tensors ``N / 256`` tokens kept between ``2**16 / V`` and ``2**20 / V`` (cache-sized
        blocks run fastest there; 1.03 x N*V*4 bytes above the inputs in all, measured as
        peak resident memory at (2048, 32000) in float32, "js"; 1.12 with autograd); on CUDA
        1/8 of the free memory, between 64 MiB and 1 GiB (every operation is a kernel launch:
        at (2048, 128256) a 1 GiB budget runs 8 chunks of 261 tokens where the CPU rule runs
        256 of 8); under ``torch.compile`` and on other accelerators 512 MiB.
    validate:
        Keyword-only. ``False`` skips the checks that read values back to the host (the
        padding check above): with it no call synchronises on an accelerator.

    The gradient is formed during the forward pass in closed form:
    :math:`\partial D / \partial s_v = (a_v - q_v \sum_u a_u) / T` with
    :math:`a = \partial\,\text{terms} / \partial \log q` from the registry, and stored
    in the logits' dtype (float32 for float16 logits, so that a loss scale applied in the
    backward pass, as ``GradScaler``'s, cannot come too late to keep small entries from
    underflowing: 4 bytes per entry instead of 2, and the float16 copy handed on by the
    backward pass beside it). The backward pass scales it in place and hands it on. A
    second backward pass through the same graph (``retain_graph=True``, ``gradcheck``) forms
    it again, and double backward (``create_graph=True``, e.g. a gradient penalty)
    recomputes the loss with plain autograd, with its memory cost: both need the logits still
    alive (the loss does not keep them alive itself), otherwise they raise a
    ``RuntimeError``.

    Returns a float32 tensor (float64 for float64 inputs): a scalar, or the batch shape for
    ``reduction="none"``. No host synchronisation on accelerators (on CPU tensors one free
    read per chunk checks for ``-inf`` logits; with ``vocab="pad"`` and different
    vocabulary sizes one read per call checks the padding); traces under ``torch.compile``.

    >>> import torch
    >>> from divergences.losses import distillation_loss
    >>> from divergences import kl
    >>> g = torch.Generator().manual_seed(0)
    >>> s, t = torch.randn(2, 3, 5, generator=g), torch.randn(2, 3, 5, generator=g)
    >>> loss = distillation_loss(s, t)
    >>> torch.allclose(loss, kl(t, s, input="logits").mean())
    True
    >>> labels = torch.tensor([[0, 1, -100], [2, -100, -100]])
    >>> per_token = distillation_loss(s, t, "js", beta=0.5, labels=labels, reduction="none")
    >>> per_token[0, 2].item(), per_token.shape
    (0.0, torch.Size([2, 3]))
    """
    s = check_logits(student_logits, "student_logits")
    t = check_logits(teacher_logits, "teacher_logits")
    temp, h = check_options(temperature, hard_weight, reduction, chunk_size, chunk_bytes)
    fd = resolve_divergence(divergence, beta, alpha, skew)
    mode = resolve_vocab(vocab, pad_vocab)
    if s.shape[:-1] != t.shape[:-1]:
        raise ValueError(
            "student_logits and teacher_logits must have the same batch shape; got "
            f"{tuple(s.shape)} and {tuple(t.shape)}"
        )
    if s.device != t.device:
        raise TypeError(f"student_logits is on {s.device} but teacher_logits on {t.device}")
    vs, vt = s.shape[-1], t.shape[-1]
    names = ("student_logits", "teacher_logits")
    check_vocab(mode, vs, vt, names)
    if mode == "pad" and validate:
        check_padding(fd, vs, vt, lambda: bool((s[..., vt:] > -math.inf).any()),
                      lambda: bool((t[..., vs:] > -math.inf).any()), names)
    if h > 0.0 and labels is None:
        raise ValueError("hard_weight > 0 needs labels for the cross-entropy term")
    batch = s.shape[:-1]
    v = max(vs, vt)
    keep, flat_labels = token_mask(batch, s.device, labels, mask, ignore_index)
    with_ce = flat_labels is not None and (h > 0.0 or return_components)
    n = keep.shape[0]
    safe_labels = (
        torch.where(keep, flat_labels, torch.zeros_like(flat_labels))
        if flat_labels is not None else torch.zeros(n, dtype=torch.long, device=s.device)
    )
    scale = temp * temp if temperature_scaling else 1.0
    masked = labels is not None or mask is not None
    out_dtype = torch.float64 if s.dtype == torch.float64 else torch.float32
    chunk = cd.pick_chunk(n, v, s.device, chunk_size, chunk_bytes, temps=row_temps(fd),
                          itemsize=out_dtype.itemsize)
    weights = token_weights(keep, batch, reduction, num_items_in_batch, masked, out_dtype)
    out, soft, hard, *stats = cd.chunked_loss(
        _DenseRows(fd, temp, with_ce, mode, entropy=return_components), s, [t, safe_labels],
        [True, False], keep, w_soft=(1.0 - h) * scale, w_hard=h, chunk=chunk, weights=weights,
        name="distillation_loss", stats=1 if return_components else 0,
    )
    loss = out if weights is not None else out.reshape(batch)
    if not return_components:
        return loss
    return DistillationOutput(
        loss, reduce_values(soft * scale, weights, batch), reduce_values(hard, weights, batch),
        stats[0].reshape(batch),
    )
