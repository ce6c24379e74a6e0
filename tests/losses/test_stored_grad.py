"""The stored-gradient machinery shared by every loss (issue 14): one mechanism, float16 under
loss scaling, NaN in dropped and in counted tokens, double backward, argument names and
mismatched vocabularies, on each path (dense logits, chunked, fused-linear, sparse,
vocab-parallel on a world of one rank)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from divergences import _chunked, fdiv
from divergences.distributed import (
    vocab_parallel_distillation_loss,
    vocab_parallel_fused_linear_distillation_loss,
)
from divergences.losses import (
    DistillationLoss,
    FusedLinearDistillationLoss,
    SparseDistillationLoss,
    distillation_loss,
    fused_linear_distillation_loss,
    sparse_distillation_loss,
)

from ._members import member
from ._ref import per_token, rel_err

NAN = float("nan")


def heads(n=12, h=6, v=40, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    hs = torch.randn(n, h, generator=g, dtype=torch.float64).to(dtype)
    ws = (0.5 * torch.randn(v, h, generator=g, dtype=torch.float64)).to(dtype)
    ht = torch.randn(n, h + 2, generator=g, dtype=torch.float64).to(dtype)
    wt = (0.5 * torch.randn(v, h + 2, generator=g, dtype=torch.float64)).to(dtype)
    return hs, ws, ht, wt


def topk(t, k=5):
    top = torch.log_softmax(t, -1).topk(k)
    return top.indices, top.values


# The five paths, each as ``loss(student_logits-like inputs) -> scalar``; the sparse and
# vocab-parallel ones on the same logits as the dense one.
def dense(s, t, **kw):
    return distillation_loss(s, t, **kw)


def chunked(s, t, **kw):
    return distillation_loss(s, t, chunk_size=3, **kw)


def sparse(s, t, **kw):
    idx, lpk = topk(t)
    return sparse_distillation_loss(s, idx, lpk, chunk_size=3, **kw)


def vocab_parallel(s, t, **kw):
    return vocab_parallel_distillation_loss(s, t, chunk_size=3, **kw)


LOGIT_PATHS = [dense, chunked, sparse, vocab_parallel]


# --------------------------------------------------------------------------------------------
# One mechanism
# --------------------------------------------------------------------------------------------


def test_every_path_goes_through_one_function(world1):
    s = torch.randn(4, 9, requires_grad=True)
    t = torch.randn(4, 9)
    names = {path.__name__: type(path(s, t).grad_fn).__name__ for path in LOGIT_PATHS}
    hs, ws, ht, wt = heads()
    ws.requires_grad_()
    names["fused"] = type(fused_linear_distillation_loss(hs, ws, ht, wt).grad_fn).__name__
    names["vp_fused"] = type(
        vocab_parallel_fused_linear_distillation_loss(hs, ws, ht, wt).grad_fn).__name__
    a = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    names["rowwise"] = type(_chunked.rowwise(_kl_rows, a, a.detach(), block_elements=7)
                            .grad_fn).__name__
    assert set(names.values()) == {"_StoredGradBackward"}, names


# --------------------------------------------------------------------------------------------
# float16 under a loss scale: the stored gradient must not underflow before the scale
# --------------------------------------------------------------------------------------------

SCALE = 65536.0  # GradScaler's initial scale


def _scaled_grad(loss_fn, x):
    x = x.clone().requires_grad_()
    (loss_fn(x) * SCALE).backward()
    return x.grad.double() / SCALE


def _fp16_check(got, ref):
    zeros = float((got == 0).double().mean())
    err = rel_err(got, ref)
    # Plain float16 autograd with the scaler: no zeros, rel err 2.1e-4 (N=1024, V=8000);
    # before the fix the stored-gradient paths had 26-47% zeros and rel err 1.4e-2 to 7.6e-2.
    assert zeros < 1e-3, zeros
    assert err < 1e-3, err


def test_fp16_dense_and_sparse_gradients_survive_a_loss_scale(world1):
    n, v = 256, 2000
    g = torch.Generator().manual_seed(1)
    s = torch.randn(n, v, generator=g).half()
    t = torch.randn(n, v, generator=g).half()
    s64 = s.double().requires_grad_()
    fd = fdiv.get("kl")
    per_token(s64, t.double(), fd)[0].mean().backward()
    _fp16_check(_scaled_grad(lambda x: distillation_loss(x, t), s), s64.grad)
    _fp16_check(_scaled_grad(lambda x: distillation_loss(x, t, chunk_size=17), s), s64.grad)
    _fp16_check(_scaled_grad(lambda x: vocab_parallel_distillation_loss(x, t), s), s64.grad)
    idx = torch.arange(v).expand(n, v)  # k = V: the sparse loss is the dense one
    lpk = torch.log_softmax(t.double(), -1).half()
    s64.grad = None
    lq = torch.log_softmax(s64, -1)
    (torch.exp(lpk.double()) * (lpk.double() - lq)).sum(-1).mean().backward()
    _fp16_check(_scaled_grad(
        lambda x: sparse_distillation_loss(x, idx, lpk, tail="zero", validate=False), s),
        s64.grad)


def test_fp16_fused_gradients_survive_a_loss_scale():
    # Many tokens, so that the hidden states' gradient (divided by N) is small: before the
    # fix 0.026% of its entries were exactly 0 here.
    n, h, v = 4096, 16, 64
    hs, ws, ht, wt = (x.half() for x in heads(n, h, v, seed=2))
    a = hs.clone().requires_grad_()
    w = ws.clone().requires_grad_()
    (fused_linear_distillation_loss(a, w, ht, wt) * SCALE).backward()
    assert w.grad.dtype == torch.float16 and a.grad.dtype == torch.float16
    h64, w64 = hs.double().requires_grad_(), ws.double().requires_grad_()
    per_token(h64 @ w64.T, ht.double() @ wt.double().T, fdiv.get("kl"))[0].mean().backward()
    for got, ref in ((w.grad, w64.grad), (a.grad, h64.grad)):
        got = got.double() / SCALE
        assert int((got == 0).sum()) == 0
        assert rel_err(got, ref) < 1e-3


def test_bf16_keeps_its_dtype_and_memory():
    s = torch.randn(8, 30, dtype=torch.bfloat16, requires_grad=True)
    t = torch.randn(8, 30, dtype=torch.bfloat16)
    distillation_loss(s, t).backward()
    assert s.grad.dtype == torch.bfloat16


# --------------------------------------------------------------------------------------------
# NaN in a dropped token: no effect; NaN in a counted token: NaN loss
# --------------------------------------------------------------------------------------------


def _with_nan_row(x, row=2):
    y = x.clone()
    y[row, 1] = NAN
    return y


@pytest.mark.parametrize("path", LOGIT_PATHS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("where", ["student", "teacher"])
def test_nan_in_an_ignored_row_changes_nothing(world1, path, where):
    g = torch.Generator().manual_seed(3)
    s = torch.randn(6, 11, generator=g)
    t = torch.randn(6, 11, generator=g)
    labels = torch.tensor([1, 2, -100, 3, 4, 5])
    clean = s.clone().requires_grad_()
    want = path(clean, t, labels=labels, hard_weight=0.3)
    want.backward()
    dirty = (_with_nan_row(s) if where == "student" else s).clone().requires_grad_()
    t_in = _with_nan_row(t) if where == "teacher" else t
    kw = {"validate": False} if path is sparse else {}
    got = path(dirty, t_in, labels=labels, hard_weight=0.3, **kw)
    got.backward()
    assert torch.isfinite(got) and torch.isfinite(dirty.grad).all()
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(dirty.grad, clean.grad)


@pytest.mark.parametrize("vp", [False, True], ids=["fused", "vocab_parallel_fused"])
def test_nan_in_an_ignored_row_does_not_reach_the_weight_gradient(world1, vp):
    fn = vocab_parallel_fused_linear_distillation_loss if vp else fused_linear_distillation_loss
    hs, ws, ht, wt = heads(seed=4)
    labels = torch.arange(12) % 7
    labels[[2, 5]] = -100
    grads = []
    for nan in (False, True):
        h_in = hs.clone()
        t_in = ht.clone()
        if nan:
            h_in[2, 0] = NAN
            t_in[5, 1] = math.inf
        a, w = h_in.requires_grad_(), ws.clone().requires_grad_()
        b = torch.zeros(ws.shape[0], requires_grad=True)
        loss = fn(a, w, t_in, wt, b, labels=labels, hard_weight=0.2, chunk_size=5)
        loss.backward()
        grads.append((loss.detach(), w.grad, b.grad, a.grad[[0, 1, 3]]))
    for x, y in zip(*grads):
        assert torch.isfinite(y).all()
        torch.testing.assert_close(y, x)


@pytest.mark.parametrize("path", LOGIT_PATHS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("div", ["forward_kl", "reverse_kl", "js", "tv"])
def test_nan_in_a_counted_row_gives_a_nan_loss(world1, path, div):
    g = torch.Generator().manual_seed(5)
    s = _with_nan_row(torch.randn(5, 9, generator=g), row=1)
    t = torch.randn(5, 9, generator=g)
    assert math.isnan(path(s, t, divergence=div).item())
    per = path(s, t, divergence=div, reduction="none")
    assert math.isnan(per[1].item()) and torch.isfinite(per[[0, 2, 3, 4]]).all()
    # and with a gradient to form
    assert math.isnan(path(s.requires_grad_(), t, divergence=div).item())


@pytest.mark.parametrize("div", ["forward_kl", "reverse_kl", "js", "tv"])
def test_nan_in_the_teacher_gives_a_nan_loss(world1, div):
    g = torch.Generator().manual_seed(6)
    s = torch.randn(5, 9, generator=g)
    t = _with_nan_row(torch.randn(5, 9, generator=g), row=3)
    for path in (dense, vocab_parallel):
        assert math.isnan(path(s, t, divergence=div).item())
    idx, lpk = topk(torch.randn(5, 9, generator=g))
    lpk = _with_nan_row(lpk, row=3)
    got = sparse_distillation_loss(s, idx, lpk, divergence=div, validate=False,
                                   reduction="none")
    assert math.isnan(got[3].item()) and torch.isfinite(got[[0, 1, 2, 4]]).all()
    with pytest.raises(ValueError, match="teacher_topk_logprobs"):
        sparse_distillation_loss(s, idx, lpk, divergence=div)


@pytest.mark.parametrize("vp", [False, True], ids=["fused", "vocab_parallel_fused"])
def test_nan_in_a_counted_hidden_state_gives_a_nan_loss(world1, vp):
    fn = vocab_parallel_fused_linear_distillation_loss if vp else fused_linear_distillation_loss
    hs, ws, ht, wt = heads(seed=7)
    for div in ("forward_kl", "reverse_kl", "js", "tv"):
        assert math.isnan(fn(_with_nan_row(hs), ws, ht, wt, divergence=div).item())
        assert math.isnan(fn(hs, ws, _with_nan_row(ht), wt, divergence=div).item())
        w = ws.clone().requires_grad_()
        assert math.isnan(fn(_with_nan_row(hs), w, ht, wt, divergence=div).item())


# --------------------------------------------------------------------------------------------
# Double backward: the true second derivative, or an error; never a gradient without graph
# --------------------------------------------------------------------------------------------


def _kl_rows(a, b):
    """KL(softmax(b) || softmax(a)) per row, plain torch (the row function under test)."""
    lp = torch.log_softmax(b, -1)
    return (torch.exp(lp) * (lp - torch.log_softmax(a, -1))).sum(-1)


@pytest.mark.parametrize("rows", [8, 130], ids=["small", "above_2**21_elements"])
def test_row_blocked_gradient_penalty_is_exact_at_every_size(rows):
    v = 16384  # 130 rows: 2.13M elements, the row-blocked stored-gradient path
    g = torch.Generator().manual_seed(8)
    a = torch.randn(rows, v, generator=g, dtype=torch.float64)
    b = torch.randn(rows, v, generator=g, dtype=torch.float64)
    assert (a.numel() >= _chunked.MIN_ELEMENTS) == (rows == 130)

    def penalty(fn):
        x = a.clone().requires_grad_()
        val = fn(x, b).sum()
        (gx,) = torch.autograd.grad(val, x, create_graph=True)
        assert gx.requires_grad
        (val + 10.0 * (gx * gx).sum()).backward()
        return x.grad

    got = penalty(lambda x, y: _chunked.rowwise(_kl_rows, x, y))
    want = penalty(_kl_rows)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-16)


def test_row_blocked_second_backward_and_gradgradcheck():
    g = torch.Generator().manual_seed(9)
    a = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)

    def f(x, y):
        return _chunked.rowwise(_kl_rows, x, y, block_elements=8)

    assert torch.autograd.gradcheck(f, (a, b))
    assert torch.autograd.gradgradcheck(f, (a, b))


@pytest.mark.parametrize("div", ["forward_kl", "js", "skew_reverse_kl", "alpha"])
def test_distillation_gradgradcheck(div):
    g = torch.Generator().manual_seed(10)
    s = torch.randn(2, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[1, -100, 4], [0, 2, 3]])

    def f(a, b):
        return distillation_loss(a, b, div, temperature=1.5, labels=labels, hard_weight=0.3,
                                 chunk_size=4)

    assert torch.autograd.gradgradcheck(f, (s, t))
    idx, lpk = topk(t.detach(), 3)
    assert torch.autograd.gradgradcheck(
        lambda a: sparse_distillation_loss(a, idx, lpk, divergence="js", chunk_size=4), (s,))


def test_fused_gradgradcheck():
    g = torch.Generator().manual_seed(11)
    hs = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    ws = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    bs = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    ht = torch.randn(5, 4, generator=g, dtype=torch.float64)
    wt = torch.randn(6, 4, generator=g, dtype=torch.float64)
    assert torch.autograd.gradgradcheck(
        lambda a, b, c: fused_linear_distillation_loss(
            a, b, ht, wt, c, divergence="js", temperature=1.3, chunk_size=2,
            student_final_logit_softcapping=2.0, labels=torch.tensor([0, 1, -100, 3, 4]),
            hard_weight=0.2),
        (hs, ws, bs))


def test_double_backward_needs_live_inputs_or_raises(world1):
    s = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 6, dtype=torch.float64)
    loss = distillation_loss(s * 1.0, t)  # the logits tensor dies with the call
    with pytest.raises(RuntimeError, match="double backward.*freed"):
        torch.autograd.grad(loss, s, create_graph=True)
    loss = vocab_parallel_distillation_loss(s, t)
    with pytest.raises(RuntimeError, match="double backward.*not supported"):
        torch.autograd.grad(loss, s, create_graph=True)


def test_gradient_penalty_matches_plain_autograd():
    g = torch.Generator().manual_seed(12)
    s = torch.randn(3, 7, generator=g, dtype=torch.float64)
    t = torch.randn(3, 7, generator=g, dtype=torch.float64)

    def penalised(loss_fn):
        x = s.clone().requires_grad_()
        val = loss_fn(x)
        (gx,) = torch.autograd.grad(val, x, create_graph=True)
        (val + 3.0 * (gx * gx).sum()).backward()
        return x.grad

    got = penalised(lambda x: distillation_loss(x, t, "js"))
    want = penalised(lambda x: per_token(x, t, fdiv.get("js", beta=0.5))[0].mean())
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------------------------
# alpha is an order; skew= is the mixture weight
# --------------------------------------------------------------------------------------------


def _logits(seed=13):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 10, generator=g), torch.randn(4, 10, generator=g)


def test_alpha_divergence_takes_any_order(world1):
    s, t = _logits()
    for order in (2.0, -0.5, 0.3):
        ref = per_token(s.double(), t.double(), fdiv.get("alpha", alpha=order))[0].mean()
        for path in (dense, chunked, vocab_parallel):
            got = path(s, t, divergence="alpha", alpha=order)
            assert rel_err(got.double(), ref) <= 1e-5, (path.__name__, order)
    hs, ws, ht, wt = heads(seed=14)
    got = fused_linear_distillation_loss(hs, ws, ht, wt, divergence="alpha", alpha=2.0)
    want = distillation_loss(hs @ ws.T, ht @ wt.T, "alpha", alpha=2.0)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("div", ["skew_forward_kl", "skew_reverse_kl"])
def test_skew_weight_is_skew_and_alpha_is_deprecated(world1, div):
    s, t = _logits(15)
    reg = "skew_kl" if div == "skew_forward_kl" else "skew_reverse_kl"
    ref = per_token(s.double(), t.double(), member(reg, {"skew": 0.3}))[0].mean()
    hs, ws, ht, wt = heads(seed=16)
    fused_ref = distillation_loss(hs @ ws.T, ht @ wt.T, div, skew=0.3)
    calls = [
        (lambda **kw: distillation_loss(s, t, div, **kw), ref),
        (lambda **kw: sparse_distillation_loss(s, *topk(t, 10), divergence=div, **kw), ref),
        (lambda **kw: vocab_parallel_distillation_loss(s, t, div, **kw), ref),
        (lambda **kw: fused_linear_distillation_loss(hs, ws, ht, wt, divergence=div, **kw),
         fused_ref),
        (lambda **kw: vocab_parallel_fused_linear_distillation_loss(hs, ws, ht, wt,
                                                                    divergence=div, **kw),
         fused_ref),
    ]
    for call, want in calls:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            new = call(skew=0.3)
        assert rel_err(new.double(), want.double()) <= 1e-5
        with pytest.warns(DeprecationWarning, match="skew="):
            old = call(alpha=0.3)
        assert torch.equal(old, new)
        with pytest.raises(ValueError, match="skew= only"):
            call(alpha=0.3, skew=0.3)
        with pytest.raises(ValueError, match="skew"):
            call(skew=1.5)
    # the default weight is 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(distillation_loss(s, t, div), distillation_loss(s, t, div, skew=0.1))


def test_arguments_that_cannot_apply_are_errors():
    s, t = _logits(17)
    with pytest.raises(ValueError, match="alpha is the order"):
        distillation_loss(s, t, "js", alpha=0.5)
    with pytest.raises(ValueError, match="skew applies"):
        distillation_loss(s, t, "alpha", skew=0.5)
    with pytest.raises(ValueError, match="FDivergence"):
        distillation_loss(s, t, fdiv.get("kl"), alpha=0.5)


def test_module_faces_take_skew_and_warn_once_for_alpha():
    s, t = _logits(18)
    with pytest.warns(DeprecationWarning):
        crit = DistillationLoss("skew_reverse_kl", alpha=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = crit(s, t)  # no second warning at call time
        new = DistillationLoss("skew_reverse_kl", skew=0.2)
        assert torch.equal(got, new(s, t))
        assert "skew=0.2" in repr(new)
        assert torch.equal(DistillationLoss("alpha", alpha=2.0)(s, t),
                           distillation_loss(s, t, "alpha", alpha=2.0))
        idx, lpk = topk(t, 4)
        assert torch.equal(SparseDistillationLoss(divergence="skew_forward_kl", skew=0.2)(
            s, idx, lpk), sparse_distillation_loss(s, idx, lpk, "bucket", "skew_forward_kl",
                                                   skew=0.2))
        hs, ws, ht, wt = heads(seed=19)
        assert torch.equal(FusedLinearDistillationLoss("skew_forward_kl", skew=0.2)(
            hs, ws, ht, wt), fused_linear_distillation_loss(
            hs, ws, ht, wt, divergence="skew_forward_kl", skew=0.2))


# --------------------------------------------------------------------------------------------
# Mismatched vocabularies: truncate and renormalise; padding that would give inf is an error
# --------------------------------------------------------------------------------------------

# 152,064 vs 151,936 (a teacher head with 128 padding rows), scaled down by 576.
V_S, V_T = 256, 264


@pytest.mark.parametrize("div", ["forward_kl", "reverse_kl", "js"])
def test_truncate_drops_the_extra_entries_and_renormalises(div):
    g = torch.Generator().manual_seed(20)
    s = torch.randn(2, 5, V_S, generator=g)
    t = torch.randn(2, 5, V_T, generator=g)
    a = s.clone().requires_grad_()
    got = distillation_loss(a, t, div, vocab="truncate", reduction="none", temperature=1.5)
    want = distillation_loss(s, t[..., :V_S], div, reduction="none", temperature=1.5)
    torch.testing.assert_close(got, want)
    assert torch.isfinite(got).all()
    got.sum().backward()
    b = s.clone().requires_grad_()
    distillation_loss(b, t[..., :V_S], div, reduction="none", temperature=1.5).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
    # a student with the larger vocabulary: its extra entries get no distillation gradient,
    # and the cross-entropy uses its whole vocabulary
    lab = torch.randint(0, V_T, (2, 5), generator=g)
    big = t.clone().requires_grad_()
    out = distillation_loss(big, s, div, vocab="truncate", labels=lab, hard_weight=0.4,
                            return_components=True)
    out.loss.backward()
    ce = torch.nn.functional.cross_entropy(t.reshape(-1, V_T), lab.reshape(-1))
    torch.testing.assert_close(out.cross_entropy, ce)
    ref = big.detach().clone().requires_grad_()
    soft = distillation_loss(ref[..., :V_S], s, div)
    (0.6 * soft + 0.4 * torch.nn.functional.cross_entropy(ref.reshape(-1, V_T),
                                                          lab.reshape(-1))).backward()
    torch.testing.assert_close(big.grad, ref.grad)


def test_fused_truncate_matches_the_logits_path():
    g = torch.Generator().manual_seed(21)
    hs, ht = torch.randn(10, 6, generator=g), torch.randn(10, 8, generator=g)
    for vs, vt in ((V_S, V_T), (V_T, V_S)):  # a larger teacher, then a larger student
        ws, wt = torch.randn(vs, 6, generator=g) / 3, torch.randn(vt, 8, generator=g) / 3
        lab = torch.randint(0, vs, (10,), generator=g)
        w = ws.clone().requires_grad_()
        got = fused_linear_distillation_loss(hs, w, ht, wt, divergence="js", vocab="truncate",
                                             labels=lab, hard_weight=0.3, chunk_size=4,
                                             vocab_tile=50)
        got.backward()
        w2 = ws.clone().requires_grad_()
        want = distillation_loss(hs @ w2.T, ht @ wt.T, "js", vocab="truncate", labels=lab,
                                 hard_weight=0.3)
        want.backward()
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(w.grad, w2.grad, rtol=1e-5, atol=1e-7)


def test_padding_that_gives_inf_everywhere_is_an_error():
    g = torch.Generator().manual_seed(22)
    s = torch.randn(3, V_S, generator=g)
    t = torch.randn(3, V_T, generator=g)
    with pytest.raises(ValueError, match="inf for every token.*truncate"):
        distillation_loss(s, t, pad_vocab=True)
    with pytest.raises(ValueError, match="inf for every token"):
        distillation_loss(t, s, "reverse_kl", vocab="pad")
    # padding is exact where the extra entries carry no mass, and finite for JS
    t_masked = t.clone()
    t_masked[:, V_S:] = -math.inf
    assert torch.isfinite(distillation_loss(s, t_masked, pad_vocab=True))
    assert torch.isfinite(distillation_loss(s, t, "js", pad_vocab=True))
    hs, ht = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    with pytest.raises(ValueError, match="inf for every token"):
        fused_linear_distillation_loss(hs, torch.randn(V_S, 4), ht, torch.randn(V_T, 4),
                                       pad_vocab=True)
    with pytest.raises(ValueError, match="vocab='truncate'"):
        distillation_loss(s, t)
    with pytest.raises(ValueError, match="vocab"):
        distillation_loss(s, t, vocab="crop")
    with pytest.raises(ValueError, match="contradicts"):
        distillation_loss(s, t, vocab="truncate", pad_vocab=True)
