"""A standing guard: every public measure under the inputs that once broke one of them.

Each (function, input) pair must give one of the documented outcomes, never a finite wrong
number:

* a correct value (checked against a float64 reference computed from the plain input),
* NaN propagated (``validate=False``), or
* an error whose message names the offending argument.

The inputs are the relatives of the failures found in review: NaN, +-inf, empty supports and
batches, 0-d arrays, non-contiguous views, ``dim != -1``, float16/bfloat16/float64, gradients
and graphs requested through the result.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import divergences as dv
from divergences import dependence, estimate, fdiv, gaussian, kernels, losses, transport

from .conftest import NAMED_PAIRWISE

# --------------------------------------------------------------------------------------------
# The exact measures over a support (the registry and its named faces)
# --------------------------------------------------------------------------------------------

Measure = Callable[..., Any]

PAIRWISE: dict[str, Measure] = {
    **NAMED_PAIRWISE,
    "renyi_0.5": lambda p, q, **kw: dv.renyi(p, q, 0.5, **kw),
    "renyi_2": lambda p, q, **kw: dv.renyi(p, q, 2.0, **kw),
    "alpha_0.5": lambda p, q, **kw: dv.alpha_divergence(p, q, 0.5, **kw),
    "alpha_2": lambda p, q, **kw: dv.alpha_divergence(p, q, 2.0, **kw),
    "cross_entropy": dv.cross_entropy,
}
for _name in fdiv.names():
    PAIRWISE[f"f:{_name}"] = (lambda n: lambda p, q, **kw: dv.f_divergence(p, q, n, **kw))(_name)

# Measures that are divergences: zero exactly on identical inputs, never below zero.
DIVERGENCES = [n for n in PAIRWISE if n != "cross_entropy"]
INPUTS = ["probs", "logits", "log_probs"]


def _entropy(p, q=None, **kw):
    return dv.entropy(p, **kw)


ALL = {**PAIRWISE, "entropy": _entropy}


def _pair(rows: int = 3, v: int = 5, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(rows, v, generator=g, dtype=torch.float64)
    b = torch.randn(rows, v, generator=g, dtype=torch.float64)
    return a.to(dtype), b.to(dtype)


def _as(x: torch.Tensor, input: str) -> torch.Tensor:
    """Logits ``x`` expressed as ``input``."""
    if input == "logits":
        return x
    lp = torch.log_softmax(x.double(), dim=-1).to(x.dtype)
    return lp if input == "log_probs" else lp.exp()


def _names(message: str, *names: str) -> bool:
    return any(re.search(rf"\b{re.escape(n)}\b", message) for n in names)


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().double().cpu().numpy()
    return np.asarray(x, dtype=float)


# ---- NaN ------------------------------------------------------------------------------------


@pytest.mark.parametrize("input", INPUTS)
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("where", ["p", "q"])
def test_nan_is_an_error_naming_the_argument(name, input, where):
    if name == "entropy" and where == "q":
        pytest.skip("entropy has one argument")
    a, b = _pair()
    p, q = _as(a, input), _as(b, input)
    bad = (p if where == "p" else q).clone()
    bad[1, 2] = math.nan
    args = (bad, q) if where == "p" else (p, bad)
    with pytest.raises(ValueError) as err:
        ALL[name](*args, input=input)
    assert _names(str(err.value), where), str(err.value)


@pytest.mark.parametrize("input", INPUTS)
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("where", ["p", "q"])
def test_nan_propagates_without_validation(name, input, where):
    """``validate=False``: the row holding a NaN is NaN (never read as zero mass); the other
    rows keep their values."""
    if name == "entropy" and where == "q":
        pytest.skip("entropy has one argument")
    a, b = _pair()
    p, q = _as(a, input), _as(b, input)
    clean = _np(ALL[name](p, q, input=input))
    bad = (p if where == "p" else q).clone()
    bad[1, 2] = math.nan
    args = (bad, q) if where == "p" else (p, bad)
    out = _np(ALL[name](*args, input=input, validate=False))
    assert np.isnan(out[1]), f"{name}: a NaN in {where} gave {out[1]}"
    np.testing.assert_allclose(out[[0, 2]], clean[[0, 2]], rtol=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_nan_list_input_without_validation(name):
    """The reviewer's case: ``kl([nan, .5, .5], q, validate=False)`` returned 0.367."""
    out = ALL[name]([math.nan, 0.5, 0.5], [0.2, 0.3, 0.5], validate=False)
    assert isinstance(out, np.ndarray | np.floating | float)
    assert np.isnan(out)


# ---- infinities -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("input", ["logits", "log_probs"])
def test_plus_inf_logit_is_an_error(name, input):
    a, b = _pair()
    p = _as(a, input).clone()
    p[0, 0] = math.inf
    with pytest.raises(ValueError) as err:
        ALL[name](p, _as(b, input), input=input)
    assert _names(str(err.value), "p")


@pytest.mark.parametrize("name", ALL)
def test_inf_probability_is_an_error(name):
    p = torch.tensor([0.5, math.inf, 0.5], dtype=torch.float64)
    with pytest.raises(ValueError) as err:
        ALL[name](p, torch.full((3,), 1 / 3, dtype=torch.float64))
    assert _names(str(err.value), "p")


@pytest.mark.parametrize("name", ALL)
def test_minus_inf_logit_is_zero_mass(name):
    """``-inf`` logits are zero mass: the value equals the probability-space one."""
    a, b = _pair()
    a[:, 1] = -math.inf
    b[:, 3] = -math.inf
    via_logits = _np(ALL[name](a, b, input="logits"))
    via_probs = _np(ALL[name](_as(a, "probs"), _as(b, "probs")))
    np.testing.assert_allclose(via_logits, via_probs, rtol=1e-10, atol=1e-14)


# ---- shapes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_empty_support_is_an_error(name):
    e = torch.empty(3, 0, dtype=torch.float64)
    with pytest.raises(ValueError) as err:
        ALL[name](e, e)
    assert _names(str(err.value), "p", "q")


@pytest.mark.parametrize("name", ALL)
def test_empty_batch_gives_empty_result(name):
    e = torch.empty(0, 4, dtype=torch.float64)
    out = ALL[name](e, e)
    assert tuple(out.shape) == (0,)


@pytest.mark.parametrize("name", ALL)
def test_zero_dim_is_an_error(name):
    with pytest.raises(ValueError) as err:
        ALL[name](torch.tensor(1.0), torch.tensor(1.0))
    assert _names(str(err.value), "p", "q")


@pytest.mark.parametrize("input", INPUTS)
@pytest.mark.parametrize("name", ALL)
def test_non_contiguous_and_dim(name, input):
    """A transposed view with ``dim=0`` and a strided view give the contiguous values."""
    a, b = _pair(rows=4, v=6)
    p, q = _as(a, input), _as(b, input)
    ref = _np(ALL[name](p, q, input=input))
    np.testing.assert_allclose(_np(ALL[name](p.T, q.T, input=input, dim=0)), ref, rtol=1e-12)
    # a strided view over every other column of a wider buffer
    wp = torch.zeros(4, 12, dtype=torch.float64)
    wq = torch.zeros(4, 12, dtype=torch.float64)
    wp[:, ::2], wq[:, ::2] = p, q
    np.testing.assert_allclose(_np(ALL[name](wp[:, ::2], wq[:, ::2], input=input)), ref,
                               rtol=1e-12)
    # a 3-D batch with the support in the middle
    p3 = p.reshape(2, 2, 6).transpose(1, 2)
    q3 = q.reshape(2, 2, 6).transpose(1, 2)
    np.testing.assert_allclose(_np(ALL[name](p3, q3, input=input, dim=1)).ravel(), ref,
                               rtol=1e-12)


# ---- dtypes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("name", ALL)
def test_dtypes(name, dtype):
    """Half precision is computed and returned in float32; float64 stays float64; every
    value is close to the float64 value of the same (rounded) logits."""
    a, b = _pair(rows=4, v=32, dtype=dtype)
    out = ALL[name](a, b, input="logits")
    want = {torch.float64: torch.float64}.get(dtype, torch.float32)
    assert out.dtype == want
    ref = _np(ALL[name](a.double(), b.double(), input="logits"))
    tol = {torch.float16: 2e-3, torch.bfloat16: 2e-3, torch.float32: 2e-6,
           torch.float64: 1e-12}[dtype]
    np.testing.assert_allclose(_np(out), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ALL)
def test_half_log_probs_from_torch_are_accepted(name, dtype):
    """What torch's own half-precision ``log_softmax`` produces passes validation."""
    g = torch.Generator().manual_seed(3)
    a = (torch.randn(8, 4096, generator=g) * 4).to(dtype)
    b = (torch.randn(8, 4096, generator=g) * 4).to(dtype)
    lp, lq = torch.log_softmax(a, dim=-1), torch.log_softmax(b, dim=-1)
    out = ALL[name](lp, lq, input="log_probs")
    assert torch.isfinite(out).all() or name.endswith(("kl", "chi2", "jeffreys"))


# Members whose value grows like a power of the ratio p/q: for logits 1e4 apart the true
# value (about exp(1e4)) overflows every float, so +inf is the honest answer there.
POWER_GROWTH = {"chi2", "alpha_2", "f:pearson_chi2", "f:neyman_chi2"}


@pytest.mark.parametrize("name", ALL)
def test_extreme_logits_stay_finite(name):
    a, b = _pair(rows=3, v=7, dtype=torch.float32)
    a = (a * 1e4).requires_grad_(True)
    b = (b * 1e4).requires_grad_(True)
    out = ALL[name](a, b, input="logits")
    assert not torch.isnan(out).any(), out
    if name in POWER_GROWTH:
        assert (out > 0).all()
        return
    assert torch.isfinite(out).all(), out
    out.sum().backward()
    for t in (a, b):
        assert t.grad is None or torch.isfinite(t.grad).all()


# ---- laws -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("input", INPUTS)
@pytest.mark.parametrize("name", DIVERGENCES)
def test_identical_inputs_give_exactly_zero(name, input, dtype):
    a, _ = _pair(rows=6, v=50, dtype=dtype)
    p = _as(a, input)
    out = _np(PAIRWISE[name](p, p.clone(), input=input))
    assert (out == 0).all(), out


@pytest.mark.parametrize("name", DIVERGENCES)
def test_never_below_zero(name):
    g = torch.Generator().manual_seed(11)
    # near-equal pairs are where rounding used to push values below zero
    a = torch.randn(200, 16, generator=g, dtype=torch.float32)
    b = a + 1e-4 * torch.randn(200, 16, generator=g, dtype=torch.float32)
    out = _np(PAIRWISE[name](a, b, input="logits"))
    assert (out >= 0).all(), out.min()


def test_js_bound_and_sqrt_of_identical():
    p = np.array([0.2, 0.3, 0.5])
    assert float(dv.js(p, p)) == 0.0
    assert math.sqrt(float(dv.js(p, p, base=2))) == 0.0


# ---- gradients ------------------------------------------------------------------------------


@pytest.mark.parametrize("input", INPUTS)
@pytest.mark.parametrize("name", ALL)
def test_gradcheck(name, input):
    a, b = _pair(rows=2, v=4, seed=5)
    p = _as(a, input).detach().requires_grad_(True)
    q = _as(b, input).detach().requires_grad_(True)
    # probabilities are checked through the logits that produce them, so that the finite
    # differences stay on the simplex
    if input == "probs":
        la = a.detach().requires_grad_(True)
        lb = b.detach().requires_grad_(True)

        def fn(x, y):
            return ALL[name](torch.softmax(x, -1), torch.softmax(y, -1), input="probs")

        assert torch.autograd.gradcheck(fn, (la, lb))
        return
    if input == "log_probs":

        def fn(x, y):
            return ALL[name](torch.log_softmax(x, -1), torch.log_softmax(y, -1),
                             input="log_probs")

        assert torch.autograd.gradcheck(fn, (a.requires_grad_(True), b.requires_grad_(True)))
        return
    assert torch.autograd.gradcheck(lambda x, y: ALL[name](x, y, input="logits"), (p, q))


@pytest.mark.parametrize("name", ["kl", "js", "tv", "f:reverse_kl", "renyi_2"])
def test_double_backward_is_right_or_refused_at_every_size(name):
    """A gradient penalty through a large input must equal the penalty computed row by row
    on the small path, or raise: never a silently constant gradient."""
    rows, v = 65, 1 << 15  # just over 2**21 elements: the row-blocked path
    g = torch.Generator().manual_seed(0)
    a = torch.randn(rows, v, generator=g, dtype=torch.float32)
    b = torch.randn(rows, v, generator=g, dtype=torch.float32)

    def penalty_grad(x, y):
        x = x.clone().requires_grad_(True)
        val = PAIRWISE[name](x, y, input="logits").sum()
        (gx,) = torch.autograd.grad(val, x, create_graph=True)
        (ggx,) = torch.autograd.grad((gx**2).sum(), x)
        return ggx

    small = penalty_grad(a[:2], b[:2])
    try:
        big = penalty_grad(a, b)
    except RuntimeError as err:
        assert "backward" in str(err).lower() or "graph" in str(err).lower()
        return
    torch.testing.assert_close(big[:2], small, rtol=1e-4, atol=1e-9)


# --------------------------------------------------------------------------------------------
# The losses
# --------------------------------------------------------------------------------------------

LOSS_DIVERGENCES = ["forward_kl", "reverse_kl", "js", "tv", "skew_forward_kl"]


def _logits(n=6, v=11, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, v, generator=g).to(dtype), torch.randn(n, v, generator=g).to(dtype))


def _dense(s, t, **kw):
    return losses.distillation_loss(s, t, **kw)


def _chunked(s, t, **kw):
    return losses.distillation_loss(s, t, chunk_size=2, **kw)


def _sparse(s, t, **kw):
    lp = torch.log_softmax(t.float(), -1)
    top = lp.topk(4, dim=-1)
    return losses.sparse_distillation_loss(s, top.indices, top.values, **kw)


def _fused(s, t, **kw):
    # hidden states chosen so that the head reproduces the given logits exactly
    d = s.shape[-1]
    eye = torch.eye(d, dtype=s.dtype)
    return losses.fused_linear_distillation_loss(s, eye, t.to(s.dtype), eye, **kw)


LOSS_PATHS = {"dense": _dense, "chunked": _chunked, "sparse": _sparse, "fused": _fused}


@pytest.mark.parametrize("divergence", LOSS_DIVERGENCES)
@pytest.mark.parametrize("path", LOSS_PATHS)
def test_loss_nan_in_a_counted_row_is_nan_or_an_error(path, divergence):
    s, t = _logits()
    s[2, 3] = math.nan
    s.requires_grad_(True)
    try:
        out = LOSS_PATHS[path](s, t, divergence=divergence)
    except ValueError as err:
        assert _names(str(err), "student_logits", "student_hidden", "s")
        return
    assert torch.isnan(out), f"{path}/{divergence}: NaN student row gave {out}"


@pytest.mark.parametrize("divergence", LOSS_DIVERGENCES)
@pytest.mark.parametrize("path", LOSS_PATHS)
def test_loss_nan_in_an_ignored_row_changes_nothing(path, divergence):
    """A NaN in a row whose label is ``ignore_index`` neither reaches the value nor any
    gradient (masking by selection, never by multiplication)."""
    s, t = _logits()
    labels = torch.arange(6) % 11
    labels[2] = -100
    keep = labels != -100
    s_clean = s.clone().requires_grad_(True)
    ref = LOSS_PATHS[path](s_clean[keep], t[keep], divergence=divergence,
                           labels=labels[keep])
    ref.backward()
    s_bad = s.clone()
    s_bad[2] = math.nan
    s_bad.requires_grad_(True)
    out = LOSS_PATHS[path](s_bad, t, divergence=divergence, labels=labels)
    out.backward()
    torch.testing.assert_close(out, ref)
    assert torch.isfinite(s_bad.grad).all()
    torch.testing.assert_close(s_bad.grad[keep], s_clean.grad[keep])
    assert (s_bad.grad[2] == 0).all()


def test_fused_loss_nan_hidden_in_ignored_row_keeps_weight_gradient_finite():
    g = torch.Generator().manual_seed(0)
    n, d, v = 8, 6, 13
    hs = torch.randn(n, d, generator=g)
    ht = torch.randn(n, d, generator=g)
    ws = torch.randn(v, d, generator=g).requires_grad_(True)
    wt = torch.randn(v, d, generator=g)
    labels = torch.arange(n) % v
    labels[3] = -100
    hs[3] = math.nan
    ht[3] = math.nan
    out = losses.fused_linear_distillation_loss(hs, ws, ht, wt, labels=labels, hard_weight=0.5)
    out.backward()
    assert torch.isfinite(out)
    assert torch.isfinite(ws.grad).all()


@pytest.mark.parametrize("path", ["chunked", "fused"])
def test_float16_gradient_survives_loss_scaling(path):
    """GradScaler multiplies in backward: the stored gradient must not have underflowed."""
    n, v = 256, 4000
    g = torch.Generator().manual_seed(0)
    s = torch.randn(n, v, generator=g).half()
    t = torch.randn(n, v, generator=g).half()
    s16 = s.clone().requires_grad_(True)
    (LOSS_PATHS[path](s16, t, divergence="forward_kl") * 65536.0).backward()
    s64 = s.double().requires_grad_(True)
    (losses.distillation_loss(s64, t.double(), divergence="forward_kl") * 65536.0).backward()
    ref = s64.grad
    got = s16.grad.double()
    zero_where_ref_is_not = ((got == 0) & (ref.abs() > 1e-30)).double().mean().item()
    assert zero_where_ref_is_not < 1e-3, zero_where_ref_is_not
    rel = ((got - ref).norm() / ref.norm()).item()
    assert rel < 2e-3, rel


# --------------------------------------------------------------------------------------------
# Estimators from samples
# --------------------------------------------------------------------------------------------


def _samples(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2))
    return x, x[:, :1] + 0.5 * rng.standard_normal((n, 1)), rng.standard_normal((n, 1))


ESTIMATORS: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "entropy": (lambda x, y, z: estimate.entropy(x), ("x",)),
    "mutual_information": (lambda x, y, z: estimate.mutual_information(x, y), ("x", "y")),
    "conditional_mutual_information": (
        lambda x, y, z: estimate.conditional_mutual_information(x, y, z), ("x", "y", "z")),
    "kl": (lambda x, y, z: estimate.kl(x, y), ("x", "y")),
    "js": (lambda x, y, z: estimate.js(x, y), ("x", "y")),
}


@pytest.mark.parametrize("bad", ["nan", "inf", "empty", "zero_dim"])
@pytest.mark.parametrize("name", ESTIMATORS)
def test_estimator_bad_input_names_the_argument(name, bad):
    fn, args = ESTIMATORS[name]
    x, y, z = _samples()
    if name in ("kl", "js"):
        y = x + 1.0  # same dimension as x
    for which in args:
        vals = {"x": x.copy(), "y": y.copy(), "z": z.copy()}
        v = vals[which]
        if bad == "nan":
            v[5, 0] = np.nan
        elif bad == "inf":
            v[5, 0] = np.inf
        elif bad == "empty":
            v = v[:0]
        else:
            v = np.float64(1.0)
        vals[which] = v
        with pytest.raises((ValueError, TypeError)) as err:
            fn(vals["x"], vals["y"], vals["z"])
        assert _names(str(err.value), which), (which, str(err.value))


@pytest.mark.parametrize("name", ["mutual_information", "kl", "js"])
def test_estimator_points_in_their_intervals_and_non_negative(name):
    x, y, _ = _samples(n=300, seed=2)
    if name == "mutual_information":
        est = estimate.mutual_information(x[:, :1], 0.01 * x[:, 1:] + y)  # nearly independent
    elif name == "kl":
        est = estimate.kl(x, x[::-1].copy() + 1e-3)
    else:
        est = estimate.js(x, x[::-1].copy() + 1e-3)
    assert 0 <= est.ci_low <= est.value <= est.ci_high, est


def test_estimated_kl_of_a_sample_with_itself_is_zero():
    x, _, _ = _samples(n=300)
    assert float(estimate.kl(x, x.copy()).value) == 0.0


# --------------------------------------------------------------------------------------------
# Geometry and dependence
# --------------------------------------------------------------------------------------------

GEOMETRY: dict[str, Callable[[Any, Any], Any]] = {
    "wasserstein_1d": lambda x, y: transport.wasserstein_1d(x[:, 0], y[:, 0]),
    "wasserstein_exact": transport.wasserstein_exact,
    "sliced_wasserstein": transport.sliced_wasserstein,
    "sinkhorn_divergence": transport.sinkhorn_divergence,
    "mmd": lambda x, y: kernels.mmd(x, y, unbiased=False),
    "cauchy_schwarz": kernels.cauchy_schwarz,
}


@pytest.mark.parametrize("name", GEOMETRY)
def test_geometry_identical_samples_give_zero(name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3))
    out = float(GEOMETRY[name](x, x.copy()))
    assert out == 0.0 or (name == "sinkhorn_divergence" and abs(out) < 1e-6), out
    assert out >= 0


@pytest.mark.parametrize("name", [*GEOMETRY, "distance_covariance", "distance_correlation"])
@pytest.mark.parametrize("where", ["x", "y"])
def test_geometry_nan_names_the_argument(name, where):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 2)), rng.standard_normal((30, 2))
    (x if where == "x" else y)[4, 0] = np.nan  # column 0: the one wasserstein_1d reads
    fn = GEOMETRY.get(name) or getattr(dependence, name)
    with pytest.raises(ValueError) as err:
        fn(x, y)
    assert _names(str(err.value), where), str(err.value)


def test_gaussian_identical_give_exactly_zero():
    rng = np.random.default_rng(0)
    m = rng.standard_normal(4)
    a = rng.standard_normal((4, 4))
    s = a @ a.T + np.eye(4)
    for fn in (gaussian.kl, gaussian.hellinger, gaussian.bhattacharyya, gaussian.wasserstein2):
        assert float(fn(m, s, m, s.copy())) == 0.0, fn.__name__


@pytest.mark.parametrize("fn", [gaussian.kl, gaussian.hellinger, gaussian.wasserstein2])
def test_gaussian_nan_names_the_argument(fn):
    m, s = np.zeros(2), np.eye(2)
    bad = m.copy()
    bad[0] = np.nan
    with pytest.raises(ValueError) as err:
        fn(bad, s, m, s)
    assert _names(str(err.value), "mean_p"), str(err.value)
