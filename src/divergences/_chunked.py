"""Row-blocked evaluation of a row-wise reduction, with the gradient formed block by block.

A divergence over a 128k vocabulary materialises several tensors the size of its inputs
(log-probabilities, ratios, terms). Evaluated whole, those temporaries dominate peak memory and
fall out of cache. Here the rows are processed a block at a time. Without a gradient only the
per-row results are kept. With one, each block's gradient is formed during the forward pass
(one autograd pass over the block, while its temporaries are in cache) and written into place;
the backward pass only scales it by the upstream gradient. Peak memory is the inputs, their
gradients and one block of temporaries. The rows must be independent (row ``i`` of the result
depends only on row ``i`` of the inputs), which holds for every divergence over the last axis.

The gradient machinery (dtype policy, backward and double backward) is
:mod:`divergences._stored_grad`'s: the inputs are saved, so a second backward pass forms the
gradient again and double backward (``create_graph=True``, a gradient penalty) recomputes the
rows with plain autograd: a row gets the same gradient, with its graph, whatever the input's
size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import _stored_grad

# Inputs smaller than this go through plain autograd (the temporaries are small anyway; both
# paths give the same gradients, double backward included). Measured in benchmarks/exact.py (RESULTS.md): blocks of
# 2**21 elements (64 rows at a 32k vocabulary, 8 MiB per float32 temporary) were fastest.
MIN_ELEMENTS = 1 << 21
BLOCK_ELEMENTS = 1 << 21

RowFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def rows_per_block(n_cols: int, block_elements: int | None = None) -> int:
    return max(1, (block_elements or BLOCK_ELEMENTS) // max(1, n_cols))


def _kernel(fn: RowFn, block: int) -> _stored_grad.Kernel:
    def forward(needs, a: torch.Tensor, b: torch.Tensor):
        need_a, need_b = needs
        out = torch.empty(a.shape[0], dtype=_stored_grad.compute_dtype(a), device=a.device)
        ga = _stored_grad.new_grad(a) if need_a else None
        gb = _stored_grad.new_grad(b) if need_b else None
        with torch.enable_grad():
            for s in range(0, a.shape[0], block):
                ac = a[s : s + block].detach().requires_grad_(need_a)
                bc = b[s : s + block].detach().requires_grad_(need_b)
                val = fn(ac, bc)
                wanted = [t for t, need in ((ac, need_a), (bc, need_b)) if need]
                # Rows are independent, so the gradient of the block's sum holds each row's
                # gradient; the backward pass scales row i by grad_out[i].
                grads = iter(torch.autograd.grad(val.sum(), wanted))
                out[s : s + block] = val.detach()
                if need_a:
                    ga[s : s + block] = next(grads)
                if need_b:
                    gb[s : s + block] = next(grads)
        return out, (), (ga, gb)

    return _stored_grad.Kernel("a row-blocked divergence", forward, reference=fn,
                               per_row=True, hold_inputs=True)


def rowwise(fn: RowFn, a: torch.Tensor, b: torch.Tensor, block_elements: int | None = None):
    """``fn(a, b)`` for 2-D ``a``, ``b`` of one shape, reducing each row to a scalar.

    Small inputs go straight to ``fn``; large ones are evaluated block by block.
    """
    if a.numel() < MIN_ELEMENTS and block_elements is None:
        return fn(a, b)
    block = rows_per_block(a.shape[-1], block_elements)
    if not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)):
        out = torch.empty(a.shape[0], dtype=_stored_grad.compute_dtype(a), device=a.device)
        for s in range(0, a.shape[0], block):
            out[s : s + block] = fn(a[s : s + block], b[s : s + block])
        return out
    return _stored_grad.apply(_kernel(fn, block), a, b)[0]
