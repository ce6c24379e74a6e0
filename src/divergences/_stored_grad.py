r"""Gradients formed during the forward pass: the one autograd Function behind every such path.

Several computations form the gradient of their output with respect to their inputs *during
the forward pass*, a block of rows at a time while the block's temporaries are in cache, and
keep only that gradient: the row-blocked divergences (:mod:`divergences._chunked`), the
chunked, sparse and fused-linear distillation losses (:mod:`divergences.losses`) and the
vocabulary-parallel losses (:mod:`divergences.distributed`). Each describes its computation
as a :class:`Kernel` and runs it through :func:`apply`, so all follow the same rules:

dtype
    Values are computed in float32 (float64 for float64 inputs) and returned in that dtype.
    A stored gradient has its input's dtype (:func:`store_dtype`), except float16, stored in
    float32: the reduction's weights (``1/N``) are folded in during the forward pass while a
    loss scale (``torch.amp.GradScaler``) arrives only in the backward pass, so in float16
    the small entries would underflow before the scale could save them. bfloat16 has
    float32's exponent range and keeps its dtype (and memory).
masking
    Rows that do not count (ignored tokens) are removed by selection (``torch.where``), never
    by multiplication with a 0/1 mask, so a NaN or inf in such a row cannot leak into a sum
    over rows (NaN x 0 is NaN). :func:`select_rows` is the helper.
backward
    The first backward pass scales the stored gradient by the upstream gradient in place
    (in float32 for half dtypes, one rounding), hands it on and drops its own reference: no
    second buffer of the input's size, and ``AccumulateGrad`` can adopt it as ``.grad``. A
    later backward pass through the same graph (``retain_graph=True``, ``gradcheck``) forms
    the gradient again with the same kernel, from the inputs.
double backward
    When the backward pass is asked for a graph (``create_graph=True``: a gradient penalty,
    ``gradgradcheck``), the output is recomputed from the inputs with plain autograd
    (:attr:`Kernel.reference`) and differentiated with ``create_graph=True``: exact second
    derivatives, at the memory cost of plain autograd for that one call. A kernel without a
    reference raises a ``RuntimeError`` instead: never a gradient without its graph.
inputs
    With ``hold_inputs=True`` the inputs are saved for the backward pass; otherwise only weak
    references are kept, so that a loss does not keep its N x V logits alive until the
    backward pass on its own account (they are usually freed after the forward pass). The
    second backward and the double backward then need the inputs to be alive still (held by
    the caller, as ``gradcheck`` and a gradient penalty do), and unmodified; otherwise they
    raise a ``RuntimeError`` that says so.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["Kernel", "apply", "compute_dtype", "host_reads_free", "new_grad", "select_rows",
           "store_dtype"]

Grads = Sequence["torch.Tensor | None"]
ForwardFn = Callable[..., tuple[torch.Tensor, tuple[torch.Tensor, ...], Grads]]


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """Accumulation and output dtype: float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def store_dtype(x: torch.Tensor) -> torch.dtype:
    """dtype of a stored gradient for input ``x``: ``x``'s, float32 for float16."""
    return torch.float32 if x.dtype == torch.float16 else x.dtype


def new_grad(x: torch.Tensor, *, zeros: bool = False) -> torch.Tensor:
    """A contiguous buffer for the gradient of ``x``, in :func:`store_dtype`."""
    make = torch.zeros if zeros else torch.empty
    return make(x.shape, dtype=store_dtype(x), device=x.device)


def host_reads_free(x: torch.Tensor) -> bool:
    """Whether reading a value of ``x`` back to Python costs nothing: CPU tensors in eager mode.

    The kernels' shortcuts that look at values (a row block with no ``-inf``, every row
    kept) ask this first, so that on an accelerator, and under ``torch.compile``, the hot
    loops never synchronise with the host. Tests patch it to ``False`` to run the
    accelerator path on the CPU.
    """
    return x.device.type == "cpu" and not torch.compiler.is_compiling()


def select_rows(keep: torch.Tensor, x: torch.Tensor, *, out: torch.Tensor | None = None):
    """``x`` where ``keep`` (one flag per row, the leading axes), 0 elsewhere, by selection.

    With ``out`` the result is written there (cast to its dtype) and ``out`` is returned.
    """
    if out is not None and host_reads_free(x) and bool(keep.all()):
        # On the CPU a host read costs nothing, and torch.where with a per-row condition is
        # about ten times slower there than a copy: with every row kept, copy.
        return out.copy_(x)
    cond = keep.reshape(keep.shape + (1,) * (x.ndim - keep.ndim))
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    if out is None:
        return torch.where(cond, x, zero)
    if out.dtype == x.dtype:
        return torch.where(cond, x, zero, out=out)
    # torch.where's out= needs the exact dtype: clear the dropped rows in place, then cast
    # once into the buffer.
    return out.copy_(x.masked_fill_(~cond, 0.0))


@dataclass(frozen=True)
class Kernel:
    """A computation whose gradient is formed in the forward pass.

    ``forward(needs, *inputs) -> (out, aux, grads)``: ``needs[i]`` says whether ``inputs[i]``
    needs a gradient; ``out`` is the differentiable output (a scalar, or one value per row
    when ``per_row``), ``aux`` a tuple of values returned beside it (not differentiable) and
    ``grads[i]`` the gradient of ``out`` (summed, for ``per_row``) with respect to
    ``inputs[i]`` in :func:`store_dtype`, or ``None`` where not needed. It must not hold the
    inputs itself (they are passed in), so that nothing keeps them alive but the caller.

    ``reference(*inputs) -> out``: the same output computed with differentiable torch
    operations, for double backward; ``None`` makes double backward an error.
    ``per_row``: ``out`` has one value per row of the inputs' leading axes (flattened), and
    the backward pass scales row ``i`` of each gradient by the upstream gradient's entry
    ``i``. ``hold_inputs``: save the inputs (else weak references).
    """

    name: str
    forward: ForwardFn
    reference: Callable[..., torch.Tensor] | None = None
    per_row: bool = False
    hold_inputs: bool = False


def apply(kernel: Kernel, *inputs: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """``(out, *aux)`` of ``kernel`` on ``inputs``, differentiable through ``out``.

    Without a gradient to form (grad mode off, or no input requiring one) the kernel runs
    once with ``needs`` all false and no autograd node is made.
    """
    wants = torch.is_grad_enabled() and any(
        x is not None and x.requires_grad for x in inputs
    )
    if not wants:
        out, aux, _ = kernel.forward((False,) * len(inputs), *inputs)
        return (out, *aux)
    return _StoredGrad.apply(kernel, *inputs)


class _StoredGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernel: Kernel, *inputs):
        needs = tuple(
            x is not None and bool(ctx.needs_input_grad[1 + i]) for i, x in enumerate(inputs)
        )
        out, aux, grads = kernel.forward(needs, *inputs)
        ctx.kernel = kernel
        ctx.needs = needs
        ctx.dtypes = [None if x is None else x.dtype for x in inputs]
        # Attributes, not saved tensors: the backward pass hands each buffer on and drops
        # its own reference, so AccumulateGrad can adopt it without a copy.
        ctx.grads = list(grads)
        if kernel.hold_inputs:
            ctx.save_for_backward(*inputs)
            ctx.refs = None
        elif torch.compiler.is_compiling():
            ctx.refs = ()
        else:
            ctx.refs = tuple(
                None if x is None else (weakref.ref(x), x._version) for x in inputs
            )
        ctx.mark_non_differentiable(*aux)
        return (out, *aux)

    @staticmethod
    def backward(ctx, go, *_):
        kernel = ctx.kernel
        grads, ctx.grads = ctx.grads, None
        if torch.is_grad_enabled():
            del grads
            return (None, *_double_backward(ctx, kernel, go))
        if grads is None:
            # A second backward pass through this graph: the first handed the stored
            # gradient on. Form it again, with the same kernel (bit for bit the same).
            inputs = _inputs(ctx, "a second backward pass")
            with torch.no_grad():
                _, _, grads = kernel.forward(ctx.needs, *inputs)
            grads = list(grads)
        out = [None if g is None or not need else _scale(g, go, dt, kernel.per_row)
               for g, need, dt in zip(grads, ctx.needs, ctx.dtypes)]
        del grads
        return (None, *out)


def _scale(g: torch.Tensor, go: torch.Tensor, dtype: torch.dtype, per_row: bool):
    factor = go.to(torch.float64 if g.dtype == torch.float64 else torch.float32)
    if per_row:
        g.view(factor.numel(), -1).mul_(factor.reshape(-1, 1))
    else:
        g.mul_(factor)
    return g if g.dtype == dtype else g.to(dtype)


def _inputs(ctx, what: str) -> list[torch.Tensor | None]:
    name = ctx.kernel.name
    if ctx.refs is None:
        return list(ctx.saved_tensors)
    if ctx.refs == ():
        raise RuntimeError(
            f"{what} through {name} under torch.compile is not supported: its gradient is "
            "formed in the forward pass and handed on by the first backward pass; recompute "
            "the loss instead"
        )
    inputs = []
    for ref in ctx.refs:
        if ref is None:
            inputs.append(None)
            continue
        x = ref[0]()
        if x is None:
            raise RuntimeError(
                f"{what} through {name} needs its input tensors, which have been freed: its "
                "gradient is formed in the forward pass and does not keep the inputs alive. "
                "Hold a reference to each input tensor until then, or recompute the loss"
            )
        if x._version != ref[1]:
            raise RuntimeError(
                f"{what} through {name} needs its input tensors as they were in the forward "
                "pass, but one was modified in place since"
            )
        inputs.append(x)
    return inputs


def _double_backward(ctx, kernel: Kernel, go: torch.Tensor) -> list[torch.Tensor | None]:
    if kernel.reference is None:
        raise RuntimeError(
            f"double backward (create_graph=True) through {kernel.name} is not supported: its "
            "gradient is formed in the forward pass without a graph; compute the loss with "
            "plain autograd for a gradient penalty"
        )
    inputs = _inputs(ctx, "double backward (create_graph=True)")
    wanted = [x for x, need in zip(inputs, ctx.needs) if need]
    with torch.enable_grad():
        out = kernel.reference(*inputs)
        got = iter(torch.autograd.grad(out, wanted, go, create_graph=True, allow_unused=True,
                                       materialize_grads=True))
    return [next(got) if need else None for need in ctx.needs]
