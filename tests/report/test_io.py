"""Reading report inputs: compressed CSV files and sniffed separators (issue 13), on a real
table (scikit-learn's wine)."""

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
datasets = pytest.importorskip("sklearn.datasets")

from divergences.report import compare  # noqa: E402
from divergences.report._io import InputError, read_table, sniff_separator  # noqa: E402


@pytest.fixture(scope="module")
def wine():
    return datasets.load_wine(as_frame=True).frame


@pytest.mark.parametrize("name", ["w.csv.gz", "w.csv.bz2", "w.csv.xz", "w.csv.zip", "w.tsv.gz"])
def test_compressed_csv(wine, tmp_path, name):
    path = tmp_path / name
    wine.to_csv(path, index=False, sep="\t" if ".tsv" in name else ",")
    before = path.read_bytes()
    df = read_table(path)
    assert list(df.columns) == list(wine.columns)
    assert np.allclose(df.to_numpy(), wine.to_numpy())
    assert path.read_bytes() == before                     # inputs are never written


def test_semicolon_separated_with_decimal_commas(wine, tmp_path):
    """``;``-separated files failed with a misleading 'share no column to compare'."""
    path = tmp_path / "w.csv"
    wine.to_csv(path, index=False, sep=";", decimal=",")
    assert sniff_separator(path) == ";"
    df = read_table(path)
    assert list(df.columns) == list(wine.columns)
    assert np.allclose(df.to_numpy(), wine.to_numpy())
    ref = tmp_path / "ref.csv"
    wine.to_csv(ref, index=False)
    rep = compare(read_table(ref), df, permutations=9, n_boot=5)
    assert len(rep.columns) == wine.shape[1] and rep.meta["drifted"] == 0


def test_pipe_separated_and_folder_of_gz(wine, tmp_path):
    path = tmp_path / "w.txt"
    wine.to_csv(path, index=False, sep="|")
    assert read_table(path).shape == wine.shape
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(wine)), 3)):
        wine.iloc[part].to_csv(folder / f"p{i}.csv.gz", index=False)
    assert np.allclose(read_table(folder).to_numpy(), wine.to_numpy())


def test_corrupt_gzip_is_a_one_line_error(tmp_path):
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(InputError, match="bad.csv.gz") as info:
        read_table(path)
    assert "\n" not in str(info.value)
