"""sparse_distillation_loss against the materialised dense computation in float64."""

from __future__ import annotations

import math

import pytest
import torch

from divergences import fdiv
from divergences.losses import (
    DistillationOutput,
    SparseDistillationLoss,
    distillation_loss,
    sparse_distillation_loss,
)

from ._members import member
from ._ref import keep_mask, reduce, rel_err

SHAPE = (3, 47, 123)
K = 20

DIVS = [("forward_kl", {}, "kl", {}), ("reverse_kl", {}, "reverse_kl", {}),
        ("js", {"beta": 0.5}, "js", {"beta": 0.5}),
        ("skew_forward_kl", {"skew": 0.1}, "skew_kl", {"skew": 0.1}),
        ("skew_reverse_kl", {"skew": 0.1}, "skew_reverse_kl", {"skew": 0.1}),
        ("tv", {}, "tv", {}), ("squared_hellinger", {}, "squared_hellinger", {})]


def make(shape=SHAPE, k=K, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    s = (2.0 * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
    t = 2.0 * torch.randn(shape, generator=g, dtype=torch.float64)
    top = torch.log_softmax(t, -1).topk(k)
    lab = torch.randint(0, shape[-1], shape[:-1], generator=g)
    lab = torch.where(torch.rand(shape[:-1], generator=g) < 0.3, torch.full_like(lab, -100), lab)
    return s, top.indices, top.values.to(dtype), lab


def dense_reference(s, idx, lpk, tail, fd, temperature=1.0):
    """Per token, float64, materialising the full student and a dense teacher."""
    lq = torch.log_softmax(s.double() / temperature, -1)
    lpk = lpk.double()
    if tail == "renormalize":
        lpk = lpk - torch.logsumexp(lpk, -1, keepdim=True)
    if tail in ("zero", "renormalize"):
        lp = torch.full_like(lq, -math.inf).scatter(-1, idx, lpk)
        return fdiv.evaluate(fd, lp, lq)
    # bucket: the k ids plus one atom holding everything else, on both sides.
    q = lq.exp()
    q_k = q.gather(-1, idx)
    in_k = torch.zeros_like(q, dtype=torch.bool).scatter(-1, idx, True)
    q_tail = torch.where(in_k, 0.0, q).sum(-1, keepdim=True)
    p_k = lpk.exp()
    p_tail = (1.0 - p_k.sum(-1, keepdim=True)).clamp_min(0.0)
    lp = torch.cat([lpk, p_tail.log()], -1)
    lq_b = torch.cat([q_k.log(), q_tail.log()], -1)
    return fdiv.evaluate(fd, lp, lq_b)


@pytest.mark.parametrize("tail", ["bucket", "zero", "renormalize"])
@pytest.mark.parametrize("case", DIVS, ids=[d[0] for d in DIVS])
def test_matches_dense_reference(tail, case):
    div, kw, name, params = case
    fd = member(name, params)
    s, idx, lpk, lab = make(seed=1)
    s.requires_grad_()
    got = sparse_distillation_loss(s, idx, lpk, tail=tail, divergence=div, **kw,
                                   temperature=1.5, labels=lab, reduction="none", chunk_size=50)
    s64 = s.detach().double().requires_grad_()
    ref = dense_reference(s64, idx, lpk, tail, fd, temperature=1.5)
    ref = torch.where(lab != -100, ref, torch.zeros_like(ref))
    fin = torch.isfinite(ref)
    assert torch.equal(torch.isfinite(got), fin)
    assert rel_err(got[fin], ref[fin]) <= 1e-5
    w = torch.randn(ref.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    w = torch.where(fin, w, torch.zeros_like(w))
    (got.double().nan_to_num(posinf=0.0) * w).sum().backward()
    (ref.nan_to_num(posinf=0.0) * w).sum().backward()
    assert torch.isfinite(s.grad).all()
    assert rel_err(s.grad, s64.grad) <= 1e-5


@pytest.mark.parametrize("reduction", ["mean", "sum", "batchmean", "none"])
def test_reductions_hard_weight_and_components(reduction):
    fd = fdiv.get("js", beta=0.5)
    s, idx, lpk, lab = make(seed=3)
    s.requires_grad_()
    out = sparse_distillation_loss(s, idx, lpk, divergence="js", labels=lab, hard_weight=0.3,
                                   temperature=2.0, temperature_scaling=True,
                                   reduction=reduction, return_components=True)
    assert isinstance(out, DistillationOutput)
    s64 = s.detach().double().requires_grad_()
    keep = keep_mask(SHAPE[:-1], lab)
    d = 4.0 * dense_reference(s64, idx, lpk, "bucket", fd, temperature=2.0)
    safe = torch.where(keep, lab, 0)
    ce = -torch.log_softmax(s64, -1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    total = torch.where(keep, 0.7 * d + 0.3 * ce, torch.zeros_like(d))
    ref = reduce(total, keep, reduction, True)
    assert rel_err(out.loss.detach(), ref.detach()) <= 1e-5
    assert rel_err(out.cross_entropy, reduce(torch.where(keep, ce, 0.0), keep, reduction,
                                             True).detach()) <= 1e-5
    (out.loss.double() * 1.7).sum().backward()
    (ref * 1.7).sum().backward()
    assert rel_err(s.grad, s64.grad) <= 1e-5


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_student_entropy(temperature):
    s, idx, lpk, lab = make(seed=5)
    out = sparse_distillation_loss(s, idx, lpk, labels=lab, temperature=temperature,
                                   return_components=True, chunk_size=3)
    keep = keep_mask(SHAPE[:-1], lab)
    want = torch.distributions.Categorical(logits=s.double() / temperature).entropy()
    assert out.student_entropy.shape == SHAPE[:-1]
    assert not out.student_entropy.requires_grad
    assert rel_err(out.student_entropy[keep].double(), want[keep]) <= 1e-5
    assert bool((out.student_entropy[~keep] == 0).all())
    # the same values as the dense loss's field, which reads the same student
    dense = distillation_loss(s, s.detach(), labels=lab, temperature=temperature,
                              return_components=True)
    torch.testing.assert_close(out.student_entropy, dense.student_entropy)


@pytest.mark.parametrize("tail", ["bucket", "zero", "renormalize"])
def test_full_topk_equals_dense_loss(tail):
    g = torch.Generator().manual_seed(4)
    s, t = torch.randn(5, 7, 31, generator=g), torch.randn(5, 7, 31, generator=g)
    top = torch.log_softmax(t, -1).topk(31)
    for div in ("forward_kl", "reverse_kl", "js"):
        a = sparse_distillation_loss(s, top.indices, top.values, tail=tail, divergence=div,
                                     reduction="none")
        b = distillation_loss(s, t, div, reduction="none")
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_bucket_with_k_equal_v_has_finite_gradient():
    g = torch.Generator().manual_seed(5)
    s = torch.randn(4, 9, generator=g, requires_grad=True)
    top = torch.log_softmax(torch.randn(4, 9, generator=g), -1).topk(9)
    sparse_distillation_loss(s, top.indices, top.values, divergence="reverse_kl").backward()
    assert torch.isfinite(s.grad).all()


def test_neg_inf_student_logits_and_teacher_logprobs():
    s, idx, lpk, _ = make((2, 5, 40), k=6, seed=6)
    s, lpk = s.clone(), lpk.clone()
    lpk[0, :, -1] = -math.inf  # stored zero mass
    s[..., :2] = -math.inf  # masked vocabulary entries of the student
    in_top = torch.zeros(2, 5, 40, dtype=torch.bool).scatter(-1, idx, True)
    s.requires_grad_()
    fd = fdiv.get("js", beta=0.5)
    got = sparse_distillation_loss(s, idx, lpk, divergence="js", reduction="none")
    ref = dense_reference(s.detach(), idx, lpk, "bucket", fd)
    assert torch.allclose(got.double(), ref, rtol=1e-5, atol=1e-7)
    got.sum().backward()
    assert torch.isfinite(s.grad).all()
    # Masked student entries outside the top-k have no mass and get no gradient.
    assert torch.equal(s.grad[..., :2][~in_top[..., :2]],
                       torch.zeros_like(s.grad[..., :2][~in_top[..., :2]]))


def test_bf16_student():
    s, idx, lpk, lab = make((2, 9, 64), k=8, seed=7, dtype=torch.bfloat16)
    s.requires_grad_()
    loss = sparse_distillation_loss(s, idx, lpk, divergence="js", labels=lab)
    assert loss.dtype == torch.float32
    s64 = s.detach().double().requires_grad_()
    per = dense_reference(s64, idx, lpk, "bucket", fdiv.get("js", beta=0.5))
    keep = lab != -100
    ref = torch.where(keep, per, 0.0).sum() / keep.sum()
    assert abs(loss.item() - ref.item()) <= 1e-6 * abs(ref.item())
    loss.backward()
    ref.backward()
    rounding = rel_err(s64.grad.to(torch.bfloat16), s64.grad)
    assert rel_err(s.grad, s64.grad) <= rounding * 1.05 + 1e-7


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(8)
    s = torch.randn(2, 3, 7, generator=g, dtype=torch.float64, requires_grad=True)
    top = torch.log_softmax(torch.randn(2, 3, 7, generator=g, dtype=torch.float64), -1).topk(3)
    for tail in ("bucket", "renormalize"):
        assert torch.autograd.gradcheck(
            lambda a, tail=tail: sparse_distillation_loss(
                a, top.indices, top.values, tail=tail, divergence="js", reduction="none",
                chunk_size=4),
            (s,), fast_mode=True)


def test_compiles_without_graph_breaks():
    s, idx, lpk, lab = make((2, 4, 17), k=5, seed=9)

    def f(a):
        return sparse_distillation_loss(a, idx, lpk, divergence="skew_forward_kl", labels=lab,
                                        hard_weight=0.2, chunk_size=3)

    a = s.clone().requires_grad_()
    want = f(a)
    want.backward()
    b = s.clone().requires_grad_()
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(b)
    got.backward()
    assert torch.allclose(got, want, rtol=1e-6)
    assert torch.allclose(b.grad, a.grad, rtol=1e-5, atol=1e-9)


def test_all_ignored():
    s, idx, lpk, _ = make((2, 3, 11), k=4, seed=10)
    s.requires_grad_()
    loss = sparse_distillation_loss(s, idx, lpk, labels=torch.full((2, 3), -100))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(s.grad, torch.zeros_like(s))


def test_errors():
    s, idx, lpk, _ = make((2, 3, 11), k=4, seed=11)
    with pytest.raises(ValueError, match="tail"):
        sparse_distillation_loss(s, idx, lpk, tail="spread")
    with pytest.raises(TypeError, match="integer"):
        sparse_distillation_loss(s, idx.float(), lpk)
    with pytest.raises(ValueError, match="batch shape"):
        sparse_distillation_loss(s, idx[:1], lpk[:1])
    with pytest.raises(ValueError, match="shape of teacher_topk_indices"):
        sparse_distillation_loss(s, idx, lpk[..., :3])
    with pytest.raises(TypeError, match="floating"):
        sparse_distillation_loss(s, idx, idx)
    with pytest.raises(ValueError, match=r"\[0, 11\)"):
        sparse_distillation_loss(s, idx + 11, lpk)
    rep = idx.clone()
    rep[..., 1] = rep[..., 0]
    with pytest.raises(ValueError, match="repeated"):
        sparse_distillation_loss(s, rep, lpk)
    with pytest.raises(ValueError, match="exceeds 1"):
        sparse_distillation_loss(s, idx, lpk + 1.0)
    with pytest.raises(ValueError, match="NaN"):
        sparse_distillation_loss(s, idx, lpk.masked_fill(idx == idx[0, 0, 0], math.nan))
    with pytest.raises(ValueError, match="renormalize"):
        sparse_distillation_loss(s, idx, torch.full_like(lpk, -math.inf), tail="renormalize")
    with pytest.raises(ValueError, match="k=12"):
        big = torch.arange(12).expand(2, 3, 12)
        sparse_distillation_loss(s, big, torch.full((2, 3, 12), -3.0))
    with pytest.raises(ValueError, match="needs labels"):
        sparse_distillation_loss(s, idx, lpk, hard_weight=0.1)
    # validate=False skips the data checks (no host synchronisation).
    out = sparse_distillation_loss(s, idx, lpk + 1.0, validate=False)
    assert torch.isfinite(out)


def test_module_face():
    s, idx, lpk, lab = make((2, 5, 21), k=4, seed=12)
    crit = SparseDistillationLoss(tail="zero", divergence="reverse_kl", reduction="sum")
    want = sparse_distillation_loss(s, idx, lpk, tail="zero", divergence="reverse_kl",
                                    labels=lab, reduction="sum")
    assert torch.equal(crit(s, idx, lpk, labels=lab), want)
    assert "zero" in repr(crit)
    with pytest.raises(ValueError, match="tail"):
        SparseDistillationLoss(tail="nope")


def test_only_the_gradient_is_n_by_v():
    from .test_distill import _BigAllocations

    s, idx, lpk, lab = make((64, 500), k=16, seed=13)
    s.requires_grad_()
    with _BigAllocations(threshold=64 * 500 // 4) as rec:
        sparse_distillation_loss(s, idx, lpk, divergence="js", labels=lab, chunk_size=8,
                                 validate=False).backward()
    assert rec.seen == ["aten.empty.memory_format"], rec.seen  # the stored gradient only
