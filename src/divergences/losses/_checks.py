"""Argument checks shared by the objectives."""

from __future__ import annotations

import torch


def check_float(x: object, name: str) -> torch.Tensor:
    """``x`` if it is a floating torch tensor without NaN; otherwise a named error."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor; got dtype {x.dtype}")
    if bool(torch.isnan(x).any()):
        raise ValueError(f"{name} contains NaN")
    return x
