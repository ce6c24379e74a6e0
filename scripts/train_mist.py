"""Train the MIST network shipped in ``src/divergences/estimate/data/`` (CPU, resumable).

Start (the run the script is sized for: about 2.5 h on 2 CPU cores)::

    nice -n 10 python scripts/train_mist.py --steps 12000 --threads 2 \\
        --checkpoint runs/mist.pt --max-minutes 150

Resume after an interruption or a ``--max-minutes`` stop (same command plus ``--resume``;
architecture, seed and data settings are read back from the checkpoint)::

    nice -n 10 python scripts/train_mist.py --steps 12000 --threads 2 \\
        --checkpoint runs/mist.pt --max-minutes 150 --resume

Give the same ``--steps`` when resuming: the learning-rate schedule is a function of the step
and of ``--steps``.

Each step draws fresh sets from the training families of
:mod:`divergences.estimate._mist_tasks` (one family, ``n`` and ``(d_x, d_y)`` per step: ``n``
log-uniform in ``[n_min, n_max]``, ``d_x, d_y`` uniform in ``1..max_dim``; as many sets as fit
in ``--tokens`` score entries, at least one) and takes one AdamW step on the pinball loss at
``--taus`` random levels per set. Learning rate: linear warm-up over 200 steps, then cosine
decay to 5% at ``--steps``.

Every ``--every`` steps it writes a checkpoint (model, optimiser, step, both random generators'
states, elapsed time; atomically) and prints a progress line with the held-out MAE against
KSG's on a fixed small suite (held-out families, ``n = 100`` and ``300``). A resumed run is
identical to an uninterrupted one for a given ``--threads`` (the data generator's state is in
the checkpoint). At ``--steps`` it fits the interval scales (``--calib-sets`` fresh samples
of the training families, split-conformal: each tail of the 95% interval misses 2.5% there),
writes the weights (``--out``, float32 ``.npz`` with its config and scales) and the record
(``--record``, JSON: data, steps, time, hardware, calibration, and the held-out evaluation of
``benchmarks.mi.run_mist`` at ``n = 100, 300, 1000``). ``--export`` writes
weights and record from the checkpoint as it stands (e.g. a run stopped early).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # benchmarks/ lives beside src/

from divergences.estimate import _mist_tasks as tasks  # noqa: E402
from divergences.estimate import mutual_information  # noqa: E402
from divergences.estimate._mist import (  # noqa: E402
    MISTNet,
    fit_scales,
    make_inputs,
    pinball,
    prepare,
    save_weights,
)

DATA = ROOT / "src" / "divergences" / "estimate" / "data"
WARMUP = 200
ARCH_KEYS = ("hidden", "heads", "inducing", "blocks")
DATA_KEYS = ("seed", "n_min", "n_max", "max_dim", "tokens", "taus", "lr")


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def batch(rng: np.random.Generator, cfg: dict[str, Any]) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """One step's sets: one training family, one ``n`` and ``(d_x, d_y)``, no padding."""
    fam = tasks.TRAIN[int(rng.integers(len(tasks.TRAIN)))]
    n = int(np.exp(rng.uniform(math.log(cfg["n_min"]), math.log(cfg["n_max"] + 1))))
    dx, dy = tasks.draw_dims(rng, fam, cfg["max_dim"])
    b = max(1, cfg["tokens"] // (n * (dx + dy)))
    x, y, truth = tasks.draw(rng, fam, b, n, dx, dy)
    scores, ctx = prepare(x, y, cfg["n_max"])
    tau = torch.from_numpy(rng.uniform(0.01, 0.99, (b, cfg["taus"])).astype(np.float32))
    return make_inputs(scores, ctx, dx), tau, torch.from_numpy(truth.astype(np.float32))


def lr_at(step: int, cfg: dict[str, Any], steps: int) -> float:
    if step < WARMUP:
        return cfg["lr"] * (step + 1) / WARMUP
    frac = min(1.0, (step - WARMUP) / max(1, steps - WARMUP))
    return cfg["lr"] * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * frac)))


# --------------------------------------------------------------------------------------------
# Quick held-out check during training
# --------------------------------------------------------------------------------------------


def _ksg(x: np.ndarray, y: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(mutual_information(x, y, method="ksg", k=3, ci="normal").value)


def quick_suite(sets: int) -> list[tuple[np.ndarray, np.ndarray, float, float]]:
    """Fixed held-out sets ``(x, y, truth, KSG)`` at ``n = 100, 300`` (KSG computed once)."""
    out = []
    for n in (100, 300):
        for _, x, y, t in tasks.held_out_suite(n, sets, seed=99):
            out.append((x, y, t, _ksg(x, y)))
    return out


def quick_eval(model: MISTNet, suite: list, n_max: int) -> tuple[float, float]:
    """MIST median MAE and KSG MAE on ``suite``."""
    model.eval()
    err, kerr = [], []
    with torch.no_grad():
        for x, y, t, k in suite:
            s, c = prepare(x[None], y[None], n_max)
            q = model(make_inputs(s, c, x.shape[1]), torch.tensor([[0.5]]))
            err.append(abs(float(q) - t))
            kerr.append(abs(k - t))
    model.train()
    return float(np.mean(err)), float(np.mean(kerr))


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def save_checkpoint(path: Path, model: MISTNet, opt: torch.optim.Optimizer, step: int,
                    steps_planned: int, rng: np.random.Generator, elapsed: float,
                    cfg: dict[str, Any], history: list[dict[str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                "steps_planned": steps_planned,
                "np_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "elapsed": elapsed, "cfg": cfg, "history": history}, tmp)
    os.replace(tmp, path)  # atomic: an interrupted save leaves the previous checkpoint


def config_of(cfg: dict[str, Any]) -> dict[str, Any]:
    """The weights' config: architecture and trained range."""
    return {"arch": {k: cfg[k] for k in ARCH_KEYS}, "max_dim": cfg["max_dim"],
            "n_min": cfg["n_min"], "n_max": cfg["n_max"]}


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _clock(s: float) -> str:
    s = int(s)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


def train(args: argparse.Namespace) -> tuple[MISTNet, dict[str, Any], int, float, list]:
    """Run (or resume) training up to ``args.steps``; returns model, cfg, step, seconds, log."""
    cfg = {k: getattr(args, k) for k in (*ARCH_KEYS, *DATA_KEYS)}
    ckpt = None
    if args.resume:
        if args.checkpoint is None or not args.checkpoint.exists():
            raise SystemExit(f"--resume: no checkpoint at {args.checkpoint}")
        ckpt = torch.load(args.checkpoint, weights_only=False)
        cfg = ckpt["cfg"]  # architecture, seed and data settings of the run being resumed
    torch.manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    model = MISTNet(**{k: cfg[k] for k in ARCH_KEYS})
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=1e-4)
    step, elapsed, history = 0, 0.0, []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        rng.bit_generator.state = ckpt["np_rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        step, elapsed, history = ckpt["step"], ckpt["elapsed"], ckpt["history"]
        print(f"resumed {args.checkpoint} at step {step} ({_clock(elapsed)} trained)",
              flush=True)
    suite = quick_suite(args.eval_sets) if args.eval_sets else []
    model.train()
    t0 = time.perf_counter() - elapsed
    start = time.perf_counter()
    running = history[-1]["loss"] if history else math.nan
    while step < args.steps:
        if args.max_minutes and time.perf_counter() - start > 60.0 * args.max_minutes:
            print(f"stopped at step {step}: --max-minutes {args.max_minutes} reached; "
                  "continue with --resume", flush=True)
            break
        inp, tau, target = batch(rng, cfg)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg, args.steps)
        loss = pinball(model(inp, tau), target, tau)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        v = float(loss.detach())
        running = v if math.isnan(running) else 0.98 * running + 0.02 * v
        done = step == args.steps
        if args.checkpoint is not None and (step % args.every == 0 or done):
            line = {"step": step, "loss": running, "elapsed": time.perf_counter() - t0}
            if suite:
                line["mist_mae"], line["ksg_mae"] = quick_eval(model, suite, cfg["n_max"])
            history.append(line)
            save_checkpoint(args.checkpoint, model, opt, step, args.steps, rng,
                            time.perf_counter() - t0, cfg, history)
            rate = (time.perf_counter() - start) / max(1, step - (ckpt or {}).get("step", 0))
            held = (f"  held-out MAE {line['mist_mae']:.3f} vs KSG {line['ksg_mae']:.3f} "
                    f"(ratio {line['mist_mae'] / line['ksg_mae']:.2f})" if suite else "")
            print(f"step {step:6d}/{args.steps}  pinball {running:.4f}{held}  "
                  f"lr {lr_at(step, cfg, args.steps):.2e}  elapsed {_clock(line['elapsed'])}  "
                  f"eta {_clock(rate * (args.steps - step))}", flush=True)
        elif step % args.log_every == 0:
            print(f"step {step:6d}/{args.steps}  pinball {running:.4f}  "
                  f"elapsed {_clock(time.perf_counter() - t0)}", flush=True)
    model.eval()
    return model, cfg, step, time.perf_counter() - t0, history


# --------------------------------------------------------------------------------------------
# Interval calibration
# --------------------------------------------------------------------------------------------

CALIB_TAUS = (0.025, 0.5, 0.975)


def calibrate(model: MISTNet, cfg: dict[str, Any], sets: int) -> dict[str, Any]:
    """Fit the interval scales (:func:`divergences.estimate._mist.fit_scales`) on ``sets``
    fresh samples of the training families (their own seed, apart from the training stream;
    ``n`` log-uniform over the trained range, dimensions as in training), and report the 95%
    coverage there before and after."""
    rng = np.random.default_rng([cfg["seed"], 7919])
    qs, truth, ns = [], [], []
    tau = torch.tensor([CALIB_TAUS], dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        for i in range(sets):
            fam = tasks.TRAIN[i % len(tasks.TRAIN)]
            n = int(np.exp(rng.uniform(math.log(cfg["n_min"]), math.log(cfg["n_max"] + 1))))
            dx, dy = tasks.draw_dims(rng, fam, cfg["max_dim"])
            x, y, t = tasks.draw(rng, fam, 1, n, dx, dy)
            s, c = prepare(x, y, cfg["n_max"])
            qs.append(model(make_inputs(s, c, dx), tau)[0].double().numpy())
            truth.append(float(t[0]))
            ns.append(n)
    q, t = np.stack(qs), np.asarray(truth)
    scales = fit_scales(q, t)
    mid = q[:, 1]
    lo = mid - scales["low"] * (mid - q[:, 0])
    hi = mid + scales["high"] * (q[:, 2] - mid)
    return {"interval_scale": scales, "sets": sets, "families": list(tasks.TRAIN),
            "coverage_before": float(np.mean((q[:, 0] <= t) & (t <= q[:, 2]))),
            "coverage_after": float(np.mean((lo <= t) & (t <= hi))),
            "median_abs_error": float(np.median(np.abs(mid - t)))}


# --------------------------------------------------------------------------------------------
# Record
# --------------------------------------------------------------------------------------------


def hardware(threads: int) -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "device": "cpu",
            "torch": torch.__version__, "python": platform.python_version(),
            "load_average_at_end": load}


def export(args: argparse.Namespace, model: MISTNet, cfg: dict[str, Any], step: int,
           planned: int, seconds: float, history: list) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    weights_config = config_of(cfg)
    calib = None
    if args.calib_sets:
        calib = calibrate(model, cfg, args.calib_sets)
        weights_config["interval_scale"] = calib["interval_scale"]
        print(f"interval scales {calib['interval_scale']}: 95% coverage on "
              f"{args.calib_sets} training-family samples {calib['coverage_before']:.3f} -> "
              f"{calib['coverage_after']:.3f}", flush=True)
    save_weights(args.out, model, weights_config)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)", flush=True)
    record: dict[str, Any] = {
        "placeholder": step < planned or args.placeholder,
        "steps": step, "steps_planned": planned, "train_seconds": round(seconds),
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": cfg, "hardware": hardware(args.threads),
        "data": {"train_families": list(tasks.TRAIN), "held_out_families": list(tasks.HELD_OUT),
                 "n": [cfg["n_min"], cfg["n_max"]], "n_law": "log-uniform",
                 "dims_per_side": [1, cfg["max_dim"]], "latent_mi_max": tasks.MAX_MI,
                 "sets_per_step": f"max(1, {cfg['tokens']} // (n (d_x + d_y)))",
                 "taus_per_set": cfg["taus"], "generator": "divergences.estimate._mist_tasks"},
        "calibration": calib,
        "history": history,
    }
    if args.final_sets:
        from benchmarks.mi import run_mist

        record["held_out"] = run_mist((100, 300, 1000), args.final_sets, weights=str(args.out),
                                      n_boot=args.n_boot, log=print)
    args.record.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.record}", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=12000)
    p.add_argument("--tokens", type=int, default=8192,
                   help="score entries per step (sets * n * (d_x + d_y)); at least one set")
    p.add_argument("--taus", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--inducing", type=int, default=16)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--n-min", type=int, default=50)
    p.add_argument("--n-max", type=int, default=5000)
    p.add_argument("--max-dim", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--every", type=int, default=100, help="checkpoint + held-out check period")
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop (checkpoint kept) after this long; 0 = no limit")
    p.add_argument("--eval-sets", type=int, default=4,
                   help="sets per held-out family and n in the periodic check (0: none)")
    p.add_argument("--final-sets", type=int, default=30,
                   help="sets per held-out family and n in the final evaluation (0: none)")
    p.add_argument("--n-boot", type=int, default=30, help="KSG bootstrap in the final evaluation")
    p.add_argument("--calib-sets", type=int, default=600,
                   help="training-family samples that fit the interval scales (0: none)")
    p.add_argument("--out", type=Path, default=DATA / "mist_weights.npz")
    p.add_argument("--record", type=Path, default=DATA / "mist_training.json")
    p.add_argument("--export", action="store_true",
                   help="write weights and record from --checkpoint without training")
    p.add_argument("--placeholder", action="store_true",
                   help="mark the record as a placeholder even if --steps was reached")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.export:
        if args.checkpoint is None or not args.checkpoint.exists():
            raise SystemExit(f"--export: no checkpoint at {args.checkpoint}")
        ck = torch.load(args.checkpoint, weights_only=False)
        model = MISTNet(**{k: ck["cfg"][k] for k in ARCH_KEYS})
        model.load_state_dict(ck["model"])
        model.eval()
        export(args, model, ck["cfg"], ck["step"], ck.get("steps_planned", args.steps),
               ck["elapsed"], ck["history"])
        return
    model, cfg, step, seconds, history = train(args)
    if step == args.steps:
        export(args, model, cfg, step, args.steps, seconds, history)


if __name__ == "__main__":
    main()
