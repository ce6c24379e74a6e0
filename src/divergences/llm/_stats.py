"""Per-token statistics of a language model's predictions: log-probability, entropy, rank.

The per-token values come from the registry through :mod:`divergences.discrete`
(:func:`~divergences.discrete.entropy`, :func:`~divergences.discrete.cross_entropy`,
:func:`~divergences.discrete.kl` on log-probabilities); nothing here re-types a formula.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from .. import discrete
from .._arrays import ArrayLike, Wrapper, as_tensors, compute_dtype
from ..losses._chunked_distill import auto_chunk

__all__ = ["CausalLMScorer", "Scorer", "TokenStatistics", "token_statistics"]

#: Value written at masked positions: 0 for the float fields, -1 for ``rank``.
MASKED_VALUE = 0.0
MASKED_RANK = -1


@dataclass
class TokenStatistics:
    """Per-token statistics, each of shape ``input_ids.shape`` (after the shift, if any).

    ``logprob``: ``log p(x_t)``; ``entropy``: ``H(p_t)``; ``rank``: how many vocabulary
    entries score strictly higher than ``x_t`` (0 for the argmax); ``cross_entropy``:
    ``H(p_t, r_t) = -sum_v p_t(v) log r_t(v)``; ``kl``: ``KL(p_t || r_t)`` (``p`` the model,
    ``r`` the reference; ``None`` without reference logits); ``mask``: the boolean mask used.
    Masked positions hold 0 (float fields) and -1 (``rank``). All in nats.
    """

    logprob: Any
    entropy: Any
    rank: Any
    mask: Any
    cross_entropy: Any = None
    kl: Any = None

    def mean(self, field: str = "logprob") -> Any:
        """Masked mean of ``field`` over the token axis (one value per sequence)."""
        if field not in ("logprob", "entropy", "cross_entropy", "kl"):
            raise ValueError("field must be one of 'logprob', 'entropy', 'cross_entropy', "
                             f"'kl'; got {field!r}")
        values = getattr(self, field)
        if values is None:
            raise ValueError(f"{field} was not computed: pass reference_logits")
        m = self.mask
        if isinstance(values, np.ndarray):
            n = np.maximum(m.sum(-1), 1)
            return (values * m).sum(-1) / n
        n = m.sum(-1).clamp_min(1)
        return (values * m).sum(-1) / n


@runtime_checkable
class Scorer(Protocol):
    """Anything that maps token ids ``[B, T]`` (``torch.long``) to logits ``[B, T, V]``.

    ``logits[:, t]`` is the model's prediction for position ``t + 1`` (the raw causal-LM
    convention; pass ``shift=True`` to :func:`token_statistics`).
    """

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor: ...


class CausalLMScorer:
    """A :class:`Scorer` over a ``transformers`` causal language model (or any module whose
    output has a ``.logits`` attribute, or is a logits tensor).

    ``transformers`` is imported only by :meth:`from_pretrained` (the optional ``[llm]`` extra).
    Calls run under ``torch.no_grad()`` unless ``grad=True``.

    >>> import torch
    >>> emb = torch.nn.Embedding(5, 5)
    >>> scorer = CausalLMScorer(emb)
    >>> scorer(torch.tensor([[0, 1, 2]])).shape
    torch.Size([1, 3, 5])
    """

    def __init__(self, model: Callable[..., Any], *, grad: bool = False) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable; got {type(model).__name__}")
        self.model = model
        self.grad = grad

    @classmethod
    def from_pretrained(cls, name_or_path: str, **kwargs: Any) -> CausalLMScorer:
        """Load with ``transformers.AutoModelForCausalLM.from_pretrained`` (lazy import)."""
        try:
            import transformers
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("CausalLMScorer.from_pretrained needs transformers: "
                              "pip install 'divergences[llm]'") from exc
        model = transformers.AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
        model.eval()
        return cls(model)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
                 ) -> torch.Tensor:
        kwargs = {} if attention_mask is None else {"attention_mask": attention_mask}
        with torch.set_grad_enabled(self.grad):
            if kwargs:
                out = self.model(input_ids, **kwargs)
            else:
                out = self.model(input_ids)
        logits = getattr(out, "logits", out)
        if not isinstance(logits, torch.Tensor):
            raise TypeError("the model must return a tensor or an object with .logits; got "
                            f"{type(out).__name__}")
        return logits


def _ids_tensor(ids: Any, kind: str, device: torch.device) -> torch.Tensor:
    if isinstance(ids, torch.Tensor):
        if kind == "numpy":
            raise TypeError("input_ids is a torch tensor but logits is a NumPy array; "
                            "pass both as NumPy arrays or both as torch tensors")
        t = ids
    else:
        if isinstance(ids, np.ndarray) and kind == "torch":
            raise TypeError("input_ids is a NumPy array but logits is a torch tensor; "
                            "pass both as NumPy arrays or both as torch tensors")
        t = torch.as_tensor(np.asarray(ids))
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"input_ids must hold integers; got dtype {t.dtype}")
    return t.to(device=device, dtype=torch.long)


def _mask_tensor(mask: Any, shape: torch.Size, device: torch.device) -> torch.Tensor:
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    m = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
    if tuple(m.shape) != tuple(shape):
        raise ValueError(f"mask must have the shape of input_ids {tuple(shape)}; "
                         f"got {tuple(m.shape)}")
    if m.is_floating_point():
        if not bool(((m == 0) | (m == 1)).all()):
            raise ValueError("mask must hold booleans or 0/1 values")
    return m.to(device=device).bool()


def token_statistics(
    logits: ArrayLike,
    input_ids: ArrayLike,
    mask: ArrayLike | None = None,
    reference_logits: ArrayLike | None = None,
    shift: bool = False,
    chunk_size: int | None = None,
) -> TokenStatistics:
    r"""Per-token log-probability, entropy and rank of ``input_ids`` under ``logits``.

    With :math:`p_t = \mathrm{softmax}(\text{logits}[..., t, :])` and :math:`x_t` =
    ``input_ids[..., t]``:

    * ``logprob[t]`` :math:`= \log p_t(x_t)`;
    * ``entropy[t]`` :math:`= H(p_t) = -\sum_v p_t(v)\log p_t(v)`;
    * ``rank[t]`` :math:`= \#\{v : \text{logits}_t(v) > \text{logits}_t(x_t)\}` (0 for the
      argmax; ties count as not greater);
    * given ``reference_logits`` (:math:`r_t = \mathrm{softmax}`), ``cross_entropy[t]``
      :math:`= H(p_t, r_t) = -\sum_v p_t(v)\log r_t(v)` and ``kl[t]``
      :math:`= \mathrm{KL}(p_t \| r_t)`: the expectation is under the model (``logits``), so
      ``cross_entropy = entropy + kl``. For "the log-loss the reference model would pay on
      text from this model", put the generator's logits first.

    Shapes: ``logits`` ``[..., T, V]``, ``input_ids`` and ``mask`` ``[..., T]``. ``shift=True``
    aligns raw causal-LM outputs (``logits[..., t, :]`` predicts ``input_ids[..., t + 1]``):
    the last logit and the first id (and mask entry) are dropped, so the fields have length
    ``T - 1``. Masked positions (``mask`` false) hold 0 in the float fields and -1 in ``rank``;
    their ids need not be valid (e.g. ``-100`` padding). Unmasked ids must lie in ``[0, V)``.

    The vocabulary-sized work runs ``chunk_size`` tokens at a time (default: the distillation
    losses' rule, :func:`divergences.losses._chunked_distill.auto_chunk`), so without gradients
    one chunk of ``V``-sized temporaries exists at a time. float16/bfloat16 logits are upcast
    per chunk; results are float32 (float64 for float64 logits). Nats. NumPy in gives NumPy
    out; torch in gives torch out, differentiable with respect to the logits.

    >>> import torch
    >>> logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    >>> s = token_statistics(logits, torch.tensor([[0, 2]]))
    >>> s.rank
    tensor([[0, 0]])
    >>> torch.allclose(s.entropy[0, 1], torch.log(torch.tensor(3.0)))
    True
    >>> s.logprob[0, 1].item() == -s.entropy[0, 1].item()   # uniform: -log p = H
    True
    """
    if not isinstance(shift, bool):
        raise TypeError(f"shift must be a bool; got {type(shift).__name__}")
    names = ("logits",) if reference_logits is None else ("logits", "reference_logits")
    arrays = (logits,) if reference_logits is None else (logits, reference_logits)
    tensors, wrap = as_tensors(*arrays, names=names, keep_half=True)
    lg = tensors[0]
    ref = tensors[1] if reference_logits is not None else None
    if lg.ndim < 2:
        raise ValueError(f"logits must have shape [..., T, V]; got {tuple(lg.shape)}")
    if ref is not None and ref.shape != lg.shape:
        raise ValueError(f"reference_logits must have the shape of logits {tuple(lg.shape)}; "
                         f"got {tuple(ref.shape)}")
    ids = _ids_tensor(input_ids, wrap.kind, lg.device)
    if tuple(ids.shape) != tuple(lg.shape[:-1]):
        raise ValueError(f"input_ids must have shape {tuple(lg.shape[:-1])} (logits without "
                         f"the vocabulary axis); got {tuple(ids.shape)}")
    m = _mask_tensor(mask, ids.shape, lg.device)
    if shift:
        if lg.shape[-2] < 2:
            raise ValueError("shift=True needs at least 2 positions along T")
        lg = lg[..., :-1, :]
        ref = ref[..., :-1, :] if ref is not None else None
        ids, m = ids[..., 1:], m[..., 1:]
    V = lg.shape[-1]
    bad = m & ((ids < 0) | (ids >= V))
    if bool(bad.any()):
        raise ValueError(f"input_ids must lie in [0, {V}) at unmasked positions; got "
                         f"{int(ids[bad][0])}")
    discrete.check_distribution(lg, "logits", "logits")
    if ref is not None:
        discrete.check_distribution(ref, "logits", "reference_logits")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(
            chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")

    batch = ids.shape
    n = int(ids.numel())
    flat = lg.reshape(n, V)
    flat_ref = ref.reshape(n, V) if ref is not None else None
    safe_ids = torch.where(m, ids, torch.zeros_like(ids)).reshape(n)
    chunk = chunk_size or auto_chunk(n, V)
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ("lp", "h", "rk", "ce", "kl")}
    for start in range(0, n, chunk):
        rows = flat[start:start + chunk]
        tgt = safe_ids[start:start + chunk, None]
        lp = discrete.log_probs(rows, "logits")
        out["lp"].append(lp.gather(-1, tgt).squeeze(-1))
        out["h"].append(discrete.entropy(lp, input="log_probs", validate=False))
        out["rk"].append((rows > rows.gather(-1, tgt)).sum(-1))
        if flat_ref is not None:
            lr = discrete.log_probs(flat_ref[start:start + chunk], "logits")
            out["ce"].append(discrete.cross_entropy(lp, lr, input="log_probs", validate=False))
            out["kl"].append(discrete.kl(lp, lr, input="log_probs", validate=False))
    dtype = compute_dtype(lg.dtype)

    def assemble(key: str, fill: float, dt: torch.dtype) -> torch.Tensor:
        parts = out[key]
        v = torch.cat(parts) if parts else torch.zeros(0, dtype=dt, device=lg.device)
        v = v.reshape(batch)
        return torch.where(m, v, torch.full_like(v, fill))

    back = wrap
    ints = Wrapper(wrap.kind)  # no float cast for ranks and the mask
    fields = {
        "logprob": back(assemble("lp", MASKED_VALUE, dtype)),
        "entropy": back(assemble("h", MASKED_VALUE, dtype)),
        "rank": ints(assemble("rk", MASKED_RANK, torch.long)),
        "mask": ints(m),
    }
    if ref is not None:
        fields["cross_entropy"] = back(assemble("ce", MASKED_VALUE, dtype))
        fields["kl"] = back(assemble("kl", MASKED_VALUE, dtype))
    return TokenStatistics(**fields)
