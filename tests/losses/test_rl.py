"""DPH-RL penalty and SIREN regulariser: the papers' claims, official clamps, gradients."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from divergences import js, kl
from divergences.losses._rl import dph_penalty, selective_entropy_regularizer, top_p_entropy


def _simplex(seed, k, batch=()):
    gen = torch.Generator().manual_seed(seed)
    return torch.softmax(0.7 * torch.randn(*batch, k, generator=gen, dtype=torch.float64), -1)


# --------------------------------------------------------------------------------------------
# DPH-RL
# --------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 8))
def test_expected_k3_is_forward_kl(seed, k):
    p0, p = _simplex(seed, k), _simplex(seed + 1, k)
    k3 = dph_penalty(p.log(), p0.log(), "forward_kl", reduction="none")
    # E_{pi0}[k3] = KL(pi0 || pi), exactly (over the whole support), while no clamp is hit
    assert torch.isclose((p0 * k3).sum(), kl(p0, p), atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 8))
def test_expected_js_generator_is_twice_jsd(seed, k):
    p0, p = _simplex(seed, k), _simplex(seed + 1, k)
    fj = dph_penalty(p.log(), p0.log(), "js", reduction="none")
    assert torch.isclose((p0 * fj).sum(), 2 * js(p, p0), atol=1e-10)


def test_matches_official_formulas():
    s = torch.linspace(-5, 2, 15, dtype=torch.float64)   # k3 <= 10 there
    lp0 = torch.zeros_like(s)
    u = s.exp()
    # official js_low_var and alpha_divergence_f (alpha = 0.2), and k3 without clamps hit
    official_js = u * u.log() - (u + 1) * ((u + 1) / 2).log()
    a = 0.2
    official_alpha = (u ** (1 - a) - (1 - a) * u - a) / (a * (a - 1))
    official_k3 = u - s - 1
    assert torch.allclose(dph_penalty(s, lp0, "js", reduction="none"), official_js)
    assert torch.allclose(dph_penalty(s, lp0, "alpha", alpha=a, reduction="none"),
                          official_alpha)
    assert torch.allclose(dph_penalty(s, lp0, "forward_kl", reduction="none"), official_k3)


def test_official_clamps():
    s = torch.tensor([-30.0, -20.0, 3.0, 25.0], dtype=torch.float64, requires_grad=True)
    v = dph_penalty(s, torch.zeros(4, dtype=torch.float64), reduction="none")
    # log u clamped to [-20, 20], then k3 clamped to [-10, 10]
    assert torch.allclose(v.detach(), torch.tensor([19.0, 19.0, math.exp(3) - 4, 10.0],
                                                   dtype=torch.float64).clamp(max=10.0))
    (g,) = torch.autograd.grad(v.sum(), s)
    assert torch.equal(g[[0, 1, 3]], torch.zeros(3, dtype=torch.float64))
    # finite for huge log-ratios in every mode
    big = torch.tensor([-1e4, 1e4])
    for d in ("forward_kl", "js", "alpha"):
        assert torch.isfinite(dph_penalty(big, torch.zeros(2), d, reduction="none")).all()


@pytest.mark.parametrize("divergence", ["forward_kl", "js", "alpha"])
@pytest.mark.parametrize("alpha", [0.0, 0.2, 0.7, 1.0])
def test_f1_and_fprime1_zero(divergence, alpha):
    s = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    v = dph_penalty(s, torch.zeros(3, dtype=torch.float64), divergence, alpha, reduction="none")
    assert torch.equal(v.detach(), torch.zeros(3, dtype=torch.float64))   # f(1) = 0
    (g,) = torch.autograd.grad(v.sum(), s)
    assert torch.allclose(g, torch.zeros(3, dtype=torch.float64), atol=1e-15)   # f'(1) = 0


def test_alpha_endpoints():
    s = torch.linspace(-3, 2, 11, dtype=torch.float64)
    z = torch.zeros_like(s)
    k3 = dph_penalty(s, z, "forward_kl", reduction="none")
    assert torch.allclose(dph_penalty(s, z, "alpha", alpha=1.0, reduction="none"), k3)
    u = s.exp()
    assert torch.allclose(dph_penalty(s, z, "alpha", alpha=0.0, reduction="none"),
                          u * s - u + 1)


def test_mask_and_reductions():
    s = torch.tensor([[0.5, -1.0, 2.0], [0.1, 0.0, 9.0]], dtype=torch.float64)
    z = torch.zeros_like(s)
    m = torch.tensor([[1, 1, 0], [1, 0, 0]])
    full = dph_penalty(s, z, "js", reduction="none")
    none = dph_penalty(s, z, "js", mask=m, reduction="none")
    assert torch.equal(none, torch.where(m.bool(), full, torch.zeros_like(full)))
    assert torch.isclose(dph_penalty(s, z, "js", mask=m), full[m.bool()].mean())
    assert torch.isclose(dph_penalty(s, z, "js", mask=m, reduction="sum"), full[m.bool()].sum())
    assert torch.isclose(dph_penalty(s, z, "js"), full.mean())


def test_dph_half_precision_output_float32():
    s = torch.tensor([1.0, -2.0], dtype=torch.bfloat16)
    assert dph_penalty(s, torch.zeros_like(s)).dtype == torch.float32


@pytest.mark.parametrize("divergence", ["forward_kl", "js", "alpha"])
def test_dph_gradcheck(divergence):
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(2, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    s0 = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    mask = torch.rand(2, 5, generator=gen) > 0.3
    assert torch.autograd.gradcheck(
        lambda t: dph_penalty(t, s0, divergence, 0.2, mask=mask), (s,))


def test_dph_errors():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="divergence"):
        dph_penalty(x, x, "kl")
    with pytest.raises(ValueError, match="alpha"):
        dph_penalty(x, x, "alpha", alpha=1.5)
    with pytest.raises(ValueError, match="shape"):
        dph_penalty(x, torch.zeros(2))
    with pytest.raises(ValueError, match="mask"):
        dph_penalty(x, x, mask=torch.ones(2))
    with pytest.raises(ValueError, match="0/1"):
        dph_penalty(x, x, mask=torch.tensor([0, 2, 1]))
    with pytest.raises(TypeError, match="floating"):
        dph_penalty(torch.zeros(3, dtype=torch.long), x)
    with pytest.raises(ValueError, match="reduction"):
        dph_penalty(x, x, reduction="batchmean")
    with pytest.raises(ValueError, match="NaN"):
        dph_penalty(torch.tensor([math.nan, 0.0, 0.0]), x)


# --------------------------------------------------------------------------------------------
# SIREN
# --------------------------------------------------------------------------------------------


def _nucleus_size(probs, p):
    sp, _ = probs.sort(-1, descending=True)
    cum = sp.cumsum(-1)
    return ((cum < p).sum(-1)).clamp_min(1)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.05, 1.0))
def test_top_p_entropy_bounded_by_log_nucleus(seed, p):
    gen = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(4, 20, generator=gen, dtype=torch.float64)
    h = top_p_entropy(logits, p)
    size = _nucleus_size(torch.softmax(logits, -1), p)
    assert (h >= 0).all()
    assert (h <= size.double().log() + 1e-12).all()


def test_top_p_entropy_brute_force():
    probs = torch.tensor([0.05, 0.4, 0.25, 0.2, 0.1], dtype=torch.float64)
    # descending 0.4, 0.25, 0.2 | cum 0.4, 0.65, 0.85: nucleus = tokens before 0.85 crossing
    q = torch.tensor([0.4, 0.25]) / 0.65
    expected = -(q * q.log()).sum()
    assert torch.isclose(top_p_entropy(probs.log(), 0.8), expected.double())
    # the top token alone reaches p: entropy 0 (the official value)
    assert float(top_p_entropy(torch.tensor([0.9, 0.1]).log(), 0.8)) == 0.0


@pytest.mark.parametrize("n", [11, 51, 101])
def test_at_most_twenty_percent_kept(n):
    gen = torch.Generator().manual_seed(n)
    logits = torch.randn(3, n, 30, generator=gen) * torch.rand(3, n, 1, generator=gen) * 4
    mask = torch.ones(3, n, dtype=torch.bool)
    out = selective_entropy_regularizer(logits, mask)
    kept = out.keep.sum(-1)
    assert (kept <= 0.2 * n).all()
    assert (kept >= 1).all()
    # kept tokens are those with entropy above the row's 0.8 quantile
    bound = torch.quantile(out.token_entropy, 0.8, dim=-1, keepdim=True)
    assert torch.equal(out.keep, out.token_entropy > bound)


def test_padding_never_kept_and_aggregation():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 12, 40, generator=gen) * torch.rand(2, 12, 1, generator=gen) * 5
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, 6:] = False
    mask[1, :] = False          # an empty response contributes nothing
    out = selective_entropy_regularizer(logits, mask)
    assert not (out.keep & ~mask).any()
    h = out.token_entropy
    expected = h[0][out.keep[0]].mean()
    assert torch.isclose(out.entropy, expected)


def test_zero_loss_and_gradient_at_anchor():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 16, 25, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 16, dtype=torch.bool)
    first = selective_entropy_regularizer(logits, mask)
    assert first.loss.item() == 0.0
    (g,) = torch.autograd.grad(first.loss, logits)
    assert torch.equal(g, torch.zeros_like(g))
    again = selective_entropy_regularizer(logits, mask, anchor=first.anchor)
    assert again.loss.item() == 0.0
    moved = selective_entropy_regularizer(logits, mask, anchor=first.anchor + 0.5, coef=0.01)
    assert math.isclose(moved.loss.item(), 0.01 * 0.25, rel_tol=1e-9)


def test_siren_gradcheck():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 6, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 6, dtype=torch.bool)
    assert torch.autograd.gradcheck(
        lambda x: selective_entropy_regularizer(x, mask, top_p=0.9, anchor=0.1, coef=1.0).loss,
        (logits,))


def test_siren_errors():
    x = torch.zeros(2, 3, 4)
    m = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"\(B, T, V\)"):
        selective_entropy_regularizer(torch.zeros(3, 4), m)
    with pytest.raises(ValueError, match="response_mask"):
        selective_entropy_regularizer(x, torch.ones(2, 4))
    with pytest.raises(ValueError, match="top_p"):
        selective_entropy_regularizer(x, m, top_p=0.0)
    with pytest.raises(ValueError, match="quantile"):
        selective_entropy_regularizer(x, m, quantile=1.5)
    with pytest.raises(ValueError, match="coef"):
        selective_entropy_regularizer(x, m, coef=-1.0)
    with pytest.raises(ValueError, match="anchor"):
        selective_entropy_regularizer(x, m, anchor=math.nan)
    with pytest.raises(TypeError, match="torch tensor"):
        selective_entropy_regularizer(x.numpy(), m)
