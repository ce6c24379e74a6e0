"""Speed regression: this checkout against an older commit, side by side (issue 14).

Run from the repository root::

    python -m benchmarks.regression                      # against 1971773, 7 rounds
    python -m benchmarks.regression --rounds 11 --only loss/js
    python -m benchmarks.regression --old HEAD~3 --quick

Two worker processes, one importing ``divergences`` from the old commit (``git archive REV
src/divergences``, extracted once into ``$TMPDIR/divergences-regression-REV``; no worktree,
nothing written to the repository) and one from this checkout's ``src/``. Each runs with one
torch thread (``torch.set_num_threads(1)``, ``OMP_NUM_THREADS=1``), builds the same seeded
inputs and times one call per request. The parent alternates: in every round each case runs
once in each worker, old first in even rounds and new first in odd ones, so that a burst of
load from elsewhere on a shared machine hits both sides alike. Before the rounds each case runs
once in each worker untimed (warm-up) and the two sides' results are compared (values and
gradients must agree to ``1e-4`` relative, else the case is flagged ``DISAGREE``).

Reported per case: the median time of each side and the ratio new/old, as the median of the
per-round paired ratios with their min-max range (the spread that load from elsewhere adds).
A ratio above 1.05 is flagged ``SLOWER``.

Cases (float32 unless named; student logits ``2 N(0,1)``, teacher ``student + N(0,1)``, seed 0):

``loss/<divergence>/<N>x<V>``
    ``divergences.losses.distillation_loss(s, t, divergence)`` (mean over tokens), forward and
    backward into the student logits, for ``forward_kl``, ``reverse_kl``, ``js``, ``tv``,
    ``skew_forward_kl``, ``skew_reverse_kl`` (default parameters) at (256, 8000) and
    (2048, 32000).
``exact/<kl|js>/<fwd|fwd+bwd>/<N>x<V>/<dtype>``
    ``divergences.kl(t, s, input="logits")`` and ``divergences.js(s, t, input="logits")`` as
    in ``benchmarks/exact.py``, without and with ``.sum().backward()`` into ``s``, at
    (1000, 1000) and (100, 32000) in float64 and float32; ``exact/.../probs`` the same from
    probabilities (``softmax`` of the logits, ``input="probs"``), the path whose log-ratio is
    formed from the masses.

The table is printed (Markdown); ``--out FILE`` appends it with the machine and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

LOSS_DIVS = ("forward_kl", "reverse_kl", "js", "tv", "skew_forward_kl", "skew_reverse_kl")
LOSS_SHAPES = ((256, 8000), (2048, 32000))
EXACT_SHAPES = ((1000, 1000), (100, 32000))
QUICK_LOSS_SHAPES = ((64, 1000),)
QUICK_EXACT_SHAPES = ((32, 500),)


def case_names(quick: bool = False) -> list[str]:
    loss_shapes = QUICK_LOSS_SHAPES if quick else LOSS_SHAPES
    exact_shapes = QUICK_EXACT_SHAPES if quick else EXACT_SHAPES
    names = [f"loss/{d}/{n}x{v}" for n, v in loss_shapes for d in LOSS_DIVS]
    for fn in ("kl", "js"):
        for mode in ("fwd", "fwd+bwd"):
            for n, v in exact_shapes:
                for dt in ("float64", "float32"):
                    names.append(f"exact/{fn}/{mode}/{n}x{v}/{dt}")
                names.append(f"exact/{fn}/{mode}/{n}x{v}/float64/probs")
    return names


# --------------------------------------------------------------------------------------------
# Worker: one version of the library, one call per request
# --------------------------------------------------------------------------------------------


def _worker(src: str) -> None:
    sys.path.insert(0, src)
    import torch

    import divergences
    from divergences.losses import distillation_loss

    torch.set_num_threads(1)
    where = Path(divergences.__file__).resolve()
    inputs: dict[tuple, tuple] = {}

    def logits(n: int, v: int, dtype: torch.dtype):
        key = (n, v, dtype)
        if key not in inputs:
            if len(inputs) > 2:  # keep memory bounded on a shared machine
                inputs.clear()
            gen = torch.Generator().manual_seed(0)
            s = torch.empty(n, v, dtype=torch.float32).normal_(generator=gen).mul_(2.0)
            t = torch.empty(n, v, dtype=torch.float32).normal_(generator=gen).add_(s)
            inputs[key] = (s.to(dtype), t.to(dtype))
        return inputs[key]

    def make(name: str):
        parts = name.split("/")
        n, v = (int(x) for x in parts[-1 if parts[0] == "loss" else 3].split("x"))
        if parts[0] == "loss":
            div = parts[1]
            s0, t = logits(n, v, torch.float32)

            def run():
                s = s0.detach().requires_grad_()
                loss = distillation_loss(s, t, div)
                loss.backward()
                return loss.detach().reshape(1), s.grad

            return run
        fn, mode, dt = parts[1], parts[2], getattr(torch, parts[4])
        probs = len(parts) > 5
        s0, t0 = logits(n, v, dt)
        if probs:
            s0, t0 = torch.softmax(s0, -1), torch.softmax(t0, -1)
        kw = {"input": "probs" if probs else "logits"}

        def value(s, t):
            return divergences.kl(t, s, **kw) if fn == "kl" else divergences.js(s, t, **kw)

        if mode == "fwd":
            def run():
                with torch.no_grad():
                    return value(s0, t0), None
        else:
            def run():
                s = s0.detach().requires_grad_()
                out = value(s, t0)
                out.sum().backward()
                return out.detach(), s.grad

        return run

    out = sys.stdout
    out.write(json.dumps({"ready": str(where)}) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        run = make(req["case"])
        if req.get("check"):
            val, grad = run()
            path = req["check"]
            torch.save({"value": val, "grad": grad}, path)
            reply = {"ok": True}
        else:
            t0 = time.perf_counter()
            run()
            reply = {"seconds": time.perf_counter() - t0}
        out.write(json.dumps(reply) + "\n")
        out.flush()


class Worker:
    def __init__(self, src: Path):
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(src))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.regression", "--worker", str(src)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.where = self._read()["ready"]

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("a benchmark worker died (see its traceback above)")
        return json.loads(line)

    def ask(self, **req: Any) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def old_source(rev: str) -> Path:
    """``src`` of ``rev`` extracted once (``git archive``) into the temporary directory."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    dest = Path(tempfile.gettempdir()) / f"divergences-regression-{sha}"
    if not (dest / "src" / "divergences" / "__init__.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, "src/divergences"], cwd=ROOT,
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


def _agree(a_path: str, b_path: str) -> float:
    import torch

    a, b = torch.load(a_path), torch.load(b_path)
    worst = 0.0
    for key in ("value", "grad"):
        x, y = a[key], b[key]
        if x is None or y is None:
            continue
        x, y = x.double(), y.double()
        scale = y.abs().max().clamp_min(1e-30)
        if key == "value":
            err = ((x - y).abs() / y.abs().clamp_min(1e-12)).max()
        else:
            err = (x - y).abs().max() / scale
        worst = max(worst, float(err))
    return worst


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return (f"{cpu}, {os.cpu_count()} logical CPUs; {platform.platform()}; Python "
            f"{platform.python_version()}; torch {torch.__version__} (1 thread per worker)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.regression",
                                     description=__doc__.split("\n", 1)[0])
    parser.add_argument("--old", default="1971773", help="the older commit (default 1971773)")
    parser.add_argument("--old-src", type=Path, help="its src/ folder, instead of --old")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--only", nargs="*", default=(),
                        help="run the cases whose name starts with one of these prefixes")
    parser.add_argument("--quick", action="store_true", help="tiny shapes (checks the script)")
    parser.add_argument("--out", type=Path, help="append the table to this Markdown file")
    parser.add_argument("--note", default="", help="a line written above the table")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return 0
    names = [c for c in case_names(args.quick)
             if not args.only or any(c.startswith(p) for p in args.only)]
    if not names:
        parser.error("no case matches --only")
    old_src = args.old_src or old_source(args.old)
    new_src = ROOT / "src"
    load_start = os.getloadavg()
    started = time.time()
    old, new = Worker(old_src), Worker(new_src)
    print(f"old: {old.where}\nnew: {new.where}", file=sys.stderr)
    times: dict[str, dict[str, list[float]]] = {c: {"old": [], "new": []} for c in names}
    disagree: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for c in names:  # warm-up and agreement
            pa, pb = os.path.join(tmp, "old.pt"), os.path.join(tmp, "new.pt")
            old.ask(case=c, check=pa)
            new.ask(case=c, check=pb)
            disagree[c] = _agree(pb, pa)
    for r in range(args.rounds):
        for c in names:
            order = (("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old))
            for side, w in order:
                times[c][side].append(w.ask(case=c)["seconds"])
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    old.close()
    new.close()
    load_end = os.getloadavg()

    rows = ["| case | old ms | new ms | new/old (median of rounds) | min-max | |",
            "|---|---:|---:|---:|---:|---|"]
    for c in names:
        o, n = times[c]["old"], times[c]["new"]
        ratios = [b / a for a, b in zip(o, n)]
        med = statistics.median(ratios)
        flag = "SLOWER" if med > 1.05 else ""
        if disagree[c] > 1e-4:
            flag = (flag + f" DISAGREE {disagree[c]:.1e}").strip()
        rows.append(f"| {c} | {statistics.median(o) * 1e3:.1f} | "
                    f"{statistics.median(n) * 1e3:.1f} | {med:.3f} | "
                    f"{min(ratios):.2f}-{max(ratios):.2f} | {flag} |")
    head = [
        f"## {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(started))} · "
        "benchmarks.regression",
        "",
    ]
    if args.note:
        head += [f"*{args.note}*", ""]
    head += [
        f"- Machine: {machine()}",
        f"- old: {args.old_src or args.old} ; new: this checkout ("
        + subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                         capture_output=True, text=True).stdout.strip()
        + (", with uncommitted changes" if subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", "src"], cwd=ROOT).returncode else "")
        + ")",
        f"- {args.rounds} rounds, alternating old/new; load average at start "
        f"{' / '.join(f'{x:.2f}' for x in load_start)}, at end "
        f"{' / '.join(f'{x:.2f}' for x in load_end)}; wall {time.time() - started:.0f} s",
        "",
    ]
    text = "\n".join(head + rows) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write("\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
