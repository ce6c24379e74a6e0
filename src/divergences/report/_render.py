"""Rendering a :class:`~divergences.report.Report`: dict/JSON, terminal text (plain or rich),
Markdown and a self-contained HTML page (a Jinja2 template, ``templates/report.html.j2``,
with interactive Plotly charts: the plotly.js bundle is embedded once per page, so the page
works offline and loads nothing).

Every text face reads the same way, verdict first: "drift in k of m columns (q <= 0.05)",
then one decision line per column with the test that made it, then the details (the measures,
their intervals, the missing shares), then a legend that explains each measure in one line.
One number format everywhere (:func:`num`): three significant digits, never cut.

The terminal text fits the width it is given (80 columns and up): columns that are empty for
every row are dropped, the others are chosen by priority until the width is used, and what
did not fit is named. Drifted columns carry a plain-text marker (``DRIFT`` and ``!``) so that
the flag survives ``--no-rich``, pipes and files; rich only adds colour.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from . import Report

__all__ = ["html", "markdown", "num", "print_table", "report_dict", "text_table"]

#: q-value at or below which a column is called drifted, when the report does not say.
ALPHA = 0.05
#: Width of the terminal text when the terminal does not say (pipes, files).
DEFAULT_WIDTH = 80
#: Characters a column name keeps before the table drops a measure to make room.
NAME_MIN = 20
#: Narrow terminals cut names to no fewer characters (and list them in full below).
NAME_FLOOR = 8

#: Short names of the measures, as the tables head them.
SHORT = {"js": "JS", "wasserstein": "W1", "psi": "PSI", "ks": "KS", "kl": "KL", "tv": "TV",
         "chi2": "chi2"}
#: One line per term; every line fits 80 columns.
LEGEND = {
    "js": "JS    Jensen-Shannon divergence of the binned distributions; nats, 0 to ln 2",
    "wasserstein": "W1    Wasserstein-1 distance: how far the values moved, in their own units",
    "psi": "PSI   population stability index, nats; above 0.25 is a large shift by custom",
    "ks": "KS    Kolmogorov-Smirnov statistic: the largest gap between the two CDFs, 0-1",
    "kl": "KL    KL(reference || current), nearest-neighbour estimate, nats",
    "tv": "TV    total variation: the share of the category mass that moved, 0 to 1",
    "chi2": "chi2  Pearson chi-square divergence of the frequencies (0.5 added per count)",
    "q": "q     p-value adjusted for testing many columns (Benjamini-Hochberg)",
    "nats": "nats  natural-log units of information; 1 nat = 1.443 bits",
    "ci": "CI    {level} bootstrap interval of the value",
    "missing": "missing  share of rows missing in the reference -> in the current data",
    "floor": "<= p  no permutation reached the observed value: p is at most that",
    "clip": "Measures that cannot be negative are clipped at 0 where noise made them so.",
}
#: What the decision's test is called in words.
TEST_NAMES = {"KS": "KS test", "chi-square": "chi-square test", "js": "JS permutation test"}


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------


def num(x: Any) -> str:
    """The one number format of every report: three significant digits, in full between
    1e-4 and 1e5 (``0.0123``, ``54.4``, ``863``, ``12345``), in exponent form outside.

    >>> [num(v) for v in (0.49123, 54.43, 863.2, 12345.6, 0.000012345, 0.0, -0.5, None)]
    ['0.491', '54.4', '863', '12346', '1.23e-05', '0', '-0.5', '-']
    """
    if x is None:
        return "-"
    x = float(x)
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1e5 or a < 1e-4:
        return f"{x:.2e}"
    if a >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def _pq(x: Any, floor: bool = False) -> str:
    """A p- or q-value; ``<= x`` when it sits at a permutation floor."""
    return f"<={num(x)}" if floor and x is not None and not math.isnan(x) else num(x)


def _share(x: float) -> str:
    """A share of rows as a percentage, to the precision that tells small shares apart."""
    if x is None or math.isnan(x):
        return "-"
    if x == 0:
        return "0%"
    pct = 100.0 * x
    return f"{pct:.0f}%" if pct >= 10 else (f"{pct:.1f}%" if pct >= 0.1 else "<0.1%")


# --------------------------------------------------------------------------------------------
# What every face shows: decisions and details
# --------------------------------------------------------------------------------------------


def _alpha(rep: Report) -> float:
    return float(rep.meta.get("alpha", ALPHA))


def _missing_shares(c: Any) -> tuple[float, float]:
    """(reference, current) missing shares of a column's rows."""
    out = []
    for side, n in (("reference", c.n_reference), ("current", c.n_current)):
        share = getattr(c, f"missing_share_{side}", None)
        if share is None:  # older results carry counts only
            miss = getattr(c, f"missing_{side}", 0) or 0
            share = miss / (miss + n) if miss + n else math.nan
        out.append(float(share))
    return out[0], out[1]


class Decision(NamedTuple):
    """One column's verdict: drift or not, the test that decided, its q-value (and whether
    that q rests on a p-value at a permutation floor)."""

    drift: bool
    test: str
    q: float
    floor: bool = False
    detail: str = ""


def decision(c: Any, alpha: float = ALPHA) -> Decision:
    """The decision of column ``c``: the report's own when it made one (``drift``,
    ``decided_by``, ``drift_test``, ``drift_qvalue``, ``missing_qvalue``), else the
    permutation test of the JS divergence at ``alpha``."""
    drift_test = getattr(c, "drift_test", "")
    if drift_test:
        by = getattr(c, "decided_by", "") or ""
        if by.startswith("missing"):
            ref, cur = _missing_shares(c)
            return Decision(bool(c.drift), "missing share", float(c.missing_qvalue),
                            detail=f"{_share(ref)} -> {_share(cur)}")
        return Decision(bool(c.drift), TEST_NAMES.get(drift_test, f"{drift_test} test"),
                        float(getattr(c, "drift_qvalue", math.nan)))
    m = c.measures["js"]
    return Decision(bool(m.qvalue <= alpha), TEST_NAMES["js"], float(m.qvalue),
                    bool(getattr(m, "p_floor", False)))


def _decision_text(d: Decision) -> str:
    # a q-value of exactly 0 is a p-value below the smallest double, not a certainty
    q = "q < 1e-300" if d.q == 0 else f"q {'<=' if d.floor else '='} {num(d.q)}"
    return f"{d.test}{', ' + d.detail if d.detail else ''}, {q}"


def verdict(rep: Report) -> str:
    """``"drift in k of m columns (q <= 0.05)"``."""
    alpha = _alpha(rep)
    k = sum(decision(c, alpha).drift for c in rep.columns)
    m = len(rep.columns)
    return f"drift in {k} of {m} column{'s' if m != 1 else ''} (q <= {num(alpha)})"


def _rows_line(meta: dict[str, Any], side: str) -> str:
    """``name: 20,000 rows, sampled 5,000 of 20,000``: the true row count, and the rows
    compared when fewer."""
    rows = meta.get(f"rows_{side}")
    sampled = meta.get(f"sampled_{side}")
    if not isinstance(rows, (int, np.integer)):
        return str(meta.get(side))
    text = f"{meta.get(side)}: {rows:,} rows"
    if isinstance(sampled, (int, np.integer)) and sampled < rows:
        text += f", sampled {sampled:,} of {rows:,}"
    return text


def _engine_lines(meta: dict[str, Any]) -> list[str]:
    """What the dask engine computed from full-data sketches and what from the row sample:
    one short line each, so that a narrow terminal never splits a phrase."""
    if meta.get("engine") != "dask":
        return []
    full = sorted({m for ms in meta.get("full_data_measures", {}).values() for m in ms})
    return [f"engine dask ({meta.get('scheduler')}, "
            f"{'+'.join(map(str, meta.get('partitions', [])))} partitions)",
            f"  full data: {', '.join(full)} (grid of "
            f"{meta.get('sketch', {}).get('grid_bins')} bins; error bounds in report.json)",
            f"  on a sample of {'+'.join(map(str, meta.get('sample_rows', [])))} rows: "
            f"{', '.join(meta.get('sampled_measures', []))}"]


def _joint_line(j: dict[str, Any], alpha: float = ALPHA) -> str:
    p = j.get("pvalue")
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return f"joint MMD test: not run ({j.get('note', '')})"
    floor = bool(j.get("p_floor", False))
    return (f"joint test (MMD, {len(j['columns'])} numeric columns): "
            f"{'drift' if p <= alpha else 'no drift'}, p {'<=' if floor else '='} {num(p)}, "
            f"MMD^2 = {num(j['statistic'])}")


def _summary_lines(rep: Report, joint: bool = True) -> list[str]:
    meta = rep.meta
    # "reference NAME: ..." unless the data set is called "reference" already
    lines = [("" if meta.get(side) == side else f"{side:9s} ") + _rows_line(meta, side)
             for side in ("reference", "current")]
    lines += _engine_lines(meta)
    if rep.joint is not None and joint:
        lines.append(_joint_line(rep.joint, _alpha(rep)))
    if rep.skipped:
        lines.append("skipped: " + "; ".join(f"{s['column']} ({s['reason']})"
                                              for s in rep.skipped))
    return lines


class Col(NamedTuple):
    """A column of the details table: its heading, its cell per report column, whether it
    is kept whatever the width, and its rank among the optional ones (lower stays longer)."""

    key: str
    head: str
    cells: list[str]
    required: bool = False
    priority: int = 0
    left: bool = False


def _detail_columns(rep: Report, labels: dict[str, str] | None = None) -> list[Col]:
    """Every column the details table could show, in display order; columns that are empty
    for every row (TV and chi2 on all-numeric data, missing shares when nothing is missing)
    are left out here. ``labels``: the name shown for a column (default: its name)."""
    labels = labels or {}
    alpha = _alpha(rep)
    level = f"{rep.meta.get('level', 0.95):.0%}"
    cs = rep.columns
    shares = [_missing_shares(c) for c in cs]
    cols = [
        Col("mark", "", ["!" if decision(c, alpha).drift else "" for c in cs], True),
        Col("rank", "#", [str(i) for i in range(1, len(cs) + 1)], True),
        Col("name", "column", [labels.get(c.name, c.name) for c in cs], True, left=True),
        Col("kind", "kind", [c.kind for c in cs], priority=9, left=True),
        Col("js", "JS", [num(c.measures["js"].value) for c in cs], True),
        Col("ci", f"{level} CI", [f"[{num(c.measures['js'].ci_low)}, "
                                  f"{num(c.measures['js'].ci_high)}]" for c in cs],
            priority=3),
        Col("q", "q(JS)", [_pq(c.measures["js"].qvalue,
                               bool(getattr(c.measures["js"], "p_floor", False)))
                           for c in cs], priority=7),
    ]
    prio = {"ks": 1, "wasserstein": 4, "psi": 5, "tv": 1, "chi2": 6, "kl": 8}
    for key in ("wasserstein", "psi", "ks", "kl", "tv", "chi2"):
        cells = [num(c.measures[key].value) if key in c.measures else "" for c in cs]
        if any(cells):
            cols.append(Col(key, SHORT[key], cells, priority=prio[key]))
    if any(s > 0 for pair in shares for s in pair if not math.isnan(s)):
        cols.append(Col("missing", "missing", [f"{_share(r)}->{_share(c)}" for r, c in shares],
                        priority=2))
    return cols


def _fit(cols: list[Col], width: int | None, sep: int = 2,
         name_key: str = "name") -> tuple[list[Col], list[Col], int]:
    """The columns to show within ``width`` (required ones always, optional ones by
    priority), those left out, and the width given to the name column: its full width
    when it fits, else at least :data:`NAME_MIN` characters before an optional column
    is dropped for it."""
    def w(c: Col) -> int:
        return max([len(c.head), *map(len, c.cells)])

    def total(cs: Sequence[Col], nw: int) -> int:
        return sum(nw if c.key == name_key else w(c) for c in cs) + sep * (len(cs) - 1)

    full = max([w(c) for c in cols if c.key == name_key] or [0])
    if width is None:
        return cols, [], full
    chosen = [c for c in cols if c.required]
    for c in sorted((c for c in cols if not c.required), key=lambda c: c.priority):
        if total([*chosen, c], min(full, NAME_MIN)) <= width:
            chosen.append(c)
    shown = [c for c in cols if c in chosen]
    name_w = max(4, min(full, width - total(shown, 0)))
    return shown, [c for c in cols if c not in chosen], name_w


def abbreviations(names: Sequence[str], n: int) -> dict[str, str]:
    """A label of at most ``n`` characters for every name longer than that, unique among all
    the names shown: the name's start and ``~`` (``~2``, ``~3``, ... where starts collide).
    The terminal text lists each label with its full name, so a cut name is never a guess.

    >>> abbreviations(["health_good", "health_fair", "age"], 8)
    {'health_good': 'health_~', 'health_fair': 'health~2'}
    """
    taken = {x for x in names if len(x) <= n}
    out: dict[str, str] = {}
    for name in names:
        if len(name) <= n or name in out:
            continue
        label, k = name[: max(n - 1, 1)] + "~", 1
        while label in taken:
            k += 1
            label = name[: max(n - 1 - len(str(k)), 1)] + f"~{k}"
        taken.add(label)
        out[name] = label
    return out


def _cut(s: str, n: int) -> str:
    """A name cut to ``n`` characters, the cut marked (names only: numbers are never cut)."""
    return s if len(s) <= n else s[: max(n - 3, 1)] + "..."


def _format_table(cols: list[Col], name_w: int, sep: int = 2,
                  name_key: str = "name") -> list[str]:
    widths = [name_w if c.key == name_key else max([len(c.head), *map(len, c.cells)])
              for c in cols]

    def line(values: list[str]) -> str:
        parts = []
        for c, v, wd in zip(cols, values, widths):
            v = _cut(v, wd) if c.key == name_key else v
            parts.append(v.ljust(wd) if c.left or c.key == "mark" else v.rjust(wd))
        return (" " * sep).join(parts).rstrip()

    out = [line([c.head for c in cols])]
    out += [line([c.cells[i] for c in cols]) for i in range(len(cols[0].cells))]
    return out


class Line(NamedTuple):
    """A line of terminal text and how rich should colour it."""

    text: str
    style: str | None = None


def _wrap(text: str, width: int | None, indent: str = "  ") -> list[str]:
    if width is None or len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False)


def _legend(rep: Report, keys: Sequence[str]) -> list[str]:
    """One line per measure of the report (shown or not), then q, nats, the interval, the
    missing shares and permutation floors when the report has them, and the clipping rule."""
    level = f"{rep.meta.get('level', 0.95):.0%}"
    present = {k for c in rep.columns for k in c.measures}
    shown = [k for k in ("js", "wasserstein", "psi", "ks", "kl", "tv", "chi2") if k in present]
    out = [LEGEND[k] for k in shown]
    out += [LEGEND["q"], LEGEND["nats"], LEGEND["ci"].format(level=level)]
    if "missing" in keys:
        out.append(LEGEND["missing"])
    if _any_floor(rep):
        out.append(LEGEND["floor"])
    out.append(LEGEND["clip"])
    return out


def _any_floor(rep: Report) -> bool:
    return (any(getattr(m, "p_floor", False) for c in rep.columns for m in c.measures.values())
            or bool((rep.joint or {}).get("p_floor", False)))


def _mi_cols(rep: Report, labels: dict[str, str] | None = None) -> list[Col]:
    rows = rep.mutual_information or []
    labels = labels or {}
    return [Col("rank", "#", [str(r["rank"]) for r in rows], True),
            Col("name", "column", [labels.get(str(r["column"]), str(r["column"])) for r in rows],
                True, left=True),
            Col("mi", "MI (nats)", [num(r["value"]) for r in rows], True),
            Col("ci", f"{rep.meta.get('level', 0.95):.0%} CI",
                [f"[{num(r['ci_low'])}, {num(r['ci_high'])}]" for r in rows], priority=1),
            Col("method", "method", [str(r.get("method") or r.get("note", "")) for r in rows],
                priority=2, left=True)]


def text_lines(rep: Report, width: int | None = DEFAULT_WIDTH) -> list[Line]:
    """The terminal text, verdict first, each line at most ``width`` characters (``None``:
    no limit)."""
    alpha = _alpha(rep)
    out = _heading(f"Verdict: {verdict(rep)}", width)
    for s in _summary_lines(rep):
        out += [Line(t) for t in _wrap(s, width)]

    # one decision per column: DRIFT/ok, the name, the test and its q-value
    decisions = [decision(c, alpha) for c in rep.columns]
    texts = [_decision_text(d) for d in decisions]
    labels = _labels(rep, texts, width)
    shown_names = [labels.get(c.name, c.name) for c in rep.columns]
    name_w = max([len(x) for x in shown_names] + [6])
    out += [Line(""), *_heading("Decisions, most different first (DRIFT: q <= "
                                f"{num(alpha)}):", width)]
    for d, t, shown in zip(decisions, texts, shown_names):
        line = f"{'DRIFT' if d.drift else 'ok':5s}  {shown.ljust(name_w)}  {t}"
        # too narrow for name and test on one line: the test goes below, indented
        pieces = ([line.rstrip()] if width is None or len(line.rstrip()) <= width
                  else [f"{'DRIFT' if d.drift else 'ok':5s}  {shown}",
                        *_wrap(" " * 7 + t, width, " " * 9)])
        for i, piece in enumerate(pieces):
            out.append(Line(piece, "red" if d.drift and i == 0 else None))

    cols = _detail_columns(rep, labels)
    shown, dropped, nw = _fit(cols, width)
    out += [Line(""), *_heading(
        "Details: columns ranked by Jensen-Shannon divergence (! = drift)", width)]
    table = _format_table(shown, nw)
    out.append(Line(table[0], "bold"))
    for row, c in zip(table[1:], rep.columns):
        out.append(Line(row, "red" if decision(c, alpha).drift else None))
    if dropped:
        out += [Line(t, "dim") for t in _wrap(
            f"not shown at this width: {', '.join(c.head for c in dropped)} "
            "(see report.md, report.html)", width)]

    if rep.mutual_information is not None:
        out += [Line(""), *_heading("Columns ranked by mutual information with target "
                                    f"{rep.meta.get('target')!r}:", width)]
        mshown, _, mnw = _fit(_mi_cols(rep, labels), width)
        out += [Line(t) for t in _format_table(mshown, mnw)]
    out += [Line(""), Line("Legend:", "bold")]
    for t in _legend(rep, [c.key for c in cols]):
        out += [Line(x, "dim") for x in _wrap(t, width, "      ")]
    if labels:
        out += [Line(""), *_heading("Names cut to fit this width:", width)]
        for name, label in labels.items():
            out += [Line(x, "dim") for x in _wrap(f"{label}  {name}", width, "    ")]
    return out


def _heading(text: str, width: int | None) -> list[Line]:
    return [Line(t, "bold") for t in _wrap(text, width)]


def _labels(rep: Report, texts: list[str], width: int | None) -> dict[str, str]:
    """Labels for the names too long for the narrowest of the three tables at ``width``
    (the decision lines, the details and the MI ranking), one set for all three."""
    names = [c.name for c in rep.columns]
    longest = max(map(len, names), default=0)
    if width is None:
        return {}
    budgets = [max(NAME_FLOOR, width - 9 - max(map(len, texts), default=0)),
               _fit(_detail_columns(rep), width)[2]]
    if rep.mutual_information is not None:
        budgets.append(_fit(_mi_cols(rep), width)[2])
    budget = max(NAME_FLOOR, min(budgets))
    return abbreviations(names, budget) if budget < longest else {}


def terminal_width() -> int:
    """The terminal's width, or :data:`DEFAULT_WIDTH` when output goes to a pipe or file."""
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def text_table(rep: Report, width: int | None = -1) -> str:
    """The report as plain text: verdict, decisions, details, legend. ``width``: the most
    characters per line (default: the terminal's, 80 for pipes and files; ``None``: no
    limit)."""
    if width == -1:
        width = terminal_width()
    return "\n".join(line.text for line in text_lines(rep, width))


def print_table(rep: Report, file: Any = None, *, use_rich: bool = True,
                width: int | None = None) -> None:
    """Print the report, coloured with rich when it is installed and wanted (plain text
    otherwise: the same characters, the drift marker included)."""
    try:
        if not use_rich:
            raise ImportError
        from rich.console import Console
        from rich.text import Text
    except ImportError:
        print(text_table(rep, terminal_width() if width is None else width), file=file)
        return
    console = Console(file=file, highlight=False, soft_wrap=True)
    w = console.width if width is None else width
    for line in text_lines(rep, w):
        console.print(Text(line.text, style=line.style or ""))


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def _num(x: Any) -> Any:
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(float(x)) or math.isinf(float(x)) else float(x)
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    if isinstance(x, dict):
        return {k: _num(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_num(v) for v in x]
    return x


#: Measure keys of report.json: consumers read them, so a key is never renamed or removed
#: (new ones are added at the end). ``test`` names the test behind ``pvalue``, ``plugin`` is
#: the value before bias correction and clipping.
MEASURE_KEYS = ("value", "ci_low", "ci_high", "pvalue", "qvalue", "units", "test", "plugin")
#: ColumnResult fields that report.json spells differently or leaves out.
_COLUMN_RENAMED = {"edges": "bin_edges"}
_COLUMN_LEFT_OUT = {"plot", "measures"}


def report_dict(rep: Report) -> dict[str, Any]:
    """The JSON-ready dict: the keys of ``divergences.report/1`` plus, per column, every
    other field of its result (decision, missing shares and tests, notes) and, per measure
    that has them, the names of the clipped measures and those with a p-value at a floor."""
    cols = []
    for rank, c in enumerate(rep.columns, 1):
        d: dict[str, Any] = {"name": c.name, "kind": c.kind, "rank": rank}
        if dataclasses.is_dataclass(c):
            for f in dataclasses.fields(c):
                if f.name not in _COLUMN_LEFT_OUT and f.name not in d:
                    d[_COLUMN_RENAMED.get(f.name, f.name)] = getattr(c, f.name)
        ref, cur = _missing_shares(c)
        d["missing_share_reference"], d["missing_share_current"] = ref, cur
        d["measures"] = {k: {f: getattr(m, f) for f in MEASURE_KEYS}
                         for k, m in c.measures.items()}
        d["clipped"] = [k for k, m in c.measures.items() if getattr(m, "clipped", False)]
        d["p_floor"] = [k for k, m in c.measures.items() if getattr(m, "p_floor", False)]
        cols.append(d)
    target = None
    if rep.mutual_information is not None:
        target = {"name": rep.meta.get("target"), "units": "nats",
                  "mutual_information": rep.mutual_information}
    return _num({"schema": "divergences.report/1", "meta": rep.meta, "columns": cols,
                 "joint": rep.joint, "target": target, "skipped": rep.skipped})


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _md_table(cols: list[Col], esc: Callable[[str], str]) -> list[str]:
    head = ["" if c.key == "mark" else c.head for c in cols]
    out = ["| " + " | ".join(head) + " |",
           "|" + "".join(":---|" if c.left else "---:|" for c in cols)]
    for i in range(len(cols[0].cells)):
        out.append("| " + " | ".join(esc(c.cells[i]) for c in cols) + " |")
    return out


def markdown(rep: Report) -> str:
    """Markdown: verdict, one decision per column, the details table, MI ranking, legend."""
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    alpha = _alpha(rep)
    out = ["# Comparison report", "", f"**Verdict: {verdict(rep)}.**", ""]
    out += [f"- {esc(line)}" for line in _summary_lines(rep)]
    out += ["", "## Decisions", "",
            "| | column | decision | test |", "|:---|:---|:---|:---|"]
    for c in rep.columns:
        d = decision(c, alpha)
        out.append(f"| {'!' if d.drift else ''} | {esc(c.name)} | "
                   f"{'**drift**' if d.drift else 'no drift'} | {esc(_decision_text(d))} |")
    cols = _detail_columns(rep)
    out += ["", "## Details: columns ranked by Jensen-Shannon divergence", ""]
    out += _md_table(cols, esc)
    if rep.mutual_information is not None:
        out += ["", f"## Mutual information with `{esc(str(rep.meta.get('target')))}` (nats)",
                ""]
        out += _md_table(_mi_cols(rep), esc)
    out += ["", "## Legend", ""]
    for t in _legend(rep, [c.key for c in cols]):
        key, sep, rest = t.partition("  ")
        out.append(f"- `{key}` {rest.strip()}" if sep and len(key) <= 8 else f"- {t}")
    out += ["", f"Intervals: {rep.meta.get('level', 0.95):.0%} bootstrap "
            f"({rep.meta.get('n_boot')} resamples); permutation tests: "
            f"{rep.meta.get('permutations')} permutations or more."]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_REF, _CUR, _SIG, _GREY, _MI = "#1f77b4", "#d62728", "#d62728", "#8c8c8c", "#2ca02c"
#: Categories drawn per categorical column (the most frequent, pooled); the chart says so.
TOP_CATEGORIES = 12
#: Equal-width bins of the numeric distribution charts.
CHART_BINS = 30
_FONT = {"family": "system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif",
         "size": 12}


def _t(text: Any) -> str:
    """Text for a Plotly label: Plotly reads a few HTML tags (``<b>``, ``<br>``) in labels and
    decodes entities, so a column's name is entity-escaped to be shown as it is."""
    import html as _html
    return _html.escape(str(text), quote=False)


def _layout(height: int, **extra: Any) -> dict[str, Any]:
    """A Plotly layout that fills its container's width (no fixed width: the page is fluid)."""
    return {"autosize": True, "height": height, "font": _FONT, "hovermode": "closest",
            "margin": {"l": 10, "r": 10, "t": 30, "b": 40}, "paper_bgcolor": "#fff",
            "plot_bgcolor": "#fff", **extra}


def _axis(title: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "automargin": True, "showline": True,
            "linecolor": "#444", "ticks": "outside", "gridcolor": "#eee", "zeroline": False,
            **extra}


def _interval_bars(names: list[str], values: list[float], lows: list[float],
                   highs: list[float], colours: list[str], hover: list[str],
                   title: str) -> dict[str, Any]:
    """Horizontal bars with their intervals, the first name on top. Every quantity here is
    non-negative: a value or bound below 0 (estimation noise) is drawn at 0, never below."""
    v = [max(float(x), 0.0) if math.isfinite(x) else 0.0 for x in values]
    lo = [max(float(x), 0.0) if math.isfinite(x) else y for x, y in zip(lows, v)]
    hi = [max(float(x), 0.0) if math.isfinite(x) else y for x, y in zip(highs, v)]
    trace = {"type": "bar", "orientation": "h", "x": v, "y": names,
             "marker": {"color": colours},
             "error_x": {"type": "data", "symmetric": False, "color": "#222", "thickness": 1.2,
                         "array": [max(h - x, 0.0) for h, x in zip(hi, v)],
                         "arrayminus": [max(x - lo_, 0.0) for lo_, x in zip(lo, v)]},
             "hovertext": hover, "hoverinfo": "text", "name": ""}
    return {"data": [trace], "layout": _layout(
        60 + 22 * len(names), showlegend=False,
        xaxis=_axis(title, rangemode="nonnegative", zeroline=True, zerolinecolor="#444"),
        yaxis={"automargin": True, "autorange": "reversed", "ticks": "outside",
               "type": "category"})}


def _distribution(c: Any, data: tuple[np.ndarray, np.ndarray] | None) -> dict[str, Any]:
    """Reference and current side by side: shares of rows on equal-width bins (numeric), per
    value (numeric columns with at most :data:`TOP_CATEGORIES` values), on the adaptive bins'
    counts when the raw values are not at hand (the dask engine), or on the most frequent
    categories."""
    title = ""
    values = (np.unique(np.concatenate(data)) if c.kind == "numeric" and data is not None
              else np.empty(0))
    if 0 < values.size <= TOP_CATEGORIES and data[0].size and data[1].size:
        # few values (flags, small counts): one pair of bars per value, side by side; overlaid
        # on equal-width bins, the nearer series hid the other wherever the two were close
        shares = [np.bincount(np.searchsorted(values, v), minlength=values.size) / v.size
                  for v in data]
        x, width = [num(v) for v in values], None
        if len(set(x)) < len(x):            # values closer than three digits tell apart
            x = [repr(float(v)) for v in values]
        xaxis = _axis(_t(c.name), type="category")
        mode = "group"
    elif c.kind == "numeric" and data is not None and data[0].size and data[1].size:
        r, cu = data
        lo, hi = float(min(r.min(), cu.min())), float(max(r.max(), cu.max()))
        hi = hi if hi > lo else lo + 1.0
        edges = np.linspace(lo, hi, CHART_BINS + 1)
        shares = [np.histogram(v, bins=edges)[0] / v.size for v in (r, cu)]
        x, width, xaxis = ((edges[:-1] + edges[1:]) / 2).tolist(), float(edges[1] - edges[0]), \
            _axis(_t(c.name))
        mode = "overlay"
    elif c.kind == "numeric" and c.edges and len(c.edges) > 1:
        edges = np.asarray(c.edges, float)
        shares = [np.asarray(k, float) / max(sum(k), 1)
                  for k in (c.reference_counts, c.current_counts)]
        x, width, xaxis = ((edges[:-1] + edges[1:]) / 2).tolist(), np.diff(edges).tolist(), \
            _axis(_t(c.name))
        mode = "overlay"
    else:
        cats = [str(k) for k in (c.categories or [])] or [
            str(i) for i in range(len(c.reference_counts))]
        pr = np.asarray(c.reference_counts, float) / max(sum(c.reference_counts), 1)
        pc = np.asarray(c.current_counts, float) / max(sum(c.current_counts), 1)
        order = np.argsort(-(pr + pc), kind="stable")[:TOP_CATEGORIES]
        x, width = [_t(cats[i]) for i in order], None
        shares = [pr[order], pc[order]]
        xaxis = _axis(_t(c.name), type="category", tickangle="auto")
        mode = "group"
        if len(cats) > len(order):
            title = f"top {len(order)} of {len(cats)} categories"
    data_ = []
    for name, share, colour in (("reference", shares[0], _REF), ("current", shares[1], _CUR)):
        trace = {"type": "bar", "name": name, "x": x, "y": np.asarray(share).tolist(),
                 "marker": {"color": colour},
                 "opacity": 0.55 if mode == "overlay" else 0.85,
                 "hovertemplate": f"{name}<br>%{{x}}<br>%{{y:.1%}} of rows<extra></extra>"}
        if width is not None:
            trace["width"] = width
        data_.append(trace)
    return {"data": data_, "layout": _layout(
        280, barmode=mode, bargap=0.0 if mode == "overlay" else 0.15,
        title={"text": title, "font": {"size": 11}, "x": 1, "xanchor": "right"},
        legend={"orientation": "h", "x": 0, "y": 1.12, "xanchor": "left"},
        xaxis=xaxis, yaxis=_axis("share of rows", tickformat=".0%", rangemode="tozero"))}


def figures(rep: Report) -> dict[str, dict[str, Any]]:
    """Every chart of the page as a Plotly figure (plain data: no plotly import): ``js``
    (the JS divergence of each column with its interval, drift in red), ``mi`` (mutual
    information with the target) and ``col0``, ``col1``, ... (each column's distributions,
    in rank order)."""
    alpha = _alpha(rep)
    level = f"{rep.meta.get('level', 0.95):.0%}"
    cs = rep.columns
    ds = [decision(c, alpha) for c in cs]
    js = [c.measures["js"] for c in cs]
    out = {"js": _interval_bars(
        [_t(c.name) for c in cs], [m.value for m in js], [m.ci_low for m in js],
        [m.ci_high for m in js], [_SIG if d.drift else _GREY for d in ds],
        [f"{_t(c.name)}<br>JS {num(m.value)} [{num(m.ci_low)}, {num(m.ci_high)}]<br>"
         f"{'drift' if d.drift else 'no drift'}: {_decision_text(d)}"
         for c, m, d in zip(cs, js, ds)],
        f"Jensen-Shannon divergence (nats)<br>{level} interval; red: drift")}
    if rep.mutual_information:
        rows = rep.mutual_information
        out["mi"] = _interval_bars(
            [_t(r["column"]) for r in rows], [r["value"] for r in rows],
            [r["ci_low"] for r in rows], [r["ci_high"] for r in rows], [_MI] * len(rows),
            [f"{_t(r['column'])}<br>MI {num(r['value'])} [{num(r['ci_low'])}, "
             f"{num(r['ci_high'])}] nats" for r in rows],
            f"mutual information with {_t(rep.meta.get('target'))} (nats)<br>{level} interval")
    for i, c in enumerate(cs):
        out[f"col{i}"] = _distribution(c, rep.plot_data.get(c.name))
    return out


_PLOTLY: str | None = None


def plotly_bundle() -> str | None:
    """The minified plotly.js shipped inside the plotly package (read once; the Python
    package itself is never imported), or None when plotly is not installed."""
    global _PLOTLY
    if _PLOTLY is None:
        import importlib.util
        from pathlib import Path
        spec = importlib.util.find_spec("plotly")
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations)), "package_data",
                    "plotly.min.js")
        if not path.is_file():
            return None
        _PLOTLY = path.read_text(encoding="utf-8")
    return _PLOTLY


def _json_in_html(obj: Any) -> str:
    """JSON safe inside a <script> element: every ``<`` is written ``\\u003c`` (the same
    string to JSON), so no ``</script>`` or ``<!--`` in a column name can end or hide it."""
    import json
    text = json.dumps(_num(obj), allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c")


def _raw(c: Any, key: str, rank: int) -> float | None:
    """The number a table cell sorts by (None: sort by its text)."""
    m = c.measures
    if key == "rank":
        return float(rank)
    if key in ("js", "ci", "q"):
        js = m["js"]
        return {"js": js.value, "ci": js.ci_low, "q": js.qvalue}[key]
    if key in m:
        return m[key].value
    if key == "missing":
        ref, cur = _missing_shares(c)
        return cur - ref
    if key in ("wasserstein", "psi", "ks", "kl", "tv", "chi2"):
        return -math.inf                     # the measure does not apply: sorts last
    return None


def _cell(text: str, left: bool = False, key: float | None = None,
          badge: str | None = None) -> dict[str, Any]:
    if key is not None and not math.isfinite(key):
        key = -1e308 if key < 0 or math.isnan(key) else 1e308
    return {"text": text, "left": left, "key": None if key is None else repr(float(key)),
            "badge": badge}


def _html_table(rep: Report) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Head and rows of the page's one table of columns: the decision and its test, every
    measure, the missing shares; each numeric cell carries the number it sorts by."""
    alpha = _alpha(rep)
    cols = [c for c in _detail_columns(rep) if c.key != "mark"]
    decisions = [decision(c, alpha) for c in rep.columns]
    at = next(i for i, c in enumerate(cols) if c.key == "name") + 1
    head = [{"head": c.head, "left": c.left, "sort": "text" if c.left else "num"}
            for c in cols]
    # the test reads as text and sorts by its q-value
    head[at:at] = [{"head": "decision", "left": True, "sort": "text"},
                   {"head": "test", "left": True, "sort": "num"}]
    rows = []
    for i, (c, d) in enumerate(zip(rep.columns, decisions)):
        cells = [_cell(col.cells[i], col.left, None if col.left else _raw(c, col.key, i + 1))
                 for col in cols]
        cells[at:at] = [_cell("drift" if d.drift else "no drift", True,
                              badge="drift" if d.drift else "ok"),
                        _cell(_decision_text(d), True, d.q)]
        rows.append({"drift": d.drift, "name": c.name, "cells": cells})
    return head, rows


def _card_line(c: Any, d: Decision) -> list[str]:
    """The facts under a chart, in pieces that the page never breaks inside."""
    js = c.measures["js"]
    ref, cur = _missing_shares(c)
    return [c.kind, f"JS {num(js.value)} [{num(js.ci_low)}, {num(js.ci_high)}]",
            _decision_text(d), f"n = {c.n_reference:,} / {c.n_current:,}",
            f"missing {_share(ref)} -> {_share(cur)}"]


_TEMPLATES = None


def _template(name: str) -> Any:
    """A template of ``report/templates``, from a Jinja2 environment made once (autoescaped:
    column names and file names are data, never markup)."""
    global _TEMPLATES
    if _TEMPLATES is None:
        try:
            import jinja2
        except ImportError as exc:  # pragma: no cover - jinja2 is in the [cli] extra
            raise ImportError("the HTML report needs jinja2: pip install "
                              "'divergences[cli]'") from exc
        _TEMPLATES = jinja2.Environment(
            loader=jinja2.PackageLoader("divergences.report", "templates"),
            autoescape=True, trim_blocks=False, lstrip_blocks=False,
            undefined=jinja2.StrictUndefined)
    return _TEMPLATES.get_template(name)


def _asset(name: str) -> str:
    from importlib import resources
    return resources.files("divergences.report").joinpath("templates", name).read_text(
        encoding="utf-8")


def html(rep: Report) -> str:
    """The self-contained HTML page (Jinja2 template ``templates/report.html.j2``): the
    verdict, one table of columns with their decisions, tests, measures and missing shares,
    the charts and the legend; no external resource."""
    alpha = _alpha(rep)
    bundle = plotly_bundle()
    head, rows = _html_table(rep)
    mi = None
    if rep.mutual_information is not None:
        mcols = _mi_cols(rep)
        keys = {"rank": "rank", "mi": "value", "ci": "ci_low"}
        mi = {"head": [{"head": c.head, "left": c.left, "sort": "text" if c.left else "num"}
                       for c in mcols],
              "rows": [{"cells": [_cell(col.cells[i], col.left,
                                        r[keys[col.key]] if col.key in keys else None)
                                  for col in mcols]}
                       for i, r in enumerate(rep.mutual_information)]}
    cards = []
    for i, c in enumerate(rep.columns):
        d = decision(c, alpha)
        cards.append({"name": c.name, "drift": d.drift, "line": _card_line(c, d),
                      "figure": f"col{i}"})
    legend = []
    for t in _legend(rep, [c.key for c in _detail_columns(rep)]):
        key, sep, rest = t.partition("  ")
        legend.append((key, rest.strip()) if sep and len(key) <= 8 else ("", t))
    meta = rep.meta
    footer = (f"divergences {meta.get('version')}; seed {meta.get('seed')}; sample "
              f"{meta.get('sample')}; {meta.get('permutations')} permutations; "
              f"{meta.get('n_boot')} bootstrap resamples; level {meta.get('level')}.")
    return _template("report.html.j2").render(
        css=_asset("report.css"), verdict=verdict(rep),
        drifted=any(r["drift"] for r in rows),
        summary=_summary_lines(rep, joint=False),
        head=head, rows=rows,
        joint=_joint_line(rep.joint, alpha) if rep.joint is not None else
        "No numeric columns: no joint test.",
        mi=mi, target=str(meta.get("target")), cards=cards, legend=legend, footer=footer,
        level=f"{meta.get('level', 0.95):.0%}", charts=bundle is not None,
        no_charts="Charts need plotly: pip install 'divergences[cli]'.",
        plotly=bundle or "", figures=_json_in_html(figures(rep)) if bundle else "",
        script=_asset("report.js"))
