"""Row-chunked evaluation of a row-wise reduction, with recomputation in the backward pass.

A divergence over a 128k vocabulary materialises several tensors the size of its inputs
(log-probabilities, ratios, terms). Evaluated whole, those temporaries dominate peak memory and
fall out of cache. Here the rows are processed a block at a time: the forward pass keeps only
the per-row results, and the backward pass recomputes each block under autograd and writes its
gradient into place. Peak memory is the inputs, their gradients and one block of temporaries.

Double backward (``create_graph=True``) is not supported on this path; the public functions
only take it for inputs larger than :data:`MIN_ELEMENTS`, and small inputs use plain autograd.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# Below this many elements per input the plain autograd path is used: it supports double
# backward and its temporaries are small anyway.
MIN_ELEMENTS = 1 << 21
# Elements per block: about 1 MiB of float32 per temporary, which keeps a block in cache.
BLOCK_ELEMENTS = 1 << 18

RowFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def rows_per_block(n_cols: int, block_elements: int | None = None) -> int:
    return max(1, (block_elements or BLOCK_ELEMENTS) // max(1, n_cols))


class _RowChunked(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fn: RowFn, block: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = torch.empty(a.shape[0], dtype=_out_dtype(a), device=a.device)
        for s in range(0, a.shape[0], block):
            out[s : s + block] = fn(a[s : s + block], b[s : s + block])
        ctx.fn, ctx.block = fn, block
        ctx.save_for_backward(a, b)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        ga = torch.empty_like(a) if need_a else None
        gb = torch.empty_like(b) if need_b else None
        with torch.enable_grad():
            for s in range(0, a.shape[0], ctx.block):
                ac = a[s : s + ctx.block].detach().requires_grad_(need_a)
                bc = b[s : s + ctx.block].detach().requires_grad_(need_b)
                val = ctx.fn(ac, bc)
                wanted = [t for t, need in ((ac, need_a), (bc, need_b)) if need]
                grads = torch.autograd.grad(val, wanted, grad_out[s : s + ctx.block])
                it = iter(grads)
                if need_a:
                    ga[s : s + ctx.block] = next(it)
                if need_b:
                    gb[s : s + ctx.block] = next(it)
        return None, None, ga, gb


def _out_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype


def rowwise(fn: RowFn, a: torch.Tensor, b: torch.Tensor, block_elements: int | None = None):
    """``fn(a, b)`` for 2-D ``a``, ``b`` of one shape, reducing each row to a scalar.

    Small inputs go straight to ``fn``; large ones are evaluated block by block, with
    recomputation in the backward pass when a gradient is needed.
    """
    if a.numel() < MIN_ELEMENTS and block_elements is None:
        return fn(a, b)
    block = rows_per_block(a.shape[-1], block_elements)
    if not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)):
        out = torch.empty(a.shape[0], dtype=_out_dtype(a), device=a.device)
        for s in range(0, a.shape[0], block):
            out[s : s + block] = fn(a[s : s + block], b[s : s + block])
        return out
    return _RowChunked.apply(fn, block, a, b)
