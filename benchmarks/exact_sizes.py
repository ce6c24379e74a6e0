"""The per-call tax of the exact measures: ours against scipy from 4 to 10^7 elements (issue 15).

Run from the repository root::

    python -m benchmarks.exact_sizes                         # print the table and chart
    python -m benchmarks.exact_sizes --out benchmarks/RESULTS.md

Inputs: NumPy float64 probability vectors (rows of a ``(rows, vocab)`` array, Dirichlet(1)
draws, seeded), the way people call these in loops over small distributions. Cases per size:

``kl``
    ours ``divergences.kl(p, q)`` against scipy ``scipy.stats.entropy(p, q, axis=-1)``.
``js``
    ours ``divergences.js(p, q)`` against scipy
    ``scipy.spatial.distance.jensenshannon(p, q, axis=-1) ** 2`` (natural log).

Each call is timed alone, interleaved with the peer's, for at least ``--seconds`` per side
and size; the table gives the median of each side and the ratio ours / scipy. Targets (the
issue): at most 2x scipy on small inputs, at most 0.5x at (1000, 1000) and above. scipy is
single-threaded; ours uses torch's default threads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.spatial.distance
import scipy.stats

import divergences

try:  # the runner's machine description
    from ._runner import machine_info, machine_line
except ImportError:  # pragma: no cover - run as a plain script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks._runner import machine_info, machine_line

# (rows, vocab): 4 to 10^7 elements
SHAPES = ((1, 4), (1, 64), (4, 256), (10, 1000), (100, 1000), (1000, 1000), (1000, 10000))
QUICK_SHAPES = ((1, 4), (4, 256))


def _inputs(rows: int, vocab: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(vocab), size=rows)
    q = rng.dirichlet(np.ones(vocab), size=rows)
    if rows == 1:
        p, q = p[0], q[0]
    return p, q


CASES = {
    "kl": (lambda p, q: divergences.kl(p, q), lambda p, q: scipy.stats.entropy(p, q, axis=-1)),
    "js": (lambda p, q: divergences.js(p, q),
           lambda p, q: scipy.spatial.distance.jensenshannon(p, q, axis=-1) ** 2),
}


def _time(fn, p, q, seconds: float) -> list[float]:
    fn(p, q)
    out, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(out) < 5:
        t0 = time.perf_counter()
        fn(p, q)
        out.append(time.perf_counter() - t0)
    return out


def run(shapes, seconds: float) -> list[dict]:
    rows = []
    for r, v in shapes:
        p, q = _inputs(r, v)
        for name, (ours, peer) in CASES.items():
            np.testing.assert_allclose(np.asarray(ours(p, q)), peer(p, q), rtol=1e-9, atol=1e-15)
            t_ours, t_peer = [], []
            for _ in range(3):  # interleaved rounds
                t_ours += _time(ours, p, q, seconds / 3)
                t_peer += _time(peer, p, q, seconds / 3)
            mo, mp = statistics.median(t_ours), statistics.median(t_peer)
            rows.append({"case": name, "shape": (r, v), "elements": r * v, "ours": mo,
                         "scipy": mp, "ratio": mo / mp})
    return rows


def _fmt(s: float) -> str:
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def table(rows: list[dict]) -> str:
    lines = ["| case | shape | elements | ours | scipy | ours/scipy | target | |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for x in rows:
        target = 0.5 if x["elements"] >= 1_000_000 else 2.0
        ok = "met" if x["ratio"] <= target else "missed"
        lines.append(f"| {x['case']} | {x['shape'][0]}x{x['shape'][1]} | {x['elements']:,} | "
                     f"{_fmt(x['ours'])} | {_fmt(x['scipy'])} | {x['ratio']:.2f}x | "
                     f"<= {target}x | {ok} |")
    return "\n".join(lines)


def chart(rows: list[dict]) -> str:
    """ours/scipy against size, log scale from 1/8x to 64x (``|`` marks 1x)."""
    lines = ["ours/scipy against size (log scale 0.125x .. 64x; | marks 1x)"]
    for x in rows:
        pos = round(float(np.log2(x["ratio"]) + 3) / 9 * 36)
        bar = [" "] * 37
        bar[12] = "|"
        bar[max(0, min(36, pos))] = "o"
        lines.append(f"{x['case']:3s} {x['elements']:>10,}  {''.join(bar)}  {x['ratio']:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two small sizes; not for the record")
    ap.add_argument("--seconds", type=float, default=1.5, help="timing per side and size")
    ap.add_argument("--out", type=Path, help="append the table to this Markdown file")
    ap.add_argument("--note", default="", help="a line written above the table")
    a = ap.parse_args(argv)
    rows = run(QUICK_SHAPES if a.quick else SHAPES, 0.2 if a.quick else a.seconds)
    text = table(rows) + "\n\n```\n" + chart(rows) + "\n```\n"
    print(text)
    if a.out and not a.quick:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        with open(a.out, "a") as fh:
            fh.write(f"\n## {stamp} · benchmarks.exact_sizes (issue 15 s.3: the per-call tax)\n\n"
                     f"{a.note + chr(10) + chr(10) if a.note else ''}"
                     f"- {machine_line(machine_info())}\n\n"
                     f"{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
