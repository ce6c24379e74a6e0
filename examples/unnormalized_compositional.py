"""Compositional NLL vs NCE: steps to estimate the mean of a 1-D Gaussian.

The unnormalised model is ``f(x) = -(x - mu)^2 / 2`` fitted to 2000 draws of N(2, 1) from
``mu = 0`` by SGD (lr 0.5, batches of 128 data points and 128 fresh noise draws from ``q``):

* :func:`divergences.losses.compositional_nll` (Jiang et al.): ``-mean f(x) + log E_q[e^f/q]``
  with the inner expectation tracked by a moving average (momentum 0.1);
* :func:`divergences.losses.nce_loss` (Gutmann & Hyvärinen), with a learned log-normaliser
  ``c`` (``f + c``), the same noise.

The noise ``q`` is placed on the data, wide around 0, shifted to 0 (2 sd from the data) and far
at -2 (4 sd from the data): the paper's claim is that with noise far from the data the
compositional objective converges in fewer steps than NCE. "steps" is the median (3 seeds) of
the first step with ``|mu - mean(data)| < 0.1``; "rms" is the RMS error of ``mu`` over the last
100 of 300 steps (all seeds).

Measured (``python examples/unnormalized_compositional.py``; a loaded 2-core box, about 20 s)::

    noise q          comp steps  NCE steps  comp rms  NCE rms
    on data N(2,1)            5         17     0.066    0.040
    wide N(0,3)               5         13     0.081    0.046
    shifted N(0,1)            6         45     0.498    0.041
    far N(-2,1)               3         60     1.699    0.131

What this shows, honestly: the compositional objective *reaches* the neighbourhood of the
sample mean in fewer steps than NCE for every placement, and the gap grows as the noise moves
away from the data (3 vs 60 steps at 4 sd), as the paper says. But with this SGD step its
iterate does not *stay* there when the noise is far: its stochastic gradient is a
self-normalised importance-sampling estimate whose weights ``e^f/q`` become heavy-tailed, and
the RMS error after convergence is 0.50 (shifted) and 1.70 (far) against NCE's 0.04 and 0.13.
NCE is slower to arrive but steadier. (An earlier probe with Adam lr 0.05 gave the same
picture: compositional 49-56 steps vs NCE 102-121 at N(0,1); at N(-2,1) NCE never got within
0.1 in 400 steps while the compositional iterate passed through and wandered to mu ~ 3.1-3.7.
With noise at N(6,1), beyond the data on the other side, neither settled: final mu 0.6-1.8.) Use noise that covers the
data, or decay the step, when the compositional estimate must settle.
"""

from __future__ import annotations

import math

import torch

from divergences.losses import compositional_nll, nce_loss

MU_TRUE = 2.0


def _log_normal(x: torch.Tensor, mean: float, sd: float) -> torch.Tensor:
    return -0.5 * ((x - mean) / sd) ** 2 - math.log(sd * math.sqrt(2 * math.pi))


def run(method: str, noise_mean: float, noise_sd: float, data: torch.Tensor, steps: int,
        seed: int, lr: float = 0.5, batch: int = 128, tol: float = 0.1) -> tuple[int, float]:
    """SGD on ``method`` from ``mu = 0``. Returns the first step with ``|mu - mean(data)| < tol``
    (``steps + 1`` if never) and the RMS of ``mu - mean(data)`` over the last third of the run."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.zeros((), requires_grad=True)
    c = torch.zeros((), requires_grad=True)  # NCE's learned log-normaliser
    opt = torch.optim.SGD([mu, c] if method == "nce" else [mu], lr=lr)
    target = float(data.mean())
    log_inner = None
    first, errs = steps + 1, []
    for step in range(steps):
        x = data[torch.randint(len(data), (batch,), generator=g)]
        y = noise_mean + noise_sd * torch.randn(batch, generator=g)
        log_qy = _log_normal(y, noise_mean, noise_sd)
        fx, fy = -0.5 * (x - mu) ** 2, -0.5 * (y - mu) ** 2
        opt.zero_grad()
        if method == "nce":
            loss = nce_loss(fx + c, fy + c, _log_normal(x, noise_mean, noise_sd), log_qy)
        else:
            out = compositional_nll(fx, fy, log_qy, log_inner=log_inner, momentum=0.1)
            log_inner, loss = out.log_inner, out.loss
        loss.backward()
        opt.step()
        err = mu.item() - target
        if first > steps and abs(err) < tol:
            first = step + 1
        if step >= steps - steps // 3:
            errs.append(err * err)
    return first, math.sqrt(sum(errs) / len(errs))


def main(quick: bool = False) -> dict[str, float]:
    """Print steps-to-tolerance and final error per noise placement; return them as a dict."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    data = MU_TRUE + torch.randn(2000, generator=torch.Generator().manual_seed(0))
    steps = 60 if quick else 300
    seeds = range(1) if quick else range(3)
    placements = {  # name: (noise mean, noise sd)
        "on data N(2,1)": (2.0, 1.0),
        "wide N(0,3)": (0.0, 3.0),
        "shifted N(0,1)": (0.0, 1.0),
        "far N(-2,1)": (-2.0, 1.0),
    }
    if quick:
        placements = dict(list(placements.items())[:1])
    out: dict[str, float] = {}
    print(f"data: 2000 draws of N({MU_TRUE}, 1), sample mean {float(data.mean()):.4f}; SGD lr 0.5 "
          f"from mu = 0, batches of 128 data + 128 fresh noise draws, {steps} steps, "
          f"{len(seeds)} seed(s)")
    print("steps = median first step with |mu - mean| < 0.1; rms = RMS error over the last third")
    print(f"{'noise q':<16} {'comp steps':>10} {'NCE steps':>10} {'comp rms':>9} {'NCE rms':>8}")
    for name, (m, s) in placements.items():
        res = {}
        for method in ("compositional", "nce"):
            runs = [run(method, m, s, data, steps, seed) for seed in seeds]
            hits = sorted(r[0] for r in runs)
            res[f"{method}_steps"] = float(hits[len(hits) // 2])
            res[f"{method}_rms"] = math.sqrt(sum(r[1] ** 2 for r in runs) / len(runs))
        out.update({f"{name}/{k}": v for k, v in res.items()})
        print(f"{name:<16} {res['compositional_steps']:10.0f} {res['nce_steps']:10.0f} "
              f"{res['compositional_rms']:9.3f} {res['nce_rms']:8.3f}")
    return out


if __name__ == "__main__":
    main()
