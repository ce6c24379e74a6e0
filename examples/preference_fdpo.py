"""f-DPO on a toy preference task: does forward KL / JS keep more output diversity than
reverse KL (standard DPO)?

One prompt with 12 outputs; the reference policy is uniform; the reward is linspace(0, 3); 2000
preference pairs are drawn from the reference and labelled by Bradley-Terry on the reward. A
categorical policy (12 logits, started at the reference) is trained by full-batch Adam
(lr 0.05) on :func:`divergences.losses.f_dpo_loss` with beta = 0.1 and ``divergence`` =
``"reverse_kl"`` (DPO), ``"js"`` or ``"forward_kl"``; diversity is the policy's entropy (nats;
the reference has ln 12 = 2.485).

Measured (``python examples/preference_fdpo.py``, mean over 2 dataset seeds; a loaded 2-core
box, 30-36 s)::

    steps divergence   entropy  reward  top-1 p  KL(pi||ref)
      200 reverse_kl     1.116   2.793    0.450        1.369
      200 js             1.399   2.676    0.340        1.086
      200 forward_kl     1.325   2.721    0.428        1.160
      600 reverse_kl     0.622   2.924    0.730        1.863
      600 js             0.545   2.808    0.702        1.940
      600 forward_kl     0.981   2.826    0.620        1.504
     1500 reverse_kl     0.552   2.939    0.782        1.933
     1500 js             0.357   2.961    0.859        2.128
     1500 forward_kl     0.591   2.899    0.877        1.894

What this shows: early in training (200 steps) both forward KL and JS keep clearly more entropy
than reverse KL (1.33 and 1.40 vs 1.12 nats) at a slightly lower expected reward, the
diversity/reward trade-off of Wang et al.; at 600 steps forward KL still does (0.98 vs 0.62)
but JS has dropped below reverse KL; by 1500 steps the ordering is gone (forward 0.59, reverse
0.55, JS 0.36). So in this tabular setting the effect is a property of the training path, not of
the converged policy: forward KL's ``f'(u) = -1/u`` bounds the push on the chosen outputs and
slows the collapse, but the offline fixed-dataset optimum of every divergence is nearly
deterministic at beta = 0.1. (At beta = 1, 1500 steps, one seed: reverse KL 2.080 nats, forward
KL 2.048, JS 1.367: no diversity advantage either.)
"""

from __future__ import annotations

import math

import torch

from divergences.losses import f_dpo_loss

K = 12  # outputs of the single prompt
BETA = 0.1


def _dataset(n_pairs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs drawn from the uniform reference, labelled by Bradley-Terry on a linear reward."""
    g = torch.Generator().manual_seed(seed)
    reward = torch.linspace(0.0, 3.0, K)
    a = torch.randint(K, (n_pairs,), generator=g)
    b = torch.randint(K, (n_pairs,), generator=g)
    keep = a != b
    a, b = a[keep], b[keep]
    a_wins = torch.rand(len(a), generator=g) < torch.sigmoid(reward[a] - reward[b])
    chosen, rejected = torch.where(a_wins, a, b), torch.where(a_wins, b, a)
    return chosen, rejected, reward


def _stats(logits: torch.Tensor, reward: torch.Tensor) -> dict[str, float]:
    ref_logp = torch.full((K,), -math.log(K))
    logp = torch.log_softmax(logits.detach(), -1)
    p = logp.exp()
    return {
        "entropy": float(-(p * logp).sum()),
        "reward": float((p * reward).sum()),
        "top1_prob": float(p.max()),
        "kl_to_ref": float((p * (logp - ref_logp)).sum()),
    }


def train(divergence: str, checkpoints: tuple[int, ...], seed: int) -> list[dict[str, float]]:
    """Full-batch Adam on ``f_dpo_loss`` for a categorical policy over ``K`` outputs; the
    policy's statistics after each number of steps in ``checkpoints``."""
    chosen, rejected, reward = _dataset(2000, seed)
    ref_logp = torch.full((K,), -math.log(K))
    logits = torch.zeros(K, requires_grad=True)  # starts at the reference
    opt = torch.optim.Adam([logits], lr=0.05)
    stats = []
    for step in range(1, max(checkpoints) + 1):
        logp = torch.log_softmax(logits, -1)
        loss = f_dpo_loss(logp[chosen], logp[rejected], ref_logp[chosen], ref_logp[rejected],
                          divergence=divergence, beta=BETA)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in checkpoints:
            stats.append(_stats(logits, reward))
    return stats


def main(quick: bool = False) -> dict[str, float]:
    """Train one policy per divergence and print entropy / reward; return the numbers."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    checkpoints = (20, 50) if quick else (200, 600, 1500)
    seeds = range(1) if quick else range(2)
    print(f"{K} outputs, uniform reference (entropy ln {K} = {math.log(K):.3f}), reward "
          f"linspace(0, 3); 2000 Bradley-Terry pairs; beta = {BETA}; full-batch Adam lr 0.05; "
          f"mean over {len(seeds)} dataset seed(s)")
    print(f"{'steps':>5} {'divergence':<11} {'entropy':>8} {'reward':>7} {'top-1 p':>8} "
          f"{'KL(pi||ref)':>12}")
    runs = {div: [train(div, checkpoints, seed) for seed in seeds]
            for div in ("reverse_kl", "js", "forward_kl")}
    out: dict[str, float] = {}
    for i, steps in enumerate(checkpoints):
        for div, per_seed in runs.items():
            r = {k: sum(x[i][k] for x in per_seed) / len(per_seed) for k in per_seed[0][i]}
            out.update({f"{div}_{k}@{steps}": v for k, v in r.items()})
            print(f"{steps:5d} {div:<11} {r['entropy']:8.3f} {r['reward']:7.3f} "
                  f"{r['top1_prob']:8.3f} {r['kl_to_ref']:12.3f}")
    return out


if __name__ == "__main__":
    main()
