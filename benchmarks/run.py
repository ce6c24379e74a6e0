"""Command line of the runner's suites (``exact``): ``python -m benchmarks.run <suite> [flags]``.

Users run them through the front, ``divergences bench exact [--out FILE]``
(:mod:`benchmarks.__main__`, also ``python -m benchmarks``), which prints the results and
records them only in the file named by ``--out``: it calls :func:`main` here with ``--results
FILE`` for ``--out FILE``, ``--no-record`` otherwise. Called directly, :func:`main` keeps the
runner's own flags: ``--results PATH``, and a full run appends to ``benchmarks/RESULTS.md``
unless ``--no-record`` is given. It returns the exit status: 0 on success, 1 when two
implementations of a case disagree, 2 on a usage error (argparse errors raise ``SystemExit``
with status 2).

To add a suite, write the module (protocol in :mod:`benchmarks._runner`) and list it in
:data:`SUITES`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from ._runner import DiscrepancyError, add_common_arguments, run_from_args

# Suite name -> module; each module follows the protocol described in benchmarks._runner.
SUITES = {"exact": "benchmarks.exact"}


def load_suite(name: str) -> Any:
    """The suite module registered as ``name``."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of: {', '.join(sorted(SUITES))}")
    return importlib.import_module(SUITES[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time and measure divergences against its peers, side by side.")
    sub = parser.add_subparsers(dest="suite", required=True, metavar="SUITE")
    for name in SUITES:
        module = load_suite(name)
        p = sub.add_parser(name, help=module.DESCRIPTION, description=module.DESCRIPTION)
        module.add_arguments(p)
        add_common_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one suite from command-line arguments (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    module = load_suite(args.suite)
    try:
        run_from_args(module, args)
    except DiscrepancyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # e.g. --cases that select nothing
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
