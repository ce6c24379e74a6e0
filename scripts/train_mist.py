"""Train the CPU-sized MIST network shipped in ``src/divergences/estimate/data/``.

``python scripts/train_mist.py [--steps 3000] [--batch 48] [--seed 0] [--threads 1] [--out PATH]``

Training distribution (each batch: one family, ``d_x, d_y`` uniform in ``1..2``, ``n``
log-uniform in ``[64, 256]``, shared by its sets; then the copula features of
:mod:`divergences.estimate._mist`):

``gauss``    multinormal with ``k`` uniform in ``0..min(d_x, d_y)`` canonical correlations: a
             total MI ``T ~ U(0, 3)`` nats split over the ``k`` pairs by a flat Dirichlet
             (``rho_i = sqrt(1 - exp(-2 I_i))``), then a random rotation of each side (an
             invertible linear map of each side: MI unchanged);
             truth ``divergences.gaussian.mutual_information``.
``student``  the same scale matrix in a multivariate Student-t, ``nu`` log-uniform in
             ``[1, 30]`` (one per batch); truth ``benchmarks.mi.student_t_mi`` (the
             benchmark's closed form).

Held-out families (never in training; evaluated at the end and by the tests):

``uniform_noise``  ``m`` pairs ``X_i ~ U(0, 1)``, ``Y_i = X_i + U(-e_i, e_i)``,
                   ``e_i`` log-uniform in ``[0.05, 0.5]``, plus independent uniform columns,
                   each side rotated; ``I = sum_i e_i - log(2 e_i)`` (the benchmark's
                   ``uniform_noise`` closed form, valid for ``2 e <= 1``).
``spiral``         a ``gauss`` sample whose first two ``x`` columns are rotated by the angle
                   ``s |x|``, ``s ~ U(0.5, 2)`` (norm-preserving, invertible: MI unchanged).

The benchmark's own tasks (``benchmarks.mi.tasks()``) with at most 2 columns per side are
also scored at ``n = 5000`` against KSG (``k = 3``) on the same samples.

Deterministic for a given ``--seed`` and ``--threads`` (NumPy ``default_rng`` for the data,
``torch.manual_seed`` for the initialisation, single-process CPU training). Writes the weights
(``.npz``, float32 state dict plus the config) and a JSON file of the held-out metrics.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # benchmarks/ lives beside src/

from benchmarks.mi import student_t_mi, tasks  # noqa: E402

from divergences import gaussian  # noqa: E402
from divergences.estimate import mutual_information  # noqa: E402
from divergences.estimate._mist import (  # noqa: E402
    MISTNet,
    _load,
    context,
    features,
    mist_mutual_information,
    pinball,
    predict_quantiles,
    save_weights,
)

CONFIG = {"max_dim": 2, "n_min": 64, "n_max": 256,
          "arch": {"max_dim": 2, "hidden": 32, "heads": 4, "inducing": 16, "blocks": 1}}
MAX_MI = 3.0
TRAIN_FAMILIES = ("gauss", "student")
HELD_OUT = ("uniform_noise", "spiral")
DATA = ROOT / "src" / "divergences" / "estimate" / "data"


# --------------------------------------------------------------------------------------------
# Families: draw(rng, b, n, dx, dy) -> (x (b, n, dx), y (b, n, dy), true MI (b,) in nats)
# --------------------------------------------------------------------------------------------


def _rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _block_rotation(rng: np.random.Generator, dx: int, dy: int) -> np.ndarray:
    rot = np.zeros((dx + dy, dx + dy))
    rot[:dx, :dx] = _rotation(rng, dx)
    rot[dx:, dx:] = _rotation(rng, dy)
    return rot


def _canonical_cov(rng: np.random.Generator, b: int, dx: int, dy: int) -> np.ndarray:
    """``b`` joint covariances: random canonical correlations, each side randomly rotated."""
    out = np.empty((b, dx + dy, dx + dy))
    for i in range(b):
        k = int(rng.integers(0, min(dx, dy) + 1))
        cov = np.eye(dx + dy)
        if k:
            parts = rng.dirichlet(np.ones(k)) * rng.uniform(0.0, MAX_MI)
            rho = np.sqrt(-np.expm1(-2.0 * parts)) * rng.choice([-1.0, 1.0], k)
            cov[np.arange(k), dx + np.arange(k)] = rho
            cov[dx + np.arange(k), np.arange(k)] = rho
        rot = _block_rotation(rng, dx, dy)
        out[i] = rot @ cov @ rot.T
    return out


def _correlated(rng: np.random.Generator, b: int, n: int, dx: int, dy: int):
    cov = _canonical_cov(rng, b, dx, dy)
    z = rng.standard_normal((b, n, dx + dy)) @ np.swapaxes(np.linalg.cholesky(cov), 1, 2)
    return z, cov


def _gauss(rng: np.random.Generator, b: int, n: int, dx: int, dy: int):
    z, cov = _correlated(rng, b, n, dx, dy)
    truth = np.asarray(gaussian.mutual_information(cov, dx, validate=False))
    return z[..., :dx], z[..., dx:], truth


def _student(rng: np.random.Generator, b: int, n: int, dx: int, dy: int):
    # one nu per batch; benchmarks.mi.student_t_mi(cov) = gaussian MI of cov + a term in
    # (nu, dx, dy) only, which is student_t_mi of the identity scale matrix
    z, cov = _correlated(rng, b, n, dx, dy)
    nu = float(np.exp(rng.uniform(0.0, math.log(30.0))))
    t = z * np.sqrt(nu / rng.chisquare(nu, size=(b, n, 1)))
    truth = (np.asarray(gaussian.mutual_information(cov, dx, validate=False))
             + student_t_mi(np.eye(dx + dy), dx, nu))
    return t[..., :dx], t[..., dx:], truth


def _uniform_noise(rng: np.random.Generator, b: int, n: int, dx: int, dy: int):
    xs, ys, truth = [], [], np.empty(b)
    for i in range(b):
        m = int(rng.integers(1, min(dx, dy) + 1))
        eps = np.exp(rng.uniform(math.log(0.05), math.log(0.5), m))
        x = rng.uniform(0.0, 1.0, (n, dx))
        y = rng.uniform(0.0, 1.0, (n, dy))
        y[:, :m] = x[:, :m] + rng.uniform(-eps, eps, (n, m))
        truth[i] = np.sum(eps - np.log(2.0 * eps))
        xs.append(x @ _rotation(rng, dx).T)
        ys.append(y @ _rotation(rng, dy).T)
    return np.stack(xs), np.stack(ys), truth


def _spiral(rng: np.random.Generator, b: int, n: int, dx: int, dy: int):
    x, y, truth = _gauss(rng, b, n, max(dx, 2), dy)
    a = rng.uniform(0.5, 2.0, (b, 1)) * np.linalg.norm(x, axis=-1)
    c, s = np.cos(a), np.sin(a)
    x = x.copy()
    x[..., 0], x[..., 1] = c * x[..., 0] - s * x[..., 1], s * x[..., 0] + c * x[..., 1]
    return x, y, truth


FAMILIES = {"gauss": _gauss, "student": _student, "uniform_noise": _uniform_noise,
            "spiral": _spiral}


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def batch(rng: np.random.Generator, size: int, n_taus: int):
    """``size`` sets sharing one family, ``(d_x, d_y)`` and ``n`` (no padding needed)."""
    md, n_min, n_max = CONFIG["max_dim"], CONFIG["n_min"], CONFIG["n_max"]
    n = int(np.exp(rng.uniform(math.log(n_min), math.log(n_max + 1))))
    fam = TRAIN_FAMILIES[int(rng.integers(len(TRAIN_FAMILIES)))]
    dx, dy = (int(v) for v in rng.integers(1, md + 1, 2))
    x, y, target = FAMILIES[fam](rng, size, n, dx, dy)
    rows = features(x, y, md)
    mask = np.ones(rows.shape[:2], dtype=bool)
    ctx = np.tile(context(n, dx, dy, CONFIG), (size, 1))
    tau = rng.uniform(0.01, 0.99, (size, n_taus)).astype(np.float32)
    return (torch.from_numpy(rows), torch.from_numpy(mask), torch.from_numpy(ctx),
            torch.from_numpy(tau), torch.from_numpy(target.astype(np.float32)))


def train(args: argparse.Namespace) -> MISTNet:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = MISTNet(**CONFIG["arch"])
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps,
                                                pct_start=0.05)
    t0 = time.perf_counter()
    running = 0.0
    for step in range(1, args.steps + 1):
        if time.perf_counter() - t0 > 60.0 * args.max_minutes:
            print(f"stopped at step {step - 1}: --max-minutes {args.max_minutes} reached "
                  "(the result then depends on the machine's speed)", flush=True)
            args.stopped_at = step - 1
            break
        rows, mask, ctx, tau, target = batch(rng, args.batch, args.taus)
        loss = pinball(model(rows, mask, ctx, tau), target, tau)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        value = float(loss.detach())
        running = 0.98 * running + 0.02 * value if step > 1 else value
        if step % 50 == 0 or step == args.steps:
            print(f"step {step:5d}  pinball {running:.4f}  {time.perf_counter() - t0:6.0f} s",
                  flush=True)
    model.eval()
    return model


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _ksg(x: np.ndarray, y: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(mutual_information(x, y, method="ksg", k=3))


def evaluate_family(name: str, weights: str, sets: int, n: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    err, kerr, cover, width = [], [], [], []
    for _ in range(sets):
        dx, dy = (int(v) for v in rng.integers(1, CONFIG["max_dim"] + 1, 2))
        xb, yb, tb = FAMILIES[name](rng, 1, n, dx, dy)
        x, y, truth = xb[0], yb[0], float(tb[0])
        q, _, _ = predict_quantiles(x, y, (0.025, 0.5, 0.975), weights=weights)
        err.append(q[1] - truth)
        kerr.append(_ksg(x, y) - truth)
        cover.append(q[0] <= truth <= q[2])
        width.append(q[2] - q[0])
    return {"sets": sets, "n": n, "mist_mae": float(np.mean(np.abs(err))),
            "mist_bias": float(np.mean(err)), "ksg_mae": float(np.mean(np.abs(kerr))),
            "ksg_bias": float(np.mean(kerr)), "coverage_95": float(np.mean(cover)),
            "mean_width": float(np.mean(width))}


def evaluate_benchmark(weights: str, n: int, seeds: int) -> dict[str, dict[str, float]]:
    out = {}
    for task in tasks():
        if task.kind != "continuous":
            continue
        x0, y0 = task.draw(np.random.default_rng(0), 8)
        if max(np.atleast_2d(x0.T).shape[0], np.atleast_2d(y0.T).shape[0]) > CONFIG["max_dim"]:
            continue
        err, kerr, cover = [], [], []
        for s in range(seeds):
            x, y = task.draw(np.random.default_rng(1000 + s), n)
            e = mist_mutual_information(x, y, weights=weights, seed=s)
            err.append(e.value - task.truth)
            kerr.append(_ksg(x, y) - task.truth)
            cover.append(e.ci_low <= task.truth <= e.ci_high)
        out[task.name] = {"truth": task.truth, "mist_mae": float(np.mean(np.abs(err))),
                          "ksg_mae": float(np.mean(np.abs(kerr))),
                          "coverage_95": float(np.mean(cover)),
                          "held_out": task.name in HELD_OUT}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=48)
    p.add_argument("--taus", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-minutes", type=float, default=16.0,
                   help="safety stop for the training loop (deterministic only if not hit)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-sets", type=int, default=100)
    p.add_argument("--out", type=Path, default=DATA / "mist_weights.npz")
    p.add_argument("--metrics", type=Path, default=DATA / "mist_training.json")
    p.add_argument("--eval-only", action="store_true", help="score the weights at --out")
    args = p.parse_args()
    args.stopped_at = None
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if not args.eval_only:
        model = train(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        save_weights(args.out, model, CONFIG)
        print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    _load(args.out)  # round-trip check
    train_s = time.perf_counter() - t0
    weights = str(args.out)
    metrics: dict[str, object] = {"steps": args.steps, "batch": args.batch, "seed": args.seed,
                                  "threads": args.threads, "train_seconds": round(train_s),
                                  "stopped_at": args.stopped_at,
                                  "families": {}}
    for i, fam in enumerate(TRAIN_FAMILIES + HELD_OUT):
        for n in (64, 256):
            r = evaluate_family(fam, weights, args.eval_sets, n, 10_000 + 10 * i + n)
            r["held_out"] = fam in HELD_OUT
            metrics["families"][f"{fam}/n={n}"] = r  # type: ignore[index]
            print(f"{fam:14s} n={n:4d} held_out={fam in HELD_OUT!s:5s} "
                  f"MIST MAE {r['mist_mae']:.3f} (bias {r['mist_bias']:+.3f})  "
                  f"KSG MAE {r['ksg_mae']:.3f} (bias {r['ksg_bias']:+.3f})  "
                  f"coverage {r['coverage_95']:.2f}  width {r['mean_width']:.2f}", flush=True)
    bench = evaluate_benchmark(weights, 5000, 5)
    metrics["benchmark_n5000"] = bench
    for name, r in bench.items():
        print(f"benchmark {name:14s} I={r['truth']:.3f} MIST MAE {r['mist_mae']:.3f}  "
              f"KSG MAE {r['ksg_mae']:.3f}  coverage {r['coverage_95']:.2f}"
              f"{'  (held out)' if r['held_out'] else ''}")
    args.metrics.write_text(json.dumps(metrics, indent=1) + "\n")
    print(f"wrote {args.metrics}; total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
