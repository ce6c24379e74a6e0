"""divergences report against Evidently's DataDriftPreset: whole processes, time and peak memory.

Run from the repository root::

    python -m benchmarks.report                  # demo + 1,000,000 x 50 table; prints only
    python -m benchmarks.report --quick          # demo + 100,000 x 10: checks the machinery
    python -m benchmarks.report --out FILE       # also appends the section to FILE
    python -m benchmarks.report --cases table --rows 200000 --columns 20 --format csv

Issue 13 ("Speed") asks for two numbers, measured side by side:

``demo``
    ``divergences report`` with no arguments (the bundled data set, whichever
    ``divergences.report._io.BUNDLED_NAME`` names at run time, split by ``BUNDLED_SPLIT``),
    against Evidently on the same rows: the parent splits the bundled table as the command
    does and writes the two halves to CSV files that Evidently reads. Target: ours in at most
    half of Evidently's wall time, imports included.
``table``
    ``--rows`` rows x ``--columns`` mixed columns on each side (default 1,000,000 x 50), seeded
    (``--seed``), written once as Parquet (or ``--format csv``) to a temporary folder. Seven
    columns in ten are numeric (normal; log-normal; Poisson counts; uniform with 1% missing),
    three categorical (text, 4, 12 or 40 levels with Zipf-like shares). ``--drifted`` columns
    (default 5: numeric and categorical in turn, from the first) drift in the current file: a
    numeric one moves by a quarter of its spread, a categorical one moves 0.1 of probability
    from its most to its least frequent level. Ours: ``divergences report REF CUR --out DIR``,
    local engine, the command's own ``--sample`` default unless ``--sample`` is given here.
    Recorded: wall time and peak memory of both, no target.

Every run is a fresh process, started with :class:`subprocess.Popen` and reaped with
:func:`os.wait4`: the wall time runs from the start to the exit (interpreter start, imports,
reading the files, the work, writing the HTML), and the peak memory is the process's peak
resident set size (``ru_maxrss`` of that child: inputs, imports and everything else
included, as a user's machine sees it). Ours and Evidently alternate, ``--repeats`` times
each; the median is reported. Before the timed runs each side runs an import-only process, so
that neither pays for a cold disk cache. Neither side is pinned to a thread count unless
``--threads`` is given (then ``OMP_NUM_THREADS`` and friends for both).

Evidently runs in its own virtual environment (it needs ``pandas<3``): the interpreter named
by ``--evidently-python``, else ``$EVIDENTLY_PYTHON``, else ``/work/evidently-venv/bin/python``
(see ``benchmarks/README.md`` to create it). Without it the Evidently rows are skipped with a
message and ours still runs. Its script (:data:`EVIDENTLY_SCRIPT`) is the documented use of
its API: ``Report([DataDriftPreset()]).run(current, reference)`` on two DataFrames, then
``save_html``; ``DO_NOT_TRACK=1`` keeps it from sending usage data. Each side reports how many
columns it flagged (ours: ``report.json``'s ``meta.drifted``; Evidently: its
``DriftedColumnsCount``), beside the planted count.

Results are printed; ``--out FILE`` appends the section to FILE (never the tracked
``RESULTS.md`` unless it is named).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:
    from ._runner import append_results, machine_info, machine_line
except ImportError:  # pragma: no cover - run as a plain script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks._runner import append_results, machine_info, machine_line

MIB = 1024 * 1024
EVIDENTLY_VARIABLE = "EVIDENTLY_PYTHON"
DEFAULT_EVIDENTLY = Path("/work/evidently-venv/bin/python")
CASES = ("demo", "table")
DEFAULTS = {"rows": 1_000_000, "columns": 50, "drifted": 5, "repeats": 3}
QUICK = {"rows": 100_000, "columns": 10, "drifted": 3, "repeats": 1}
#: The issue's target for the demo: ours at most this fraction of Evidently's wall time.
DEMO_TARGET = 0.5
#: Column kinds in blocks of ten: seven numeric, three categorical.
KINDS = ("normal", "lognormal", "count", "cat", "uniform", "normal", "cat", "lognormal",
         "count", "cat")
CAT_LEVELS = (4, 12, 40)
MISSING_SHARE = 0.01

#: Evidently's side, run by its own interpreter: ``argv`` = reference, current, HTML path.
#: It prints one JSON line with the number of columns Evidently flagged.
EVIDENTLY_SCRIPT = """
import json
import sys

import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset


def load(path):
    return pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)


reference, current = load(sys.argv[1]), load(sys.argv[2])
result = Report([DataDriftPreset()]).run(current, reference)
result.save_html(sys.argv[3])
flagged = None
for metric in result.dict()["metrics"]:
    if str(metric.get("config", {}).get("type", "")).endswith("DriftedColumnsCount"):
        flagged = int(metric["value"]["count"])
print(json.dumps({"drifted": flagged, "compared": int(reference.shape[1])}))
"""

EVIDENTLY_PROBE = ("import evidently, pandas, pyarrow; "
                   "print(evidently.__version__, pandas.__version__)")
OURS_PROBE = "import pandas, pyarrow, divergences.report, divergences.cli"


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def column_plan(columns: int, drifted: int) -> list[tuple[str, str, bool]]:
    """``(name, kind, drifts)`` per column. The drifted ones alternate numeric and categorical
    from the first of each, so that even a 10-column table has both kinds drifting."""
    kinds = [KINDS[i % len(KINDS)] for i in range(columns)]
    names = [f"{k}_{i:02d}" for i, k in enumerate(kinds)]
    numeric = [i for i, k in enumerate(kinds) if k != "cat"]
    cats = [i for i, k in enumerate(kinds) if k == "cat"]
    order = [i for pair in itertools.zip_longest(numeric, cats) for i in pair if i is not None]
    chosen = set(order[:drifted])
    return [(names[i], kinds[i], i in chosen) for i in range(columns)]


def _column(kind: str, index: int, rows: int, drift: bool, seed: int, side: int) -> Any:
    """One column as a pyarrow array; each (column, side) has its own seeded stream, so a
    column's values do not depend on how many columns the table has."""
    import pyarrow as pa

    rng = np.random.default_rng([seed, side, index])
    if kind == "cat":
        k = CAT_LEVELS[(index // len(KINDS)) % len(CAT_LEVELS)]
        p = 1.0 / np.arange(1, k + 1)
        p /= p.sum()
        if drift:
            p[0] -= 0.1
            p[-1] += 0.1
        codes = rng.choice(k, size=rows, p=p).astype(np.int32)
        levels = pa.array([f"v{j:02d}" for j in range(k)])
        # plain text, as a CSV or most Parquet writers give it (a dictionary column would
        # reach pandas as the category dtype)
        return pa.DictionaryArray.from_arrays(pa.array(codes), levels).cast(pa.string())
    shift = 0.25 if drift else 0.0
    if kind == "normal":
        x = rng.normal(10.0 + shift * 2.0, 2.0, size=rows)
    elif kind == "lognormal":
        x = rng.lognormal(shift, 1.0, size=rows)
    elif kind == "count":
        x = rng.poisson(3.0 + shift * np.sqrt(3.0), size=rows).astype(np.int64)
    else:  # uniform, with a few missing values (a realistic column, read as NaN by both)
        x = rng.uniform(shift, 1.0 + shift, size=rows)
        x[rng.random(rows) < MISSING_SHARE] = np.nan
    return pa.array(x, from_pandas=True)


def write_table(folder: Path, rows: int, columns: int, drifted: int, seed: int,
                fmt: str) -> tuple[Path, Path, list[str]]:
    """The reference and current files of the ``table`` case, and the drifted columns."""
    import pyarrow as pa

    plan = column_plan(columns, drifted)
    paths = []
    for side, label in enumerate(("reference", "current")):
        table = pa.table({name: _column(kind, i, rows, drifts and side == 1, seed, side)
                          for i, (name, kind, drifts) in enumerate(plan)})
        path = folder / f"{label}.{fmt}"
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, path)
        else:
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, path)
        del table
        paths.append(path)
    return paths[0], paths[1], [name for name, _, drifts in plan if drifts]


def write_demo(folder: Path) -> tuple[Path, Path, str]:
    """The demo's two halves as CSV files for Evidently, split exactly as ``divergences
    report`` splits the bundled table (read from the package now, not hard-coded: the bundled
    data set may change), and a line that says what they are."""
    from divergences.report import _io

    df = _io.load_bundled()
    col, value = _io.BUNDLED_SPLIT
    ref, cur = _io.split_table(df, col, value, "bundled data")
    paths = folder / "demo-reference.csv", folder / "demo-current.csv"
    ref.to_csv(paths[0], index=False)
    cur.to_csv(paths[1], index=False)
    about = (f"bundled `{_io.BUNDLED_NAME}` split on `{col} == {value}`: {len(ref):,} reference "
             f"and {len(cur):,} current rows, {ref.shape[1]} columns (target "
             f"`{_io.BUNDLED_TARGET}`: ours ranks the others by MI with it; Evidently checks "
             "it for drift like any column)")
    return paths[0], paths[1], about


# --------------------------------------------------------------------------------------------
# Running one process
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    wall_s: float
    peak_bytes: int
    returncode: int
    log: Path


def run_process(argv: list[str], *, cwd: Path, env: dict[str, str], log: Path,
                timeout_s: float) -> Run:
    """Run ``argv`` to its end; its wall time and its own peak resident set size.

    ``os.wait4`` gives the rusage of this one child (``ru_maxrss`` in KiB on Linux), where
    ``resource.getrusage(RUSAGE_CHILDREN)`` would give the maximum over every child reaped so
    far, the previous runs included."""
    with open(log, "wb") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
    # reaped here, so Popen must not wait for it again
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(wall, int(usage.ru_maxrss) * 1024, proc.returncode, log)


def _tail(log: Path, lines: int = 8) -> str:
    text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return "\n".join("    " + ln for ln in text[-lines:])


@dataclass
class Side:
    """One tool in one case: how to start a run, and how to read what it flagged."""

    tool: str
    start: Callable[[int], tuple[list[str], Path]]                    # run index -> argv, cwd
    summary: Callable[[int, Run], tuple[int | None, int | None] | None]  # -> drifted, compared
    runs: list[Run] = field(default_factory=list)
    flagged: tuple[int | None, int | None] | None = None
    error: str | None = None


# --------------------------------------------------------------------------------------------
# The two tools
# --------------------------------------------------------------------------------------------


def ours_command() -> list[str]:
    """The ``divergences`` command of this interpreter's environment (what a user runs);
    ``python -m divergences.cli`` where no console script is installed."""
    script = Path(sys.executable).with_name("divergences")
    return [str(script)] if script.exists() else [sys.executable, "-m", "divergences.cli"]


def _ours_summary(report_dir: Path) -> tuple[int | None, int | None] | None:
    try:
        meta = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))["meta"]
    except (OSError, ValueError, KeyError):
        return None
    return meta.get("drifted"), meta.get("compared")


def _evidently_summary(log: Path) -> tuple[int | None, int | None] | None:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("{")]
    if not lines:
        return None
    d = json.loads(lines[-1])
    return d.get("drifted"), d.get("compared")


def find_evidently(explicit: str | None) -> tuple[Path | None, str]:
    """The Evidently interpreter and its versions, or None and why it is skipped."""
    path = Path(explicit or os.environ.get(EVIDENTLY_VARIABLE) or DEFAULT_EVIDENTLY)
    if not path.exists():
        return None, (f"Evidently skipped: no interpreter at {path} (create it as "
                      f"benchmarks/README.md says, or set {EVIDENTLY_VARIABLE})")
    env = dict(os.environ, DO_NOT_TRACK="1")
    proc = subprocess.run([str(path), "-c", EVIDENTLY_PROBE], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"Evidently skipped: {path} cannot import evidently ({last})"
    ev, pd = proc.stdout.split()[:2]
    return path, f"Evidently {ev} (pandas {pd}) at `{path}`"


def _env(threads: int | None, **extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(threads)
    return env


# --------------------------------------------------------------------------------------------
# The suite
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.report",
        description="divergences report against Evidently's DataDriftPreset: whole processes, "
                    "wall time and peak memory, on the same files (issue 13).")
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES),
                   help="cases to run (default: both)")
    p.add_argument("--quick", action="store_true",
                   help=f"table {QUICK['rows']:,} x {QUICK['columns']}, one run per side: "
                        "checks the machinery, not the speed")
    p.add_argument("--rows", type=int, default=None,
                   help=f"rows per data set in the table case (default {DEFAULTS['rows']:,})")
    p.add_argument("--columns", type=int, default=None,
                   help=f"columns in the table case (default {DEFAULTS['columns']})")
    p.add_argument("--drifted", type=int, default=None,
                   help=f"drifted columns in the table case (default {DEFAULTS['drifted']})")
    p.add_argument("--seed", type=int, default=0, help="seed of the table (default 0)")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet",
                   help="file format of the table case (default parquet)")
    p.add_argument("--sample", type=int, default=None, metavar="N",
                   help="passed to `divergences report --sample` in the table case (default: "
                        "the command's own default; 0: every row)")
    p.add_argument("--repeats", type=int, default=None,
                   help=f"runs per side, alternating (default {DEFAULTS['repeats']})")
    p.add_argument("--threads", type=int, default=None,
                   help="OMP/MKL/OPENBLAS_NUM_THREADS for both sides (default: unset)")
    p.add_argument("--timeout", type=float, default=3600.0,
                   help="seconds before one run is killed (default 3600)")
    p.add_argument("--evidently-python", default=None, metavar="PATH",
                   help=f"Evidently's interpreter (default ${EVIDENTLY_VARIABLE}, else "
                        f"{DEFAULT_EVIDENTLY})")
    p.add_argument("--no-warmup", action="store_true",
                   help="skip the import-only process per side (the disk cache may be cold)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="folder for the input files and reports (default: a temporary "
                        "folder, removed at the end)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE",
                   help="append the results section to this Markdown file (default: print "
                        "only)")
    p.add_argument("--note", default=None, help="a note recorded with the results")
    p.add_argument("--preliminary", action="store_true",
                   help="mark the section preliminary (e.g. measured on a busy machine)")
    return p


def config_from_args(a: argparse.Namespace) -> dict[str, Any]:
    base = QUICK if a.quick else DEFAULTS
    cfg = {k: (getattr(a, k) if getattr(a, k) is not None else base[k])
           for k in ("rows", "columns", "drifted", "repeats")}
    for k, low in (("rows", 2), ("columns", 1), ("repeats", 1)):
        if cfg[k] < low:
            raise SystemExit(f"--{k} must be at least {low}; got {cfg[k]}")
    if not 0 <= cfg["drifted"] <= cfg["columns"]:
        raise SystemExit(f"--drifted must lie in [0, --columns]; got {cfg['drifted']}")
    cfg.update(cases=list(dict.fromkeys(a.cases)), seed=a.seed, format=a.format,
               sample=a.sample, threads=a.threads, timeout=a.timeout, warmup=not a.no_warmup)
    return cfg


def _sides(case: str, cfg: dict[str, Any], work: Path, ref: Path, cur: Path,
           evidently: Path | None) -> list[Side]:
    ours_argv = [*ours_command(), "report"]

    def ours_start(i: int) -> tuple[list[str], Path]:
        cwd = work / f"{case}-ours-{i}"
        cwd.mkdir()
        if case == "demo":  # literally `divergences report`: it writes ./divergences-report
            return ours_argv, cwd
        extra = [] if cfg["sample"] is None else ["--sample", str(cfg["sample"])]
        return [*ours_argv, str(ref), str(cur), "--out", str(cwd / "out"), *extra], cwd

    def ours_summary(i: int, run: Run):
        out = "divergences-report" if case == "demo" else "out"
        return _ours_summary(work / f"{case}-ours-{i}" / out)

    sides = [Side("divergences", ours_start, ours_summary)]
    if evidently is not None:
        def ev_start(i: int) -> tuple[list[str], Path]:
            cwd = work / f"{case}-evidently-{i}"
            cwd.mkdir()
            return [str(evidently), "-c", EVIDENTLY_SCRIPT, str(ref), str(cur),
                    str(cwd / "report.html")], cwd

        sides.append(Side("evidently", ev_start, lambda i, run: _evidently_summary(run.log)))
    return sides


def run_case(case: str, cfg: dict[str, Any], work: Path, ref: Path, cur: Path,
             evidently: Path | None, log: Any = print) -> list[Side]:
    sides = _sides(case, cfg, work, ref, cur, evidently)
    for i in range(cfg["repeats"]):
        for side in sides:  # alternate, so that a change of machine load hits both
            if side.error:
                continue
            argv, cwd = side.start(i)
            env = _env(cfg["threads"], DO_NOT_TRACK="1")
            run = run_process(argv, cwd=cwd, env=env, log=cwd / "log.txt",
                              timeout_s=cfg["timeout"])
            if run.returncode != 0:
                side.error = (f"killed after --timeout {cfg['timeout']:g} s"
                              if run.wall_s >= cfg["timeout"]
                              else f"failed (exit {run.returncode})")
                log(f"  {case}/{side.tool}: {side.error}; last lines of {run.log}:\n"
                    f"{_tail(run.log)}")
                continue
            side.runs.append(run)
            side.flagged = side.summary(i, run)
            log(f"  {case}/{side.tool} run {i + 1}/{cfg['repeats']}: {run.wall_s:.1f} s, "
                f"peak {run.peak_bytes / MIB:.0f} MiB")
    return sides


def _median(runs: list[Run], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in runs)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "-"


def to_markdown(results: dict[str, list[Side]], about: dict[str, str], cfg: dict[str, Any],
                machine: str, evidently_line: str, started: str, note: str | None,
                preliminary: bool) -> str:
    title = f"## {started} · suite `report`" + (" · preliminary" if preliminary else "")
    lines = [title, ""]
    if note:
        lines += [f"*{note}*", ""]
    threads = "unset" if cfg["threads"] is None else str(cfg["threads"])
    lines += [
        f"- Machine: {machine}",
        f"- Peer: {evidently_line}",
        f"- Method: each run is a whole process (wall time from start to exit, imports "
        f"included; peak RSS of the process from `wait4`); {cfg['repeats']} run(s) per side, "
        f"alternating, median shown; OMP/MKL/OPENBLAS threads {threads}",
        *[f"- `{case}`: {text}" for case, text in about.items()],
        "",
        "| case | tool | median s | min s | peak RSS MiB | ours/this time "
        "| ours/this memory | drifted / compared |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    verdicts = []
    for case, sides in results.items():
        ours = sides[0]
        for side in sides:
            name = f"**{side.tool}**" if side is ours else side.tool
            flagged = "-" if side.flagged is None else \
                f"{side.flagged[0]} / {side.flagged[1]}"
            if not side.runs:
                lines.append(f"| {case} | {name} | {side.error or 'no run'} | | | | | |")
                continue
            wall, peak = _median(side.runs, "wall_s"), _median(side.runs, "peak_bytes")
            both = side is not ours and ours.runs
            t_ratio = _ratio(_median(ours.runs, "wall_s"), wall) if both else "-"
            m_ratio = _ratio(_median(ours.runs, "peak_bytes"), peak) if both else "-"
            lines.append(f"| {case} | {name} | {wall:.1f} | "
                         f"{min(r.wall_s for r in side.runs):.1f} | {peak / MIB:.0f} | "
                         f"{t_ratio} | {m_ratio} | {flagged} |")
            if both:
                ratio = _median(ours.runs, "wall_s") / wall
                if case == "demo":
                    verdicts.append(
                        f"- `demo`: ours takes {ratio:.2f}x Evidently's wall time: target "
                        f"(at most {DEMO_TARGET}x) " + ("met" if ratio <= DEMO_TARGET
                                                         else "**missed**"))
                else:
                    verdicts.append(
                        f"- `{case}`: ours takes {ratio:.2f}x Evidently's wall time and "
                        f"{_median(ours.runs, 'peak_bytes') / peak:.2f}x its peak memory "
                        "(recorded; no target)")
    lines.append("")
    if verdicts:
        lines += [*verdicts, ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    cfg = config_from_args(a)
    if a.workdir is not None and a.workdir.exists() and any(a.workdir.iterdir()):
        # the runs' folders and reports must be new: an old report would be read as this
        # run's, and the command refuses to write into a folder that holds one
        raise SystemExit(f"--workdir {a.workdir}: give a new or empty folder")
    started = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    evidently, evidently_line = find_evidently(a.evidently_python)
    print(evidently_line, flush=True)
    machine = machine_line(machine_info())
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="bench-report-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[Side]] = {}
    about: dict[str, str] = {}
    try:
        # an import-only process per side: the disk cache is warm for both before any run
        warm = [[sys.executable, "-c", OURS_PROBE]]
        if evidently is not None:
            warm.append([str(evidently), "-c", EVIDENTLY_PROBE])
        for cmd in warm if cfg["warmup"] else []:
            subprocess.run(cmd, env=_env(cfg["threads"], DO_NOT_TRACK="1"),
                           capture_output=True, timeout=600, check=False)
        for case in cfg["cases"]:
            t0 = time.perf_counter()
            if case == "demo":
                ref, cur, about[case] = write_demo(work)
                about[case] += "; ours runs `divergences report` with no arguments"
            else:
                ref, cur, drifted = write_table(work, cfg["rows"], cfg["columns"],
                                                cfg["drifted"], cfg["seed"], cfg["format"])
                n_cat = sum(1 for i in range(cfg["columns"]) if KINDS[i % len(KINDS)] == "cat")
                sample = ("the command's default --sample" if cfg["sample"] is None
                          else f"--sample {cfg['sample']}")
                about[case] = (f"{cfg['rows']:,} rows x {cfg['columns']} columns per data set "
                               f"({cfg['columns'] - n_cat} numeric, {n_cat} categorical), "
                               f"{cfg['format']}, seed {cfg['seed']}; {len(drifted)} drifted: "
                               f"{', '.join(drifted) or 'none'}; ours: local engine, {sample}")
            print(f"{case}: inputs written in {time.perf_counter() - t0:.1f} s ({ref.parent})",
                  flush=True)
            results[case] = run_case(case, cfg, work, ref, cur, evidently)
    finally:
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    markdown = to_markdown(results, about, cfg, machine, evidently_line, started, a.note,
                           a.preliminary)
    print()
    print(markdown)
    if a.out is not None:
        append_results(a.out, markdown)
        print(f"appended to {a.out}")
    failed = any(side.error for sides in results.values() for side in sides)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
