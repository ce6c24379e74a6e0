"""The ``distill`` benchmark's machinery on tiny inputs (no timing is asserted)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ lives beside src/, outside the package
    sys.path.insert(0, str(ROOT))

distill = importlib.import_module("benchmarks.distill")

linux_only = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="peak memory is read from /proc/self/status")

TINY = {
    "logits": {"kind": "logits", "n": 12, "v": 97, "dtype": "float32", "beta": 0.5},
    "fused": {"kind": "fused", "n": 12, "hs": 8, "ht": 10, "v": 97, "dtype": "float32",
              "beta": 0.5},
}


@pytest.mark.parametrize("kind", ["logits", "fused"])
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_ours_and_torch_compute_the_same_loss(kind, beta):
    spec = {**TINY[kind], "beta": beta}
    values = [distill.get_impl(kind, name, beta)(distill.make_inputs(spec))
              for name in ("ours", "torch")]
    assert values[0] == pytest.approx(values[1], rel=1e-5)


def test_sparse_runs_and_inputs_are_seeded():
    spec = {"kind": "sparse", "n": 6, "v": 50, "dtype": "float32", "k": 5}
    a = distill.get_impl("sparse", "ours", 0.5)(distill.make_inputs(spec))
    b = distill.get_impl("sparse", "ours", 0.5)(distill.make_inputs(spec))
    assert a == b and a > 0.0


def test_plan_reduced_and_full():
    args = distill.build_parser().parse_args([])
    cfg = distill.config_from_args(args)
    names = [distill.case_name(c) for c in distill.plan(cfg)]
    assert "logits (2048, 32000) float32 beta=0.5" in names
    assert "fused N=4096 H_s=1024 H_t=1536 V=32000 float32 beta=0" in names
    assert "logits (512, 128256) bfloat16 beta=0" not in names  # reduced set
    assert "sparse (2048, 32000) k=64" in names
    full = distill.config_from_args(distill.build_parser().parse_args(["--full"]))
    assert "logits (512, 128256) bfloat16 beta=0" in [distill.case_name(c)
                                                       for c in distill.plan(full)]
    with pytest.raises(SystemExit):
        distill.config_from_args(distill.build_parser().parse_args(["--repeats", "-1"]))


def test_markdown_and_targets():
    unit = 2048 * 32000 * 4
    rows = [
        {"kind": "logits", "case": "logits (2048, 32000) float32 beta=0.5", "impl": "ours",
         "median_s": 1.0, "peak_bytes": int(1.1 * unit), "unit_bytes": unit,
         "lower_bound": False, "value": 0.5},
        {"kind": "logits", "case": "logits (2048, 32000) float32 beta=0.5", "impl": "trl_gkd",
         "median_s": 4.0, "peak_bytes": 9 * unit, "unit_bytes": unit, "lower_bound": False,
         "value": 0.5},
        {"kind": "fused", "case": "fused N=8 float32 beta=0.5", "impl": "ours",
         "median_s": 1.0, "peak_bytes": unit, "extra_bytes": unit // 20, "unit_bytes": unit,
         "lower_bound": False, "value": 0.5},
        {"kind": "fused", "case": "fused N=8 float32 beta=0.5", "impl": "liger",
         "error": "exit 1: boom"},
        {"kind": "accuracy", "spec": {"n": 8, "v": 9, "fn": 4},
         "logits/float32": 1e-7, "logits/bfloat16": 1.6e-3, "logits/bfloat16/floor": 1.6e-3,
         "logits/bfloat16/equal_to_rounded": 1.0, "fused/float32/grad_hidden": 1e-7,
         "fused/float32/grad_weight": 1e-7},
    ]
    md = distill.to_markdown({"threads": 2, "repeats": 0}, rows, "under load", "now", "1 / 1")
    assert "*under load*" in md and "| 0.25x |" in md and "failed: exit 1: boom" in md
    assert "extra peak 1.100 (target <= 1.25), 4.00x faster than trl_gkd" in md
    assert "no chunked peer measured: **missed**" in md
    assert "gradient error float32: 1e-07 (target <= 1e-5): met" in md


@linux_only
def test_quick_end_to_end(tmp_path):
    out = tmp_path / "results.md"
    rc = distill.main(["--quick", "--sections", "fused", "--impls", "ours", "torch",
                       "--repeats", "0", "--results", str(out)])
    assert rc == 0
    text = out.read_text()
    assert "benchmarks.distill" in text and "| fused N=96" in text and "**ours**" in text
