"""Float64 references for the distillation losses, built from the registry and torch ops.

Each reference materialises the full logits and log-probabilities (what the losses avoid) and
evaluates the registry's ``fdiv.evaluate``: the losses under test are checked against the
library's one formula source, not against a re-typed formula.
"""

from __future__ import annotations

import torch

from divergences import fdiv


def keep_mask(batch, labels=None, mask=None, ignore_index=-100):
    keep = torch.ones(batch, dtype=torch.bool)
    if labels is not None:
        keep &= labels != ignore_index
    if mask is not None:
        keep &= mask != 0
    return keep


def per_token(s, t, fd, temperature=1.0, labels=None, ignore_index=-100, mask=None,
              hard_weight=0.0, scaling=False):
    """(total, distillation, ce) per token in float64, zero where ignored."""
    s64, t64 = s.double(), t.double()
    lq = torch.log_softmax(s64 / temperature, -1)
    lp = torch.log_softmax(t64 / temperature, -1)
    d = fdiv.evaluate(fd, lp, lq)
    keep = keep_mask(s.shape[:-1], labels, mask, ignore_index)
    if labels is not None:
        safe = torch.where(keep, labels, torch.zeros_like(labels))
        ce = -torch.log_softmax(s64, -1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    else:
        ce = torch.zeros_like(d)
    c = temperature**2 if scaling else 1.0
    total = (1.0 - hard_weight) * c * d + hard_weight * ce
    z = torch.zeros((), dtype=torch.float64)
    return torch.where(keep, total, z), torch.where(keep, c * d, z), torch.where(keep, ce, z)


def reduce(values, keep, reduction, masked, num_items=None):
    if num_items is not None:
        return values.sum() / num_items
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    if reduction == "batchmean" and not masked:
        return values.sum() / values.shape[0]
    return values.sum() / max(int(keep.sum()), 1)


def rel_err(a, b):
    """Normwise relative error ||a - b|| / ||b|| (absolute when b is zero)."""
    a, b = a.detach().double(), b.detach().double()
    nb = b.norm()
    return float((a - b).norm() / nb) if nb > 0 else float((a - b).norm())
