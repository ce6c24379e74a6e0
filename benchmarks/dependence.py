"""Benchmark ``dependence``: distance correlation of univariate samples against dcor.

Run from the repository root::

    python -m benchmarks.dependence            # n = 100,000 and 1,000,000; appends to
                                               # benchmarks/RESULTS.md
    python -m benchmarks.dependence --quick    # tiny sizes: checks the machinery; not recorded

Data: ``x ~ N(0, 1)``, ``y = x + N(0, 1)`` (NumPy ``default_rng(seed)``), float64, ``n`` pairs.
Sides: ours ``divergences.dependence.distance_correlation(x, y)`` (the O(n log n) algorithm
of ``divergences._dcov_fast``) and ``dcor.distance_correlation(x, y)`` (its fast path for
univariate float arrays), both V-statistics. They run interleaved, ``--rounds`` rounds
(alternating which goes first), after one untimed warm-up call each; the table gives the
median and minimum wall time, the absolute difference of the values and the time ratio.
Targets: the same value to 1e-7, ours within 2x of dcor's time. Peak memory of each side is
measured in a fresh subprocess (``benchmarks._runner.measure_peak``) unless ``--no-memory``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._runner import ROOT, Case, Impl, machine_info, machine_line, measure_peak, set_threads

NAME = "dependence"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
FULL = {"sizes": [100_000, 1_000_000], "rounds": 5}
QUICK = {"sizes": [1_000, 10_000], "rounds": 2}


def pairs(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return {"x": x, "y": x + rng.normal(size=n)}


def ours(inp: dict[str, np.ndarray]) -> float:
    from divergences.dependence import distance_correlation

    return float(distance_correlation(inp["x"], inp["y"]))


def dcor_(inp: dict[str, np.ndarray]) -> float:
    import dcor

    return float(dcor.distance_correlation(inp["x"], inp["y"]))


IMPLS = {"ours": ours, "dcor": dcor_}


def make_cases(config: dict[str, Any]) -> list[Case]:
    """One case per size, in the runner's protocol (its memory child imports this module)."""
    def wrap(fn):
        return lambda inp: {"value": np.array([fn(inp)])}

    return [Case(f"dcor/{n}", (lambda n=n: pairs(n)),
                 tuple(Impl(k, wrap(f), ours=k == "ours") for k, f in IMPLS.items()),
                 warmup_setup=lambda: pairs(100))
            for n in config["sizes"]]


def memory_child(size: int, impl: str) -> dict[str, Any]:
    case = next(c for c in make_cases({"sizes": [size]}))
    return measure_peak(case, case.impl(impl))


def peak_mib(size: int, impl: str, threads: int) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(ROOT)] + [p for p in sys.path if p]))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.dependence", "--child",
                           json.dumps([size, impl]), "--threads", str(threads)],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    out = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not out:
        return f"failed ({proc.stderr.strip().splitlines()[-1:]})"
    res = json.loads(out[-1])
    return ("<= " if res["lower_bound"] else "") + f"{res['peak_bytes'] / 2**20:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dependence",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes; not recorded")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--results", type=Path, help=f"results file (default {RESULTS.name})")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--note", help="a line written under the heading")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    if args.child:
        size, impl = json.loads(args.child)
        print(json.dumps(memory_child(size, impl)), flush=True)
        return 0
    cfg = dict(QUICK if args.quick else FULL)
    if args.rounds is not None:
        cfg["rounds"] = args.rounds
    if args.sizes:
        cfg["sizes"] = args.sizes
    machine = machine_info()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    lines = [f"## {started} · benchmarks.dependence" + (" · quick" if args.quick else ""), ""]
    if args.note:
        lines += [f"*{args.note}*", ""]
    lines += [
        f"- Machine: {machine_line(machine)}",
        f"- distance correlation (V-statistic) of n univariate pairs, x ~ N(0,1), "
        f"y = x + N(0,1), float64; {cfg['rounds']} interleaved rounds after one warm-up call "
        "each; memory: peak RSS above the inputs in a fresh subprocess.", "",
        "| n | implementation | median s | min s | value | abs. diff vs ours "
        "| ours/this time | peak MiB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for n in cfg["sizes"]:
        inp = pairs(n)
        values = {k: f(inp) for k, f in IMPLS.items()}  # warm-up (dcor compiles with numba)
        times: dict[str, list[float]] = {k: [] for k in IMPLS}
        for r in range(cfg["rounds"]):
            order = list(IMPLS.items())
            for k, f in (order if r % 2 == 0 else order[::-1]):
                t0 = time.perf_counter()
                values[k] = f(inp)
                times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        for k in IMPLS:
            mem = "n/a" if args.no_memory else peak_mib(n, k, args.threads)
            ratio = "-" if k == "ours" else f"{med['ours'] / med[k]:.2f}x"
            diff = abs(values[k] - values["ours"])
            label = "**ours**" if k == "ours" else k
            lines.append(f"| {n:,} | {label} | {med[k]:.3f} | {min(times[k]):.3f} | "
                         f"{values[k]:.15f} | {diff:.1e} | {ratio} | {mem} |")
            print(lines[-1], flush=True)
        diff = abs(values["dcor"] - values["ours"])
        ratio = med["ours"] / med["dcor"]
        verdicts.append(f"- n = {n:,}: |ours - dcor| = {diff:.1e}, ours/dcor time {ratio:.2f}x: "
                        + ("met" if diff <= 1e-7 and ratio <= 2 else "**missed**"))
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    lines += ["", "Target (same value to 1e-7, within 2x of dcor's time):", "", *verdicts, "",
              f"Load average at the end {load}.", ""]
    text = "\n".join(lines) + "\n"
    print(text)
    path = args.results or (None if args.quick or args.no_record else RESULTS)
    if path is not None and not args.no_record:
        old = path.read_text() if path.exists() else "# Transport and dependence benchmarks\n\n"
        path.write_text(old.rstrip("\n") + "\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
