"""The bundled data set: what it holds, where it came from, and that it ships."""

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from divergences.report._io import BUNDLED, load_bundled, split_table  # noqa: E402


def test_bundled_table_shape_and_cohorts():
    df = load_bundled("breast_cancer.csv")
    assert df.shape == (569, 32)
    assert list(df.columns[:2]) == ["diagnosis", "mean radius"] and df.columns[-1] == "target"
    assert df["diagnosis"].value_counts().to_dict() == {"benign": 357, "malignant": 212}
    assert ((df["target"] == 1) == (df["diagnosis"] == "benign")).all()
    (col, value), target = BUNDLED["breast_cancer.csv"]
    assert target == "target"
    ref, cur = split_table(df, col, value, "bundled")
    assert (len(ref), len(cur)) == (357, 212)
    assert "diagnosis" not in ref.columns and (cur["target"] == 0).all()


def test_bundled_table_equals_scikit_learn_copy():
    datasets = pytest.importorskip("sklearn.datasets")
    sk = datasets.load_breast_cancer(as_frame=True).frame
    df = load_bundled("breast_cancer.csv")
    assert list(df.columns[1:]) == list(sk.columns)
    assert np.array_equal(df[sk.columns].to_numpy(), sk.to_numpy())


def test_attribution_is_shipped():
    from importlib import resources
    text = resources.files("divergences.report").joinpath("data", "README.md").read_text()
    for needle in ("Wolberg", "Street", "Mangasarian", "CC BY 4.0", "UCI", "RAND",
                   "public domain", "Cameron", "default_rng(2026)"):
        assert needle in text


def test_randhie_demo_table_equals_statsmodels_rows_and_tells_two_sources_apart():
    """The second bundled table: two sources (plans) and a real outcome that is not the
    split. Plan-design columns drift; the randomised health-status columns barely."""
    sm_datasets = pytest.importorskip("statsmodels.datasets")
    from divergences.report import compare
    df = load_bundled("randhie.csv")
    full = sm_datasets.randhie.load_pandas().data
    rows = np.sort(np.random.default_rng(2026).choice(len(full), 6000, replace=False))
    assert list(df.columns) == list(full.columns)
    assert np.array_equal(df.to_numpy(), full.iloc[rows].to_numpy())
    (col, value), target = BUNDLED["randhie.csv"]
    ref, cur = split_table(df, col, value, "bundled")
    assert (len(ref), len(cur)) == (4391, 1609)
    rep = compare(ref, cur, target=target, permutations=19, n_boot=20)
    drifted = {c.name for c in rep.columns if c.drift}
    assert {"lncoins", "lpi", "fmde"} <= drifted
    assert {"hlthf", "hlthp", "disea"}.isdisjoint(drifted)
    assert rep.mutual_information[0]["column"] == "disea"


def test_the_demo_is_randhie_with_a_target_that_is_not_the_split():
    """The default demo (issue 13): two sources and a real outcome, not a restatement of the
    split (the breast-cancer demo's target was its diagnosis)."""
    from divergences.report import _io
    assert _io.BUNDLED_NAME == "randhie.csv"
    assert (_io.BUNDLED_SPLIT, _io.BUNDLED_TARGET) == _io.BUNDLED["randhie.csv"]
    assert _io.BUNDLED_TARGET != _io.BUNDLED_SPLIT[0]
    assert load_bundled().shape == (6000, 10)


def test_unknown_bundled_table_is_a_one_line_error():
    from divergences.report._io import InputError
    with pytest.raises(InputError, match="no bundled table 'nope.csv'"):
        load_bundled("nope.csv")


@pytest.mark.parametrize("name", ["randhie.csv", "breast_cancer.csv"])
def test_bundled_columns_equal_the_dataframe(name):
    """The demo reads its table without pandas; the values and the split are pandas'."""
    from divergences.report._io import bundled_columns
    cols, df = bundled_columns(name), load_bundled(name)
    assert list(cols) == [str(c) for c in df.columns]
    for c in df.columns:
        if df[c].dtype.kind in "iuf":
            np.testing.assert_array_equal(cols[c], df[c].to_numpy(dtype=np.float64))
        else:
            assert cols[c].tolist() == df[c].tolist()
    (col, value), _ = BUNDLED[name]
    for a, b in zip(split_table(cols, col, value, "b"), split_table(df, col, value, "b")):
        assert list(a) == list(b.columns) and len(next(iter(a.values()))) == len(b)
