import math

import numpy as np
import pytest
import torch

from divergences.llm import SelectiveContrastiveLogitsProcessor, selective_contrastive_logits

from ._tiny_lm import NGram, V, corpus, encode


def _direct(s, t, mu=0.005, lam=2 / 3, w=0.7):
    """float64 reference written from the paper's rule (probability space)."""
    s, t = np.asarray(s, np.float64), np.asarray(t, np.float64)
    p = np.exp(s - np.logaddexp.reduce(s, -1, keepdims=True))
    q = np.exp(t - np.logaddexp.reduce(t, -1, keepdims=True))
    out = np.empty_like(p)
    for i in range(p.shape[0]):
        if p[i].std(ddof=1) > mu:
            out[i] = np.log(p[i])
        else:
            d = p[i] - w * q[i]
            ok = (p[i] >= lam / p.shape[-1]) & (d > 0)
            out[i] = np.where(ok, np.log(np.where(ok, d, 1.0)), -np.inf)
    return out


def test_identity_above_mu_and_rule_below(rng):
    v = 50
    peaked = rng.normal(0, 3, size=(3, v))           # std(p) >> 0.005
    flat = rng.normal(0, 0.2, size=(3, v))           # std(p) ~ 0.004 <= mu
    lame = rng.normal(0, 1, size=(6, v))
    s = np.concatenate([peaked, flat])
    p = np.exp(s - np.logaddexp.reduce(s, -1, keepdims=True))
    stds = p.std(-1, ddof=1)
    assert np.all(stds[:3] > 0.005) and np.all(stds[3:] <= 0.005)
    out = selective_contrastive_logits(s, lame)
    expected = torch.log_softmax(torch.from_numpy(s[:3]), -1).numpy()
    np.testing.assert_array_equal(out[:3], expected)          # exactly log-softmax
    ref = _direct(s, lame)
    fin = np.isfinite(ref)
    np.testing.assert_array_equal(np.isfinite(out), fin)
    np.testing.assert_allclose(out[fin], ref[fin], rtol=1e-10)
    # the masking rules, row by row
    q = np.exp(lame - np.logaddexp.reduce(lame, -1, keepdims=True))
    dropped_low = p[3:] < (2 / 3) / v
    dropped_neg = p[3:] <= 0.7 * q[3:]
    assert dropped_low.any() and (dropped_neg & ~dropped_low).any()
    np.testing.assert_array_equal(np.isinf(out[3:]), dropped_low | dropped_neg)


def test_mu_switch_and_fallback():
    s = torch.zeros(1, 4)
    lame = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    # identical flat distributions with weight 1: p - q = 0 everywhere -> fallback to log p
    out = selective_contrastive_logits(s, lame, weight=1.0)
    torch.testing.assert_close(out, torch.log_softmax(s, -1))
    # mu=inf forces the contrastive branch even on a peaked row; lam=0 keeps every token
    peaked = torch.tensor([[4.0, 0.0, 0.0, -1.0]])
    out = selective_contrastive_logits(peaked, peaked, mu=math.inf, lam=0.0, weight=0.5)
    torch.testing.assert_close(out, torch.log(0.5 * torch.softmax(peaked, -1)))
    # bf16 inputs compute in float32
    out = selective_contrastive_logits(peaked.bfloat16(), lame.bfloat16())
    assert out.dtype == torch.float32


def _scorer(model):
    """Raw causal layout: position t predicts ids[t + 1]."""
    def score(ids):
        rows = [model.logits(np.append(r.numpy(), 0))[1:] for r in ids]
        return torch.from_numpy(np.stack(rows))
    return score


def test_processor_matches_the_rule_on_a_trained_model():
    model = NGram(3, 0.1).fit([corpus(slice(0, 5))])
    scorer = _scorer(model)
    standard = torch.from_numpy(np.stack([encode("def f(x):\n    return"),
                                          encode("class A(object):\n   ")]))
    lame = torch.from_numpy(np.stack([encode("    return"), encode("   ")[:1].repeat(10)]))
    generated = torch.from_numpy(np.stack([encode(" x+1"), encode(" pas")]))
    ids = torch.cat([standard, generated], 1)
    scores = scorer(ids)[:, -1]
    proc = SelectiveContrastiveLogitsProcessor(scorer, lame, standard.shape[1], mu=0.02)
    out = proc(ids, scores)
    lame_logits = scorer(torch.cat([lame, generated], 1))[:, -1]
    torch.testing.assert_close(out, selective_contrastive_logits(scores, lame_logits, mu=0.02))
    # two samples per prompt: rows are repeated in generate's order
    out2 = proc(ids.repeat_interleave(2, 0), scores.repeat_interleave(2, 0))
    torch.testing.assert_close(out2, out.repeat_interleave(2, 0))
    with pytest.raises(ValueError, match="not a multiple"):
        proc(ids[:1].repeat(3, 1), scores[:1].repeat(3, 1))


def test_processor_inside_transformers_generate():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=V, n_positions=64, n_embd=16, n_layer=1, n_head=2)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    prompt = torch.from_numpy(encode("import os\nx = ")[None])
    lame = torch.from_numpy(encode("x = ")[None])
    proc = SelectiveContrastiveLogitsProcessor(lambda i: model(i).logits, lame, prompt.shape[1],
                                               mu=1.0)     # always the contrastive branch
    out = model.generate(prompt, max_new_tokens=4, do_sample=False, logits_processor=[proc],
                         pad_token_id=0)
    assert out.shape == (1, prompt.shape[1] + 4)


def test_errors():
    with pytest.raises(ValueError, match="mu must lie"):
        selective_contrastive_logits([[0.0, 1.0]], [[0.0, 1.0]], mu=-1.0)
    with pytest.raises(ValueError, match="lam must lie"):
        selective_contrastive_logits([[0.0, 1.0]], [[0.0, 1.0]], lam=2.0)
    with pytest.raises(ValueError, match="same support size"):
        selective_contrastive_logits([[0.0, 1.0]], [[0.0, 1.0, 2.0]])
    with pytest.raises(ValueError, match="standard_logits contains NaN"):
        selective_contrastive_logits([[np.nan, 1.0]], [[0.0, 1.0]])
    with pytest.raises(TypeError, match="lame_scorer must be callable"):
        SelectiveContrastiveLogitsProcessor(1, torch.zeros(1, 2, dtype=torch.long), 0)
    with pytest.raises(ValueError, match="lame_input_ids"):
        SelectiveContrastiveLogitsProcessor(len, torch.zeros(2), 0)
    with pytest.raises(ValueError, match="prompt_length"):
        SelectiveContrastiveLogitsProcessor(len, torch.zeros(1, 2, dtype=torch.long), -1)
