"""The f-divergence registry: generators, derivatives, conjugates, weights, limits."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from divergences import fdiv

PARAMS = {"js": [{"beta": 0.5}, {"beta": 0.2}], "skew_kl": [{"skew": 0.1}],
          "skew_reverse_kl": [{"skew": 0.3}],
          "alpha": [{"alpha": a} for a in (-0.5, 0.0, 0.3, 0.5, 1.0, 2.0)]}


def members():
    return [pytest.param(name, params, id=f"{name}{params or ''}")
            for name in fdiv.names() for params in PARAMS.get(name, [{}])]


T = torch.tensor([0.05, 0.3, 0.9, 1.0, 1.7, 4.0, 25.0], dtype=torch.float64)


@pytest.mark.parametrize(("name", "params"), members())
def test_generator_vanishes_at_one_and_is_convex(name, params):
    fd = fdiv.get(name, **params)
    one = torch.ones(1, dtype=torch.float64)
    assert fd.f(one).abs().item() < 1e-14
    if name != "tv":
        assert (fd.f_second(T) > 0).all()


@pytest.mark.parametrize(("name", "params"), members())
def test_derivatives_match_autograd(name, params):
    fd = fdiv.get(name, **params)
    t = T.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fd.f(t).sum(), t, create_graph=True)
    torch.testing.assert_close(fd.f_prime(T), g.detach(), rtol=1e-10, atol=1e-12)
    if name != "tv":
        (h,) = torch.autograd.grad(g.sum(), t)
        torch.testing.assert_close(fd.f_second(T), h, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(fd.derivative_log(T.log()), fd.f_prime(T), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize(("name", "params"), members())
def test_limits(name, params):
    fd = fdiv.get(name, **params)
    tiny = torch.tensor([1e-60], dtype=torch.float64)
    big = torch.tensor([1e60], dtype=torch.float64)
    f0 = fd.f(tiny).item()
    slope = (fd.f(big) / big).item()
    if math.isinf(fd.f0):
        assert f0 > 10
    else:
        assert f0 == pytest.approx(fd.f0, rel=1e-4, abs=1e-4)
    if math.isinf(fd.slope_inf):
        assert slope > 10
    else:
        assert slope == pytest.approx(fd.slope_inf, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize(("name", "params"), members())
def test_conjugate_fenchel_young_equality(name, params):
    # At u = f'(t) the supremum is attained: f*(u) = t u - f(t).
    fd = fdiv.get(name, **params)
    t = T[T != 1.0] if name == "tv" else T
    u = fd.f_prime(t)
    expected = t * u - fd.f(t)
    torch.testing.assert_close(fd.conjugate(u), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(("name", "params"), members())
def test_conjugate_closed_forms_agree_with_numeric(name, params):
    fd = fdiv.get(name, **params)
    if fd.conjugate_fn is None:
        pytest.skip("no closed form: the numeric solver is the implementation")
    u = fd.f_prime(T)
    numeric = fdiv._numeric_conjugate(fd, u)
    torch.testing.assert_close(fd.conjugate(u), numeric, rtol=1e-6, atol=1e-8)


@given(st.floats(-5, 5), st.floats(0.01, 50))
def test_fenchel_young_inequality(u, t):
    # f*(u) >= t u - f(t) for every t >= 0: the conjugate is a supremum.
    for name in fdiv.names():
        fd = fdiv.get(name)
        uu = torch.tensor([u], dtype=torch.float64)
        tt = torch.tensor([t], dtype=torch.float64)
        assert fd.conjugate(uu).item() >= (tt * uu - fd.f(tt)).item() - 1e-9


def test_density_ratio_weights_from_papers():
    # f-distill / Uni-Instruct: h(r) = r^2 f''(r), up to the constant that the batch-mean
    # normalisation removes.
    r = torch.tensor([0.1, 0.5, 1.0, 3.0, 20.0], dtype=torch.float64)
    expected = {
        "reverse_kl": torch.ones_like(r),
        "kl": r,
        "js": r / (1 + r) / 2,
        "squared_hellinger": r.sqrt() / 2,
        "jeffreys": 1 + r,
        "neyman_chi2": 2 / r,
    }
    for name, h in expected.items():
        torch.testing.assert_close(fdiv.get(name).weight(r), h, rtol=1e-12, atol=0)


@pytest.mark.parametrize(("name", "params"), members())
def test_pointwise_matches_generator(name, params):
    fd = fdiv.get(name, **params)
    g = torch.Generator().manual_seed(0)
    p = torch.rand(50, generator=g, dtype=torch.float64) + 0.01
    q = torch.rand(50, generator=g, dtype=torch.float64) + 0.01
    # the canonical terms q [f(t) - f'(1)(t - 1)]; they sum to D_f for normalised p, q
    canonical = q * fd.f(p / q) - fd.tangent_slope * (p - q)
    torch.testing.assert_close(fd.terms(p.log(), q.log()), canonical, rtol=1e-9, atol=1e-12)
    one = torch.ones((), dtype=torch.float64)
    torch.testing.assert_close(fd.f_prime(one), torch.tensor(fd.tangent_slope, dtype=torch.float64))


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="unknown f-divergence 'kld'.*reverse_kl"):
        fdiv.get("kld")


def test_parameters_are_range_checked():
    with pytest.raises(ValueError, match="beta must lie in"):
        fdiv.get("js", beta=1.5)
    with pytest.raises(ValueError, match="skew must lie in"):
        fdiv.get("skew_kl", skew=-0.1)
    with pytest.raises(TypeError, match="'kl'"):
        fdiv.get("kl", beta=0.5)
    with pytest.raises(TypeError, match="alpha must be a real number"):
        fdiv.get("alpha", alpha="half")


def test_aliases_and_passthrough():
    assert fdiv.get("forward_kl").name == "kl"
    assert fdiv.get("chi2").name == "pearson_chi2"
    fd = fdiv.get("tv")
    assert fdiv.get(fd) is fd
    with pytest.raises(ValueError, match="already registered"):
        fdiv.register("kl")(lambda: fd)


def test_user_defined_generator_and_missing_limit():
    # A user-supplied member needs only f (and its limits for zero mass).
    sq = fdiv.FDivergence(name="my_chi2", f=lambda t: (t - 1) ** 2, f_prime=lambda t: 2 * (t - 1),
                          f_second=lambda t: 2 + 0 * t, f0=1.0, slope_inf=math.nan)
    lp = torch.tensor([math.log(0.5), math.log(0.5)], dtype=torch.float64)
    lq = torch.tensor([math.log(0.9), math.log(0.1)], dtype=torch.float64)
    assert fdiv.evaluate(sq, lp, lq).item() == pytest.approx(0.16 / 0.9 + 0.16 / 0.1)
    with pytest.raises(ValueError, match="no slope_inf limit"):
        fdiv.evaluate(sq, lp, torch.tensor([0.0, -math.inf], dtype=torch.float64))


def test_upper_bounds():
    assert fdiv.get("tv").upper_bound == 1.0
    assert fdiv.get("js").upper_bound == pytest.approx(math.log(2))
    assert fdiv.get("squared_hellinger").upper_bound == 2.0
    assert fdiv.get("triangular").upper_bound == 2.0
    assert math.isinf(fdiv.get("kl").upper_bound)


@pytest.mark.parametrize(("name", "params"), members())
def test_branch_free_terms_match(name, params):
    # sync=False (no host reads, for torch.compile) gives the same values and gradients.
    fd = fdiv.get(name, **params)
    lp = torch.tensor([[-0.5, -1.5, -math.inf, -2.0], [-1.0, -1.0, -2.0, -3.0]],
                      dtype=torch.float64).log_softmax(-1)
    lq = torch.tensor([[-1.0, -math.inf, -0.7, -2.5], [-0.3, -2.0, -2.0, -1.0]],
                      dtype=torch.float64).log_softmax(-1)
    a = lp.clone().requires_grad_(True)
    b = lq.clone().requires_grad_(True)
    v1 = fdiv.evaluate(fd, a, b)
    v2 = fdiv.evaluate(fd, a, b, sync=False)
    torch.testing.assert_close(v1, v2)
    finite = torch.isfinite(v1)
    g1 = torch.autograd.grad(v1[finite].sum(), (a, b))
    g2 = torch.autograd.grad(v2[finite].sum(), (a, b))
    for x, y in zip(g1, g2):
        torch.testing.assert_close(x, y)
        assert torch.isfinite(x).all()


def test_f_distill_weights():
    r = torch.tensor([0.05, 0.5, 1.0, 3.0, 40.0], dtype=torch.float64)
    rc = r.clamp(0.1, 20.0)
    for name, h in {"reverse_kl": torch.ones_like(rc), "kl": rc, "js": rc / (1 + rc),
                    "squared_hellinger": rc.sqrt(), "jeffreys": 1 + rc,
                    "neyman_chi2": 1 / rc}.items():
        w = fdiv.f_distill_weights(r.log(), name)
        torch.testing.assert_close(w, h / h.mean(), rtol=1e-12, atol=0)
        assert w.mean().item() == pytest.approx(1.0)
    raw = fdiv.f_distill_weights(r.log(), "kl", clip=None, normalize=False)
    torch.testing.assert_close(raw, r)
    # per-row normalisation, no gradient, numpy in / numpy out
    lr = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    w = fdiv.f_distill_weights(lr, "js", dim=-1)
    assert not w.requires_grad
    torch.testing.assert_close(w.mean(-1), torch.ones(3, dtype=torch.float64))
    import numpy as np
    assert isinstance(fdiv.f_distill_weights(np.zeros(3)), np.ndarray)
    with pytest.raises(ValueError, match="NaN"):
        fdiv.f_distill_weights(torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="clip"):
        fdiv.f_distill_weights(torch.tensor([1e6]), clip=None)
    with pytest.raises(ValueError, match="unknown f-divergence"):
        fdiv.f_distill_weights(torch.zeros(2), "nope")


# --------------------------------------------------------------------------------------------
# terms_and_partial: closed-form d terms / d log q against autograd through the terms
# --------------------------------------------------------------------------------------------


def _log_pair(seed, scale, zero_mass):
    g = torch.Generator().manual_seed(seed)
    s = scale * torch.randn(4, 60, generator=g, dtype=torch.float64)
    t = scale * torch.randn(4, 60, generator=g, dtype=torch.float64)
    if zero_mass:
        t[0, :5] = -math.inf          # p = 0 < q
        s[1, 3:8] = -math.inf         # q = 0 < p
        s[2, :3] = t[2, :3] = -math.inf  # both zero
    return torch.log_softmax(t, -1), torch.log_softmax(s, -1)


@pytest.mark.parametrize(("name", "params"), members())
@pytest.mark.parametrize(("scale", "zero_mass"), [(2.0, False), (2.0, True), (1e4, False),
                                                  (40.0, True)])
def test_terms_and_partial_match_autograd(name, params, scale, zero_mass):
    fd = fdiv.get(name, **params)
    lp, lq = _log_pair(3, scale, zero_mass)
    x = lq.clone().requires_grad_()
    ref = fd.terms(lp, x, sync=False)
    (g,) = torch.autograd.grad(ref.sum(), x, materialize_grads=True)
    for sync in (False, True):
      for precise in (True, False):
        t, a = fd.terms_and_partial(lp, lq, sync=sync, precise=precise)
        assert torch.equal(torch.isinf(t), torch.isinf(ref))
        fin = torch.isfinite(ref)
        if precise:  # exactly the values of terms()
            assert torch.allclose(t[fin], ref.detach()[fin], rtol=1e-12, atol=1e-300)
        else:
            # the plain terms q f(p/q): the canonical ones plus f'(1) (p - q), and their
            # partial the canonical one minus f'(1) q (where the term is finite)
            c = fd.tangent_slope
            p, q = lp.exp(), lq.exp()
            t = t - c * (p - q)
            a = a + torch.where(torch.isfinite(t), c * q, torch.zeros_like(q))
            # no near-diagonal series: absolute error of order eps * q |log t|
            assert torch.allclose(t[fin], ref.detach()[fin], rtol=1e-9, atol=1e-14 * scale)
        # Finite wherever the reference gradient is: logits of 1e4 never give 0 * inf.
        ok = torch.isfinite(g)
        assert torch.isfinite(a[ok]).all()
        assert torch.allclose(a[ok], g[ok], rtol=1e-9, atol=1e-12 * scale)


@pytest.mark.parametrize(("name", "params"), members())
def test_terms_and_partial_homogeneity_gives_the_p_partial(name, params):
    """The terms are 1-homogeneous in (p, q), so d/d log p = terms - d/d log q."""
    fd = fdiv.get(name, **params)
    lp, lq = _log_pair(5, 2.0, False)
    y = lp.clone().requires_grad_()
    (g,) = torch.autograd.grad(fd.terms(y, lq, sync=False).sum(), y)
    t, a = fd.terms_and_partial(lp, lq, precise=True)
    assert torch.allclose(t - a, g, rtol=1e-9, atol=1e-12)
    # the plain terms (precise=False) differ by f'(1) (p - q): d/d log p by f'(1) p
    t, a = fd.terms_and_partial(lp, lq)
    assert torch.allclose(t - a, g + fd.tangent_slope * lp.exp(), rtol=1e-9, atol=1e-12)


def test_terms_and_partial_float32_extreme_logits_stay_finite():
    lp, lq = _log_pair(7, 1e4, False)
    for name in ("kl", "reverse_kl", "js", "skew_kl", "skew_reverse_kl", "tv", "jeffreys"):
        _, a = fdiv.get(name).terms_and_partial(lp.float(), lq.float())
        assert torch.isfinite(a).all(), name
