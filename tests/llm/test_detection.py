"""Radvand et al.'s test on a character trigram model trained in the test.

Numbers measured (seeded, printed with ``pytest -s``) are listed in the report; the asserts
carry margins around them.
"""

import math

import numpy as np
import pytest
import torch

from divergences.llm import detection_test, token_statistics

from ._tiny_lm import NGram, corpus, passages

LENGTHS = (16, 32, 64, 128, 256, 512, 1024)


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(7)
    a = NGram(3, 0.02).fit([corpus(slice(0, 10))])       # the in-house model
    b = NGram(2, 0.5).fit([corpus(slice(40, 50))])       # another model
    own = a.sample(48, LENGTHS[-1], rng)
    other = b.sample(48, LENGTHS[-1], rng)
    human = np.stack(passages(LENGTHS[-1], 48, start_topic=20))
    return a, b, own, other, human


_CACHE: dict = {}


def _logits(model, seqs):
    key = (id(model), id(seqs))
    if key not in _CACHE:
        _CACHE[key] = np.stack([model.logits(s) for s in seqs])
    return _CACHE[key]


def test_own_samples_shrink_like_inverse_sqrt(setup):
    a, _, own, _, _ = setup
    la = torch.from_numpy(_logits(a, own))
    ids = torch.from_numpy(own)
    means = []
    for n in LENGTHS:
        r = detection_test(la[:, :n], ids[:, :n])
        means.append(float(r.statistic.mean()))
        # under the model, the bound's 5% threshold is never exceeded here
        assert not bool(r.reject.any())
    slope = np.polyfit(np.log(LENGTHS), np.log(means), 1)[0]
    print("\nown-sample mean |l-H| by N:", dict(zip(LENGTHS, np.round(means, 4))),
          "log-log slope", round(slope, 3))
    assert -0.75 < slope < -0.3


def test_other_model_text_tends_to_cross_entropy_gap(setup):
    a, b, _, other, _ = setup
    la = torch.from_numpy(_logits(a, other))
    lb = torch.from_numpy(_logits(b, other))
    ids = torch.from_numpy(other)
    # gap_n = H(p_B, p_A) - H(p_A): cross-entropy of the generator B against A, minus A's entropy
    ce = token_statistics(lb, ids, reference_logits=la).cross_entropy
    ha = token_statistics(la, ids).entropy
    errors = []
    for n in LENGTHS:
        r = detection_test(la[:, :n], ids[:, :n])
        signed = r.log_perplexity - r.entropy
        gap = (ce[:, :n] - ha[:, :n]).mean(-1)
        errors.append(float((signed - gap).abs().mean()))
    print("\nother-model: mean gap", round(float((ce - ha).mean()), 4),
          "mean |(l-H) - gap| by N:", dict(zip(LENGTHS, np.round(errors, 4))))
    assert errors[-1] < 0.35 * errors[0]
    r = detection_test(la, ids)
    gap = float((ce - ha).mean())
    assert abs(float((r.log_perplexity - r.entropy).mean()) - gap) < 0.1 * abs(gap)


def test_empirical_threshold_tpr_at_5pct_fpr(setup):
    a, _, own, _, human = setup
    la_own = torch.from_numpy(_logits(a, own))
    la_h = torch.from_numpy(_logits(a, human))
    ids_own, ids_h = torch.from_numpy(own), torch.from_numpy(human)
    tprs, fprs = {}, {}
    half = own.shape[0] // 2
    for n in LENGTHS:
        cal = detection_test(la_own[:half, :n], ids_own[:half, :n]).statistic
        held = detection_test(la_own[half:, :n], ids_own[half:, :n], calibration=cal)
        hum = detection_test(la_h[:, :n], ids_h[:, :n], calibration=cal)
        tprs[n] = float(hum.reject.double().mean())
        fprs[n] = float(held.reject.double().mean())
        assert hum.empirical_threshold is not None
        assert torch.all((hum.p_value > 0) & (hum.p_value <= 1))
    print("\nhuman text: TPR at 5% FPR by N:", tprs, "held-out FPR:", fprs)
    assert tprs[LENGTHS[-1]] >= 0.9
    assert tprs[LENGTHS[-1]] >= tprs[LENGTHS[0]]
    assert max(fprs.values()) <= 0.3           # 24 held-out samples per length: noisy


def test_bound_threshold_formula_and_p_value():
    logits = torch.zeros(2, 50, 4)          # uniform model: l == H exactly
    ids = torch.zeros(2, 50, dtype=torch.long)
    r = detection_test(logits, ids, log_prob_range=2.0, alpha=0.1)
    expected = 2.0 * math.sqrt(math.log(2 / 0.1) / (2 * 50))
    torch.testing.assert_close(r.bound_threshold, torch.full((2,), expected))
    assert torch.all(r.statistic.abs() < 1e-6) and not bool(r.reject.any())
    # default ranges: all logits equal, so every c_n = 0 and the threshold is 0
    r0 = detection_test(logits, ids)
    assert torch.all(r0.bound_threshold == 0) and torch.all(r0.p_value == 1)
    # p-value at the threshold equals alpha
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 30, 6, generator=g)
    y = torch.randint(0, 6, (3, 30), generator=g)
    r = detection_test(x, y, alpha=0.2)
    c2 = ((x.amax(-1) - x.amin(-1)) ** 2).sum(-1)
    p = (2 * torch.exp(-2 * 900 * r.statistic**2 / c2)).clamp(max=1)
    torch.testing.assert_close(r.p_value, p)


def test_numpy_masks_and_errors(rng):
    x = rng.normal(size=(2, 20, 5))
    y = rng.integers(0, 5, size=(2, 20))
    m = np.ones((2, 20), bool)
    m[1, 10:] = False
    r = detection_test(x, y, mask=m, calibration=[0.1, 0.2, 0.3])
    assert isinstance(r.statistic, np.ndarray) and r.n_tokens.tolist() == [20, 10]
    r2 = detection_test(x[1:, :10], y[1:, :10])
    np.testing.assert_allclose(r.statistic[1], r2.statistic[0])
    assert np.isinf(r.threshold).all()                     # 3 values cannot give a 5% level
    with pytest.raises(ValueError, match="alpha"):
        detection_test(x, y, alpha=1.0)
    with pytest.raises(ValueError, match="calibration"):
        detection_test(x, y, calibration=[])
    with pytest.raises(ValueError, match="at least one unmasked"):
        detection_test(x, y, mask=np.zeros((2, 20), bool))
    with pytest.raises(ValueError, match="log_prob_range"):
        detection_test(x, y, log_prob_range=-1.0)


# ------------------------------------------------------------------ the bound's false-rejection rate


@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.5])
def test_bound_false_rejection_rate_two_point_model(alpha):
    # A draws each token from (0.3, 0.7): Z_n takes two values, range c = ln(7/3), variance
    # 0.21 c^2 against Hoeffding's c^2 / 4, so the bound is nearly tight in its exponent and
    # the false-rejection rate is measurably above 0 at alpha = 0.5 (normal approximation:
    # 0.003, 0.019, 0.069 for the three alphas).
    g = torch.Generator().manual_seed(11)
    n_seq, n = 4000, 64
    logits = torch.log(torch.tensor([0.3, 0.7], dtype=torch.float64)).expand(n_seq, n, 2)
    ids = (torch.rand(n_seq, n, generator=g, dtype=torch.float64) < 0.7).long()
    c = math.log(7 / 3)
    fixed = detection_test(logits, ids, alpha=alpha, log_prob_range=c)
    plug = detection_test(logits, ids, alpha=alpha)
    torch.testing.assert_close(plug.bound_threshold, fixed.bound_threshold)
    frr = float(fixed.reject.double().mean())
    print(f"\ntwo-point model, N={n}, alpha={alpha}: false-rejection rate {frr:.4f}")
    assert frr <= alpha
    if alpha == 0.5:
        assert frr > 0.02                   # the bound is not vacuous here
    # the p-value is a valid one: P(p <= alpha) <= alpha
    assert float((fixed.p_value <= alpha).double().mean()) <= alpha


def test_bound_false_rejection_rate_trigram_own_samples():
    # the character trigram model's own samples, several lengths: default (per-step ranges
    # plugged in) and a uniform range that holds for the model (the largest logit range over
    # every context it has, a constant fixed before sampling)
    rng = np.random.default_rng(21)
    a = NGram(3, 0.02).fit([corpus(slice(0, 10))])
    seqs = a.sample(100, 512, rng)
    la = torch.from_numpy(np.stack([a.logits(s) for s in seqs]))
    ids = torch.from_numpy(seqs)
    rows = np.stack([a._row(ctx) for ctx in a.counts] + [a._row((-1, -1))])
    c = float((rows.max(-1) - rows.min(-1)).max())
    assert float((la.amax(-1) - la.amin(-1)).max()) <= c + 1e-9
    measured = {}
    for n in (32, 128, 512):
        for alpha in (0.05, 0.5):
            plug = detection_test(la[:, :n], ids[:, :n], alpha=alpha)
            fixed = detection_test(la[:, :n], ids[:, :n], alpha=alpha, log_prob_range=c)
            measured[(n, alpha)] = (float(plug.reject.double().mean()),
                                    float(fixed.reject.double().mean()),
                                    round(float((plug.statistic / plug.bound_threshold).max()), 3))
            assert measured[(n, alpha)][0] <= alpha and measured[(n, alpha)][1] <= alpha
            assert bool((fixed.bound_threshold >= plug.bound_threshold - 1e-12).all())
    print("\ntrigram own samples: (N, alpha) -> (FRR plug-in, FRR uniform c, max S/tau):",
          measured, "c =", round(c, 3))
