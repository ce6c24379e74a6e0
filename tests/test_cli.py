"""The ``divergences`` command: end to end through main() and a subprocess, every error path."""

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from divergences import cli  # noqa: E402
from divergences.report import compare  # noqa: E402
from divergences.report._io import load_bundled, split_table  # noqa: E402

FAST = ["--permutations", "9", "--n-boot", "5"]


def _frames(seed=0):
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({"a": rng.normal(size=60), "b": rng.choice(["x", "y"], 60),
                        "t": rng.integers(0, 2, 60)})
    cur = pd.DataFrame({"a": rng.normal(0.5, 1.0, 50), "b": rng.choice(["x", "y"], 50),
                        "t": rng.integers(0, 2, 50)})
    return ref, cur


@pytest.fixture
def csvs(tmp_path):
    ref, cur = _frames()
    r, c = tmp_path / "ref.csv", tmp_path / "cur.csv"
    ref.to_csv(r, index=False)
    cur.to_csv(c, index=False)
    return r, c


def _digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def _run(argv, capsys):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_report_two_csvs_writes_everything(csvs, tmp_path, capsys):
    r, c = csvs
    before = [_digest(r), _digest(c)]
    out = tmp_path / "out"
    rc, stdout, err = _run(["report", r, c, "--target", "t", "--out", out, "--no-rich",
                            "--seed", "2", *FAST], capsys)
    assert rc == 0, err
    assert [_digest(r), _digest(c)] == before          # inputs never modified
    for fmt, name in (("html", "report.html"), ("json", "report.json"), ("md", "report.md")):
        assert f"wrote {fmt}" in stdout and str(out / name) in stdout
        assert (out / name).stat().st_size > 0
    d = json.loads((out / "report.json").read_text())
    assert d["meta"]["reference"] == str(r) and d["meta"]["target"] == "t"
    assert {c["name"] for c in d["columns"]} == {"a", "b"}
    # the numbers equal the Python face on the same data
    rep = compare(pd.read_csv(r), pd.read_csv(c), "t", seed=2, permutations=9, n_boot=5)
    assert d["columns"] == json.loads(rep.to_json())["columns"]
    html = (out / "report.html").read_text()
    assert 'data-figure="js"' in html and "<script src" not in html and "<link" not in html
    assert "mutual information" in stdout


def test_existing_output_needs_force(csvs, tmp_path, capsys):
    r, c = csvs
    out = tmp_path / "out"
    out.mkdir()
    keep = out / "keep.txt"
    keep.write_text("mine")
    rc, _, err = _run(["report", r, c, "--out", out, *FAST], capsys)
    assert rc == 2 and "--force" in err and "Traceback" not in err
    assert keep.read_text() == "mine"
    rc, _, _ = _run(["report", r, c, "--out", out, "--format", "json", "--force", *FAST],
                    capsys)
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "report.json"]
    assert keep.read_text() == "mine"          # --force replaces report files only


def test_parquet_files_and_folders(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    ref, cur = _frames(1)
    folder = tmp_path / "refdir"
    folder.mkdir()
    ref.iloc[:30].to_parquet(folder / "part-0.parquet")
    ref.iloc[30:].to_parquet(folder / "part-1.parquet")
    cur.to_parquet(tmp_path / "cur.parquet")
    out = tmp_path / "o"
    rc, _, err = _run(["report", folder, tmp_path / "cur.parquet", "--out", out,
                       "--format", "json", "--columns", "a", *FAST], capsys)
    assert rc == 0, err
    d = json.loads((out / "report.json").read_text())
    assert [c["name"] for c in d["columns"]] == ["a"]
    assert d["columns"][0]["n_reference"] == 60


def test_one_file_with_split(csvs, tmp_path, capsys):
    r, _ = csvs
    out = tmp_path / "o"
    rc, stdout, err = _run(["report", r, "--split", "t=1", "--out", out, "--format", "md",
                            "--no-rich", *FAST], capsys)
    assert rc == 0, err
    md = (out / "report.md").read_text()
    assert "(t == 1)" in md and "| a |" not in md.split("##")[0]
    df = pd.read_csv(r)
    assert f": {int((df.t != 1).sum())} rows" in stdout


def test_bundled_default_matches_python_face(tmp_path, capsys, monkeypatch):
    """The demo: RAND HIE person-years on an individual deductible plan (current) against
    the other plans (reference), outpatient visits as the target (not the split)."""
    monkeypatch.chdir(tmp_path)
    cols = "disea,lncoins,physlm"
    rc, stdout, err = _run(["report", "--columns", cols, "--format", "json", "--no-rich",
                            *FAST], capsys)
    assert rc == 0, err
    out = tmp_path / "divergences-report"
    assert "wrote json divergences-report/report.json" in stdout
    d = json.loads((out / "report.json").read_text())
    assert d["meta"]["rows_reference"] == 4391 and d["meta"]["rows_current"] == 1609
    assert d["meta"]["target"] == "mdvis"
    assert d["meta"]["reference"] == "bundled randhie.csv, idp != 1"
    ref, cur = split_table(load_bundled(), "idp", "1", "bundled")
    assert len(ref) == 4391 and set(ref.columns) == set(cur.columns)
    rep = compare(ref, cur, "mdvis", columns=cols.split(","), permutations=9, n_boot=5)
    assert d["columns"] == json.loads(rep.to_json())["columns"]
    # the number of chronic diseases tells most about visits; the plan's coinsurance drifts
    assert d["target"]["mutual_information"][0]["column"] == "disea"
    assert {c["name"]: c["drift"] for c in d["columns"]}["lncoins"]
    assert "with target 'mdvis'" in stdout and "target target" not in stdout


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: [d / "missing.csv", d / "cur.csv"], "missing.csv: no such file"),
        (lambda d: [_write(d / "bin.csv", bytes(range(256)) * 4), d / "cur.csv"],
         "bin.csv: not a text CSV file"),
        (lambda d: [_write(d / "empty.csv", b""), d / "cur.csv"], "empty.csv: the file is empty"),
        (lambda d: [_write(d / "head.csv", b"a,b,t\n"), d / "cur.csv"], "head.csv: no rows"),
        (lambda d: [_write(d / "latin.csv", "a\n\xe9\xe8\n".encode("latin-1")), d / "cur.csv"],
         "latin.csv: not UTF-8"),
        (lambda d: [_write(d / "bad.parquet", b"PAR1 not really"), d / "cur.csv"],
         "bad.parquet: could not be read as Parquet"),
        (lambda d: [_write(d / "other.csv", b"p,q\n1,2\n3,4\n"), d / "cur.csv"],
         "share no column"),
        (lambda d: [d / "ref.csv", d / "cur.csv", "--target", "nope"], "no target column 'nope'"),
        (lambda d: [_write(d / "nan.csv", b"a,t\n,1\n,0\n"), d / "cur.csv", "--columns", "a"],
         "can be compared .*a: every value is missing in .*nan.csv"),
        (lambda d: [_write(d / "mixed.csv", b"a,b,t\n1,x,1\nfoo,y,0\n"), d / "cur.csv"],
         "column 'a' is categorical in .*mixed.csv but numeric"),
        (lambda d: [d / "ref.csv"], "one data set given"),
        (lambda d: [d / "ref.csv", "--split", "t"], "COLUMN=VALUE"),
        (lambda d: [d / "ref.csv", "--split", "t=7"], "no row has t == '7'"),
        (lambda d: [d / "ref.csv", "--split", "zz=1"], "no column 'zz' to split on"),
        (lambda d: [d / "ref.csv", d / "cur.csv", "--split", "t=1"], "--split takes one input"),
        (lambda d: [d / "ref.csv", d / "cur.csv", "--format", "pdf"], "--format"),
        (lambda d: [d / "ref.csv", d / "cur.csv", "--sample", "1"], "--sample must be"),
        (lambda d: [d / "ref.csv", d / "cur.csv", "--columns", "a,zz"], "no column 'zz'"),
        (lambda d: [_mkdir(d / "emptydir"), d / "cur.csv"], "holds no .csv or .parquet"),
    ],
)
def test_error_paths(csvs, tmp_path, capsys, make, match):
    r, c = csvs
    argv = make(tmp_path)
    before = [_digest(r), _digest(c)]
    rc, _, err = _run(["report", *argv, "--out", tmp_path / "o", *FAST], capsys)
    assert rc == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("divergences: error: "), err
    assert re.search(match, lines[0]), lines[0]
    assert not (tmp_path / "o").exists()
    assert [_digest(r), _digest(c)] == before


def test_an_all_missing_column_is_skipped_not_fatal(csvs, tmp_path, capsys):
    """One bad column never stops the report (issue 13): an all-NaN column is listed under
    skipped with the reason, and the other columns are compared."""
    _, c = csvs
    ref, _ = _frames()
    ref["a"] = np.nan
    r = tmp_path / "nan.csv"
    ref.to_csv(r, index=False)
    out = tmp_path / "o"
    rc, stdout, err = _run(["report", r, c, "--out", out, "--format", "json", "--no-rich",
                            *FAST], capsys)
    assert rc == 0 and err == "", err
    d = json.loads((out / "report.json").read_text())
    assert d["skipped"] == [{"column": "a", "reason": f"every value is missing in {r}"}]
    assert {x["name"] for x in d["columns"]} == {"b", "t"}
    assert "skipped: a (every value is missing in" in " ".join(stdout.split())


def test_progress_bar_texts(csvs, tmp_path, capsys, monkeypatch):
    """The bar reads 'reading partitions' while the dask engine reads, and 'compared COL'
    per column (it read 'compared reading partitions')."""
    import divergences.report as report_module

    seen = []

    class Bar:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def add_task(self, description, total):
            seen.append(description)
            return 0

        def update(self, task, completed, total, description):
            seen.append(description)

    real = report_module.compare

    def fake(ref, cur, target, progress, **kw):
        # what the dask engine reports, then its sample's columns; the local run does the work
        for done, total, what in ((1, 4, "reading partitions"),
                                  (4, 4, "counting and sampling partitions"), (1, 1, "a")):
            progress(done, total, what)
        return real(pd.read_csv(ref), pd.read_csv(cur), target, columns=["a"],
                    permutations=9, n_boot=5)

    monkeypatch.setattr(cli, "_progress", Bar)
    monkeypatch.setattr(report_module, "compare", fake)
    r, c = csvs
    rc, _, err = _run(["report", r, c, "--engine", "dask", "--out", tmp_path / "o",
                       "--format", "json", *FAST], capsys)
    assert rc == 0, err
    assert seen == ["comparing columns", "reading partitions",
                    "counting and sampling partitions", "compared a"]


def _mkdir(p: Path) -> Path:
    p.mkdir()
    return p


def test_usage_errors(capsys):
    rc, _, err = _run(["report", "--sample", "abc"], capsys)
    assert rc == 2 and "invalid int value" in err and "Traceback" not in err
    rc, out, _ = _run([], capsys)
    assert rc == 2 and "report" in out
    rc, out, _ = _run(["--help"], capsys)
    assert rc == 0 and "bench" in out


def test_bench_runs_the_source_checkout_suites(capsys, monkeypatch, tmp_path):
    root = cli._repo_root()
    if not (root / "benchmarks" / "__main__.py").is_file():
        pytest.skip("not a source checkout")
    calls = []
    monkeypatch.setattr(cli.subprocess, "call",
                        lambda cmd, cwd, env: calls.append((cmd, cwd, env)) or 0)
    assert cli.main(["bench", "exact", "--help"]) == 0
    assert [c[:2] for c in calls] == [([sys.executable, "-m", "benchmarks", "exact", "--help"],
                                       root)]
    assert calls[0][2]["DIVERGENCES_BENCH_PROG"] == "divergences bench"
    monkeypatch.setattr(cli, "_repo_root", lambda: tmp_path)
    rc, _, err = _run(["bench"], capsys)
    assert rc == 2 and "source repository" in err and len(err.strip().splitlines()) == 1


def _front(monkeypatch):
    root = cli._repo_root()
    if not (root / "benchmarks" / "__main__.py").is_file():
        pytest.skip("not a source checkout")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("DIVERGENCES_BENCH_PROG", "divergences bench")
    import importlib

    return importlib.import_module("benchmarks.__main__")


def test_bench_help_names_itself_and_every_suite(monkeypatch, capsys):
    front = _front(monkeypatch)
    assert front.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: divergences bench SUITE")
    assert "python -m benchmarks" not in out
    # every suite module of the folder is listed, with how long it takes
    folder = cli._repo_root() / "benchmarks"
    modules = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")} - {"run"}
    found = front.suites()
    assert set(found) == modules, set(found) ^ modules
    for name, suite in found.items():
        assert f"  {name} " in out and suite.full in out and f"--quick {suite.quick}" in out
    assert all(len(line) <= 80 for line in out.splitlines())
    for name in front.SUITES:                     # the known ones say how long they take
        assert front.NOT_TIMED not in front.SUITES[name].full
    assert front.main([]) == 2 and "usage: divergences bench" in capsys.readouterr().out


def test_bench_results_go_only_where_the_user_says(monkeypatch, capsys, tmp_path):
    front = _front(monkeypatch)
    seen = []

    def fake(suite, argv):
        seen.append((suite.module, argv))
        return 0

    monkeypatch.setattr(front, "_run", fake)
    for name, suite in front.SUITES.items():
        if name not in front.suites():
            continue
        assert front.main([name, "--quick"]) == 0
        module, argv = seen[-1]
        assert module == suite.module and argv == [*suite.prefix, "--quick", "--no-record"]
        out = capsys.readouterr().out
        # how long it takes, said before it starts
        assert out.splitlines()[1].startswith(f"  takes {suite.quick} of wall time")
        assert "printed only" in out
        target = tmp_path / f"{name}.md"
        assert front.main([name, "--out", str(target)]) == 0
        assert seen[-1][1] == [*suite.prefix, suite.results_flag, str(target)]
        out = capsys.readouterr().out
        assert f"takes {suite.full}" in out and f"appended to {target}" in out
    rc = front.main(["exact", "--results", "x.md"])
    assert rc == 2 and "use --out FILE" in capsys.readouterr().err
    # a suite the table does not list yet is found, and its flags read from its source
    new = tmp_path / "newsuite.py"
    new.write_text('"""A new suite.\n\nMore."""\n\ndef main(argv=None):\n'
                   '    p.add_argument("--out")\n    return 0\n')
    found = front._found(new)
    assert found.about == "A new suite" and found.results_flag == "--out"
    assert front.suite_argv(found, ["--quick"]) == ["--quick"]       # records only with --out
    assert front.suite_argv(found, ["--out", "r.md"]) == ["--out", "r.md"]
    assert front.main(["nope"]) == 2 and "unknown suite 'nope'" in capsys.readouterr().err


def test_bench_suite_help_is_the_suites_own_under_this_name(monkeypatch, capsys):
    front = _front(monkeypatch)
    assert front.main(["coverage", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: divergences bench coverage")
    assert "--seeds" in out and "--out FILE" in out


def test_subprocess_end_to_end(csvs, tmp_path):
    """One real process (each start imports torch, which is slow): an input error exits 2
    with one line on stderr and no traceback. The success path runs through main() above."""
    _, c = csvs
    res = subprocess.run([sys.executable, "-m", "divergences.cli", "report",
                          str(tmp_path / "nope.csv"), str(c), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr.strip() == (
        f"divergences: error: {tmp_path / 'nope.csv'}: no such file or folder")
    assert not (tmp_path / "o").exists()


def test_sample_option(csvs, tmp_path, capsys):
    r, c = csvs
    for value, sampled in (("20", 20), ("0", 60)):
        out = tmp_path / f"s{value}"
        rc, stdout, err = _run(["report", r, c, "--sample", value, "--out", out, "--format",
                                "json", "--no-rich", *FAST], capsys)
        assert rc == 0, err
        meta = json.loads((out / "report.json").read_text())["meta"]
        # the true size of the file, whatever was sampled from it (issue 13)
        assert meta["rows_reference"] == 60 and meta["rows_current"] == 50
        assert meta["sampled_reference"] == sampled
        assert meta["sampled_current"] == min(sampled, 50)
        assert meta["sampled"] == (value == "20")
        text = " ".join(stdout.split())          # long paths wrap at 80 columns
        assert (f"{r}: 60 rows, sampled 20 of 60" in text) == (value == "20")


# --------------------------------------------------------------------------------------------
# Help, version and options (issue 13: --help at once, every argument explained)
# --------------------------------------------------------------------------------------------

HEAVY = ("torch", "pandas", "scipy", "rich", "pyarrow", "dask", "jinja2", "sklearn")

_IMPORT_PROBE = """
import io, json, sys, contextlib
import divergences
base = set(sys.modules)
from divergences import cli
with contextlib.redirect_stdout(io.StringIO()):
    codes = [cli.main(a) for a in (["--help"], ["report", "--help"], ["--version"])]
new = sorted(set(sys.modules) - base)
print(json.dumps({"codes": codes, "new": new, "torch_in_base": "torch" in base,
                  "torch_now": "torch" in sys.modules}))
"""


def test_help_and_version_import_nothing_heavy():
    """``divergences --help``, ``report --help`` and ``--version`` load no numerical or
    report module beyond what ``import divergences`` itself loads (the package's own import
    cost belongs to the core; cli.py adds nothing heavy)."""
    res = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    probe = json.loads(res.stdout.strip().splitlines()[-1])
    assert probe["codes"] == [0, 0, 0]
    heavy = [m for m in probe["new"]
             if m.split(".")[0] in HEAVY or m.startswith(("divergences.report", "numpy"))]
    assert heavy == [], heavy
    if not probe["torch_in_base"]:  # once the core is torch-free, the CLI must be too
        assert not probe["torch_now"]


def test_every_argument_has_help_and_version(capsys):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, cli.argparse._SubParsersAction))
    for p in (parser, sub.choices["report"]):
        for action in p._actions:
            if isinstance(action, cli.argparse._SubParsersAction):
                continue
            assert action.help and action.help.strip(), (p.prog, action.dest)
    rc, out, _ = _run(["--version"], capsys)
    assert rc == 0 and re.fullmatch(r"divergences \S+\n", out), out


def test_level_reaches_the_report(csvs, tmp_path, capsys):
    r, c = csvs
    out = tmp_path / "o"
    rc, _, err = _run(["report", r, c, "--level", "0.8", "--out", out, "--format", "json",
                       "--columns", "a", *FAST], capsys)
    assert rc == 0, err
    assert json.loads((out / "report.json").read_text())["meta"]["level"] == 0.8
    for bad in ("1", "0", "-0.5", "1.5"):
        rc, _, err = _run(["report", r, c, "--level", bad, "--out", tmp_path / "p", *FAST],
                          capsys)
        assert rc == 2 and err.count("\n") == 1 and "--level" in err, err
    assert not (tmp_path / "p").exists()


def _no_work(monkeypatch):
    """Make any comparison fail loudly: what is refused must be refused before it."""
    import divergences.report as report_module

    def boom(*args, **kwargs):
        raise AssertionError("compare() ran before --out was checked")

    monkeypatch.setattr(report_module, "compare", boom)


def test_unwritable_out_is_refused_before_any_work(csvs, tmp_path, capsys, monkeypatch):
    r, c = csvs
    _no_work(monkeypatch)
    a_file = tmp_path / "file.txt"
    a_file.write_text("mine")
    for out, match in ((a_file, "exists and is not a folder"),
                       (a_file / "sub", "is not a folder"),
                       (Path("/proc/divergences-report-test"), "cannot write there")):
        rc, stdout, err = _run(["report", r, c, "--out", out, *FAST], capsys)
        assert rc == 2 and stdout == "", (out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("divergences: error: "), err
        assert match in lines[0], lines[0]
    assert a_file.read_text() == "mine"


def test_demo_command_runs_twice_but_a_users_out_is_protected(tmp_path, capsys, monkeypatch):
    """The README's `divergences report` re-creates its own output folder; an explicit
    --out, or a foreign file in the demo folder, keeps the --force protection."""
    monkeypatch.chdir(tmp_path)
    demo = ["report", "--columns", "disea", "--format", "json,md", "--no-rich", *FAST]
    for _ in range(2):
        rc, _, err = _run(demo, capsys)
        assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / cli.DEFAULT_OUT).iterdir()) == [
        "report.json", "report.md"]
    # the same folder named by the user is the user's: protected
    rc, _, err = _run([*demo, "--out", cli.DEFAULT_OUT], capsys)
    assert rc == 2 and "--force" in err
    # a file the demo did not write makes the folder the user's too
    (tmp_path / cli.DEFAULT_OUT / "notes.txt").write_text("mine")
    rc, _, err = _run(demo, capsys)
    assert rc == 2 and "--force" in err
    assert (tmp_path / cli.DEFAULT_OUT / "notes.txt").read_text() == "mine"


def test_numerical_warnings_do_not_leak(csvs, tmp_path, capsys, monkeypatch):
    import warnings

    import divergences.report as report_module

    real = report_module.compare

    def noisy(*args, **kwargs):
        warnings.warn("Mean of empty slice", RuntimeWarning, stacklevel=1)
        np.log(np.zeros(1))  # divide by zero encountered in log
        return real(*args, **kwargs)

    monkeypatch.setattr(report_module, "compare", noisy)
    r, c = csvs
    rc, stdout, err = _run(["report", r, c, "--out", tmp_path / "o", "--no-rich", *FAST],
                           capsys)
    assert rc == 0, err
    assert "Warning" not in err + stdout and "divide by zero" not in err + stdout


def test_an_unexpected_failure_is_one_line(csvs, tmp_path, capsys, monkeypatch):
    import divergences.report as report_module

    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke\nsecond line")

    monkeypatch.setattr(report_module, "compare", broken)
    r, c = csvs
    rc, stdout, err = _run(["report", r, c, "--out", tmp_path / "o", *FAST], capsys)
    assert rc == 2 and stdout == "" and "Traceback" not in err
    assert err == "divergences: error: unexpected RuntimeError: something inside broke\n"
    assert not (tmp_path / "o").exists()


def test_kind_overrides_and_alpha(csvs, tmp_path, capsys):
    r, c = csvs
    out = tmp_path / "o"
    rc, _, err = _run(["report", r, c, "--categorical", "t", "--numeric", "b", "--out", out,
                       "--format", "json", "--alpha", "0.1", *FAST], capsys)
    # b holds text: asking for numbers is an input error, one line
    assert rc == 2 and "'b'" in err and err.count("\n") == 1, err
    rc, _, err = _run(["report", r, c, "--categorical", "t", "--out", out, "--format", "json",
                       "--alpha", "0.1", *FAST], capsys)
    assert rc == 0, err
    d = json.loads((out / "report.json").read_text())
    assert {x["name"]: x["kind"] for x in d["columns"]}["t"] == "categorical"
    assert d["meta"]["alpha"] == 0.1
    rc, _, err = _run(["report", r, c, "--categorical", "a,t", "--numeric", "t",
                       "--out", tmp_path / "p", *FAST], capsys)
    assert rc == 2 and "both name t" in err
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("plain", [True, False])
def test_a_reader_that_leaves_early_still_gets_the_files(csvs, tmp_path, monkeypatch, plain):
    """`divergences report a.csv b.csv | head -3`: the pipe breaks while the report prints;
    the run still writes its files and exits 0, with nothing on stderr."""
    pytest.importorskip("rich")
    sink = (tmp_path / "sink").open("w")

    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

        def fileno(self):
            return sink.fileno()

        def isatty(self):
            return False

    r, c = csvs
    out = tmp_path / "o"
    monkeypatch.setattr(sys, "stdout", Closed())
    rc = cli.main(["report", str(r), str(c), "--out", str(out), *FAST]
                  + (["--no-rich"] if plain else []))
    monkeypatch.undo()
    sink.close()
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]


DEMO_IMPORTS = """
import json, sys, traceback
stack = []
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not stack:
            stack.extend(f.filename for f in traceback.extract_stack())
        return None
sys.meta_path.insert(0, Watch())
from divergences import cli
cli.main(["report", "--out", sys.argv[1], "--no-rich", "--format", "json"])
print(json.dumps({"pandas": "pandas" in sys.modules, "torch": stack}))
"""


def test_demo_imports_neither_pandas_nor_torch(tmp_path):
    """The demo's speed (issue 13): the bundled table is read without pandas, and nothing on
    its path (the report, the CLI, the joint MMD test, the estimators behind ``kl`` and the
    MI ranking) imports torch: 1.5 s of a 2.5 s command."""
    out = subprocess.run([sys.executable, "-c", DEMO_IMPORTS, str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=300, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert not seen["pandas"]
    assert seen["torch"] == [], [f for f in seen["torch"] if "divergences" in Path(f).parts]
