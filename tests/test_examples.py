"""Smoke tests of the runnable examples: each ``main(quick=True)`` runs the same code as the
full example on a few steps and returns its measured numbers (the full runs and their results
are in each example's docstring)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NAMES = [
    "preference_fdpo",
    "classification_pld",
    "unnormalized_compositional",
    "rl_siren",
    "distillation_divergences",
    "fairness_dcov",
]


@pytest.mark.parametrize("name", NAMES)
def test_example_quick_path_returns_finite_measurements(name: str, capsys) -> None:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    threads = torch.get_num_threads()
    try:
        spec.loader.exec_module(module)
        result = module.main(quick=True)
    finally:
        torch.set_num_threads(threads)
    assert isinstance(result, dict) and result
    assert all(isinstance(k, str) for k in result)
    assert all(math.isfinite(v) for v in result.values()), result
    assert capsys.readouterr().out.strip()  # it printed its table
