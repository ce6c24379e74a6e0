r"""Distillation loss from hidden states and LM-head weights, without the full logits.

The tokens are processed ``chunk`` at a time. For each chunk:

1. the student's and the teacher's logits (chunk x V, float32) are formed, one matmul each,
   scaled and soft-capped in place; their log-normalisers ``log Z`` (at the temperature, and
   the student's at temperature 1 for the cross-entropy) are accumulated over vocabulary
   tiles with an online log-sum-exp, so no chunk x V temporary is made (with
   ``return_components``, the student's entropy from the same exponentials);
2. tile by tile, the exact log-probabilities ``z / T - log Z`` give the registry's terms
   ``q f(p / q)`` and their partial derivatives ``a = d terms / d log q`` in closed form
   (:meth:`~divergences.fdiv.FDivergence.terms_and_partial`; the tile's temporaries only;
   ``a`` overwrites the teacher's tile, which is no longer needed). The per-token value
   ``D = sum terms`` and
   ``S = sum_v a_v`` are accumulated;
3. tile by tile again, the gradient with respect to the student's logits,
   ``g = c (a - q S) / T + h (softmax(z) - onehot(label))`` (the ``- q S`` term is the
   derivative of ``log Z``: it needs the whole-vocabulary sum ``S``, which is why the
   gradient waits for step 2 to finish), times the derivative of the scale and soft cap,
   overwrites the tile; then ``grad_hidden[chunk] = g @ W`` and ``grad_W += g^T h`` (one
   matmul each, accumulated in float32) and ``grad_b += sum g``.

Memory beyond the gradients of the hidden states, weight and bias: two chunk x V float32
buffers and one tile's temporaries, both sized from N and V on the CPU (cache-sized) and
from a memory budget on accelerators or with ``chunk_bytes=`` (few, large chunks and tiles:
every operation there is a kernel launch) (:func:`auto_sizes`), plus O(N) statistics. The
N x V logits never exist.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch

from .. import _stored_grad, fdiv
from .._arrays import check_range
from . import _chunked_distill as cd
from ._distill import (
    DistillationOutput,
    _DenseRows,
    check_options,
    check_padding,
    check_vocab,
    reduce_values,
    resolve_divergence,
    resolve_vocab,
    token_mask,
    token_weights,
)

__all__ = ["auto_sizes", "fused_linear_distillation_loss"]

# Default sizes, as fractions of N*V float32 elements (the unit of the memory target). The two
# chunk x V buffers take 2 / CHUNK_DIVISOR of it (0.0625 at the default); a tile's
# temporaries (about 10 float32 tensors of chunk x tile) about 10 / TILE_DIVISOR: about
# 0.07 x N*V*4 bytes by design, measured 0.067 beyond the gradients at N = 4096, V = 32000
# (benchmarks/distill.py, RESULTS.md). Larger chunks keep the matmuls efficient: chunks of
# 128 tokens ran the whole loss 1.2x faster than chunks of 64 (18.6 s against 22.3 s).
# Allocator and BLAS workspace add tens of MiB whatever N is, so the ratio is only
# meaningful at large N.
CHUNK_DIVISOR = 32
TILE_DIVISOR = 1500
# Absolute clamps: a chunk of at least 2**16 and at most 2**24 elements per buffer (64 MiB in float32), a tile
# of 2**14 to 2**18 elements (below that the per-tile overhead dominates).
MIN_CHUNK_ELEMENTS = 1 << 16
MAX_CHUNK_ELEMENTS = 1 << 24
MIN_TILE_ELEMENTS = 1 << 14
MAX_TILE_ELEMENTS = 1 << 18
# With a memory budget (the accelerator default, or chunk_bytes=): the two chunk x V buffers
# and about ten chunk x tile temporaries, half of the budget each. At (2048, 128256) and
# 1 GiB that is 4 chunks of 523 tokens and 5 tiles, where the CPU rule (sized for caches)
# runs 32 chunks of 47 tiles each.
BUFFERS = 2
TILE_TEMPS = 10
HALF = (torch.bfloat16, torch.float16)
# Rows of a half-precision weight converted to float32 at a time (about 2**20 elements on the
# CPU; from the budget elsewhere: half_tile_elements).
HALF_TILE_ELEMENTS = 1 << 20


def auto_sizes(n: int, v: int, budget: int | None = None, itemsize: int = 4
               ) -> tuple[int, int]:
    """Default ``(chunk, tile)``: tokens per chunk and vocabulary entries per tile.

    Without ``budget`` (the CPU default): ``chunk = ceil(n / 32)`` (at least ``2**16 / v``:
    below that the per-chunk overhead dominates and the absolute memory is small; at most
    ``2**24 / v``), ``tile`` such that ``chunk * tile`` is ``n * v / 1500`` clamped to
    ``[2**14, 2**18]``. With ``budget`` (bytes for one chunk's work, entries of ``itemsize``
    bytes): half of it for the two ``chunk x v`` buffers, half for a tile's ten
    ``chunk x tile`` temporaries. Both at least 1 and at most ``n``, ``v``.

    >>> auto_sizes(4096, 32000)
    (128, 682)
    >>> auto_sizes(2048, 128256, budget=1 << 30)
    (523, 25663)
    """
    n, v = max(n, 1), max(v, 1)
    if budget is not None:
        half = max(1, budget // 2)
        chunk = cd.rows_for_budget(n, BUFFERS * itemsize * v, half)
        tile = max(1, min(v, half // (TILE_TEMPS * itemsize * chunk)))
        return chunk, tile
    chunk = max(-(-n // CHUNK_DIVISOR), MIN_CHUNK_ELEMENTS // v)
    chunk = min(chunk, max(1, MAX_CHUNK_ELEMENTS // v))
    chunk = max(1, min(chunk, n))
    elems = min(max(n * v // TILE_DIVISOR, MIN_TILE_ELEMENTS), MAX_TILE_ELEMENTS)
    tile = max(1, min(v, elems // chunk))
    return chunk, tile


def half_tile_elements(budget: int | None) -> int:
    """Weight entries converted to float32 at a time for a half-precision head: 2**20 on
    the CPU (cache), else a quarter of the chunk budget in float32 entries (a few launches
    for a whole 128k x 4k head at the accelerator default)."""
    return HALF_TILE_ELEMENTS if budget is None else max(1, budget // 16)


def head_logits(
    h: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
) -> torch.Tensor:
    """``h @ w.T + b`` in the inputs' dtype (a half-precision matmul stays half)."""
    z = h @ w.t()
    return z + b if b is not None else z


def transform(z: torch.Tensor, scale: float, softcap: float | None) -> torch.Tensor:
    """``z * scale``, then ``softcap * tanh(z / softcap)`` when a soft cap is set (Gemma 2)."""
    if scale != 1.0:
        z = z * scale
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    return z


def native_half(x: torch.Tensor) -> bool:
    """Whether half-precision heads multiply in their own dtype: off the CPU.

    CPU BLAS multiplies bfloat16 several times slower than float32, so there the weight is
    converted a tile at a time (:func:`_half_head`); a GPU's tensor cores multiply half
    precision many times faster than float32 (and accumulate in float32), as the model's own
    head does, so there the products stay half and only their outputs are converted.
    """
    return x.device.type != "cpu"


def _chunk_logits(h, w, b, scale, cap, v, dt, half_elems=HALF_TILE_ELEMENTS, native=False):
    """The chunk's transformed logits, transposed: ``(v, c)`` in ``dt``, ``-inf`` beyond
    ``w``'s rows.

    Vocabulary-major because ``W @ h^T`` runs about 1.5x faster than ``h @ W^T`` for a chunk
    of tens of tokens on CPU BLAS (measured: 64 vs 37 GFLOP/s at 64 x 1024 x 32000), and a
    vocabulary tile is then a contiguous block of rows. The matmul output is the buffer
    (float32 inputs) or is converted once into it; scale, bias and soft cap are applied in
    place."""
    if w.dtype != dt and w.dtype in HALF and native:
        # the model's head: one rounding of the product to half, one after the bias
        z = w @ h.to(w.dtype).t()
        z = (z + b.to(w.dtype).unsqueeze(-1) if b is not None else z).to(dt)
    elif w.dtype != dt and w.dtype in HALF:
        z = _half_head(h, w, b, dt, half_elems)
    else:
        z = w @ h.t()
        if z.dtype != dt:
            z = (z + b.unsqueeze(-1) if b is not None else z).to(dt)
        elif b is not None:
            z.add_(b.unsqueeze(-1))
    if scale != 1.0:
        z.mul_(scale)
    if cap is not None:
        z.div_(cap).tanh_().mul_(cap)
    if z.shape[0] < v:
        z = torch.nn.functional.pad(z, (0, 0, 0, v - z.shape[0]), value=-math.inf)
    return z



def _half_rows(w: torch.Tensor, elems: int = HALF_TILE_ELEMENTS) -> int:
    return max(1, elems // max(1, w.shape[1]))


def _half_head(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
               dt: torch.dtype, elems: int = HALF_TILE_ELEMENTS) -> torch.Tensor:
    """``W @ h^T (+ b)`` for a half-precision head, vocabulary-major, in ``dt``.

    CPU BLAS multiplies bfloat16 several times slower than float32 (the whole fused loss took
    80 s against 19 s at N = 4096), so the weight is converted to float32 a tile of rows at a
    time (no full float32 copy) and multiplied in float32. The products are rounded to the
    half dtype once, and again after the bias, as the model's own half-precision head does
    (a half matmul accumulates in float32 and rounds its output)."""
    hh = h.to(dt).t()
    z = torch.empty(w.shape[0], h.shape[0], dtype=dt, device=h.device)
    step = _half_rows(w, elems)
    for j in range(0, w.shape[0], step):
        zt = z[j:j + step]
        torch.mm(w[j:j + step].to(dt), hh, out=zt)
        zt.copy_(zt.to(w.dtype))
        if b is not None:
            zt.add_(b[j:j + step].to(dt).unsqueeze(-1))
            zt.copy_(zt.to(w.dtype))
    return z


def _half_grad_hidden(g: torch.Tensor, w: torch.Tensor,
                      elems: int = HALF_TILE_ELEMENTS) -> torch.Tensor:
    """``g^T W`` in float32 for vocabulary-major ``g`` and a half-precision ``W``, over the
    same row tiles as :func:`_half_head`."""
    out = torch.zeros(g.shape[1], w.shape[1], dtype=g.dtype, device=g.device)
    step = _half_rows(w, elems)
    for j in range(0, w.shape[0], step):
        out.addmm_(g[j:j + step].t(), w[j:j + step].to(g.dtype))
    return out


def _half_grad_weight_(out: torch.Tensor, g: torch.Tensor, h: torch.Tensor,
                       half: torch.dtype, elems: int) -> torch.Tensor:
    """``out += g h`` with the product in ``half`` (tensor cores), a tile of ``elems``
    entries of ``out`` at a time (so the half product never takes ``V x H`` memory), added
    to the float32 accumulator ``out``."""
    hh = h.to(half)
    step = max(1, elems // max(1, out.shape[1]))
    for j in range(0, out.shape[0], step):
        out[j:j + step].add_(g[j:j + step].to(half) @ hh)
    return out


def _log_normaliser(z: torch.Tensor, inv_t: float, tile: int, entropy: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(logsumexp(z * inv_t, 0), H)`` for vocabulary-major ``z`` ``(V, c)``, over tiles of
    rows (no V x c temporary); with ``entropy``, ``H`` is the entropy of
    ``softmax(z * inv_t, 0)`` per column from the same exponentials
    (:func:`~._chunked_distill.entropy` with ``e = exp((z - max) * inv_t)``: one product and
    one sum per tile more), else ``None``. NaN columns are the caller's to mark."""
    m = z.amax(0)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    acc = torch.zeros(z.shape[1], dtype=z.dtype, device=z.device)
    plogp = torch.zeros_like(acc) if entropy else None
    for j in range(0, z.shape[0], tile):
        x = z[j:j + tile] - m
        if inv_t != 1.0:
            x = x * inv_t
        e = torch.exp(x)
        acc = acc + e.sum(0)
        if plogp is not None:
            plogp = plogp + cd.plogp_sum(e, x, 0)
    log_acc = torch.log(acc)
    h = None if plogp is None else cd.entropy(plogp, log_acc, acc)
    return m * inv_t + log_acc, h


def _terms_and_partials(fd, lp, lq, finite):
    """Per-token sum (over the vocabulary, axis 0) of the registry's terms, and their
    partials wrt ``lq`` (:meth:`~divergences.fdiv.FDivergence.terms_and_partial`). ``finite``: no logit can be
    ``-inf`` (no bias, no padding), so the zero-mass bookkeeping is skipped; otherwise it is
    skipped only when a (free, on CPU) host read finds no zero mass in the tile."""
    sync = _stored_grad.host_reads_free(lq)
    t, a = fd.terms_and_partial(lp, lq, sync=sync, zero_mass=False if finite else None)
    return t.sum(0), a


@dataclass(frozen=True)
class FusedConfig:
    """What stays fixed over the chunks of one fused-linear call.

    ``v``: the working vocabulary (the larger of the two with ``vocab="pad"``, the smaller
    with ``"truncate"``); ``finite``: no logit can be ``-inf`` (no bias, same vocabulary),
    so the registry skips its zero-mass bookkeeping. ``keep``, ``weights`` and ``labels``
    (0 where dropped) have one entry per token. ``entropy``: also the student's entropy per
    token (values only).
    """

    fd: fdiv.FDivergence
    inv_t: float
    with_ce: bool
    chunk: int
    tile: int
    w_soft: float
    w_hard: float
    s_scale: float
    s_cap: float | None
    t_scale: float
    t_cap: float | None
    v: int
    dt: torch.dtype
    finite: bool
    half_elems: int
    native: bool
    keep: torch.Tensor
    weights: torch.Tensor
    labels: torch.Tensor
    entropy: bool = False


def _chunk(cfg: FusedConfig, h_c, ws, bs, ht_c, wt, bt, lab, keep, wrow, need_grad):
    """Per-token ``(soft, hard, entropy)`` of one chunk (``entropy`` ``None`` unless
    ``cfg.entropy``) and the gradient wrt the student's pre-activation logits,
    vocabulary-major ``(V_s, c)`` (``None`` without ``need_grad``).

    ``h_c``, ``ht_c`` are the chunk's hidden states with the dropped tokens' rows already
    zeroed by selection, so that nothing from those rows (a NaN, an inf) reaches a sum over
    tokens."""
    inv_t, v, dt, tile = cfg.inv_t, cfg.v, cfg.dt, cfg.tile
    s_scale, s_cap = cfg.s_scale, cfg.s_cap
    v_s = ws.shape[0]
    vs = min(v_s, v)
    c = h_c.shape[0]
    he, nat = cfg.half_elems, cfg.native
    zs = _chunk_logits(h_c, ws[:v], None if bs is None else bs[:v], s_scale, s_cap, v, dt, he,
                       nat)
    buf = _chunk_logits(ht_c, wt[:v], None if bt is None else bt[:v], cfg.t_scale, cfg.t_cap,
                        v, dt, he, nat)
    ls, ent = _log_normaliser(zs, inv_t, tile, cfg.entropy)
    lt = _log_normaliser(buf, inv_t, tile)[0]
    d = zs.new_zeros(c)
    s_sum = zs.new_zeros(c)
    for j in range(0, v, tile):
        lq = zs[j:j + tile] * inv_t - ls
        lp = buf[j:j + tile] * inv_t - lt
        d_t, a_t = _terms_and_partials(cfg.fd, lp, lq, cfg.finite)
        d = d + d_t
        s_sum = s_sum + a_t.sum(0)
        buf[j:j + tile] = a_t
    pos = d >= 0.0  # the registry clamps D at 0 (rounding); no gradient where it did
    # A NaN logit makes its token's log-normaliser NaN: the loss is NaN there, never a NaN
    # read as zero mass.
    soft = cd.nan_rows(d.clamp_min(0.0), ls, lt)
    zero = torch.zeros((), dtype=dt, device=zs.device)
    # The cross-entropy uses the student's whole vocabulary, also when it is truncated.
    zf = zs if v_s <= v else _chunk_logits(h_c, ws, bs, s_scale, s_cap, v_s, dt, he, nat)
    if cfg.with_ce:
        l1 = ls if inv_t == 1.0 and zf is zs else _log_normaliser(zf, 1.0, tile)[0]
        hard = l1 - zf.gather(0, lab.unsqueeze(0)).squeeze(0)
    else:
        hard = torch.zeros_like(soft)
    soft = torch.where(keep, soft, zero)
    hard = torch.where(keep, hard, zero)
    if ent is not None:
        ent = torch.where(keep, cd.nan_rows(ent, ls), zero)
    if not need_grad:
        return (soft, hard, ent), None
    kw = torch.where(keep, wrow.to(dt), zero)
    cs = torch.where(pos, kw * (cfg.w_soft * inv_t), zero)
    ch = kw * cfg.w_hard
    use_hard = cfg.with_ce and cfg.w_hard != 0.0
    for j in range(0, v, tile):
        z_t = zs[j:j + tile]
        x = z_t * inv_t if inv_t != 1.0 else z_t
        q = torch.exp(x - ls)
        g = cd.soft_grad_(buf[j:j + tile], q, s_sum, cs)  # in place in the buffer
        if use_hard and zf is zs:
            cd.hard_grad_(g, q if inv_t == 1.0 else torch.exp(z_t - l1), ch)
        _cap_grad_(g, z_t, s_scale, s_cap)
    g = buf[:vs]
    if use_hard and zf is not zs:
        # Truncated student: the softmax part over its whole vocabulary, tile by tile (the
        # dropped entries have no soft part).
        g = torch.nn.functional.pad(g, (0, 0, 0, v_s - vs))
        for j in range(0, v_s, tile):
            z_t = zf[j:j + tile]
            g[j:j + tile].add_(_cap_grad_(torch.exp(z_t - l1) * ch, z_t, s_scale, s_cap))
    if use_hard:
        z_l = zf.gather(0, lab.unsqueeze(0))
        fac = s_scale * (1.0 - (z_l / s_cap) ** 2) if s_cap is not None else s_scale
        cd.sub_onehot_(g, lab, (ch * fac).reshape(-1), dim=0)
    return (soft, hard, ent), g


def _cap_grad_(g: torch.Tensor, z: torch.Tensor, scale: float, cap: float | None):
    """``g`` times the derivative of the logit scale and soft cap, at the capped logits ``z``
    (``cap (1 - (z / cap)^2)`` is ``d/dx cap tanh(x / cap)``), in place."""
    if cap is not None:
        g.mul_(scale * (1.0 - (z / cap) ** 2))
    elif scale != 1.0:
        g.mul_(scale)
    return g


def _fused_forward(cfg: FusedConfig, needs, hs, ws, bs, ht, wt, bt):
    """The :class:`~divergences._stored_grad.Kernel` forward of the fused-linear loss."""
    need_h, need_w, need_b = needs[0], needs[1], bs is not None and needs[2]
    hs2 = hs.reshape(-1, hs.shape[-1])
    ht2 = ht.reshape(-1, ht.shape[-1])
    n = hs2.shape[0]
    dt = cfg.dt
    acc = torch.float64 if ws.dtype == torch.float64 else torch.float32
    soft = hs2.new_empty(n, dtype=dt)
    hard = hs2.new_empty(n, dtype=dt)
    ent = hs2.new_empty(n, dtype=dt) if cfg.entropy else None
    g_h = _stored_grad.new_grad(hs) if need_h else None
    g_h2 = None if g_h is None else g_h.view(n, -1)
    g_w = torch.zeros(ws.shape, dtype=acc, device=ws.device) if need_w else None
    g_b = torch.zeros(ws.shape[0], dtype=acc, device=ws.device) if need_b else None
    need_any = need_h or need_w or need_b
    ws_, bs_ = ws.detach(), None if bs is None else bs.detach()
    wt_, bt_ = wt.detach(), None if bt is None else bt.detach()
    for s in range(0, n, cfg.chunk):
        e = min(n, s + cfg.chunk)
        k_c = cfg.keep[s:e]
        # Dropped tokens leave by selection, before any product over tokens.
        h_c = _stored_grad.select_rows(k_c, hs2[s:e].detach())
        t_c = _stored_grad.select_rows(k_c, ht2[s:e].detach())
        (s_c, h_cv, e_c), g = _chunk(cfg, h_c, ws_, bs_, t_c, wt_, bt_, cfg.labels[s:e], k_c,
                                     cfg.weights[s:e], need_any)
        soft[s:e] = s_c
        hard[s:e] = h_cv
        if ent is not None:
            ent[s:e] = e_c
        if g is None:
            continue
        rows = g.shape[0]
        # g is vocabulary-major (rows, c): g^T W and g h are plain matmuls.
        if g_h2 is not None:
            w_r = ws_[:rows]
            gh = (_half_grad_hidden(g, w_r, cfg.half_elems)
                  if ws.dtype in HALF and not cfg.native else g.t().to(ws.dtype) @ w_r)
            g_h2[s:e] = gh.to(g_h2.dtype)
        if g_w is not None and ws.dtype in HALF and cfg.native:
            _half_grad_weight_(g_w[:rows], g, h_c, ws.dtype, cfg.half_elems)
        elif g_w is not None:
            g_w[:rows].addmm_(g.to(acc), h_c.to(acc))
        if g_b is not None:
            g_b[:rows].add_(g.sum(1).to(acc))
        # g views this chunk's buffer: drop it now, or it stays alive through the next
        # chunk's matmuls (a third V x chunk buffer at the peak).
        del g
    total = cfg.w_soft * soft + cfg.w_hard * hard if cfg.w_hard != 0.0 else cfg.w_soft * soft
    out = (total * cfg.weights.to(dt)).sum()
    grads = [g_h, _stored(g_w, ws), _stored(g_b, bs), None, None, None]
    return out, ((soft, hard) if ent is None else (soft, hard, ent)), grads


def _stored(acc: torch.Tensor | None, x: torch.Tensor | None) -> torch.Tensor | None:
    """A float32 accumulator, rounded once to the stored dtype of ``x``'s gradient."""
    if acc is None or x is None:
        return None
    dt = _stored_grad.store_dtype(x)
    return acc if acc.dtype == dt else acc.to(dt)


def _fused_reference(cfg: FusedConfig, vocab: str, temperature: float,
                     hs, ws, bs, ht, wt, bt):
    """The fused loss from plain differentiable torch operations (double backward): the
    logits formed whole, then :func:`~._distill.distillation_loss`'s row function."""
    keep = cfg.keep
    hs2 = _stored_grad.select_rows(keep, hs.reshape(-1, hs.shape[-1]))
    ht2 = _stored_grad.select_rows(keep, ht.reshape(-1, ht.shape[-1]).detach())
    zs = transform(head_logits(hs2, ws, bs).to(cfg.dt), cfg.s_scale, cfg.s_cap)
    zt = transform(head_logits(ht2, wt.detach(), None if bt is None else bt.detach())
                   .to(cfg.dt), cfg.t_scale, cfg.t_cap)
    soft, hard = _DenseRows(cfg.fd, temperature, cfg.with_ce, vocab)(zs, zt, cfg.labels)
    total = soft * cfg.w_soft + hard * cfg.w_hard
    total = torch.where(keep, total, torch.zeros((), dtype=total.dtype, device=total.device))
    return (total * cfg.weights.to(total.dtype)).sum()


def _check_pair(h: Any, w: Any, b: Any, who: str) -> tuple[torch.Tensor, torch.Tensor, Any]:
    for name, x in ((f"{who}_hidden", h), (f"{who}_weight", w)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{name} must be a floating torch tensor")
    if h.ndim < 1:
        raise ValueError(f"{who}_hidden must have shape (..., H); got a scalar")
    if w.ndim != 2 or w.shape[1] != h.shape[-1] or w.shape[0] < 1:
        raise ValueError(
            f"{who}_weight must have shape (V, H) with H = {who}_hidden.shape[-1] = "
            f"{h.shape[-1]}; got {tuple(w.shape)}"
        )
    if b is not None:
        if not isinstance(b, torch.Tensor) or not b.is_floating_point():
            raise TypeError(f"{who}_bias must be a floating torch tensor or None")
        if b.shape != (w.shape[0],):
            raise ValueError(f"{who}_bias must have shape ({w.shape[0]},); got {tuple(b.shape)}")
    return h, w, b


def fused_linear_distillation_loss(
    student_hidden: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_hidden: torch.Tensor,
    teacher_weight: torch.Tensor,
    student_bias: torch.Tensor | None = None,
    teacher_bias: torch.Tensor | None = None,
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
    vocab_tile: int | None = None,
    pad_vocab: bool = False,
    student_logit_scale: float = 1.0,
    teacher_logit_scale: float = 1.0,
    student_final_logit_softcapping: float | None = None,
    teacher_final_logit_softcapping: float | None = None,
    *,
    skew: float | None = None,
    vocab: str | None = None,
    chunk_bytes: int | None = None,
    validate: bool = True,
) -> torch.Tensor | DistillationOutput:
    r""":func:`distillation_loss` on the logits of two linear heads, never materialised whole.

    The logits are :math:`z = c \tanh((h W^\top + b)\,\sigma / c)` per model, with
    :math:`\sigma` = ``*_logit_scale`` and :math:`c` = ``*_final_logit_softcapping`` (no
    ``tanh`` when ``None``); everything else (divergence names, ``temperature``, masking,
    reductions, ``hard_weight``, components, ``skew``/``alpha``, ``vocab``/``pad_vocab``) is
    as in :func:`distillation_loss`, whose per-token values this reproduces (the components'
    ``student_entropy`` included, accumulated in the online log-sum-exp of the student's
    logits from the same exponentials: no further pass over the vocabulary); with
    ``vocab="truncate"`` the heads' first ``min(V_s, V_t)`` rows are used (the student's
    other rows get a gradient from the cross-entropy only).

    ``student_hidden`` ``(..., H_s)`` with ``student_weight`` ``(V_s, H_s)``;
    ``teacher_hidden`` ``(..., H_t)`` (same batch shape; ``H_t`` may differ) with
    ``teacher_weight`` ``(V_t, H_t)``. Gradients flow to the student's hidden states, weight
    and bias; the teacher is treated as frozen (no gradient).

    Computation (see the module notes): ``chunk_size`` tokens at a time, each chunk's two
    logit blocks are formed once in float32; the exact log-normalisers come from an online
    log-sum-exp over vocabulary tiles of ``vocab_tile`` entries, then, tile by tile, the
    registry's terms, their derivatives and the gradient with respect to the student's logits are formed and
    contracted into the gradients of the hidden states (``g @ W``), weight (``g^T h``,
    accumulated in float32) and bias. Memory beyond those gradients: two chunk x V float32
    buffers and one tile's temporaries (0.067-0.079 x N*V*4 bytes measured at N = 4096,
    V = 32000 in ``benchmarks/distill.py``; the target is 0.1). Half-precision heads are
    multiplied in float32 on the CPU, a tile of weight rows at a time (CPU BLAS is several
    times slower in bfloat16), and in their own dtype elsewhere (tensor cores; the products
    rounded once to half, as the model's head does; the gradient with respect to the
    logits is rounded to half for the products into the hidden states' and the weight's
    gradients, as in plain half-precision autograd); their weight gradient is accumulated in a float32 buffer before the
    one rounding to the weight's dtype: ``V x H_s x 4`` bytes more (0.25 x N*V*4 at the
    benchmark's shape); float16 heads and hidden states keep their stored gradients in
    float32 (a loss scale arrives only in the backward pass). Dropped tokens' hidden states
    are zeroed by selection before any product over tokens, so a NaN there cannot reach the
    weight's gradient; a NaN in a counted token makes the loss NaN. The loss must be reduced
    when a gradient is needed (``reduction="none"`` gives values only).

    Sizes (:func:`auto_sizes`): ``chunk_size`` and ``vocab_tile`` when given; else from
    ``chunk_bytes`` (keyword-only, not with ``chunk_size``), a memory budget in bytes for
    one chunk's work: half for the two chunk x V float32 buffers, half for a tile's ten
    temporaries, a quarter for a half-precision head's float32 weight tiles. Default by
    device: on CPU tensors ``ceil(N / 32)`` tokens and tiles of about ``N * V / 1500``
    entries per chunk (cache-sized), on CUDA 1/8 of the free memory between 64 MiB and
    1 GiB (at ``(2048, 128256)``, 1 GiB runs 4 chunks of 5 tiles, the CPU rule 32 chunks
    of 47), under ``torch.compile`` and on other accelerators 512 MiB. ``validate=False``
    (keyword-only) skips the one host read of a call, the ``vocab="pad"`` check of the
    heads' extra rows; the chunk loop never reads values back off the CPU. As in
    :func:`distillation_loss`, a second backward pass forms the stored gradients again, and
    double backward (``create_graph=True``) recomputes the loss with plain autograd from
    whole logits (N x V memory for that call); both need the input tensors alive.

    >>> import torch
    >>> from divergences.losses import distillation_loss, fused_linear_distillation_loss
    >>> g = torch.Generator().manual_seed(0)
    >>> hs, ws = torch.randn(6, 4, generator=g), torch.randn(10, 4, generator=g)
    >>> ht, wt = torch.randn(6, 5, generator=g), torch.randn(10, 5, generator=g)
    >>> a = fused_linear_distillation_loss(hs, ws, ht, wt, divergence="js")
    >>> torch.allclose(a, distillation_loss(hs @ ws.T, ht @ wt.T, "js"))
    True
    """
    hs, ws, bs = _check_pair(student_hidden, student_weight, student_bias, "student")
    ht, wt, bt = _check_pair(teacher_hidden, teacher_weight, teacher_bias, "teacher")
    temp, h = check_options(temperature, hard_weight, reduction, chunk_size, chunk_bytes)
    if vocab_tile is not None and (
        isinstance(vocab_tile, bool) or not isinstance(vocab_tile, int) or vocab_tile < 1
    ):
        raise ValueError(f"vocab_tile must be a positive int or None; got {vocab_tile!r}")
    fd = resolve_divergence(divergence, beta, alpha, skew)
    mode = resolve_vocab(vocab, pad_vocab)
    s_scale = check_range(student_logit_scale, "student_logit_scale", 0.0, low_open=True)
    t_scale = check_range(teacher_logit_scale, "teacher_logit_scale", 0.0, low_open=True)
    s_cap = None if student_final_logit_softcapping is None else check_range(
        student_final_logit_softcapping, "student_final_logit_softcapping", 0.0, low_open=True)
    t_cap = None if teacher_final_logit_softcapping is None else check_range(
        teacher_final_logit_softcapping, "teacher_final_logit_softcapping", 0.0, low_open=True)
    if hs.shape[:-1] != ht.shape[:-1]:
        raise ValueError(
            "student_hidden and teacher_hidden must have the same batch shape; got "
            f"{tuple(hs.shape)} and {tuple(ht.shape)}"
        )
    devices = {x.device for x in (hs, ws, ht, wt, bs, bt) if x is not None}
    if len(devices) > 1:
        raise TypeError(f"all tensors must be on one device; got {sorted(map(str, devices))}")
    vs, vt = ws.shape[0], wt.shape[0]
    names = ("student_weight", "teacher_weight")
    check_vocab(mode, vs, vt, names)
    if mode == "pad" and validate:
        # The extra rows of a head give finite logits (mass) unless their bias is -inf.
        check_padding(fd, vs, vt,
                      lambda: bs is None or bool((bs[vt:] > -math.inf).any()),
                      lambda: bt is None or bool((bt[vs:] > -math.inf).any()), names)
    if h > 0.0 and labels is None:
        raise ValueError("hard_weight > 0 needs labels for the cross-entropy term")
    v = min(vs, vt) if mode == "truncate" else max(vs, vt)
    batch = hs.shape[:-1]
    keep, flat_labels = token_mask(batch, hs.device, labels, mask, ignore_index)
    with_ce = flat_labels is not None and (h > 0.0 or return_components)
    n = keep.shape[0]
    safe_labels = (
        torch.where(keep, flat_labels, torch.zeros_like(flat_labels))
        if flat_labels is not None else torch.zeros(n, dtype=torch.long, device=hs.device)
    )
    scale = temp * temp if temperature_scaling else 1.0
    masked = labels is not None or mask is not None
    dt = torch.float64 if hs.dtype == torch.float64 else torch.float32
    weights = token_weights(keep, batch, reduction, num_items_in_batch, masked, dt)
    wants = torch.is_grad_enabled() and any(
        x is not None and x.requires_grad for x in (hs, ws, bs))
    if weights is None:
        if wants:
            raise ValueError(
                "reduction='none' gives values only in the fused-linear loss; use 'mean', "
                "'sum' or 'batchmean' (or num_items_in_batch) to train"
            )
        weights_run = torch.ones(n, dtype=dt, device=hs.device)
    else:
        weights_run = weights
    budget = chunk_bytes if chunk_bytes is not None else cd.default_budget(hs.device)
    auto_chunk, auto_tile = auto_sizes(n, v, budget, dt.itemsize)
    chunk = chunk_size or auto_chunk
    tile = vocab_tile or max(1, min(v, (auto_chunk * auto_tile) // chunk))
    finite = bs is None and bt is None and vs == vt
    cfg = FusedConfig(
        fd=fd, inv_t=1.0 / temp, with_ce=with_ce, chunk=chunk, tile=tile,
        w_soft=(1.0 - h) * scale, w_hard=h, s_scale=s_scale, s_cap=s_cap, t_scale=t_scale,
        t_cap=t_cap, v=v, dt=dt, finite=finite, half_elems=half_tile_elements(budget),
        native=native_half(hs),
        keep=keep, weights=weights_run,
        labels=safe_labels, entropy=return_components,
    )
    kernel = _stored_grad.Kernel(
        "fused_linear_distillation_loss", functools.partial(_fused_forward, cfg),
        reference=functools.partial(_fused_reference, cfg, mode, temp),
    )
    out, soft, hard, *stats = _stored_grad.apply(kernel, hs, ws, bs, ht, wt, bt)
    if weights is None:
        total = (1.0 - h) * scale * soft + h * hard
        loss = total.reshape(batch)
    else:
        loss = out
    if not return_components:
        return loss
    return DistillationOutput(
        loss, reduce_values(soft * scale, weights, batch), reduce_values(hard, weights, batch),
        stats[0].reshape(batch),
    )
