"""``divergences bench`` (also ``python -m benchmarks``): one front for every suite.

``divergences bench`` lists the suites, what each compares and how long it takes;
``divergences bench SUITE [--out FILE] [--quick] [suite flags]`` says how long the run will
take, then runs it. Results are written only to a file the user names with ``--out``
(appended, with a header when the file is new); without it they are printed and nothing is
recorded. The tracked ``benchmarks/RESULTS.md`` changes only when named explicitly.
``divergences bench SUITE --help`` shows the suite's own flags. ``divergences bench summary``
regenerates the summary of the recorded runs (:mod:`benchmarks.summary`).

Each suite keeps its own command line (``python -m benchmarks.mi`` and so on, or
:func:`benchmarks.run.main` for the runner's suites); this front translates ``--out`` into the
suite's own results flag, and passes every other flag through unchanged.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import os
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

#: What ``divergences bench`` calls itself in its help (set by the ``divergences`` command).
PROG_VARIABLE = "DIVERGENCES_BENCH_PROG"


class Suite(NamedTuple):
    """How to reach one suite: its module, what it compares, how long it takes (wall time on
    the project's shared 2-core machine: full runs from the sections of RESULTS.md, ``--quick``
    runs timed there on 2026-12-02 at a load average of about 5, so upper ends), the flag its
    own parser names its results file by, and the arguments that come before the user's (the
    runner's suites are subcommands of :mod:`benchmarks.run`)."""

    module: str
    about: str
    full: str
    quick: str
    results_flag: str | None
    prefix: tuple[str, ...] = ()
    no_record: str | None = "--no-record"


SUITES = {
    "exact": Suite("benchmarks.run", "kl and js on logits: ours vs scipy.special and torch",
                   "5 to 10 min", "about 3 min", "--results", ("exact",)),
    "dependence": Suite("benchmarks.dependence", "distance correlation: ours vs dcor",
                        "about 5 min", "about 3 min", "--results"),
    "transport": Suite("benchmarks.transport",
                       "Sinkhorn divergences and solvers: ours vs POT and geomloss",
                       "15 to 30 min", "about 1.5 min", "--results"),
    "distill": Suite("benchmarks.distill",
                     "distillation losses: ours vs TRL and Liger-Kernel (speed, memory)",
                     "about 10 min", "about 1.5 min", "--results"),
    "mi": Suite("benchmarks.mi",
                "MI estimators: accuracy, coverage, speed vs sklearn, ennemi, infomeasure",
                "about 20 min", "about 1.5 min", "--out"),
    "coverage": Suite("benchmarks.coverage",
                      "coverage of every estimator's default interval on known answers",
                      "about 3 min", "about 15 s", "--out"),
}


NOT_TIMED = "not timed yet"

#: Modules of the folder that time nothing: they read the recorded results, so the front
#: lists them beside the suites and runs them with the user's arguments as they are (no
#: banner, no results flag).
COMMANDS = {
    "summary": Suite("benchmarks.summary",
                     "no timing: regenerates the summary atop RESULTS.md and in the docs "
                     "from the recorded runs", "about a second", "the same", None,
                     no_record=None),
}


def _found(path: Path) -> Suite:
    """A suite module that :data:`SUITES` does not list yet, read without importing it: its
    first docstring line, and the results flags its parser declares (``--results`` or
    ``--out``; ``--no-record`` when it records by default)."""
    source = path.read_text(encoding="utf-8")
    doc = (ast.get_docstring(ast.parse(source)) or path.stem).strip().splitlines()[0]
    flag = next((f for f in ("--results", "--out") if f'"{f}"' in source), None)
    return Suite(f"benchmarks.{path.stem}", doc.rstrip("."), NOT_TIMED, NOT_TIMED, flag,
                 no_record="--no-record" if '"--no-record"' in source else None)


def suites() -> dict[str, Suite]:
    """Every suite of the benchmarks folder: those of :data:`SUITES`, then any other module
    with a ``main`` (so that a new suite is reachable the day it lands)."""
    folder = Path(__file__).resolve().parent
    out = {name: s for name, s in SUITES.items() if (folder / f"{name}.py").is_file()}
    for path in sorted(folder.glob("*.py")):
        name = path.stem
        if name.startswith("_") or name in ("run", *out):
            continue
        if name in COMMANDS:
            out[name] = COMMANDS[name]
        elif "def main(" in path.read_text(encoding="utf-8"):
            out[name] = _found(path)
    return out


def _prog() -> str:
    return os.environ.get(PROG_VARIABLE) or "python -m benchmarks"


def usage() -> str:
    prog = _prog()
    found = suites()
    width = max(map(len, found))
    lines = [f"usage: {prog} SUITE [--out FILE] [--quick] [suite flags]",
             f"       {prog} SUITE --help      (the suite's own flags)", "",
             "Time and measure divergences against its peers, side by side.", "",
             "suites (wall time of a full run; of --quick):"]
    for name, s in found.items():
        lines += textwrap.wrap(s.about, 78, initial_indent=f"  {name:<{width}}  ",
                               subsequent_indent=" " * (width + 4))
        lines.append(f"  {'':<{width}}  {s.full}; --quick {s.quick}")
    lines += ["", "options:",
              "  --out FILE   append the results to FILE (default: print only, record nothing)",
              "  --quick      tiny sizes: checks the machinery in seconds, not the speed",
              "  -h, --help   show this help"]
    return "\n".join(lines)


def _split_out(args: list[str]) -> tuple[str | None, list[str]]:
    """``--out FILE`` (or ``--out=FILE``) taken out of ``args``."""
    out, rest, i = None, [], 0
    while i < len(args):
        a = args[i]
        if a == "--out":
            if i + 1 >= len(args):
                raise ValueError("--out needs a file name")
            out, i = args[i + 1], i + 2
            continue
        if a.startswith("--out="):
            out = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    return out, rest


def suite_argv(suite: Suite, args: Sequence[str]) -> list[str]:
    """The suite's own arguments for the user's: ``--out FILE`` becomes the suite's results
    flag; without it the suite is told not to record (its default file is the tracked
    RESULTS.md)."""
    out, rest = _split_out(list(args))
    for flag in (suite.results_flag, suite.no_record):
        if flag and flag in rest:
            raise ValueError(f"use --out FILE to name the results file ({flag} is the "
                             "suite's own spelling)")
    if out and suite.results_flag is None:
        raise ValueError("this suite writes no results file; it prints its results")
    if out:
        record = [suite.results_flag, out]
    else:
        record = [suite.no_record] if suite.no_record else []
    return [*suite.prefix, *rest, *record]


def _run(suite: Suite, argv: list[str]) -> int:
    module = importlib.import_module(suite.module)
    try:
        return int(module.main(argv) or 0)
    except SystemExit as exc:  # argparse in the suite: --help, or a usage error
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)


def _suite_help(name: str, suite: Suite) -> int:
    """The suite's own help, under this command's name."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = _run(suite, [*suite.prefix, "--help"])
    own = f"python -m {suite.module}" if not suite.prefix else \
        f"python -m benchmarks {' '.join(suite.prefix)}"
    text = buf.getvalue().replace(own, f"{_prog()} {name}")
    print(text, end="")
    if suite.results_flag:
        print(f"\n  --out FILE            append the results to FILE (the front's name for "
              f"{suite.results_flag})")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the front with ``argv`` (``sys.argv[1:]`` when None); return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    found = suites()
    if name in COMMANDS and name in found:
        return _run(found[name], rest)
    if name not in found:
        print(f"{_prog()}: error: unknown suite {name!r}; choose one of: "
              f"{', '.join(found)}", file=sys.stderr)
        return 2
    suite = found[name]
    if "-h" in rest or "--help" in rest:
        return _suite_help(name, suite)
    try:
        argv_ = suite_argv(suite, rest)
    except ValueError as exc:
        print(f"{_prog()}: error: {exc}", file=sys.stderr)
        return 2
    quick = "--quick" in rest
    out, _ = _split_out(rest)
    print(f"{_prog()} {name}: {suite.about}", flush=True)
    took = suite.quick if quick else suite.full
    print(f"  takes {took}{'' if took == NOT_TIMED else ' of wall time on 2 cores'}"
          f"{'' if quick else ' (--quick: ' + suite.quick + ')'}; results "
          f"{'appended to ' + out if out else 'printed only (--out FILE records them)'}",
          flush=True)
    t0 = time.perf_counter()
    code = _run(suite, argv_)
    print(f"{_prog()} {name}: done in {time.perf_counter() - t0:.0f} s (exit status {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
