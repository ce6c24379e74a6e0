"""BD-KD (balanced_distillation_loss): extreme weights, the entropy-gap rule, gradients."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from divergences import fdiv
from divergences.losses._bdkd import BDKDOutput, balanced_distillation_loss


def _logits(shape, seed, dtype=torch.float64, spread=2.0):
    g = torch.Generator().manual_seed(seed)
    return (spread * torch.randn(*shape, generator=g, dtype=dtype),
            spread * torch.randn(*shape, generator=g, dtype=dtype))


def _kl(p_logits, q_logits, temperature=1.0):
    """KL(p || q) from the registry, float64."""
    lp = torch.log_softmax(p_logits.double() / temperature, -1)
    lq = torch.log_softmax(q_logits.double() / temperature, -1)
    return fdiv.evaluate(fdiv.get("kl"), lp, lq)


def _entropy(logits, temperature=1.0):
    lp = torch.log_softmax(logits.double() / temperature, -1)
    return -(lp.exp() * lp).sum(-1)


# ------------------------------------------------------------------ extreme weights


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_extreme_weights_give_either_kl(temperature):
    s, t = _logits((6, 7), 0)
    fwd = balanced_distillation_loss(s, t, temperature, balance=0.0, reduction="none")
    rev = balanced_distillation_loss(s, t, temperature, balance=1.0, reduction="none")
    torch.testing.assert_close(fwd.student_loss, _kl(t, s, temperature))   # KL(p_t || p_s)
    torch.testing.assert_close(rev.student_loss, _kl(s, t, temperature))   # KL(p_s || p_t)
    # the teacher's regulariser is reverse KL either way
    torch.testing.assert_close(fwd.teacher_loss, _kl(s, t, temperature))
    torch.testing.assert_close(rev.teacher_loss, _kl(s, t, temperature))
    half = balanced_distillation_loss(s, t, temperature, balance=0.5, reduction="none")
    torch.testing.assert_close(half.student_loss, 0.5 * (_kl(t, s, temperature)
                                                         + _kl(s, t, temperature)))


def test_hard_rule_picks_the_divergence_per_sample():
    s, t = _logits((40, 5), 1, spread=3.0)
    out = balanced_distillation_loss(s, t, reduction="none")
    gap = _entropy(s) - _entropy(t)
    torch.testing.assert_close(out.entropy_gap, gap)
    assert torch.equal(out.reverse_weight, (gap > 0).double())
    expected = torch.where(gap > 0, _kl(s, t), _kl(t, s))
    torch.testing.assert_close(out.student_loss, expected)
    # both cases occur in this batch
    assert 0 < int((gap > 0).sum()) < 40


def test_soft_rule_limits():
    s, t = _logits((30, 6), 2, spread=3.0)
    gap = _entropy(s) - _entropy(t)
    soft = balanced_distillation_loss(s, t, balance="soft", gap_scale=0.5, reduction="none")
    torch.testing.assert_close(soft.reverse_weight, torch.sigmoid(gap / 0.5))
    sharp = balanced_distillation_loss(s, t, balance="soft", gap_scale=1e-9, reduction="none")
    hard = balanced_distillation_loss(s, t, balance="hard", reduction="none")
    torch.testing.assert_close(sharp.student_loss, hard.student_loss)
    # equal entropies (a permuted teacher): w = 1/2
    perm = balanced_distillation_loss(t.flip(-1), t, balance="soft", reduction="none")
    torch.testing.assert_close(perm.reverse_weight, torch.full((30,), 0.5, dtype=torch.float64))


# ------------------------------------------------------------------ vanishing at p_s = p_t


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(1, 8), seed=st.integers(0, 10_000),
       balance=st.sampled_from(["hard", "soft", 0.0, 0.3, 1.0]),
       shift=st.floats(-5, 5))
def test_both_terms_vanish_when_distributions_match(n, c, seed, balance, shift):
    s, _ = _logits((n, c), seed)
    out = balanced_distillation_loss(s, s + shift, 2.0, balance, reduction="none")
    assert float(out.student_loss.abs().max()) < 1e-12
    assert float(out.teacher_loss.abs().max()) < 1e-12
    assert float(out.loss.abs().max()) < 1e-12


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(2, 8), seed=st.integers(0, 10_000),
       balance=st.sampled_from(["hard", "soft", 0.0, 0.7, 1.0]))
def test_terms_non_negative(n, c, seed, balance):
    s, t = _logits((n, c), seed)
    out = balanced_distillation_loss(s, t, balance=balance, reduction="none")
    assert float(out.student_loss.min()) >= 0 and float(out.teacher_loss.min()) >= 0
    assert bool(((out.reverse_weight >= 0) & (out.reverse_weight <= 1)).all())


# ------------------------------------------------------------------ gradients


def test_each_term_trains_only_its_network():
    s, t = _logits((5, 4), 3)
    s.requires_grad_(True)
    t.requires_grad_(True)
    out = balanced_distillation_loss(s, t, teacher_weight=0.7)
    gs, gt = torch.autograd.grad(out.loss, (s, t), retain_graph=True)
    gs_student, = torch.autograd.grad(out.student_loss, s, retain_graph=True)
    gt_teacher, = torch.autograd.grad(out.teacher_loss, t, retain_graph=True)
    torch.testing.assert_close(gs, gs_student)
    torch.testing.assert_close(gt, gt_teacher)
    assert torch.autograd.grad(out.student_loss, t, allow_unused=True)[0] is None
    assert torch.autograd.grad(out.teacher_loss, s, allow_unused=True)[0] is None
    # the teacher term: gradient of lambda * KL(p_s || p_t) in t is lambda (p_t - p_s) / n
    ps, pt = torch.softmax(s.detach(), -1), torch.softmax(t.detach(), -1)
    torch.testing.assert_close(gt, 0.7 * (pt - ps) / 5)


def test_forward_kl_gradient_closed_form():
    s, t = _logits((4, 6), 4)
    s.requires_grad_(True)
    out = balanced_distillation_loss(s, t, balance=0.0, reduction="sum")
    g, = torch.autograd.grad(out.student_loss, s)
    torch.testing.assert_close(g, torch.softmax(s.detach(), -1) - torch.softmax(t, -1))


@pytest.mark.parametrize("balance", ["hard", 0.4])
def test_gradcheck(balance):
    # each network's term in its own logits (the other network is a constant there); the
    # hard weights are locally constant away from equal entropies
    s, t = _logits((3, 4), 5)
    s.requires_grad_(True)
    t.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a: balanced_distillation_loss(a, t.detach(), 1.5, balance,
                                             reduction="none").student_loss, (s,))
    assert torch.autograd.gradcheck(
        lambda b: balanced_distillation_loss(s.detach(), b, 1.5, balance, teacher_weight=0.3,
                                             reduction="none").teacher_loss, (t,))


def test_soft_weights_act_as_constants_in_the_gradient():
    s, t = _logits((5, 4), 9)
    s.requires_grad_(True)
    out = balanced_distillation_loss(s, t, balance="soft", reduction="sum")
    g, = torch.autograd.grad(out.student_loss, s)
    w = out.reverse_weight
    ref = ((1 - w) * _kl(t, s) + w * _kl(s, t)).sum()
    g_ref, = torch.autograd.grad(ref, s)
    torch.testing.assert_close(g, g_ref)


def test_gradients_finite_for_extreme_logits():
    s = torch.tensor([[80.0, -80.0, 0.0], [0.0, 0.0, 0.0]], requires_grad=True)
    t = torch.tensor([[-80.0, 80.0, 0.0], [30.0, -30.0, 0.0]], requires_grad=True)
    out = balanced_distillation_loss(s, t)
    out.loss.backward()
    assert bool(torch.isfinite(out.loss)) and bool(torch.isfinite(s.grad).all())
    assert bool(torch.isfinite(t.grad).all())


# ------------------------------------------------------------------ reductions, masks, dtypes


def test_reductions_and_mask():
    s, t = _logits((3, 4, 5), 6)
    none = balanced_distillation_loss(s, t, reduction="none")
    assert isinstance(none, BDKDOutput)
    assert none.loss.shape == (3, 4) and none.reverse_weight.shape == (3, 4)
    torch.testing.assert_close(balanced_distillation_loss(s, t, reduction="sum").loss,
                               none.loss.sum())
    torch.testing.assert_close(balanced_distillation_loss(s, t).loss, none.loss.mean())
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1]])
    masked = balanced_distillation_loss(s, t, mask=mask)
    keep = mask.bool()
    torch.testing.assert_close(masked.loss, none.loss[keep].mean())
    torch.testing.assert_close(masked.student_loss, none.student_loss[keep].mean())
    m_none = balanced_distillation_loss(s, t, mask=keep, reduction="none")
    assert float(m_none.loss[~keep].abs().sum()) == 0.0
    empty = balanced_distillation_loss(s, t, mask=torch.zeros(3, 4, dtype=torch.bool))
    assert float(empty.loss) == 0.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_computes_in_float32(dtype):
    s, t = _logits((6, 9), 7, dtype=torch.float32)
    ref = balanced_distillation_loss(s.double(), t.double(), 2.0)
    got = balanced_distillation_loss(s.to(dtype), t.to(dtype), 2.0)
    assert got.loss.dtype == torch.float32
    tol = 1e-5 if dtype == torch.float32 else 5e-2
    assert math.isclose(float(got.loss), float(ref.loss), rel_tol=tol)


# ------------------------------------------------------------------ errors


def test_errors():
    s, t = _logits((4, 3), 8, dtype=torch.float32)
    with pytest.raises(TypeError, match="student_logits"):
        balanced_distillation_loss(s.numpy(), t)
    with pytest.raises(TypeError, match="teacher_logits"):
        balanced_distillation_loss(s, torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        balanced_distillation_loss(s, t[:3])
    with pytest.raises(ValueError, match="student_logits"):
        balanced_distillation_loss(torch.ones(4, 0), torch.ones(4, 0))
    bad = s.clone()
    bad[1, 1] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        balanced_distillation_loss(bad, t)
    with pytest.raises(ValueError, match="temperature"):
        balanced_distillation_loss(s, t, temperature=0.0)
    with pytest.raises(ValueError, match="balance"):
        balanced_distillation_loss(s, t, balance="forward")
    with pytest.raises(ValueError, match="balance"):
        balanced_distillation_loss(s, t, balance=1.5)
    with pytest.raises(TypeError, match="balance"):
        balanced_distillation_loss(s, t, balance=True)
    with pytest.raises(ValueError, match="gap_scale"):
        balanced_distillation_loss(s, t, balance="soft", gap_scale=0.0)
    with pytest.raises(ValueError, match="teacher_weight"):
        balanced_distillation_loss(s, t, teacher_weight=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        balanced_distillation_loss(s, t, reduction="batchmean")
    with pytest.raises(TypeError, match="mask"):
        balanced_distillation_loss(s, t, mask=[1, 1, 1, 1])
    with pytest.raises(ValueError, match="mask"):
        balanced_distillation_loss(s, t, mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        balanced_distillation_loss(s, t, mask=torch.tensor([0, 1, 2, 1]))


# ------------------------------------------------------------------ a hand-computed instance


def test_hand_computed_two_class_instance():
    # p_s = (1/4, 3/4) vs p_t = (1/2, 1/2), then the roles swapped; temperature 2 with logits
    # 2 log p, so that softmax(logits / 2) = p. Every number below is worked out by hand:
    #   H(1/4, 3/4) = -(1/4) ln(1/4) - (3/4) ln(3/4),  H(1/2, 1/2) = ln 2
    #   KL((1/2, 1/2) || (1/4, 3/4)) = (1/2) ln 2 + (1/2) ln(2/3) = (1/2) ln(4/3)
    #   KL((1/4, 3/4) || (1/2, 1/2)) = (1/4) ln(1/2) + (3/4) ln(3/2)
    h_skew = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    kl_flat_skew = 0.5 * math.log(4.0 / 3.0)
    kl_skew_flat = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    skew = 2.0 * torch.log(torch.tensor([0.25, 0.75], dtype=torch.float64))
    flat = 2.0 * torch.log(torch.tensor([0.5, 0.5], dtype=torch.float64))
    s = torch.stack([skew, flat])        # sample 0: confident student; 1: unsure student
    t = torch.stack([flat, skew])
    out = balanced_distillation_loss(s, t, temperature=2.0, teacher_weight=0.5,
                                     reduction="none")
    gap = torch.tensor([h_skew - math.log(2), math.log(2) - h_skew], dtype=torch.float64)
    torch.testing.assert_close(out.entropy_gap, gap)                 # (-0.1308, +0.1308)
    assert out.reverse_weight.tolist() == [0.0, 1.0]
    # sample 0 (student sharper): forward KL(p_t || p_s); sample 1: reverse KL(p_s || p_t)
    torch.testing.assert_close(out.student_loss, torch.tensor(
        [kl_flat_skew, kl_flat_skew], dtype=torch.float64))         # both (1/2) ln(4/3)
    # teacher: 0.5 * KL(p_s || p_t)
    torch.testing.assert_close(out.teacher_loss, 0.5 * torch.tensor(
        [kl_skew_flat, kl_flat_skew], dtype=torch.float64))
    # soft rule, gap_scale 0.1: w = 1 / (1 + exp(-gap / 0.1))
    soft = balanced_distillation_loss(s, t, temperature=2.0, balance="soft", gap_scale=0.1,
                                      reduction="none")
    w0 = 1.0 / (1.0 + math.exp(-(h_skew - math.log(2)) / 0.1))
    w = torch.tensor([w0, 1.0 - w0], dtype=torch.float64)
    torch.testing.assert_close(soft.reverse_weight, w)
    torch.testing.assert_close(soft.student_loss, torch.tensor(
        [(1 - w0) * kl_flat_skew + w0 * kl_skew_flat,
         w0 * kl_skew_flat + (1 - w0) * kl_flat_skew], dtype=torch.float64))
    # mean reduction of the total
    torch.testing.assert_close(
        balanced_distillation_loss(s, t, temperature=2.0, teacher_weight=0.5).loss,
        torch.tensor(kl_flat_skew + 0.25 * (kl_skew_flat + kl_flat_skew),
                     dtype=torch.float64))
