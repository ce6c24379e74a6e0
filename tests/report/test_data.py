"""The bundled data set: what it holds, where it came from, and that it ships."""

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from divergences.report._io import BUNDLED_SPLIT, load_bundled, split_table  # noqa: E402


def test_bundled_table_shape_and_cohorts():
    df = load_bundled()
    assert df.shape == (569, 32)
    assert list(df.columns[:2]) == ["diagnosis", "mean radius"] and df.columns[-1] == "target"
    assert df["diagnosis"].value_counts().to_dict() == {"benign": 357, "malignant": 212}
    assert ((df["target"] == 1) == (df["diagnosis"] == "benign")).all()
    ref, cur = split_table(df, *BUNDLED_SPLIT, "bundled")
    assert (len(ref), len(cur)) == (357, 212)
    assert "diagnosis" not in ref.columns and (cur["target"] == 0).all()


def test_bundled_table_equals_scikit_learn_copy():
    datasets = pytest.importorskip("sklearn.datasets")
    sk = datasets.load_breast_cancer(as_frame=True).frame
    df = load_bundled()
    assert list(df.columns[1:]) == list(sk.columns)
    assert np.array_equal(df[sk.columns].to_numpy(), sk.to_numpy())


def test_attribution_is_shipped():
    from importlib import resources
    text = resources.files("divergences.report").joinpath("data", "README.md").read_text()
    for needle in ("Wolberg", "Street", "Mangasarian", "CC BY 4.0", "UCI"):
        assert needle in text
