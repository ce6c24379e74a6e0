"""Reading the inputs of a report: CSV and Parquet files or folders, the bundled data set.

Every problem with the input is an :class:`InputError` (a ``ValueError``) whose message is one
line naming the file or the column; the command line prints it without a traceback. Input
files are opened for reading only.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["BUNDLED_NAME", "InputError", "choose_columns", "load_bundled", "read_table", "split_table"]

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
BUNDLED_NAME = "breast_cancer.csv"
#: The default comparison on the bundled data: rows with ``diagnosis == malignant`` are the
#: current sample, the benign rows the reference; ``target`` (1 = benign) is the target.
BUNDLED_SPLIT = ("diagnosis", "malignant")
BUNDLED_TARGET = "target"


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


def _read_csv(path: Path) -> Any:
    pd = _pandas()
    if _looks_binary(path):
        raise InputError(f"{path}: not a text CSV file (binary content)")
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        df = pd.read_csv(path, sep=sep)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except pd.errors.ParserError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "parse error"
        raise InputError(f"{path}: could not be parsed as CSV ({first})") from None
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
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(path)
    if suffix in CSV_SUFFIXES:
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
                   if f.is_file() and f.suffix.lower() in CSV_SUFFIXES + PARQUET_SUFFIXES)
    if not files:
        raise InputError(f"{p}: the folder holds no .csv or .parquet files")
    return files


def read_table(path: str | Path) -> Any:
    """A pandas DataFrame from a CSV/Parquet file, or from a folder of them (rows stacked).

    Folders: every ``*.csv``/``*.tsv``/``*.parquet``/``*.pq`` file directly inside, in
    sorted order; they must share their columns.
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


def load_bundled() -> Any:
    """The bundled Wisconsin Diagnostic Breast Cancer table (569 rows; see ``data/README.md``)."""
    pd = _pandas()
    with resources.files("divergences.report").joinpath("data", BUNDLED_NAME).open("rb") as fh:
        return pd.read_csv(fh)


def parse_split(text: str) -> tuple[str, str]:
    """``"COL=VALUE"`` -> ``("COL", "VALUE")``.

    >>> parse_split("diagnosis=malignant")
    ('diagnosis', 'malignant')
    """
    col, sep, value = text.partition("=")
    if not sep or not col:
        raise InputError(f"--split must look like COLUMN=VALUE; got {text!r}")
    return col, value


def split_table(df: Any, column: str, value: str, source: str) -> tuple[Any, Any]:
    """Rows with ``column == value`` (current) and the others (reference), without ``column``.

    Numeric columns compare numerically (``target=1`` matches ``1.0``), others as text.
    """
    pd = _pandas()
    if column not in df.columns:
        raise InputError(f"{source}: no column {column!r} to split on")
    col = df[column]
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
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
    rest = df.drop(columns=[column])
    return rest[~mask].reset_index(drop=True), rest[mask].reset_index(drop=True)


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
