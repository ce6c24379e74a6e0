r"""The Dask engine of :func:`divergences.report.compare`: the same report on data that does
not fit in memory, a Parquet or CSV file or folder read partition by partition on a cluster.

No partition is ever combined with another into one frame on the client. Two passes:

1. every partition yields a mergeable sketch of each column (:mod:`._sketch`): numeric columns
   give counts of present and missing values, minimum, maximum, mean and squared deviations,
   and the distinct values with their counts while there are at most 11 of them; text columns
   give category counts. Partition sketches merge in a tree on the workers; the client gets
   one sketch per column and the row count of every partition.
2. every partition yields the exact counts of each numeric column on a fixed equal-width grid
   of ``grid_bins`` bins (default 4096) spanning the pooled minimum and maximum; and the rows
   of the sample (below).

**Full-data measures** (every row), from the merged sketches, with intervals and p-values *of
the full-data statistics* (never borrowed from a sample):

* categorical columns (text, booleans; integer columns given in ``categorical=``): ``js``,
  ``tv``, ``chi2`` from the exact category counts, with the local engine's own computation
  from counts (:func:`._columns.categorical_from_counts`: multinomial bootstrap of the counts,
  chi-square and G-test p-values): the values the local engine gives with ``sample=None``;
* numeric columns: ``js`` and ``psi`` from exact counts on the ten pooled-decile bins of
  :data:`._columns.BINS` (the same rule as the local engine, whatever the row count, so values
  on 5,000 rows and on all rows estimate the same quantity), whose edges are snapped to the
  grid (:func:`._sketch.quantile_edges`: each edge about one grid width ``h`` from the exact
  quantile); ``wasserstein`` from the merged grid histograms, error at most
  ``h sum_b max(r_b, c_b) <= 2h``; ``ks`` as the largest CDF gap on the grid edges, a lower
  bound short of the statistic by at most the largest grid-bin frequency. ``h`` and both error
  bounds are reported per column in ``meta["sketch"]``. Their bootstrap resamples the grid
  counts of each data set from a multinomial, their permutation tests split the pooled grid
  counts by multivariate hypergeometric draws (both exact for the binned data, at the full row
  counts), and the KS p-value is Kolmogorov's asymptotic one for the full row counts
  (:func:`full_numeric`). The drift decisions and the missing-share tests use the full data.

**Sampled measures**, on a uniform random sample of ``sample`` rows of each data set (the whole
data set when it has no more rows): the row indices are drawn on the client exactly as the local
engine draws them (:func:`divergences.report._sample_index`: a function of the row count and
the seed), and each partition returns its rows of the sample. On that sample the local engine
runs unchanged, giving ``kl`` (nearest neighbours, with its own interval), the joint MMD test,
the mutual information with the target and the plotted distributions; ``meta`` lists them
under ``sampled_measures`` and gives the sample's size in ``sample_rows``.

The cluster: ``scheduler=None`` starts a :class:`distributed.LocalCluster` with worker
processes (one thread each) and closes it at the end; an address (``"tcp://host:8786"``)
connects to a running scheduler (its workers must have ``divergences`` installed); a
:class:`distributed.Client` is used as it is and left open.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ._columns import (
    BINS,
    NUMERIC_MEASURES,
    UNITS,
    ColumnResult,
    Measure,
    adaptive_permutation,
    bias_corrected,
    categorical_from_counts,
    hist_measures,
    permutation_cap,
)
from ._io import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    InputError,
    base_suffix,
    choose_columns,
    compression_of,
    table_files,
)
from ._sketch import (
    DISTINCT_CAP,
    CategoricalSketch,
    NumericSketch,
    grid,
    histogram,
    ks_from_histograms,
    merge_occupancy,
    occupancy,
    quantile_edges,
    wasserstein_from_histograms,
)

__all__ = ["DEFAULT_SAMPLE", "GRID_BINS", "INSTALL_HINT", "PROGRESS_PHASES", "compare_dask"]

#: Bins of the equal-width grid on which numeric columns are counted.
GRID_BINS = 4096
#: Rows per data set drawn for the sampled measures when ``sample`` is None.
DEFAULT_SAMPLE = 5000
#: Sketches merged per task in the reduction tree.
FAN_IN = 8
#: The widest range of integers (max - min + 1) a dense numeric column may span in one data
#: set for the dask engine to check whether it is unique per row, as the local engine does
#: (a bitmap of this many bits, 256 MiB, per task at most); a wider non-monotone column is
#: compared as data.
ID_BITMAP_BITS = 1 << 31
#: Seconds to wait for a scheduler given by address.
CONNECT_TIMEOUT = 10.0
#: Options of the :class:`distributed.LocalCluster` started when no scheduler is given
#: (``n_workers=None``: distributed's choice from the number of cores).
LOCAL_CLUSTER: dict[str, Any] = {"n_workers": None, "threads_per_worker": 1,
                                 "processes": True, "dashboard_address": ":0"}
INSTALL_HINT = "the dask engine needs dask and distributed: pip install 'divergences[dask]'"
#: What ``progress(done, total, text)`` is told while the partitions are read and sketched,
#: then counted and sampled (per partition); the sample's columns follow as column names.
READING, COUNTING = "reading partitions", "counting and sampling partitions"
PROGRESS_PHASES = (READING, COUNTING)
FULL_DATA = {"numeric": ("js", "psi", "wasserstein", "ks"),
             "categorical": ("js", "tv", "chi2")}


def _require_dask() -> None:
    try:
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise InputError(INSTALL_HINT) from None


# --------------------------------------------------------------------------------------------
# Work done on the workers, one partition at a time
# --------------------------------------------------------------------------------------------


def _classified(df: Any, column: str, label: str) -> tuple[str, Any]:
    from . import _classify, _column_values
    return _classify(_column_values(df[column]), column, label)


def partition_sketches(df: Any, columns: Sequence[str], label: str) -> dict[str, Any]:
    """Pass 1 on one partition: its row count and one sketch per column (``("unsupported",
    reason)`` for dates and other kinds that are not compared).

    >>> import pandas as pd
    >>> a = partition_sketches(pd.DataFrame({"x": [1.0, 2.0], "c": ["u", None]}), ["x", "c"], "a")
    >>> b = partition_sketches(pd.DataFrame({"x": [3.0], "c": ["v"]}), ["x", "c"], "b")
    >>> m = merge_sketches([a, b], "data")
    >>> m["sizes"], m["sketches"]["x"].n, m["sketches"]["x"].maximum, m["sketches"]["c"].counts
    ([2, 1], 3, 3.0, {'u': 1, 'v': 1})
    """
    sketches: dict[str, Any] = {}
    for c in columns:
        kind, v = _classified(df, c, label)
        if kind == "numeric":
            sketches[c] = NumericSketch.of(v)
        elif kind == "categorical":
            sketches[c] = CategoricalSketch.of(v)
        else:
            sketches[c] = ("unsupported", str(v))
    return {"sizes": [len(df)], "sketches": sketches}


def _merge_column(a: Any, b: Any, column: str, label: str) -> Any:
    if isinstance(a, tuple):
        return a
    if isinstance(b, tuple):
        return b
    if type(a) is type(b):
        return a.merge(b)
    num, cat = (a, b) if isinstance(a, NumericSketch) else (b, a)
    if cat.n == 0:  # a text partition without a value carries only missing values
        return num.merge(NumericSketch(0, cat.missing, math.inf, -math.inf, math.nan, 0.0, {},
                                       num.cap))
    raise InputError(f"column {column!r} in {label} mixes numbers and text")


def merge_sketches(parts: Sequence[dict[str, Any]], label: str) -> dict[str, Any]:
    """Merge pass-1 results (row counts are kept per partition, in order)."""
    sizes: list[int] = []
    sketches: dict[str, Any] = {}
    for p in parts:
        sizes += p["sizes"]
        for c, s in p["sketches"].items():
            sketches[c] = s if c not in sketches else _merge_column(sketches[c], s, c, label)
    return {"sizes": sizes, "sketches": sketches}


def partition_histograms(df: Any, grids: dict[str, np.ndarray], label: str) -> dict[str, Any]:
    """Pass 2 on one partition: counts of each numeric column on its grid (a partition where
    the column holds no value at all may come as text: it counts nothing).

    >>> import pandas as pd
    >>> h = partition_histograms(pd.DataFrame({"x": [0.0, 0.5, 1.0]}), {"x": grid(0.0, 1.0, 2)},
    ...                          "a")
    >>> merge_histograms([h, h])["x"].tolist()
    [2, 4]
    """
    out = {}
    for c, g in grids.items():
        kind, v = _classified(df, c, label)
        out[c] = (histogram(v, g) if kind == "numeric"
                  else np.zeros(max(g.size - 1, 1), dtype=np.int64))
    return out


def partition_occupancy(df: Any, ranges: dict[str, tuple[int, int]],
                        label: str) -> dict[str, tuple[np.ndarray, bool]]:
    """Pass 2 for the columns that may be numeric IDs: the integers each holds among
    ``ranges[column] = (low, size)`` and whether one occurs twice (:func:`._sketch.occupancy`).
    """
    out = {}
    for c, (low, size) in ranges.items():
        kind, v = _classified(df, c, label)
        out[c] = (occupancy(v, low, size) if kind == "numeric"
                  else (np.zeros((size + 7) // 8, dtype=np.uint8), False))
    return out


def merge_occupancies(parts: Sequence[dict[str, tuple[np.ndarray, bool]]]
                      ) -> dict[str, tuple[np.ndarray, bool]]:
    """Occupancies of several partitions together, column by column."""
    out = dict(parts[0])
    for p in parts[1:]:
        for c, occ in p.items():
            out[c] = merge_occupancy(out[c], occ)
    return out


def merge_histograms(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Sum of histogram counts, column by column."""
    out = {c: h.copy() for c, h in parts[0].items()}
    for p in parts[1:]:
        for c, h in p.items():
            out[c] += h
    return out


def partition_rows(df: Any, rows: np.ndarray | None, columns: list[str]) -> Any:
    """The rows of the sample held by one partition (all rows when ``rows`` is None)."""
    part = df[columns]
    return part if rows is None else part.iloc[rows]


def concat_rows(frames: list[Any]) -> Any:
    """The sample rows of a data set, in the order of its partitions."""
    import pandas as pd
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# The client side
# --------------------------------------------------------------------------------------------


def _leaves(client: Any, delayed: list[Any], progress: Callable[[int, int, str], None] | None,
            what: str) -> list[Any]:
    """Start the per-partition tasks; with ``progress``, report each as it finishes
    (``progress(done, total, "reading partitions")``) while the merges proceed."""
    futures = client.compute(delayed)
    if progress is not None:
        from distributed import as_completed
        for i, _ in enumerate(as_completed(futures), 1):
            progress(i, len(futures), what)
    return futures


def _merged(client: Any, futures: list[Any], merge: Callable[..., Any], *args: Any) -> Any:
    """Reduce futures in a tree of fan-in :data:`FAN_IN` on the workers."""
    while len(futures) > 1:
        futures = [client.submit(merge, futures[i:i + FAN_IN], *args)
                   for i in range(0, len(futures), FAN_IN)]
    return futures[0]


def _is_parquet(f: Path) -> bool:
    if base_suffix(f) in PARQUET_SUFFIXES:
        return True
    if base_suffix(f) in CSV_SUFFIXES or compression_of(f) is not None:
        return False
    with f.open("rb") as fh:
        return fh.read(4) == b"PAR1"


def _open(source: Any, label: str) -> Any:
    """A dask DataFrame over a file or folder (checked file by file, reading headers only)."""
    import dask.dataframe as dd
    if hasattr(source, "to_delayed") and hasattr(source, "npartitions"):
        return source
    if not isinstance(source, (str, Path)):
        raise TypeError(f"{label}: with engine='dask', pass a path (file or folder of Parquet "
                        f"or CSV files) or a dask DataFrame; got {type(source).__name__}")
    files = table_files(Path(source))
    for f in files:
        if f.stat().st_size == 0:
            raise InputError(f"{f}: the file is empty")
    kinds = {_is_parquet(f) for f in files}
    if len(kinds) > 1:
        raise InputError(f"{source}: mixes Parquet and CSV files; the dask engine reads one kind")
    names = [str(f) for f in files]
    if kinds == {True}:
        import pyarrow.parquet as pq
        first = None
        for f in files:
            try:
                cols = list(pq.read_schema(f).names)
            except Exception as exc:  # pyarrow raises several types for a corrupt file
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise InputError(f"{f}: could not be read as Parquet ({msg})") from None
            cols = [c for c in cols if not c.startswith("__index_level_")]
            if first is None:
                first = cols
            elif cols != first:
                raise InputError(f"{f}: its columns differ from those of {files[0].name}")
        return dd.read_parquet(names)
    from ._io import _looks_binary, sniff_separator
    for f in files:
        if compression_of(f) is None and _looks_binary(f):
            raise InputError(f"{f}: not a text CSV file (binary content)")
    seps = {sniff_separator(f) for f in files}
    if len(seps) > 1:
        raise InputError(f"{source}: its CSV files use different separators "
                         f"({', '.join(sorted(map(repr, seps)))})")
    comps = {compression_of(f) for f in files}
    if len(comps) > 1:
        raise InputError(f"{source}: mixes compressed and uncompressed CSV files")
    comp = comps.pop()
    # a compressed file cannot be split into blocks: one partition per file
    return dd.read_csv(names, sep=seps.pop(), assume_missing=True, compression=comp or None,
                       blocksize=None if comp else "default")


@contextlib.contextmanager
def _client(scheduler: Any) -> Iterator[tuple[Any, str]]:
    from distributed import Client, LocalCluster
    if isinstance(scheduler, Client):
        yield scheduler, str(scheduler.scheduler.address)
        return
    if scheduler is None:
        import logging
        with LocalCluster(silence_logs=logging.ERROR, **LOCAL_CLUSTER) as cluster, \
                Client(cluster) as client:
            yield client, f"local cluster ({len(cluster.workers)} worker processes)"
        return
    if not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be an address string, a distributed.Client or None; "
                        f"got {type(scheduler).__name__}")
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"scheduler {scheduler}: cannot connect ({msg})") from None
    with client:
        yield client, str(scheduler)


def _grid_stats(g: np.ndarray, code: np.ndarray, k: int, hr: np.ndarray,
                hc: np.ndarray) -> dict[str, np.ndarray]:
    """The numeric measures of grid histograms ``hr``, ``hc`` (B, G): ``wasserstein`` and
    ``ks`` as :func:`._sketch.wasserstein_from_histograms` and
    :func:`._sketch.ks_from_histograms` compute them, ``js`` and ``psi`` on the bins that
    ``code`` maps the grid bins to."""
    hr, hc = np.atleast_2d(hr).astype(np.float64), np.atleast_2d(hc).astype(np.float64)
    zero = np.zeros((hr.shape[0], 1))
    fr = np.hstack([zero, np.cumsum(hr, axis=1)]) / hr.sum(1, keepdims=True)
    fc = np.hstack([zero, np.cumsum(hc, axis=1)]) / hc.sum(1, keepdims=True)
    d = np.abs(fr - fc)
    h = float(g[1] - g[0]) if g.size > 1 else 0.0
    out = {"wasserstein": h * (d[:, :-1] + d[:, 1:]).sum(1) / 2.0, "ks": d.max(1)}
    onehot = np.zeros((hr.shape[1], k))
    onehot[np.arange(hr.shape[1]), code] = 1.0
    out.update(hist_measures(hr @ onehot, hc @ onehot, "numeric"))
    return out


def full_numeric(g: np.ndarray, hr: np.ndarray, hc: np.ndarray, *, permutations: int,
                 max_permutations: int, n_boot: int, level: float,
                 seed: int) -> tuple[dict[str, Measure], np.ndarray, np.ndarray, np.ndarray]:
    """``js``, ``psi``, ``wasserstein``, ``ks`` of a numeric column from its full-data grid
    histograms, with intervals and p-values *of the full-data statistics*: the bootstrap
    resamples each data set's grid counts from a multinomial (the same as resampling its
    rows, to the grid's resolution); the permutation test splits the pooled grid counts by a
    multivariate hypergeometric draw (the same as relabelling the rows); the KS p-value is
    Kolmogorov's asymptotic one for the full row counts. Values are bias-corrected and clipped
    as in the local engine (:func:`._columns.bias_corrected`). Also returns the bin edges and
    the counts on them.

    >>> g = grid(0.0, 1.0, 64)
    >>> rng = np.random.default_rng(0)
    >>> hr = histogram(rng.uniform(size=2000), g)
    >>> ms, edges, br, bc = full_numeric(g, hr, hr.copy(), permutations=19,
    ...                                  max_permutations=99, n_boot=20, level=0.95, seed=0)
    >>> ms["js"].value, ms["ks"].pvalue, len(edges) - 1
    (0.0, 1.0, 10)
    """
    n, m = int(hr.sum()), int(hc.sum())
    edges = quantile_edges(g, hr + hc, BINS)
    k = max(edges.size - 1, 1)
    code = np.searchsorted(edges[1:-1], g[:max(g.size - 1, 1)], side="right")
    br = np.bincount(code, weights=hr, minlength=k).astype(np.int64)
    bc = np.bincount(code, weights=hc, minlength=k).astype(np.int64)
    plugin = {key: float(v[0]) for key, v in _grid_stats(g, code, k, hr, hc).items()}
    grid_n = hr.size
    step = max(1, 2_000_000 // grid_n)
    rng = np.random.default_rng([seed, 1])
    boot: dict[str, list[np.ndarray]] = {}
    for s in range(0, n_boot, step):
        b = min(step, n_boot - s)
        rr = rng.multinomial(n, hr / n, size=b)
        rc = rng.multinomial(m, hc / m, size=b)
        for key, v in _grid_stats(g, code, k, rr, rc).items():
            boot.setdefault(key, []).append(v)
    pooled = (hr + hc).astype(np.int64)
    prng = np.random.default_rng([seed, 2])
    permuted = ("js", "psi", "wasserstein")

    def draw(b: int) -> dict[str, np.ndarray]:
        out: dict[str, list[np.ndarray]] = {}
        for s in range(0, b, step):
            pr = prng.multivariate_hypergeometric(pooled, n, size=min(step, b - s))
            for key, v in _grid_stats(g, code, k, pr, pooled - pr).items():
                if key in permuted:
                    out.setdefault(key, []).append(v)
        return {key: np.concatenate(v) for key, v in out.items()}

    perm = adaptive_permutation({key: plugin[key] for key in permuted}, draw, permutations,
                                max(permutations, max_permutations))
    ks_p = float(min(1.0, stats.kstwobign.sf(plugin["ks"] * math.sqrt(n * m / (n + m)))))
    measures = {}
    for key in ("js", "wasserstein", "psi", "ks"):
        value, lo, hi, clipped = bias_corrected(key, plugin[key], np.concatenate(boot[key]),
                                                level)
        if key == "ks":
            p, floor, test = ks_p, False, "KS (asymptotic)"
        else:
            p, floor, b = perm[key]
            test = f"permutation ({b})"
        measures[key] = Measure(key, value, lo, hi, p, units=UNITS[key], clipped=clipped,
                                p_floor=floor, test=test, plugin=plugin[key])
    return measures, edges, br, bc


def _kind(sr: Any, sc: Any, column: str, names: tuple[str, str],
          override: str | None = None) -> str:
    """``numeric``, ``categorical`` or ``unsupported``, from the merged sketches of both data
    sets, as the local engine decides (from the dtype; ``override`` turns a numeric column
    into categories)."""
    if isinstance(sr, tuple) or isinstance(sc, tuple):
        return "unsupported"
    kr = "numeric" if isinstance(sr, NumericSketch) else "categorical"
    kc = "numeric" if isinstance(sc, NumericSketch) else "categorical"
    if kr != kc:
        raise InputError(f"column {column!r} is {kr} in {names[0]} but {kc} in {names[1]} "
                         "(mixed types)")
    if override == "categorical" and kr == "numeric":
        if sr.merge(sc).distinct is None:
            raise InputError(f"column {column!r}: categorical= with engine='dask' needs at "
                             f"most {DISTINCT_CAP} distinct values")
        return "categorical"
    if override == "numeric" and kr == "categorical":
        raise InputError(f"column {column!r}: numeric= on a text column is not supported "
                         "with engine='dask'")
    return kr


def _skip_reason(kind: str, sr: Any, sc: Any, names: tuple[str, str],
                 overridden: bool) -> str | None:
    """Why a column is listed under ``skipped`` instead of compared (as the local engine
    says it): too few numeric values, a text column unique per row (an ID or free text), or
    a numeric column whose values strictly increase or decrease in both data sets (an ID;
    a dense one in shuffled order is found in pass 2, :func:`_numeric_id`)."""
    from . import MIN_ID_ROWS, MIN_NUMERIC_ROWS, NUMERIC_ID_REASON
    if kind == "numeric":
        for sk, label in ((sr, names[0]), (sc, names[1])):
            if sk.n < MIN_NUMERIC_ROWS:
                return (f"{sk.n} values in {label}; numeric columns need at least "
                        f"{MIN_NUMERIC_ROWS}")
        if not overridden and _numeric_id(sr, sc)[0] == "id":
            return NUMERIC_ID_REASON
        return None
    if (not overridden and isinstance(sr, CategoricalSketch) and sr.n + sc.n >= MIN_ID_ROWS
            and all(v == 1 for v in sr.counts.values())
            and all(v == 1 for v in sc.counts.values())):
        return "unique per row: looks like an ID or free text"
    return None


def _numeric_id(sr: NumericSketch,
                sc: NumericSketch) -> tuple[str | None, dict[int, tuple[int, int]]]:
    """The local engine's rule for numeric IDs (:func:`divergences.report._unique_reason`:
    whole numbers, unique per row in each data set, and dense, ``max - min + 1 <= 2 n``, in
    both or strictly monotone in row order in both), from the merged sketches.

    ``("id", {})``: an ID (monotone values are unique); ``("check", ranges)``: an ID if the
    data sets listed, ``{0: reference, 1: current}`` -> ``(low, size)``, hold no value twice
    (pass 2 counts it, :func:`partition_occupancy`); ``(None, {})``: not an ID.
    """
    from . import MIN_ID_ROWS
    sides = (sr, sc)
    if sr.n + sc.n < MIN_ID_ROWS or not all(s.integer for s in sides):
        return None, {}
    monotone = [s.n < 2 or s.increasing or s.decreasing for s in sides]
    if all(monotone):
        return "id", {}
    span = [int(s.maximum - s.minimum) + 1 if s.n else 0 for s in sides]
    # n distinct integers need a span of at least n; dense means at most 2 n
    if not all(s.n <= w <= 2 * s.n for s, w in zip(sides, span)):
        return None, {}
    ranges = {i: (int(s.minimum), w) for i, (s, w, mono) in enumerate(zip(sides, span, monotone))
              if not mono}
    if any(w > ID_BITMAP_BITS for _, w in ranges.values()):
        return None, {}
    return "check", ranges


def _as_categories(s: Any) -> CategoricalSketch:
    if isinstance(s, CategoricalSketch):
        return s
    return CategoricalSketch({(str(int(v)) if v == int(v) else repr(v)): c
                              for v, c in s.distinct.items()}, s.missing)


def compare_dask(
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
    overrides: dict[str, str] | None = None,
    max_permutations: int = 9999,
    names: tuple[str, str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    scheduler: Any = None,
    grid_bins: int = GRID_BINS,
) -> Any:
    """:func:`divergences.report.compare` with ``engine="dask"`` (see the module docstring).

    ``reference``, ``current``: paths (a Parquet or CSV file, or a folder of them) or dask
    DataFrames. ``sample``: rows per data set for the sampled measures (default
    :data:`DEFAULT_SAMPLE`). ``grid_bins``: bins of the grid numeric columns are counted on.
    """
    from . import NUMERIC_ID_REASON, _adjust, _check_int, _sample_index, compare
    from ._columns import decide, missing_test

    _require_dask()
    import dask

    sample = DEFAULT_SAMPLE if sample is None else _check_int(sample, "sample", 2)
    grid_bins = _check_int(grid_bins, "grid_bins", 1)
    seed = _check_int(seed, "seed", 0)
    if names is None:
        names = tuple(str(s) if isinstance(s, (str, Path)) else default
                      for s, default in ((reference, "reference"), (current, "current")))
    ref_label, cur_label = names
    frames = [_open(reference, ref_label), _open(current, cur_label)]
    ref_cols = [str(c) for c in frames[0].columns]
    cur_cols = [str(c) for c in frames[1].columns]
    chosen = choose_columns(ref_cols, cur_cols, target, columns, ref_label, cur_label)
    wanted = chosen + ([target] if target is not None else [])

    with _client(scheduler) as (client, where):
        parts = [f.to_delayed() for f in frames]
        # Pass 1: sketches and partition sizes.
        leaves = [dask.delayed(partition_sketches)(p, chosen, label)
                  for ps, label in zip(parts, names) for p in ps]
        futures = _leaves(client, leaves, progress, READING)
        cut = len(parts[0])
        first = client.gather([_merged(client, fs, merge_sketches, label)
                               for fs, label in ((futures[:cut], names[0]),
                                                 (futures[cut:], names[1]))])
        sizes = [np.asarray(f["sizes"], dtype=np.int64) for f in first]
        for s, label in zip(sizes, names):
            if s.sum() == 0:
                raise InputError(f"{label}: no rows")
        sk_r, sk_c = first[0]["sketches"], first[1]["sketches"]

        kinds, skipped = {}, []
        if columns is None:
            for cols, label, other in ((ref_cols, ref_label, cur_cols),
                                       (cur_cols, cur_label, ref_cols)):
                skipped += [{"column": c, "reason": f"only in {label}"}
                            for c in cols if c not in other and c != target]
        for c in chosen:
            # a side without a value has no kind of its own (all-None reads as text): skipped
            # before the kinds are compared, as the local engine does
            empty = [label for sk, label in ((sk_r[c], ref_label), (sk_c[c], cur_label))
                     if not isinstance(sk, tuple) and sk.n == 0]
            if empty:
                skipped.append({"column": c, "reason": f"every value is missing in {empty[0]}"})
                continue
            kind = _kind(sk_r[c], sk_c[c], c, names, (overrides or {}).get(c))
            if kind == "unsupported":
                reason = next(s[1] for s in (sk_r[c], sk_c[c]) if isinstance(s, tuple))
                skipped.append({"column": c, "reason": reason})
                continue
            reason = _skip_reason(kind, sk_r[c], sk_c[c], names,
                                  c in (overrides or {}))
            if reason:
                skipped.append({"column": c, "reason": reason})
            else:
                kinds[c] = kind
        if not kinds:
            raise InputError(f"no column of {ref_label} and {cur_label} can be compared "
                             f"({'; '.join(s['column'] + ': ' + s['reason'] for s in skipped)})")
        grids = {}
        id_ranges: list[dict[str, tuple[int, int]]] = [{}, {}]
        for c, kind in kinds.items():
            if kind == "numeric":
                pooled = sk_r[c].merge(sk_c[c])
                grids[c] = grid(pooled.minimum, pooled.maximum, grid_bins)
                verdict, ranges = _numeric_id(sk_r[c], sk_c[c])
                if verdict == "check" and c not in (overrides or {}):
                    for side, span in ranges.items():
                        id_ranges[side][c] = span
        id_check = set(id_ranges[0]) | set(id_ranges[1])

        # Pass 2: grid histograms, and the rows of the sample.
        hist_leaves: list[list[Any]] = []
        row_leaves: list[list[Any]] = []
        occ_leaves: list[list[Any]] = []
        for ps, label, size, ranges in zip(parts, names, sizes, id_ranges):
            hist_leaves.append([dask.delayed(partition_histograms)(p, grids, label) for p in ps]
                               if grids else [])
            # a dense integer column in shuffled order is an ID if no value occurs twice
            occ_leaves.append([dask.delayed(partition_occupancy)(p, ranges, label) for p in ps]
                              if ranges else [])
            idx = _sample_index(int(size.sum()), sample, seed)
            offsets = np.concatenate([[0], np.cumsum(size)])
            takes = []
            for i, p in enumerate(ps):
                if idx is None:
                    takes.append(dask.delayed(partition_rows)(p, None, wanted))
                    continue
                lo, hi = np.searchsorted(idx, offsets[i:i + 2])
                if hi > lo:
                    takes.append(dask.delayed(partition_rows)(p, idx[lo:hi] - offsets[i], wanted))
            row_leaves.append(takes)
        flat = [d for side in hist_leaves + row_leaves + occ_leaves for d in side]
        futures = _leaves(client, flat, progress, COUNTING)
        pieces, at = [], 0
        for side in hist_leaves + row_leaves + occ_leaves:
            pieces.append(futures[at:at + len(side)])
            at += len(side)
        hists = [_merged(client, fs, merge_histograms) if fs else None for fs in pieces[:2]]
        rows = [client.submit(concat_rows, fs) for fs in pieces[2:4]]
        occs = [_merged(client, fs, merge_occupancies) if fs else None for fs in pieces[4:]]
        hist_r, hist_c = (client.gather(h) if h is not None else {} for h in hists)
        sample_r, sample_c = client.gather(rows)
        occ_r, occ_c = (client.gather(o) if o is not None else {} for o in occs)
        npart = [len(ps) for ps in parts]

    for c in sorted(id_check):
        if not any(occ[c][1] for occ in (occ_r, occ_c) if c in occ):
            skipped.append({"column": c, "reason": NUMERIC_ID_REASON})
            del kinds[c]
    if not kinds:
        raise InputError(f"no column of {ref_label} and {cur_label} can be compared "
                         f"({'; '.join(s['column'] + ': ' + s['reason'] for s in skipped)})")
    # the local engine's order: one-sided columns first, then the columns as chosen
    position = {c: i for i, c in enumerate(chosen)}
    skipped.sort(key=lambda s: position.get(s["column"], -1))

    cat = [c for c, k in kinds.items() if k == "categorical" and (overrides or {}).get(c)]
    local = compare(sample_r, sample_c, target, columns=list(kinds), sample=None, seed=seed,
                    permutations=permutations, n_boot=n_boot, level=level, alpha=alpha,
                    categorical=cat or None, max_permutations=max_permutations, names=names,
                    progress=progress)
    by_name = {r.name: r for r in local.columns}

    cap = max(permutations, permutation_cap(len(kinds), alpha, max_permutations))
    results, errors, notes = [], {}, []
    for c, kind in kinds.items():
        sampled = by_name.get(c)
        if kind == "numeric":
            g, hr, hc = grids[c], hist_r[c], hist_c[c]
            n, m = sk_r[c].n, sk_c[c].n
            measures, edges, br, bc = full_numeric(
                g, hr, hc, permutations=permutations, max_permutations=cap, n_boot=n_boot,
                level=level, seed=seed)
            _, w_err = wasserstein_from_histograms(g, hr, hc)
            _, ks_err = ks_from_histograms(hr, hc)
            errors[c] = {"grid_width": float(g[1] - g[0]) if g.size > 1 else 0.0,
                         "wasserstein": w_err, "ks": ks_err}
            if sampled is not None and sampled.kind == "numeric":
                measures["kl"] = sampled.measures["kl"]
            else:
                notes.append(f"column {c!r}: kl not estimated (the sample holds too few of "
                             "its values)")
                measures["kl"] = Measure("kl", math.nan, math.nan, math.nan, math.nan,
                                         units="nats")
            res = ColumnResult(c, kind, n, m, sk_r[c].missing, sk_c[c].missing,
                               {name: measures[name] for name in NUMERIC_MEASURES},
                               br.tolist(), bc.tolist(), edges=edges.tolist(),
                               drift_test="KS", drift_pvalue=measures["ks"].pvalue)
        else:
            cr, cc = _as_categories(sk_r[c]), _as_categories(sk_c[c])
            cats = sorted(set(cr.counts) | set(cc.counts))
            hr = np.array([cr.counts.get(x, 0) for x in cats], dtype=np.float64)
            hc = np.array([cc.counts.get(x, 0) for x in cats], dtype=np.float64)
            res = categorical_from_counts(c, cats, hr, hc, permutations=permutations,
                                          n_boot=n_boot, level=level, seed=seed,
                                          missing=(cr.missing, cc.missing),
                                          max_permutations=cap)
        results.append(res)

    for res in results:
        missing_test(res)
    _adjust(results)
    decide(results, alpha)
    results.sort(key=lambda r: -r.measures["js"].value)

    meta = dict(local.meta)
    meta.update({
        "rows_reference": int(sizes[0].sum()), "rows_current": int(sizes[1].sum()),
        "rows_total": [int(sizes[0].sum()), int(sizes[1].sum())],
        "sampled_reference": len(sample_r), "sampled_current": len(sample_c),
        "sampled": (len(sample_r), len(sample_c)) != (int(sizes[0].sum()),
                                                       int(sizes[1].sum())),
        "drifted": sum(r.drift for r in results), "compared": len(results),
        "sample": sample, "engine": "dask", "scheduler": where, "partitions": npart,
        "sample_rows": [len(sample_r), len(sample_c)],
        "max_permutations": cap,
        "full_data_measures": {k: list(v) for k, v in FULL_DATA.items()},
        "sampled_measures": ["kl", "joint", "mutual_information", "plots"],
        "sketch": {"grid_bins": grid_bins, "columns": errors},
    })
    if notes:
        meta["notes"] = notes
    report = type(local)(results, local.joint, local.mutual_information, skipped, meta,
                         local.plot_data)
    return report
