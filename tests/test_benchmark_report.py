"""The ``report`` benchmark's machinery: its smallest case, our side only (no timing is
asserted; Evidently is pointed at a missing interpreter, so it is skipped with a message)."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ lives beside src/, outside the package
    sys.path.insert(0, str(ROOT))

report = importlib.import_module("benchmarks.report")

pytestmark = pytest.mark.skipif(not hasattr(os, "wait4"),
                                reason="the suite reaps its runs with os.wait4 (POSIX)")


def test_smallest_case_prints_the_table_without_evidently(tmp_path, capsys):
    out = tmp_path / "results.md"
    code = report.main(["--cases", "table", "--rows", "300", "--columns", "4", "--drifted", "2",
                        "--repeats", "1", "--format", "csv", "--no-warmup",
                        "--evidently-python", str(tmp_path / "no-such-python"),
                        "--workdir", str(tmp_path / "work"), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "Evidently skipped: no interpreter at" in printed
    assert "| case | tool | median s |" in printed
    row = next(ln for ln in printed.splitlines() if ln.startswith("| table | **divergences**"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[2]) > 0 and float(cells[4]) > 0     # wall time, peak RSS in MiB
    assert cells[-1].endswith("/ 4")                        # every column compared
    assert "| table | evidently" not in printed
    assert out.read_text().count("suite `report`") == 1     # --out appends the section


def test_column_plan_drifts_both_kinds_and_inputs_are_seeded(tmp_path):
    plan = report.column_plan(10, 3)
    assert [n for n, _, d in plan if d] == ["normal_00", "lognormal_01", "cat_03"]
    assert sum(k == "cat" for _, k, _ in report.column_plan(50, 5)) == 15
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    ra, ca, drifted = report.write_table(a, 50, 10, 3, 7, "csv")
    rb, cb, _ = report.write_table(b, 50, 10, 3, 7, "csv")
    assert ra.read_bytes() == rb.read_bytes() and ca.read_bytes() == cb.read_bytes()
    assert drifted == ["normal_00", "lognormal_01", "cat_03"]


def test_a_non_empty_workdir_is_refused(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(SystemExit, match="new or empty folder"):
        report.main(["--workdir", str(tmp_path), "--evidently-python", str(tmp_path / "no")])
