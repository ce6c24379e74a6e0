"""fused_linear_distillation_loss with token chunks and vocabulary tiles that divide nothing.

Every divergence (the named ones, TRL's JSD endpoints and each registry member) against the
materialised float64 computation: values and gradients of the student's hidden states,
weight and bias, with scale, soft cap, temperature, bias, masks, hard_weight and reductions.
"""

from __future__ import annotations

import math

import pytest
import torch

from divergences import fdiv
from divergences.losses import distillation_loss, fused_linear_distillation_loss
from divergences.losses._distill import resolve_divergence
from divergences.losses._fused_linear import auto_sizes

from ._ref import keep_mask, per_token, reduce, rel_err

B, T, HS, HT, V = 3, 13, 7, 11, 123  # N = 39 tokens


def make(seed, dtype=torch.float64, v_t=V, bias=True):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype)

    hs, ws = r(B, T, HS), r(V, HS, scale=0.6)
    ht, wt = r(B, T, HT), r(v_t, HT, scale=0.5)
    bs = r(V) if bias else None
    bt = r(v_t) if bias else None
    lab = torch.randint(0, V, (B, T), generator=g)
    lab = torch.where(torch.rand(B, T, generator=g) < 0.3, torch.full_like(lab, -100), lab)
    return hs, ws, bs, ht, wt, bt, lab


def logits(h, w, b, scale=1.0, cap=None):
    z = h @ w.T
    if b is not None:
        z = z + b
    z = z * scale
    return cap * torch.tanh(z / cap) if cap is not None else z


def check(div, kw, *, temperature=1.0, reduction="mean", hard_weight=0.0, chunk=10, tile=17,
          s_scale=1.0, s_cap=None, t_scale=1.0, t_cap=None, mask=None, bias=True, seed=0,
          tol=1e-8):
    """Loss and gradients in float64 against autograd through the materialised logits."""
    hs, ws, bs, ht, wt, bt, lab = make(seed, bias=bias)
    leaves = [x.clone().requires_grad_() for x in (hs, ws, bs) if x is not None]
    loss = fused_linear_distillation_loss(
        leaves[0], leaves[1], ht, wt, student_bias=leaves[2] if bias else None,
        teacher_bias=bt, divergence=div, **kw, temperature=temperature, labels=lab, mask=mask,
        hard_weight=hard_weight, reduction=reduction, chunk_size=chunk, vocab_tile=tile,
        student_logit_scale=s_scale, student_final_logit_softcapping=s_cap,
        teacher_logit_scale=t_scale, teacher_final_logit_softcapping=t_cap)
    ref_leaves = [x.clone().requires_grad_() for x in (hs, ws, bs) if x is not None]
    zs = logits(ref_leaves[0], ref_leaves[1], ref_leaves[2] if bias else None, s_scale, s_cap)
    zt = logits(ht, wt, bt, t_scale, t_cap)
    fd = resolve_divergence(div, kw.get("beta", 0.5), kw.get("alpha"), kw.get("skew"))
    total, _, _ = per_token(zs, zt, fd, temperature=temperature, labels=lab, mask=mask,
                            hard_weight=hard_weight)
    ref = reduce(total, keep_mask((B, T), lab, mask), reduction, True)
    assert loss.dtype == torch.float64
    assert rel_err(loss, ref) <= tol
    (loss * 0.7).backward()
    (ref * 0.7).backward()
    for a, b in zip(leaves, ref_leaves):
        assert rel_err(a.grad, b.grad) <= tol, (div, rel_err(a.grad, b.grad))
    return loss


NAMED = [("forward_kl", {}), ("reverse_kl", {}), ("js", {"beta": 0.5}), ("js", {"beta": 0.0}),
         ("js", {"beta": 1.0}), ("js", {"beta": 0.2}), ("skew_forward_kl", {"skew": 0.1}),
         ("skew_reverse_kl", {"skew": 0.3}), ("tv", {})]


@pytest.mark.parametrize(("div", "kw"), NAMED, ids=lambda x: str(x))
def test_named_divergences_odd_tiles(div, kw):
    check(div, kw, temperature=1.7, hard_weight=0.25, s_scale=0.8, s_cap=4.0, t_scale=1.3,
          chunk=10, tile=17)


@pytest.mark.parametrize("name", [n for n in fdiv.names()
                                  if n not in ("kl", "reverse_kl", "js", "tv")])
def test_every_registry_member(name):
    kw = ({"alpha": 0.3} if name == "alpha"
          else {"skew": 0.3} if name in ("skew_kl", "skew_reverse_kl") else {})
    check(name, kw, temperature=1.3, chunk=7, tile=50)


@pytest.mark.parametrize(("chunk", "tile", "reduction"),
                         [(3, 9, "mean"), (39, 123, "sum"), (8, 122, "batchmean"),
                          (40, 500, "mean"), (None, 31, "sum"), (13, None, "mean"),
                          (1, 61, "batchmean")])
@pytest.mark.parametrize("bias", [True, False])
def test_chunk_and_tile_sizes(chunk, tile, reduction, bias):
    check("js", {"beta": 0.4}, reduction=reduction, chunk=chunk, tile=tile, hard_weight=0.1,
          t_cap=3.0, bias=bias)


@pytest.mark.parametrize("name", ["kl", "reverse_kl", "js", "alpha", "jeffreys", "pearson_chi2",
                                  "neyman_chi2", "squared_hellinger", "tv", "triangular"])
def test_analytic_partials_without_bias(name):
    """No bias and no padding: the finite path (registry f and f', no autograd) where the
    member has a log-domain derivative."""
    kw = {"alpha": 0.3} if name == "alpha" else {}
    check(name, kw, temperature=0.9, chunk=7, tile=40, bias=False, s_cap=5.0)


def test_mask_and_no_bias_and_num_items():
    g = torch.Generator().manual_seed(3)
    mask = (torch.rand(B, T, generator=g) < 0.7).long()
    check("reverse_kl", {}, mask=mask, bias=False, chunk=6, tile=40, temperature=0.6)
    hs, ws, _, ht, wt, _, lab = make(4, bias=False)
    a = fused_linear_distillation_loss(hs, ws, ht, wt, labels=lab, num_items_in_batch=17,
                                       chunk_size=5, vocab_tile=9)
    b = fused_linear_distillation_loss(hs, ws, ht, wt, labels=lab, reduction="sum") / 17
    assert torch.allclose(a, b, rtol=1e-12)


def test_values_only_match_logits_path():
    hs, ws, bs, ht, wt, bt, lab = make(5)
    a = fused_linear_distillation_loss(hs, ws, ht, wt, bs, bt, divergence="skew_forward_kl",
                                       labels=lab, reduction="none", return_components=True,
                                       chunk_size=4, vocab_tile=29, temperature=2.0,
                                       temperature_scaling=True)
    b = distillation_loss(hs @ ws.T + bs, ht @ wt.T + bt, "skew_forward_kl", labels=lab,
                          reduction="none", return_components=True, temperature=2.0,
                          temperature_scaling=True)
    for x, y in zip(a, b):
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-12)


def test_minus_inf_bias_masked_vocabulary():
    """Masked vocabulary entries (-inf bias on both sides): exact values, finite gradients."""
    hs, ws, bs, ht, wt, bt, lab = make(6)
    bs = bs.clone()
    bt = bt.clone()
    bs[[0, 50, 122]] = -math.inf
    bt[[0, 50, 122]] = -math.inf
    for div, kw in (("js", {"beta": 0.5}), ("forward_kl", {}), ("tv", {})):
        h = hs.clone().requires_grad_()
        w = ws.clone().requires_grad_()
        loss = fused_linear_distillation_loss(h, w, ht, wt, bs, bt, divergence=div, **kw,
                                              labels=lab, chunk_size=8, vocab_tile=30)
        h2 = hs.clone().requires_grad_()
        w2 = ws.clone().requires_grad_()
        ref = distillation_loss(h2 @ w2.T + bs, ht @ wt.T + bt, div, **kw, labels=lab)
        assert torch.isfinite(loss) and rel_err(loss, ref) <= 1e-10
        loss.backward()
        ref.backward()
        assert torch.isfinite(w.grad).all() and torch.isfinite(h.grad).all()
        assert rel_err(h.grad, h2.grad) <= 1e-10 and rel_err(w.grad, w2.grad) <= 1e-10


def test_pad_vocab_with_tiles():
    hs, ws, _, ht, wt, _, lab = make(7, v_t=130, bias=False)
    h = hs.clone().requires_grad_()
    loss = fused_linear_distillation_loss(h, ws, ht, wt, divergence="reverse_kl", labels=lab,
                                          pad_vocab=True, chunk_size=9, vocab_tile=16)
    h2 = hs.clone().requires_grad_()
    ref = distillation_loss(h2 @ ws.T, ht @ wt.T, "reverse_kl", labels=lab, pad_vocab=True)
    loss.backward()
    ref.backward()
    # Student mass where the teacher has none makes reverse KL infinite: not here (the student
    # is the smaller vocabulary, padded with zero mass).
    assert torch.isfinite(loss) and rel_err(loss, ref) <= 1e-10
    assert rel_err(h.grad, h2.grad) <= 1e-10


def test_float32_against_float64():
    hs, ws, bs, ht, wt, bt, lab = make(8, dtype=torch.float32)
    leaves = [x.clone().requires_grad_() for x in (hs, ws, bs)]
    loss = fused_linear_distillation_loss(*leaves[:2], ht, wt, leaves[2], bt, divergence="js",
                                          labels=lab, chunk_size=11, vocab_tile=37,
                                          student_final_logit_softcapping=6.0)
    ref_leaves = [x.double().requires_grad_() for x in (hs, ws, bs)]
    zs = logits(*ref_leaves, cap=6.0)
    total, _, _ = per_token(zs, logits(ht.double(), wt.double(), bt.double()),
                            fdiv.get("js", beta=0.5), labels=lab)
    ref = reduce(total, keep_mask((B, T), lab), "mean", True)
    assert loss.dtype == torch.float32 and rel_err(loss, ref) <= 1e-6
    loss.backward()
    ref.backward()
    for a, b in zip(leaves, ref_leaves):
        assert rel_err(a.grad, b.grad) <= 1e-5


def test_auto_sizes():
    for n, v in ((1, 1), (39, 123), (4096, 32000), (512, 151936), (10**6, 256)):
        chunk, tile = auto_sizes(n, v)
        assert 1 <= chunk <= n and 1 <= tile <= v
    chunk, tile = auto_sizes(4096, 32000)
    # Two chunk x V buffers within 6.25% of N x V (the rest of the 0.1 target is the tile's
    # temporaries and the allocator); a tile of at most N*V/1500 elements.
    assert 2 * chunk <= 0.0625 * 4096 and chunk * tile <= 4096 * 32000 // 1500


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_vocab_tile_errors(bad):
    hs, ws, _, ht, wt, _, _ = make(9)
    with pytest.raises(ValueError, match="vocab_tile"):
        fused_linear_distillation_loss(hs, ws, ht, wt, vocab_tile=bad)
