"""Array plumbing shared by every layer: conversion, dtype policy, validation, reduction.

Policy (stated once, used everywhere):

* NumPy arrays, Python lists and scalars are converted to torch tensors for the computation
  and the result is converted back to NumPy. Torch tensors stay torch tensors, on their
  device, inside the autograd graph.
* Mixing a NumPy array with a torch tensor is a ``TypeError``: silently moving data between
  frameworks hides bugs (which device? which graph?). Lists and Python scalars go with either.
* Computation happens in at least float32: float16 and bfloat16 are upcast to float32,
  float64 stays float64, integers and booleans become float64 (NumPy's default) or torch's
  default dtype for integer tensors.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:
    import torch
else:

    class _Lazy(ModuleType):
        """Stands in for torch until an attribute is read, then imports it.

        NumPy work (the estimators, the report) validates and converts through this module
        without a tensor in sight: importing torch (1.5 s) only when something touches it
        keeps those paths torch-free.
        """

        def __getattr__(self, attr: str) -> Any:
            module = importlib.import_module(self.__name__)
            globals()["torch"] = module  # later reads skip the proxy
            return getattr(module, attr)

    torch = sys.modules.get("torch") or _Lazy("torch")

ArrayLike = Union[np.ndarray, "torch.Tensor", Sequence[Any], float, int]

INPUTS = ("probs", "logits", "log_probs")
REDUCTIONS = ("none", "sum", "mean")


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise a ``ValueError`` listing them."""
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}; got {value!r}")
    return value


def check_range(
    value: Any,
    name: str,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``float(value)`` if it is a real number in the stated interval."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    v = float(value)
    below = v <= low if low_open else v < low
    above = v >= high if high_open else v > high
    if math.isnan(v) or below or above:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in {lo}{low:g}, {high:g}{hi}; got {v!r}")
    return v


def log_base(base: float | None, what: str | None = None) -> float | None:
    """The divisor that converts nats to ``base`` units, or ``None`` for nats.

    ``what`` names a measure that is not logarithmic (total variation, chi-square, ...): for
    it any ``base`` other than ``None`` is a ``ValueError``, never silently ignored.
    """
    if base is None:
        return None
    if what is not None:
        raise ValueError(
            f"base={base!r} does not apply: {what} is not a logarithmic quantity (base converts "
            "nats to other units only for KL, JS, Renyi, entropy and the like); omit base"
        )
    b = check_range(base, "base", 0.0, low_open=True)
    if b == 1.0:
        raise ValueError("base must be positive and different from 1; got 1")
    return math.log(b)


class Wrapper:
    """Converts results back to the kind of array the user passed in."""

    def __init__(self, kind: str, np_dtype: np.dtype | None = None) -> None:
        self.kind = kind
        self.np_dtype = np_dtype

    def __call__(self, t: torch.Tensor) -> Any:
        if self.kind == "torch":
            return t
        out = t.detach().cpu().numpy()
        if self.np_dtype is not None and out.dtype != self.np_dtype:
            out = out.astype(self.np_dtype)
        return out[()] if out.ndim == 0 else out


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype arithmetic happens in: float16/bfloat16 are upcast to float32."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _float_dtype_for(t: torch.Tensor) -> torch.dtype:
    if t.dtype in (torch.float16, torch.bfloat16):
        return torch.float32
    if t.is_floating_point():
        return t.dtype
    return torch.get_default_dtype()


def as_tensors(
    *arrays: ArrayLike, names: Sequence[str], keep_half: bool = False
) -> tuple[list[torch.Tensor], Wrapper]:
    """Convert ``arrays`` to floating torch tensors of one dtype on one device.

    Returns the tensors and a :class:`Wrapper` that converts a result back to the caller's
    kind (NumPy or torch). Raises ``TypeError`` for mixed NumPy/torch input, non-numeric
    input or tensors on different devices. With ``keep_half=True``, float16/bfloat16 tensors
    keep their dtype (the caller upcasts block by block, see :func:`compute_dtype`).
    """
    torch_args = [(n, a) for n, a in zip(names, arrays) if isinstance(a, torch.Tensor)]
    numpy_args = [(n, a) for n, a in zip(names, arrays) if isinstance(a, np.ndarray)]
    if torch_args and numpy_args:
        raise TypeError(
            f"{numpy_args[0][0]} is a NumPy array but {torch_args[0][0]} is a torch tensor; "
            "pass both as NumPy arrays or both as torch tensors"
        )
    if torch_args:
        devices = {a.device for _, a in torch_args}
        if len(devices) > 1:
            raise TypeError(
                "tensors must be on one device; got "
                + ", ".join(f"{n} on {a.device}" for n, a in torch_args)
            )
        device = torch_args[0][1].device
        tensors = []
        for n, a in zip(names, arrays):
            if isinstance(a, torch.Tensor):
                tensors.append(a)
            else:
                tensors.append(torch.as_tensor(_to_numpy(a, n), device=device))
        if keep_half:
            dtype = _promote([t.dtype if t.is_floating_point() else _float_dtype_for(t)
                              for t in tensors])
        else:
            dtype = _promote([_float_dtype_for(t) for t in tensors])
        return [t.to(dtype) for t in tensors], Wrapper("torch")

    nps = [_to_numpy(a, n) for n, a in zip(names, arrays)]
    tensors = [torch.from_numpy(np.asarray(a, order="C")) for a in nps]
    dtypes = []
    for t in tensors:
        # NumPy integers and booleans compute in float64, as NumPy itself would.
        dtypes.append(_float_dtype_for(t) if t.is_floating_point() else torch.float64)
    dtype = _promote(dtypes)
    np_dtype = torch.empty((), dtype=dtype).numpy().dtype
    return [t.to(dtype) for t in tensors], Wrapper("numpy", np_dtype)


def source_dtype(a: Any) -> torch.dtype:
    """The floating dtype an argument arrived in, before :func:`as_tensors` promoted it.

    A bfloat16 tensor next to a float32 one is computed in float32 but carries bfloat16's
    rounding: checks of its normalisation use this dtype. Integers, booleans and lists count
    as float64 (NumPy) or torch's default dtype (integer tensors).
    """
    if isinstance(a, torch.Tensor):
        return a.dtype if a.is_floating_point() else torch.get_default_dtype()
    if isinstance(a, np.ndarray) and a.dtype in (np.float16, np.float32):
        return torch.float16 if a.dtype == np.float16 else torch.float32
    return torch.float64


def _promote(dtypes: Sequence[torch.dtype]) -> torch.dtype:
    out = dtypes[0]
    for d in dtypes[1:]:
        out = torch.promote_types(out, d)
    return out


def _to_numpy(a: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be an array of numbers: {exc}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise TypeError(f"{name} must be an array of numbers; got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real; got dtype {arr.dtype}")
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    return arr


def move_support_last(t: torch.Tensor, dim: int, name: str) -> torch.Tensor:
    """Move axis ``dim`` (the support) to the end; a 0-d input is an error."""
    if t.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the support); got a scalar")
    if not -t.ndim <= dim < t.ndim:
        raise ValueError(f"dim={dim} is out of range for {name} with shape {tuple(t.shape)}")
    return t.movedim(dim, -1) if dim not in (-1, t.ndim - 1) else t


def broadcast_pair(
    a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Broadcast two distributions over their batch axes; the supports must match exactly."""
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same support size along dim; got shapes "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )
    try:
        shape = torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(
            f"{names[0]} and {names[1]} have batch shapes that do not broadcast: "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        ) from None
    return a.expand(shape), b.expand(shape)


def check_no_nan(t: torch.Tensor, name: str) -> None:
    if torch.isnan(t).any():
        raise ValueError(f"{name} contains NaN")


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(x, 0))`` with gradient 0 (not inf) where ``x <= 0``; NaN stays NaN.

    Distances built as the square root of a divergence are not differentiable where it is 0;
    the zero subgradient keeps optimisation finite there.
    """
    pos = x > 0
    # NaN stays NaN (it is not <= 0)
    zero = torch.where(torch.isnan(x), x, torch.zeros_like(x))
    return torch.where(pos, torch.where(pos, x, torch.ones_like(x)).sqrt(), zero)


def as_samples(t: torch.Tensor, name: str) -> torch.Tensor:
    """``(n, d)`` view of a sample of shape ``(n,)`` or ``(n, d)``, checked finite."""
    if t.ndim == 1:
        t = t[:, None]
    elif t.ndim != 2:
        raise ValueError(f"{name} must have shape (n,) or (n, d); got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return t


def reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply ``reduction`` (``"none"``, ``"sum"`` or ``"mean"``) over all batch entries."""
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    return values.mean()


def finish(
    values: torch.Tensor,
    wrap: Callable[[torch.Tensor], Any],
    *,
    reduction: str,
    base: float | None,
) -> Any:
    """Reduce, convert nats to ``base`` units and hand back in the caller's array kind."""
    out = reduce(values, reduction)
    lb = log_base(base)
    if lb is not None:
        out = out / lb
    return wrap(out)
