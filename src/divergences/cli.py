"""The ``divergences`` command.

``divergences report [REFERENCE [CURRENT]]``
    Compare two data sets (CSV or Parquet files, or folders of them) column by column and
    jointly (:func:`divergences.report.compare`); print the ranked table and write the
    reports (HTML, JSON, Markdown) to ``--out``. With no data it compares the bundled
    Wisconsin breast-cancer cohorts (benign against malignant, target ``target``). With one
    file, ``--split COLUMN=VALUE`` makes the rows where ``COLUMN == VALUE`` the current data
    and the others the reference.
    ``--engine dask`` runs the report on a Dask cluster (``--scheduler ADDRESS``, or a local
    cluster of worker processes by default), reading Parquet/CSV folders partition by
    partition: histogram, Wasserstein, KS and categorical measures from full-data sketches,
    the rest from ``--sample`` rows (:mod:`divergences.report._dask`).
``divergences bench [SUITE ...]``
    Run the benchmark suites (``python -m benchmarks``); they live in the source repository.

Errors in the input print one line, ``divergences: error: ...``, and exit with status 2
(never a traceback; ``--debug`` shows it). Input files are only read. An existing output
folder that holds files is not written to without ``--force``; with it, only the
report files (``report.html``, ``report.json``, ``report.md``) are replaced, nothing is deleted.

>>> main(["report", "--help"]) == 0  # doctest: +ELLIPSIS
usage: divergences report ...
True
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

FORMATS = ("html", "json", "md")
EXIT_INPUT = 2
#: Rows per data set used by default (the permutation tests cost ``O(rows)`` each).
DEFAULT_SAMPLE = 5000


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so that main() returns the status."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="divergences",
                     description="Information-theoretic comparison of data sets.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    rep = sub.add_parser(
        "report", help="compare two data sets column by column and jointly",
        description="Compare REFERENCE with CURRENT (CSV or Parquet files or folders). "
                    "With no data: the bundled breast-cancer cohorts, benign vs malignant.")
    rep.add_argument("reference", nargs="?", metavar="REFERENCE")
    rep.add_argument("current", nargs="?", metavar="CURRENT")
    rep.add_argument("--target", metavar="COL",
                     help="rank columns by mutual information with this column")
    rep.add_argument("--columns", metavar="A,B,...", help="compare only these columns")
    rep.add_argument("--split", metavar="COL=VALUE",
                     help="one input: rows with COL == VALUE are CURRENT, the others REFERENCE")
    rep.add_argument("--out", metavar="DIR", default="divergences-report",
                     help="output folder (default: ./divergences-report)")
    rep.add_argument("--format", default="html,json,md", metavar="html,json,md",
                     help="reports to write (comma-separated; default: all three)")
    rep.add_argument("--sample", type=int, metavar="N", default=DEFAULT_SAMPLE,
                     help=f"use at most N random rows of each data set (default "
                          f"{DEFAULT_SAMPLE}; 0: every row)")
    rep.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    rep.add_argument("--permutations", type=int, default=99,
                     help="permutations per p-value (default 99)")
    rep.add_argument("--n-boot", type=int, default=100,
                     help="bootstrap resamples per interval (default 100)")
    rep.add_argument("--engine", choices=("local", "dask"), default="local",
                     help="local: in this process; dask: read Parquet/CSV folders partition "
                          "by partition on a Dask cluster, with full-data sketches for the "
                          "histogram, Wasserstein and KS measures and a --sample of rows for "
                          "the rest (needs: pip install 'divergences[dask]')")
    rep.add_argument("--scheduler", metavar="ADDRESS",
                     help="with --engine dask: address of a running Dask scheduler "
                          "(default: start a local cluster of worker processes)")
    rep.add_argument("--force", action="store_true", help="write into an existing, non-empty --out folder (replaces report.* only)")
    rep.add_argument("--no-rich", action="store_true", help="plain-text table")
    rep.add_argument("--debug", action="store_true", help="show tracebacks")
    sub.add_parser("bench", help="run the benchmark suites (source checkout only); "
                   "arguments go to `python -m benchmarks`", add_help=False)
    return parser


def _err(message: str) -> int:
    print(f"divergences: error: {message}", file=sys.stderr)
    return EXIT_INPUT


def _formats(text: str) -> list[str]:
    wanted = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in wanted if f not in FORMATS]
    if bad or not wanted:
        raise _UsageError(f"--format: choose from {', '.join(FORMATS)}; got {text!r}")
    return list(dict.fromkeys(wanted))


def _load(args: argparse.Namespace) -> tuple[Any, Any, tuple[str, str], str | None]:
    from .report import _io

    target = args.target
    if args.reference is None:
        df = _io.load_bundled()
        col, value = (_io.parse_split(args.split) if args.split else _io.BUNDLED_SPLIT)
        ref, cur = _io.split_table(df, col, value, "bundled data")
        label = f"bundled breast_cancer.csv, {col}"
        names = (f"{label} != {value}", f"{label} == {value}")
        if target is None and args.split is None:
            target = _io.BUNDLED_TARGET
        return ref, cur, names, target
    if args.current is None:
        df = _io.read_table(args.reference)
        if not args.split:
            raise _io.InputError(
                f"{args.reference}: one data set given; pass CURRENT too, or --split "
                "COLUMN=VALUE to split it into two")
        col, value = _io.parse_split(args.split)
        ref, cur = _io.split_table(df, col, value, str(args.reference))
        return ref, cur, (f"{args.reference} ({col} != {value})",
                          f"{args.reference} ({col} == {value})"), target
    if args.split:
        raise _io.InputError("--split takes one input; two were given")
    return (_io.read_table(args.reference), _io.read_table(args.current),
            (str(args.reference), str(args.current)), target)


def _progress() -> Any:
    """A rich progress bar on an interactive stderr, else None."""
    if not sys.stderr.isatty():
        return None
    try:
        from rich.progress import Progress
    except ImportError:
        return None
    return Progress(transient=True, console=None)


def _report(args: argparse.Namespace) -> int:
    from .report import InputError, compare
    from .report._render import print_table

    formats = _formats(args.format)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return _err(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not args.force:
        return _err(f"{out}: the output folder exists; pass --force to overwrite it")
    columns = None
    if args.columns:
        columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    if args.sample == 0:
        args.sample = None
    for name in ("sample", "permutations", "n_boot"):
        v = getattr(args, name)
        if v is not None and v < (2 if name != "permutations" else 1):
            return _err(f"--{name.replace('_', '-')} must be at least "
                        f"{2 if name != 'permutations' else 1}; got {v}")
    if args.scheduler is not None and args.engine != "dask":
        return _err("--scheduler needs --engine dask")
    if args.engine == "dask":
        if args.reference is None or args.current is None or args.split:
            return _err("--engine dask reads two paths, REFERENCE and CURRENT (no --split)")
        if args.sample is None:
            return _err("--engine dask needs --sample N >= 2 (rows drawn for the sampled "
                        "measures)")
    try:
        if args.engine == "dask":
            ref, cur = args.reference, args.current
            names, target = (str(ref), str(cur)), args.target
        else:
            ref, cur, names, target = _load(args)
        extra = {"engine": "dask", "scheduler": args.scheduler} if args.engine == "dask" else {}
        bar = _progress()
        if bar is not None:
            with bar:
                task = bar.add_task("comparing columns", total=None)

                def step(done: int, total: int, column: str) -> None:
                    bar.update(task, completed=done, total=total,
                               description=f"compared {column}")

                report = compare(ref, cur, target, columns=columns, sample=args.sample,
                                 seed=args.seed, permutations=args.permutations,
                                 n_boot=args.n_boot, names=names, progress=step, **extra)
        else:
            report = compare(ref, cur, target, columns=columns, sample=args.sample,
                             seed=args.seed, permutations=args.permutations,
                             n_boot=args.n_boot, names=names, **extra)
    except (InputError, ValueError, TypeError) as exc:
        if args.debug:
            raise
        return _err(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except OSError as exc:
        if args.debug:
            raise
        return _err(f"{getattr(exc, 'filename', '') or ''}: {exc.strerror or exc}".lstrip(": "))

    print_table(report, use_rich=not args.no_rich)
    out.mkdir(parents=True, exist_ok=True)
    writers = {"html": ("report.html", report.to_html), "json": ("report.json", report.to_json),
               "md": ("report.md", report.to_markdown)}
    for fmt in formats:
        fname, render = writers[fmt]
        path = out / fname
        path.write_text(render(), encoding="utf-8")
        print(f"wrote {fmt:4s} {path}")
    return 0


def _repo_root() -> Path:
    """The source checkout holding this package (``src/divergences`` -> the repo root)."""
    return Path(__file__).resolve().parents[2]


def _bench(args: Sequence[str]) -> int:
    root = _repo_root()
    if not (root / "benchmarks" / "__main__.py").is_file():
        return _err("the benchmarks live in the source repository; run `divergences bench` "
                    "from a source checkout (git clone, pip install -e .)")
    cmd = [sys.executable, "-m", "benchmarks", *args]
    return subprocess.call(cmd, cwd=root)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (``sys.argv[1:]`` when None); return the status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(f"{exc}", file=sys.stderr)
        return EXIT_INPUT
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return EXIT_INPUT
    try:
        return _report(args)
    except _UsageError as exc:
        return _err(str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the promise: one line, no traceback (--debug shows it)
        if getattr(args, "debug", False):
            raise
        return _err(f"unexpected {type(exc).__name__}: {exc}".splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
