"""The ``divergences`` command.

``divergences report [REFERENCE [CURRENT]]``
    Compare two data sets (CSV or Parquet files, or folders of them) column by column and
    jointly (:func:`divergences.report.compare`); print the verdict, one decision per column
    and the details, and write the reports (HTML, JSON, Markdown) to ``--out``. With no data
    it runs on the data set bundled with the install, into ``./divergences-report``, which it
    re-creates on every such run. With one file, ``--split COLUMN=VALUE`` makes the rows where
    ``COLUMN == VALUE`` the current data and the others the reference.
    ``--engine dask`` runs the report on a Dask cluster (``--scheduler ADDRESS``, or a local
    cluster of worker processes by default), reading Parquet/CSV folders partition by
    partition (:mod:`divergences.report._dask`).
``divergences bench [SUITE [--out FILE] [--quick] ...]``
    List the benchmark suites with their running times, or run one, saying how long it will
    take first; results go to ``--out FILE`` only (benchmarks/__main__.py). The suites live
    in the source repository.

Errors print one line, ``divergences: error: ...``, and exit with status 2 (never a
traceback; ``--debug`` shows it). Input files are only read. A folder given with ``--out``
that holds files is not written to without ``--force``; with it, only the report files
(``report.html``, ``report.json``, ``report.md``) are replaced, nothing is deleted. Whether
``--out`` can be written is checked before any work.

This module imports nothing heavy at import time (no pandas, no torch, no report code):
``divergences --help`` answers at once; the report's modules load when a command runs.

>>> main(["report", "--help"]) == 0  # doctest: +ELLIPSIS
usage: divergences report ...
True
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

FORMATS = ("html", "json", "md")
REPORT_FILES = {"html": "report.html", "json": "report.json", "md": "report.md"}
EXIT_INPUT = 2
#: Rows per data set used by default (the permutation tests cost ``O(rows)`` each).
DEFAULT_SAMPLE = 5000
#: Where the report goes without ``--out``. The demo run (no REFERENCE, no ``--out``) owns
#: this folder's report files and replaces them on every run, so that the README's command
#: can be run twice; any other run keeps the ``--force`` protection.
DEFAULT_OUT = "divergences-report"


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so that main() returns the status."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


def _version() -> str:
    """The installed distribution's version, read from its metadata (no package import)."""
    try:
        from importlib.metadata import version
        return version("divergences")
    except Exception:  # pragma: no cover - running from a source tree that is not installed
        return "unknown"


def _names(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``: a comma-separated list of column names."""
    return [c.strip() for c in text.split(",") if c.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="divergences",
                     description="Information-theoretic comparison of data sets.")
    parser.add_argument("--version", action="version",
                        version=f"divergences {_version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    rep = sub.add_parser(
        "report", help="compare two data sets column by column and jointly",
        description="Compare REFERENCE with CURRENT (CSV or Parquet files or folders): a "
                    "verdict, one decision per column with the test behind it, then the "
                    "details; reports written to --out. With no data: the data set bundled "
                    "with the install.")
    rep.add_argument("reference", nargs="?", metavar="REFERENCE",
                     help="the reference data: a CSV or Parquet file, or a folder of them "
                          "(default: the bundled data set)")
    rep.add_argument("current", nargs="?", metavar="CURRENT",
                     help="the current data, compared with REFERENCE (or use --split)")
    rep.add_argument("--target", metavar="COL",
                     help="rank columns by mutual information with this column")
    rep.add_argument("--columns", metavar="A,B,...", help="compare only these columns")
    rep.add_argument("--categorical", metavar="A,B,...",
                     help="compare these columns as categories, whatever their dtype")
    rep.add_argument("--numeric", metavar="A,B,...",
                     help="compare these columns as numbers, whatever their dtype")
    rep.add_argument("--split", metavar="COL=VALUE",
                     help="one input: rows with COL == VALUE are CURRENT, the others REFERENCE")
    rep.add_argument("--out", metavar="DIR", default=None,
                     help=f"output folder (default: ./{DEFAULT_OUT}; an existing folder with "
                          "files in it needs --force)")
    rep.add_argument("--format", default="html,json,md", metavar="html,json,md",
                     help="reports to write (comma-separated; default: all three)")
    rep.add_argument("--level", type=float, default=0.95, metavar="LEVEL",
                     help="confidence level of the intervals, in (0, 1) (default 0.95)")
    rep.add_argument("--alpha", type=float, default=0.05, metavar="Q",
                     help="false discovery rate of the drift decisions: a column drifts when "
                          "its q-value is at most Q (default 0.05)")
    rep.add_argument("--sample", type=int, metavar="N", default=DEFAULT_SAMPLE,
                     help=f"use at most N random rows of each data set (default "
                          f"{DEFAULT_SAMPLE}; 0: every row)")
    rep.add_argument("--seed", type=int, default=0, metavar="N",
                     help="random seed; equal seeds give equal reports (default 0)")
    rep.add_argument("--permutations", type=int, default=99, metavar="N",
                     help="permutations per permutation p-value (default 99)")
    rep.add_argument("--n-boot", type=int, default=100, metavar="N",
                     help="bootstrap resamples per interval (default 100)")
    rep.add_argument("--engine", choices=("local", "dask"), default="local",
                     help="local: in this process; dask: read Parquet/CSV folders partition "
                          "by partition on a Dask cluster, with full-data sketches for the "
                          "histogram, Wasserstein and KS measures and a --sample of rows for "
                          "the rest (needs: pip install 'divergences[dask]')")
    rep.add_argument("--scheduler", metavar="ADDRESS",
                     help="with --engine dask: address of a running Dask scheduler "
                          "(default: start a local cluster of worker processes)")
    rep.add_argument("--force", action="store_true",
                     help="write into an existing, non-empty --out folder (replaces report.* "
                          "only, deletes nothing)")
    rep.add_argument("--no-rich", action="store_true",
                     help="plain text, no colours (the output of pipes and files is plain "
                          "already)")
    rep.add_argument("--debug", action="store_true",
                     help="show tracebacks and the numerical libraries' warnings")
    sub.add_parser("bench", help="run the benchmark suites (source checkout only); "
                   "`divergences bench --help` lists them", add_help=False)
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


def _check_out(out: Path, *, owned: bool, force: bool) -> str | None:
    """Why ``out`` cannot receive the report, or None. Runs before any work, and creates
    nothing: a run that fails on its input leaves no empty folder behind.

    ``owned``: the demo run's default folder, whose report files are replaced without
    ``--force`` (other files in it are still never touched, and refuse the run)."""
    if out.exists() and not out.is_dir():
        return f"{out}: exists and is not a folder"
    if out.is_dir():
        present = {p.name for p in out.iterdir()}
        if present and not force and not (owned and present <= set(REPORT_FILES.values())):
            return f"{out}: the output folder exists; pass --force to overwrite it"
        probe_in = out
    else:
        probe_in = out.parent
        while not probe_in.exists():
            probe_in = probe_in.parent
        if not probe_in.is_dir():
            return f"{out}: cannot create the folder ({probe_in} is not a folder)"
    # os.access is no answer for root or on read-only mounts: try to write a file there
    import tempfile
    try:
        fd, name = tempfile.mkstemp(prefix=".divergences-", dir=probe_in)
    except OSError as exc:
        return f"{out}: cannot write there ({exc.strerror or type(exc).__name__})"
    os.close(fd)
    os.unlink(name)
    return None


def _load(args: argparse.Namespace) -> tuple[Any, Any, tuple[str, str], str | None]:
    from .report import _io

    target = args.target
    if args.reference is None:
        df = _io.bundled_columns()  # no pandas: its import would be a tenth of the demo
        col, value = (_io.parse_split(args.split) if args.split else _io.BUNDLED_SPLIT)
        ref, cur = _io.split_table(df, col, value, "bundled data")
        label = f"bundled {_io.BUNDLED_NAME}, {col}"
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
    formats = _formats(args.format)
    owned = args.out is None and args.reference is None
    out = Path(args.out if args.out is not None else DEFAULT_OUT)
    for flag in ("level", "alpha"):
        value = getattr(args, flag)
        if not 0.0 < value < 1.0:
            return _err(f"--{flag} must lie strictly between 0 and 1; got {value:g}")
    kinds = {flag: _names(getattr(args, flag)) for flag in ("categorical", "numeric")
             if getattr(args, flag) is not None}
    for flag, cols in kinds.items():
        if not cols:
            return _err(f"--{flag}: give column names, comma-separated")
    both = set(kinds.get("categorical", ())) & set(kinds.get("numeric", ()))
    if both:
        return _err(f"--categorical and --numeric both name {', '.join(sorted(both))}")
    columns = _names(args.columns) if args.columns else None
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
    problem = _check_out(out, owned=owned, force=args.force)
    if problem:
        return _err(problem)

    import warnings

    from .report import InputError, compare

    extra: dict[str, Any] = {"level": args.level, "alpha": args.alpha, **kinds}
    with warnings.catch_warnings():
        # numerical libraries' warnings (empty slices, divide by zero in a measure that
        # handles it) are not the user's business; --debug shows them
        if not args.debug:
            warnings.simplefilter("ignore")
        try:
            if args.engine == "dask":
                ref, cur = args.reference, args.current
                names, target = (str(ref), str(cur)), args.target
                extra.update(engine="dask", scheduler=args.scheduler)
            else:
                ref, cur, names, target = _load(args)
            opts = dict(columns=columns, sample=args.sample, seed=args.seed,
                        permutations=args.permutations, n_boot=args.n_boot, names=names,
                        **extra)
            bar = _progress()
            if bar is not None:
                # the dask engine names its phases over the partitions, then the columns
                phases: tuple[str, ...] = ()
                if args.engine == "dask":
                    from .report._dask import PROGRESS_PHASES as phases
                with bar:
                    task = bar.add_task("comparing columns", total=None)

                    def step(done: int, total: int, text: str) -> None:
                        bar.update(task, completed=done, total=total,
                                   description=text if text in phases else f"compared {text}")

                    report = compare(ref, cur, target, progress=step, **opts)
            else:
                report = compare(ref, cur, target, **opts)
        except (InputError, ValueError, TypeError) as exc:
            if args.debug:
                raise
            return _err(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except OSError as exc:
            if args.debug:
                raise
            return _err(f"{getattr(exc, 'filename', '') or ''}: {exc.strerror or exc}"
                        .lstrip(": "))

        reader_left = _print_report(report, args.no_rich)
        writers = {"html": report.to_html, "json": report.to_json, "md": report.to_markdown}
        texts = {fmt: writers[fmt]() for fmt in formats}
    try:
        out.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            path = out / REPORT_FILES[fmt]
            path.write_text(texts[fmt], encoding="utf-8")
            if not reader_left:
                print(f"wrote {fmt:4s} {path}")
    except OSError as exc:
        if args.debug:
            raise
        return _err(f"{getattr(exc, 'filename', '') or out}: {exc.strerror or exc}")
    return 0


def _print_report(report: Any, no_rich: bool) -> bool:
    """Print the report; True when the reader of stdout left (``divergences report | head``):
    the report files are still written, silently. rich answers a broken pipe with
    ``SystemExit(1)`` after pointing stdout at devnull; plain print raises BrokenPipeError."""
    from .report._render import print_table
    try:
        print_table(report, use_rich=not no_rich)
        sys.stdout.flush()
    except (BrokenPipeError, SystemExit):
        try:  # Python's documented recipe: stdout to devnull, so later writes are silent
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # pragma: no cover - stdout without a descriptor
            pass
        return True
    return False


def _repo_root() -> Path:
    """The source checkout holding this package (``src/divergences`` -> the repo root)."""
    return Path(__file__).resolve().parents[2]


def _bench(args: Sequence[str]) -> int:
    root = _repo_root()
    if not (root / "benchmarks" / "__main__.py").is_file():
        return _err("the benchmarks live in the source repository; run `divergences bench` "
                    "from a source checkout (git clone, pip install -e .)")
    cmd = [sys.executable, "-m", "benchmarks", *args]
    # the front names itself after the command that ran it (benchmarks/__main__.py)
    env = {**os.environ, "DIVERGENCES_BENCH_PROG": "divergences bench"}
    return subprocess.call(cmd, cwd=root, env=env)


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
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return EXIT_INPUT
    try:
        return _report(args)
    except _UsageError as exc:
        return _err(str(exc))
    except KeyboardInterrupt:
        print("divergences: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `divergences report | head`: the reader left, nothing to say
        # Python's documented recipe: point stdout at devnull so the flush at exit is silent
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # pragma: no cover - stdout without a descriptor
            pass
        return 0
    except Exception as exc:  # the promise: one line, no traceback (--debug shows it)
        if getattr(args, "debug", False):
            raise
        return _err(f"unexpected {type(exc).__name__}: {exc}".splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
