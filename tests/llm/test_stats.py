import math

import numpy as np
import pytest
import torch

from divergences.llm import CausalLMScorer, Scorer, TokenStatistics, token_statistics

from ._tiny_lm import NGram, V, corpus, passages


@pytest.fixture(scope="module")
def lm():
    return NGram(3, 0.1).fit([corpus(slice(0, 10))])


def _direct(logits, ids, ref=None):
    """float64 reference: plain numpy, whole vocabulary at once."""
    x = np.asarray(logits, dtype=np.float64)
    lp = x - np.logaddexp.reduce(x, axis=-1, keepdims=True)
    p = np.exp(lp)
    out = {
        "logprob": np.take_along_axis(lp, ids[..., None], -1)[..., 0],
        "entropy": -(p * lp).sum(-1),
        "rank": (x > np.take_along_axis(x, ids[..., None], -1)).sum(-1),
    }
    if ref is not None:
        r = np.asarray(ref, dtype=np.float64)
        lr = r - np.logaddexp.reduce(r, axis=-1, keepdims=True)
        out["cross_entropy"] = -(p * lr).sum(-1)
        out["kl"] = (p * (lp - lr)).sum(-1)
    return out


def _batch(lm, rng, b=3, t=40):
    ids = np.stack(passages(t, b))
    logits = np.stack([lm.logits(s) for s in ids])
    logits = logits + rng.normal(0, 0.5, logits.shape)  # not normalised, not exact log-probs
    return logits, ids


def test_values_against_float64(lm, rng):
    logits, ids = _batch(lm, rng)
    ref = rng.normal(0, 2, logits.shape)
    s = token_statistics(logits, ids, reference_logits=ref)
    d = _direct(logits, ids, ref)
    assert isinstance(s, TokenStatistics)
    for k in ("logprob", "entropy", "cross_entropy", "kl"):
        assert isinstance(getattr(s, k), np.ndarray)
        np.testing.assert_allclose(getattr(s, k), d[k], rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(s.rank, d["rank"])
    # direction: expectation under the model (first argument)
    np.testing.assert_allclose(s.cross_entropy, s.entropy + s.kl, atol=1e-10)
    swapped = token_statistics(ref, ids, reference_logits=logits)
    assert not np.allclose(swapped.kl, s.kl)


def test_rank_ties_count_strictly_greater():
    logits = torch.tensor([[[1.0, 3.0, 3.0, 0.0]] * 4])
    ids = torch.tensor([[1, 2, 0, 3]])
    assert token_statistics(logits, ids).rank.tolist() == [[0, 0, 2, 3]]


def test_mask_values_and_invalid_ids_at_masked_positions(lm, rng):
    logits, ids = _batch(lm, rng)
    mask = rng.random(ids.shape) < 0.7
    ids_pad = np.where(mask, ids, -100)
    s = token_statistics(torch.from_numpy(logits), torch.from_numpy(ids_pad),
                         mask=torch.from_numpy(mask))
    full = token_statistics(torch.from_numpy(logits), torch.from_numpy(ids))
    m = torch.from_numpy(mask)
    for k in ("logprob", "entropy"):
        v = getattr(s, k)
        assert torch.equal(v[m], getattr(full, k)[m])
        assert torch.all(v[~m] == 0)
    assert torch.all(s.rank[~m] == -1)
    # masked mean equals the mean over the kept tokens
    np.testing.assert_allclose(s.mean("logprob").numpy(),
                               [full.logprob[i][m[i]].mean().item() for i in range(3)])


def test_shift_aligns_causal_outputs(lm, rng):
    logits, ids = _batch(lm, rng)
    # raw causal layout: position t predicts ids[t + 1]
    raw = np.concatenate([logits[:, 1:], rng.normal(size=(3, 1, V))], axis=1)
    s = token_statistics(raw, ids, shift=True)
    a = token_statistics(logits[:, 1:], ids[:, 1:])
    np.testing.assert_array_equal(s.logprob, a.logprob)
    assert s.logprob.shape == (3, 39)


def test_chunking_invariance(lm, rng):
    logits, ids = _batch(lm, rng)
    ref = rng.normal(size=logits.shape)
    whole = token_statistics(logits, ids, reference_logits=ref, chunk_size=10_000)
    for c in (1, 7, 64):
        part = token_statistics(logits, ids, reference_logits=ref, chunk_size=c)
        for k in ("logprob", "entropy", "rank", "cross_entropy", "kl"):
            np.testing.assert_allclose(getattr(part, k), getattr(whole, k), rtol=1e-12)


def test_bf16_accumulates_in_float32(lm, rng):
    logits, ids = _batch(lm, rng)
    lb = torch.from_numpy(logits).to(torch.bfloat16)
    s = token_statistics(lb, torch.from_numpy(ids), chunk_size=5)
    assert s.logprob.dtype == torch.float32 and s.entropy.dtype == torch.float32
    d = _direct(lb.double().numpy(), ids)
    np.testing.assert_allclose(s.logprob.numpy(), d["logprob"], atol=2e-5)
    np.testing.assert_allclose(s.entropy.numpy(), d["entropy"], atol=2e-5)


def test_gradient_flows_and_gradcheck(rng):
    x = torch.tensor(rng.normal(size=(2, 3, 5)), requires_grad=True)
    r = torch.tensor(rng.normal(size=(2, 3, 5)), requires_grad=True)
    ids = torch.tensor([[0, 1, 4], [2, 2, 3]])

    def f(a, b):
        s = token_statistics(a, ids, reference_logits=b, chunk_size=2)
        return s.logprob, s.entropy, s.kl, s.cross_entropy

    assert torch.autograd.gradcheck(f, (x, r))


def test_errors(rng):
    x = rng.normal(size=(2, 4, 5))
    ids = np.zeros((2, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="input_ids must have shape"):
        token_statistics(x, ids[:, :3])
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 5\)"):
        token_statistics(x, ids + 5)
    with pytest.raises(TypeError, match="input_ids must hold integers"):
        token_statistics(x, ids.astype(float))
    with pytest.raises(TypeError, match="NumPy array but logits is a torch"):
        token_statistics(torch.from_numpy(x), ids)
    with pytest.raises(ValueError, match="mask must have the shape"):
        token_statistics(x, ids, mask=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="reference_logits must have the shape"):
        token_statistics(x, ids, reference_logits=x[:, :3])
    with pytest.raises(ValueError, match="logits contains NaN"):
        token_statistics(np.full_like(x, np.nan), ids)
    with pytest.raises(ValueError, match="chunk_size"):
        token_statistics(x, ids, chunk_size=0)
    with pytest.raises(ValueError, match="shift=True needs"):
        token_statistics(x[:, :1], ids[:, :1], shift=True)
    with pytest.raises(ValueError, match="logits must have shape"):
        token_statistics(x[0, 0], ids[0, 0])
    s = token_statistics(x, ids)
    with pytest.raises(ValueError, match="was not computed"):
        s.mean("kl")
    with pytest.raises(ValueError, match="field must be one of"):
        s.mean("rank")


def test_scorer_adapter_on_plain_module():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(V, 8), torch.nn.Linear(8, V))
    scorer = CausalLMScorer(model)
    assert isinstance(scorer, Scorer)
    ids = torch.from_numpy(np.stack(passages(12, 2)))
    s = token_statistics(scorer(ids), ids, shift=True)
    assert s.logprob.shape == (2, 11) and not s.logprob.requires_grad
    assert torch.all(s.entropy <= math.log(V) + 1e-6)
    with pytest.raises(TypeError, match="model must be callable"):
        CausalLMScorer(3)
    with pytest.raises(TypeError, match="must return a tensor"):
        CausalLMScorer(lambda ids: "x")(ids)


def test_transformers_adapter_tiny_gpt2():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=V, n_positions=32, n_embd=16, n_layer=1, n_head=2)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    ids = torch.from_numpy(np.stack(passages(16, 2)))
    logits = CausalLMScorer(model)(ids)
    s = token_statistics(logits, ids, shift=True)
    direct = torch.log_softmax(logits[:, :-1].double(), -1).gather(-1, ids[:, 1:, None])[..., 0]
    torch.testing.assert_close(s.logprob.double(), direct, rtol=1e-5, atol=1e-5)


def test_one_chunk_of_vocabulary_temporaries_at_a_time(lm, rng, monkeypatch):
    from divergences import discrete

    seen = []
    original = discrete.log_probs

    def spy(x, *args, **kwargs):
        seen.append(x.shape[0])
        return original(x, *args, **kwargs)

    monkeypatch.setattr(discrete, "log_probs", spy)
    logits, ids = _batch(lm, rng)                 # 3 x 40 = 120 tokens
    token_statistics(logits, ids, reference_logits=logits, chunk_size=16)
    assert max(seen) == 16 and len(seen) > 120 // 16   # every V-sized call sees one chunk
