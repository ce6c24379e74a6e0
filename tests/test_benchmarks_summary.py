"""The summary of benchmarks/RESULTS.md: parsing, choice of the newest quiet run, idempotence.

Every test works on copies in a temporary folder: the tracked files are never written.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ lives beside src/, outside the package
    sys.path.insert(0, str(ROOT))

summary = importlib.import_module("benchmarks.summary")
front = importlib.import_module("benchmarks.__main__")

MACHINE = ("- Machine: AMD EPYC, 2 logical CPUs (2 usable); 23.5 GiB RAM; commit {commit}; "
           "load average at start {load} / 1.0 / 1.0")
TABLE = """\
| case | implementation | median ms | min ms | peak MiB above inputs | ours/this time | ours/this memory | max rel. discrepancy vs ours |
|---|---|---:|---:|---:|---:|---:|---:|
| kl/forward | **ours** | 10.0 | 9.0 | 5.0 | - | - | reference |
| kl/forward | torch | 20.0 | 19.0 | 50.0 | {ratio}x | 0.1x | 0.0e+00 |

Target: ours within 1.5x of the fastest peer in time and not above it in peak memory.

- `kl/forward`: ours takes {ratio}x the time of the fastest peer (torch): target {verdict}
"""


def section(heading: str, note: str, commit: str, load: float, ratio: str,
            verdict: str) -> str:
    return "\n".join([f"## {heading}", "", note, "",
                      MACHINE.format(commit=commit, load=load), "",
                      TABLE.format(ratio=ratio, verdict=verdict), ""])


def synthetic() -> str:
    return "\n".join([
        "# Benchmark results", "", "Intro.", "",
        section("2026-11-01 10:00 UTC · suite `exact`", "*Quiet machine.*", "aaaaaaa", 0.5,
                "0.7", "met"),
        # newer but preliminary: skipped
        section("2026-11-03 10:00 UTC · suite `exact` · preliminary", "*Busy.*", "bbbbbbb",
                9.0, "3.0", "**missed**"),
        # newest quiet one: wins, although it is not last in the file
        section("2026-11-02 10:00 UTC · suite `exact`", "", "ccccccc", 1.0, "0.4", "met"),
        # newer still, but its note says it ran under load
        section("2026-11-04 10:00 UTC · suite `exact`", "*measured under load*", "ddddddd",
                1.0, "2.0", "**missed**"),
        "## 2026-11-05 10:00 UTC · suite `exact`", "", "no table in this one", "",
        "## Some hand-written notes", "", "text", ""])


def test_parse_sections_and_the_newest_quiet_run_wins() -> None:
    sections, skipped = summary.split_sections(synthetic())
    assert [s.commit for s in sections] == ["aaaaaaa", "bbbbbbb", "ccccccc", "ddddddd", "?"]
    assert [s.busy() is None for s in sections] == [True, False, True, False, True]
    assert any("Some hand-written notes" in m for m in skipped)
    result = summary.summarise(synthetic())
    rows = [r for r in result.rows if r.headline.startswith("exact")]
    assert len(rows) == 1
    (row,) = rows
    assert (row.case, row.peer, row.time, row.memory) == ("kl/forward", "torch", 0.4, 0.1)
    assert (row.section.commit, row.section.date, row.verdict) == ("ccccccc",
                                                                   "2026-11-02 10:00", "met")
    # the busy and unreadable sections are reported, not used
    assert any("preliminary" in m for m in result.skipped)
    assert any("2026-11-05" in m and "no headline case" in m for m in result.skipped)
    # suites without a quiet run are said to have none, with no number
    assert any(m.startswith("distance correlation") for m in result.missing)


def test_load_average_alone_marks_a_run_busy() -> None:
    text = section("2026-11-01 10:00 UTC · suite `exact`", "", "aaaaaaa", 4.0, "0.7", "met")
    (s,), _ = summary.split_sections(text)
    assert s.busy() is not None and "load average 4.0" in s.busy()


def test_block_replaced_not_duplicated_and_idempotent(tmp_path: Path) -> None:
    results, docs = tmp_path / "RESULTS.md", tmp_path / "index.md"
    results.write_text(synthetic(), encoding="utf-8")
    docs.write_text('--8<-- "benchmarks/README.md"\n', encoding="utf-8")
    summary.update(results, docs)
    first, first_docs = results.read_text(), docs.read_text()
    assert first.count(summary.START) == 1 and first.count(summary.END) == 1
    # the block goes above the log, and the log is kept as it was
    assert first.index(summary.END) < first.index("## 2026-11-01")
    assert _squeeze(summary._log_only(first)) == _squeeze(synthetic())
    assert first_docs.startswith('--8<-- "benchmarks/README.md"\n')
    assert first_docs.count(summary.START) == 1
    summary.update(results, docs)
    assert results.read_text() == first and docs.read_text() == first_docs
    # a run appended later (as the suites do) is picked up by replacing the block
    with results.open("a", encoding="utf-8") as f:
        f.write("\n" + section("2026-11-09 10:00 UTC · suite `exact`", "*Quiet machine.*",
                               "eeeeeee", 0.5, "0.3", "met"))
    summary.update(results, docs)
    text = results.read_text()
    assert text.count(summary.START) == 1 and "| eeeeeee |" in text
    assert "| ccccccc |" not in text.split(summary.END)[0]


def test_the_real_results_file(tmp_path: Path, capsys) -> None:
    results, docs = tmp_path / "RESULTS.md", tmp_path / "index.md"
    shutil.copy(ROOT / "benchmarks" / "RESULTS.md", results)
    shutil.copy(ROOT / "docs" / "benchmarks" / "index.md", docs)
    assert front.main(["summary", "--results", str(results), "--docs", str(docs)]) == 0
    once = results.read_text()
    assert front.main(["summary", "--results", str(results), "--docs", str(docs)]) == 0
    assert results.read_text() == once
    assert once.count(summary.START) == 1
    block = once.split(summary.START)[1].split(summary.END)[0]
    for name in ("distillation loss", "fused-linear loss", "exact KL/JS", "distance correlation",
                 "Sinkhorn divergence", "regression"):
        assert f"| {name}" in block, name
    # the sections that are not used are named on stderr
    assert "skipped" in capsys.readouterr().err
    # the log below the block is the tracked log, untouched
    tracked = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    assert _squeeze(summary._log_only(once)) == _squeeze(summary._log_only(tracked))


def _squeeze(text: str) -> str:
    """Blank runs collapsed: the block is inserted with a blank line around it."""
    return "\n".join(line for line in text.splitlines() if line.strip())


def test_numbers_and_verdicts() -> None:
    assert summary.number("0.54x") == 0.54
    assert summary.number("1,000,000") == 1e6
    assert summary.number("<= 12.5") == 12.5
    assert summary.number("stopped by hand") is None
    assert summary.verdict("target **missed**") == "missed"
    assert summary.verdict("error 1.33e-03: met") == "met"
    assert summary.verdict("(recorded; no target)") == ""
    assert summary.verdict("... : PASS") == "met"
    text = textwrap.dedent("""\
        | a | b |
        |---|--:|
        | **x** | 1 |
        """)
    assert summary.tables(text.splitlines()) == [[{"a": "x", "b": "1"}]]


def test_broken_markers_are_refused(tmp_path: Path, capsys) -> None:
    results = tmp_path / "RESULTS.md"
    text = synthetic().replace("## 2026-11-01", summary.START + "\n\n## 2026-11-01", 1)
    results.write_text(text, encoding="utf-8")
    assert summary.main(["--results", str(results), "--no-docs"]) == 1
    assert "markers" in capsys.readouterr().err
    assert results.read_text() == text
