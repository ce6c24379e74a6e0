"""fused_linear_distillation_loss against the materialised computation in float64."""

from __future__ import annotations

import math

import pytest
import torch

from divergences import fdiv
from divergences.losses import (
    DistillationOutput,
    FusedLinearDistillationLoss,
    distillation_loss,
    fused_linear_distillation_loss,
)

from ._members import member
from ._ref import keep_mask, per_token, reduce, rel_err

B, T, HS, HT, V = 3, 13, 16, 24, 123


def make(seed=0, dtype=torch.float32, v_t=V, bias=True):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype)

    hs, ws = r(B, T, HS), r(V, HS, scale=0.5)
    ht, wt = r(B, T, HT), r(v_t, HT, scale=0.5)
    bs = r(V) if bias else None
    bt = r(v_t) if bias else None
    lab = torch.randint(0, V, (B, T), generator=g)
    lab = torch.where(torch.rand(B, T, generator=g) < 0.3, torch.full_like(lab, -100), lab)
    return hs, ws, bs, ht, wt, bt, lab


def materialised(hs, ws, bs, ht, wt, bt, s_scale=1.0, t_scale=1.0, s_cap=None, t_cap=None):
    def logits(h, w, b, scale, cap):
        z = h @ w.T
        if b is not None:
            z = z + b
        z = z * scale
        return cap * torch.tanh(z / cap) if cap is not None else z

    return logits(hs, ws, bs, s_scale, s_cap), logits(ht, wt, bt, t_scale, t_cap)


@pytest.mark.parametrize(
    ("div", "kw", "name", "params"),
    [("forward_kl", {}, "kl", {}), ("js", {"beta": 0.3}, "js", {"beta": 0.3}),
     ("reverse_kl", {}, "reverse_kl", {}),
     ("skew_reverse_kl", {"skew": 0.1}, "skew_reverse_kl", {"skew": 0.1}),
     ("tv", {}, "tv", {})],
)
@pytest.mark.parametrize("reduction", ["mean", "sum", "batchmean"])
def test_matches_materialised_float64(div, kw, name, params, reduction):
    fd = member(name, params)
    hs, ws, bs, ht, wt, bt, lab = make(seed=1)
    opts = {"s_scale": 0.8, "t_scale": 1.2, "s_cap": 5.0, "t_cap": None}
    leaves = [x.clone().requires_grad_() for x in (hs, ws, bs)]
    loss = fused_linear_distillation_loss(
        *leaves[:2], ht, wt, student_bias=leaves[2], teacher_bias=bt, divergence=div, **kw,
        temperature=1.7, labels=lab, hard_weight=0.2, reduction=reduction, chunk_size=10,
        student_logit_scale=0.8, teacher_logit_scale=1.2, student_final_logit_softcapping=5.0)
    ref_leaves = [x.double().requires_grad_() for x in (hs, ws, bs)]
    zs, zt = materialised(ref_leaves[0], ref_leaves[1], ref_leaves[2], ht.double(),
                          wt.double(), bt.double(), **opts)
    total, _, _ = per_token(zs, zt, fd, temperature=1.7, labels=lab, hard_weight=0.2)
    ref = reduce(total, keep_mask((B, T), lab), reduction, True)
    assert loss.dtype == torch.float32
    assert rel_err(loss, ref) <= 1e-5
    (loss * 1.3).backward()
    (ref * 1.3).backward()
    for a, b in zip(leaves, ref_leaves):
        assert rel_err(a.grad, b.grad) <= 2e-5


def test_equals_distillation_loss_on_materialised_logits():
    hs, ws, bs, ht, wt, bt, lab = make(seed=2)
    a = fused_linear_distillation_loss(hs, ws, ht, wt, bs, bt, divergence="js", labels=lab,
                                       reduction="none", return_components=True)
    zs, zt = materialised(hs, ws, bs, ht, wt, bt)
    b = distillation_loss(zs, zt, "js", labels=lab, reduction="none", return_components=True)
    assert isinstance(a, DistillationOutput)
    for x, y in zip(a, b):
        assert torch.allclose(x, y, rtol=1e-5, atol=1e-6)


def test_no_bias_and_pad_vocab():
    hs, ws, _, ht, wt, _, lab = make(seed=3, v_t=130, bias=False)
    with pytest.raises(ValueError, match=r"V=123.*V=130"):
        fused_linear_distillation_loss(hs, ws, ht, wt)
    a = hs.clone().requires_grad_()
    w = ws.clone().requires_grad_()
    loss = fused_linear_distillation_loss(a, w, ht, wt, divergence="js", labels=lab,
                                          pad_vocab=True, chunk_size=7)
    _zs, zt = materialised(hs, ws, None, ht, wt, None)
    a2 = hs.clone().requires_grad_()
    w2 = ws.clone().requires_grad_()
    ref = distillation_loss(a2 @ w2.T, zt, "js", labels=lab, pad_vocab=True)
    assert torch.allclose(loss, ref, rtol=1e-5)
    loss.backward()
    ref.backward()
    assert rel_err(a.grad, a2.grad) <= 1e-5 and rel_err(w.grad, w2.grad) <= 1e-5


def test_bf16():
    hs, ws, bs, ht, wt, bt, lab = make(seed=4, dtype=torch.bfloat16)
    leaves = [x.clone().requires_grad_() for x in (hs, ws, bs)]
    loss = fused_linear_distillation_loss(*leaves[:2], ht, wt, leaves[2], bt, divergence="js",
                                          labels=lab)
    assert loss.dtype == torch.float32
    # Reference: the same bf16 logits (the matmul is bf16, as in the model), then float64.
    zs, zt = materialised(hs, ws, bs, ht, wt, bt)
    fd = fdiv.get("js", beta=0.5)
    total, _, _ = per_token(zs, zt, fd, labels=lab)
    ref = total.sum() / (lab != -100).sum()
    assert abs(loss.item() - ref.item()) <= 1e-5 * abs(ref.item())
    loss.backward()
    for x in leaves:
        assert x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad).all()
    # Gradient of the weight against float64 through the bf16-rounded logits: bf16-level.
    w64 = ws.double().requires_grad_()
    zs64 = hs.double() @ w64.T + bs.double()
    t64, _, _ = per_token(zs64, zt, fd, labels=lab)
    (t64.sum() / (lab != -100).sum()).backward()
    assert rel_err(leaves[1].grad, w64.grad) <= 2e-2


def test_no_grad_and_values_only_none_reduction():
    hs, ws, bs, ht, wt, bt, lab = make(seed=5)
    with torch.no_grad():
        a = fused_linear_distillation_loss(hs, ws, ht, wt, bs, bt, labels=lab, reduction="none")
    zs, zt = materialised(hs, ws, bs, ht, wt, bt)
    assert torch.allclose(a, distillation_loss(zs, zt, labels=lab, reduction="none"),
                          rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="values only"):
        fused_linear_distillation_loss(hs.requires_grad_(), ws, ht, wt, reduction="none")


def test_all_ignored_and_num_items():
    hs, ws, _bs, ht, wt, _bt, _ = make(seed=6)
    a = hs.clone().requires_grad_()
    w = ws.clone().requires_grad_()
    loss = fused_linear_distillation_loss(a, w, ht, wt, labels=torch.full((B, T), -100))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(a.grad, torch.zeros_like(a)) and torch.equal(w.grad, torch.zeros_like(w))
    s1 = fused_linear_distillation_loss(hs, ws, ht, wt, num_items_in_batch=torch.tensor(11))
    s2 = fused_linear_distillation_loss(hs, ws, ht, wt, reduction="sum") / 11
    assert torch.allclose(s1, s2)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(7)
    hs = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    ws = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    bs = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    ht = torch.randn(5, 4, generator=g, dtype=torch.float64)
    wt = torch.randn(6, 4, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda a, b, c: fused_linear_distillation_loss(
            a, b, ht, wt, c, divergence="js", temperature=1.3, chunk_size=2,
            student_final_logit_softcapping=2.0, reduction="sum"),
        (hs, ws, bs), fast_mode=True)


def test_second_backward_forms_the_gradients_again():
    hs, ws, _, ht, wt, _, _ = make(seed=8, bias=False)
    w = ws.clone().requires_grad_()
    loss = fused_linear_distillation_loss(hs, w, ht, wt)
    loss.backward(retain_graph=True)
    first = w.grad.clone()
    w.grad = None
    loss.backward()
    assert torch.equal(w.grad, first)


def test_errors():
    hs, ws, _bs, ht, wt, bt, _ = make(seed=9)
    with pytest.raises(ValueError, match="student_weight must have shape"):
        fused_linear_distillation_loss(hs, ws[:, :3], ht, wt)
    with pytest.raises(ValueError, match="teacher_bias must have shape"):
        fused_linear_distillation_loss(hs, ws, ht, wt, teacher_bias=bt[:3])
    with pytest.raises(TypeError, match="student_hidden"):
        fused_linear_distillation_loss(hs.long(), ws, ht, wt)
    with pytest.raises(TypeError, match="student_bias"):
        fused_linear_distillation_loss(hs, ws, ht, wt, student_bias=[0.0] * V)
    with pytest.raises(ValueError, match="same batch shape"):
        fused_linear_distillation_loss(hs, ws, ht[:1], wt)
    with pytest.raises(ValueError, match="student_logit_scale"):
        fused_linear_distillation_loss(hs, ws, ht, wt, student_logit_scale=0.0)
    with pytest.raises(ValueError, match="teacher_final_logit_softcapping"):
        fused_linear_distillation_loss(hs, ws, ht, wt, teacher_final_logit_softcapping=-1.0)
    with pytest.raises(ValueError, match="needs labels"):
        fused_linear_distillation_loss(hs, ws, ht, wt, hard_weight=0.5)


def test_module_face():
    hs, ws, bs, ht, wt, bt, lab = make(seed=10)
    crit = FusedLinearDistillationLoss("js", beta=0.4, temperature=1.5,
                                       teacher_final_logit_softcapping=30.0)
    want = fused_linear_distillation_loss(hs, ws, ht, wt, bs, bt, divergence="js", beta=0.4,
                                          temperature=1.5, labels=lab,
                                          teacher_final_logit_softcapping=30.0)
    assert torch.equal(crit(hs, ws, ht, wt, bs, bt, labels=lab), want)
    assert "js" in repr(crit)
    assert math.isfinite(want.item())


def test_compiles_without_graph_breaks():
    hs, ws, _, ht, wt, _, lab = make(seed=11, bias=False)

    def f(a, w):
        return fused_linear_distillation_loss(a, w, ht, wt, divergence="js", labels=lab,
                                              hard_weight=0.1, chunk_size=20,
                                              student_final_logit_softcapping=3.0)

    a, w = hs.clone().requires_grad_(), ws.clone().requires_grad_()
    want = f(a, w)
    want.backward()
    b, w2 = hs.clone().requires_grad_(), ws.clone().requires_grad_()
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(b, w2)
    got.backward()
    assert torch.allclose(got, want, rtol=1e-6)
    assert torch.allclose(b.grad, a.grad, rtol=1e-5, atol=1e-8)
    assert torch.allclose(w2.grad, w.grad, rtol=1e-5, atol=1e-8)


# --------------------------------------------------------------------------------------------
# The student's entropy (DistillationOutput.student_entropy), from the online log-sum-exp
# --------------------------------------------------------------------------------------------


def fused_entropy(hs, ws, ht, wt, bs=None, bt=None, *, grad, **kw):
    hs = hs.detach().clone().requires_grad_(grad)
    out = fused_linear_distillation_loss(hs, ws, ht, wt, bs, bt, return_components=True, **kw)
    assert isinstance(out, DistillationOutput)
    return out.student_entropy


@pytest.mark.parametrize("grad", [False, True], ids=["values", "grad"])
@pytest.mark.parametrize("sizes", [{}, {"chunk_size": 4, "vocab_tile": 9},
                                   {"chunk_bytes": 1}], ids=["auto", "small", "bytes1"])
def test_student_entropy_matches_categorical(grad, sizes):
    from .test_distill import entropy_ref

    hs, ws, bs, ht, wt, bt, lab = make(seed=20)
    bs = bs.clone()
    bs[::7] = -math.inf  # masked vocabulary entries: zero mass
    keep = lab != -100
    opts = {"temperature": 1.7, "student_logit_scale": 0.8,
            "student_final_logit_softcapping": 5.0}
    got = fused_entropy(hs, ws, ht, wt, bs, bt, grad=grad, labels=lab, divergence="js",
                        **opts, **sizes)
    assert got.shape == (B, T) and got.dtype == torch.float32
    assert not got.requires_grad and got.grad_fn is None
    zs, zt = materialised(hs, ws, bs, ht, wt, bt, s_scale=0.8, s_cap=5.0)
    torch.testing.assert_close(got[keep], entropy_ref(zs, 1.7)[keep])
    assert torch.equal(got[~keep], torch.zeros_like(got[~keep]))
    # the logits path on the materialised logits: the same values
    dense = distillation_loss(zs, zt, "js", temperature=1.7, labels=lab,
                              return_components=True).student_entropy
    torch.testing.assert_close(got, dense, rtol=2e-7, atol=1e-6)


@pytest.mark.parametrize("grad", [False, True], ids=["values", "grad"])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_student_entropy_at_extreme_logits(grad, temperature):
    from .test_distill import entropy_ref, extreme_student

    rows, _ = extreme_student()
    n, v = rows.shape
    # Token i's logits are row i (hs the identity picks column i of ws), finite there; the
    # bias masks every fourth entry with -inf, on top of +-1e4.
    hs = torch.eye(n)
    ws = rows.nan_to_num(neginf=-3e4).T.contiguous()  # (V, n): z = hs @ ws.T = rows
    bs = torch.zeros(v)
    bs[::4] = -math.inf
    g = torch.Generator().manual_seed(51)
    ht, wt = torch.randn(n, 5, generator=g), torch.randn(v, 5, generator=g)
    got = fused_entropy(hs, ws, ht, wt, bs, grad=grad,
                        temperature=temperature, chunk_size=5, vocab_tile=8)
    z = hs @ ws.T + bs
    assert torch.isfinite(got).all() and (got >= 0).all()
    torch.testing.assert_close(got, entropy_ref(z, temperature, exact=True))
    assert got[4].item() == 0.0 and got[5].item() == 0.0  # one-hot: 0 exactly, and +0
    assert not got[4].signbit() and not got[5].signbit()
    kept = v - len(range(0, v, 4))
    for row in (6, 7, 8):  # uniform over the unmasked entries
        assert abs(got[row].item() - math.log(kept)) <= 4 * v * 2.0**-24
    assert abs(got[9].item() - math.log(2.0)) <= 1e-6


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("grad", [False, True], ids=["values", "grad"])
def test_student_entropy_half_precision_heads(dtype, grad):
    from .test_distill import entropy_ref

    hs, ws, bs, ht, wt, bt, lab = make(seed=21, dtype=dtype)
    keep = lab != -100
    got = fused_entropy(hs, ws, ht, wt, bs, bt, grad=grad, labels=lab, temperature=2.0,
                        chunk_size=6, vocab_tile=17)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    # against the same half-precision logits (the head's matmul rounds to half, as the
    # model's does), upcast: float32 precision
    zs, _ = materialised(hs, ws, bs, ht, wt, bt)
    torch.testing.assert_close(got[keep], entropy_ref(zs, 2.0)[keep])
    # against float32 logits from the upcast inputs: within the half rounding of the logits
    z32, _ = materialised(hs.float(), ws.float(), bs.float(), ht.float(), wt.float(),
                          bt.float())
    tol = 1e-3 if dtype == torch.float16 else 1e-2
    torch.testing.assert_close(got[keep], entropy_ref(z32, 2.0)[keep], rtol=0.0, atol=tol)


def test_student_entropy_nan_vocab_and_components():
    from .test_distill import entropy_ref

    hs, ws, _, ht, wt, _, lab = make(seed=22, v_t=130, bias=False)
    hs = hs.clone()
    lab[0, 0], lab[0, 1] = 2, -100
    hs[0, 0, 3] = math.nan  # counted: NaN entropy (and loss)
    hs[0, 1, 3] = math.nan  # dropped: no effect
    keep = (lab != -100) & ~torch.isnan(hs).any(-1)
    for grad in (False, True):
        for vocab in ("pad", "truncate"):
            got = fused_entropy(hs, ws, ht, wt, grad=grad, labels=lab, vocab=vocab,
                                divergence="reverse_kl", chunk_size=5, vocab_tile=11)
            assert math.isnan(got[0, 0].item()) and got[0, 1].item() == 0.0
            # padding the teacher leaves the student's V=123 whole
            zs, _ = materialised(hs.nan_to_num(), ws, None, ht, wt, None)
            torch.testing.assert_close(got[keep], entropy_ref(zs)[keep])
    # a larger student truncated to the teacher's first 123 entries, renormalised there
    got = fused_entropy(ht, wt, hs.nan_to_num(), ws, grad=True, vocab="truncate",
                        chunk_size=5)
    zt, _ = materialised(ht, wt[:V], None, hs, ws, None)
    torch.testing.assert_close(got, entropy_ref(zt))
    # through the module, and only with the components
    assert isinstance(fused_linear_distillation_loss(ht, wt[:V], hs.nan_to_num(), ws),
                      torch.Tensor)
    out = FusedLinearDistillationLoss("js")(ht, wt[:V], hs.nan_to_num(), ws,
                                            return_components=True)
    torch.testing.assert_close(out.student_entropy, entropy_ref(zt))


def test_student_entropy_compiles_without_graph_breaks():
    hs, ws, bs, ht, wt, _, lab = make(seed=23)
    bs = bs.clone()
    bs[::5] = -math.inf

    def f(a):
        out = fused_linear_distillation_loss(a, ws, ht, wt, bs, labels=lab, chunk_size=20,
                                             vocab_tile=30, temperature=1.5,
                                             return_components=True)
        return out.loss, out.student_entropy

    want = f(hs.clone().requires_grad_())[1]
    loss, got = torch.compile(f, fullgraph=True, backend="aot_eager")(
        hs.clone().requires_grad_())
    loss.backward()
    torch.testing.assert_close(got, want)


def test_logits_never_materialised():
    from .test_distill import _BigAllocations

    n, v = 96, 400
    g = torch.Generator().manual_seed(12)
    hs = torch.randn(n, 8, generator=g, requires_grad=True)
    ws = torch.randn(v, 8, generator=g, requires_grad=True)
    ht, wt = torch.randn(n, 12, generator=g), torch.randn(v, 12, generator=g)
    with _BigAllocations(threshold=n * v // 8) as rec:
        loss = fused_linear_distillation_loss(hs, ws, ht, wt, divergence="js", chunk_size=8)
        loss.backward()
    assert rec.seen == [], rec.seen  # nothing of even N*V/8 elements
    assert hs.grad is not None and ws.grad is not None
    with _BigAllocations(threshold=n * v // 8) as rec:  # the entropy beside it: still none
        out = fused_linear_distillation_loss(hs, ws, ht, wt, divergence="js", chunk_size=8,
                                             return_components=True)
        out.loss.backward()
    assert rec.seen == [], rec.seen
    assert out.student_entropy.shape == (n,)
