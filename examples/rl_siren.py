"""SIREN keeps the policy's selective entropy near its anchor during policy gradient.

A tabular policy (20 positions x 16 tokens, one logit row per position, random start) is
trained by REINFORCE (64 sampled responses per step, mean baseline, reward = fraction of
positions that hit their target token; Adam lr 0.05, 300 steps). SIREN
(:func:`divergences.losses.selective_entropy_regularizer`) adds
``coef * (H - H_anchor)^2`` where ``H`` is the top-p (0.8) entropy of each response's top-20%
entropy tokens and ``H_anchor`` is its value at step 0.

Measured (``python examples/rl_siren.py``, seeded; a loaded 2-core box, 22-30 s)::

    run                 anchor  H final  max|H-anchor|  top-p H  full H p(target)
    no regulariser       2.312    0.000          2.312    0.000   0.063     0.993
    SIREN coef=0.005     2.312    0.000          2.312    0.000   0.071     0.991
    SIREN coef=1         2.312    1.785          0.527    0.357   0.527     0.820
    SIREN coef=10        2.312    2.105          0.207    0.421   0.572     0.812

(``top-p H`` and ``full H`` are the mean over all positions of the top-p and the full entropy.)
Without a regulariser the policy collapses (selective entropy 2.31 -> 0.00 nats, every
position near-deterministic, p(target) 0.99). With SIREN the selective entropy stays near its
anchor: it ends at 1.79 (coef 1) or 2.11 (coef 10) and never drifts more than 0.53 / 0.21 nats,
while the other positions are still free to sharpen (mean top-p entropy 0.36-0.42) and the
policy still learns (p(target) 0.82). The paper's default coef = 0.005 is too weak against this
toy's gradient scale (under Adam): it changed nothing measurable here.
"""

from __future__ import annotations

import torch

from divergences.losses import selective_entropy_regularizer, top_p_entropy

T, V, B = 20, 16, 64  # response length, vocabulary, responses per batch


def train(coef: float | None, steps: int, seed: int) -> dict[str, float]:
    """REINFORCE on a tabular policy (one logit row per position; reward = fraction of
    positions that hit their target token), with or without SIREN (``coef=None``)."""
    g = torch.Generator().manual_seed(seed)
    logits = (0.5 * torch.randn(T, V, generator=g)).requires_grad_()
    target = torch.randint(V, (T,), generator=g)
    opt = torch.optim.Adam([logits], lr=0.05)
    mask = torch.ones(B, T, dtype=torch.bool)
    anchor = None
    history = []
    for _ in range(steps):
        batch_logits = logits.expand(B, T, V)
        dist = torch.distributions.Categorical(logits=batch_logits)
        tokens = dist.sample()
        reward = (tokens == target).float().mean(-1)
        advantage = reward - reward.mean()
        pg_loss = -(advantage[:, None] * dist.log_prob(tokens)).mean()
        siren = selective_entropy_regularizer(batch_logits, mask, anchor=anchor,
                                              coef=coef if coef is not None else 0.0)
        anchor = siren.anchor
        loss = pg_loss + siren.loss if coef is not None else pg_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(siren.entropy.detach()))
    with torch.no_grad():
        p = torch.softmax(logits, -1)
        full_entropy = float(-(p * torch.log_softmax(logits, -1)).sum(-1).mean())
        return {
            "anchor": float(anchor),
            "siren_entropy_final": history[-1],
            "max_abs_drift": max(abs(h - float(anchor)) for h in history),
            "top_p_entropy_mean": float(top_p_entropy(logits, 0.8).mean()),
            "full_entropy_mean": full_entropy,
            "reward_prob": float(p[torch.arange(T), target].mean()),
        }


def main(quick: bool = False) -> dict[str, float]:
    """Run policy gradient with and without SIREN; print the entropies and the reward."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    steps = 30 if quick else 300
    runs = {"no regulariser": None, "SIREN coef=0.005": 0.005, "SIREN coef=1": 1.0,
            "SIREN coef=10": 10.0}
    print(f"tabular policy: {T} positions x {V} tokens, {B} samples per step, REINFORCE with a "
          f"mean baseline, Adam lr 0.05, {steps} steps. H = SIREN's selective entropy (top-p 0.8 "
          "entropy of the top-20% entropy tokens), anchored at step 0")
    print(f"{'run':<18} {'anchor':>7} {'H final':>8} {'max|H-anchor|':>14} {'top-p H':>8} "
          f"{'full H':>7} {'p(target)':>9}")
    out: dict[str, float] = {}
    for name, coef in runs.items():
        r = train(coef, steps, seed=0)
        out.update({f"{name}/{k}": v for k, v in r.items()})
        print(f"{name:<18} {r['anchor']:7.3f} {r['siren_entropy_final']:8.3f} "
              f"{r['max_abs_drift']:14.3f} {r['top_p_entropy_mean']:8.3f} "
              f"{r['full_entropy_mean']:7.3f} {r['reward_prob']:9.3f}")
    return out


if __name__ == "__main__":
    main()
