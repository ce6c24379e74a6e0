"""The exact measures never give a silently wrong number (issue 14): NaN propagates (or, when
validated, is an error naming the argument), values are accurate to a few ulps against mpmath
however close p and q are, identical inputs give exactly 0, half-precision inputs are checked at
their own dtype's tolerance, ``base`` is an error where it cannot apply, ``skew=`` names the
skew KL's mixture weight."""

import math
import warnings

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import divergences as dv
from divergences import fdiv, gaussian, transport

from .conftest import NAMED_PAIRWISE

NAN = float("nan")


def _member(name):
    return lambda p, q, **k: dv.f_divergence(p, q, name, **k)


# every measure of divergences.*, as (label, fn(p, q, **kw)); single-argument ones take p only
PAIR = {
    **NAMED_PAIRWISE,
    "renyi0": lambda p, q, **k: dv.renyi(p, q, alpha=0.0, **k),
    "renyi0.5": lambda p, q, **k: dv.renyi(p, q, alpha=0.5, **k),
    "renyi1": lambda p, q, **k: dv.renyi(p, q, alpha=1.0, **k),
    "renyi2": lambda p, q, **k: dv.renyi(p, q, alpha=2.0, **k),
    "renyi_inf": lambda p, q, **k: dv.renyi(p, q, alpha=math.inf, **k),
    "alpha_divergence": dv.alpha_divergence,
    "cross_entropy": dv.cross_entropy,
    **{f"f_divergence[{n}]": _member(n) for n in fdiv.names()},
}
DIVERGENCES = [k for k in PAIR if k != "cross_entropy"]   # zero at p = q


def _rows(kind, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 6, generator=g, dtype=dtype)
    if kind == "logits":
        return x
    if kind == "log_probs":
        return x.log_softmax(-1)
    return x.softmax(-1)


# --------------------------------------------------------------------------------------------
# NaN
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["probs", "logits", "log_probs"])
@pytest.mark.parametrize("name", list(PAIR))
def test_nan_propagates_unvalidated_and_is_named_when_validated(name, kind):
    fn = PAIR[name]
    p, q = _rows(kind), _rows(kind).flip(-1)
    p[0, 1] = NAN          # row 0: NaN in p
    q[1, 4] = NAN          # row 1: NaN in q; row 2 clean
    out = fn(p, q, input=kind, validate=False)
    assert torch.isnan(out[:2]).all(), out
    assert not torch.isnan(out[2]), out
    with pytest.raises(ValueError, match="^p contains NaN"):
        fn(p, _rows(kind), input=kind)
    with pytest.raises(ValueError, match="^q contains NaN"):
        fn(_rows(kind), q, input=kind)


@pytest.mark.parametrize("kind", ["probs", "logits", "log_probs"])
def test_entropy_nan(kind):
    p = _rows(kind)
    p[0, 2] = NAN
    out = dv.entropy(p, input=kind, validate=False)
    assert torch.isnan(out[0]) and not torch.isnan(out[1:]).any()
    with pytest.raises(ValueError, match="^p contains NaN"):
        dv.entropy(p, input=kind)


def test_nan_probability_is_not_zero_mass():
    # the case: kl([nan, .5, .5], q, validate=False) was 0.367 (NaN read as 0 mass)
    q = [0.2, 0.3, 0.5]
    assert np.isnan(dv.kl([NAN, 0.5, 0.5], q, validate=False))
    assert np.isnan(dv.js([NAN, 0.5, 0.5], q, validate=False))
    assert np.isnan(dv.tv(q, [0.5, NAN, 0.5], validate=False))
    assert np.isnan(dv.entropy([NAN, 0.5, 0.5], validate=False))
    # a NaN logit row: reverse KL was 0.0, JS 0.347, TV 0.5
    s = torch.tensor([[0.1, NAN, -0.3, 1.0, 0.2]])
    t = torch.tensor([[0.5, 0.2, -1.0, 0.0, 0.3]])
    for fn in (dv.kl, dv.js, dv.tv, dv.hellinger, dv.jeffreys):
        assert torch.isnan(fn(t, s, input="logits", validate=False)).all()
        assert torch.isnan(fn(s, t, input="logits", validate=False)).all()


# --------------------------------------------------------------------------------------------
# Precision: a few ulps against mpmath however close p and q are
# --------------------------------------------------------------------------------------------


def mp_classic(name, p, q, **params):
    """sum_i q_i f(p_i/q_i) (the literal definition) in 60-digit arithmetic."""
    with mpmath.workdps(60):
        P = [mpmath.mpf(x) for x in p]
        Q = [mpmath.mpf(x) for x in q]
        if name == "kl":
            return float(sum(a * mpmath.log(a / b) for a, b in zip(P, Q)))
        if name == "js":
            m = [(a + b) / 2 for a, b in zip(P, Q)]
            return float(sum(a * mpmath.log(a / c) + b * mpmath.log(b / c)
                             for a, b, c in zip(P, Q, m)) / 2)
        if name == "skew_kl":
            s = mpmath.mpf(params["skew"])
            return float(sum(a * mpmath.log(a / (s * a + (1 - s) * b)) for a, b in zip(P, Q)))
        if name == "tv":
            return float(sum(abs(a - b) for a, b in zip(P, Q)) / 2)
        if name == "hellinger":
            return float(mpmath.sqrt(sum((mpmath.sqrt(a) - mpmath.sqrt(b)) ** 2
                                         for a, b in zip(P, Q)) / 2))
        if name == "chi2":
            return float(sum((a - b) ** 2 / b for a, b in zip(P, Q)))
        if name == "jeffreys":
            return float(sum((a - b) * mpmath.log(a / b) for a, b in zip(P, Q)))
        if name == "renyi":
            a_ = mpmath.mpf(params["alpha"])
            return float(mpmath.log(sum(a**a_ * b ** (1 - a_) for a, b in zip(P, Q))) / (a_ - 1))
        if name == "bhattacharyya":
            return float(-mpmath.log(sum(mpmath.sqrt(a * b) for a, b in zip(P, Q))))
        if name == "alpha_divergence":
            a_ = mpmath.mpf(params["alpha"])
            return float((sum(a**a_ * b ** (1 - a_) for a, b in zip(P, Q)) - 1)
                         / (a_ * (a_ - 1)))
    raise AssertionError(name)


def _ulps(got, ref):
    if ref == 0.0:
        return 0.0 if got == 0.0 else math.inf
    return abs(got - ref) / abs(ref) / np.finfo(np.float64).eps


def test_kl_near_equal_example_is_exact():
    # KL at [0.75, 0.25] vs [0.75 + 1e-8, 0.25 - 1e-8]: 25% off before, scipy 4.5e-9
    p = np.array([0.75, 0.25])
    q = np.array([0.75 + 1e-8, 0.25 - 1e-8])
    ref = mp_classic("kl", p, q)
    assert _ulps(float(dv.kl(p, q)), ref) <= 2
    assert _ulps(float(dv.kl(torch.tensor(p), torch.tensor(q))), ref) <= 2


# scipy's gh-20710 cases (rel_entr of near-equal numbers), as two-point distributions:
# KL of about 8.5e-28, 0.0 before.
GH20710 = [(0.9456657713430001, 0.9456657713430094), (0.48066098564791515, 0.48066098564794774),
           (0.786048657854401, 0.7860486578542367)]


@pytest.mark.parametrize(("x", "y"), GH20710)
def test_gh20710_tiny_differences(x, y):
    # [1 - c, c] with c = 1 - x in [0.5, 1]: 1 - c is exact, so both sum to exactly 1
    cx, cy = 1.0 - x, 1.0 - y
    p, q = np.array([1.0 - cx, cx]), np.array([1.0 - cy, cy])
    if x >= 0.5:
        p, q = np.array([x, 1.0 - x]), np.array([y, 1.0 - y])
    for name, fn in (("kl", dv.kl), ("js", dv.js), ("jeffreys", dv.jeffreys), ("chi2", dv.chi2),
                     ("tv", dv.tv), ("hellinger", dv.hellinger)):
        ref = mp_classic(name, p, q)
        assert ref > 0
        assert _ulps(float(fn(p, q)), ref) <= 8, name
    assert 1e-29 < float(dv.kl(p, q)) < 1e-24


MEASURES = [("kl", dv.kl, {}), ("js", dv.js, {}), ("skew_kl", dv.skew_kl, {"skew": 0.3}),
            ("tv", dv.tv, {}), ("hellinger", dv.hellinger, {}), ("chi2", dv.chi2, {}),
            ("jeffreys", dv.jeffreys, {}), ("bhattacharyya", dv.bhattacharyya, {}),
            ("renyi", dv.renyi, {"alpha": 0.5}), ("renyi", dv.renyi, {"alpha": 2.0}),
            ("renyi", dv.renyi, {"alpha": 1.001}),
            ("alpha_divergence", dv.alpha_divergence, {"alpha": 0.5}),
            ("alpha_divergence", dv.alpha_divergence, {"alpha": 3.0})]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(MEASURES), st.floats(0.5, 0.99), st.floats(-15, -1),
       st.sampled_from([-1.0, 1.0]))
def test_measures_accurate_on_near_equal_pairs(measure, x, log_rel, sign):
    name, fn, params = measure
    y = x * (1.0 + sign * 10.0**log_rel)
    if not 0.5 <= y < 1.0 or y == x:
        return
    # two-point distributions that sum to exactly 1 (1 - x is exact for x in [0.5, 1])
    p, q = np.array([x, 1.0 - x]), np.array([y, 1.0 - y])
    ref = mp_classic(name, p, q, **params)
    assert _ulps(float(fn(p, q, **params)), ref) <= 16, (name, params, x, y)


# --------------------------------------------------------------------------------------------
# Identical inputs: exactly 0, and never below 0
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["probs", "logits", "log_probs"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", DIVERGENCES)
def test_identical_inputs_give_exactly_zero(name, kind, dtype):
    p = _rows(kind, dtype)
    out = PAIR[name](p, p.clone(), input=kind)
    assert (out == 0).all(), out
    if kind == "probs":
        p[0, :2] = 0.0          # zero mass on both sides
        p = p / p.sum(-1, keepdim=True)
        assert (PAIR[name](p, p.clone()) == 0).all()


def test_js_distance_of_identical_inputs_is_zero_like_scipy():
    # scipy's jensenshannon(p, p) is 0; sqrt magnified our 4e-17 / 1.5e-9 to 6e-9 / 4e-5
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.dirichlet(np.ones(10))
        assert float(dv.js(p, p, base=2)) ** 0.5 == 0.0
        p32 = torch.tensor(p, dtype=torch.float32)
        assert dv.js(p32, p32, base=2).sqrt().item() == 0.0


@pytest.mark.parametrize("name", DIVERGENCES)
def test_never_below_zero(name):
    g = torch.Generator().manual_seed(9)
    for dtype in (torch.float32, torch.float64):
        s = torch.randn(16, 20, generator=g, dtype=torch.float64)
        t = s + 1e-6 * torch.randn(16, 20, generator=g, dtype=torch.float64)
        assert (PAIR[name](s.to(dtype), t.to(dtype), input="logits") >= 0).all()


def test_gaussian_and_transport_identical_inputs_are_exactly_zero():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 5))
    s = a @ a.T + 0.1 * np.eye(5)
    m = 100.0 * rng.normal(size=5)
    for fn in (gaussian.kl, gaussian.bhattacharyya, gaussian.hellinger, gaussian.wasserstein2):
        assert float(fn(m, s, m, s)) == 0.0, fn.__name__   # wasserstein2 was 1.9e-7
    assert float(gaussian.renyi(m, s, m, s, alpha=2.0)) == 0.0
    for shift in (0.0, 1e3, 1e6):
        x = rng.normal(size=(20, 3)) + shift
        for p in (1, 2, 3):
            assert float(transport.wasserstein_exact(x, x, p=p)) == 0.0   # p=2 was 1e-8
        w = np.full(20, 0.05) + np.r_[0.01, -0.01, np.zeros(18)]
        assert float(transport.wasserstein_exact(x, x, a=w, b=w)) == 0.0


def test_exact_wasserstein_gradient_is_finite_at_coincident_points():
    x = torch.tensor([[0.0, 1.0], [2.0, 0.5], [1.0, 1.0]], dtype=torch.float64,
                     requires_grad=True)
    for p in (1, 2, 3):
        v = transport.wasserstein_exact(x, x.detach().clone(), p=p)
        (g,) = torch.autograd.grad(v, x)
        assert v.item() == 0.0 and torch.isfinite(g).all()


# --------------------------------------------------------------------------------------------
# Half precision: each argument at its own dtype's tolerance
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [10, 1000, 32000])
def test_torch_bfloat16_log_softmax_is_accepted(n):
    g = torch.Generator().manual_seed(n)
    x = (3.0 * torch.randn(8, n, generator=g)).bfloat16()
    y = (3.0 * torch.randn(8, n, generator=g)).bfloat16()
    lp, lq = x.log_softmax(-1), y.log_softmax(-1)
    dv.kl(lp, lq, input="log_probs")                       # rejected at 1e-2 before
    lq32 = y.float().log_softmax(-1)
    dv.kl(lp, lq32, input="log_probs")         # bf16 next to float32: each at its own tolerance
    dv.kl(lq32, lp, input="log_probs")
    dv.kl(x.softmax(-1), y.float().softmax(-1))
    dv.entropy(lp, input="log_probs")
    with pytest.raises(ValueError, match="p log-probabilities do not log-sum-exp"):
        dv.kl((lp.float() + 0.25).bfloat16(), lq, input="log_probs")
    with pytest.raises(ValueError, match="q log-probabilities do not log-sum-exp"):
        dv.kl(lp, lq32 + 1e-3, input="log_probs")   # float32 keeps its own tolerance


def test_float16_and_float32_tolerances():
    from divergences.discrete import sum_tolerance
    assert sum_tolerance(torch.float64, 10) == 1e-6
    assert sum_tolerance(torch.float32, 10**6) == 1e-4
    assert sum_tolerance(torch.float16, 2) == 1e-2
    bf = sum_tolerance(torch.bfloat16, 32000)
    assert 0.05 < bf < 0.1
    p = torch.full((4,), 0.25, dtype=torch.float16)
    with pytest.raises(ValueError, match="p probabilities do not sum to 1 \\(tolerance 0.01\\)"):
        dv.kl(p * 1.05, p)


# --------------------------------------------------------------------------------------------
# base= where it cannot apply; skew= for skew_kl
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [dv.tv, dv.chi2, dv.hellinger, dv.alpha_divergence])
def test_base_is_an_error_for_non_logarithmic_measures(fn):
    p, q = [0.5, 0.5], [0.9, 0.1]
    with pytest.raises(ValueError, match="base=2 does not apply.*not a logarithmic quantity"):
        fn(p, q, base=2)
    assert float(fn(p, q)) >= 0


def test_base_still_converts_logarithmic_measures():
    p, q = [0.5, 0.5], [0.9, 0.1]
    for fn in (dv.kl, dv.js, dv.jeffreys, dv.bhattacharyya, dv.renyi, dv.cross_entropy,
               dv.skew_kl):
        assert float(fn(p, q, base=2)) == pytest.approx(float(fn(p, q)) / math.log(2))
    assert float(dv.entropy(p, base=2)) == 1.0
    mp_, sp = np.zeros(2), np.eye(2)
    for fn in (gaussian.hellinger, gaussian.wasserstein2):
        with pytest.raises(ValueError, match="not a logarithmic quantity"):
            fn(mp_, sp, mp_ + 1, sp, base=2)


def test_skew_kl_takes_skew_and_deprecates_alpha():
    p, q = [0.3, 0.7], [0.6, 0.4]
    new = float(dv.skew_kl(p, q, skew=0.25))
    assert new == float(dv.skew_kl(p, q, 0.25))            # positional, as before
    assert new == float(dv.f_divergence(p, q, "skew_kl", skew=0.25))
    ref = mp_classic("skew_kl", p, q, skew=0.25)
    assert new == pytest.approx(ref, rel=1e-14)
    with pytest.warns(DeprecationWarning, match="skew_kl\\(alpha=...\\) is deprecated"):
        old = float(dv.skew_kl(p, q, alpha=0.25))
    assert old == new
    with pytest.raises(TypeError, match="skew= only"):
        dv.skew_kl(p, q, skew=0.2, alpha=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dv.skew_kl(p, q)


def test_normalize_does_not_apply_to_logits():
    s = torch.randn(2, 5, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="normalize=True does not apply to input='logits'"):
        dv.kl(s, s.flip(-1), input="logits", normalize=True)
    with pytest.raises(ValueError, match="normalize=True does not apply"):
        dv.entropy(s, input="logits", normalize=True)
    # it does apply to log-probabilities and probabilities
    assert dv.kl(s, s.flip(-1), input="log_probs", normalize=True).shape == (2,)
    assert dv.kl(s.exp(), s.flip(-1).exp(), normalize=True).shape == (2,)


@pytest.mark.parametrize("kind", ["probs", "log_probs"])
@pytest.mark.parametrize("name", list(PAIR))
def test_gradcheck_float64(name, kind):
    # near-equal (1e-6, 1e-3: the series and log1p branches) and far entries
    g = torch.Generator().manual_seed(0)
    p = torch.rand(2, 5, generator=g, dtype=torch.float64) + 0.1
    q = p * (1 + torch.tensor([1e-3, 0.3, -0.4, 2.0, -1e-6], dtype=torch.float64))
    p, q = p / p.sum(-1, keepdim=True), q / q.sum(-1, keepdim=True)
    if kind == "log_probs":
        p, q = p.log(), q.log()
    assert torch.autograd.gradcheck(
        lambda x, y: PAIR[name](x, y, input=kind, validate=False),
        (p.requires_grad_(), q.requires_grad_()))
