"""distillation_loss and DistillationLoss against float64 references from the registry."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from divergences import fdiv
from divergences.losses import DistillationLoss, DistillationOutput, distillation_loss
from divergences.losses import _chunked_distill as cd

from ._members import member
from ._ref import keep_mask, per_token, reduce, rel_err

SHAPE = (3, 47, 123)

# (divergence argument, kwargs, the registry member that defines it as D_f(teacher||student))
CASES = [
    ("forward_kl", {}, ("kl", {})),
    ("reverse_kl", {}, ("reverse_kl", {})),
    ("js", {"beta": 0.5}, ("js", {"beta": 0.5})),
    ("js", {"beta": 0.2}, ("js", {"beta": 0.2})),
    ("js", {"beta": 0.0}, ("kl", {})),
    ("js", {"beta": 1.0}, ("reverse_kl", {})),
    ("skew_forward_kl", {"skew": 0.1}, ("skew_kl", {"skew": 0.1})),
    ("skew_reverse_kl", {"skew": 0.1}, ("skew_reverse_kl", {"skew": 0.1})),
    ("tv", {}, ("tv", {})),
    ("alpha", {"alpha": 0.3}, ("alpha", {"alpha": 0.3})),
] + [(name, {}, (name, {})) for name in fdiv.names()
     if name not in ("kl", "reverse_kl", "js", "skew_kl", "skew_reverse_kl", "tv", "alpha")]


def case_id(c):
    return c[0] + "".join(f"-{k}{v}" for k, v in c[1].items())


def logits(shape=SHAPE, seed=0, dtype=torch.float32, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    s = (scale * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
    t = (scale * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
    return s, t


def labels_for(shape, seed=1, frac_ignored=0.3):
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, shape[-1], shape[:-1], generator=g)
    drop = torch.rand(shape[:-1], generator=g) < frac_ignored
    return torch.where(drop, torch.full_like(lab, -100), lab)


def check_against_reference(s, t, fd, *, kw, ref_kw, reduction, tol_v, tol_g,
                            num_items=None, teacher_grad=False):
    s = s.detach().clone().requires_grad_()
    t = t.detach().clone().requires_grad_(teacher_grad)
    out = distillation_loss(s, t, **kw, reduction=reduction, num_items_in_batch=num_items)
    s64 = s.detach().double().requires_grad_()
    t64 = t.detach().double().requires_grad_(teacher_grad)
    total, _, _ = per_token(s64, t64, **ref_kw)
    keep = keep_mask(s.shape[:-1], ref_kw.get("labels"), ref_kw.get("mask"))
    masked = ref_kw.get("labels") is not None or ref_kw.get("mask") is not None
    ref = reduce(total, keep, reduction, masked, num_items)
    assert out.dtype == (torch.float64 if s.dtype == torch.float64 else torch.float32)
    assert out.shape == ref.shape
    assert rel_err(out.detach(), ref.detach()) <= tol_v
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    (out.double() * w).sum().backward()
    (ref * w).sum().backward()
    assert torch.isfinite(s.grad).all()
    assert rel_err(s.grad, s64.grad) <= tol_g
    if teacher_grad:
        assert rel_err(t.grad, t64.grad) <= tol_g


# --------------------------------------------------------------------------------------------
# Every divergence, temperature, against float64 (per token: "none" with random weights)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.7])
def test_every_divergence_matches_float64_reference(case, temperature):
    div, kw, (name, params) = case
    fd = member(name, params)
    s, t = logits()
    labels = labels_for(SHAPE)
    check_against_reference(
        s, t, fd,
        kw={"divergence": div, **kw, "temperature": temperature, "labels": labels,
            "chunk_size": 64},
        ref_kw={"fd": fd, "temperature": temperature, "labels": labels},
        reduction="none", tol_v=1e-5, tol_g=1e-5,
    )


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("pattern", ["all", "labels", "mask", "labels+mask", "all_ignored"])
@pytest.mark.parametrize("div", ["js", "reverse_kl"])
def test_reductions_and_mask_patterns(reduction, pattern, div):
    fd = fdiv.get("js", beta=0.5) if div == "js" else fdiv.get("reverse_kl")
    s, t = logits(seed=3)
    batch = SHAPE[:-1]
    labels = mask = None
    if "labels" in pattern:
        labels = labels_for(SHAPE, seed=4)
    if "mask" in pattern:
        mask = (torch.rand(batch, generator=torch.Generator().manual_seed(5)) > 0.4).long()
    if pattern == "all_ignored":
        labels = torch.full(batch, -100)
    check_against_reference(
        s, t, fd,
        kw={"divergence": div, "labels": labels, "mask": mask, "chunk_size": 64,
            "temperature": 1.3},
        ref_kw={"fd": fd, "labels": labels, "mask": mask, "temperature": 1.3},
        reduction=reduction, tol_v=1e-5, tol_g=1e-5, teacher_grad=True,
    )


def test_batchmean_without_mask_divides_by_first_axis():
    s, t = logits(seed=6)
    per = distillation_loss(s, t, reduction="none")
    assert torch.allclose(distillation_loss(s, t, reduction="batchmean"), per.sum() / SHAPE[0])
    assert torch.allclose(distillation_loss(s, t, reduction="mean"), per.mean())


@pytest.mark.parametrize("num_items", [17, "tensor"])
def test_num_items_in_batch(num_items):
    s, t = logits(seed=8)
    labels = labels_for(SHAPE, seed=9)
    n = torch.tensor(17) if num_items == "tensor" else num_items
    fd = fdiv.get("kl")
    check_against_reference(s, t, fd, kw={"labels": labels}, ref_kw={"fd": fd, "labels": labels},
                            reduction="mean", num_items=17, tol_v=1e-5, tol_g=1e-5)
    a = distillation_loss(s, t, labels=labels, num_items_in_batch=n, reduction="sum")
    b = distillation_loss(s, t, labels=labels, reduction="sum") / 17
    assert torch.allclose(a, b)


def test_all_ignored_gives_zero_and_finite_zero_gradient():
    s, t = logits((2, 5, 11), seed=10)
    s.requires_grad_()
    for reduction in ("mean", "sum", "batchmean"):
        s.grad = None
        loss = distillation_loss(s, t, "js", labels=torch.full((2, 5), -100),
                                 reduction=reduction)
        loss.backward()
        assert loss.item() == 0.0
        assert torch.equal(s.grad, torch.zeros_like(s))
    s.grad = None
    loss = distillation_loss(s, t, mask=torch.zeros(2, 5))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(s.grad, torch.zeros_like(s))


# --------------------------------------------------------------------------------------------
# TRL's generalized_jsd_loss semantics, written from the definitions
# --------------------------------------------------------------------------------------------


def trl_expected(s, t, beta, temperature, labels):
    """GKD's generalised JSD: beta*KL(t||m) + (1-beta)*KL(s||m), m = beta*t + (1-beta)*s;
    beta=0 is KL(t||s), beta=1 is KL(s||t); 'batchmean' = sum over kept tokens / kept."""
    lq = torch.log_softmax(s.double() / temperature, -1)
    lp = torch.log_softmax(t.double() / temperature, -1)
    p, q = lp.exp(), lq.exp()
    if beta == 0.0:
        per = (p * (lp - lq)).sum(-1)
    elif beta == 1.0:
        per = (q * (lq - lp)).sum(-1)
    else:
        lm = torch.log(beta * p + (1 - beta) * q)
        per = beta * (p * (lp - lm)).sum(-1) + (1 - beta) * (q * (lq - lm)).sum(-1)
    keep = labels != -100
    return per[keep].sum() / keep.sum()


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 0.9])
def test_trl_generalized_jsd_semantics(beta, temperature):
    s, t = logits((2, 9, 31), seed=11)
    labels = labels_for((2, 9, 31), seed=12)
    got = distillation_loss(s, t, "js", beta=beta, temperature=temperature, labels=labels,
                            reduction="batchmean")
    want = trl_expected(s, t, beta, temperature, labels)
    assert abs(got.item() - want.item()) <= 1e-6 * max(1.0, abs(want.item()))


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_against_trl_if_installed(beta, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    gkd = pytest.importorskip("trl.experimental.gkd")
    s, t = logits((2, 9, 31), seed=13)
    labels = labels_for((2, 9, 31), seed=14)
    want = gkd.GKDTrainer.generalized_jsd_loss(s, t, labels=labels, beta=beta,
                                               temperature=1.0, reduction="batchmean")
    got = distillation_loss(s, t, "js", beta=beta, labels=labels, reduction="batchmean")
    assert torch.allclose(got, want.float(), rtol=1e-5, atol=1e-6)


def test_skew_reverse_kl_is_kl_of_student_to_skewed_mixture():
    s, t = logits((4, 13), seed=15)
    a = 0.1
    lq = torch.log_softmax(s.double(), -1)
    lp = torch.log_softmax(t.double(), -1)
    q = lq.exp()
    m = a * q + (1 - a) * lp.exp()
    want = (q * (lq - m.log())).sum(-1)
    got = distillation_loss(s, t, "skew_reverse_kl", skew=a, reduction="none")
    assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-7)
    p = lp.exp()
    m2 = a * p + (1 - a) * q
    want2 = (p * (lp - m2.log())).sum(-1)
    got2 = distillation_loss(s, t, "skew_forward_kl", skew=a, reduction="none")
    assert torch.allclose(got2.double(), want2, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------------------------
# -inf logits, half precision, gradcheck, compile
# --------------------------------------------------------------------------------------------


def masked_logits():
    s, t = logits((2, 6, 17), seed=16)
    s, t = s.clone(), t.clone()
    s[..., :3] = -math.inf  # masked in both: zero mass on both sides
    t[..., :3] = -math.inf
    t[0, :, 5] = -math.inf  # teacher zero where the student has mass
    return s, t


@pytest.mark.parametrize("case", CASES[:9], ids=case_id)
def test_neg_inf_logits_exact_values_finite_gradients(case):
    div, kw, (name, params) = case
    fd = member(name, params)
    s, t = masked_logits()
    s.requires_grad_()
    got = distillation_loss(s, t, div, **kw, reduction="none", chunk_size=5)
    ref, _, _ = per_token(s.detach(), t, fd)
    assert torch.equal(torch.isinf(got), torch.isinf(ref))
    fin = torch.isfinite(ref)
    assert torch.allclose(got[fin].double(), ref[fin], rtol=1e-5, atol=1e-7)
    got[fin].sum().backward()
    assert torch.isfinite(s.grad).all()
    assert torch.equal(s.grad[..., :3], torch.zeros_like(s.grad[..., :3]))
    # Dropping the columns masked in both changes nothing.
    s2 = s.detach()[..., 3:].clone().requires_grad_()
    distillation_loss(s2, t[..., 3:], div, **kw, reduction="none")[fin].sum().backward()
    assert rel_err(s.grad[..., 3:], s2.grad) <= 1e-5


def test_forward_kl_infinite_where_student_has_no_mass():
    s, t = logits((3, 8), seed=17)
    s = s.clone()
    s[1, 2] = -math.inf
    s.requires_grad_()
    got = distillation_loss(s, t, reduction="none")
    assert math.isinf(got[1].item()) and torch.isfinite(got[[0, 2]]).all()
    got[[0, 2]].sum().backward()
    assert torch.isfinite(s.grad).all()


def test_bf16_inputs_accumulate_in_float32():
    s, t = logits((4, 33, 257), seed=18, dtype=torch.bfloat16)
    labels = labels_for((4, 33, 257), seed=19)
    fd = fdiv.get("js", beta=0.5)
    s.requires_grad_()
    loss = distillation_loss(s, t, "js", labels=labels, hard_weight=0.2, chunk_size=40)
    assert loss.dtype == torch.float32
    s64 = s.detach().double().requires_grad_()
    total, _, _ = per_token(s64, t.double(), fd, labels=labels, hard_weight=0.2)
    ref = total.sum() / (labels != -100).sum()
    assert abs(loss.item() - ref.item()) <= 1e-6 * abs(ref.item())
    loss.backward()
    ref.backward()
    assert s.grad.dtype == torch.bfloat16
    # The stored gradient has the input's dtype: its error is the bf16 rounding of the exact
    # gradient and nothing more.
    rounding = rel_err(s64.grad.to(torch.bfloat16), s64.grad)
    assert rel_err(s.grad, s64.grad) <= rounding * 1.05 + 1e-7
    assert rounding <= 2.0**-8
    # The float32 gradient computed before that final rounding: rel error <= 1e-3 (in fact ~1e-6).
    keep = labels.reshape(-1) != -100
    _, _, grads = cd.chunk_values_and_grads(
        cd_dense_fn(fd), s.detach().reshape(-1, 257), [t.reshape(-1, 257),
        torch.where(keep, labels.reshape(-1), 0)], [False, False], keep, 0.8, 0.2)
    scale = 1.0 / keep.sum()
    assert grads[0].dtype == torch.float32
    assert rel_err(grads[0] * scale, s64.grad.reshape(-1, 257)) <= 1e-5


def cd_dense_fn(fd):
    from divergences.losses._distill import _DenseRows

    return _DenseRows(fd, 1.0, True)


def test_fp16_inputs():
    s, t = logits((3, 5, 40), seed=20, dtype=torch.float16)
    got = distillation_loss(s, t, "reverse_kl", reduction="none")
    ref, _, _ = per_token(s, t, fdiv.get("reverse_kl"))
    assert got.dtype == torch.float32
    assert rel_err(got, ref) <= 1e-5


@pytest.mark.parametrize("div", ["forward_kl", "js", "skew_reverse_kl"])
def test_gradcheck_float64(div):
    # gradcheck runs many backward passes through one graph: the first hands the stored
    # gradient on, the later ones form it again from the (live) inputs.
    g = torch.Generator().manual_seed(21)
    s = torch.randn(2, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[1, -100, 4], [0, 2, 3]])

    def f(a, b):
        return distillation_loss(a, b, div, temperature=1.5, labels=labels, hard_weight=0.3,
                                 reduction="none", chunk_size=4)

    assert torch.autograd.gradcheck(f, (s, t), fast_mode=True)


def test_compiles_without_graph_breaks():
    s, t = logits((2, 5, 19), seed=22)
    labels = labels_for((2, 5, 19), seed=23)

    def f(a, b):
        return distillation_loss(a, b, "js", beta=0.3, temperature=2.0, labels=labels,
                                 hard_weight=0.1, chunk_size=4)

    a = s.clone().requires_grad_()
    want = f(a, t)
    want.backward()
    b = s.clone().requires_grad_()
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(b, t)
    got.backward()
    assert torch.allclose(got, want, rtol=1e-6)
    assert torch.allclose(b.grad, a.grad, rtol=1e-5, atol=1e-9)


# --------------------------------------------------------------------------------------------
# Hard loss, components, temperature scaling, chunking
# --------------------------------------------------------------------------------------------


def test_hard_weight_components_and_temperature_scaling():
    s, t = logits((2, 7, 29), seed=24)
    labels = labels_for((2, 7, 29), seed=25)
    out = distillation_loss(s, t, "reverse_kl", temperature=2.0, labels=labels, hard_weight=0.25,
                            temperature_scaling=True, return_components=True)
    assert isinstance(out, DistillationOutput)
    keep = labels != -100
    ce = torch.nn.functional.cross_entropy(s.reshape(-1, 29), labels.reshape(-1))
    d = distillation_loss(s, t, "reverse_kl", temperature=2.0, labels=labels) * 4.0
    assert torch.allclose(out.cross_entropy, ce, rtol=1e-6)
    assert torch.allclose(out.distillation, d, rtol=1e-6)
    assert torch.allclose(out.loss, 0.75 * d + 0.25 * ce, rtol=1e-6)
    assert not out.distillation.requires_grad
    assert keep.any()


def test_hard_weight_gradient_matches_reference():
    s, t = logits(seed=26)
    labels = labels_for(SHAPE, seed=27)
    fd = fdiv.get("kl")
    check_against_reference(
        s, t, fd, kw={"labels": labels, "hard_weight": 0.4, "temperature": 2.0,
                      "temperature_scaling": True},
        ref_kw={"fd": fd, "labels": labels, "hard_weight": 0.4, "temperature": 2.0,
                "scaling": True},
        reduction="mean", tol_v=1e-5, tol_g=1e-5)


@settings(max_examples=20, deadline=None)
@given(chunk=st.integers(1, 30), n=st.integers(1, 25), v=st.integers(1, 20),
       div=st.sampled_from(["forward_kl", "js", "tv", "skew_forward_kl"]))
def test_chunking_does_not_change_result_and_loss_is_nonnegative(chunk, n, v, div):
    s, t = logits((n, v), seed=n * 31 + v)
    a = s.clone().requires_grad_()
    b = s.clone().requires_grad_()
    x = distillation_loss(a, t, div, reduction="none", chunk_size=chunk)
    y = distillation_loss(b, t, div, reduction="none", chunk_size=n)
    assert torch.allclose(x, y, rtol=1e-6, atol=1e-7)
    assert (x >= 0).all()
    x.sum().backward()
    y.sum().backward()
    assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-7)
    same = distillation_loss(s, s, div, reduction="none")
    assert torch.allclose(same, torch.zeros_like(same), atol=1e-6)


def test_no_grad_path_gives_the_same_values():
    s, t = logits(seed=28)
    with torch.no_grad():
        a = distillation_loss(s, t, "js", reduction="none")
    b = distillation_loss(s.clone().requires_grad_(), t, "js", reduction="none")
    # The gradient path takes the registry's terms from terms_and_partial, the value-only
    # path from terms: the same formula up to rounding.
    torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=2e-7)
    assert a.requires_grad is False and b.requires_grad


def test_second_backward_forms_the_gradient_again():
    s, t = logits((3, 9), seed=36)
    s.requires_grad_()
    loss = distillation_loss(s, t, "js", chunk_size=2)
    loss.backward(retain_graph=True)
    first = s.grad.clone()
    s.grad = None
    loss.backward()  # the first handed its buffer on: this one forms it again, bit for bit
    assert torch.equal(s.grad, first)


def test_second_backward_with_freed_inputs_is_an_error():
    s, t = logits((3, 9), seed=36)
    leaf = s.clone().requires_grad_()
    loss = distillation_loss(leaf * 1.0, t)  # the logits tensor dies with the call
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="freed"):
        loss.backward()


def test_teacher_gradient_only_when_asked():
    s, t = logits((3, 9), seed=29)
    s.requires_grad_()
    distillation_loss(s, t).backward()
    assert t.grad is None and s.grad is not None


def test_auto_chunk():
    assert cd.auto_chunk(10, 1 << 30) == 1
    assert cd.auto_chunk(2048, 32000) == 8  # N / 256
    assert cd.auto_chunk(100_000, 32000) == (1 << 20) // 32000  # capped
    assert cd.auto_chunk(141, 123) == 141  # small: one chunk
    assert cd.auto_chunk(0, 5) == 1


# --------------------------------------------------------------------------------------------
# Vocabulary mismatch and errors
# --------------------------------------------------------------------------------------------


def test_vocab_mismatch_is_an_error_naming_both_sizes():
    s, _ = logits((2, 10), seed=30)
    _, t = logits((2, 12), seed=31)
    with pytest.raises(ValueError, match=r"V=10.*V=12"):
        distillation_loss(s, t)


@pytest.mark.parametrize("smaller", ["student", "teacher"])
def test_pad_vocab_pads_with_neg_inf(smaller):
    s, t = logits((2, 3, 12), seed=32)
    if smaller == "student":
        s_small, t_big = s[..., :10], t
        want = distillation_loss(torch.cat([s_small, torch.full((2, 3, 2), -math.inf)], -1), t,
                                 "js", reduction="none")
        got = distillation_loss(s_small, t_big, "js", reduction="none", pad_vocab=True)
    else:
        want = distillation_loss(s, torch.cat([t[..., :10], torch.full((2, 3, 2), -math.inf)],
                                              -1), "js", reduction="none")
        got = distillation_loss(s, t[..., :10], "js", reduction="none", pad_vocab=True)
    assert torch.equal(got, want)
    assert torch.isfinite(got).all()


def test_pad_vocab_gradient_matches_explicit_padding():
    s, t = logits((2, 3, 12), seed=39)
    a = s[..., :10].clone().requires_grad_()
    b = s[..., :10].clone().requires_grad_()
    distillation_loss(a, t, "js", labels=labels_for((2, 3, 12), seed=40),
                      pad_vocab=True).backward()
    padded = torch.cat([b, torch.full((2, 3, 2), -math.inf)], -1)
    distillation_loss(padded, t, "js", labels=labels_for((2, 3, 12), seed=40)).backward()
    assert a.grad.shape == (2, 3, 10)
    assert torch.allclose(a.grad, b.grad, rtol=1e-6, atol=1e-9)


def test_errors():
    s, t = logits((2, 3, 5), seed=33)
    with pytest.raises(ValueError, match="same batch shape"):
        distillation_loss(s, t[:1])
    with pytest.raises(ValueError, match="divergence must be one of"):
        distillation_loss(s, t, "kld")
    with pytest.raises(TypeError, match="divergence must be"):
        distillation_loss(s, t, 3)
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(s, t, temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(s, t, temperature=math.inf)
    with pytest.raises(ValueError, match="beta"):
        distillation_loss(s, t, "js", beta=1.5)
    with pytest.raises(ValueError, match="skew"):
        distillation_loss(s, t, "skew_forward_kl", skew=-0.1)
    with pytest.raises(ValueError, match="reduction"):
        distillation_loss(s, t, reduction="avg")
    with pytest.raises(ValueError, match="chunk_size"):
        distillation_loss(s, t, chunk_size=0)
    with pytest.raises(ValueError, match="hard_weight"):
        distillation_loss(s, t, hard_weight=1.5)
    with pytest.raises(ValueError, match="needs labels"):
        distillation_loss(s, t, hard_weight=0.5)
    with pytest.raises(ValueError, match="labels must have"):
        distillation_loss(s, t, labels=torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="labels must be an integer"):
        distillation_loss(s, t, labels=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="mask must have"):
        distillation_loss(s, t, mask=torch.ones(3, 2))
    with pytest.raises(TypeError, match="mask must be"):
        distillation_loss(s, t, mask=[[1, 1, 1], [1, 1, 1]])
    with pytest.raises(TypeError, match="student_logits must be a torch tensor"):
        distillation_loss(s.numpy(), t)
    with pytest.raises(TypeError, match="floating"):
        distillation_loss(s, t.long())
    with pytest.raises(ValueError, match="V >= 1"):
        distillation_loss(torch.zeros(2, 0), torch.zeros(2, 0))
    with pytest.raises(ValueError, match="num_items_in_batch needs"):
        distillation_loss(s, t, reduction="none", num_items_in_batch=4)
    with pytest.raises(ValueError, match="num_items_in_batch"):
        distillation_loss(s, t, num_items_in_batch=0)


# --------------------------------------------------------------------------------------------
# Module face
# --------------------------------------------------------------------------------------------


def test_module_matches_function_and_checks_options():
    s, t = logits((2, 4, 9), seed=34)
    labels = labels_for((2, 4, 9), seed=35)
    crit = DistillationLoss("skew_reverse_kl", skew=0.2, temperature=1.5, hard_weight=0.1,
                            reduction="sum")
    got = crit(s, t, labels=labels)
    want = distillation_loss(s, t, "skew_reverse_kl", skew=0.2, temperature=1.5,
                             labels=labels, hard_weight=0.1, reduction="sum")
    assert torch.equal(got, want)
    out = crit(s, t, labels=labels, return_components=True)
    assert isinstance(out, DistillationOutput) and torch.equal(out.loss, want)
    assert "skew_reverse_kl" in repr(crit)
    with pytest.raises(ValueError, match="temperature"):
        DistillationLoss(temperature=-1.0)
    with pytest.raises(ValueError, match="divergence"):
        DistillationLoss("nope")
    with pytest.raises(ValueError, match="reduction"):
        DistillationLoss(reduction="mean_tokens")


# --------------------------------------------------------------------------------------------
# The student's entropy (DistillationOutput.student_entropy)
# --------------------------------------------------------------------------------------------


def entropy_ref(s, temperature=1.0, exact=False):
    """torch's own entropy of the student's tempered softmax, in float32 (float64 for float64
    logits); ``exact``: in float64, cast back (the exact entropy of the logits given).

    In float32, ``Categorical`` normalises as ``z - logsumexp(z)``: at ``|z|`` near ``1e4``
    that difference keeps only about ``ulp(1e4) = 1e-3``, where the loss's log-softmax
    subtracts the maximum first; there the exact value is the reference."""
    x = s.double() if exact else s if s.dtype == torch.float64 else s.float()
    h = torch.distributions.Categorical(logits=x / temperature).entropy()
    return h.to(torch.float32) if exact and s.dtype != torch.float64 else h


def extreme_student(v=37, seed=40):
    """Rows that stress the entropy: random, +-1e4, -inf entries, one-hot, uniform."""
    g = torch.Generator().manual_seed(seed)
    rows = 2.0 * torch.randn(12, v, generator=g)
    rows[1] = torch.where(torch.rand(v, generator=g) < 0.5, -1e4, 1e4)  # +-1e4
    rows[2, :] = 1e4 + torch.randn(v, generator=g)  # a large shift, finite spread
    rows[3, ::3] = -math.inf  # zero mass on a third of the vocabulary
    rows[4] = -math.inf  # one-hot by -inf: H = 0 exactly
    rows[4, 7] = 0.0
    rows[5] = -1e4  # one-hot by a gap of 2e4: exp underflows to 0, H = 0 exactly
    rows[5, 3] = 1e4
    rows[6] = 0.0  # uniform: H = log V
    rows[7] = 1e4  # uniform at +1e4
    rows[8] = -1e4  # and at -1e4
    rows[9] = -math.inf  # two tied entries: H = log 2
    rows[9, [2, 5]] = 1e4
    rows[10, :v // 2] = -math.inf  # -inf beside +-1e4
    rows[10, v // 2:] = torch.where(torch.rand(v - v // 2, generator=g) < 0.5, -1e4, 1e4)
    rows[11] *= 50.0  # peaked but not one-hot
    t = 2.0 * torch.randn(12, v, generator=g)
    return rows, t


def entropy_of(s, t, *, grad, div="js", **kw):
    """The student's entropy from distillation_loss (gradient path when ``grad``)."""
    s = s.detach().clone().requires_grad_(grad)
    out = distillation_loss(s, t, div, return_components=True, **kw)
    assert isinstance(out, DistillationOutput)
    return out.student_entropy


# the three ways a chunk is evaluated: values only, closed-form gradient, autograd gradient
ENTROPY_PATHS = [(False, "js"), (True, "js"), (True, "alpha")]
CHUNKINGS = [{}, {"chunk_size": 4}, {"chunk_bytes": 1}]  # one chunk, 4 rows, 1 row


@pytest.mark.parametrize(("grad", "div"), ENTROPY_PATHS, ids=["values", "closed", "autograd"])
@pytest.mark.parametrize("chunking", CHUNKINGS, ids=["whole", "rows4", "bytes1"])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_student_entropy_matches_categorical(grad, div, chunking, temperature):
    s, t = logits((3, 7, 53), seed=41)
    labels = labels_for((3, 7, 53), seed=42)
    keep = labels != -100
    got = entropy_of(s, t, grad=grad, div=div, labels=labels, temperature=temperature,
                     **chunking)
    assert got.shape == (3, 7) and got.dtype == torch.float32
    assert not got.requires_grad and got.grad_fn is None
    torch.testing.assert_close(got[keep], entropy_ref(s, temperature)[keep])
    # the tokens the loss drops read 0, as in reduction="none"
    assert torch.equal(got[~keep], torch.zeros_like(got[~keep]))


@pytest.mark.parametrize(("grad", "div"), ENTROPY_PATHS, ids=["values", "closed", "autograd"])
@pytest.mark.parametrize("host_reads", [True, False], ids=["cpu", "accelerator-path"])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_student_entropy_at_extreme_logits(grad, div, host_reads, temperature, monkeypatch):
    from divergences import _stored_grad

    if not host_reads:  # the form that never reads back (accelerators, torch.compile)
        monkeypatch.setattr(_stored_grad, "host_reads_free", lambda x: False)
    s, t = extreme_student()
    got = entropy_of(s, t, grad=grad, div=div, temperature=temperature, chunk_size=5)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, entropy_ref(s, temperature, exact=True))
    ordinary = [0, 3, 4, 6, 11]  # where float32 Categorical is exact to float precision too
    torch.testing.assert_close(got[ordinary], entropy_ref(s, temperature)[ordinary])
    assert got[4].item() == 0.0 and got[5].item() == 0.0  # one-hot: 0 exactly ...
    assert not got[4].signbit() and not got[5].signbit()  # ... and +0, not -0
    v = s.shape[-1]
    for row in (6, 7, 8):  # uniform
        assert abs(got[row].item() - math.log(v)) <= 4 * v * 2.0**-24
    assert abs(got[9].item() - math.log(2.0)) <= 1e-6
    assert (got >= 0).all()


def test_student_entropy_paths_agree():
    s, t = logits((5, 11, 97), seed=43)
    labels = labels_for((5, 11, 97), seed=44)
    runs = [entropy_of(s, t, grad=g, div=d, labels=labels, temperature=1.3, **c)
            for g, d in ENTROPY_PATHS for c in CHUNKINGS]
    for other in runs[1:]:
        torch.testing.assert_close(other, runs[0], rtol=2e-7, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("grad", [False, True])
def test_student_entropy_half_precision(dtype, grad):
    s, t = logits((4, 9, 301), seed=45, dtype=dtype, scale=4.0)
    s, t = s.clone(), t.clone()
    s[0, 0] = -3e4  # one-hot at logits near float16's largest
    s[0, 0, 5] = 3e4
    s[0, 1, :100] = -math.inf
    s[0, 2] = 3e4  # uniform over 300 entries
    s[0, 2, 5] = -3e4
    got = entropy_of(s, t, grad=grad, temperature=2.0, chunk_size=7)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    # the half-precision logits, upcast exactly, then float32 throughout: float32 precision
    # against the exact entropy of those logits (float32 Categorical away from |z| ~ 6e4)
    torch.testing.assert_close(got, entropy_ref(s, 2.0, exact=True))
    torch.testing.assert_close(got[1:], entropy_ref(s[1:], 2.0))
    assert got[0, 0].item() == 0.0  # exp(-3e4) underflows: one-hot
    assert abs(got[0, 2].item() - math.log(300)) <= 1e-5


def test_student_entropy_float64_nan_and_reductions():
    s, t = logits((4, 6, 19), seed=46, dtype=torch.float64)
    s = s.clone()
    labels = labels_for((4, 6, 19), seed=47)
    labels[0, 0], labels[0, 1] = 3, -100
    s[0, 0, 4] = math.nan  # counted: NaN entropy (and loss)
    s[0, 1, 2] = math.nan  # dropped: no effect
    outs = [distillation_loss(s.clone().requires_grad_(g), t, "js", labels=labels,
                              reduction=r, return_components=True, chunk_size=3)
            for g in (False, True) for r in ("none", "sum", "mean")]
    for out in outs:
        h = out.student_entropy
        assert h.dtype == torch.float64 and h.shape == (4, 6)  # never reduced
        assert math.isnan(h[0, 0].item()) and h[0, 1].item() == 0.0
    keep = (labels != -100) & ~torch.isnan(s).any(-1)
    torch.testing.assert_close(outs[0].student_entropy[keep], entropy_ref(s.nan_to_num())[keep])
    for out in outs[1:]:
        assert torch.equal(out.student_entropy.nan_to_num(-1.0),
                           outs[0].student_entropy.nan_to_num(-1.0))


@pytest.mark.parametrize("vocab", ["pad", "truncate"])
def test_student_entropy_over_the_compared_vocabulary(vocab):
    s, t = logits((3, 4, 40), seed=48)
    t = t[..., :31]
    got = distillation_loss(s, t, "forward_kl", vocab=vocab, return_components=True,
                            chunk_size=5).student_entropy
    # padding the teacher leaves the student whole; truncating renormalises its first 31
    want = entropy_ref(s if vocab == "pad" else s[..., :31])
    torch.testing.assert_close(got, want)


def test_student_entropy_only_with_components_and_through_the_module():
    s, t = logits((2, 5, 23), seed=49)
    assert isinstance(distillation_loss(s, t), torch.Tensor)
    out = DistillationLoss("js", temperature=2.0)(s, t, return_components=True)
    torch.testing.assert_close(out.student_entropy, entropy_ref(s, 2.0))
    # built by the losses that do not compute it: None, and three fields still unpack by name
    assert DistillationOutput(out.loss, out.distillation, out.cross_entropy).student_entropy \
        is None


def test_student_entropy_with_double_backward():
    g = torch.Generator().manual_seed(50)
    s = torch.randn(2, 3, 7, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 3, 7, generator=g, dtype=torch.float64)
    out = distillation_loss(s, t, "js", return_components=True, chunk_size=2)
    (gs,) = torch.autograd.grad(out.loss, s, create_graph=True)
    gs.square().sum().backward()  # the plain-autograd reference, entropy beside it
    assert torch.isfinite(s.grad).all()
    torch.testing.assert_close(out.student_entropy, entropy_ref(s))


def test_student_entropy_compiles_without_graph_breaks():
    s, t = logits((2, 5, 19), seed=52)
    s = s.clone()
    s[0, 0, :4] = -math.inf
    labels = labels_for((2, 5, 19), seed=53)

    def f(a, b):
        out = distillation_loss(a, b, "js", temperature=2.0, labels=labels, chunk_size=4,
                                return_components=True)
        return out.loss, out.student_entropy

    want = f(s.clone().requires_grad_(), t)[1]
    loss, got = torch.compile(f, fullgraph=True, backend="aot_eager")(
        s.clone().requires_grad_(), t)
    loss.backward()
    torch.testing.assert_close(got, want)
    assert not got.requires_grad


# --------------------------------------------------------------------------------------------
# Memory: the only N x V allocation is the gradient
# --------------------------------------------------------------------------------------------


class _BigAllocations(TorchDispatchMode):
    """Records every aten op whose output owns a new buffer of at least ``threshold`` elements."""

    def __init__(self, threshold):
        super().__init__()
        self.threshold = threshold
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        in_ptrs = {a.untyped_storage().data_ptr() for a in args if isinstance(a, torch.Tensor)}
        for o in out if isinstance(out, (tuple, list)) else (out,):
            if (isinstance(o, torch.Tensor) and o.numel() >= self.threshold
                    and o.untyped_storage().data_ptr() not in in_ptrs):
                self.seen.append(str(func))
        return out


@pytest.mark.parametrize("div", ["js", "reverse_kl"])
def test_only_the_gradient_is_n_by_v(div):
    n, v = 64, 500
    s, t = logits((n, v), seed=37)
    s.requires_grad_()
    labels = labels_for((n, v), seed=38)
    with _BigAllocations(threshold=n * v // 4) as rec:
        loss = distillation_loss(s, t, div, labels=labels, hard_weight=0.1, chunk_size=8)
        loss.backward()
    # One buffer of N x V (the gradient, allocated once and scaled in place), nothing else of
    # even a quarter of that size.
    assert rec.seen == ["aten.empty.memory_format"], rec.seen  # the stored gradient only
    assert s.grad is not None


def test_student_entropy_adds_no_n_by_v_buffer():
    n, v = 64, 500
    s, t = logits((n, v), seed=54)
    labels = labels_for((n, v), seed=55)
    for grad in (True, False):
        a = s.clone().requires_grad_(grad)
        with _BigAllocations(threshold=n * v // 4) as rec:
            out = distillation_loss(a, t, "js", labels=labels, chunk_size=8,
                                    return_components=True)
        assert rec.seen == (["aten.empty.memory_format"] if grad else []), rec.seen
        assert out.student_entropy.shape == (n,)
