"""Tests for divergences.coupling (greedy MEC, majorisation meet, EBIM, MEC-B)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import divergences as dv
from divergences.coupling import (
    ebim_encoder,
    majorization_meet,
    mec_b,
    min_entropy_coupling,
)

LOG2E = math.log2(math.e)


def bits(p):
    return float(dv.entropy(np.ravel(p), base=2, normalize=True))


def random_marginal(rng, n, concentration=1.0):
    return rng.dirichlet(np.full(n, concentration))


probability = st.integers(1, 8).flatmap(
    lambda n: st.lists(st.floats(0.0, 1.0, allow_subnormal=False), min_size=n, max_size=n)
).filter(lambda v: sum(v) > 1e-3).map(lambda v: np.array(v) / sum(v))


# ------------------------------------------------------------------------------------------
# Greedy coupling
# ------------------------------------------------------------------------------------------


def test_small_example_by_hand():
    # greedy: 0.5 (x1, y1); then x0=0.5 vs y1 rest 0.25 ... checked step by step
    j = min_entropy_coupling([0.5, 0.5], [0.25, 0.75])
    np.testing.assert_allclose(j, [[0.0, 0.5], [0.25, 0.25]])
    j = min_entropy_coupling([0.6, 0.4], [0.6, 0.4])
    np.testing.assert_allclose(j, np.diag([0.6, 0.4]))  # identical marginals: the diagonal
    j3 = min_entropy_coupling([1.0], [0.5, 0.5], [0.5, 0.5])
    assert j3.shape == (1, 2, 2)
    np.testing.assert_allclose(j3[0], np.diag([0.5, 0.5]))


@pytest.mark.parametrize("k", [2, 3, 4])
def test_marginals_are_exact_and_bounds_hold(k):
    rng = np.random.default_rng(k)
    for _ in range(40):
        sizes = rng.integers(1, 7, size=k)
        ps = [random_marginal(rng, int(n), concentration=rng.choice([0.3, 1.0, 3.0]))
              for n in sizes]
        j = min_entropy_coupling(*ps)
        assert j.shape == tuple(sizes)
        assert (j >= 0).all()
        for axis, p in enumerate(ps):
            other = tuple(a for a in range(k) if a != axis)
            np.testing.assert_allclose(j.sum(axis=other), p, atol=1e-12)
        assert np.count_nonzero(j) <= sizes.sum() - k + 1
        h_meet, h = bits(majorization_meet(*ps)), bits(j)
        assert h_meet - 1e-9 <= h
        # proven: 1 bit for two marginals, log2(e) bits for any number (see module notes)
        assert h <= h_meet + (1.0 if k == 2 else LOG2E) + 1e-9
        assert h <= sum(bits(p) for p in ps) + 1e-9  # no worse than the independent coupling
        assert h >= max(bits(p) for p in ps) - 1e-9


@settings(max_examples=50, deadline=None)
@given(probability, probability)
def test_properties(p, q):
    j = min_entropy_coupling(p, q)
    np.testing.assert_allclose(j.sum(1), p, atol=1e-12)
    np.testing.assert_allclose(j.sum(0), q, atol=1e-12)
    h_meet = bits(majorization_meet(p, q))
    assert h_meet - 1e-9 <= bits(j) <= h_meet + 1.0 + 1e-9
    assert bits(j) >= max(bits(p), bits(q)) - 1e-9  # H(X, Y) >= H(X)
    # symmetric: coupling q with p is the transpose, up to ties
    assert bits(min_entropy_coupling(q, p)) == pytest.approx(bits(j), abs=1e-9)


def test_greedy_finds_the_optimum_when_one_marginal_refines_the_other():
    # q splits the mass of p: the optimum is H(q), the meet is q, greedy reaches it
    p = [0.5, 0.3, 0.2]
    q = [0.3, 0.2, 0.2, 0.2, 0.1]
    j = min_entropy_coupling(p, q)
    assert bits(j) >= bits(q) - 1e-12
    assert bits(majorization_meet(p, q)) == pytest.approx(bits(sorted(q, reverse=True)))


# ------------------------------------------------------------------------------------------
# Majorisation meet
# ------------------------------------------------------------------------------------------


def _majorizes(a, b):
    """True when a majorises b (partial sums of the sorted a dominate those of b)."""
    n = max(len(a), len(b))
    sa = np.cumsum(np.pad(np.sort(a)[::-1], (0, n - len(a))))
    sb = np.cumsum(np.pad(np.sort(b)[::-1], (0, n - len(b))))
    return bool(np.all(sa >= sb - 1e-12))


def test_meet_is_the_greatest_lower_bound():
    rng = np.random.default_rng(21)
    for _ in range(50):
        ps = [random_marginal(rng, int(rng.integers(1, 6))) for _ in range(rng.integers(1, 4))]
        r = majorization_meet(*ps)
        np.testing.assert_allclose(r.sum(), 1.0, atol=1e-12)
        assert np.all(np.diff(r) <= 1e-15) and np.all(r >= 0)
        for p in ps:
            assert _majorizes(p, r)
        # any joint coupling is majorised by the meet
        j = min_entropy_coupling(*ps) if len(ps) > 1 else np.asarray(ps[0])
        assert _majorizes(r, j.ravel())
    # the meet of one distribution is itself, sorted
    np.testing.assert_allclose(majorization_meet([0.1, 0.6, 0.3]), [0.6, 0.3, 0.1])


def test_meet_is_greatest_on_a_grid():
    """No other lower bound on a grid of 3-point distributions majorises the meet strictly."""
    p, q = np.array([0.6, 0.25, 0.15]), np.array([0.45, 0.45, 0.1])
    r = majorization_meet(p, q)
    grid = [np.array(v) / 20 for v in itertools.product(range(21), repeat=3) if sum(v) == 20]
    for s in grid:
        if _majorizes(p, s) and _majorizes(q, s):
            assert _majorizes(r, s)


# ------------------------------------------------------------------------------------------
# EBIM and MEC-B
# ------------------------------------------------------------------------------------------


def _info_and_rate(p, enc):
    joint = p[:, None] * enc
    p_t = joint.sum(0)
    info = float(dv.kl(joint.ravel(), np.outer(p, p_t).ravel(), base=2))
    return info, bits(p_t)


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.9, 1.5, 2.2, 5.0])
def test_ebim_respects_the_rate(rate):
    rng = np.random.default_rng(int(rate * 10))
    for _ in range(10):
        p = random_marginal(rng, int(rng.integers(2, 9)))
        for refine in (False, True):
            enc = ebim_encoder(p, rate, refine=refine)
            np.testing.assert_allclose(enc.sum(1), 1.0, atol=1e-12)
            assert (enc >= 0).all()
            info, h_t = _info_and_rate(p, enc)
            assert h_t <= rate + 1e-9
            assert info <= min(rate, bits(p)) + 1e-9  # I(X;T) <= H(T) and <= H(X)
            if not refine:
                assert set(np.unique(enc)) <= {0.0, 1.0}  # deterministic
                assert info == pytest.approx(h_t, abs=1e-9)
        det, _ = _info_and_rate(p, ebim_encoder(p, rate, refine=False))
        ref, _ = _info_and_rate(p, ebim_encoder(p, rate, refine=True))
        assert ref >= det - 1e-9
        if bits(p) <= rate:  # the identity, up to the order of the classes
            enc = ebim_encoder(p, rate)
            assert enc.shape == (p.size, p.size)
            assert set(np.unique(enc)) <= {0.0, 1.0}  # a permutation matrix
            np.testing.assert_array_equal(enc.sum(0), 1.0)
            np.testing.assert_array_equal(enc.sum(1), 1.0)


def test_ebim_uniform_exact():
    # four equiprobable symbols at 1 bit: two pairs, I = H(T) = 1
    enc = ebim_encoder([0.25] * 4, 1.0, refine=False)
    info, h_t = _info_and_rate(np.full(4, 0.25), enc)
    assert h_t == pytest.approx(1.0) and info == pytest.approx(1.0)


def test_ebim_base_and_zero_mass():
    p = np.array([0.5, 0.0, 0.3, 0.2])
    enc_bits = ebim_encoder(p, 1.0, base=2)
    enc_nats = ebim_encoder(p, math.log(2.0), base=math.e)
    np.testing.assert_allclose(enc_bits, enc_nats, atol=1e-9)
    assert enc_bits[1].sum() == 1.0


@pytest.mark.parametrize("rate", [0.0, 0.5, 1.0, 1.6, 3.0])
def test_mec_b(rate):
    rng = np.random.default_rng(31)
    p_x = random_marginal(rng, 6)
    p_y = random_marginal(rng, 4)
    res = mec_b(p_x, p_y, rate)
    np.testing.assert_allclose(res.joint.sum(1), p_x, atol=1e-12)
    np.testing.assert_allclose(res.joint.sum(0), p_y, atol=1e-12)
    np.testing.assert_allclose(res.decoder.sum(1), 1.0, atol=1e-12)
    assert res.rate <= rate + 1e-9
    assert res.info_xy <= res.info_xt + 1e-9  # data processing through T
    assert res.info_xt <= res.rate + 1e-9


def test_mec_b_more_rate_more_information():
    p_x = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    p_y = np.array([0.4, 0.35, 0.25])
    infos = [mec_b(p_x, p_y, r).info_xt for r in (0.0, 0.5, 1.0, 1.5, 2.5)]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(infos))
    assert infos[0] == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------------------------------
# Types and errors
# ------------------------------------------------------------------------------------------


def test_types():
    t = min_entropy_coupling(torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.75]))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
    assert isinstance(majorization_meet([0.5, 0.5]), np.ndarray)
    j = min_entropy_coupling([1.0, 1.0], [3.0, 1.0], normalize=True)
    np.testing.assert_allclose(j.sum(0), [0.75, 0.25])


def test_errors():
    with pytest.raises(ValueError, match="at least 2 marginals"):
        min_entropy_coupling([1.0])
    with pytest.raises(ValueError, match="at least 1 marginals"):
        majorization_meet()
    with pytest.raises(ValueError, match="does not sum to 1"):
        min_entropy_coupling([0.5, 0.4], [1.0])
    with pytest.raises(ValueError, match="negative"):
        min_entropy_coupling([1.5, -0.5], [1.0])
    with pytest.raises(ValueError, match="NaN or inf"):
        majorization_meet([np.nan, 1.0])
    with pytest.raises(ValueError, match="1-D"):
        min_entropy_coupling([[0.5, 0.5]], [1.0])
    with pytest.raises(ValueError, match="1-D"):
        min_entropy_coupling([], [1.0])
    with pytest.raises(TypeError, match="array of numbers"):
        min_entropy_coupling(["a", "b"], [1.0])
    with pytest.raises(ValueError, match="no mass"):
        min_entropy_coupling([0.0, 0.0], [1.0], normalize=True)
    with pytest.raises(ValueError, match="would exceed"):
        min_entropy_coupling(*[np.full(100, 0.01)] * 5)
    with pytest.raises(ValueError, match="rate must lie"):
        ebim_encoder([0.5, 0.5], -1.0)
    with pytest.raises(TypeError, match="rate must be a real number"):
        ebim_encoder([0.5, 0.5], "1")
    with pytest.raises(ValueError, match="base must"):
        ebim_encoder([0.5, 0.5], 1.0, base=1.0)
    with pytest.raises(ValueError, match="p_y"):
        mec_b([0.5, 0.5], [0.7, 0.7], 1.0)
