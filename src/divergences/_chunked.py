"""Row-blocked evaluation of a row-wise reduction, with the gradient formed block by block.

A divergence over a 128k vocabulary materialises several tensors the size of its inputs
(log-probabilities, ratios, terms). Evaluated whole, those temporaries dominate peak memory and
fall out of cache. Here the rows are processed a block at a time. Without a gradient only the
per-row results are kept. With one, each block's gradient is formed during the forward pass
(one autograd pass over the block, while its temporaries are in cache) and written into place;
the backward pass only scales it by the upstream gradient. Peak memory is the inputs, their
gradients and one block of temporaries. The rows must be independent (row ``i`` of the result
depends only on row ``i`` of the inputs), which holds for every divergence over the last axis.

Double backward (``create_graph=True``) is not supported on this path (it raises); the public
functions only take it for inputs of at least :data:`MIN_ELEMENTS` elements, and smaller inputs
use plain autograd.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.autograd.function import once_differentiable

# Inputs smaller than this go through plain autograd (double backward works there, and the
# temporaries are small anyway). Measured in benchmarks/exact.py (RESULTS.md): blocks of
# 2**21 elements (64 rows at a 32k vocabulary, 8 MiB per float32 temporary) were fastest.
MIN_ELEMENTS = 1 << 21
BLOCK_ELEMENTS = 1 << 21

RowFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def rows_per_block(n_cols: int, block_elements: int | None = None) -> int:
    return max(1, (block_elements or BLOCK_ELEMENTS) // max(1, n_cols))


class _RowBlocked(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fn: RowFn, block: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        need_a, need_b = a.requires_grad, b.requires_grad
        out = torch.empty(a.shape[0], dtype=_out_dtype(a), device=a.device)
        ga = torch.empty_like(a) if need_a else None
        gb = torch.empty_like(b) if need_b else None
        with torch.enable_grad():
            for s in range(0, a.shape[0], block):
                ac = a[s : s + block].detach().requires_grad_(need_a)
                bc = b[s : s + block].detach().requires_grad_(need_b)
                val = fn(ac, bc)
                wanted = [t for t, need in ((ac, need_a), (bc, need_b)) if need]
                # Rows are independent, so the gradient of the block's sum holds each row's
                # gradient; backward scales row i by grad_out[i].
                grads = iter(torch.autograd.grad(val.sum(), wanted))
                out[s : s + block] = val.detach()
                if need_a:
                    ga[s : s + block] = next(grads)
                if need_b:
                    gb[s : s + block] = next(grads)
        ctx.grads = (ga, gb)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        ga, gb = ctx.grads
        scale = grad_out.unsqueeze(-1)
        return (
            None,
            None,
            None if ga is None else ga * scale.to(ga.dtype),
            None if gb is None else gb * scale.to(gb.dtype),
        )


def _out_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype


def rowwise(fn: RowFn, a: torch.Tensor, b: torch.Tensor, block_elements: int | None = None):
    """``fn(a, b)`` for 2-D ``a``, ``b`` of one shape, reducing each row to a scalar.

    Small inputs go straight to ``fn``; large ones are evaluated block by block.
    """
    if a.numel() < MIN_ELEMENTS and block_elements is None:
        return fn(a, b)
    block = rows_per_block(a.shape[-1], block_elements)
    if not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)):
        out = torch.empty(a.shape[0], dtype=_out_dtype(a), device=a.device)
        for s in range(0, a.shape[0], block):
            out[s : s + block] = fn(a[s : s + block], b[s : s + block])
        return out
    return _RowBlocked.apply(fn, block, a, b)
