import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from divergences.llm import dc_pdd_score, min_k_percent, reference_frequencies, token_statistics

from ._tiny_lm import NGram, V, corpus, passages


def _auc(pos, neg):
    """P(score(member) > score(non-member)) + 0.5 P(tie): the Mann-Whitney AUC."""
    pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def test_members_score_higher_than_non_members():
    docs = passages(256, 120)
    members, non_members = docs[:60], docs[60:]
    model = NGram(4, 0.1).fit(members)                 # trained on the members only
    ref_logf = reference_frequencies([corpus(slice(50, 79))], V)

    def scores(batch):
        ids = np.stack(batch)
        lp = token_statistics(np.stack([model.logits(s) for s in ids]), ids).logprob
        return (dc_pdd_score(lp, ids, ref_logf), min_k_percent(lp, k=0.2),
                dc_pdd_score(lp, ids, ref_logf, a=1.0))

    dm, km, dm1 = scores(members)
    dn, kn, dn1 = scores(non_members)
    auc_dc, auc_k = _auc(dm, dn), _auc(km, kn)
    print(f"\nmembership AUC: DC-PDD {auc_dc:.3f} (a=1: {_auc(dm1, dn1):.3f}), "
          f"Min-K% (k=0.2) {auc_k:.3f}; "
          f"mean DC-PDD member {dm.mean():.5f} non-member {dn.mean():.5f}")
    assert dm.mean() > dn.mean()
    assert auc_dc > 0.75
    assert auc_k > 0.75


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(0, 10_000), st.floats(1e-4, 1.0))
def test_score_in_zero_a_and_repeats_ignored(t, seed, a):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 7, size=(2, t))
    lp = np.log(rng.dirichlet(np.ones(8), size=(2, t))[..., 0])
    logf = reference_frequencies(rng.integers(0, 7, size=50), 7)
    s = dc_pdd_score(lp, ids, logf, a=a)
    assert np.all((s >= 0) & (s <= a + 1e-15))
    # appending repeats of tokens already seen (with any probability) changes nothing
    rep = np.concatenate([ids, ids[:, :1].repeat(3, 1)], axis=1)
    lp_rep = np.concatenate([lp, np.zeros((2, 3))], axis=1)
    np.testing.assert_allclose(dc_pdd_score(lp_rep, rep, logf, a=a), s, rtol=1e-12)


def test_hand_value_unseen_tokens_mask_and_torch():
    logf = reference_frequencies(np.array([0, 0, 0, 1]), 4)   # tokens 2, 3 unseen
    np.testing.assert_allclose(np.exp(logf), [4 / 8, 2 / 8, 1 / 8, 1 / 8])
    lp = np.log(np.array([0.5, 0.001, 0.9, 0.001]))
    ids = np.array([0, 1, 3, 3])
    expected = np.mean([min(0.5 * math.log(2), 0.01), 0.001 * math.log(4), 0.01])
    out = dc_pdd_score(lp, ids, logf)
    assert np.isfinite(out) and math.isclose(float(out), expected, rel_tol=1e-12)
    mask = np.array([True, True, False, True])
    # the masked position is skipped; the later 3 becomes the first occurrence
    exp_m = np.mean([min(0.5 * math.log(2), 0.01), 0.001 * math.log(4), 0.001 * math.log(8)])
    assert math.isclose(float(dc_pdd_score(lp, ids, logf, mask=mask)), exp_m, rel_tol=1e-12)
    t_lp = torch.tensor(lp, requires_grad=True)
    t_out = dc_pdd_score(t_lp, torch.tensor(ids), torch.tensor(logf))
    t_out.backward()
    assert isinstance(t_out, torch.Tensor) and torch.isfinite(t_lp.grad).all()
    assert float(dc_pdd_score(lp, ids, logf, mask=np.zeros(4, bool))) == 0.0
    rf = reference_frequencies(torch.tensor([[0, 1], [1, -100]]), 3, log=False)
    torch.testing.assert_close(rf, torch.tensor([2 / 6, 3 / 6, 1 / 6], dtype=torch.float64))


def test_min_k_percent_values_mask_and_ties():
    lp = np.log(np.array([[0.5, 0.1, 0.01, 0.9, 0.2], [0.3, 0.3, 0.3, 0.3, 0.3]]))
    out = min_k_percent(lp, k=0.4)
    np.testing.assert_allclose(out, [np.log([0.01, 0.1]).mean(), np.log(0.3)])
    mask = np.array([[True, True, False, True, True], [True] * 5])
    out_m = min_k_percent(lp, k=0.5, mask=mask)       # ceil(0.5 * 4) = 2 lowest of kept
    np.testing.assert_allclose(out_m[0], np.log([0.1, 0.2]).mean())
    np.testing.assert_allclose(min_k_percent(lp, k=1.0), lp.mean(-1))
    assert float(min_k_percent(lp[:1], mask=np.zeros((1, 5), bool))[0]) == 0.0


def test_errors():
    logf = reference_frequencies([0, 1], 3)
    with pytest.raises(ValueError, match="a must lie"):
        dc_pdd_score([-1.0], [0], logf, a=0.0)
    with pytest.raises(ValueError, match="must lie in \\[0, 3\\)"):
        dc_pdd_score([-1.0], [5], logf)
    with pytest.raises(ValueError, match="shape of token_logprobs"):
        dc_pdd_score([-1.0, -2.0], [0], logf)
    with pytest.raises(ValueError, match="finite log-probabilities"):
        dc_pdd_score([-1.0], [0], np.array([0.5, -1.0, -1.0]))
    with pytest.raises(ValueError, match="token_logprobs must be log-probabilities"):
        dc_pdd_score([1.0], [0], logf)
    with pytest.raises(ValueError, match="1-D"):
        dc_pdd_score([-1.0], [0], logf[None])
    with pytest.raises(TypeError, match="input_ids must hold integers"):
        dc_pdd_score([-1.0], [0.0], logf)
    with pytest.raises(ValueError, match="vocab_size"):
        reference_frequencies([0], 0)
    with pytest.raises(ValueError, match="corpus_ids must lie"):
        reference_frequencies([3], 3)
    with pytest.raises(ValueError, match="k must lie"):
        min_k_percent([-1.0], k=0.0)
    with pytest.raises(ValueError, match="NaN"):
        min_k_percent([np.nan])
    with pytest.raises(ValueError, match="mask must have shape"):
        min_k_percent([-1.0, -2.0], mask=[True])
