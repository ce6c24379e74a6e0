"""Attention-entropy probes: per-layer, per-head entropy of attention maps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .. import discrete

__all__ = ["AttentionEntropyProbe", "attention_entropy"]


def attention_entropy(
    attentions: torch.Tensor | Sequence[torch.Tensor],
    mask: torch.Tensor | None = None,
    *,
    per_sequence: bool = False,
) -> torch.Tensor:
    r"""Mean entropy of attention rows, per layer and head.

    ``attentions``: one tensor ``[B, H, Tq, Tk]`` (one layer) or a sequence of them (one per
    layer, e.g. ``outputs.attentions`` of a ``transformers`` model run with
    ``output_attentions=True``). Each query row :math:`a_{b,h,i,\cdot}` is a distribution over
    keys; its entropy :math:`H = -\sum_j a_{ij}\log a_{ij}` (nats, ``0 log 0 = 0``, so causal
    zeros are fine) comes from :func:`divergences.entropy`. Rows are averaged over the valid
    query positions (``mask`` ``[B, Tq]``, true = valid; default all) and, unless
    ``per_sequence=True``, over the batch (each sequence weighted by its valid queries).

    Returns float32 (or float64) of shape ``[L, H]`` (``[L, B, H]`` with ``per_sequence``);
    a single tensor input gives ``L = 1``. A uniform row over ``k`` keys has entropy
    ``log k``; a one-hot row has 0.

    >>> import torch
    >>> uniform = torch.full((1, 2, 3, 4), 0.25)
    >>> attention_entropy(uniform)            # log 4 = 1.3863 for both heads
    tensor([[1.3863, 1.3863]])
    """
    layers = [attentions] if isinstance(attentions, torch.Tensor) else list(attentions)
    if not layers:
        raise ValueError("attentions is empty")
    out = []
    for i, a in enumerate(layers):
        if not isinstance(a, torch.Tensor) or a.ndim != 4:
            raise ValueError(f"attentions[{i}] must be a tensor [B, H, Tq, Tk]; got "
                             f"{getattr(a, 'shape', type(a).__name__)}")
        h = discrete.entropy(a.detach(), normalize=False)          # [B, H, Tq]
        B, _, Tq = h.shape
        m = torch.ones(B, Tq, dtype=torch.bool, device=h.device) if mask is None else mask
        if tuple(m.shape) != (B, Tq):
            raise ValueError(f"mask must have shape {(B, Tq)}; got {tuple(m.shape)}")
        w = m.to(h.dtype)[:, None, :]                                # [B, 1, Tq]
        if per_sequence:
            out.append((h * w).sum(-1) / w.sum(-1).clamp_min(1))
        else:
            out.append((h * w).sum((0, 2)) / w.sum((0, 2)).clamp_min(1))
    return torch.stack(out)


def _default_extract(output: Any) -> torch.Tensor:
    if isinstance(output, (tuple, list)) and len(output) > 1 and isinstance(
            output[1], torch.Tensor) and output[1].ndim == 4:
        return output[1]
    raise ValueError("could not find attention weights [B, H, Tq, Tk] at output[1]; call the "
                     "attention with weights returned per head (e.g. nn.MultiheadAttention with "
                     "need_weights=True, average_attn_weights=False; transformers models with "
                     "attn_implementation='eager', output_attentions=True) or pass extract=")


class AttentionEntropyProbe:
    """Forward hooks that record attention maps and report their entropy per layer and head.

    ``modules``: the attention modules, in layer order. ``extract(output)`` picks the
    ``[B, H, Tq, Tk]`` weights from a module's output (default: ``output[1]``, the convention
    of ``nn.MultiheadAttention`` and ``transformers`` attention layers). Use as a context
    manager; hooks are removed on exit. Each forward pass inside the block is recorded;
    :meth:`entropy` reports the last one (or the call ``index``).

    >>> import torch
    >>> mha = torch.nn.MultiheadAttention(4, 2, batch_first=True)
    >>> x = torch.randn(1, 3, 4)
    >>> with AttentionEntropyProbe([mha]) as probe:
    ...     _ = mha(x, x, x, need_weights=True, average_attn_weights=False)
    >>> probe.entropy().shape                 # [layers, heads]
    torch.Size([1, 2])
    """

    def __init__(self, modules: Sequence[torch.nn.Module],
                 extract: Callable[[Any], torch.Tensor] | None = None) -> None:
        self.modules = list(modules)
        if not self.modules or not all(isinstance(m, torch.nn.Module) for m in self.modules):
            raise TypeError("modules must be a non-empty sequence of torch.nn.Module")
        self.extract = extract or _default_extract
        self.records: list[list[torch.Tensor]] = [[] for _ in self.modules]
        self._handles: list[Any] = []

    def __enter__(self) -> AttentionEntropyProbe:
        for i, mod in enumerate(self.modules):
            def hook(module: Any, args: Any, output: Any, i: int = i) -> None:
                self.records[i].append(self.extract(output).detach())
            self._handles.append(mod.register_forward_hook(hook))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def entropy(self, mask: torch.Tensor | None = None, *, index: int = -1,
                per_sequence: bool = False) -> torch.Tensor:
        """:func:`attention_entropy` of the recorded maps of forward pass ``index``."""
        if any(not r for r in self.records):
            raise ValueError("no attention maps recorded: run the model inside the probe")
        return attention_entropy([r[index] for r in self.records], mask,
                                 per_sequence=per_sequence)
