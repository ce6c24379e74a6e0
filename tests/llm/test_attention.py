import math

import numpy as np
import pytest
import torch

from divergences.llm import AttentionEntropyProbe, attention_entropy


class TinyAttentionLM(torch.nn.Module):
    """Two layers of per-head-weight-returning attention, causal."""

    def __init__(self, v=20, d=8, heads=2, layers=2):
        super().__init__()
        self.emb = torch.nn.Embedding(v, d)
        self.attn = torch.nn.ModuleList(
            torch.nn.MultiheadAttention(d, heads, batch_first=True) for _ in range(layers))
        self.head = torch.nn.Linear(d, v)

    def forward(self, ids):
        x = self.emb(ids)
        t = ids.shape[1]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        maps = []
        for a in self.attn:
            y, w = a(x, x, x, attn_mask=causal, need_weights=True, average_attn_weights=False)
            x = x + y
            maps.append(w)
        return self.head(x), maps


def _direct(maps, mask):
    out = []
    for w in maps:
        w = w.double()
        h = -(w * torch.where(w > 0, w.log(), 0.0)).sum(-1)          # [B, H, T]
        m = mask[:, None, :].double()
        out.append((h * m).sum((0, 2)) / m.sum((0, 2)))
    return torch.stack(out)


def test_probe_matches_direct_entropy_on_causal_maps():
    torch.manual_seed(0)
    model = TinyAttentionLM()
    ids = torch.randint(0, 20, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[2, 5:] = False
    with AttentionEntropyProbe(list(model.attn)) as probe:
        _, maps = model(ids)
    assert not model.attn[0]._forward_hooks                          # removed on exit
    ent = probe.entropy(mask)
    assert ent.shape == (2, 2)
    torch.testing.assert_close(ent.double(), _direct(maps, mask), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(attention_entropy(maps, mask), ent)
    per = probe.entropy(mask, per_sequence=True)
    assert per.shape == (2, 3, 2)
    # the causal first query sees one key: entropy 0; bounded by log(#keys)
    h0 = attention_entropy(maps[0][:, :, :1, :])
    assert torch.all(h0.abs() < 1e-6)
    assert torch.all(ent <= math.log(7) + 1e-6)


def test_closed_forms_and_errors():
    one_hot = torch.zeros(2, 3, 4, 5)
    one_hot[..., 0] = 1
    assert torch.all(attention_entropy(one_hot) == 0)
    uniform = torch.full((1, 1, 2, 8), 1 / 8)
    torch.testing.assert_close(attention_entropy([uniform, uniform]),
                               torch.full((2, 1), math.log(8)))
    with pytest.raises(ValueError, match="empty"):
        attention_entropy([])
    with pytest.raises(ValueError, match=r"\[B, H, Tq, Tk\]"):
        attention_entropy(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="mask must have shape"):
        attention_entropy(uniform, torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="do not sum to 1"):
        attention_entropy(uniform * 2)
    with pytest.raises(TypeError, match="modules"):
        AttentionEntropyProbe([])
    lin = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="could not find attention weights"):
        with AttentionEntropyProbe([lin]):
            lin(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="no attention maps recorded"):
        AttentionEntropyProbe([lin]).entropy()


def test_transformers_hooks_agree_with_output_attentions():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=30, n_positions=16, n_embd=16, n_layer=2, n_head=4,
                                  attn_implementation="eager")
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    ids = torch.from_numpy(np.random.default_rng(0).integers(0, 30, (2, 9)))
    with AttentionEntropyProbe([blk.attn for blk in model.transformer.h]) as probe:
        out = model(ids, output_attentions=True)
    ent = probe.entropy()
    assert ent.shape == (2, 4)
    torch.testing.assert_close(ent, attention_entropy(out.attentions))
