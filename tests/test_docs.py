"""The documentation site: it builds in strict mode, documents the public API, and its examples run.

* ``mkdocs build --strict`` (skipped when mkdocs, mkdocs-material or mkdocstrings are not
  installed: the ``docs`` extra) into a temporary folder, once for the module;
* every public name of the API contract (design.md, "Public API contract") and every
  name in the ``__all__`` of a documented module has an entry in the API reference: a
  ``::: module`` page that exports it (always checked) and an anchor in the built HTML;
* the ``pycon`` examples of the narrative pages run as doctests, in order, per page.
"""

from __future__ import annotations

import doctest
import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# The public API contract (design.md), module by module. `divergences` is the core namespace.
CONTRACT: dict[str, tuple[str, ...]] = {
    "divergences": (
        "kl", "js", "skew_kl", "tv", "hellinger", "chi2", "jeffreys", "bhattacharyya",
        "renyi", "alpha_divergence", "entropy", "cross_entropy", "f_divergence",
    ),
    "divergences.fdiv": ("FDivergence", "get", "names"),
    "divergences.gaussian": (
        "kl", "renyi", "hellinger", "bhattacharyya", "wasserstein2", "mutual_information",
    ),
    "divergences.estimate": (
        "Estimate", "entropy", "mutual_information", "conditional_mutual_information", "kl",
        "js", "independence_test", "diffusion_spectral_entropy",
        "diffusion_spectral_mutual_information",
    ),
    "divergences.transport": (
        "sinkhorn", "sinkhorn_divergence", "wasserstein_1d", "sliced_wasserstein", "monge_gap",
    ),
    "divergences.kernels": ("mmd", "cauchy_schwarz", "cs_mutual_information"),
    "divergences.dependence": (
        "distance_covariance", "distance_correlation", "joint_distance_covariance",
        "concatenated_distance_covariance", "hsic",
    ),
    "divergences.coupling": ("min_entropy_coupling",),
    "divergences.losses": (
        "distillation_loss", "fused_linear_distillation_loss", "DistillationLoss",
        "FusedLinearDistillationLoss", "sparse_distillation_loss", "f_dpo_loss",
        "plackett_luce_distillation_loss", "sinkhorn_distillation_loss",
        "balanced_distillation_loss", "comp_sum_loss", "dph_penalty",
        "selective_entropy_regularizer", "f_dpg_loss", "compositional_nll", "nce_loss",
        "attention_entropy_penalty", "fairness_penalty", "cs_information_bottleneck_loss",
    ),
    "divergences.llm": (
        "token_statistics", "detection_test", "dc_pdd_score", "reference_frequencies",
        "selective_contrastive_logits", "SelectiveContrastiveLogitsProcessor",
        "t3_coefficients",
    ),
    "divergences.text": (
        "select_by_divergence", "compression_rate", "normalized_compression_distance",
    ),
    "divergences.bounds": ("pinsker", "bretagnolle_huber", "representation_shift"),
    "divergences.report": ("compare",),
}
# Members the contract names explicitly (fields and methods).
CONTRACT_MEMBERS = (
    "divergences.estimate.Estimate.value", "divergences.estimate.Estimate.stderr",
    "divergences.estimate.Estimate.ci_low", "divergences.estimate.Estimate.ci_high",
    "divergences.estimate.Estimate.method", "divergences.estimate.Estimate.n",
    "divergences.estimate.IndependenceTestResult.statistic",
    "divergences.estimate.IndependenceTestResult.pvalue",
    "divergences.fdiv.FDivergence.name", "divergences.fdiv.FDivergence.f",
    "divergences.fdiv.FDivergence.f_prime", "divergences.fdiv.FDivergence.conjugate",
    "divergences.fdiv.FDivergence.weight",
)
# Shown on another page than the module that re-exports them (api/core.md's filters).
DOCUMENTED_ELSEWHERE = {"divergences.FDivergence": "divergences.fdiv.FDivergence"}
# Narrative pages whose ``pycon`` blocks are doctests.
EXAMPLE_PAGES = (
    "quickstart.md", "conventions.md", "recipes/distillation.md",
    "recipes/mutual-information.md", "recipes/report.md",
)


def api_pages() -> dict[str, Path]:
    """``{module: page}`` for every ``::: module`` directive under docs/api/."""
    pages = {}
    for page in sorted((DOCS / "api").glob("*.md")):
        for module in re.findall(r"^::: *([\w.]+)\s*$", page.read_text(), re.MULTILINE):
            pages[module] = page
    return pages


def public_names(module: str) -> list[str]:
    """The non-module names of ``module.__all__``."""
    mod = importlib.import_module(module)
    return [n for n in mod.__all__ if not type(getattr(mod, n)).__name__ == "module"]


def test_every_contract_module_has_an_api_page():
    pages = api_pages()
    assert set(CONTRACT) <= set(pages), sorted(set(CONTRACT) - set(pages))
    assert "divergences.distributed" in pages
    for module, names in CONTRACT.items():
        exported = set(public_names(module))
        missing = [n for n in names if n not in exported]
        assert not missing, f"{module} does not export {missing}"


def test_nav_lists_every_page():
    text = (ROOT / "mkdocs.yml").read_text()
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")
             if "_ext" not in p.parts]
    missing = [p for p in pages if f" {p}" not in text]
    assert not missing, f"pages missing from the nav of mkdocs.yml: {missing}"


# --------------------------------------------------------------------------------------------
# The strict build
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # .ci/run builds the site with --strict before the tests and names it here, so CI builds
    # it once; the checks below then read that build.
    prebuilt = os.environ.get("DIVERGENCES_DOCS_SITE")
    if prebuilt and (Path(prebuilt) / "index.html").is_file():
        yield Path(prebuilt)
        return
    for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(name, reason="the docs extra is not installed")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        # Not --quiet: it hides warnings from the strict-mode count (mkdocs 1.6).
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=out, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert "WARNING" not in proc.stderr, proc.stderr
    yield out
    shutil.rmtree(out, ignore_errors=True)


def anchors(site: Path) -> dict[str, str]:
    """``{anchor id: page}`` over the API reference pages of the built site."""
    out = {}
    for page in (site / "api").rglob("index.html"):
        for anchor in re.findall(r'id="(divergences[\w.]*)"', page.read_text()):
            out[anchor] = page.parent.name
    return out


def member_entries(path: str) -> list[str]:
    """Where the member ``module.Class.attr`` is documented: on the class, or on the
    documented base class that defines it (inherited members are shown on the base)."""
    module, cls_name, attr = path.rsplit(".", 2)
    cls = getattr(importlib.import_module(module), cls_name)
    owner = next(k for k in cls.__mro__
                 if attr in vars(k) or attr in vars(k).get("__annotations__", {}))
    if owner is cls:
        return [path]
    return [f"{m}.{owner.__name__}.{attr}" for m in api_pages()
            if owner.__name__ in getattr(importlib.import_module(m), "__all__", ())]


def test_strict_build_documents_the_contract(site: Path):
    found = anchors(site)
    wanted = [f"{m}.{n}" for m, names in CONTRACT.items() for n in names] + list(CONTRACT)
    missing = [w for w in wanted if DOCUMENTED_ELSEWHERE.get(w, w) not in found]
    missing += [m for m in CONTRACT_MEMBERS if not set(member_entries(m)) & set(found)]
    assert not missing, f"contract names without an API entry: {missing}"


def test_strict_build_documents_every_export(site: Path):
    found = anchors(site)
    missing = []
    for module in api_pages():
        for name in public_names(module):
            path = f"{module}.{name}"
            if DOCUMENTED_ELSEWHERE.get(path, path) not in found:
                missing.append(path)
    assert not missing, f"exported names without an API entry: {missing}"


def test_api_pages_carry_the_docstrings(site: Path):
    core = (site / "api" / "core" / "index.html").read_text()
    # kl's docstring, its converted doctest and a resolved cross-reference.
    assert "Kullback-Leibler divergence" in core
    assert "torch.nn.functional.kl_div" in core
    assert '<span class="gp">&gt;&gt;&gt; </span>' in core        # a pycon block
    assert ":math:" not in core and ":func:" not in core
    losses = (site / "api" / "losses" / "index.html").read_text()
    assert "Token-level distillation loss" in losses
    assert 'href="../fdiv/#divergences.fdiv"' in losses       # :mod:`divergences.fdiv`
    report = (site / "recipes" / "report" / "index.html").read_text()
    assert "--permutations" in report and "cli-help" not in report   # the --help text
    evidence = (site / "evidence" / "index.html").read_text()
    assert 'href="../benchmarks/RESULTS/"' in evidence
    results = (site / "benchmarks" / "RESULTS" / "index.html").read_text()
    first = (ROOT / "benchmarks" / "RESULTS.md").read_text().splitlines()[0].lstrip("# ")
    assert first in results                                      # included, not copied


# --------------------------------------------------------------------------------------------
# The examples of the narrative pages
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", EXAMPLE_PAGES)
def test_page_examples_run(page: str):
    path = DOCS / page
    result = doctest.testfile(
        str(path), module_relative=False, verbose=False, report=True,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > 0, f"{page} has no examples"
    assert result.failed == 0, f"{result.failed} example(s) of {page} failed (see the output)"
