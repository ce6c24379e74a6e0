"""Exact discrete measures: references, laws, numerics, gradients and input handling."""

import itertools
import math

import numpy as np
import pytest
import scipy.special as sps
import scipy.stats
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import jensenshannon

import divergences as dv
from divergences import _chunked, fdiv

from .conftest import NAMED_PAIRWISE, random_simplex

PAIRWISE = {
    **NAMED_PAIRWISE,
    "renyi": dv.renyi,
    "alpha_divergence": dv.alpha_divergence,
    "cross_entropy": dv.cross_entropy,
    "f_divergence": dv.f_divergence,
}
# Those whose value stays finite for any finite logits (the others can overflow when the
# true value exceeds the float range, e.g. chi2 ~ exp(2e4)).
BOUNDED_ON_LOGITS = ["kl", "js", "skew_kl", "tv", "hellinger", "jeffreys", "bhattacharyya",
                     "renyi", "alpha_divergence", "cross_entropy", "f_divergence"]


# --------------------------------------------------------------------------------------------
# Agreement with scipy and torch, zeros in the support
# --------------------------------------------------------------------------------------------


def test_against_scipy_with_zeros(rng):
    p = random_simplex(rng, (20, 30), zeros=0.3)
    q = random_simplex(rng, (20, 30), zeros=0.0)
    np.testing.assert_allclose(dv.kl(p, q), sps.rel_entr(p, q).sum(-1), rtol=1e-6)
    np.testing.assert_allclose(dv.entropy(p), scipy.stats.entropy(p, axis=-1), rtol=1e-6)
    np.testing.assert_allclose(dv.entropy(p, base=2), scipy.stats.entropy(p, base=2, axis=-1),
                               rtol=1e-6)
    q0 = random_simplex(rng, (20, 30), zeros=0.3)
    np.testing.assert_allclose(dv.js(p, q0), jensenshannon(p, q0, axis=-1) ** 2, rtol=1e-6)
    np.testing.assert_allclose(dv.js(p, q0, base=2), jensenshannon(p, q0, axis=-1, base=2) ** 2,
                               rtol=1e-6)
    expected = sps.rel_entr(p, q0).sum(-1)  # inf where q0 = 0 < p
    np.testing.assert_array_equal(np.isinf(dv.kl(p, q0)), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(dv.kl(p, q0)[finite], expected[finite], rtol=1e-6)
    np.testing.assert_allclose(dv.cross_entropy(p, q), -(sps.xlogy(p, q)).sum(-1), rtol=1e-6)


def test_direct_formulas(rng):
    p = random_simplex(rng, (10, 8), zeros=0.2)
    q = random_simplex(rng, (10, 8))
    np.testing.assert_allclose(dv.tv(p, q), 0.5 * np.abs(p - q).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(dv.chi2(p, q), ((p - q) ** 2 / q).sum(-1), rtol=1e-10)
    np.testing.assert_allclose(
        dv.hellinger(p, q), np.sqrt(0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum(-1)), rtol=1e-10)
    np.testing.assert_allclose(dv.bhattacharyya(p, q), -np.log(np.sqrt(p * q).sum(-1)),
                               rtol=1e-10)
    for a in (0.3, 0.7, 0.995, 1.004, 2.5):
        s = (p**a * q ** (1 - a)).sum(-1)
        np.testing.assert_allclose(dv.renyi(p, q, alpha=a), np.log(s) / (a - 1), rtol=1e-8)
        np.testing.assert_allclose(dv.alpha_divergence(p, q, alpha=a), (s - 1) / (a * (a - 1)),
                                   rtol=1e-8)
    np.testing.assert_allclose(dv.jeffreys(p, q),
                               sps.rel_entr(p, q).sum(-1) + sps.rel_entr(q, p).sum(-1), rtol=1e-10)
    np.testing.assert_allclose(dv.skew_kl(p, q, skew=0.3),
                               sps.rel_entr(p, 0.3 * p + 0.7 * q).sum(-1), rtol=1e-10)
    np.testing.assert_allclose(dv.f_divergence(p, q, "le_cam"),
                               0.5 * ((p - q) ** 2 / (p + q)).sum(-1), rtol=1e-10)
    # Neyman: +inf where p = 0 < q
    expected = np.where((p == 0).any(-1), np.inf, ((p - q) ** 2 / np.where(p > 0, p, 1)).sum(-1))
    np.testing.assert_allclose(dv.f_divergence(p, q, "neyman_chi2"), expected, rtol=1e-10)


def test_against_torch(rng):
    s = torch.tensor(rng.normal(size=(6, 50)) * 3)
    t = torch.tensor(rng.normal(size=(6, 50)) * 3)
    ref = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True,
                   reduction="none").sum(-1)  # KL(softmax t || softmax s)
    torch.testing.assert_close(dv.kl(t, s, input="logits"), ref, rtol=1e-6, atol=1e-12)
    ce = F.cross_entropy(s, F.softmax(t, -1), reduction="none")
    torch.testing.assert_close(dv.cross_entropy(t, s, input="logits"), ce, rtol=1e-6,
                               atol=1e-12)
    cat = torch.distributions.Categorical(logits=t)
    torch.testing.assert_close(dv.entropy(t, input="logits"), cat.entropy(), rtol=1e-6,
                               atol=1e-12)


def test_inputs_are_interchangeable(rng):
    logits_p = rng.normal(size=(4, 9))
    logits_q = rng.normal(size=(4, 9))
    lp = sps.log_softmax(logits_p, -1)
    lq = sps.log_softmax(logits_q, -1)
    for name, fn in PAIRWISE.items():
        a = fn(logits_p, logits_q, input="logits")
        b = fn(lp, lq, input="log_probs")
        c = fn(np.exp(lp), np.exp(lq))
        np.testing.assert_allclose(a, b, rtol=1e-10, err_msg=name)
        np.testing.assert_allclose(a, c, rtol=1e-9, err_msg=name)


def test_dim_and_broadcasting(rng):
    p = random_simplex(rng, (3, 5, 7))
    q = random_simplex(rng, (3, 5, 7))
    np.testing.assert_allclose(dv.kl(np.moveaxis(p, -1, 1), np.moveaxis(q, -1, 1), dim=1),
                               dv.kl(p, q), rtol=1e-12)
    single = q[0, 0]
    np.testing.assert_allclose(dv.kl(p, single), dv.kl(p, np.broadcast_to(single, p.shape)),
                               rtol=1e-12)
    assert dv.kl(p, q).shape == (3, 5)


def test_reductions_and_base(rng):
    p = random_simplex(rng, (4, 6))
    q = random_simplex(rng, (4, 6))
    per = dv.kl(p, q)
    assert dv.kl(p, q, reduction="sum") == pytest.approx(per.sum(), rel=1e-12)
    assert dv.kl(p, q, reduction="mean") == pytest.approx(per.mean(), rel=1e-12)
    np.testing.assert_allclose(dv.kl(p, q, base=2), per / np.log(2), rtol=1e-12)
    np.testing.assert_allclose(dv.entropy(p, base=10), dv.entropy(p) / np.log(10), rtol=1e-12)


def test_array_kinds_and_dtypes(rng):
    p = random_simplex(rng, (5,))
    q = random_simplex(rng, (5,))
    out = dv.kl(p, q)
    assert isinstance(out, np.float64)
    out32 = dv.kl(p.astype(np.float32), q.astype(np.float32), reduction="none")
    assert out32.dtype == np.float32
    assert isinstance(dv.kl(list(p), list(q)), np.float64)
    batch = dv.kl(np.stack([p, q]), np.stack([q, p]))
    assert isinstance(batch, np.ndarray) and batch.dtype == np.float64
    tp = torch.tensor(p, dtype=torch.float32)
    tq = torch.tensor(q, dtype=torch.float32)
    assert dv.kl(tp, tq).dtype == torch.float32
    assert dv.kl(tp.double(), tq.double()).dtype == torch.float64
    for half in (torch.float16, torch.bfloat16):
        r = dv.kl(tp.to(half), tq.to(half), normalize=True)
        assert r.dtype == torch.float32
        assert r.item() == pytest.approx(float(dv.kl(p, q)), rel=2e-2)
    # a torch tensor with a list goes along with torch
    assert isinstance(dv.kl(tp, list(q)), torch.Tensor)


# --------------------------------------------------------------------------------------------
# Extreme logits, zero mass and gradients
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", BOUNDED_ON_LOGITS)
def test_extreme_logits_are_finite_with_finite_gradients(name, dtype):
    g = torch.Generator().manual_seed(1)
    s = ((torch.rand(4, 64, generator=g) * 2 - 1) * 1e4).to(dtype).requires_grad_(True)
    t = ((torch.rand(4, 64, generator=g) * 2 - 1) * 1e4).to(dtype).requires_grad_(True)
    val = PAIRWISE[name](t, s, input="logits")
    assert val.dtype == torch.float32
    assert torch.isfinite(val).all(), name
    val.sum().backward()
    assert torch.isfinite(s.grad).all() and torch.isfinite(t.grad).all(), name
    ent = dv.entropy(t.detach().requires_grad_(True), input="logits")
    assert torch.isfinite(ent).all()


def test_extreme_logits_match_float64():
    g = torch.Generator().manual_seed(2)
    s = (torch.rand(3, 40, generator=g) * 2 - 1) * 1e4
    t = (torch.rand(3, 40, generator=g) * 2 - 1) * 1e4
    for name in ("kl", "js", "tv", "jeffreys"):
        v32 = PAIRWISE[name](t, s, input="logits")
        v64 = PAIRWISE[name](t.double(), s.double(), input="logits")
        torch.testing.assert_close(v32.double(), v64, rtol=1e-5, atol=1e-5)


def test_zero_mass_conventions():
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([0.5, 0.0, 0.5])
    assert dv.kl(p, q) == np.inf
    assert dv.kl(p, p) == 0.0
    assert dv.chi2(p, q) == np.inf
    assert dv.f_divergence(p, q, "reverse_kl") == np.inf
    assert dv.tv(p, q) == pytest.approx(0.5)
    assert dv.js(p, q) == pytest.approx(np.log(2) / 2)
    assert dv.renyi(p, q, alpha=2.0) == np.inf
    assert dv.renyi(p, q, alpha=0.5) == pytest.approx(-2 * np.log(0.5))
    assert dv.renyi(p, q, alpha=0.0) == pytest.approx(-np.log(0.5))
    assert dv.renyi(p, q, alpha=np.inf) == np.inf
    assert dv.bhattacharyya([1.0, 0.0], [0.0, 1.0]) == np.inf
    assert dv.entropy([1.0, 0.0, 0.0]) == 0.0
    assert dv.cross_entropy(p, q) == np.inf
    # -inf logits are zero mass
    lt = torch.tensor([[0.0, 0.0, -math.inf]])
    ls = torch.tensor([[0.0, -math.inf, 0.0]])
    assert dv.kl(lt, ls, input="logits").item() == math.inf
    assert dv.kl(lt, lt, input="logits").item() == 0.0


@pytest.mark.parametrize("name", list(PAIRWISE))
def test_gradient_finite_at_zero_mass(name):
    p = torch.tensor([[0.5, 0.3, 0.2, 0.0]], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([[0.4, 0.1, 0.2, 0.3]], dtype=torch.float64, requires_grad=True)
    val = PAIRWISE[name](p, q)
    if name == "jeffreys":  # p = 0 < q makes Jeffreys infinite: no finite value to check
        assert torch.isinf(val).all()
    else:
        assert torch.isfinite(val).all()
        val.sum().backward()
        assert torch.isfinite(p.grad).all() and torch.isfinite(q.grad).all()
    # logits with -inf entries: value and gradient finite where the value is
    s = torch.tensor([[1.0, 0.5, -math.inf, 2.0]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[0.3, -1.0, -math.inf, 1.0]], dtype=torch.float64, requires_grad=True)
    v = PAIRWISE[name](t, s, input="logits")
    assert torch.isfinite(v).all()
    v.sum().backward()
    assert torch.isfinite(s.grad).all() and torch.isfinite(t.grad).all()


def _call(name, a, b, **kw):
    extra = {"renyi": {"alpha": 0.7}, "alpha_divergence": {"alpha": 0.3},
             "f_divergence": {"f": "triangular"}}.get(name, {})
    return PAIRWISE[name](a, b, **extra, **kw)


@pytest.mark.parametrize("name", list(PAIRWISE))
def test_gradcheck_logits_and_probs(name):
    g = torch.Generator().manual_seed(3)
    s = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: _call(name, a, b, input="logits"), (t, s))
    p = torch.rand(3, 5, generator=g, dtype=torch.float64) + 0.1
    q = torch.rand(3, 5, generator=g, dtype=torch.float64) + 0.1
    p.requires_grad_(True)
    q.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: _call(name, a, b, normalize=True), (p, q))
    assert torch.autograd.gradcheck(
        lambda a, b: _call(name, a, b, input="log_probs", normalize=True), (s, t))


def test_gradcheck_entropy():
    g = torch.Generator().manual_seed(4)
    s = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: dv.entropy(a, input="logits"), (s,))
    p = (torch.rand(3, 5, generator=g, dtype=torch.float64) + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: dv.entropy(a, normalize=True), (p,))


def test_chunked_path_matches_plain(monkeypatch):
    g = torch.Generator().manual_seed(5)
    s = torch.randn(37, 23, generator=g, dtype=torch.float64)
    t = torch.randn(37, 23, generator=g, dtype=torch.float64)
    plain = {}
    for name in PAIRWISE:
        a = s.clone().requires_grad_(True)
        b = t.clone().requires_grad_(True)
        v = _call(name, b, a, input="logits")
        v.sum().backward()
        plain[name] = (v.detach(), a.grad, b.grad)
    monkeypatch.setattr(_chunked, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(_chunked, "BLOCK_ELEMENTS", 5 * 23)  # 5 rows per block, ragged end
    for name in PAIRWISE:
        a = s.clone().requires_grad_(True)
        b = t.clone().requires_grad_(True)
        v = _call(name, b, a, input="logits")
        v.sum().backward()
        torch.testing.assert_close(v.detach(), plain[name][0], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(a.grad, plain[name][1], rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(b.grad, plain[name][2], rtol=1e-10, atol=1e-14)
        with torch.no_grad():
            torch.testing.assert_close(_call(name, t, s, input="logits"), plain[name][0])
    small = (s[:4, :6].clone().requires_grad_(True), t[:4, :6].clone().requires_grad_(True))
    monkeypatch.setattr(_chunked, "BLOCK_ELEMENTS", 6)
    assert torch.autograd.gradcheck(lambda a, b: dv.js(a, b, input="logits"), small)


# --------------------------------------------------------------------------------------------
# Laws (property-based)
# --------------------------------------------------------------------------------------------


def simplex(n_min=2, n_max=8, zeros=True):
    floats = st.floats(0.0 if zeros else 1e-3, 1.0, allow_nan=False)

    @st.composite
    def draw(draw_fn):
        n = draw_fn(st.integers(n_min, n_max))
        x = draw_fn(arrays(np.float64, n, elements=floats))
        if x.sum() <= 1e-9:
            x[0] = 1.0
        return x / x.sum()

    return draw()


@st.composite
def pair(draw, zeros=True):
    p = draw(simplex(zeros=zeros))
    q = draw(arrays(np.float64, p.shape, elements=st.floats(0.0 if zeros else 1e-3, 1.0)))
    if q.sum() <= 1e-9:
        q[0] = 1.0
    return p, q / q.sum()


ALL_F = [(n, {}) for n in fdiv.names() if n not in ("alpha", "js", "skew_kl", "skew_reverse_kl")]
ALL_F += [("js", {"beta": 0.3}), ("skew_kl", {"skew": 0.2}), ("skew_reverse_kl", {"skew": 0.2}),
          ("alpha", {"alpha": 0.3}), ("alpha", {"alpha": 1.5}), ("alpha", {"alpha": -0.5})]


@given(pair())
def test_nonnegativity_identity_and_bounds(pq):
    p, q = pq
    for name, params in ALL_F:
        fd = fdiv.get(name, **params)
        d = dv.f_divergence(p, q, fd)
        assert d >= 0, name
        assert d <= fd.upper_bound + 1e-12, name
        assert dv.f_divergence(p, p, fd) == pytest.approx(0.0, abs=1e-12), name
    assert dv.js(p, q) <= np.log(2) + 1e-12
    assert dv.tv(p, q) <= 1 + 1e-12
    assert 0 <= dv.hellinger(p, q) <= 1
    assert dv.renyi(p, q, alpha=0.5) >= 0
    assert dv.entropy(p) <= np.log(len(p)) + 1e-12


@given(pair())
def test_symmetry(pq):
    p, q = pq
    for fn in (dv.js, dv.tv, dv.hellinger, dv.jeffreys, dv.bhattacharyya):
        a, b = fn(p, q), fn(q, p)
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12) or (np.isinf(a) and np.isinf(b))
    for name in ("squared_hellinger", "le_cam", "triangular"):
        assert dv.f_divergence(p, q, name) == pytest.approx(dv.f_divergence(q, p, name),
                                                            rel=1e-9, abs=1e-12)


@given(pair(zeros=False))
def test_pinsker_and_bretagnolle_huber(pq):
    p, q = pq
    k = dv.kl(p, q)
    t = dv.tv(p, q)
    assert t <= np.sqrt(k / 2) + 1e-12
    assert t <= np.sqrt(1 - np.exp(-k)) + 1e-12
    assert dv.hellinger(p, q) ** 2 <= t + 1e-12  # H^2 <= TV


@given(pair(), st.integers(0, 2**31 - 1), st.integers(2, 6))
def test_data_processing(pq, seed, m):
    p, q = pq
    k = np.random.default_rng(seed).dirichlet(np.ones(m), size=len(p))  # stochastic matrix
    pk, qk = p @ k, q @ k
    for name, params in ALL_F:
        before = dv.f_divergence(p, q, name, **params)
        after = dv.f_divergence(pk, qk, name, **params, normalize=True)
        assert after <= before * (1 + 1e-9) + 1e-12, name


@given(pair(zeros=False), st.lists(st.floats(0.0, 8.0), min_size=2, max_size=6))
def test_renyi_monotone_in_alpha(pq, alphas):
    p, q = pq
    vals = [dv.renyi(p, q, alpha=a) for a in sorted(alphas)]
    assert all(b >= a - 1e-10 * (1 + abs(a)) for a, b in itertools.pairwise(vals))


@given(pair(zeros=False))
def test_limits_reach_kl(pq):
    p, q = pq
    k, rk = dv.kl(p, q), dv.kl(q, p)
    for eps in (1e-3, 1e-6, 1e-9):
        assert dv.renyi(p, q, alpha=1 - eps) == pytest.approx(k, rel=10 * eps, abs=1e-12)
        assert dv.renyi(p, q, alpha=1 + eps) == pytest.approx(k, rel=50 * eps, abs=1e-12)
        assert dv.alpha_divergence(p, q, alpha=1 - eps) == pytest.approx(k, rel=50 * eps,
                                                                          abs=1e-12)
        assert dv.alpha_divergence(p, q, alpha=eps) == pytest.approx(rk, rel=50 * eps,
                                                                      abs=1e-12)
    assert dv.renyi(p, q, alpha=1.0) == dv.kl(p, q)
    assert dv.alpha_divergence(p, q, alpha=0.5) == pytest.approx(
        2 * dv.f_divergence(p, q, "squared_hellinger"), rel=1e-9, abs=1e-14)
    assert dv.bhattacharyya(p, q) == pytest.approx(dv.renyi(p, q, alpha=0.5) / 2, rel=1e-12)
    assert dv.cross_entropy(p, q) == pytest.approx(dv.entropy(p) + dv.kl(p, q), rel=1e-12)


def test_js_generalised_endpoints_and_bound(rng):
    p = random_simplex(rng, (5, 7))
    q = random_simplex(rng, (5, 7))
    np.testing.assert_allclose(dv.js(p, q, beta=0.0), 0.0, atol=1e-15)
    np.testing.assert_allclose(dv.js(p, q, beta=1.0), 0.0, atol=1e-15)
    b = 0.2
    m = b * p + (1 - b) * q
    expected = b * sps.rel_entr(p, m).sum(-1) + (1 - b) * sps.rel_entr(q, m).sum(-1)
    np.testing.assert_allclose(dv.js(p, q, beta=b), expected, rtol=1e-10)
    h = -(b * np.log(b) + (1 - b) * np.log(1 - b))
    assert dv.js([1.0, 0.0], [0.0, 1.0], beta=b) == pytest.approx(h)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_errors_name_the_argument():
    p = [0.5, 0.5]
    with pytest.raises(ValueError, match="same support size.*\\(2,\\) and \\(3,\\)"):
        dv.kl(p, [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="do not broadcast"):
        dv.kl(np.full((2, 2), 0.5), np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="q contains negative"):
        dv.kl(p, [1.5, -0.5])
    with pytest.raises(ValueError, match="p contains NaN"):
        dv.kl([np.nan, 1.0], p)
    with pytest.raises(ValueError, match="q contains inf"):
        dv.kl(p, [np.inf, 0.0])
    with pytest.raises(ValueError, match="p probabilities do not sum to 1.*normalize=True"):
        dv.kl([0.5, 0.6], p)
    assert dv.kl([1.0, 1.0], p, normalize=True) == 0.0
    with pytest.raises(ValueError, match="input must be one of 'probs', 'logits'"):
        dv.kl(p, p, input="prob")
    with pytest.raises(ValueError, match="reduction must be one of"):
        dv.kl(p, p, reduction="batchmean")
    with pytest.raises(ValueError, match="unknown f-divergence"):
        dv.f_divergence(p, p, "kld")
    with pytest.raises(ValueError, match="beta must lie in \\[0, 1\\]"):
        dv.js(p, p, beta=1.2)
    with pytest.raises(ValueError, match="skew must lie in \\[0, 1\\]"):
        dv.skew_kl(p, p, skew=2.0)
    with pytest.raises(ValueError, match="alpha must lie in \\[0, inf\\]"):
        dv.renyi(p, p, alpha=-1.0)
    with pytest.raises(ValueError, match="base must be"):
        dv.kl(p, p, base=1)
    with pytest.raises(ValueError, match="base must lie in"):
        dv.kl(p, p, base=-2)
    with pytest.raises(TypeError, match="p is a NumPy array but q is a torch tensor"):
        dv.kl(np.array(p), torch.tensor(p))
    with pytest.raises(TypeError, match="p must be an array of numbers"):
        dv.kl(["a", "b"], p)
    with pytest.raises(TypeError, match="p must be real"):
        dv.kl(np.array([0.5 + 0j, 0.5]), p)
    with pytest.raises(ValueError, match="p must have at least one dimension"):
        dv.kl(0.5, 0.5)
    with pytest.raises(ValueError, match="dim=3 is out of range"):
        dv.kl(p, p, dim=3)
    with pytest.raises(ValueError, match="p contains NaN"):
        dv.kl(torch.tensor([0.0, float("nan")]), torch.zeros(2), input="logits")
    with pytest.raises(ValueError, match="contains \\+inf logits"):
        dv.kl(torch.tensor([0.0, float("inf")]), torch.zeros(2), input="logits")
    with pytest.raises(ValueError, match="all -inf"):
        dv.kl(torch.full((2,), -math.inf), torch.zeros(2), input="logits")
    with pytest.raises(ValueError, match="log-sum-exp to 0"):
        dv.kl(torch.zeros(2), torch.zeros(2), input="log_probs")
    with pytest.raises(ValueError, match="has a row with no mass"):
        dv.kl([0.0, 0.0], p, normalize=True)
    with pytest.raises(ValueError, match="p contains NaN"):
        dv.entropy([np.nan, 1.0])


def test_validate_false_skips_checks_but_computes():
    p = np.array([0.25, 0.25, 0.5])
    q = np.array([0.5, 0.25, 0.25])
    assert dv.kl(p, q, validate=False) == dv.kl(p, q)


def test_inputs_are_not_modified(rng):
    p = random_simplex(rng, (3, 4))
    q = random_simplex(rng, (3, 4))
    p0, q0 = p.copy(), q.copy()
    dv.kl(p * 2, q, normalize=True)
    dv.kl(p, q)
    np.testing.assert_array_equal(p, p0)
    np.testing.assert_array_equal(q, q0)


def test_base_converts_only_logarithmic_measures(rng):
    p = random_simplex(rng, (6,))
    q = random_simplex(rng, (6,))
    for name in ("kl", "reverse_kl", "js", "jeffreys", "skew_kl"):
        assert dv.f_divergence(p, q, name, base=2) == pytest.approx(
            dv.f_divergence(p, q, name) / np.log(2), rel=1e-12)
    # not logarithmic: base does not apply, and giving it is an error (it was ignored)
    for name in ("tv", "pearson_chi2", "neyman_chi2", "squared_hellinger", "le_cam", "alpha"):
        with pytest.raises(ValueError, match="not a logarithmic quantity"):
            dv.f_divergence(p, q, name, base=2)
    for fn in (dv.tv, dv.chi2, dv.hellinger, dv.alpha_divergence):
        with pytest.raises(ValueError, match="not a logarithmic quantity.*omit base"):
            fn(p, q, base=2)
        fn(p, q, base=None)   # None is the default, and fine
    with pytest.raises(ValueError, match="base must be"):
        dv.f_divergence(p, q, "kl", base=1)
