"""SinKD (sinkhorn_distillation_loss): POT agreement, plan marginals, invariances, limits."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from divergences.losses._sinkd import (
    _plan_kernel,
    _plan_log,
    kernel_is_safe,
    sinkhorn_distillation_loss,
    sinkhorn_plan,
)


def _logits(n, c, seed, dtype=torch.float64, spread=2.0):
    g = torch.Generator().manual_seed(seed)
    return (spread * torch.randn(n, c, generator=g, dtype=dtype),
            spread * torch.randn(n, c, generator=g, dtype=dtype))


def _cost(s, t, temperature=2.0):
    ps = torch.softmax(s / temperature, -1)
    pt = torch.softmax(t / temperature, -1)
    return (ps[:, None, :] - pt[None, :, :]).abs().sum(-1)


# ------------------------------------------------------------------ the official computation


def test_matches_official_kernel_iterations():
    # the official code: K = exp(-W/eps); n_iter times rows then columns to sum 1; sum(P*W)
    s, t = _logits(7, 5, 0)
    w = _cost(s, t)
    k = torch.exp(-w / 0.1)
    for _ in range(20):
        k = k / k.sum(1, keepdim=True)
        k = k / k.sum(0, keepdim=True)
    ref = 1e-3 * (k * w).sum()
    for stable in (False, True):
        got = sinkhorn_distillation_loss(s, t, stable=stable)
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=0)


def test_plan_marginals_and_mass():
    s, t = _logits(9, 4, 1)
    w = _cost(s, t)
    for stable in (False, True):
        p = sinkhorn_plan(w, 0.1, 20, stable)
        # the last step scales the columns: they sum to 1 exactly; total mass N
        torch.testing.assert_close(p.sum(0), torch.ones(9, dtype=torch.float64))
        torch.testing.assert_close(p.sum(), torch.tensor(9.0, dtype=torch.float64))
        # the rows converge to 1 (uniform marginal)
        assert float((p.sum(1) - 1).abs().max()) < 1e-3


def test_log_and_kernel_domains_agree():
    s, t = _logits(6, 8, 2)
    w = _cost(s, t)
    for eps in (1.0, 0.1, 0.03):
        torch.testing.assert_close(_plan_kernel(w, eps, 15), _plan_log(w, eps, 15),
                                   rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ POT reference


@pytest.mark.parametrize("n, eps", [(3, 0.1), (8, 0.05)])
def test_converged_equals_pot_sinkhorn2(eps, n):
    ot = pytest.importorskip("ot")
    s, t = _logits(n, 6, 10 + n)
    w = _cost(s, t).numpy()
    a = np.full(n, 1.0 / n)
    ref = ot.sinkhorn2(a, a, w, reg=eps, method="sinkhorn_log", numItermax=100_000,
                       stopThr=1e-14)
    for stable in (False, True):
        got = sinkhorn_distillation_loss(s, t, epsilon=eps, n_iter=1500, scale=1e-3,
                                         stable=stable)
        assert math.isclose(float(got), 1e-3 * n * float(ref), rel_tol=1e-8)
        mean = sinkhorn_distillation_loss(s, t, epsilon=eps, n_iter=1500, reduction="mean",
                                          stable=stable)
        assert math.isclose(float(mean), 1e-3 * float(ref), rel_tol=1e-8)


def test_paper_defaults_close_to_pot_after_20_iterations():
    ot = pytest.importorskip("ot")
    s, t = _logits(16, 10, 3)
    w = _cost(s, t).numpy()
    a = np.full(16, 1.0 / 16)
    ref = 1e-3 * 16 * float(ot.sinkhorn2(a, a, w, reg=0.1, numItermax=100_000, stopThr=1e-14))
    got = float(sinkhorn_distillation_loss(s, t))
    assert math.isclose(got, ref, rel_tol=1e-3)


# ------------------------------------------------------------------ invariances


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 7), c=st.integers(2, 6), seed=st.integers(0, 10_000),
       stable=st.booleans())
def test_permutation_invariance(n, c, seed, stable):
    s, t = _logits(n, c, seed)
    g = torch.Generator().manual_seed(seed + 1)
    ps_, pt_ = torch.randperm(n, generator=g), torch.randperm(n, generator=g)
    base = sinkhorn_distillation_loss(s, t, stable=stable)
    rows = sinkhorn_distillation_loss(s, t, stable=stable, reduction="none")
    # both sides permuted consistently: per-student terms follow the permutation
    both = sinkhorn_distillation_loss(s[ps_], t[ps_], stable=stable, reduction="none")
    torch.testing.assert_close(both, rows[ps_], rtol=1e-10, atol=1e-15)
    # independently: the plan's value is unchanged (row and column scalings commute with
    # row and column permutations, even before convergence)
    indep = sinkhorn_distillation_loss(s[ps_], t[pt_], stable=stable)
    torch.testing.assert_close(indep, base, rtol=1e-10, atol=1e-15)


def test_identical_batches_tend_to_zero_as_eps_shrinks():
    s, _ = _logits(10, 6, 4)
    values = [float(sinkhorn_distillation_loss(s, s, epsilon=e, stable=True))
              for e in (0.3, 0.1, 0.03, 0.01, 0.003, 0.001)]
    assert all(b < a for a, b in itertools.pairwise(values))
    assert values[-1] < 1e-12 * values[0] + 1e-20
    assert values[0] > 0


def test_non_negative_and_zero_scale():
    s, t = _logits(5, 3, 5)
    assert float(sinkhorn_distillation_loss(s, t)) > 0
    assert float(sinkhorn_distillation_loss(s, t, scale=0.0)) == 0.0
    # scale is a plain factor
    torch.testing.assert_close(sinkhorn_distillation_loss(s, t, scale=2e-3),
                               2 * sinkhorn_distillation_loss(s, t))


def test_kernel_mode_is_used_at_the_paper_defaults():
    for dtype in (torch.float32, torch.float64):
        s, t = _logits(6, 4, 15, dtype=dtype, spread=6.0)
        w = _cost(s, t)
        assert kernel_is_safe(w, 0.1)
        torch.testing.assert_close(sinkhorn_plan(w, 0.1, 20, False), _plan_kernel(w, 0.1, 20),
                                   rtol=0, atol=0)
    # a cost of 2 (disjoint supports) needs eps >= 2 / 21.8 in float32, 2 / 177 in float64
    two = torch.full((2, 2), 2.0)
    assert kernel_is_safe(two, 0.092) and not kernel_is_safe(two, 0.091)
    assert kernel_is_safe(two.double(), 0.0113) and not kernel_is_safe(two.double(), 0.0112)


def test_small_epsilon_kernel_mode_falls_back_and_stays_finite():
    s, t = _logits(8, 5, 6, dtype=torch.float32, spread=4.0)
    w = _cost(s, t)
    eps = 1e-3   # W/eps up to 2000: the kernel underflows in float32
    assert not bool(torch.isfinite(_plan_kernel(w, eps, 20)).all())
    a = sinkhorn_distillation_loss(s, t, epsilon=eps)
    b = sinkhorn_distillation_loss(s, t, epsilon=eps, stable=True)
    assert bool(torch.isfinite(a))
    torch.testing.assert_close(a, b)


# ------------------------------------------------------------------ shapes, dtypes, reductions


def test_reductions_and_leading_axes():
    s, t = _logits(12, 4, 7)
    rows = sinkhorn_distillation_loss(s, t, reduction="none")
    assert rows.shape == (12,)
    torch.testing.assert_close(rows.sum(), sinkhorn_distillation_loss(s, t))
    torch.testing.assert_close(rows.mean(), sinkhorn_distillation_loss(s, t, reduction="mean"))
    # (B, T, C) is one set of B*T points
    s3, t3 = s.reshape(3, 4, 4), t.reshape(3, 4, 4)
    torch.testing.assert_close(sinkhorn_distillation_loss(s3, t3, reduction="none"),
                               rows.reshape(3, 4))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_returns_float32(dtype):
    s, t = _logits(6, 5, 8, dtype=torch.float32)
    ref = sinkhorn_distillation_loss(s.double(), t.double())
    got = sinkhorn_distillation_loss(s.to(dtype), t.to(dtype))
    assert got.dtype == torch.float32
    tol = 1e-5 if dtype == torch.float32 else 5e-2
    assert math.isclose(float(got), float(ref), rel_tol=tol)


# ------------------------------------------------------------------ gradients


@pytest.mark.parametrize("stable", [False, True])
def test_gradients_finite(stable):
    s, t = _logits(8, 6, 9, dtype=torch.float32)
    s.requires_grad_(True)
    t.requires_grad_(True)
    sinkhorn_distillation_loss(s, t, epsilon=0.01, stable=stable).backward()
    assert bool(torch.isfinite(s.grad).all()) and bool(torch.isfinite(t.grad).all())
    assert float(s.grad.abs().sum()) > 0


def test_gradient_identical_inputs_finite():
    s, _ = _logits(5, 4, 11, dtype=torch.float32)
    a = s.clone().requires_grad_(True)
    sinkhorn_distillation_loss(a, s.clone(), stable=True, epsilon=1e-3).backward()
    assert bool(torch.isfinite(a.grad).all())


@pytest.mark.parametrize("stable", [False, True])
def test_gradcheck(stable):
    s, t = _logits(4, 3, 12)
    s.requires_grad_(True)
    t.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: sinkhorn_distillation_loss(a, b, epsilon=0.2, n_iter=6, stable=stable,
                                                reduction="none"),
        (s, t),
    )


def test_training_moves_student_toward_teacher():
    s, t = _logits(8, 5, 13, dtype=torch.float32)
    s.requires_grad_(True)
    opt = torch.optim.Adam([s], lr=0.2)
    first = float(sinkhorn_distillation_loss(s, t).detach())
    floor = float(sinkhorn_distillation_loss(t, t))   # the entropic blur of a perfect copy
    for _ in range(20):
        opt.zero_grad()
        sinkhorn_distillation_loss(s, t).backward()
        opt.step()
    last = float(sinkhorn_distillation_loss(s, t).detach())
    assert last - floor < 0.5 * (first - floor)


# ------------------------------------------------------------------ errors


def test_errors():
    s, t = _logits(4, 3, 14, dtype=torch.float32)
    with pytest.raises(TypeError, match="student_logits"):
        sinkhorn_distillation_loss(s.numpy(), t)
    with pytest.raises(TypeError, match="teacher_logits"):
        sinkhorn_distillation_loss(s, torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        sinkhorn_distillation_loss(s, t[:3])
    with pytest.raises(ValueError, match="student_logits"):
        sinkhorn_distillation_loss(s[0], t[0])
    bad = s.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        sinkhorn_distillation_loss(bad, t)
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="finite"):
        sinkhorn_distillation_loss(s, bad)
    with pytest.raises(ValueError, match="temperature"):
        sinkhorn_distillation_loss(s, t, temperature=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        sinkhorn_distillation_loss(s, t, epsilon=-1.0)
    with pytest.raises(ValueError, match="finite"):
        sinkhorn_distillation_loss(s, t, epsilon=math.inf)
    with pytest.raises(ValueError, match="n_iter"):
        sinkhorn_distillation_loss(s, t, n_iter=0)
    with pytest.raises(TypeError, match="n_iter"):
        sinkhorn_distillation_loss(s, t, n_iter=2.5)
    with pytest.raises(ValueError, match="scale"):
        sinkhorn_distillation_loss(s, t, scale=-1.0)
    with pytest.raises(ValueError, match="scale"):
        sinkhorn_distillation_loss(s, t, scale=math.inf)
    with pytest.raises(TypeError, match="stable"):
        sinkhorn_distillation_loss(s, t, stable=1)
    with pytest.raises(ValueError, match="reduction"):
        sinkhorn_distillation_loss(s, t, reduction="avg")
