r"""How different are two data sets, column by column and jointly? ``compare`` answers.

:func:`compare` takes a *reference* and a *current* data set (pandas DataFrames or
dicts of 1-d arrays) and measures, for every shared column,

* numeric columns (integer, float and ``decimal`` values): Jensen-Shannon divergence on ten
  pooled-quantile bins, Wasserstein-1, population stability index, Kolmogorov-Smirnov
  statistic and ``KL(reference || current)`` by nearest neighbours;
* categorical columns (text, booleans, pandas categories): Jensen-Shannon divergence,
  total variation and smoothed Pearson chi-square;

each bias-corrected, with an interval that contains it, never below zero, and a p-value
(exact or asymptotic where one exists: KS, chi-square; adaptive permutations otherwise),
adjusted for the number of columns by Benjamini-Hochberg (:mod:`divergences.report._columns`
states every formula). A column's kind comes from its dtype, never from its values, so it is
the same from run to run; ``categorical=`` and ``numeric=`` override it.

**The verdict**: every column gets a one-line decision, :attr:`ColumnResult.drift` with
:attr:`ColumnResult.decided_by` (``"KS q=0.003"``), from its distribution test (KS or
chi-square) and Fisher's test of its missing share, Benjamini-Hochberg adjusted together;
``meta["drifted"]`` counts the drifted columns at ``alpha``. Columns that cannot be
compared (only in one data set, every value missing, too few values, timestamps, IDs and
free text that are unique per row) are listed in :attr:`Report.skipped` with the reason:
one bad column never stops the report.

Jointly, a permutation MMD test on the standardised numeric columns. With ``target``, the
mutual information of each column with the target (estimator ``"auto"``, with intervals),
ranked. Columns are ranked by their Jensen-Shannon divergence (one scale, nats in
``[0, ln 2]``, for both kinds of column).

The :class:`Report` renders as a terminal table (:meth:`Report.table`), JSON, Markdown and a
self-contained HTML page with plots (:meth:`Report.to_html`). The ``divergences report``
command (:mod:`divergences.cli`) is the same from the shell; with no data it runs on the
bundled RAND Health Insurance Experiment data: person-years on an individual deductible plan
(current) against the other plans (reference), outpatient visits as the target.

>>> import numpy as np
>>> from divergences.report import compare
>>> rng = np.random.default_rng(0)
>>> ref = {"x": rng.normal(size=200), "colour": rng.choice(["red", "blue"], 200)}
>>> cur = {"x": rng.normal(1.0, 1.0, size=150), "colour": rng.choice(["red", "blue"], 150)}
>>> rep = compare(ref, cur, permutations=49, n_boot=20)
>>> [c.name for c in rep.columns]          # ranked by JS divergence
['x', 'colour']
>>> rep.column("x").drift, rep.column("x").decided_by
(True, 'KS q=2.6e-13')
>>> rep.meta["drifted"], rep.meta["compared"]
(1, 2)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import decimal
import math
import numbers
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._permutation import check_permutations
from ._columns import (
    CATEGORICAL_MEASURES,
    MAX_PERMUTATIONS,
    NUMERIC_MEASURES,
    ColumnResult,
    Measure,
    compare_categorical,
    compare_numeric,
    decide,
    missing_test,
    permutation_cap,
)
from ._io import InputError, choose_columns
from ._joint import benjamini_hochberg, joint_mmd, target_information, target_sample

__all__ = [
    "CATEGORICAL_MEASURES",
    "NUMERIC_MEASURES",
    "ColumnResult",
    "InputError",
    "Measure",
    "Report",
    "benjamini_hochberg",
    "compare",
]

SCHEMA = "divergences.report/1"
#: Numeric columns need at least this many present values in each sample.
MIN_NUMERIC_ROWS = 5
#: A text or integer column unique per row with at least this many rows looks like an ID.
MIN_ID_ROWS = 20
#: A text column with more distinct values than this share of its values is free text.
FREE_TEXT_SHARE = 0.5
#: ... and at least this many distinct values (a short categorical column may be all distinct).
FREE_TEXT_MIN_DISTINCT = 50
TIMESTAMP_REASON = "timestamps and durations are not compared"
NUMERIC_ID_REASON = "unique per row: looks like an ID"


# --------------------------------------------------------------------------------------------
# Input normalisation
# --------------------------------------------------------------------------------------------


def _columns_of(data: Any, label: str) -> dict[str, np.ndarray]:
    """``{name: 1-d array}`` from a DataFrame or a mapping of arrays; checks shapes."""
    if hasattr(data, "columns") and hasattr(data, "to_numpy") and not isinstance(data, Mapping):
        names = [str(c) for c in data.columns]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise InputError(f"{label}: column {dup!r} appears twice")
        cols = {str(c): _column_values(data[c]) for c in data.columns}
    elif isinstance(data, Mapping):
        cols = {}
        for k, v in data.items():
            a = np.asarray(v)
            if a.ndim != 1:
                raise InputError(f"{label}: column {k!r} must be 1-d; got shape {a.shape}")
            cols[str(k)] = a
    else:
        raise TypeError(f"{label} must be a pandas DataFrame or a dict of 1-d arrays; got "
                        f"{type(data).__name__}")
    if not cols:
        raise InputError(f"{label}: no columns")
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise InputError(f"{label}: columns have different lengths {sorted(lengths)}")
    if lengths == {0}:
        raise InputError(f"{label}: no rows")
    return cols


def _column_values(series: Any) -> np.ndarray:
    """A pandas column as a 1-d array; a ``category`` column as its labels (objects, missing
    as None), so that it stays categorical whatever its categories' type."""
    if str(getattr(series, "dtype", "")) == "category":
        return np.array([None if _is_missing(v) else str(v) for v in series], dtype=object)
    return series.to_numpy()


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if isinstance(v, decimal.Decimal) and v.is_nan():
        return True
    return type(v).__name__ in ("NAType", "NaTType")


def _is_number(v: Any) -> bool:
    return (isinstance(v, (numbers.Real, decimal.Decimal))
            and not isinstance(v, (bool, np.bool_)))


def _is_time(v: Any) -> bool:
    # pandas Timestamps (time-zone aware or not) subclass datetime; numpy's datetime64 too
    return isinstance(v, (_dt.date, _dt.time, _dt.timedelta, np.datetime64, np.timedelta64))


def _classify(values: np.ndarray, column: str, label: str) -> tuple[str, np.ndarray]:
    """``("numeric", float64 with NaN)`` or ``("categorical", object array of str/None)``,
    from the dtype (object arrays: from the values' types); ``("unsupported", reason)`` for
    timestamps (time-zone aware or naive alike), durations and other kinds."""
    kind = values.dtype.kind
    if kind == "b":
        return "categorical", np.array([str(bool(v)) for v in values], dtype=object)
    if kind in "iuf":
        v = values.astype(np.float64)
        if np.isinf(v).any():
            return "unsupported", np.asarray(f"infinite values in {label}")
        return "numeric", v
    if kind in "US":
        return "categorical", values.astype(str).astype(object)
    if kind in "mM":
        return "unsupported", np.asarray(TIMESTAMP_REASON)
    if kind != "O":
        return "unsupported", np.asarray(f"dtype {values.dtype} is not compared")
    present = [v for v in values if not _is_missing(v)]
    if present and any(_is_time(v) for v in present):
        return "unsupported", np.asarray(TIMESTAMP_REASON)
    is_num = [_is_number(v) for v in present]
    if present and all(is_num):
        v = np.array([math.nan if _is_missing(x) else float(x) for x in values])
        if np.isinf(v).any():
            return "unsupported", np.asarray(f"infinite values in {label}")
        return "numeric", v
    if any(is_num):
        first_text = next(repr(v) for v, num in zip(present, is_num) if not num)
        first_num = next(repr(v) for v, num in zip(present, is_num) if num)
        raise InputError(f"column {column!r} in {label} mixes numbers and text (e.g. "
                         f"{first_num} and {first_text})")
    return "categorical", np.array([None if _is_missing(v) else str(v) for v in values],
                                   dtype=object)


def _as_kind(kind: str, values: np.ndarray, want: str, column: str,
             label: str) -> tuple[str, np.ndarray]:
    """Apply a ``categorical=``/``numeric=`` override to a classified column."""
    if want == kind or kind == "unsupported":
        return kind, values
    if want == "categorical":
        return "categorical", np.array(
            [None if math.isnan(x) else (str(int(x)) if x == int(x) else repr(x))
             for x in values], dtype=object)
    out = np.full(values.shape[0], math.nan)
    for i, x in enumerate(values):
        if x is None:
            continue
        try:
            out[i] = float(x)
        except ValueError:
            raise InputError(f"column {column!r} in {label}: numeric= was asked but {x!r} "
                             "is not a number") from None
    return "numeric", out


def _missing_mask(kind: str, v: np.ndarray) -> np.ndarray:
    return np.isnan(v) if kind == "numeric" else np.array([x is None for x in v], dtype=bool)


def _unique_reason(kind: str, vr: np.ndarray, vc: np.ndarray) -> str | None:
    """Why a column is not compared although it could be: an ID (unique per row in each data
    set) or free text, judged on the full data of both sides."""
    present = [v[~_missing_mask(kind, v)] for v in (vr, vc)]
    if sum(p.size for p in present) < MIN_ID_ROWS:
        return None
    if kind == "numeric":
        if not all(np.all(p == np.round(p)) and np.unique(p).size == p.size for p in present):
            return None
        dense = all(p.size == 0 or p.max() - p.min() + 1 <= 2 * p.size for p in present)
        monotone = all(p.size < 2 or np.all(np.diff(p) > 0) or np.all(np.diff(p) < 0)
                       for p in present)
        return NUMERIC_ID_REASON if dense or monotone else None
    distinct = [np.unique(p.astype(str)).size for p in present]
    if all(d == p.size for d, p in zip(distinct, present)):
        return "unique per row: looks like an ID or free text"
    if all(d >= FREE_TEXT_MIN_DISTINCT and d > FREE_TEXT_SHARE * p.size
           for d, p in zip(distinct, present)):
        return (f"free text: {distinct[0]:,} distinct values in {present[0].size:,} rows "
                "(not compared as categories)")
    return None


def _sample_index(n: int, sample: int | None, seed: int) -> np.ndarray | None:
    """Rows kept when a data set of ``n`` rows is cut to ``sample`` rows: a function of
    ``(n, sample, seed)`` only, so that two copies of one file keep the same rows (None: all).

    >>> a, b = _sample_index(10, 4, 0), _sample_index(10, 4, 0)
    >>> bool((a == b).all()), _sample_index(3, 4, 0)
    (True, None)
    """
    if sample is None or n <= sample:
        return None
    rng = np.random.default_rng([seed, 0, n])
    return np.sort(rng.choice(n, sample, replace=False))


@contextlib.contextmanager
def _one_thread() -> Iterator[Callable[[], None]]:
    """Torch intra-op threads set to 1 while the report runs, then restored: the estimators
    make many calls on small tensors, where thread start-up dominates. The report never
    imports torch for this: the context yields a function, called before each column, that
    limits torch once something else has imported it."""
    old: list[int] = []

    def limit() -> None:
        torch = sys.modules.get("torch")
        if torch is not None and not old:
            old.append(torch.get_num_threads())
            torch.set_num_threads(1)

    limit()
    try:
        yield limit
    finally:
        if old:
            sys.modules["torch"].set_num_threads(old[0])


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass
class Report:
    """Result of :func:`compare`.

    ``columns``: one :class:`ColumnResult` per compared column, ranked by JS divergence
    (largest first), each with its decision (``drift``, ``decided_by``) and missing shares.
    ``joint``: the MMD test on the numeric columns (``None`` without numeric columns; its
    ``p_floor`` says whether the permutation p-value sits at its floor ``1 / (1 + B)``).
    ``mutual_information``: with a target, one dict per column (``value``, ``stderr``,
    ``ci_low``, ``ci_high``, ``method``, ``n``, ``rank``, ``clipped``), ranked; else ``None``.
    ``skipped``: ``{"column": ..., "reason": ...}`` for every column not compared (only in
    one data set, every value missing, too few values, timestamps, IDs, free text, ...).
    ``meta``: the settings and the inputs: ``rows_reference``/``rows_current`` are the true
    row counts of the inputs, ``sampled_reference``/``sampled_current`` the rows compared
    (fewer when ``sample`` cut them; ``sampled`` says whether it did), ``alpha``,
    ``drifted`` (columns whose decision is drift) and ``compared`` (columns compared).

    >>> import numpy as np
    >>> x = np.arange(40.0) % 7
    >>> rep = compare({"x": x, "id": np.arange(40)}, {"x": x, "id": np.arange(40)},
    ...               permutations=19, n_boot=10)
    >>> rep.column("x").measures["js"].value, rep.meta["drifted"], rep.skipped
    (0.0, 0, [{'column': 'id', 'reason': 'unique per row: looks like an ID'}])
    """

    columns: list[ColumnResult]
    joint: dict[str, Any] | None
    mutual_information: list[dict[str, Any]] | None
    skipped: list[dict[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)
    plot_data: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict,
                                                                repr=False)

    def column(self, name: str) -> ColumnResult:
        """The result of column ``name``."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes ``None``); see :meth:`to_json` for the keys."""
        from ._render import report_dict
        return report_dict(self)

    def to_json(self, indent: int | None = 2) -> str:
        """JSON with keys ``schema``, ``meta``, ``columns``, ``joint``, ``target``,
        ``skipped``."""
        import json
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_markdown(self) -> str:
        """Markdown, verdict first: the verdict, one decision per column, the details table
        with every measure, the MI ranking and the legend."""
        from ._render import markdown
        return markdown(self)

    def to_html(self) -> str:
        """A self-contained HTML page (Jinja2 template): inline CSS, interactive Plotly charts
        with the plotly.js bundle embedded once, a sortable and searchable table (inline
        script); no external resource, so it works offline."""
        from ._render import html
        return html(self)

    def table(self, width: int | None = -1) -> str:
        """The terminal text, verdict first: the verdict, one decision per column, the
        details table ranked by JS divergence, the MI ranking and the legend (the command
        line prints it, coloured with rich). ``width``: the most characters per line (default:
        the terminal's, 80 for pipes and files; ``None``: no limit)."""
        from ._render import text_table
        return text_table(self, width)

    def __repr__(self) -> str:
        return (f"Report({len(self.columns)} columns, reference={self.meta.get('reference')!r}, "
                f"current={self.meta.get('current')!r})")


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def compare(
    reference: Any,
    current: Any,
    target: str | None = None,
    *,
    columns: Sequence[str] | None = None,
    sample: int | None = None,
    seed: int = 0,
    permutations: int = 99,
    n_boot: int = 100,
    level: float = 0.95,
    alpha: float = 0.05,
    categorical: Sequence[str] | None = None,
    numeric: Sequence[str] | None = None,
    max_permutations: int = MAX_PERMUTATIONS,
    names: tuple[str, str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    engine: str = "local",
    scheduler: Any = None,
) -> Report:
    r"""Compare ``reference`` with ``current`` column by column and jointly.

    Parameters
    ----------
    reference, current
        pandas DataFrames or dicts ``{column: 1-d array}``. The shared columns are compared
        (or those in ``columns``); missing values (NaN, None) are dropped per column and their
        share is compared on its own. Columns in only one of them are listed in ``skipped``.
    target
        A column present in both: excluded from the comparison, and the mutual information
        of every compared column with it is estimated on the pooled rows.
    columns
        The columns to compare (default: every shared column but ``target``).
    sample
        At most this many rows of each data set, drawn at random without replacement; the rows
        drawn depend only on the data set's row count and ``seed``, so two copies of one file
        give the same rows. ``meta`` keeps the true row counts.
    seed
        Seeds every random choice (subsampling, bootstrap, permutations, tie-breaking):
        equal seeds give equal reports.
    permutations, max_permutations
        Permutations per permutation p-value at first, and the ceiling they grow to (ten times
        more each round) while few permuted statistics reach the observed one
        (:func:`divergences.report._columns.adaptive_permutation`). The ceiling used is the
        smaller of ``max_permutations`` and what the number of columns and ``alpha`` call for
        (:func:`divergences.report._columns.permutation_cap`); ``meta["max_permutations"]``.
    n_boot
        Bootstrap resamples per interval.
    level
        Confidence level of the intervals.
    alpha
        False discovery rate of the drift decisions (a column drifts when its q-value is at
        most ``alpha``).
    categorical, numeric
        Columns to compare as categories, or as numbers, whatever their dtype (by default,
        integer, float and decimal columns are numeric; text, booleans and categories are
        categorical).
    names
        How the two data sets are called in messages and outputs (file names in the CLI);
        default ``("reference", "current")``, or the paths with ``engine="dask"``.
    progress
        Called as ``progress(done, total, column)`` after each column. The dask engine first
        calls it per partition with ``"reading partitions"``, then ``"counting and sampling
        partitions"`` (:data:`divergences.report._dask.PROGRESS_PHASES`) as the text.
    engine
        ``"local"`` (default): everything in this process, on the (sub)sampled rows.
        ``"dask"``: ``reference`` and ``current`` are paths (a Parquet or CSV file, or a
        folder of them) or dask DataFrames, read partition by partition on a Dask cluster and
        never gathered whole; see :mod:`divergences.report._dask` for what is computed on the
        full data and what on a sample of ``sample`` rows (default 5000). Needs
        ``pip install 'dask[dataframe]' distributed``.
    scheduler
        With ``engine="dask"``: ``None`` starts a local cluster of worker processes (closed
        at the end); an address such as ``"tcp://10.0.0.1:8786"`` connects to a running
        scheduler; a ``distributed.Client`` is used as it is.

    Measures and directions: ``kl`` is ``KL(reference || current)``; ``chi2`` is
    ``sum (r - c)^2 / c``; the others are symmetric. Units are nats for ``js``, ``psi``, ``kl``,
    the column's units for ``wasserstein``. Values are bias-corrected and never negative; the
    interval contains the value; p-values are exact or asymptotic for ``ks`` and categorical
    columns, adaptive permutation p-values otherwise (:mod:`divergences.report._columns`);
    ``qvalue`` is the Benjamini-Hochberg adjustment over the columns of each measure.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> ref = {"a": rng.normal(size=100), "y": rng.integers(0, 2, 100)}
    >>> cur = {"a": rng.normal(size=100), "y": rng.integers(0, 2, 100)}
    >>> rep = compare(ref, cur, target="y", permutations=19, n_boot=10)
    >>> rep.mutual_information[0]["column"], rep.column("a").drift
    ('a', False)
    """
    if engine not in ("local", "dask"):
        raise ValueError(f"engine must be 'local' or 'dask'; got {engine!r}")
    permutations = check_permutations(permutations)
    max_permutations = check_permutations(max_permutations)
    n_boot = _check_int(n_boot, "n_boot", 2)
    seed = _check_int(seed, "seed", 0)
    if sample is not None:
        sample = _check_int(sample, "sample", 2)
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level must lie in (0, 1); got {level!r}")
    if not (isinstance(alpha, (int, float)) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha must lie in (0, 1); got {alpha!r}")
    overrides = _overrides(categorical, numeric)
    if engine == "dask":
        from ._dask import compare_dask
        return compare_dask(reference, current, target, columns=columns, sample=sample,
                            seed=seed, permutations=permutations, n_boot=n_boot, level=level,
                            alpha=float(alpha), overrides=overrides,
                            max_permutations=max_permutations, names=names,
                            progress=progress, scheduler=scheduler)
    if scheduler is not None:
        raise ValueError("scheduler is only used with engine='dask'")
    if names is None:
        names = ("reference", "current")
    ref_label, cur_label = names
    ref = _columns_of(reference, ref_label)
    cur = _columns_of(current, cur_label)
    rows = (len(next(iter(ref.values()))), len(next(iter(cur.values()))))

    chosen = choose_columns(ref, cur, target, columns, ref_label, cur_label)
    skipped: list[dict[str, str]] = []
    if columns is None:
        for cols, label, other in ((ref, ref_label, cur), (cur, cur_label, ref)):
            skipped += [{"column": c, "reason": f"only in {label}"}
                        for c in cols if c not in other and c != target]
    for c in overrides:
        if c not in chosen:
            raise InputError(f"categorical=/numeric=: {c!r} is not a compared column")

    # Kinds, IDs and free text from the full data; then the sample.
    typed: list[tuple[str, str, np.ndarray, np.ndarray]] = []
    for c in chosen:
        kr, vr = _classify(ref[c], c, ref_label)
        kc, vc = _classify(cur[c], c, cur_label)
        if c in overrides:
            kr, vr = _as_kind(kr, vr, overrides[c], c, ref_label)
            kc, vc = _as_kind(kc, vc, overrides[c], c, cur_label)
        if "unsupported" in (kr, kc):
            skipped.append({"column": c, "reason": str(vr if kr == "unsupported" else vc)})
            continue
        # a side without a value has no kind of its own (an all-None column reads as text):
        # skipped here, before the kinds are compared
        empty = [label for k, v, label in ((kr, vr, ref_label), (kc, vc, cur_label))
                 if _missing_mask(k, v).all()]
        if empty:
            skipped.append({"column": c, "reason": f"every value is missing in {empty[0]}"})
            continue
        if kr != kc:
            raise InputError(f"column {c!r} is {kr} in {ref_label} but {kc} in {cur_label} "
                             "(mixed types)")
        reason = None if c in overrides else _unique_reason(kr, vr, vc)
        if reason:
            skipped.append({"column": c, "reason": reason})
            continue
        typed.append((c, kr, vr, vc))
    idx = [_sample_index(n, sample, seed) for n in rows]
    typed = [(c, k, vr if idx[0] is None else vr[idx[0]], vc if idx[1] is None else vc[idx[1]])
             for c, k, vr, vc in typed]

    results: list[ColumnResult] = []
    plot_data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    compared: list[tuple[str, str, np.ndarray, np.ndarray]] = []
    cap = max(permutations, permutation_cap(len(typed), float(alpha), max_permutations))
    opts = dict(permutations=permutations, n_boot=n_boot, level=float(level), seed=seed,
                max_permutations=cap)
    with _one_thread() as limit_threads:
        for i, (c, kind, vr, vc) in enumerate(typed):
            limit_threads()
            mr, mc = _missing_mask(kind, vr), _missing_mask(kind, vc)
            reason = _too_few(kind, vr[~mr], vc[~mc], ref_label, cur_label)
            if reason is None:
                try:
                    if kind == "numeric":
                        res = compare_numeric(c, vr[~mr], vc[~mc],
                                              missing=(int(mr.sum()), int(mc.sum())), **opts)
                        plot_data[c] = (vr[~mr], vc[~mc])
                    else:
                        res = compare_categorical(c, vr[~mr].astype(str), vc[~mc].astype(str),
                                                  missing=(int(mr.sum()), int(mc.sum())),
                                                  **opts)
                except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
                    text = str(exc).strip().splitlines()
                    reason = f"could not be compared ({text[0] if text else type(exc).__name__})"
            if reason is not None:
                skipped.append({"column": c, "reason": reason})
            else:
                missing_test(res)
                results.append(res)
                compared.append((c, kind, vr, vc))
            if progress is not None:
                progress(i + 1, len(typed), c)
        if not results:
            raise InputError(f"no column of {ref_label} and {cur_label} can be compared "
                             f"({'; '.join(s['column'] + ': ' + s['reason'] for s in skipped)})")

        _adjust(results)
        decide(results, float(alpha))
        results.sort(key=lambda r: -r.measures["js"].value)

        mi = None
        if target is not None:
            tr_full, tc_full = ref[target], cur[target]
            tr = tr_full if idx[0] is None else tr_full[idx[0]]
            tc = tc_full if idx[1] is None else tc_full[idx[1]]
            limit_threads()
            mi = _target_mi(compared, tr, tc, target, ref_label, cur_label, seed, float(level))

    # the joint test works on one large Gram matrix: torch's threads help there
    numeric_cols = [(c, vr, vc) for c, kind, vr, vc in compared if kind == "numeric"]
    joint = None
    if numeric_cols:
        joint = joint_mmd([c for c, _, _ in numeric_cols],
                          np.column_stack([vr for _, vr, _ in numeric_cols]),
                          np.column_stack([vc for _, _, vc in numeric_cols]),
                          permutations=permutations, seed=seed)

    sampled = tuple(n if i is None else i.size for n, i in zip(rows, idx))
    meta = {
        "reference": ref_label, "current": cur_label,
        "rows_reference": rows[0], "rows_current": rows[1],
        "rows_total": list(rows),
        "sampled_reference": sampled[0], "sampled_current": sampled[1],
        "sampled": sampled != rows,
        "target": target, "seed": seed, "permutations": permutations,
        "max_permutations": cap, "n_boot": n_boot,
        "level": float(level), "alpha": float(alpha), "sample": sample,
        "drifted": sum(r.drift for r in results), "compared": len(results),
        "overrides": dict(overrides),
        "package": "divergences", "version": _version(),
    }
    return Report(results, joint, mi, skipped, meta, plot_data)


def _overrides(categorical: Sequence[str] | None,
               numeric: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for arg, kind in ((categorical, "categorical"), (numeric, "numeric")):
        if arg is None:
            continue
        if isinstance(arg, str):
            raise TypeError(f"{kind} must be a sequence of column names, not a string")
        for c in arg:
            if str(c) in out:
                raise InputError(f"column {c!r} is in both categorical= and numeric=")
            out[str(c)] = kind
    return out


def _too_few(kind: str, r: np.ndarray, c: np.ndarray, ref_label: str,
             cur_label: str) -> str | None:
    for v, label in ((r, ref_label), (c, cur_label)):
        if v.size == 0:
            return f"every value is missing in {label}"
        if kind == "numeric" and v.size < MIN_NUMERIC_ROWS:
            return (f"{v.size} values in {label}; numeric columns need at least "
                    f"{MIN_NUMERIC_ROWS}")
    return None


def _adjust(results: list[ColumnResult]) -> None:
    """Benjamini-Hochberg q-values of each measure across the columns that have it."""
    for name in set(NUMERIC_MEASURES) | set(CATEGORICAL_MEASURES):
        having = [r for r in results if name in r.measures]
        q = benjamini_hochberg([r.measures[name].pvalue for r in having])
        for r, qv in zip(having, q):
            r.measures[name] = dataclasses.replace(r.measures[name], qvalue=float(qv))


def _target_mi(compared: list[tuple[str, str, np.ndarray, np.ndarray]], tr: np.ndarray,
               tc: np.ndarray, target: str, ref_label: str, cur_label: str, seed: int,
               level: float) -> list[dict[str, Any]]:
    tk_r, tr = _classify(tr, target, ref_label)
    tk_c, tc = _classify(tc, target, cur_label)
    if "unsupported" in (tk_r, tk_c) or tk_r != tk_c:
        raise InputError(f"target column {target!r} must be numeric in both or "
                         f"categorical in both; it is {tk_r} in {ref_label} and "
                         f"{tk_c} in {cur_label}")
    tvals = np.concatenate([tr, tc])
    tmiss = _missing_mask(tk_r, tvals)
    if tmiss.all():
        raise InputError(f"target column {target!r}: every value is missing")
    present = target_sample(tvals[~tmiss], tk_r)
    tsample = np.zeros(tvals.shape[0], dtype=present.dtype)
    tsample[~tmiss] = present
    return target_information(
        [(c, kind, np.concatenate([vr, vc])) for c, kind, vr, vc in compared],
        tsample, tmiss, seed=seed, level=level)


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("divergences")
    except Exception:  # pragma: no cover - not installed
        return "unknown"
