"""Reading the inputs of a report: CSV and Parquet files or folders, the bundled data set.

Every problem with the input is an :class:`InputError` (a ``ValueError``) whose message is one
line naming the file or the column; the command line prints it without a traceback. Input
files are opened for reading only.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["BUNDLED", "BUNDLED_NAME", "InputError", "bundled_columns", "choose_columns",
           "load_bundled", "read_table", "split_table"]

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
#: Compressions pandas reads, by file suffix (``data.csv.gz``).
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip", ".zst": "zstd"}
#: Delimiters tried when sniffing a CSV file's separator.
DELIMITERS = ",;\t|"
SNIFF_BYTES = 65536
#: Every bundled table: file name -> (split ``(column, value)`` that makes the current rows,
#: target); see ``data/README.md`` for their origin and licence.
BUNDLED = {
    # Wisconsin Diagnostic Breast Cancer: malignant (current) against benign; its target is
    # the diagnosis itself, so the MI ranking restates the drift: kept as a real table for
    # tests, not as the demo.
    "breast_cancer.csv": (("diagnosis", "malignant"), "target"),
    # RAND Health Insurance Experiment: two sources (individual deductible plan or not) and a
    # real outcome that is not the split (outpatient visits), as drift data is in practice.
    "randhie.csv": (("idp", "1"), "mdvis"),
}
#: The demo ``divergences report`` runs with no data: :data:`BUNDLED`'s ``randhie.csv`` entry,
#: person-years on an individual deductible plan (current) against the other plans.
BUNDLED_NAME = "randhie.csv"
BUNDLED_SPLIT, BUNDLED_TARGET = BUNDLED[BUNDLED_NAME]


class InputError(ValueError):
    """Bad input to a report: the message is one line that names the file or column."""


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:  # pragma: no cover - pandas is in the [cli] extra
        raise InputError("reading files needs pandas: pip install 'divergences[cli]'") from exc
    return pandas


def _looks_binary(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(8192)
    return b"\x00" in head


def compression_of(path: Path) -> str | None:
    """The compression pandas infers from the suffix (``"gzip"`` for ``.csv.gz``), or None.

    >>> compression_of(Path("a.csv.gz")), compression_of(Path("a.csv"))
    ('gzip', None)
    """
    return COMPRESSIONS.get(path.suffix.lower())


def base_suffix(path: Path) -> str:
    """The suffix that says what a file holds, past a compression suffix.

    >>> base_suffix(Path("data.CSV.gz")), base_suffix(Path("t.parquet"))
    ('.csv', '.parquet')
    """
    suffixes = [x.lower() for x in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _head_text(path: Path) -> bytes:
    """The first bytes of the file's text, decompressed (empty when unknown)."""
    import bz2
    import gzip
    import lzma
    import zipfile
    comp = compression_of(path)
    try:
        if comp is None:
            with path.open("rb") as fh:
                return fh.read(SNIFF_BYTES)
        if comp == "zip":
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
                if not names:
                    return b""
                with z.open(names[0]) as fh:
                    return fh.read(SNIFF_BYTES)
        opener = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}.get(comp)
        if opener is None:
            return b""
        with opener(path, "rb") as fh:
            return fh.read(SNIFF_BYTES)
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError):
        raise InputError(f"{path}: could not be decompressed as {comp}") from None


def sniff_separator(path: Path) -> str:
    """The column separator of a CSV file: tab for ``.tsv``, else the one of
    :data:`DELIMITERS` that :class:`csv.Sniffer` finds in its first lines (``,`` when it
    finds none): ``;``-separated files, common where the decimal mark is a comma, read as
    they are."""
    import csv
    if base_suffix(path) == ".tsv":
        return "\t"
    head = _head_text(path)
    if b"\x00" in head:
        raise InputError(f"{path}: not a text CSV file (binary content)")
    text = head.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if len(head) == SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]                    # the last line may be cut
    sample = "\n".join(lines[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def decimal_mark(path: Path, sep: str) -> str:
    """``","`` for a ``;``-separated file whose numbers are written ``1,5`` (and none ``1.5``),
    else ``"."``."""
    import re
    if sep != ";":
        return "."
    text = _head_text(path).decode("utf-8", errors="replace")
    return "," if re.search(r"\d,\d", text) and not re.search(r"\d\.\d", text) else "."


def _read_csv(path: Path) -> Any:
    pd = _pandas()
    if compression_of(path) is None and _looks_binary(path):
        raise InputError(f"{path}: not a text CSV file (binary content)")
    sep = sniff_separator(path)
    try:
        df = pd.read_csv(path, sep=sep, compression="infer", decimal=decimal_mark(path, sep))
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except pd.errors.ParserError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "parse error"
        raise InputError(f"{path}: could not be parsed as CSV ({first})") from None
    except (OSError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: could not be read ({first})") from None
    return df


def _read_parquet(path: Path) -> Any:
    pd = _pandas()
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            f"{path}: reading Parquet needs pyarrow: pip install 'divergences[cli]'") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: could not be read as Parquet ({first})") from None
    del pd
    return table.to_pandas()


def _read_file(path: Path) -> Any:
    suffix = base_suffix(path)
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(path)
    if suffix in CSV_SUFFIXES or compression_of(path) is not None:
        return _read_csv(path)
    # Unknown suffix: Parquet files start with the magic bytes PAR1.
    with path.open("rb") as fh:
        magic = fh.read(4)
    return _read_parquet(path) if magic == b"PAR1" else _read_csv(path)


def table_files(p: Path) -> list[Path]:
    """The files behind ``p``: ``[p]`` for a file; for a folder, its CSV/Parquet files in
    sorted order. An ``InputError`` when ``p`` is missing or the folder holds none."""
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if not p.is_dir():
        return [p]
    files = sorted(f for f in p.iterdir()
                   if f.is_file() and base_suffix(f) in CSV_SUFFIXES + PARQUET_SUFFIXES)
    if not files:
        raise InputError(f"{p}: the folder holds no .csv or .parquet files")
    return files


def read_table(path: str | Path) -> Any:
    """A pandas DataFrame from a CSV/Parquet file, or from a folder of them (rows stacked).

    CSV files may be compressed (``.csv.gz``, ``.bz2``, ``.xz``, ``.zip``, ``.zst``: what
    pandas reads) and separated by ``,``, ``;``, tab or ``|`` (sniffed:
    :func:`sniff_separator`). Folders: every ``*.csv``/``*.tsv``/``*.txt``/``*.parquet``/
    ``*.pq`` file directly inside (compressed or not), in sorted order; they must share their
    columns.
    """
    pd = _pandas()
    p = Path(path)
    files = table_files(p)
    if p.is_dir():
        frames = [_read_file(f) for f in files]
        first = list(frames[0].columns)
        for f, df in zip(files[1:], frames[1:]):
            if list(df.columns) != first:
                raise InputError(f"{f}: its columns differ from those of {files[0].name}")
        df = pd.concat(frames, ignore_index=True)
    else:
        try:
            df = _read_file(p)
        except PermissionError:
            raise InputError(f"{p}: permission denied") from None
        except IsADirectoryError:  # pragma: no cover - handled above
            raise InputError(f"{p}: is a folder") from None
    if df.shape[1] == 0:
        raise InputError(f"{p}: no columns")
    if df.shape[0] == 0:
        raise InputError(f"{p}: no rows (only a header)")
    return df


def load_bundled(name: str = BUNDLED_NAME) -> Any:
    """A bundled table (:data:`BUNDLED`; see ``data/README.md``): by default the demo's,
    6,000 person-years of the RAND Health Insurance Experiment; ``"breast_cancer.csv"``: the
    Wisconsin Diagnostic Breast Cancer table (569 rows).

    >>> load_bundled().shape, load_bundled("breast_cancer.csv").shape
    ((6000, 10), (569, 32))
    """
    if name not in BUNDLED:
        raise InputError(f"no bundled table {name!r}; there are {', '.join(sorted(BUNDLED))}")
    pd = _pandas()
    with resources.files("divergences.report").joinpath("data", name).open("rb") as fh:
        return pd.read_csv(fh)


def bundled_columns(name: str = BUNDLED_NAME) -> dict[str, Any]:
    """A bundled table as ``{column: 1-d NumPy array}``, read without pandas (whose import
    is a tenth of the demo's run time): a column whose every value is a number is float64,
    any other column text (an empty field is missing: NaN or None). The report gives the
    same numbers as on :func:`load_bundled`'s DataFrame (kinds come from these dtypes alike).

    >>> cols = bundled_columns()
    >>> len(cols), cols["mdvis"].shape, cols["mdvis"].dtype.name
    (10, (6000,), 'float64')
    """
    import csv
    import io

    import numpy as np

    if name not in BUNDLED:
        raise InputError(f"no bundled table {name!r}; there are {', '.join(sorted(BUNDLED))}")
    text = resources.files("divergences.report").joinpath("data", name).read_text("utf-8")
    header, *rows = list(csv.reader(io.StringIO(text)))
    out: dict[str, Any] = {}
    for j, col in enumerate(header):
        raw = [r[j] for r in rows]
        try:
            out[col] = np.array([float(v) if v else np.nan for v in raw])
        except ValueError:
            out[col] = np.array([v if v else None for v in raw], dtype=object)
    return out


def parse_split(text: str) -> tuple[str, str]:
    """``"COL=VALUE"`` -> ``("COL", "VALUE")``.

    >>> parse_split("idp=1")
    ('idp', '1')
    """
    col, sep, value = text.partition("=")
    if not sep or not col:
        raise InputError(f"--split must look like COLUMN=VALUE; got {text!r}")
    return col, value


def split_table(df: Any, column: str, value: str, source: str) -> tuple[Any, Any]:
    """Rows with ``column == value`` (current) and the others (reference), without ``column``,
    from a DataFrame or from :func:`bundled_columns`' dict of arrays (the same kind back).

    Numeric columns compare numerically (``target=1`` matches ``1.0``), others as text.
    """
    if isinstance(df, dict):
        return _split_columns(df, column, value, source)
    pd = _pandas()
    if column not in df.columns:
        raise InputError(f"{source}: no column {column!r} to split on")
    col = df[column]
    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    mask = _split_mask(col, numeric, column, value, source)
    rest = df.drop(columns=[column])
    return rest[~mask].reset_index(drop=True), rest[mask].reset_index(drop=True)


def _split_mask(col: Any, numeric: bool, column: str, value: str, source: str) -> Any:
    """The rows of ``col`` equal to ``value`` (numerically for a numeric column), checked to
    leave rows on both sides."""
    if numeric:
        try:
            mask = col == float(value)
        except ValueError:
            raise InputError(f"--split: column {column!r} is numeric but {value!r} is not a "
                             "number") from None
    else:
        mask = col.astype(str) == value
    if not mask.any():
        raise InputError(f"{source}: no row has {column} == {value!r}")
    if mask.all():
        raise InputError(f"{source}: every row has {column} == {value!r}; nothing to compare")
    return mask


def _split_columns(cols: dict[str, Any], column: str, value: str,
                   source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if column not in cols:
        raise InputError(f"{source}: no column {column!r} to split on")
    col = cols[column]
    mask = _split_mask(col, col.dtype.kind in "iuf", column, value, source)
    rest = {k: v for k, v in cols.items() if k != column}
    return {k: v[~mask] for k, v in rest.items()}, {k: v[mask] for k, v in rest.items()}


def choose_columns(ref_cols: Any, cur_cols: Any, target: str | None, columns: Any,
                   ref_label: str, cur_label: str) -> list[str]:
    """The columns to compare: ``columns`` (checked against both sides) or every column the
    two sides share, the target excepted; an :class:`InputError` naming the side otherwise."""
    if target is not None:
        for cols, label in ((ref_cols, ref_label), (cur_cols, cur_label)):
            if target not in cols:
                raise InputError(f"{label}: no target column {target!r}")
    if columns is None:
        chosen = [c for c in ref_cols if c in cur_cols and c != target]
        if not chosen:
            raise InputError(f"{ref_label} and {cur_label} share no column to compare")
        return chosen
    if isinstance(columns, str):
        raise TypeError("columns must be a sequence of column names, not a string")
    chosen = [str(c) for c in columns]
    if not chosen:
        raise InputError("columns is empty")
    for c in chosen:
        for cols, label in ((ref_cols, ref_label), (cur_cols, cur_label)):
            if c not in cols:
                raise InputError(f"{label}: no column {c!r}")
    if target in chosen:
        raise InputError(f"column {target!r} is the target; it cannot be compared too")
    return chosen
