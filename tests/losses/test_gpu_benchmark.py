"""The CPU-side logic of ``benchmarks/gpu_losses.py`` (the GPU run itself needs a device)."""

from __future__ import annotations

import pytest
import torch
from benchmarks import gpu_losses

TINY = ["--n", "16", "--v", "50", "--hidden", "8", "--teacher-hidden", "12"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present: the script would run")
def test_exits_cleanly_without_cuda(capsys):
    assert gpu_losses.main([]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "no CUDA" in out[0]


def test_cpu_run_prints_tables(capsys):
    assert gpu_losses.main([*TINY, "--device", "cpu", "--repeats", "1", "--warmup", "0",
                            "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "| ours | " in out and "| torch | " in out
    assert out.count("time / ours") == 2
    assert "logits: 1 chunks of 16 tokens" in out
    for peer in ("liger_jsd", "trl_gkd", "liger_fused_jsd", "liger_chunked_jsd"):
        if not gpu_losses.installed(peer):
            assert peer in out.split("skipped:")[1].splitlines()[0]


def test_dry_run_reports_chunks_and_ops(capsys):
    assert gpu_losses.main(["--dry-run", "--n", "512", "--v", "32000", "--hidden", "64",
                            "--chunk-bytes", str(64 << 20)]) == 0
    out = capsys.readouterr().out
    rows = (64 << 20) // (8 * 4 * 32000)
    assert f"logits: {-(-512 // rows)} chunks of {rows} tokens" in out
    assert "aten ops of ours" in out


def test_table_reports_errors_and_ratios():
    cfg = gpu_losses.build_parser().parse_args(TINY)
    rows = [{"impl": "ours", "time": 0.1, "peak": 2.0, "value": 1.0},
            {"impl": "peer", "time": 0.2, "peak": 8.0, "value": 1.001},
            {"impl": "broken", "error": "RuntimeError: no kernel"}]
    table = gpu_losses.to_markdown("logits", rows, cfg)
    assert "| peer | 200.0 | 2.00x |" in table and "| 4.00x | 1.0e-03 |" in table
    assert "| broken | RuntimeError: no kernel |" in table
