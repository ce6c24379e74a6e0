"""The registry never gives a silently wrong number (issue 14): NaN propagates, every term is
non-negative and accurate to a few ulps against an mpmath reference however close p and q are,
identical inputs give exactly 0, conjugates are differentiable, members compare and hash by
(name, params), the skew members take ``skew=``."""

import math
import warnings

import mpmath
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from divergences import fdiv

PARAMS = {"js": [{"beta": 0.5}, {"beta": 0.2}], "skew_kl": [{"skew": 0.1}],
          "skew_reverse_kl": [{"skew": 0.3}],
          "alpha": [{"alpha": a} for a in (-0.5, 0.0, 0.3, 0.5, 0.99, 1.0, 2.0)]}
CASES = [(name, params) for name in fdiv.names() for params in PARAMS.get(name, [{}])]


def members():
    return [pytest.param(n, p, id=f"{n}{p or ''}") for n, p in CASES]


# --------------------------------------------------------------------------------------------
# mpmath reference: the canonical term q [f(t) - f'(1) (t - 1)], t = p / q
# --------------------------------------------------------------------------------------------


def _mp_generator(name, params):
    mp = mpmath

    def xlogx(t):
        return t * mp.log(t) if t > 0 else mp.mpf(0)

    if name == "kl":
        return xlogx
    if name == "reverse_kl":
        return lambda t: -mp.log(t)
    if name == "js":
        b = mp.mpf(params["beta"])
        return lambda t: b * xlogx(t) - xlogx(b * t + 1 - b)
    if name == "skew_kl":
        s = mp.mpf(params["skew"])
        return lambda t: xlogx(t) - t * mp.log(s * t + 1 - s)
    if name == "skew_reverse_kl":
        s = mp.mpf(params["skew"])
        return lambda t: -mp.log(s + (1 - s) * t)
    if name == "tv":
        return lambda t: abs(t - 1) / 2
    if name == "squared_hellinger":
        return lambda t: (mp.sqrt(t) - 1) ** 2
    if name == "pearson_chi2":
        return lambda t: (t - 1) ** 2
    if name == "neyman_chi2":
        return lambda t: (1 - t) ** 2 / t
    if name == "jeffreys":
        return lambda t: (t - 1) * mp.log(t)
    if name == "triangular":
        return lambda t: (t - 1) ** 2 / (t + 1)
    if name == "le_cam":
        return lambda t: (t - 1) ** 2 / (t + 1) / 2
    if name == "alpha":
        a = mp.mpf(params["alpha"])
        if a == 1:
            return lambda t: xlogx(t) - t + 1
        if a == 0:
            return lambda t: -mp.log(t) + t - 1
        return lambda t: (t**a - a * t - (1 - a)) / (a * (a - 1))
    raise AssertionError(name)


def mp_terms(name, params, p, q):
    """Canonical terms in 60-digit arithmetic from the exact values of the floats p, q."""
    f = _mp_generator(name, params)
    out = []
    with mpmath.workdps(60):
        # f'(1) of the exact parameter (1 - s for skew KL: 1 - fl(s), not fl(1 - s))
        tangent = mpmath.diff(f, mpmath.mpf(1)) if name != "tv" else 0
        for a, b in zip(p, q):
            a, b = mpmath.mpf(a), mpmath.mpf(b)
            out.append(float(b * f(a / b) - tangent * (a - b)))
    return out


def rel_err_ulps(got, ref, dtype):
    eps = torch.finfo(dtype).eps
    worst = 0.0
    for g, r in zip(got, ref):
        if r == 0.0:
            assert g == 0.0, (g, r)
            continue
        worst = max(worst, abs(g - r) / abs(r) / eps)
    return worst


# Measured worst case over 600 such pairs: 3.5 ulps (float64), 2.6 (float32); the bound leaves room.
ULPS = 8.0


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_terms_are_accurate_to_a_few_ulps_however_close(data):
    """Every member, near-equal pairs from 1e-15 to 1e-1 relative apart: a few ulps."""
    name, params = data.draw(st.sampled_from(CASES))
    dtype = data.draw(st.sampled_from([torch.float64, torch.float32]))
    n = data.draw(st.integers(2, 6))
    base = data.draw(st.lists(st.floats(0.05, 1.0), min_size=n, max_size=n))
    rel = data.draw(st.lists(st.floats(-15.0, -1.0), min_size=n, max_size=n))
    signs = data.draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n))
    p = torch.tensor(base, dtype=torch.float64)
    p = (p / p.sum()).to(dtype)
    q = (p.double() * (1.0 + torch.tensor(signs, dtype=torch.float64)
                       * 10.0 ** torch.tensor(rel, dtype=torch.float64))).to(dtype)
    fd = fdiv.get(name, **params)
    # from log masses (what logits give): reference from the exact exp of the stored logs
    lp, lq = p.log(), q.log()
    got = fd.terms(lp, lq).double().tolist()
    with mpmath.workdps(60):
        pe = [mpmath.exp(mpmath.mpf(x)) for x in lp.double().tolist()]
        qe = [mpmath.exp(mpmath.mpf(x)) for x in lq.double().tolist()]
    ref = mp_terms(name, params, pe, qe)
    assert rel_err_ulps(got, ref, dtype) <= ULPS
    # from the masses themselves (what probabilities give)
    got = fd.terms(lp, lq, masses=(p, q)).double().tolist()
    ref = mp_terms(name, params, p.double().tolist(), q.double().tolist())
    assert rel_err_ulps(got, ref, dtype) <= ULPS


@pytest.mark.parametrize(("name", "params"), members())
def test_terms_are_non_negative_term_by_term(name, params):
    g = torch.Generator().manual_seed(1)
    for dtype, scale in ((torch.float64, 1.0), (torch.float32, 1.0), (torch.float32, 1e-6),
                         (torch.float64, 1e-12), (torch.float32, 1e4)):
        s = torch.randn(8, 50, generator=g, dtype=torch.float64)
        lp = s.log_softmax(-1).to(dtype)
        lq = (s + scale * torch.randn(8, 50, generator=g, dtype=torch.float64)
              ).log_softmax(-1).to(dtype)
        fd = fdiv.get(name, **params)
        assert (fd.terms(lp, lq) >= 0).all()
        t, _ = fd.terms_and_partial(lp, lq, precise=True)
        assert (t >= 0).all()
        # the losses' plain terms (precise=False) may be signed; their sum is not below 0
        # by more than rounding
        t, _ = fd.terms_and_partial(lp, lq)
        assert (t.double().sum(-1) >= -1e-6).all()


def test_kl_near_equal_example_terms():
    # The example, in log space: today's p (log p - log q) lost 25%.
    p = torch.tensor([0.75, 0.25], dtype=torch.float64)
    q = torch.tensor([0.75 + 1e-8, 0.25 - 1e-8], dtype=torch.float64)
    fd = fdiv.get("kl")
    got = fd.terms(p.log(), q.log(), masses=(p, q)).tolist()
    ref = mp_terms("kl", {}, p.tolist(), q.tolist())
    assert rel_err_ulps(got, ref, torch.float64) <= 4


# --------------------------------------------------------------------------------------------
# Identical inputs: exactly 0
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), members())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_identical_inputs_give_exactly_zero(name, params, dtype):
    g = torch.Generator().manual_seed(3)
    lp = (3.0 * torch.randn(5, 40, generator=g, dtype=torch.float64)).log_softmax(-1).to(dtype)
    lp[0, :4] = -math.inf   # zero mass on both sides
    fd = fdiv.get(name, **params)
    for sync in (True, False):
        assert (fd.terms(lp, lp, sync=sync) == 0).all()
        for precise in (True, False):
            t, _ = fd.terms_and_partial(lp, lp, sync=sync, precise=precise)
            assert (t == 0).all()
    assert (fdiv.evaluate(fd, lp, lp) == 0).all()
    p = lp.exp()
    assert (fdiv.evaluate(fd, lp, lp, masses=(p, p)) == 0).all()


# --------------------------------------------------------------------------------------------
# NaN propagates through every path (it was read as zero mass)
# --------------------------------------------------------------------------------------------


def _nan_pair(zero_mass):
    g = torch.Generator().manual_seed(4)
    lp = torch.randn(3, 12, generator=g, dtype=torch.float64).log_softmax(-1)
    lq = torch.randn(3, 12, generator=g, dtype=torch.float64).log_softmax(-1)
    lp[0, 2] = math.nan           # NaN in p
    lq[1, 5] = math.nan           # NaN in q
    lp[2, 7] = lq[2, 7] = math.nan
    if zero_mass:
        lp[0, 3] = -math.inf
        lq[0, 4] = -math.inf
        lq[1, 6] = -math.inf
        lp[1, 6] = -math.inf
    return lp, lq


@pytest.mark.parametrize(("name", "params"), members())
@pytest.mark.parametrize("zero_mass", [False, True])
def test_nan_propagates_through_terms_and_partials(name, params, zero_mass):
    fd = fdiv.get(name, **params)
    lp, lq = _nan_pair(zero_mass)
    nan = torch.isnan(lp) | torch.isnan(lq)
    outs = [fd.terms(lp, lq), fd.terms(lp, lq, sync=False)]
    if not zero_mass:
        outs.append(fd.terms(lp, lq, zero_mass=False))
    for sync in (False, True):
        for precise in (False, True):
            outs += list(fd.terms_and_partial(lp, lq, sync=sync, precise=precise))
            if not zero_mass:
                outs += list(fd.terms_and_partial(lp, lq, zero_mass=False, precise=precise))
    for out in outs:
        assert torch.isnan(out[nan]).all(), name
        assert not torch.isnan(out[~nan]).any(), name
    assert torch.isnan(fdiv.evaluate(fd, lp, lq)).all()


def test_nan_logit_row_is_nan_not_a_plausible_value():
    # The row: one NaN student logit gave reverse KL 0.0, JS 0.347, TV 0.5, KL inf.
    s = torch.randn(1, 5, generator=torch.Generator().manual_seed(0))
    t = torch.randn(1, 5, generator=torch.Generator().manual_seed(1))
    s[0, 1] = math.nan
    lp, lq = t.log_softmax(-1), s.log_softmax(-1)
    for name in ("kl", "reverse_kl", "js", "tv", "skew_kl", "skew_reverse_kl"):
        fd = fdiv.get(name)
        assert torch.isnan(fdiv.evaluate(fd, lp, lq)).all(), name
        assert torch.isnan(fdiv.evaluate(fd, lp, lq, sync=False)).all(), name
        t_, a = fd.terms_and_partial(lp, lq)
        assert torch.isnan(t_.sum(-1)).all() and torch.isnan(a).all(), name


# --------------------------------------------------------------------------------------------
# Gradients: closed-form partials, autograd through the precise terms, extreme logits
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), members())
def test_gradcheck_terms_float64(name, params):
    fd = fdiv.get(name, **params)
    g = torch.Generator().manual_seed(5)
    s = torch.randn(2, 9, generator=g, dtype=torch.float64)
    # near the diagonal (the series), at moderate and at far ratios
    t = torch.cat([s[:, :3] + 1e-3 * torch.randn(2, 3, generator=g, dtype=torch.float64),
                   s[:, 3:6] + 0.7 * torch.randn(2, 3, generator=g, dtype=torch.float64),
                   s[:, 6:] + 15.0 * torch.randn(2, 3, generator=g, dtype=torch.float64)], -1)
    lp = s.log_softmax(-1).requires_grad_()
    lq = t.log_softmax(-1).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: fd.terms(a, b), (lp, lq))
    if fd.pointwise_partial is not None:
        # the closed-form partial is d terms / d log q, and terms - a is d terms / d log p
        tt, a = fd.terms_and_partial(lp.detach(), lq.detach(), precise=True)
        ga, gb = torch.autograd.grad(fd.terms(lp, lq).sum(), (lp, lq))
        torch.testing.assert_close(a, gb, rtol=1e-9, atol=1e-14)
        torch.testing.assert_close(tt - a, ga, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize(("name", "params"), members())
def test_extreme_logits_stay_finite(name, params):
    # logits of +-1e4 in float32 (the JS loss's case): no inf, no NaN, in values or partials
    g = torch.Generator().manual_seed(7)
    lp = (1e4 * torch.randn(4, 64, generator=g)).log_softmax(-1)
    lq = (1e4 * torch.randn(4, 64, generator=g)).log_softmax(-1)
    fd = fdiv.get(name, **params)
    finite_limit = math.isfinite(fd.upper_bound)
    for precise in (False, True):
        t, a = fd.terms_and_partial(lp, lq, precise=precise)
        assert not torch.isnan(t).any() and not torch.isnan(a).any()
        if finite_limit:
            assert torch.isfinite(t).all() and torch.isfinite(a).all()
        v = fdiv.evaluate(fd, lp.double(), lq.double())
        # alpha's p^a q^(1-a) = exp(a lp + (1 - a) lq) carries float32's rounding of a * 1e4
        tol = 2e-3 if name == "alpha" else 1e-4
        torch.testing.assert_close(t.double().sum(-1).clamp_min(0), v, rtol=tol, atol=tol)


# --------------------------------------------------------------------------------------------
# Conjugates: differentiable, +inf beyond slope_inf, the lower end
# --------------------------------------------------------------------------------------------

NUMERIC = [("skew_kl", {"skew": 0.1}), ("skew_kl", {"skew": 0.6}),
           ("skew_reverse_kl", {"skew": 0.3}), ("jeffreys", {})]


@pytest.mark.parametrize(("name", "params"), NUMERIC)
def test_numeric_conjugate_is_differentiable(name, params):
    fd = fdiv.get(name, **params)
    assert fd.conjugate_fn is None
    t = torch.tensor([0.05, 0.4, 1.0, 2.5, 9.0], dtype=torch.float64)
    u = fd.f_prime(t).requires_grad_()
    val = fd.conjugate(u)
    assert val.requires_grad
    (g,) = torch.autograd.grad(val.sum(), u)
    torch.testing.assert_close(g, t, rtol=1e-9, atol=1e-12)   # d f*/du = t* = (f')^-1(u)
    assert torch.autograd.gradcheck(fd.conjugate, (u.detach().requires_grad_(),))
    # a variational objective through conjugate() now trains: its gradient is not zero
    w = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    obj = (w * t).mean() - fd.conjugate(w * t - 1.0).mean()
    (gw,) = torch.autograd.grad(obj, w)
    assert gw.abs().item() > 1e-6


@pytest.mark.parametrize(("name", "params"), [("kl", {}), ("reverse_kl", {}), ("js", {}),
                                              ("squared_hellinger", {}), ("alpha", {"alpha": 2.0})])
def test_numeric_conjugate_matches_closed_forms_with_gradient(name, params):
    fd = fdiv.get(name, **params)
    u = fd.f_prime(torch.tensor([0.2, 0.8, 1.5, 4.0], dtype=torch.float64))
    a = u.clone().requires_grad_()
    b = u.clone().requires_grad_()
    closed, numeric = fd.conjugate(a), fdiv._numeric_conjugate(fd, b)
    torch.testing.assert_close(numeric, closed, rtol=1e-7, atol=1e-9)
    ga = torch.autograd.grad(closed.sum(), a)[0]
    gb = torch.autograd.grad(numeric.sum(), b)[0]
    torch.testing.assert_close(gb, ga, rtol=1e-7, atol=1e-9)


def test_conjugate_domain_ends():
    sk = fdiv.get("skew_kl", skew=0.1)
    u = torch.tensor([sk.slope_inf, sk.slope_inf + 1e-9, sk.slope_inf + 1.0], dtype=torch.float64)
    val = sk.conjugate(u)
    # at slope_inf the supremum is the limit of t u - f(t) = t log1p((1 - s)/(s t)): (1 - s)/s
    assert val[0].item() == pytest.approx(9.0, rel=1e-8)
    assert math.isinf(val[1].item()) and math.isinf(val[2].item())
    sr = fdiv.get("skew_reverse_kl", skew=0.3)
    # slope_inf = 0: t * 0 - f(t) = log(s + (1 - s) t) grows without bound
    assert sr.conjugate(torch.tensor([0.0, 0.5], dtype=torch.float64)).isinf().all()
    # lower end: f'(0+) = -(1 - s)/s; at and below it the supremum is at t = 0: -f(0) = log s
    low = torch.tensor([-0.7 / 0.3, -5.0], dtype=torch.float64)
    torch.testing.assert_close(sr.conjugate(low), torch.full_like(low, math.log(0.3)))
    assert torch.isnan(sk.conjugate(torch.tensor([math.nan], dtype=torch.float64))).all()


# --------------------------------------------------------------------------------------------
# FDivergence: equality and hashing, the conjugate field, f-distill weights of TV
# --------------------------------------------------------------------------------------------


def test_equality_and_hash_by_name_and_params():
    a, b = fdiv.get("js"), fdiv.get("js", beta=0.5)
    assert a == b and hash(a) == hash(b)
    assert len({a, b, fdiv.get("js", beta=0.2)}) == 2
    assert fdiv.get("js", beta=0.2) != a
    assert fdiv.get("kl") != fdiv.get("reverse_kl")
    assert fdiv.get("skew_kl", skew=0.2) == fdiv.get("skew_kl", skew=0.2)
    assert fdiv.get("alpha", alpha=2) == fdiv.get("alpha", alpha=2.0)
    assert fdiv.get("kl") != "kl"
    assert {fdiv.get("tv"): 1}[fdiv.get("tv")] == 1


def test_conjugate_field_is_documented_as_named():
    doc = fdiv.FDivergence.__doc__
    assert "conjugate_fn:" in doc and "\n    conjugate:" not in doc
    assert fdiv.get("kl").conjugate_fn is not None
    # backward compatible: the field is still conjugate_fn, the method conjugate(u)
    fd = fdiv.FDivergence(name="sq", f=lambda t: (t - 1) ** 2, f_prime=lambda t: 2 * (t - 1),
                          f_second=lambda t: 2 + 0 * t, f0=1.0, slope_inf=math.inf,
                          conjugate_fn=lambda u: u + u * u / 4)
    torch.testing.assert_close(fd.conjugate(torch.tensor([2.0])), torch.tensor([3.0]))


def test_f_distill_weights_tv_is_defined():
    r = torch.tensor([-1.0, 0.0, 2.0])
    torch.testing.assert_close(fdiv.f_distill_weights(r, "tv"), torch.ones(3))   # was NaN
    torch.testing.assert_close(fdiv.f_distill_weights(r, "tv", normalize=False), torch.zeros(3))
    rows = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    torch.testing.assert_close(fdiv.f_distill_weights(rows, "tv", dim=-1), torch.ones(2, 2))


# --------------------------------------------------------------------------------------------
# skew= is the mixture weight; alpha= deprecated for one release
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["skew_kl", "skew_reverse_kl"])
def test_registry_skew_keyword_and_deprecated_alpha(name):
    new = fdiv.get(name, skew=0.25)
    assert new.params == {"skew": 0.25}
    with pytest.warns(DeprecationWarning, match=r"alpha=.*deprecated.*skew="):
        old = fdiv.get(name, alpha=0.25)
    assert old == new
    lp = torch.tensor([0.7, 0.3]).log()
    lq = torch.tensor([0.2, 0.8]).log()
    torch.testing.assert_close(fdiv.evaluate(old, lp, lq), fdiv.evaluate(new, lp, lq))
    with pytest.raises(TypeError, match="skew= only"):
        fdiv.get(name, skew=0.2, alpha=0.2)
    with pytest.raises(ValueError, match="skew must lie in"):
        fdiv.get(name, skew=1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fdiv.get(name)            # the default (0.1) warns about nothing
        fdiv.get(name, skew=0.1)


# --------------------------------------------------------------------------------------------
# KL from logits: accurate to the logits, not to their rounded log-softmax
# --------------------------------------------------------------------------------------------


def _mp_kl_logits(a, b):
    mpmath.mp.dps = 40
    out = []
    for ra, rb in zip(a.tolist(), b.tolist()):
        x = [mpmath.mpf(v) for v in ra]
        y = [mpmath.mpf(v) for v in rb]
        la = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in x))
        lb = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in y))
        out.append(float(mpmath.fsum(mpmath.exp(u - la) * (u - la - v + lb)
                                     for u, v in zip(x, y))))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("vocab, scale, noise", [
    (1000, 2.0, 0.5),       # the benchmark's regime
    (8000, 10.0, 0.5),      # |log-normaliser| ~ 20: its ulp cost ~50 ulps via log-softmax
    (300, 2.0, 1e-2),
    (300, 2.0, 1e-6),       # p close to q: the log-softmax form was off by 1e6 ulps (float32)
    (5, 1.0, 1e-5),
])
def test_kl_from_logits_is_accurate_to_a_few_ulps(dtype, vocab, scale, noise):
    from divergences import kl

    g = torch.Generator().manual_seed(vocab)
    a = (scale * torch.randn(3, vocab, generator=g, dtype=torch.float64)).to(dtype)
    b = (a.double() + noise * torch.randn(3, vocab, generator=g, dtype=torch.float64)).to(dtype)
    ref = _mp_kl_logits(a, b)
    got = kl(a, b, input="logits").double()
    ulps = ((got - ref).abs() / ref / torch.finfo(dtype).eps).max().item()
    assert ulps <= 4.0, ulps


def test_kl_from_extreme_logits_is_finite_and_right():
    from divergences import kl

    a = torch.tensor([[1e4, -1e4, 0.0], [30.0, -30.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[-1e4, 1e4, 0.0], [-30.0, 30.0, 0.0]], dtype=torch.float64)
    ref = _mp_kl_logits(a, b)
    got = kl(a, b, input="logits")
    assert torch.isfinite(got).all()
    assert torch.allclose(got, ref, rtol=1e-13, atol=0.0)


@pytest.mark.parametrize("rows", [3, 700])  # 700 x 1000: evaluated in row blocks
def test_kl_from_logits_gradients_match_autograd(rows):
    from divergences import kl

    g = torch.Generator().manual_seed(rows)
    a = torch.randn(rows, 1000, generator=g, dtype=torch.float64, requires_grad=True)
    b = (a.detach() + torch.randn(rows, 1000, generator=g, dtype=torch.float64)).requires_grad_()
    w = torch.rand(rows, generator=g, dtype=torch.float64)
    (kl(a, b, input="logits") * w).sum().backward()
    a2, b2 = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    lp, lq = torch.log_softmax(a2, -1), torch.log_softmax(b2, -1)
    ((lp.exp() * (lp - lq)).sum(-1) * w).sum().backward()
    assert torch.allclose(a.grad, a2.grad, rtol=1e-10, atol=1e-14)
    assert torch.allclose(b.grad, b2.grad, rtol=1e-10, atol=1e-14)


def test_kl_from_logits_gradcheck_and_double_backward():
    from divergences import kl

    g = torch.Generator().manual_seed(1)
    a = torch.randn(2, 6, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 6, generator=g, dtype=torch.float64, requires_grad=True)
    near = (a.detach() + 1e-7 * torch.randn(2, 6, generator=g, dtype=torch.float64))
    near.requires_grad_()

    def fn(x, y):
        return kl(x, y, input="logits")

    assert torch.autograd.gradcheck(fn, (a, b))
    assert torch.autograd.gradgradcheck(fn, (a, b))
    assert torch.autograd.gradcheck(fn, (a, near))  # the rows' precise fallback


@pytest.mark.parametrize("fn_name", ["kl", "js"])
@pytest.mark.parametrize("inp", ["logits", "probs"])
def test_rows_near_p_eq_q_keep_accurate_gradients(fn_name, inp):
    # A batch whose near-diagonal rows take the precise value (the cheap form's value loses
    # digits there) while the gradient stays the cheap form's closed-form partials: both are
    # checked against mpmath (q - p for KL in the student's logits; by finite differences of
    # the mpmath value for JS), and double backward still works.
    import divergences

    fn = getattr(divergences, fn_name)
    g = torch.Generator().manual_seed(7)
    a = torch.randn(4, 12, generator=g, dtype=torch.float64)
    b = a + torch.cat([1e-7 * torch.randn(2, 12, generator=g, dtype=torch.float64),
                       torch.randn(2, 12, generator=g, dtype=torch.float64)])
    x = b.clone().requires_grad_()

    def value(t):
        return fn(a if inp == "logits" else a.softmax(-1),
                  t if inp == "logits" else t.softmax(-1), input=inp)

    (grad,) = torch.autograd.grad(value(x).sum(), x)
    mpmath.mp.dps = 50
    for i in range(4):
        pa = [mpmath.exp(mpmath.mpf(float(v))) for v in a[i]]
        pb = [mpmath.exp(mpmath.mpf(float(v))) for v in b[i]]
        sa, sb = sum(pa), sum(pb)
        if fn_name == "kl":  # d/db KL(softmax(a) || softmax(b)) = q - p
            ref = [pb[j] / sb - pa[j] / sa for j in range(12)]
        else:  # d/db_j JS = (1/2) sum_k d/dq_k [q_k log(2 q_k / (p_k + q_k))] dq_k/db_j
            q = [v / sb for v in pb]
            p = [v / sa for v in pa]
            dq = [mpmath.mpf(0.5) * mpmath.log(2 * q[k] / (p[k] + q[k])) for k in range(12)]
            mean = sum(q[k] * dq[k] for k in range(12))
            ref = [q[j] * (dq[j] - mean) for j in range(12)]
        ref_t = torch.tensor([float(v) for v in ref], dtype=torch.float64)
        # KL from logits differentiates b - a itself: full precision on every row. The other
        # paths start from rounded log-probabilities or masses, whose half-ulp errors are
        # 1e-9 relative to a 1e-7 gap between p and q: the gradient can be no better (the
        # precise terms' autograd gives the same digits)
        tol = 1e-12 if (fn_name, inp) == ("kl", "logits") or i >= 2 else 1e-8
        assert float((grad[i] - ref_t).norm() / ref_t.norm()) < tol, (i, grad[i], ref_t)
    assert torch.autograd.gradgradcheck(value, (x,))
