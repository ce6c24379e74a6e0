"""The documentation site: it builds in strict mode, documents the public API, and its examples run.

* ``mkdocs build --strict`` (skipped when mkdocs, mkdocs-material or mkdocstrings are not
  installed: the ``docs`` extra) into a temporary folder, once for the module;
* every public name of the API contract (design.md, "Public API contract") and every
  name in the ``__all__`` of a documented module has an entry in the API reference: a
  ``::: module`` page that exports it (always checked) and an anchor in the built HTML;
* the ``pycon`` examples of the narrative pages run as doctests, in order, per page;
* formulas are MathML, rendered at build time (docs/_ext/mathml.py): the renderer on its own
  (inline, display, and formulas it must refuse), a strict build that fails on a formula it
  cannot render, no LaTeX source left in the built pages, and, in headless chromium, a
  formula laid out as mathematics and the figures loaded from the site itself;
* the committed figures (docs/figures/*.svg) are what docs/_ext/figures.py writes.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from html import unescape
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
    for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python",
                 "latex2mathml"):
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



# --------------------------------------------------------------------------------------------
# Formulas and figures
# --------------------------------------------------------------------------------------------


def ext_module(name: str):
    """docs/_ext/<name>.py, loaded from its file (docs/_ext is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_docs_ext_{name}", DOCS / "_ext" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mathml():
    pytest.importorskip("latex2mathml", reason="the docs extra is not installed")
    return ext_module("mathml")


def test_renders_inline_and_display_formulas(mathml):
    inline = mathml.render(r"\mathrm{KL}(p\|q) = \sum_i p_i \log(p_i/q_i)")
    assert inline.startswith('<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline">')
    assert "<msub><mi>p</mi><mi>i</mi></msub>" in inline          # p_i, a subscript
    assert "&#x02016;" in inline and "&#x02211;" in inline         # the norm bars and the sum
    block = mathml.render(r"D_\alpha = \frac{1}{\alpha - 1}\log\sum_i p_i^\alpha", display=True)
    assert 'display="block"' in block and "<mfrac>" in block and "&#x003B1;" in block
    # Unicode: MathML Core ignores mathvariant, so the letters themselves are styled.
    assert "<mi>𝔼</mi>" in mathml.render(r"\mathbb E_P[T]")
    assert "mathvariant" not in mathml.render(r"\mathbb E_P[T] + \mathbf 1")
    assert "<mo>≤</mo>" in mathml.render("a ≤ b")                  # typed as Unicode
    assert "<mtext>gap_scale</mtext>" in mathml.render(r"\text{gap\_scale}")
    # Rows aligned at & (Sphinx's reading of a .. math:: block) become a table.
    rows = mathml.render(r"a &= b + c, \\ d &= e", display=True)
    assert rows.count("<mtr>") == 2 and "&amp;" not in rows and "<mi>&</mi>" not in rows


@pytest.mark.parametrize("tex, reason", [
    (r"\frac{a}", "needs 2 parts"),             # latex2mathml draws a one-part fraction
    (r"\foo x", r"unknown command \\foo"),      # ... and an unknown command as its name
    ("a^", "cannot parse"),
    (r"\sqrt", "cannot parse"),
    ("  ", "empty"),
])
def test_refuses_formulas_it_cannot_render(mathml, tex: str, reason: str):
    with pytest.raises(mathml.FormulaError, match=reason):
        mathml.render(tex)


def test_a_formula_that_fails_is_reported_and_shown_as_code(mathml):
    html = ('<h2 id="divergences.kl">kl</h2><p>Good <span class="arithmatex">\\(x_1\\)</span>, '
            'bad <span class="arithmatex">\\(\\frac{a}\\)</span>.</p>'
            '<div class="arithmatex">\\[a &lt; b\\]</div>')
    warnings: list[str] = []
    out = mathml.render_page(html, "api/core.md", warnings.append)
    assert warnings == ["api/core.md (divergences.kl): cannot render the formula `\\frac{a}`: "
                        "<mfrac> needs 2 parts, got 1 (a missing argument in braces?)"]
    assert "<code>\\frac{a}</code>" in out and "arithmatex" not in out
    assert out.count("<math") == 2 and "<mo>&#x0003C;</mo>" in out   # a < b


def test_a_long_inline_formula_can_wrap(mathml):
    tex = r"H(p, q) = H(p) + \mathrm{KL}(p\|q) \ge H(p), \quad (a + b)"
    out = mathml.render_page(f'<p><span class="arithmatex">\\({tex}\\)</span></p>', "x.md",
                             pytest.fail)
    pieces = _MATH.findall(out)
    # Cut after the top-level =, + and the comma, not inside the brackets.
    assert len(pieces) == 5, out
    assert all(p.endswith('<mo form="infix">=</mo></mrow></math>') for p in pieces[:1])
    assert "<mo>+</mo><mi>b</mi>" in pieces[-1]
    def text(s: str) -> str:
        return unescape(re.sub(r"<[^>]+>", "", s))

    assert "".join(text(p) for p in pieces) == text(mathml.render(tex))   # nothing lost


def test_strict_build_fails_on_a_formula_it_cannot_render(mathml, tmp_path: Path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Page\n\nFine: $x_1$. Broken: $\\frac{a}$.\n")
    (tmp_path / "mkdocs.yml").write_text(
        f"site_name: t\nhooks: [{DOCS / '_ext' / 'hooks.py'}]\n"
        "markdown_extensions:\n  - pymdownx.arithmatex:\n      generic: true\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode != 0, proc.stderr
    assert "index.md: cannot render the formula `\\frac{a}`" in proc.stderr, proc.stderr


_CODE = re.compile(r"<(pre|code|script|style)\b.*?</\1>", re.DOTALL)
_MATH = re.compile(r"<math\b.*?</math>", re.DOTALL)


def test_built_pages_show_mathml_not_latex(site: Path):
    core = (site / "api" / "core" / "index.html").read_text()
    # kl's docstring formula, :math:`\mathrm{KL}(p\|q) = \sum_i p_i \log(p_i/q_i)`.
    kl = core[core.index('id="divergences.kl"'):core.index('id="divergences.renyi"')]
    formula = "".join(_MATH.findall(kl))     # a long inline formula comes in pieces
    assert formula, "kl's formula is not MathML"
    assert '<mi mathvariant="normal">K</mi>' in formula
    assert "&#x02211;" in formula and "<msub><mi>p</mi><mi>i</mi></msub>" in formula
    left = {}
    for page in site.rglob("*.html"):
        text = _MATH.sub("", _CODE.sub("", page.read_text()))
        text = re.sub(r"<[^>]+>", " ", text)
        found = re.findall(r"\$[^$\n]{0,40}|:math:`|\\[a-zA-Z]+\{|\\\(|\\\[", text)
        if found or "arithmatex" in page.read_text():
            left[page.relative_to(site).as_posix()] = found[:3]
    assert not left, f"LaTeX source left in the built pages: {left}"


def test_module_docstring_definition_lists_render(site: Path):
    """reST definition lists with a plain-text term (transport's "Point clouds", "Weights")
    render as <dl>, not as one run-on paragraph."""
    page = (site / "api" / "transport" / "index.html").read_text()
    for term in ("Point clouds", "Weights", "Cost", "Plans", "Values"):
        assert f"<dt><strong>{term}</strong></dt>" in page, term


def test_figures_are_current_and_captioned(site: Path):
    pytest.importorskip("numpy")
    figures = ext_module("figures")
    for name, text in figures.render().items():
        committed = (DOCS / "figures" / name).read_text(encoding="utf-8")
        assert committed == text, f"docs/figures/{name} is stale: run python docs/_ext/figures.py"
    pages = {"js-beta.svg": "api/core/index.html",
             "kl-vs-reverse-kl.svg": "conventions/index.html"}
    assert set(pages) == set(figures.FIGURES)
    for name, page in pages.items():
        html = (site / page).read_text()
        figure = next((f for f in re.findall(r"<figure\b.*?</figure>", html, re.DOTALL)
                       if name in f), None)
        assert figure is not None, f"{name} is not in a <figure> on {page}"
        alt = re.search(r'<img alt="([^"]+)" src="[^"]*' + re.escape(name), figure)
        assert alt is not None and len(alt.group(1)) > 40, f"{name} has no alt text: {figure}"
        assert re.search(r"<figcaption>\s*\S", figure), f"{name} has no caption on {page}"
        assert (site / "figures" / name).is_file()


def test_formulas_and_figures_in_a_browser(site: Path):
    """Opened from the built site in headless chromium (found as tests/report does)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not on PATH (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the Python package playwright is not installed")
    args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-background-networking", "--disable-component-update"]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto((site / "api" / "core" / "index.html").as_uri(), wait_until="load")
            found = page.evaluate("""() => {
                const section = id => document.getElementById(id).closest('.doc-object');
                const math = section('divergences.kl').querySelector('math');
                const frac = section('divergences.renyi').querySelector('mfrac');
                const [num, den] = [...frac.children].map(e => e.getBoundingClientRect());
                const img = document.querySelector('img[src$="js-beta.svg"]');
                const box = math.getBoundingClientRect();
                return {ns: math.namespaceURI, width: box.width, height: box.height,
                        stacked: num.bottom <= den.top + 1 && num.height > 0 && den.height > 0,
                        img: img.complete && img.naturalWidth, count:
                        document.querySelectorAll('math').length};
            }""")
        finally:
            browser.close()
    assert found["ns"] == "http://www.w3.org/1998/Math/MathML"
    assert found["width"] > 20 and found["height"] > 5, found       # laid out, not collapsed
    assert found["stacked"], f"a fraction is not laid out as one: {found}"
    assert found["img"] > 0, "the figure did not load"
    assert found["count"] >= 13
    outside = [u for u in requests if not u.startswith(("file:", "data:", "blob:"))]
    assert not outside, f"the page requested something outside the site: {outside}"
