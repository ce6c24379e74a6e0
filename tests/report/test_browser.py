"""The HTML report in a real browser: Debian's chromium, driven headless by Playwright.

The page of :meth:`Report.to_html` is written to a file and opened over ``file://``. The
checks: no console message at error level and no uncaught page error; the page loads
nothing but itself (it claims to be self-contained: the Plotly bundle is inline); every
chart has axes with tick labels that do not overlap, bars, and stays inside its box; the
page has no horizontal overflow at 420 px (a phone), 1280 px and 1400 px, where it uses the
width; the table sorts by every column both ways and the search filters its rows and the
distribution cards; screenshots of the whole page and of every chart are not blank (numpy
on the decoded PNG), and the distribution charts show both the reference and the current
colour. Negative controls show that each check can fail: a blank page, an empty SVG, a
console error and a thrown error are all caught.

Needs ``chromium`` (Debian: ``apt-get install chromium``), Playwright (``pip install
playwright``; it drives the system chromium, its own browser download is never used) and
Pillow (PNG decoding). Without them the tests skip, except under CI (the ``CI`` variable
set), where they fail saying what to install: CI never skips them silently.
"""

from __future__ import annotations

import io
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from divergences.report import compare
from divergences.report._render import decision

INSTALL = ("apt-get install -y --no-install-recommends chromium; "
           "pip install playwright pillow (never `playwright install`)")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
FAST = dict(permutations=9, n_boot=5, seed=0)
DRAWN = "rect, polygon, polyline, path, line, circle, ellipse"
# the report's series colours (src/divergences/report/_render.py): blue reference, red current
REFERENCE_RGB, CURRENT_RGB = (0x1F, 0x77, 0xB4), (0xD6, 0x27, 0x28)


def on_ci() -> bool:
    """Whether the ``CI`` environment variable is set (to anything but empty/0/false/no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing(what: str) -> None:
    """Skip here; fail under CI, naming what to install."""
    if on_ci():
        pytest.fail(f"{what}: the browser test cannot run. Install: {INSTALL}", pytrace=False)
    pytest.skip(f"{what} (install: {INSTALL})")


# --------------------------------------------------------------------------------------------
# Pixels
# --------------------------------------------------------------------------------------------


def decode_png(data: bytes) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a PNG (alpha composited on white)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, im).convert("RGB"))


def pixel_stats(img: np.ndarray) -> dict[str, float]:
    """``colours``: distinct RGB triples; ``ink``: share of pixels unlike the most common
    (background) colour; ``std``: standard deviation of all channel values."""
    flat = img.reshape(-1, 3).astype(np.uint32)
    codes = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    values, counts = np.unique(codes, return_counts=True)
    return {"colours": float(values.size), "ink": 1.0 - counts.max() / codes.size,
            "std": float(img.std())}


def blank_reason(img: np.ndarray, *, min_colours: int = 2, min_ink: float = 0.005) -> str | None:
    """Why ``img`` counts as blank, or ``None`` when it has drawn content."""
    if img.size == 0:
        return "empty image"
    s = pixel_stats(img)
    if s["colours"] < min_colours:
        return f"{s['colours']:.0f} distinct colours (< {min_colours})"
    if s["ink"] < min_ink:
        return f"{s['ink']:.4f} of the pixels differ from the background (< {min_ink})"
    return None


def assert_not_blank(img: np.ndarray, what: str, *, min_colours: int = 2) -> None:
    reason = blank_reason(img, min_colours=min_colours)
    assert reason is None, f"{what} is blank: {reason}"


def hue_share(img: np.ndarray, rgb: tuple[int, int, int]) -> float:
    """Share of pixels whose hue is that of ``rgb``, at any opacity over white: the pixel
    is ``white + a (rgb - white)`` for some ``a`` in ``(0.1, 1]``, within 12 per channel."""
    px = img.reshape(-1, 3).astype(float)
    d = np.asarray(rgb, float) - 255.0
    a = np.clip(((px - 255.0) @ d) / (d @ d), 0.0, 1.0)
    resid = np.abs(px - (255.0 + a[:, None] * d)).max(axis=1)
    return float(np.mean((a > 0.1) & (resid <= 12.0)))


# --------------------------------------------------------------------------------------------
# The browser
# --------------------------------------------------------------------------------------------


@dataclass
class Opened:
    """A page and what it reported while loading."""

    page: Any
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Console messages at error level, page errors and failed requests."""
        return ([f"console {t}: {m}" for t, m in self.console if t in ("error", "assert")]
                + [f"page error: {e}" for e in self.errors]
                + [f"request failed: {u}" for u in self.failed])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        _missing("chromium is not on PATH")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the Python package playwright is not installed")
    try:
        import PIL  # noqa: F401
    except ImportError:
        _missing("the Python package pillow is not installed")
    with sync_playwright() as pw:
        # launch() gives the browser a fresh temporary profile of its own
        b = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def open_page(browser: Any, path: Path) -> Opened:
    page = browser.new_page(viewport=VIEWPORT)
    out = Opened(page)
    page.on("console", lambda m: out.console.append((m.type, m.text)))
    page.on("pageerror", lambda e: out.errors.append(str(e)))
    page.on("request", lambda r: out.requests.append(r.url))
    page.on("requestfailed", lambda r: out.failed.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    # the report draws its charts after load; a page without charts has nothing to wait for
    page.wait_for_function("() => !document.getElementById('figures') || "
                           "document.body.getAttribute('data-charts') === 'ready'",
                           timeout=60_000)
    return out


# Per inline <svg>: its box on the page, its viewBox, the box of what it draws, and its marks
# (shapes with a non-empty extent) and texts.
SVG_PROBE = """
() => Array.from(document.querySelectorAll('svg')).map((s) => {
  const r = s.getBoundingClientRect();
  const vb = s.viewBox.baseVal;
  let content = null;
  try { const b = s.getBBox(); content = [b.x, b.y, b.width, b.height]; } catch (e) {}
  const marks = Array.from(s.querySelectorAll('__DRAWN__')).filter((el) => {
    const b = el.getBBox();
    return b.width > 0 || b.height > 0;
  }).length;
  const texts = Array.from(s.querySelectorAll('text')).map((t) => {
    const b = t.getBoundingClientRect();  // as drawn, transforms included
    return [t.textContent, b.x, b.y, b.width, b.height];
  });
  return {label: s.getAttribute('aria-label'), box: [r.x, r.y, r.width, r.height],
          page: [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height],
          viewBox: vb ? [vb.x, vb.y, vb.width, vb.height] : null, content, marks, texts};
})
""".replace("__DRAWN__", DRAWN)


def svg_problems(info: dict[str, Any], tol: float = 1.0) -> list[str]:
    """What is wrong with one SVG's probe: an empty box, nothing drawn, or drawing outside
    its frame (which the browser would clip)."""
    name = info["label"] or "svg"
    _, _, w, h = info["box"]
    out = []
    if not (w > 0 and h > 0):
        out.append(f"{name}: empty box {w}x{h}")
    if info["marks"] == 0:
        out.append(f"{name}: no drawn shape")
    c, vb = info["content"], info["viewBox"]
    if c is None or not (c[2] > 0 and c[3] > 0):
        out.append(f"{name}: content has no extent ({c})")
    elif vb is not None and vb[2] > 0:
        if (c[0] < vb[0] - tol or c[1] < vb[1] - tol or c[0] + c[2] > vb[0] + vb[2] + tol
                or c[1] + c[3] > vb[1] + vb[3] + tol):
            out.append(f"{name}: draws outside its frame: content {c}, viewBox {vb}")
    return out


# Per chart of the report (a Plotly figure in a [data-figure] box): its box and its
# container's, its drawn marks (bars), and the tick labels of each axis as drawn.
CHART_PROBE = """
() => Array.from(document.querySelectorAll('[data-figure]')).map((el) => {
  const r = el.getBoundingClientRect();
  const svg = el.querySelector('svg.main-svg');
  const s = svg ? svg.getBoundingClientRect() : {x: 0, y: 0, width: 0, height: 0};
  const ticks = (sel) => Array.from(el.querySelectorAll(sel)).map((t) => {
    const b = t.getBoundingClientRect();
    return [t.textContent, b.x, b.y, b.width, b.height];
  }).filter((t) => t[0] !== '');
  const bars = Array.from(el.querySelectorAll('.point > path')).filter((p) => {
    const b = p.getBBox(); return b.width > 0 && b.height > 0;
  }).length;
  return {label: el.getAttribute('aria-label'), id: el.getAttribute('data-figure'),
          box: [r.x, r.y, r.width, r.height],
          page: [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height],
          drawn: [s.x, s.y, s.width, s.height], bars,
          xticks: ticks('.xtick text'), yticks: ticks('.ytick text'),
          titles: Array.from(el.querySelectorAll('.g-xtitle text, .g-ytitle text'))
            .map((t) => t.textContent),
          titleBoxes: Array.from(el.querySelectorAll('.g-xtitle text, .g-ytitle text'))
            .map((t) => { const b = t.getBoundingClientRect();
                          return [t.textContent, b.left, b.right]; })};
})
"""


def chart_problems(info: dict[str, Any], tol: float = 1.0) -> list[str]:
    """What is wrong with one chart: an empty box, a drawing wider than its box, no bars,
    an axis without ticks, or tick labels that overlap."""
    name = info["label"] or info["id"]
    x, _, w, h = info["box"]
    dx, _, dw, dh = info["drawn"]
    out = []
    if not (w > 0 and h > 0 and dw > 0 and dh > 0):
        out.append(f"{name}: empty box {info['box']} / {info['drawn']}")
    if dx < x - tol or dx + dw > x + w + tol:
        out.append(f"{name}: drawn outside its box: {info['drawn']} in {info['box']}")
    if info["bars"] == 0:
        out.append(f"{name}: no bar drawn")
    for axis in ("xticks", "yticks"):
        if len(info[axis]) < 2:
            out.append(f"{name}: {axis[0]} axis has {len(info[axis])} tick labels")
    for text, left, right in info.get("titleBoxes", []):
        if left < x - tol or right > x + w + tol:
            out.append(f"{name}: axis title {text!r} cut off ({left:.0f}-{right:.0f} "
                       f"outside {x:.0f}-{x + w:.0f})")
    out += text_overlaps({"label": name, "texts": info["xticks"]})
    out += text_overlaps({"label": name, "texts": info["yticks"]})
    return out


def text_overlaps(info: dict[str, Any], tol: float = 0.5) -> list[str]:
    """Pairs of texts of one SVG whose boxes overlap (by more than ``tol`` px both ways)."""
    out = []
    texts = info["texts"]
    for i, (a, ax, ay, aw, ah) in enumerate(texts):
        for b, bx, by, bw, bh in texts[i + 1:]:
            if (min(ax + aw, bx + bw) - max(ax, bx) > tol
                    and min(ay + ah, by + bh) - max(ay, by) > tol):
                out.append(f"{info['label']}: {a!r} overlaps {b!r}")
    return out


def _pixel_box(box: list[float]) -> tuple[int, int, int, int]:
    """The whole pixels covered by a CSS box ``[x, y, w, h]`` (as element screenshots cut)."""
    x0, y0 = math.floor(box[0]), math.floor(box[1])
    return x0, y0, math.ceil(box[0] + box[2]) - x0, math.ceil(box[1] + box[3]) - y0


def check_page(opened: Opened) -> None:
    assert not opened.problems(), opened.problems()


# --------------------------------------------------------------------------------------------
# The reports
# --------------------------------------------------------------------------------------------


@dataclass
class Page:
    path: Path
    report: Any
    opened: Opened


def _bundled_report() -> Any:
    pytest.importorskip("pandas")
    from divergences.report import _io

    ref, cur = _io.split_table(_io.load_bundled(), *_io.BUNDLED_SPLIT, "bundled data")
    # the command's default run on the bundled data, subsampled for speed
    return compare(ref, cur, target=_io.BUNDLED_TARGET, sample=120, **FAST)


def _mixed_report(many: list[str] | None = None) -> Any:
    """Categorical columns (one with more categories than a plot shows, named ``many``), a
    numeric one; enough permutations for the two shifted columns to be significant."""
    rng = np.random.default_rng(7)
    n, m = 160, 140
    many = many or [f"c{i:02d}" for i in range(15)]
    ref = {"colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
           "code": rng.choice(many, n),
           "x": rng.normal(0.0, 1.0, n)}
    cur = {"colour": rng.choice(["red", "green", "blue"], m, p=[0.2, 0.3, 0.5]),
           "code": rng.choice(many, m),
           "x": rng.gamma(2.0, 1.0, m)}
    return compare(ref, cur, **{**FAST, "permutations": 59})


@pytest.fixture(scope="module", params=["bundled", "mixed"])
def page(request: Any, browser: Any, tmp_path_factory: Any) -> Iterator[Page]:
    report = _bundled_report() if request.param == "bundled" else _mixed_report()
    path = tmp_path_factory.mktemp(f"html-{request.param}") / "report.html"
    path.write_text(report.to_html(), encoding="utf-8")
    opened = open_page(browser, path)
    try:
        yield Page(path, report, opened)
    finally:
        opened.page.close()


# --------------------------------------------------------------------------------------------
# The report renders
# --------------------------------------------------------------------------------------------


def test_page_loads_without_errors_and_nothing_else(page):
    check_page(page.opened)
    assert page.opened.requests == [page.path.as_uri()]  # self-contained: no other resource
    assert page.opened.page.title() == "divergences comparison report"


def test_every_chart_has_real_axes_and_draws_inside_its_box(page):
    rep = page.report
    infos = page.opened.page.evaluate(CHART_PROBE)
    expected = len(rep.columns) + 1 + (1 if rep.mutual_information else 0)
    assert len(infos) == expected
    labels = [i["label"] for i in infos]
    for c in rep.columns:
        assert f"distribution of {c.name}" in labels
    problems = [p for i in infos for p in chart_problems(i)]
    assert not problems, problems
    for i in infos:
        assert i["titles"], i["label"]                     # axis titles
    bars = next(i for i in infos if i["id"] == "js")
    top_down = [t[0] for t in sorted(bars["yticks"], key=lambda t: t[2])]
    assert top_down == [c.name for c in rep.columns]      # rank order, the first on top
    # one bar per column with a value above 0 (a value of 0 has no bar to draw)
    assert bars["bars"] == sum(c.measures["js"].value > 0 for c in rep.columns)


def test_layout_fits_the_window(page):
    pg = page.opened.page
    scroll_w, inner_w = pg.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_w <= inner_w, f"horizontal overflow: {scroll_w} > {inner_w}"
    # the distribution cards do not overlap one another
    cards = pg.evaluate("() => Array.from(document.querySelectorAll('.card')).map((c) => {"
                        "const r = c.getBoundingClientRect(); return [r.x, r.y, r.right, r.bottom];})")
    assert len(cards) == len(page.report.columns)
    for i, a in enumerate(cards):
        assert a[2] > a[0] and a[3] > a[1]
        for b in cards[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def test_screenshots_are_not_blank(page, tmp_path):
    pg = page.opened.page
    png = pg.screenshot(full_page=True)
    (tmp_path / "report.png").write_bytes(png)
    full = decode_png(png)
    height = pg.evaluate("() => document.documentElement.scrollHeight")
    assert full.shape[1] == VIEWPORT["width"] and abs(full.shape[0] - height) <= 1
    assert_not_blank(full, "the page", min_colours=50)  # text anti-aliasing, plot colours

    infos = pg.evaluate(CHART_PROBE)
    assert len(infos) >= len(page.report.columns) + 1
    drifted = sum(decision(c).drift for c in page.report.columns)
    for i in infos:
        # each chart, cut from the full-page screenshot at its place on the page
        x, y, w, h = _pixel_box(i["page"])
        img = full[y:y + h, x:x + w]
        label = i["label"]
        assert img.shape[:2] == (h, w), label
        assert_not_blank(img, label, min_colours=4)
        if label.startswith("distribution of "):
            for name, rgb in (("reference", REFERENCE_RGB), ("current", CURRENT_RGB)):
                share = hue_share(img, rgb)
                assert share > 0.002, f"{label}: the {name} series is not drawn ({share:.4f})"
        elif i["id"] == "js":
            red = hue_share(img, CURRENT_RGB)                # drifted columns' bars are red
            assert (red > 0.002) == (drifted > 0), (label, drifted, red)

    # screenshots of single charts agree with the cuts of the full page
    charts = pg.locator("[data-figure]")
    for k in sorted({0, 1, charts.count() - 1}):
        el = charts.nth(k)
        img = decode_png(el.screenshot())
        label = el.get_attribute("aria-label")
        assert_not_blank(img, f"the element screenshot of {label}", min_colours=4)
        x, y, w, h = _pixel_box(infos[k]["page"])
        assert img.shape[:2] == (h, w), label
        diff = np.abs(img.astype(int) - full[y:y + h, x:x + w].astype(int)).max(axis=2)
        assert np.mean(diff > 32) < 0.01, label


# --------------------------------------------------------------------------------------------
# Sorting and search
# --------------------------------------------------------------------------------------------

COLUMN_VALUES = """
(col) => Array.from(document.querySelectorAll('#columns tbody tr'))
  .filter((tr) => !tr.hidden)
  .map((tr) => [tr.cells[col].getAttribute('data-key'), tr.cells[col].textContent.trim()])
"""


def test_the_table_sorts_by_any_column(page):
    pg = page.opened.page
    heads = pg.locator("#columns thead th")
    n = heads.count()
    assert n >= 8
    for col in range(n):
        th = heads.nth(col)
        numeric = th.get_attribute("data-sort") == "num"
        for direction in ("ascending", "descending"):
            th.click()
            assert th.get_attribute("aria-sort") == direction
            values = pg.evaluate(COLUMN_VALUES, col)
            if numeric:
                keys = [float(k) if k is not None else -math.inf for k, _ in values]
            else:
                keys = [t.lower() for _, t in values]
            want = sorted(keys, reverse=direction == "descending")
            assert keys == want, (th.inner_text(), direction, values)
    # every row is still there, once
    names = [t for _, t in pg.evaluate(COLUMN_VALUES, 1)]
    assert sorted(names) == sorted(c.name for c in page.report.columns)


def test_search_filters_the_table_and_the_cards(page):
    pg = page.opened.page
    rep = page.report
    box = pg.locator("#search")
    word = rep.columns[0].name.split()[0][:4].lower()
    box.fill(word)
    visible = pg.evaluate(COLUMN_VALUES, 1)
    hits = [c.name for c in rep.columns if word in c.name.lower() or word in c.kind]
    assert 0 < len(visible) <= len(rep.columns)
    assert {t for _, t in visible} >= set(hits)
    cards = pg.evaluate("() => Array.from(document.querySelectorAll('.card'))"
                        ".filter((c) => !c.hidden).map((c) => c.dataset.column)")
    assert sorted(cards) == sorted(t for _, t in visible)
    assert pg.locator("#search-count").inner_text() == (
        f"{len(visible)} of {len(rep.columns)} columns")
    box.fill("no column is called this")
    assert pg.evaluate(COLUMN_VALUES, 1) == []
    box.fill("")
    assert len(pg.evaluate(COLUMN_VALUES, 1)) == len(rep.columns)


# --------------------------------------------------------------------------------------------
# Negative controls: the checks above can fail
# --------------------------------------------------------------------------------------------


def test_blank_page_fails_the_nonblank_check(browser, tmp_path):
    path = tmp_path / "blank.html"
    path.write_text("<!DOCTYPE html><html><head><title>blank</title></head><body></body></html>")
    opened = open_page(browser, path)
    try:
        check_page(opened)  # a blank page has no error: only the pixels can tell
        img = decode_png(opened.page.screenshot(full_page=True))
        assert img.shape[:2] == (VIEWPORT["height"], VIEWPORT["width"])
        assert pixel_stats(img)["colours"] == 1 and pixel_stats(img)["std"] == 0.0
        with pytest.raises(AssertionError, match="blank: 1 distinct colours"):
            assert_not_blank(img, "the page")
        # one small dot on a large page: drawn, but too little ink
        dot = img.copy()
        dot[10:12, 10:12] = 0
        with pytest.raises(AssertionError, match="differ from the background"):
            assert_not_blank(dot, "the page")
    finally:
        opened.page.close()


def test_empty_or_clipped_svg_fails_the_plot_checks(browser, tmp_path):
    path = tmp_path / "bad_svg.html"
    path.write_text(
        "<!DOCTYPE html><html><body>"
        '<svg aria-label="empty" width="300" height="150" viewBox="0 0 300 150"></svg>'
        '<svg aria-label="zero" width="0" height="0"><rect width="10" height="10"/></svg>'
        '<svg aria-label="clipped" width="100" height="50" viewBox="0 0 100 50">'
        '<rect x="60" y="10" width="80" height="20" fill="#1f77b4"/></svg>'
        '<svg aria-label="good" width="100" height="50" viewBox="0 0 100 50">'
        '<rect x="10" y="10" width="80" height="20" fill="#1f77b4"/>'
        '<text x="2" y="45" font-size="9">left</text>'
        '<text x="98" y="45" font-size="9" text-anchor="end">right</text></svg>'
        '<svg aria-label="crowded" width="100" height="50" viewBox="0 0 100 50">'
        '<line x1="0" y1="30" x2="100" y2="30" stroke="#444"/>'
        '<text x="30" y="45" font-size="9" text-anchor="middle">category 01</text>'
        '<text x="50" y="45" font-size="9" text-anchor="middle">category 02</text></svg>'
        "</body></html>")
    opened = open_page(browser, path)
    try:
        infos = {i["label"]: i for i in opened.page.evaluate(SVG_PROBE)}
        assert svg_problems(infos["good"]) == [] and text_overlaps(infos["good"]) == []
        assert svg_problems(infos["crowded"]) == []
        assert text_overlaps(infos["crowded"]) == [
            "crowded: 'category 01' overlaps 'category 02'"]
        assert any("no drawn shape" in p for p in svg_problems(infos["empty"]))
        assert any("empty box" in p for p in svg_problems(infos["zero"]))
        assert any("outside its frame" in p for p in svg_problems(infos["clipped"]))
        empty = decode_png(opened.page.locator("svg[aria-label=empty]").screenshot())
        with pytest.raises(AssertionError, match="blank"):
            assert_not_blank(empty, "empty")
        good = decode_png(opened.page.locator("svg[aria-label=good]").screenshot())
        assert_not_blank(good, "good")
        assert hue_share(good, REFERENCE_RGB) > 0.2 and hue_share(good, CURRENT_RGB) == 0.0
    finally:
        opened.page.close()


def test_console_and_page_errors_are_caught(browser, tmp_path):
    path = tmp_path / "errors.html"
    path.write_text(
        "<!DOCTYPE html><html><body><p>text</p>"
        "<script>console.log('fine'); console.error('boom');</script>"
        "<script>throw new Error('thrown');</script>"
        "<img src='missing.png' alt=''>"
        "</body></html>")
    opened = open_page(browser, path)
    try:
        problems = opened.problems()
        assert any("boom" in p for p in problems)
        assert any("thrown" in p for p in problems)
        assert any("missing.png" in p for p in problems)
        assert not any("fine" in p for p in problems)
        with pytest.raises(AssertionError):
            check_page(opened)
    finally:
        opened.page.close()


def test_long_category_labels_do_not_overlap(browser, tmp_path):
    report = _mixed_report([f"category {i:02d}" for i in range(15)])
    path = tmp_path / "long.html"
    path.write_text(report.to_html(), encoding="utf-8")
    opened = open_page(browser, path)
    try:
        check_page(opened)
        infos = opened.page.evaluate(CHART_PROBE)
        code = next(i for i in infos if i["label"] == "distribution of code")
        assert len(code["xticks"]) >= 10          # the top categories, every one labelled
        problems = [p for i in infos for p in chart_problems(i)]
        assert not problems, problems
    finally:
        opened.page.close()


def test_missing_browser_skips_here_but_fails_under_ci(monkeypatch):
    for value in ("true", "1", "yes"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.fail.Exception, match="apt-get install"):
            _missing("chromium is not on PATH")
    for value in ("", "false", "0"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.skip.Exception, match="chromium"):
            _missing("chromium is not on PATH")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        _missing("chromium is not on PATH")


# --------------------------------------------------------------------------------------------
# A phone and a wide screen
# --------------------------------------------------------------------------------------------

# The page's own width against the window, and each chart's box against its container's.
WIDTH_PROBE = """
() => ({
  scroll: document.documentElement.scrollWidth, body: document.body.scrollWidth,
  inner: window.innerWidth,
  charts: Array.from(document.querySelectorAll('.chart')).filter((c) => c.children.length)
    .map((c) => {
      const drawn = c.querySelector('svg.main-svg') || c.querySelector('svg');
      const box = drawn.getBoundingClientRect(), own = c.getBoundingClientRect();
      return {id: c.id || (c.closest('.card') || {}).dataset?.column, chart: own.width,
              drawn: box.width, right: box.right};
    }),
  tables: Array.from(document.querySelectorAll('.scroll')).map(
    (s) => [s.getBoundingClientRect().right, s.scrollWidth, s.clientWidth]),
})
"""


@pytest.mark.parametrize("width", [420, 1400])
def test_phone_and_wide_screen(browser, tmp_path, width):
    """At 420 px (a phone) nothing overflows the page: wide tables scroll in their own box;
    at 1400 px the page uses the width, and every chart fills its container."""
    report = _mixed_report()
    path = tmp_path / "report.html"
    path.write_text(report.to_html(), encoding="utf-8")
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.goto(path.as_uri(), wait_until="load")
        assert page.evaluate("() => document.querySelector('meta[name=viewport]').content") \
            == "width=device-width, initial-scale=1"
        probe = page.evaluate(WIDTH_PROBE)
        assert probe["scroll"] <= probe["inner"] and probe["body"] <= probe["inner"], probe
        assert probe["charts"], "no chart drawn"
        page.wait_for_function("() => document.body.getAttribute('data-charts') === 'ready'",
                               timeout=60_000)
        problems = [p for i in page.evaluate(CHART_PROBE) for p in chart_problems(i)]
        assert not problems, problems                             # axes, ticks, titles fit
        probe = page.evaluate(WIDTH_PROBE)
        for c in probe["charts"]:
            assert c["right"] <= width + 0.5, c                   # nothing cut off
            assert c["drawn"] >= 0.95 * c["chart"], c             # the chart fills its box
        # every table fits its box: no column cut off or hidden behind a scroll
        for right, scroll_w, client_w in probe["tables"]:
            assert right <= width + 0.5 and scroll_w <= client_w + 1, probe["tables"]
        main = page.evaluate("() => document.querySelector('main').getBoundingClientRect()"
                             ".width")
        assert main >= 0.95 * width, main                         # the width is used
        if width == 1400:                                         # cards side by side
            tops = page.evaluate("() => Array.from(document.querySelectorAll('.card'))"
                                 ".map((c) => c.getBoundingClientRect().top)")
            assert len(set(tops)) < len(tops), tops
    finally:
        page.close()
