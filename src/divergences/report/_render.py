"""Rendering a :class:`~divergences.report.Report`: dict/JSON, plain and rich tables,
Markdown, and a self-contained HTML page (plots drawn as inline SVG: no script, no external
resource, no plotting library needed)."""

from __future__ import annotations

import html as _html
import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from . import Report

__all__ = ["html", "markdown", "print_table", "report_dict", "text_table"]

MEASURE_TITLES = {
    "js": "JS divergence (nats)", "wasserstein": "Wasserstein-1", "psi": "PSI",
    "ks": "KS statistic", "kl": "KL(ref||cur) kNN (nats)", "tv": "Total variation",
    "chi2": "Chi-square (smoothed)",
}


def _num(x: Any) -> Any:
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(float(x)) or math.isinf(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, dict):
        return {k: _num(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_num(v) for v in x]
    return x


def report_dict(rep: Report) -> dict[str, Any]:
    cols = []
    for rank, c in enumerate(rep.columns, 1):
        cols.append({
            "name": c.name, "kind": c.kind, "rank": rank,
            "n_reference": c.n_reference, "n_current": c.n_current,
            "missing_reference": c.missing_reference, "missing_current": c.missing_current,
            "measures": {k: {"value": m.value, "ci_low": m.ci_low, "ci_high": m.ci_high,
                             "pvalue": m.pvalue, "qvalue": m.qvalue, "units": m.units}
                         for k, m in c.measures.items()},
            "bin_edges": c.edges, "categories": c.categories,
            "reference_counts": c.reference_counts, "current_counts": c.current_counts,
        })
    target = None
    if rep.mutual_information is not None:
        target = {"name": rep.meta.get("target"), "units": "nats",
                  "mutual_information": rep.mutual_information}
    return _num({"schema": "divergences.report/1", "meta": rep.meta, "columns": cols,
                 "joint": rep.joint, "target": target, "skipped": rep.skipped})


def _f(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-3):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}" if abs(x) >= 1 else f"{x:.{digits}f}"


def _p(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.3g}"


def _rows(rep: Report) -> tuple[list[str], list[list[str]]]:
    head = ["#", "column", "kind", "JS [CI]", "q(JS)", "W1", "PSI", "KS", "KL", "TV", "chi2"]
    rows = []
    for i, c in enumerate(rep.columns, 1):
        m = c.measures
        js = m["js"]

        def val(k: str, m: dict = m) -> str:
            return _f(m[k].value) if k in m else ""

        rows.append([str(i), c.name, c.kind[:3],
                     f"{_f(js.value)} [{_f(js.ci_low)}, {_f(js.ci_high)}]", _p(js.qvalue),
                     val("wasserstein"), val("psi"), val("ks"), val("kl"), val("tv"),
                     val("chi2")])
    return head, rows


def _engine_line(meta: dict[str, Any]) -> str | None:
    """What the dask engine computed from full-data sketches and what from the row sample."""
    if meta.get("engine") != "dask":
        return None
    full = sorted({m for ms in meta.get("full_data_measures", {}).values() for m in ms})
    return (f"engine dask ({meta.get('scheduler')}, "
            f"{'+'.join(map(str, meta.get('partitions', [])))} partitions): full data for "
            f"{', '.join(full)} (grid of {meta.get('sketch', {}).get('grid_bins')} bins, error "
            f"bounds in report.json); on a sample of "
            f"{'+'.join(map(str, meta.get('sample_rows', [])))} rows: "
            f"{', '.join(meta.get('sampled_measures', []))}")


def _joint_line(j: dict[str, Any]) -> str:
    if j.get("pvalue") is None or math.isnan(j.get("pvalue", math.nan)):
        return f"joint MMD test: not run ({j.get('note', '')})"
    return (f"joint MMD test on {len(j['columns'])} standardised numeric columns: "
            f"MMD^2 = {_f(j['statistic'])}, permutation p = {_p(j['pvalue'])}")


def _summary_lines(rep: Report, joint: bool = True) -> list[str]:
    meta = rep.meta
    lines = [f"reference: {meta['reference']} ({meta['rows_reference']} rows)   "
             f"current: {meta['current']} ({meta['rows_current']} rows)"]
    engine = _engine_line(meta)
    if engine:
        lines.append(engine)
    if rep.joint is not None and joint:
        lines.append(_joint_line(rep.joint))
    if rep.skipped:
        lines.append("skipped: " + "; ".join(f"{s['column']} ({s['reason']})"
                                              for s in rep.skipped))
    return lines


def _mi_rows(rep: Report) -> list[list[str]]:
    return [[str(r["rank"]), r["column"], _f(r["value"]),
             f"[{_f(r['ci_low'])}, {_f(r['ci_high'])}]", r["method"] or r.get("note", "")]
            for r in rep.mutual_information or []]


def text_table(rep: Report) -> str:
    """Fixed-width text: the ranked column table, the joint test, the MI ranking."""
    def fmt(head: list[str], rows: list[list[str]]) -> list[str]:
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
                  for i, h in enumerate(head)]
        out = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip(),
               "  ".join("-" * w for w in widths)]
        out += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
        return out

    lines = [*_summary_lines(rep), "", *fmt(*_rows(rep))]
    if rep.mutual_information is not None:
        lines += ["", f"mutual information with target {rep.meta['target']!r} (nats):"]
        lines += fmt(["#", "column", "MI", "CI", "method"], _mi_rows(rep))
    return "\n".join(lines)


def print_table(rep: Report, file: Any = None, *, use_rich: bool = True) -> None:
    """Print the table, with rich when it is installed (plain text otherwise)."""
    try:
        if not use_rich:
            raise ImportError
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(text_table(rep), file=file)
        return
    console = Console(file=file, soft_wrap=False)
    for line in _summary_lines(rep):
        console.print(line, highlight=False, markup=False)
    head, rows = _rows(rep)
    t = Table(title="columns ranked by Jensen-Shannon divergence", title_justify="left")
    for h in head:
        t.add_column(h, justify="left" if h in ("column", "kind") else "right")
    for r in rows:
        q = r[4]
        style = "bold red" if q not in ("-", "") and float(q) <= 0.05 else None
        t.add_row(*r, style=style)
    console.print(t)
    if rep.mutual_information is not None:
        m = Table(title=f"mutual information with target {rep.meta['target']!r} (nats)",
                  title_justify="left")
        for h in ["#", "column", "MI", "CI", "method"]:
            m.add_column(h)
        for r in _mi_rows(rep):
            m.add_row(*r)
        console.print(m)


def markdown(rep: Report) -> str:
    """Markdown: summary, ranked column table, measures' key, MI ranking."""
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    head, rows = _rows(rep)
    out = ["# Comparison report", ""] + [f"- {esc(line)}" for line in _summary_lines(rep)]
    out += ["", "## Columns, ranked by Jensen-Shannon divergence", "",
            "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(esc(v) for v in r) + " |" for r in rows]
    out += ["", "q(JS): Benjamini-Hochberg adjusted permutation p-value of the JS divergence "
            f"({rep.meta['permutations']} permutations); intervals: {rep.meta['level']:.0%} "
            f"bootstrap ({rep.meta['n_boot']} resamples)."]
    if rep.mutual_information is not None:
        out += ["", f"## Mutual information with `{esc(str(rep.meta['target']))}` (nats)", "",
                "| # | column | MI | CI | method |", "|---|---|---|---|---|"]
        out += ["| " + " | ".join(esc(v) for v in r) + " |" for r in _mi_rows(rep)]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;
color:#222;max-width:1200px}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
td.l,th.l{text-align:left}
tr.sig td{background:#fde8e8}
.grid{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ddd;padding:6px;width:340px}
.card h3{font-size:0.95em;margin:0.2em 0}
.small{font-size:0.8em;color:#555}
"""


_REF, _CUR, _SIG, _GREY, _MI = "#1f77b4", "#d62728", "#d62728", "#8c8c8c", "#2ca02c"


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f'<svg role="img" aria-label="{_html.escape(label)}" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}">' + "".join(body) + "</svg>")


def _text(x: float, y: float, s: str, anchor: str = "start", size: int = 10) -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}">'
            f"{_html.escape(s)}</text>")


# Width of one character of the 9 px sans-serif axis labels (DejaVu Sans, about 0.6 em): decides
# when category labels would overlap and must be drawn vertically.
CHAR_W = 5.6


def _short(s: str, n: int) -> str:
    """``s`` cut to ``n`` characters, the cut marked with an ellipsis."""
    return s if len(s) <= n else s[: max(n - 1, 1)] + "\u2026"


def _distribution_svg(c: Any, data: tuple[np.ndarray, np.ndarray] | None) -> str:
    """Overlaid densities (numeric: 30 equal-width bins) or grouped frequency bars."""
    w, h, left, bottom, top = 320, 150, 8, 20, 18
    rotate = False
    if not (c.kind == "numeric" and data is not None):
        cats = list(c.categories or [])
        pr = np.asarray(c.reference_counts, float) / max(sum(c.reference_counts), 1)
        pc = np.asarray(c.current_counts, float) / max(sum(c.current_counts), 1)
        order = np.argsort(-(pr + pc), kind="stable")[:12]
        slot = (w - 2 * left) / max(len(order), 1)
        labels = [_short(str(cats[i]), 16) for i in order]
        if max(len(s) for s in labels) * CHAR_W > 0.9 * slot:   # would overlap: vertical
            rotate = True
            bottom = 14 + int(CHAR_W * max(len(s) for s in labels))
            h += bottom - 20
    pw, ph = w - 2 * left, h - bottom - top
    body = [_text(left, 12, "reference", size=10).replace("<text", f'<text fill="{_REF}"'),
            _text(left + 70, 12, "current", size=10).replace("<text", f'<text fill="{_CUR}"')]
    if c.kind == "numeric" and data is not None:
        r, cu = data
        lo, hi = float(min(r.min(), cu.min())), float(max(r.max(), cu.max()))
        hi = hi if hi > lo else lo + 1.0
        edges = np.linspace(lo, hi, 31)
        dens = [np.histogram(v, bins=edges)[0] / v.size for v in (r, cu)]
        ymax = max(float(d.max()) for d in dens) or 1.0
        for d, col in zip(dens, (_REF, _CUR)):
            pts = [f"{left:.1f},{top + ph:.1f}"]
            for i, v in enumerate(d):
                y = top + ph - ph * v / ymax
                pts += [f"{left + pw * i / 30:.1f},{y:.1f}", f"{left + pw * (i + 1) / 30:.1f},{y:.1f}"]
            pts.append(f"{left + pw:.1f},{top + ph:.1f}")
            body.append(f'<polygon points="{" ".join(pts)}" fill="{col}" fill-opacity="0.3" '
                        f'stroke="{col}" stroke-width="1"/>')
        body += [_text(left, h - 5, _f(lo), size=9), _text(w - left, h - 5, _f(hi), "end", 9)]
    else:
        ymax = float(max(pr.max(), pc.max())) or 1.0
        for j, i in enumerate(order):
            x0 = left + j * slot
            for k, (p, col) in enumerate(((pr[i], _REF), (pc[i], _CUR))):
                bh = ph * p / ymax
                body.append(f'<rect x="{x0 + slot * (0.1 + 0.4 * k):.1f}" y="{top + ph - bh:.1f}" '
                            f'width="{slot * 0.4:.1f}" height="{bh:.1f}" fill="{col}" '
                            'fill-opacity="0.7"/>')
            xc = x0 + slot / 2
            if rotate:
                xl, yl = xc + 3, top + ph + 4   # baseline 3 px right of the slot centre
                body.append(_text(xl, yl, labels[j], "end", 9).replace(
                    "<text", f'<text transform="rotate(-90 {xl:.1f} {yl:.1f})"'))
            else:
                body.append(_text(xc, h - 5, labels[j], "middle", 9))
        if len(cats) > len(order):
            body.append(_text(w - left, 12, f"top {len(order)} of {len(cats)}", "end", 9))
    body.append(f'<line x1="{left}" y1="{top + ph}" x2="{w - left}" y2="{top + ph}" '
                'stroke="#444" stroke-width="1"/>')
    return _svg(w, h, body, f"distribution of {c.name}")


def _bars_svg(rows: list[tuple[str, float, float, float, str]], xlabel: str) -> str:
    """Horizontal bars with interval whiskers: rows of (label, value, low, high, colour)."""
    lab_w, w, row_h, top = 190, 720, 16, 6
    h = top + row_h * len(rows) + 30
    finite = [v for r in rows for v in r[1:4] if v == v]
    vmax = max([*finite, 1e-12])
    vmin = min([*finite, 0.0])
    span = vmax - vmin or 1.0
    pw = w - lab_w - 20

    def x(v: float) -> float:
        return lab_w + pw * (v - vmin) / span

    body = []
    for i, (name, v, lo, hi, col) in enumerate(rows):
        y = top + i * row_h
        body.append(_text(lab_w - 6, y + 11, name[:30], "end", 10))
        if v == v:
            x0, x1 = sorted((x(0.0), x(v)))
            body.append(f'<rect x="{x0:.1f}" y="{y + 3}" width="{x1 - x0:.1f}" height="{row_h - 6}" '
                        f'fill="{col}"/>')
        if lo == lo and hi == hi:
            body.append(f'<line x1="{x(lo):.1f}" y1="{y + row_h / 2}" x2="{x(hi):.1f}" '
                        f'y2="{y + row_h / 2}" stroke="#000" stroke-width="1"/>')
    y = top + row_h * len(rows)
    body += [f'<line x1="{lab_w}" y1="{y}" x2="{lab_w + pw}" y2="{y}" stroke="#444"/>',
             _text(x(vmin), y + 12, _f(vmin), "start", 9), _text(x(vmax), y + 12, _f(vmax), "end", 9),
             _text(lab_w + pw / 2, y + 25, xlabel, "middle", 10)]
    return _svg(w, h, body, xlabel)


def _plots(rep: Report) -> dict[str, str]:
    out = {c.name: _distribution_svg(c, rep.plot_data.get(c.name)) for c in rep.columns}
    out["__bars__"] = _bars_svg(
        [(c.name, c.measures["js"].value, c.measures["js"].ci_low, c.measures["js"].ci_high,
          _SIG if c.measures["js"].qvalue <= 0.05 else _GREY) for c in rep.columns],
        "Jensen-Shannon divergence (nats), bootstrap interval; red: BH q <= 0.05")
    if rep.mutual_information:
        out["__mi__"] = _bars_svg(
            [(r["column"], r["value"], r["ci_low"], r["ci_high"], _MI)
             for r in rep.mutual_information],
            f"mutual information with {rep.meta['target']} (nats), {rep.meta['level']:.0%} interval")
    return out


def html(rep: Report) -> str:
    """The self-contained HTML page."""
    e = _html.escape
    plots = _plots(rep)
    head, rows = _rows(rep)
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             "<title>divergences comparison report</title>", f"<style>{_CSS}</style>",
             "</head><body>", "<h1>Comparison report</h1>"]
    parts += [f"<p>{e(line)}</p>" for line in _summary_lines(rep, joint=False)]
    parts.append("<h2>Columns ranked by Jensen-Shannon divergence</h2>")
    if plots:
        parts.append(plots["__bars__"])
    parts.append("<table><tr>" + "".join(
        f"<th class='{'l' if h in ('column', 'kind') else ''}'>{e(h)}</th>" for h in head)
        + "</tr>")
    for c, r in zip(rep.columns, rows):
        sig = " class='sig'" if c.measures["js"].qvalue <= 0.05 else ""
        parts.append(f"<tr{sig}>" + "".join(
            f"<td class='{'l' if i in (1, 2) else ''}'>{e(v)}</td>" for i, v in enumerate(r))
            + "</tr>")
    parts.append("</table>")
    parts.append(
        "<p class='small'>JS and PSI on quantile bins of the pooled data; KL(ref||cur) by "
        "nearest neighbours; chi2 with 0.5 added to each count. "
        f"Intervals: {rep.meta['level']:.0%} bootstrap ({rep.meta['n_boot']} resamples); "
        f"q: Benjamini-Hochberg adjusted permutation p-values ({rep.meta['permutations']} "
        "permutations). Rows in red: q(JS) &le; 0.05. Plug-in divergences are biased upward "
        "on small samples, and their percentile intervals sit above the value by about that "
        "bias.</p>")

    j = rep.joint
    parts.append("<h2>Joint test</h2>")
    if j is None:
        parts.append("<p>No numeric columns: no joint test.</p>")
    else:
        parts.append(f"<p>{e(_joint_line(j))}</p>")

    if rep.mutual_information is not None:
        parts.append(f"<h2>Mutual information with target {e(str(rep.meta['target']))}</h2>")
        if plots and "__mi__" in plots:
            parts.append(plots["__mi__"])
        parts.append("<table><tr><th>#</th><th class='l'>column</th><th>MI (nats)</th>"
                     "<th>CI</th><th class='l'>method</th></tr>")
        for r in _mi_rows(rep):
            parts.append("<tr>" + "".join(
                f"<td class='{'l' if i in (1, 4) else ''}'>{e(v)}</td>" for i, v in enumerate(r))
                + "</tr>")
        parts.append("</table>")

    parts.append("<h2>Distributions</h2><div class='grid'>")
    for c in rep.columns:
        m = c.measures["js"]
        parts.append(f"<div class='card'><h3>{e(c.name)}</h3><div class='small'>{e(c.kind)}, "
                     f"JS {e(_f(m.value))} [{e(_f(m.ci_low))}, {e(_f(m.ci_high))}], "
                     f"q {e(_p(m.qvalue))}; n = {c.n_reference} / {c.n_current}</div>")
        if plots and c.name in plots:
            parts.append(plots[c.name])
        parts.append("</div>")
    parts.append("</div>")
    meta = rep.meta
    parts.append(f"<p class='small'>divergences {e(str(meta.get('version')))}, seed "
                 f"{meta.get('seed')}, sample {e(str(meta.get('sample')))}.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
