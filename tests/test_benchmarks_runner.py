"""The benchmark runner's machinery on tiny cases: agreement check, memory method, reports.

No timing is asserted: speed claims belong to ``benchmarks/RESULTS.md``, not to tests.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ lives beside src/, outside the package
    sys.path.insert(0, str(ROOT))

runner = importlib.import_module("benchmarks._runner")
run = importlib.import_module("benchmarks.run")
exact = importlib.import_module("benchmarks.exact")

linux_only = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="peak memory is read from /proc/self/status")

# A suite that needs only NumPy (its memory child starts fast): the input is 64 MiB, "big"
# allocates and touches 48 MiB more, "none" allocates nothing, "wrong" computes another value.
FAKE_SUITE = textwrap.dedent('''
    import numpy as np
    from benchmarks._runner import Case, Impl

    NAME = "fake"
    DESCRIPTION = "fake suite for the runner tests"
    QUICK = {}
    MIB = 1024 * 1024

    def add_arguments(parser):
        parser.add_argument("--wrong", action="store_true")

    def config_from_args(args):
        return {"wrong": args.wrong}

    def describe(config):
        return "fake"

    def _setup():
        return {"x": np.ones(64 * MIB // 8)}

    def _none(inp):
        return {"value": np.array([1.0, 2.0])}

    def _big(inp):
        y = np.ones(48 * MIB // 8)
        return {"value": np.array([1.0, 2.0]) * (y.sum() / y.size)}

    def _wrong(inp):
        return {"value": np.array([1.0, 2.1])}

    def make_cases(config):
        impls = [Impl("none", _none, ours=True), Impl("big", _big)]
        if config.get("wrong"):
            impls.append(Impl("wrong", _wrong))
        return [Case("alloc", _setup, tuple(impls), warmup_setup=lambda: {"x": np.ones(8)})]
''')


@pytest.fixture
def fake_suite(tmp_path, monkeypatch):
    (tmp_path / "fake_bench_suite.py").write_text(FAKE_SUITE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("fake_bench_suite", None)
    module = importlib.import_module("fake_bench_suite")
    monkeypatch.setitem(run.SUITES, "fake", "fake_bench_suite")
    yield module
    sys.modules.pop("fake_bench_suite", None)


# --------------------------------------------------------------------------------------------
# The exact suite, end to end at --quick sizes
# --------------------------------------------------------------------------------------------


def test_exact_quick_runs_and_records(tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    status = run.main(["exact", "--quick", "--variants", "--no-memory", "--threads", "1",
                       "--results", str(results), "--preliminary", "--note", "test run"])
    assert status == 0
    text = results.read_text()
    assert text.startswith("# Benchmark results")
    assert "suite `exact` · preliminary" in text
    assert "*test run*" in text
    assert "(64, 1000)" in text  # the --quick sizes
    assert f"torch {torch.__version__} (threads=1)" in text
    table = [ln for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in table]
    seen = {(c[0], c[1]) for c in cells}
    for case in ("kl/forward", "js/forward"):
        assert {(case, "**ours**"), (case, "torch"), (case, "scipy")} <= seen
        assert (case, "**ours[validate=False]**") in seen
    for case in ("kl/forward+backward", "js/forward+backward"):
        assert {(case, "**ours**"), (case, "torch")} <= seen
        assert (case, "scipy") not in seen  # scipy has no gradient
    for c in cells:
        assert float(c[2]) > 0 and float(c[3]) > 0  # times were recorded
        if c[7] != "reference":
            assert float(c[7]) <= 1e-4  # every side computed the same quantity
        assert c[4] == "n/a"  # --no-memory
    assert "appended to" in capsys.readouterr().out


def test_exact_suite_sides_agree_with_float64_reference():
    """Each implementation's values and gradients against an independent float64 computation."""
    inp = exact.make_inputs(6, 50, seed=3, grad=True)
    # the memory child rebuilds the cases from the configuration sent as JSON
    config = json.loads(json.dumps({"rows": 6, "vocab": 50, "seed": 3, "variants": True}))
    cases = exact.make_cases(config)
    assert [c.name for c in cases] == ["kl/forward", "kl/forward+backward", "js/forward",
                                       "js/forward+backward"]

    def kl_ref(ls, lt):
        return (lt.exp() * (lt - ls)).sum(-1)

    def js_ref(ls, lt):
        lm = torch.logaddexp(ls, lt) - math.log(2.0)
        return 0.5 * ((ls.exp() * (ls - lm)).sum(-1) + (lt.exp() * (lt - lm)).sum(-1))

    for name, formula in (("kl", kl_ref), ("js", js_ref)):
        s64 = inp["s"].detach().double().requires_grad_(True)
        ref = formula(torch.log_softmax(s64, -1), torch.log_softmax(inp["t"].double(), -1))
        (grad_ref,) = torch.autograd.grad(ref.sum(), s64)
        expected = {"value": ref.detach().numpy(), "grad": grad_ref.numpy()}
        for case in cases:
            if not case.name.startswith(name + "/"):
                continue
            for impl in case.impls:
                out = impl.run(inp)
                assert runner.discrepancy(out, expected) < 1e-5, (case.name, impl.name)
                assert set(out) == ({"value", "grad"} if "backward" in case.name else {"value"})
                assert set(impl.run(case.warmup_setup())) == set(out)  # the child's warm-up


def test_case_selection(capsys):
    names = ["kl/forward", "kl/forward+backward", "js/forward"]
    assert [n for n in names if runner.selected(n, ())] == names
    assert [n for n in names if runner.selected(n, ["kl"])] == names[:2]
    assert [n for n in names if runner.selected(n, ["kl/forward"])] == ["kl/forward"]
    assert [n for n in names if runner.selected(n, ["js/", "kl/forward+backward"])] == names[1:]
    assert not runner.selected("kl/forward", ["k"])
    assert run.main(["exact", "--cases", "nosuchcase", "--quick", "--no-record"]) == 2
    assert "no case of suite 'exact' matches ['nosuchcase']" in capsys.readouterr().err


def test_bad_arguments_are_usage_errors():
    with pytest.raises(SystemExit):
        run.main(["exact", "--repeats", "0", "--no-record"])
    with pytest.raises(SystemExit):
        run.main(["exact", "--rows", "0", "--no-record"])
    with pytest.raises(SystemExit):
        run.main(["nosuchsuite"])
    with pytest.raises(ValueError, match="unknown suite 'nosuchsuite'; choose one of: exact"):
        run.load_suite("nosuchsuite")


# --------------------------------------------------------------------------------------------
# Agreement check
# --------------------------------------------------------------------------------------------


def test_discrepancy_metric():
    ref = {"value": np.array([1.0, 2.0]), "grad": np.array([[1.0, -4.0], [0.0, 2.0]])}
    assert runner.discrepancy(ref, ref) == 0.0
    # values: elementwise relative
    assert runner.discrepancy({"value": np.array([1.0, 2.2])}, ref) == pytest.approx(0.1)
    # gradients: max norm relative to the largest reference entry (4)
    out = {"value": ref["value"], "grad": np.array([[1.0, -4.0], [0.4, 2.0]])}
    assert runner.discrepancy(out, ref) == pytest.approx(0.1)
    # torch tensors are compared too, and NaN is never agreement
    assert runner.discrepancy({"value": torch.tensor([1.0, 2.0])}, ref) == 0.0
    assert runner.discrepancy({"value": np.array([1.0, np.nan])}, ref) == math.inf
    with pytest.raises(runner.DiscrepancyError, match="shapes differ"):
        runner.discrepancy({"value": np.array([1.0])}, ref)
    with pytest.raises(ValueError, match="share no key"):
        runner.discrepancy({"other": np.array([1.0])}, ref)


def test_disagreeing_peer_fails_the_run(fake_suite, tmp_path, capsys):
    with pytest.raises(runner.DiscrepancyError, match="wrong disagrees with none by 0.05"):
        runner.run_suite(fake_suite, {"wrong": True}, runner.Options(repeats=1, memory=False),
                         log=lambda _: None)
    results = tmp_path / "R.md"
    assert run.main(["fake", "--wrong", "--no-memory", "--results", str(results)]) == 1
    assert "do not compute the same quantity" in capsys.readouterr().err
    assert not results.exists()  # nothing recorded from a failed run


# --------------------------------------------------------------------------------------------
# Peak memory in a fresh subprocess
# --------------------------------------------------------------------------------------------


@linux_only
def test_peak_memory_counts_the_call_not_the_inputs(fake_suite):
    big = runner.measure_peak_subprocess("fake_bench_suite", {}, "alloc", "big", threads=1)
    none = runner.measure_peak_subprocess("fake_bench_suite", {}, "alloc", "none", threads=1)
    mib = runner.MIB
    assert 44 * mib <= big["peak_bytes"] <= 60 * mib  # the 48 MiB the call allocates
    assert none["peak_bytes"] <= 8 * mib  # the 64 MiB input is below the baseline
    assert big["baseline_bytes"] >= 64 * mib
    if big["hwm_reset"]:
        assert not big["lower_bound"]


@linux_only
def test_memory_child_failure_is_reported(fake_suite):
    with pytest.raises(RuntimeError, match="memory child for alloc/missing failed"):
        runner.measure_peak_subprocess("fake_bench_suite", {}, "alloc", "missing", threads=1)


def test_report_with_memory_and_verdicts(fake_suite, tmp_path):
    report = runner.run_suite(fake_suite, {}, runner.Options(repeats=2, warmup=0,
                                                            memory=Path("/proc").exists()),
                              log=lambda _: None)
    rows = {r.impl: r for r in report.rows}
    assert len(rows["none"].times_s) == 2 and rows["big"].discrepancy == 0.0
    (verdict,) = report.verdicts()
    assert verdict["case"] == "alloc" and verdict["peer"] == "big"
    assert verdict["time_ratio"] == rows["none"].median_s / rows["big"].median_s
    md = runner.to_markdown(report)
    assert "| alloc | **none** |" in md and "| alloc | big |" in md
    if report.options.memory:
        assert verdict["met"] in (True, False)
        assert verdict["memory_ratio"] < 0.5  # "none" allocates nothing, "big" 48 MiB
        assert "target" in md


# --------------------------------------------------------------------------------------------
# Results file and machine
# --------------------------------------------------------------------------------------------


def test_append_results_keeps_earlier_sections(tmp_path):
    path = tmp_path / "RESULTS.md"
    runner.append_results(path, "## first\n\nbody one\n")
    runner.append_results(path, "## second\n\nbody two\n")
    text = path.read_text()
    assert text.startswith(runner.RESULTS_HEADER)
    assert text.index("## first") < text.index("## second")
    assert "body one" in text and "body two" in text


def test_machine_info_records_what_ran():
    info = runner.machine_info()
    for key in ("cpu", "logical_cpus", "usable_cpus", "platform", "python", "torch_threads"):
        assert info[key]
    assert info["versions"]["torch"] == torch.__version__
    assert info["versions"]["numpy"] == np.__version__
    line = runner.machine_line(info)
    assert "threads" in line and "scipy" in line


def test_thread_count_is_applied():
    before = torch.get_num_threads()
    try:
        runner.set_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        runner.set_threads(0)


def test_quick_runs_are_not_recorded_by_default(fake_suite, tmp_path, monkeypatch, capsys):
    default = tmp_path / "RESULTS.md"
    monkeypatch.setattr(runner, "DEFAULT_RESULTS", default)
    assert run.main(["fake", "--quick", "--no-memory"]) == 0
    assert not default.exists()
    assert run.main(["fake", "--no-memory", "--repeats", "1"]) == 0
    assert "| alloc | **none** |" in default.read_text()
    assert f"appended to {default}" in capsys.readouterr().out
