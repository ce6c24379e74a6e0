"""benchmarks.exact_sizes runs end to end at its quick sizes (the machinery, not the timings)."""

from benchmarks import exact_sizes


def test_quick_run_prints_both_cases(capsys, tmp_path):
    assert exact_sizes.main(["--quick", "--out", str(tmp_path / "r.md")]) == 0
    out = capsys.readouterr().out
    assert "| kl | 1x4 |" in out and "| js | 4x256 |" in out and "ours/scipy against size" in out
    assert not (tmp_path / "r.md").exists()  # quick runs are not recorded
