"""divergences.distributions: KL against torch.distributions.kl_divergence, Renyi, Bhattacharyya
and Hellinger against numerical integration, properties, gradients and errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.distributions as td
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from divergences import distributions as dd

D = torch.float64


def _pos(g: torch.Generator, *shape: int, lo: float = 0.3, hi: float = 4.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, dtype=D, generator=g)


def _spd(g: torch.Generator, *shape: int) -> torch.Tensor:
    a = torch.randn(shape, dtype=D, generator=g)
    return a @ a.mT + 0.5 * torch.eye(shape[-1], dtype=D)


def _pair(name: str, seed: int, batch: tuple[int, ...]) -> tuple[td.Distribution, ...]:
    g = torch.Generator().manual_seed(seed)

    def one() -> td.Distribution:
        if name == "bernoulli":
            return td.Bernoulli(torch.rand(batch, dtype=D, generator=g))
        if name == "categorical":
            return td.Categorical(probs=_pos(g, *batch, 4))
        if name == "poisson":
            return td.Poisson(_pos(g, *batch, hi=8.0))
        if name == "exponential":
            return td.Exponential(_pos(g, *batch))
        if name == "gamma":
            return td.Gamma(_pos(g, *batch), _pos(g, *batch))
        if name == "beta":
            return td.Beta(_pos(g, *batch), _pos(g, *batch))
        if name == "dirichlet":
            return td.Dirichlet(_pos(g, *batch, 3))
        if name == "normal":
            return td.Normal(torch.randn(batch, dtype=D, generator=g), _pos(g, *batch))
        return td.MultivariateNormal(torch.randn((*batch, 3), dtype=D, generator=g),
                                     covariance_matrix=_spd(g, *batch, 3, 3))

    return one(), one()


FAMILIES = ["bernoulli", "categorical", "poisson", "exponential", "gamma", "beta", "dirichlet",
            "normal", "multivariate_normal"]


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("seed,batch", [(0, ()), (1, (7,)), (2, (3, 5))])
def test_kl_equals_torch(name, seed, batch):
    p, q = _pair(name, seed, batch)
    ours = dd.kl(p, q)
    ref = td.kl_divergence(p, q)
    assert ours.shape == ref.shape and ours.dtype == D
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)


def test_kl_parameters_broadcast_and_numpy_out():
    g = torch.Generator().manual_seed(3)
    a1, b1 = _pos(g, 4, 1), _pos(g, 1, 5)
    a2, b2 = _pos(g, 5), _pos(g, 4, 5)
    ref = td.kl_divergence(td.Gamma(*torch.broadcast_tensors(a1, b1)),
                           td.Gamma(*torch.broadcast_tensors(a2, b2)))
    ours = dd.kl((a1, b1), (a2, b2), family="gamma")
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)
    out = dd.kl((a1.numpy(), b1.numpy()), {"concentration": a2.numpy(), "rate": b2.numpy()},
                family="Gamma")
    assert isinstance(out, np.ndarray) and out.shape == (4, 5)
    np.testing.assert_allclose(out, ref.numpy(), rtol=0, atol=1e-10)
    assert isinstance(dd.kl(0.3, 0.6, family="bernoulli"), (float, np.floating, np.ndarray))


def test_kl_zero_probabilities():
    p, q = torch.tensor([0.0, 0.5, 0.5], dtype=D), torch.tensor([0.5, 0.5, 0.0], dtype=D)
    assert float(dd.kl(p, p * 0 + 1 / 3, family="categorical")) == pytest.approx(
        float(td.kl_divergence(td.Categorical(probs=p), td.Categorical(probs=p * 0 + 1 / 3))))
    assert math.isinf(float(dd.kl(p, q, family="categorical")))
    assert float(dd.kl(0.0, 0.5, family="bernoulli")) == pytest.approx(math.log(2))
    assert math.isinf(float(dd.kl(0.5, 1.0, family="bernoulli")))


def test_api_page_examples_run():
    import doctest
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "api" / "distributions.md"
    text = page.read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```pycon\n")[1:]]
    test = doctest.DocTestParser().get_doctest("\n".join(blocks), {}, page.name, str(page), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0


# --------------------------------------------------------------------------------------------
# Against numerical integration
# --------------------------------------------------------------------------------------------

# (family, p1, p2, scipy frozen constructor, support) for the 1-D continuous families.
CONTINUOUS = [
    ("exponential", (1.5,), (0.7,), lambda r: stats.expon(scale=1 / r), (0.0, np.inf)),
    ("gamma", (2.5, 1.5), (1.7, 0.8), lambda a, b: stats.gamma(a, scale=1 / b), (0.0, np.inf)),
    ("beta", (2.0, 3.5), (1.5, 1.2), lambda a, b: stats.beta(a, b), (0.0, 1.0)),
    ("normal", (0.3, 1.2), (-0.5, 0.9), lambda m, s: stats.norm(m, s), (-np.inf, np.inf)),
]
ORDERS = [0.3, 0.5, 2.0]


def _quad(f, lo, hi):
    return integrate.quad(f, lo, hi, epsabs=1e-13, epsrel=1e-12, limit=500)[0]


def _renyi_quad(d1, d2, a, lo, hi):
    integral = _quad(lambda x: math.exp(a * d1.logpdf(x) + (1 - a) * d2.logpdf(x)), lo, hi)
    return math.log(integral) / (a - 1)


@pytest.mark.parametrize("name,t1,t2,make,support", CONTINUOUS)
def test_continuous_against_quadrature(name, t1, t2, make, support):
    d1, d2 = make(*t1), make(*t2)
    for a in ORDERS:
        ours = float(dd.renyi(t1, t2, family=name, order=a))
        assert ours == pytest.approx(_renyi_quad(d1, d2, a, *support), rel=1e-8, abs=1e-10)
    bc = _quad(lambda x: math.exp(0.5 * (d1.logpdf(x) + d2.logpdf(x))), *support)
    assert float(dd.bhattacharyya(t1, t2, family=name)) == pytest.approx(-math.log(bc), rel=1e-8)
    h2 = _quad(lambda x: (math.exp(0.5 * d1.logpdf(x)) - math.exp(0.5 * d2.logpdf(x))) ** 2,
               *support)
    assert float(dd.hellinger(t1, t2, family=name)) == pytest.approx(h2, rel=1e-7, abs=1e-10)
    kl = _quad(lambda x: math.exp(d1.logpdf(x)) * (d1.logpdf(x) - d2.logpdf(x)), *support)
    assert float(dd.kl(t1, t2, family=name)) == pytest.approx(kl, rel=1e-8)


def _pmfs(name, t1, t2):
    if name == "poisson":
        k = np.arange(200)
        return stats.poisson(t1).pmf(k), stats.poisson(t2).pmf(k)
    if name == "bernoulli":
        return np.array([1 - t1, t1]), np.array([1 - t2, t2])
    return np.asarray(t1), np.asarray(t2)


DISCRETE = [
    ("bernoulli", 0.3, 0.65),
    ("categorical", [0.1, 0.2, 0.3, 0.4], [0.25, 0.05, 0.5, 0.2]),
    ("poisson", 3.5, 6.0),
]


@pytest.mark.parametrize("name,t1,t2", DISCRETE)
def test_discrete_against_exact_sums(name, t1, t2):
    p, q = _pmfs(name, t1, t2)
    for a in ORDERS:
        ref = math.log(np.sum(p**a * q ** (1 - a))) / (a - 1)
        assert float(dd.renyi(t1, t2, family=name, order=a)) == pytest.approx(ref, rel=1e-10)
    assert float(dd.bhattacharyya(t1, t2, family=name)) == pytest.approx(
        -math.log(np.sum(np.sqrt(p * q))), rel=1e-10)
    h2 = np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)
    assert float(dd.hellinger(t1, t2, family=name)) == pytest.approx(h2, rel=1e-10)
    m = 0.5 * (p + q)
    js = 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))
    assert float(dd.js(t1, t2, family=name)) == pytest.approx(js, rel=1e-10)


def test_hellinger_matches_the_registry_convention():
    import divergences as dv

    p, q = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.25, 0.05, 0.5, 0.2])
    ref = float(dv.f_divergence(p, q, "squared_hellinger"))
    assert float(dd.hellinger(p, q, family="categorical")) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("name,t1,t2,make,support", CONTINUOUS)
def test_js_monte_carlo_within_its_stated_error(name, t1, t2, make, support):
    d1, d2 = make(*t1), make(*t2)

    def term(x):
        l1, l2 = d1.logpdf(x), d2.logpdf(x)
        lm = np.logaddexp(l1, l2) - math.log(2)
        return 0.5 * (math.exp(l1) * (l1 - lm) + math.exp(l2) * (l2 - lm))

    ref = _quad(term, *support)
    samples = 100_000
    ours = float(dd.js(t1, t2, family=name, samples=samples, seed=1))
    assert abs(ours - ref) < 4 * 0.71 / math.sqrt(samples)
    assert ours == float(dd.js(t1, t2, family=name, samples=samples, seed=1))


@pytest.mark.parametrize("name", FAMILIES)
def test_renyi_tends_to_kl(name):
    p, q = _pair(name, 5, (4,))
    kl = dd.kl(p, q)
    torch.testing.assert_close(dd.renyi(p, q, order=1.0), kl, rtol=0, atol=0)
    for eps in (1e-5, -1e-5):
        torch.testing.assert_close(dd.renyi(p, q, order=1 + eps), kl, rtol=1e-4, atol=1e-8)


def test_outside_the_natural_parameter_space_is_inf():
    # Exponential: 2 * 1 - 3 < 0; Gamma: rate 2 * 1 - 1 * 3 < 0; Beta: 3 * 0.5 - 2 * 1 <= 0.
    assert math.isinf(float(dd.renyi(1.0, 3.0, family="exponential", order=2.0)))
    assert math.isinf(float(dd.renyi((2.0, 1.0), (2.0, 3.0), family="gamma", order=2.0)))
    assert math.isinf(float(dd.renyi((0.5, 1.0), (1.0, 1.0), family="beta", order=3.0)))
    assert math.isinf(float(dd.renyi((0.0, 2.0), (0.0, 1.0), family="normal", order=2.0)))
    # Categorical: q has no mass where p has some.
    assert math.isinf(float(dd.renyi([0.5, 0.5], [1.0, 0.0], family="categorical", order=2.0)))
    assert math.isfinite(float(dd.renyi([0.5, 0.5], [1.0, 0.0], family="categorical",
                                        order=0.5)))
    # The gradient stays finite next to an infinite entry of the batch.
    rate = torch.tensor([1.0, 3.0], dtype=D, requires_grad=True)
    out = dd.renyi(torch.tensor([1.0, 1.0], dtype=D), rate, family="exponential", order=2.0)
    assert math.isinf(float(out[1].detach()))
    out[0].backward()
    assert torch.isfinite(rate.grad).all()


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

_positive = st.floats(0.2, 6.0)
_params = st.sampled_from(["bernoulli", "categorical", "poisson", "exponential", "gamma", "beta",
                           "dirichlet", "normal"]).flatmap(
    lambda name: st.tuples(
        st.just(name),
        *(2 * [{
            "bernoulli": st.floats(0.01, 0.99).map(lambda x: (x,)),
            "categorical": st.lists(_positive, min_size=3, max_size=3).map(
                lambda v: ([x / sum(v) for x in v],)),
            "poisson": _positive.map(lambda x: (x,)),
            "exponential": _positive.map(lambda x: (x,)),
            "gamma": st.tuples(_positive, _positive),
            "beta": st.tuples(_positive, _positive),
            "dirichlet": st.lists(_positive, min_size=3, max_size=3).map(lambda v: (v,)),
            "normal": st.tuples(st.floats(-3, 3), _positive),
        }[name]])))


@settings(max_examples=150, deadline=None)
@given(_params)
def test_properties(case):
    name, t1, t2 = case
    orders = [0.1, 0.3, 0.5, 0.9, 1.0, 1.5, 2.0, 4.0]
    values = [float(dd.renyi(t1, t2, family=name, order=a)) for a in orders]
    assert all(v >= 0 for v in values)
    # Non-decreasing in the order (up to rounding); +inf stays +inf.
    for lo, hi in itertools.pairwise(values):
        assert hi == math.inf if lo == math.inf else hi >= lo - 1e-9 * max(1.0, lo)
    for f in (dd.kl, dd.bhattacharyya, dd.hellinger):
        assert float(f(t1, t2, family=name)) >= 0
        assert float(f(t1, t1, family=name)) == 0.0
    for a in orders:
        assert float(dd.renyi(t1, t1, family=name, order=a)) == 0.0
    assert 0 <= float(dd.hellinger(t1, t2, family=name)) <= 2
    assert float(dd.bhattacharyya(t1, t2, family=name)) == pytest.approx(
        float(dd.bhattacharyya(t2, t1, family=name)), rel=1e-12, abs=1e-15)


def test_identity_multivariate_normal_and_torch_objects():
    p, _ = _pair("multivariate_normal", 9, (3,))
    for f in (dd.kl, dd.bhattacharyya, dd.hellinger):
        assert torch.equal(f(p, p), torch.zeros(3, dtype=D))
    for name in FAMILIES[:-1]:
        p, _ = _pair(name, 9, (3,))
        assert torch.equal(dd.kl(p, p), torch.zeros(3, dtype=D))
        assert torch.equal(dd.renyi(p, p, order=2.0), torch.zeros(3, dtype=D))


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------

GRAD_CASES = [
    ("bernoulli", ([0.3, 0.6],), ([0.5, 0.2],)),
    ("categorical", ([[0.2, 0.3, 0.5]],), ([[0.4, 0.4, 0.2]],)),
    ("poisson", ([2.0, 0.7],), ([1.5, 3.0],)),
    # Order 2 stays inside the natural parameter space: 2 t1 - t2 is admissible.
    ("exponential", ([2.0, 1.7],), ([1.5, 3.0],)),
    ("gamma", ([2.0, 1.7], [1.1, 2.0]), ([1.5, 3.0], [0.9, 1.4])),
    ("beta", ([2.0, 1.7], [1.1, 2.0]), ([1.5, 3.0], [0.9, 1.4])),
    ("dirichlet", ([[2.0, 1.7, 1.3]],), ([[1.5, 3.0, 0.8]],)),
    ("normal", ([0.2, -1.0], [1.1, 1.2]), ([1.5, 0.0], [0.9, 1.4])),
]


@pytest.mark.parametrize("name,t1,t2", GRAD_CASES)
def test_gradcheck(name, t1, t2):
    args = [torch.tensor(v, dtype=D, requires_grad=True) for v in (*t1, *t2)]
    k = len(t1)

    def run(fn, **kw):
        return lambda *a: fn(tuple(a[:k]), tuple(a[k:]), family=name, **kw)

    # Categorical probabilities are renormalised; gradcheck perturbs one entry at a time.
    if name == "categorical":
        def run(fn, **kw):
            return lambda p, q: fn(p / p.sum(-1, keepdim=True), q / q.sum(-1, keepdim=True),
                                   family=name, **kw)
    check = dict(atol=1e-6)
    for fn, kw in ((dd.kl, {}), (dd.renyi, {"order": 0.3}), (dd.renyi, {"order": 2.0}),
                   (dd.bhattacharyya, {}), (dd.hellinger, {})):
        assert torch.autograd.gradcheck(run(fn, **kw), tuple(args), **check)


def test_gradcheck_multivariate_normal():
    g = torch.Generator().manual_seed(4)
    m1, m2 = torch.randn(2, dtype=D, generator=g), torch.randn(2, dtype=D, generator=g)
    s1, s2 = _spd(g, 2, 2), _spd(g, 2, 2)
    args = tuple(t.requires_grad_() for t in (m1, s1, m2, s2))

    def f(m1, s1, m2, s2):
        # Symmetric perturbations only: the covariance is symmetrised by gaussian.
        s1, s2 = (s1 + s1.mT) / 2, (s2 + s2.mT) / 2
        return (dd.kl(td.MultivariateNormal(m1, s1), td.MultivariateNormal(m2, s2)),
                dd.renyi((m1, s1), (m2, s2), family="multivariate_normal", order=0.5))

    assert torch.autograd.gradcheck(f, args, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call,match", [
    (lambda: dd.kl((-1.0, 1.0), (1.0, 1.0), family="gamma"),
     r"p\.concentration must be > 0"),
    (lambda: dd.kl((1.0, 1.0), (1.0, 0.0), family="gamma"), r"q\.rate must be > 0"),
    (lambda: dd.kl(1.5, 0.5, family="bernoulli"), r"p\.probs must be in \[0, 1\]"),
    (lambda: dd.kl([0.5, 0.6], [0.5, 0.5], family="categorical"),
     r"p\.probs must be a probability vector"),
    (lambda: dd.kl((0.0, -1.0), (0.0, 1.0), family="normal"), r"p\.scale must be > 0"),
    (lambda: dd.kl((0.0, float("nan")), (0.0, 1.0), family="normal"), r"p\.scale must be finite"),
    (lambda: dd.kl([1.0], [1.0], family="dirichlet"), r"p\.concentration must have shape"),
    (lambda: dd.renyi(1.0, 2.0, family="poisson", order=0.0), r"order must be a finite number"),
    (lambda: dd.renyi(1.0, 2.0, family="poisson", order=-1), r"order must be"),
    (lambda: dd.kl(1.0, 2.0, family="weibull"), r"unknown family 'weibull'"),
    (lambda: dd.kl(td.Gamma(1.0, 1.0), td.Beta(1.0, 1.0)),
     r"one family; p is 'gamma' but q is 'beta'"),
    (lambda: dd.kl(td.Gamma(1.0, 1.0), (1.0, 1.0), family="beta"), r"family='beta' but p"),
    (lambda: dd.kl(td.Laplace(0.0, 1.0), td.Laplace(0.0, 1.0)), r"p is a Laplace; supported"),
    (lambda: dd.kl((1.0, 1.0), (1.0, 1.0)), r"pass family="),
    (lambda: dd.kl((1.0, 1.0, 1.0), (1.0, 1.0), family="gamma"),
     r"p for family 'gamma' must be a tuple \('concentration', 'rate'\)"),
    (lambda: dd.kl({"shape": 1.0, "rate": 1.0}, (1.0, 1.0), family="gamma"),
     r"takes parameters \('concentration', 'rate'\)"),
    (lambda: dd.js(1.0, 2.0, family="poisson", samples=0), r"samples must be a positive"),
    (lambda: dd.kl(([0.0, 0.0], [[1.0, 0.0], [0.0, -1.0]]), ([0.0, 0.0], np.eye(2)),
                   family="multivariate_normal"), r"p\.covariance_matrix"),
    (lambda: dd.kl(([0.0, 0.0], np.eye(2)), ([0.0, 0.0, 0.0], np.eye(3)),
                   family="multivariate_normal"), r"same dimension"),
])
def test_errors_name_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize("cls,t1,t2", [
    (td.Normal, (100.0, 0.01), (100.001, 0.01)),
    (td.Normal, (1e4, 1.0), (1e4 + 0.5, 1.1)),
    (td.Normal, (0.0, 1e-4), (1e-4, 2e-4)),
    (td.Exponential, (1e6,), (1.1e6,)),
    (td.Gamma, (2.0, 1e4), (3.0, 2e4)),
    (td.Gamma, (1e4, 1.0), (1.01e4, 1.0)),
])
def test_kl_keeps_its_digits_at_extreme_parameters(cls, t1, t2):
    p = cls(*(torch.tensor(v, dtype=D) for v in t1))
    q = cls(*(torch.tensor(v, dtype=D) for v in t2))
    torch.testing.assert_close(dd.kl(p, q), td.kl_divergence(p, q), rtol=1e-9, atol=1e-12)


def test_js_monte_carlo_dirichlet_and_multivariate_normal():
    # Dirichlet on two categories is the Beta of its first coordinate; a 1-D multivariate
    # normal is a normal: both against quadrature, within 4 stated standard errors.
    n = 100_000
    for name, t1, t2, make, support in CONTINUOUS:
        if name not in ("beta", "normal"):
            continue
        d1, d2 = make(*t1), make(*t2)

        def term(x, d1=d1, d2=d2):
            l1, l2 = d1.logpdf(x), d2.logpdf(x)
            lm = np.logaddexp(l1, l2) - math.log(2)
            return 0.5 * (math.exp(l1) * (l1 - lm) + math.exp(l2) * (l2 - lm))

        ref = _quad(term, *support)
        if name == "beta":
            ours = float(dd.js(([t1[0], t1[1]],), ([t2[0], t2[1]],), family="dirichlet",
                               samples=n, seed=2))
        else:
            ours = float(dd.js(([t1[0]], [[t1[1] ** 2]]), ([t2[0]], [[t2[1] ** 2]]),
                               family="multivariate_normal", samples=n, seed=2))
        assert abs(ours - ref) < 4 * 0.71 / math.sqrt(n)


def test_js_poisson_large_rates():
    k = np.arange(0, 30_000)
    lp, lq = stats.poisson(1e4).logpmf(k), stats.poisson(1.02e4).logpmf(k)
    lm = np.logaddexp(lp, lq) - math.log(2)
    ref = 0.5 * np.sum(np.exp(lp) * (lp - lm) + np.exp(lq) * (lq - lm))
    assert float(dd.js(1e4, 1.02e4, family="poisson")) == pytest.approx(ref, rel=1e-9)
