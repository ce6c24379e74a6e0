"""How the report reads: verdict first, one decision per column, details that fit 80 columns
with every number whole, a legend for every measure, missing shares, one number format."""

from __future__ import annotations

import io
import json
import math
import re

import numpy as np
import pytest

from divergences.report import compare
from divergences.report._render import (
    LEGEND,
    decision,
    figures,
    markdown,
    num,
    print_table,
    text_lines,
    text_table,
)

FAST = dict(permutations=99, n_boot=10, seed=0)
LONG = "a rather long column name that will not fit"


@pytest.fixture(scope="module")
def mixed():
    """Numeric and categorical columns, one shifted, one with missing values that grow,
    one with a long name, a target."""
    rng = np.random.default_rng(5)
    n, m = 300, 250
    x_ref, x_cur = rng.normal(size=n), rng.normal(0.8, 1.0, m)
    w_ref, w_cur = rng.normal(size=n), rng.normal(size=m)
    w_ref[rng.random(n) < 0.02] = np.nan
    w_cur[rng.random(m) < 0.3] = np.nan
    ref = {"x": x_ref, "with_missing": w_ref, LONG: rng.gamma(2.0, 1000.0, n),
           "colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
           "y": rng.integers(0, 2, n)}
    cur = {"x": x_cur, "with_missing": w_cur, LONG: rng.gamma(2.0, 1000.0, m),
           "colour": rng.choice(["red", "green", "blue"], m, p=[0.2, 0.3, 0.5]),
           "y": rng.integers(0, 2, m)}
    return compare(ref, cur, "y", **FAST)


@pytest.fixture(scope="module")
def numeric_only():
    rng = np.random.default_rng(6)
    ref = {"a": rng.normal(size=120), "b": rng.exponential(size=120)}
    cur = {"a": rng.normal(0.5, 1.0, 100), "b": rng.exponential(size=100)}
    return compare(ref, cur, **FAST)


def _rich(rep, width=80):
    pytest.importorskip("rich")
    buf = io.StringIO()
    print_table(rep, buf, width=width)
    return buf.getvalue()


def _outputs(rep, monkeypatch):
    """The plain text and the rich text at a terminal of 80 columns."""
    monkeypatch.setenv("COLUMNS", "80")
    plain = io.StringIO()
    print_table(rep, plain, use_rich=False)
    out = {"plain": plain.getvalue()}
    try:
        import rich  # noqa: F401
    except ImportError:
        return out
    buf = io.StringIO()
    print_table(rep, buf)            # rich's Console reads COLUMNS as the CLI's does
    out["rich"] = buf.getvalue()
    return out


def test_num_is_one_format_and_never_cuts():
    assert [num(v) for v in (0.4912345, 54.43, 863.2, 1234.5, 99999.0, 123456.0)] == [
        "0.491", "54.4", "863", "1234", "99999", "1.23e+05"]
    assert [num(v) for v in (1e-4, 9.99e-5, 0.05, 0.0, math.nan, math.inf, None)] == [
        "0.0001", "9.99e-05", "0.05", "0", "-", "inf", "-"]


def test_a_q_value_that_underflowed_is_not_printed_as_zero():
    from divergences.report._render import Decision, _decision_text

    assert _decision_text(Decision(True, "KS test", 0.0)) == "KS test, q < 1e-300"
    assert _decision_text(Decision(True, "JS permutation test", 0.01, True)) == (
        "JS permutation test, q <= 0.01")


def test_verdict_comes_first_then_one_decision_per_column(mixed):
    lines = text_table(mixed, 80).splitlines()
    drifted = [c for c in mixed.columns if decision(c).drift]
    assert lines[0] == (f"Verdict: drift in {len(drifted)} of {len(mixed.columns)} columns "
                        "(q <= 0.05)")
    assert 0 < len(drifted) < len(mixed.columns)
    start = lines.index(next(x for x in lines if x.startswith("Decisions")))
    block = lines[start + 1: start + 1 + len(mixed.columns)]
    for c, line in zip(mixed.columns, block):      # in rank order, one line each
        flag, rest = line.split(None, 1)
        assert flag == ("DRIFT" if decision(c).drift else "ok")
        assert re.search(r"(KS|chi-square|permutation) test|missing share", rest), line
        assert re.search(r"q (=|<=) \S+$", line), line
    assert lines.index(next(x for x in lines if x.startswith("Details"))) > start


@pytest.mark.parametrize("face", ["plain", "rich"])
def test_80_columns_no_line_longer_no_number_cut(mixed, monkeypatch, face):
    outs = _outputs(mixed, monkeypatch)
    if face not in outs:
        pytest.skip("rich is not installed")
    text = outs[face]
    lines = text.splitlines()
    too_long = [x for x in lines if len(x) > 80]
    assert not too_long, too_long
    assert "\u2026" not in text                      # no ellipsis anywhere
    table = lines[lines.index(next(x for x in lines if x.startswith("Details"))) + 2:]
    for c in mixed.columns:
        row = next(x for x in table if re.search(rf"\s{re.escape(c.name[:17])}", x))
        js = c.measures["js"]
        # every number of the row is printed whole, in the one format
        for v in (js.value, js.ci_low, js.ci_high):
            assert re.search(rf"(^|[\s\[,]){re.escape(num(v))}([\s\],]|$)", row), (num(v), row)
        if "ks" in c.measures:
            assert num(c.measures["ks"].value) in row.split(), row
    # short names whole; the long name cut with a marker, never to a stub
    for name in ("x", "with_missing", "colour"):
        assert name in text
    assert LONG[:20] in text


def test_plain_marker_survives_without_rich(mixed, monkeypatch):
    text = _outputs(mixed, monkeypatch)["plain"]
    assert "\x1b[" not in text                       # no escape codes
    lines = text.splitlines()
    drifted = {c.name for c in mixed.columns if decision(c).drift}
    flagged = [x for x in lines if x.startswith("DRIFT ")]
    assert len(flagged) == len(drifted)
    table = lines[lines.index(next(x for x in lines if x.startswith("Details"))) + 2:]
    marked = [x for x in table[:len(mixed.columns)] if x.startswith("!")]
    assert len(marked) == len(drifted)


def test_columns_empty_for_every_row_are_dropped(numeric_only):
    text = text_table(numeric_only, None)
    head = next(x for x in text.splitlines() if x.lstrip().startswith("#"))
    assert "TV" not in head.split() and "chi2" not in head.split()
    assert "missing" not in head.split()             # nothing is missing
    assert "KS" in head.split() and "W1" in head.split()


def test_width_decides_what_is_shown_and_says_what_is_not(mixed):
    wide = text_table(mixed, None)
    narrow = text_table(mixed, 80)
    head_wide = next(x for x in wide.splitlines() if x.lstrip().startswith("#  column"))
    head_narrow = next(x for x in narrow.splitlines() if x.lstrip().startswith("#  column"))
    assert len(head_narrow.split()) < len(head_wide.split())
    assert "not shown at this width:" in narrow and "not shown" not in wide
    assert LONG in wide                              # no limit: nothing cut


def test_missing_shares_and_their_change_are_shown(mixed):
    c = mixed.column("with_missing")
    assert c.missing_current > c.missing_reference > 0
    text = text_table(mixed, 80)
    decided = next(x for x in text.splitlines() if x.startswith("DRIFT  with_missing"))
    assert re.search(r"missing share, \d(\.\d)?% -> \d+%", decided), decided
    row = next(x for x in text.splitlines() if "with_missing" in x and "%->" in x)
    assert re.search(r"\d(\.\d)?%->\d+%", row), row
    md = markdown(mixed)
    assert re.search(r"\| \d(\.\d)?%->\d+% \|", md)
    assert "missing" in {line.split()[0] for line in text.splitlines()
                         if line.startswith("missing")}


def test_legend_explains_every_measure_in_one_line(mixed, numeric_only):
    for rep in (mixed, numeric_only):
        text = text_table(rep, 80)
        legend = text.split("Legend:")[1].strip().splitlines()
        present = {k for c in rep.columns for k in c.measures}
        for key in present:
            assert LEGEND[key] in legend, key
        for key in ("q", "nats"):
            assert LEGEND[key] in legend
        assert any("clipped at 0" in x for x in legend)
        assert all(len(x) <= 80 for x in legend)
    for line in LEGEND.values():
        assert len(line.format(level="95%")) <= 80, line


def test_markdown_reads_verdict_first_with_every_measure(mixed):
    md = markdown(mixed)
    lines = md.splitlines()
    assert lines[0] == "# Comparison report"
    assert lines[2].startswith("**Verdict: drift in ")
    assert md.index("## Decisions") < md.index("## Details") < md.index("## Legend")
    for head in ("JS", "W1", "PSI", "KS", "KL", "TV", "chi2", "missing"):
        assert f"| {head} |" in md, head


def test_text_lines_mark_drift_for_colour(mixed):
    styles = {line.text: line.style for line in text_lines(mixed, 80)}
    for text, style in styles.items():
        if text.startswith("DRIFT "):
            assert style == "red"


def test_rich_and_plain_hold_the_same_characters(mixed):
    plain = text_table(mixed, 80)
    assert _rich(mixed, 80).rstrip("\n") == plain


def test_json_keeps_its_keys_and_adds_the_decision(mixed):
    d = json.loads(mixed.to_json())
    assert set(d) == {"schema", "meta", "columns", "joint", "target", "skipped"}
    col = d["columns"][0]
    assert {"name", "kind", "rank", "n_reference", "n_current", "missing_reference",
            "missing_current", "measures", "bin_edges", "categories", "reference_counts",
            "current_counts", "missing_share_reference", "missing_share_current"} <= set(col)
    # the old keys stay; test and plugin were added
    assert set(col["measures"]["js"]) == {"value", "ci_low", "ci_high", "pvalue", "qvalue",
                                          "units", "test", "plugin"}
    c = mixed.column("with_missing")
    got = next(x for x in d["columns"] if x["name"] == "with_missing")
    assert got["missing_share_current"] == pytest.approx(
        c.missing_current / (c.missing_current + c.n_current))


def test_html_shows_verdict_decisions_and_missing_shares(mixed):
    page = mixed.to_html()
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    import html

    assert html.escape(text_table(mixed, None).splitlines()[0], quote=False) in page
    for c in mixed.columns:
        d = decision(c)
        assert f">{'drift' if d.drift else 'no drift'}</span>" in page
    c = mixed.column("with_missing")
    ref = c.missing_reference / (c.missing_reference + c.n_reference)
    assert f"missing {100 * ref:.1f}% -&gt; " in page           # the card's line
    assert "<th class=\"\" data-sort=\"num\" scope=\"col\">missing</th>" in page


def test_html_bars_are_never_drawn_below_zero(mixed):
    """A negative value or bound (as estimation noise gives) is drawn at 0, never below:
    no bar, no whisker and no axis reaches below zero."""
    import copy

    from divergences.report._columns import Measure

    rep = copy.deepcopy(mixed)
    col = rep.columns[-1]
    m = col.measures["js"]
    col.measures["js"] = Measure("js", -0.02, -0.05, 0.01, m.pvalue, m.qvalue, m.units)
    rep.mutual_information[0]["ci_low"] = -0.3
    for key in ("js", "mi"):
        fig = figures(rep)[key]
        trace = fig["data"][0]
        x = np.asarray(trace["x"])
        lows = x - np.asarray(trace["error_x"]["arrayminus"])
        highs = x + np.asarray(trace["error_x"]["array"])
        assert x.min() >= 0 and lows.min() >= 0 and (highs >= x).all(), (key, trace)
        assert fig["layout"]["xaxis"]["rangemode"] == "nonnegative"
    assert figures(rep)["js"]["data"][0]["x"][-1] == 0.0


def test_html_is_self_contained_with_the_charts_inline(mixed):
    page = mixed.to_html()
    # nothing is fetched: no element names a source, stylesheet or remote address
    for bad in ("<script src", "<link", "<img", "<iframe", "@import", "url(http"):
        assert bad not in page, bad
    assert page.count("Plotly") > 0 and page.count('id="figures"') == 1
    assert page.count("* plotly.js v") == 1                     # the bundle, once
    figs = json.loads(page.split('id="figures">')[1].split("</script>")[0])
    assert set(figs) == {"js", "mi"} | {f"col{i}" for i in range(len(mixed.columns))}
    assert page.count("data-figure=") == len(figs)


def test_a_column_name_cannot_break_the_page():
    name = "</script><b>bold</b><!--"
    rng = np.random.default_rng(9)
    rep = compare({name: rng.normal(size=60)}, {name: rng.normal(size=60)}, **FAST)
    page = rep.to_html()
    assert name not in page                                  # escaped everywhere
    assert "&lt;/script&gt;&lt;b&gt;bold" in page            # as text in the table
    figs = json.loads(page.split('id="figures">')[1].split("</script>")[0])
    # Plotly reads tags in labels: the name is entity-escaped there, shown as it is
    assert figs["col0"]["layout"]["xaxis"]["title"]["text"] == (
        "&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;&lt;!--")


def test_charts_without_raw_values_use_the_bins(numeric_only):
    """The dask engine keeps no raw values for every column: its charts draw the adaptive
    bins' counts, one bar per bin as wide as the bin."""
    import copy

    rep = copy.deepcopy(numeric_only)
    rep.plot_data = {}
    figs = figures(rep)
    for i, c in enumerate(rep.columns):
        ref, cur = figs[f"col{i}"]["data"]
        edges = np.asarray(c.edges)
        assert np.allclose(ref["width"], np.diff(edges))
        assert np.allclose(ref["x"], (edges[:-1] + edges[1:]) / 2)
        assert sum(ref["y"]) == pytest.approx(1.0) and sum(cur["y"]) == pytest.approx(1.0)


def test_numeric_columns_with_few_values_are_drawn_side_by_side():
    """A 0/1 or small-count column (randhie's health flags, the demo) drawn as overlaid bars
    on 30 equal-width bins hid the current series behind the reference one wherever the two
    were close; one pair of bars per value shows both."""
    rng = np.random.default_rng(1)
    ref = {"flag": (rng.random(300) < 0.1).astype(float), "x": rng.normal(size=300)}
    cur = {"flag": (rng.random(200) < 0.12).astype(float), "x": rng.normal(size=200)}
    rep = compare(ref, cur, permutations=9, n_boot=5)
    figs = figures(rep)
    i = [c.name for c in rep.columns].index("flag")
    fig = figs[f"col{i}"]
    assert fig["layout"]["barmode"] == "group"
    ref_t, cur_t = fig["data"]
    assert ref_t["x"] == ["0", "1"] and "width" not in ref_t
    assert ref_t["y"] == pytest.approx([np.mean(ref["flag"] == v) for v in (0, 1)])
    assert cur_t["y"] == pytest.approx([np.mean(cur["flag"] == v) for v in (0, 1)])
    # a continuous column keeps its histogram
    j = [c.name for c in rep.columns].index("x")
    assert figs[f"col{j}"]["layout"]["barmode"] == "overlay"


@pytest.mark.parametrize("width", [60, 40])
def test_narrow_terminals_abbreviate_names_with_a_legend_and_keep_tables_whole(width):
    """Below 80 columns (issue 13): no line is longer than the terminal, each table row
    stays one line, names too long for the width get unique labels (``~``, ``~2``) that are
    listed with the full names, and numbers are never cut."""
    from divergences.report._render import abbreviations
    rng = np.random.default_rng(7)
    names = ["health_status_good", "health_status_fair", "health_status_poor",
             "physical_limitation_score", "age"]
    ref = {k: rng.normal(size=120) for k in names} | {"y": rng.integers(0, 2, 120)}
    cur = {k: rng.normal(0.3 * (i == 0), 1.0, 100) for i, k in enumerate(names)} \
        | {"y": rng.integers(0, 2, 100)}
    rep = compare(ref, cur, "y", permutations=19, n_boot=10, seed=0)
    for text in (text_table(rep, width), _rich(rep, width)):
        lines = text.splitlines()
        assert all(len(x) <= width for x in lines), [x for x in lines if len(x) > width]
        legend = lines[lines.index("Names cut to fit this width:") + 1:]
        labels = dict(x.split("  ", 1) for x in legend)
        # every name is shown whole or has a label listed with it, labels unique
        assert all(n in labels.values() or n in text.split() for n in names)
        assert len(set(labels)) == len(labels) == len(set(labels.values())) >= 1
        if width == 40:
            assert {"health_status_good", "health_status_fair"} <= set(labels.values())
        start = next(i for i, x in enumerate(lines) if x.lstrip().startswith("#  column"))
        rows = lines[start + 1:start + 1 + len(names)]
        for c, row in zip(rep.columns, rows):               # one line per column, in order
            shown = next(k for k, v in labels.items() if v == c.name) \
                if c.name in labels.values() else c.name
            assert shown in row.split() and num(c.measures["js"].value) in row.split()
        decisions = [x for x in lines if x.startswith(("DRIFT ", "ok "))]
        assert len(decisions) == len(names)
    assert abbreviations(["abc"], 8) == {}
