r"""How different are two data sets, column by column and jointly? ``compare`` answers.

:func:`compare` takes a *reference* and a *current* data set (pandas DataFrames or
dicts of 1-d arrays) and measures, for every shared column,

* numeric columns: Jensen-Shannon divergence on adaptive (pooled-quantile) bins,
  Wasserstein-1, population stability index, Kolmogorov-Smirnov statistic and
  ``KL(reference || current)`` by nearest neighbours;
* categorical columns (text, booleans, integers with at most 10 distinct values):
  Jensen-Shannon divergence, total variation and smoothed Pearson chi-square;

each with a bootstrap interval and a permutation p-value, adjusted for the number of
columns by Benjamini-Hochberg (:mod:`divergences.report._columns` states every formula).
Jointly, a permutation MMD test on the standardised numeric columns. With ``target``, the
mutual information of each column with the target (estimator ``"auto"``, with intervals),
ranked. Columns are ranked by their Jensen-Shannon divergence (one scale, nats in
``[0, ln 2]``, for both kinds of column).

The :class:`Report` renders as a terminal table (:meth:`Report.table`), JSON, Markdown and a
self-contained HTML page with plots (:meth:`Report.to_html`). The ``divergences report``
command (:mod:`divergences.cli`) is the same from the shell; with no data it runs on the
bundled Wisconsin breast-cancer data, benign (reference) against malignant (current).

>>> import numpy as np
>>> from divergences.report import compare
>>> rng = np.random.default_rng(0)
>>> ref = {"x": rng.normal(size=200), "colour": rng.choice(["red", "blue"], 200)}
>>> cur = {"x": rng.normal(1.0, 1.0, size=150), "colour": rng.choice(["red", "blue"], 150)}
>>> rep = compare(ref, cur, permutations=49, n_boot=20)
>>> [c.name for c in rep.columns]          # ranked by JS divergence
['x', 'colour']
>>> rep.columns[0].measures["ks"].pvalue
0.02
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._permutation import check_permutations
from ._columns import (
    CATEGORICAL_MEASURES,
    NUMERIC_MEASURES,
    ColumnResult,
    Measure,
    compare_categorical,
    compare_numeric,
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
#: Integer columns with at most this many distinct values are compared as categories.
MAX_INTEGER_CATEGORIES = 10
#: Numeric columns need at least this many present values in each sample.
MIN_NUMERIC_ROWS = 5


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
        cols = {str(c): data[c].to_numpy() for c in data.columns}
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


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return type(v).__name__ in ("NAType", "NaTType")


def _classify(values: np.ndarray, column: str, label: str) -> tuple[str, np.ndarray]:
    """``("numeric", float64 with NaN)`` or ``("categorical", object array of str/None)``;
    ``("unsupported", reason)`` for dates and other kinds."""
    kind = values.dtype.kind
    if kind == "b":
        return "categorical", np.array([str(bool(v)) for v in values], dtype=object)
    if kind in "iuf":
        v = values.astype(np.float64)
        if np.isinf(v).any():
            raise InputError(f"column {column!r} in {label}: infinite values")
        return "numeric", v
    if kind in "US":
        return "categorical", values.astype(str).astype(object)
    if kind in "mM":
        return "unsupported", np.asarray("dates and durations are not compared")
    if kind != "O":
        return "unsupported", np.asarray(f"dtype {values.dtype} is not compared")
    present = [v for v in values if not _is_missing(v)]
    is_num = [isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
              for v in present]
    if present and all(is_num):
        v = np.array([math.nan if _is_missing(x) else float(x) for x in values])
        if np.isinf(v).any():
            raise InputError(f"column {column!r} in {label}: infinite values")
        return "numeric", v
    if any(is_num):
        first_text = next(repr(v) for v, num in zip(present, is_num) if not num)
        first_num = next(repr(v) for v, num in zip(present, is_num) if num)
        raise InputError(f"column {column!r} in {label} mixes numbers and text (e.g. "
                         f"{first_num} and {first_text})")
    return "categorical", np.array([None if _is_missing(v) else str(v) for v in values],
                                   dtype=object)


def _subsample(cols: dict[str, np.ndarray], sample: int | None,
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = len(next(iter(cols.values())))
    if sample is None or n <= sample:
        return cols
    idx = np.sort(rng.choice(n, sample, replace=False))
    return {k: v[idx] for k, v in cols.items()}


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Torch intra-op threads set to 1 while the report runs, then restored: the report
    makes many calls on small tensors, where thread start-up dominates."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass
class Report:
    """Result of :func:`compare`.

    ``columns``: one :class:`ColumnResult` per compared column, ranked by JS divergence
    (largest first). ``joint``: the MMD test on the numeric columns (``None`` without numeric
    columns). ``mutual_information``: with a target, one dict per column (``value``,
    ``stderr``, ``ci_low``, ``ci_high``, ``method``, ``n``, ``rank``), ranked; else ``None``.
    ``skipped``: ``{"column": ..., "reason": ...}`` for columns not compared. ``meta``: the
    settings and the inputs' names and sizes.
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
        """A Markdown summary: ranked column table, joint test, MI ranking."""
        from ._render import markdown
        return markdown(self)

    def to_html(self) -> str:
        """A self-contained HTML page: inline CSS, plots as inline SVG, no script and no
        external resource."""
        from ._render import html
        return html(self)

    def table(self) -> str:
        """The ranked column table as plain text (the command line prints it with rich)."""
        from ._render import text_table
        return text_table(self)

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
        (or those in ``columns``); missing values (NaN, None) are dropped per column.
    target
        A column present in both: excluded from the comparison, and the mutual information
        of every compared column with it is estimated on the pooled rows.
    columns
        The columns to compare (default: every shared column but ``target``).
    sample
        At most this many rows of each data set, drawn at random without replacement.
    seed
        Seeds every random choice (subsampling, bootstrap, permutations, tie-breaking):
        equal seeds give equal reports.
    permutations, n_boot
        Permutations per p-value and bootstrap resamples per interval.
    level
        Confidence level of the intervals.
    names
        How the two data sets are called in messages and outputs (file names in the CLI);
        default ``("reference", "current")``, or the paths with ``engine="dask"``.
    progress
        Called as ``progress(done, total, column)`` after each column.
    engine
        ``"local"`` (default): everything in this process, on the (sub)sampled rows.
        ``"dask"``: ``reference`` and ``current`` are paths (a Parquet or CSV file, or a
        folder of them) or dask DataFrames, read partition by partition on a Dask cluster and
        never gathered whole. Full data, from mergeable per-partition sketches: every
        categorical measure (exact counts) and, for numeric columns, ``js`` and ``psi``
        (exact counts on adaptive bins whose edges are snapped to a grid of 4096 equal bins),
        ``wasserstein`` and ``ks`` (from the grid histograms, within the error bounds given
        per column in ``meta["sketch"]``). On a uniform sample of ``sample`` rows per data set
        (default 5000), the very rows and computations of the local engine with the same
        ``sample`` and ``seed``: ``kl``, the bootstrap intervals (translated to surround the
        full-data values) and permutation p-values, the joint test, the mutual information
        with the target, the plots. Needs ``pip install 'dask[dataframe]'
        distributed``; see :mod:`divergences.report._dask`.
    scheduler
        With ``engine="dask"``: ``None`` starts a local cluster of worker processes (closed
        at the end); an address such as ``"tcp://10.0.0.1:8786"`` connects to a running
        scheduler; a ``distributed.Client`` is used as it is.

    Measures and directions: ``kl`` is ``KL(reference || current)``; ``chi2`` is
    ``sum (r - c)^2 / c``; the others are symmetric. Units are nats for ``js``, ``psi``, ``kl``,
    the column's units for ``wasserstein``. P-values are permutation p-values
    ``(1 + #{null >= observed}) / (1 + permutations)``; ``qvalue`` is the Benjamini-Hochberg
    adjustment over the columns of each measure.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> ref = {"a": rng.normal(size=100), "y": rng.integers(0, 2, 100)}
    >>> cur = {"a": rng.normal(size=100), "y": rng.integers(0, 2, 100)}
    >>> rep = compare(ref, cur, target="y", permutations=19, n_boot=10)
    >>> rep.mutual_information[0]["column"], rep.mutual_information[0]["method"]
    ('a', 'ross')
    """
    if engine not in ("local", "dask"):
        raise ValueError(f"engine must be 'local' or 'dask'; got {engine!r}")
    permutations = check_permutations(permutations)
    n_boot = _check_int(n_boot, "n_boot", 2)
    seed = _check_int(seed, "seed", 0)
    if sample is not None:
        sample = _check_int(sample, "sample", 2)
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level must lie in (0, 1); got {level!r}")
    if engine == "dask":
        from ._dask import compare_dask
        return compare_dask(reference, current, target, columns=columns, sample=sample,
                            seed=seed, permutations=permutations, n_boot=n_boot, level=level,
                            names=names, progress=progress, scheduler=scheduler)
    if scheduler is not None:
        raise ValueError("scheduler is only used with engine='dask'")
    if names is None:
        names = ("reference", "current")
    ref_label, cur_label = names
    ref = _columns_of(reference, ref_label)
    cur = _columns_of(current, cur_label)
    rng = np.random.default_rng([seed, 0])
    ref = _subsample(ref, sample, rng)
    cur = _subsample(cur, sample, rng)

    chosen = choose_columns(ref, cur, target, columns, ref_label, cur_label)

    typed: list[tuple[str, str, np.ndarray, np.ndarray]] = []
    skipped: list[dict[str, str]] = []
    for c in chosen:
        kr, vr = _classify(ref[c], c, ref_label)
        kc, vc = _classify(cur[c], c, cur_label)
        if "unsupported" in (kr, kc):
            skipped.append({"column": c, "reason": str(vr if kr == "unsupported" else vc)})
            continue
        if kr != kc:
            raise InputError(f"column {c!r} is {kr} in {ref_label} but {kc} in {cur_label} "
                             "(mixed types)")
        for kind, v, label in ((kr, vr, ref_label), (kc, vc, cur_label)):
            missing = np.isnan(v) if kind == "numeric" else np.array([x is None for x in v])
            if missing.all():
                raise InputError(f"column {c!r} in {label}: every value is missing")
        if kr == "numeric":
            pooled = np.concatenate([vr, vc])
            pooled = pooled[~np.isnan(pooled)]
            distinct = np.unique(pooled)
            if distinct.size <= MAX_INTEGER_CATEGORIES and np.all(distinct == np.round(distinct)):
                kr = "categorical"
                vr = np.array([None if np.isnan(x) else str(int(x)) for x in vr], dtype=object)
                vc = np.array([None if np.isnan(x) else str(int(x)) for x in vc], dtype=object)
        typed.append((c, kr, vr, vc))
    if not typed:
        raise InputError(f"no column of {ref_label} and {cur_label} can be compared "
                         f"({'; '.join(s['column'] + ': ' + s['reason'] for s in skipped)})")

    results: list[ColumnResult] = []
    plot_data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    opts = dict(permutations=permutations, n_boot=n_boot, level=float(level), seed=seed)
    with _one_thread():
        for i, (c, kind, vr, vc) in enumerate(typed):
            if kind == "numeric":
                mr, mc = np.isnan(vr), np.isnan(vc)
                r, cu = vr[~mr], vc[~mc]
                for v, label in ((r, ref_label), (cu, cur_label)):
                    if v.size < MIN_NUMERIC_ROWS:
                        raise InputError(f"column {c!r} in {label}: {v.size} values; numeric "
                                         f"columns need at least {MIN_NUMERIC_ROWS}")
                res = compare_numeric(c, r, cu, missing=(int(mr.sum()), int(mc.sum())), **opts)
                plot_data[c] = (r, cu)
            else:
                mr = np.array([x is None for x in vr], dtype=bool)
                mc = np.array([x is None for x in vc], dtype=bool)
                res = compare_categorical(c, vr[~mr].astype(str), vc[~mc].astype(str),
                                          missing=(int(mr.sum()), int(mc.sum())), **opts)
            results.append(res)
            if progress is not None:
                progress(i + 1, len(typed), c)

        for name in set(NUMERIC_MEASURES) | set(CATEGORICAL_MEASURES):
            having = [r for r in results if name in r.measures]
            q = benjamini_hochberg([r.measures[name].pvalue for r in having])
            for r, qv in zip(having, q):
                m = r.measures[name]
                r.measures[name] = Measure(m.name, m.value, m.ci_low, m.ci_high, m.pvalue,
                                           float(qv), m.units)
        results.sort(key=lambda r: -r.measures["js"].value)

        numeric = [(c, vr, vc) for c, kind, vr, vc in typed if kind == "numeric"]
        joint = None
        if numeric:
            joint = joint_mmd([c for c, _, _ in numeric],
                              np.column_stack([vr for _, vr, _ in numeric]),
                              np.column_stack([vc for _, _, vc in numeric]),
                              permutations=permutations, seed=seed)

        mi = None
        if target is not None:
            tk_r, tr = _classify(ref[target], target, ref_label)
            tk_c, tc = _classify(cur[target], target, cur_label)
            if "unsupported" in (tk_r, tk_c) or tk_r != tk_c:
                raise InputError(f"target column {target!r} must be numeric in both or "
                                 f"categorical in both; it is {tk_r} in {ref_label} and "
                                 f"{tk_c} in {cur_label}")
            tvals = np.concatenate([tr, tc])
            tmiss = (np.isnan(tvals.astype(np.float64)) if tk_r == "numeric"
                     else np.array([v is None for v in tvals], dtype=bool))
            if tmiss.all():
                raise InputError(f"target column {target!r}: every value is missing")
            tsample = np.zeros(tvals.shape[0], dtype=np.int64)
            present = target_sample(tvals[~tmiss], tk_r)
            tsample = tsample.astype(present.dtype)
            tsample[~tmiss] = present
            mi = target_information(
                [(c, kind, np.concatenate([vr, vc])) for c, kind, vr, vc in typed],
                tsample, tmiss, seed=seed, level=float(level))

    meta = {
        "reference": ref_label, "current": cur_label,
        "rows_reference": len(next(iter(ref.values()))),
        "rows_current": len(next(iter(cur.values()))),
        "target": target, "seed": seed, "permutations": permutations, "n_boot": n_boot,
        "level": float(level), "sample": sample, "package": "divergences",
        "version": _version(),
    }
    return Report(results, joint, mi, skipped, meta, plot_data)


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("divergences")
    except Exception:  # pragma: no cover - not installed
        return "unknown"
