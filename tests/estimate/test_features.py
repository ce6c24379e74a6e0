"""mutual_info_scores: scikit-learn's feature-selection contract, this package's estimators."""

import warnings

import numpy as np
import pytest

from divergences.estimate import Estimate, mutual_info_scores

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer, load_diabetes  # noqa: E402
from sklearn.feature_selection import (  # noqa: E402
    SelectKBest,
    mutual_info_classif,
    mutual_info_regression,
)


def _sklearn_mean(fn, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.mean([fn(X, y, random_state=s, **kw) for s in range(5)], axis=0)


def test_matches_sklearn_on_continuous_tables():
    # continuous measurements (few ties), where scikit-learn's KSG and Ross are unbiased
    X, y = load_breast_cancer(return_X_y=True)
    ours = mutual_info_scores(X, y)
    assert np.abs(ours - _sklearn_mean(mutual_info_classif, X, y)).max() < 0.03
    X, y = load_diabetes(return_X_y=True)
    ours = mutual_info_scores(X, y, target="continuous")
    assert np.abs(ours - _sklearn_mean(mutual_info_regression, X, y)).max() < 0.03


def test_against_the_truth_for_gaussian_features():
    # y = x_0 + noise: I(x_0; y) = -1/2 log(1 - rho^2), the other columns 0
    rng = np.random.default_rng(0)
    n, rho = 3000, 0.8
    X = rng.normal(size=(n, 4))
    y = rho * X[:, 0] + np.sqrt(1 - rho**2) * rng.normal(size=n)
    truth = -0.5 * np.log(1 - rho**2)
    s = mutual_info_scores(X, y)
    # KSG's sampling spread at n = 3,000 is about 0.015 (this draw: 0.480)
    assert abs(s[0] - truth) < 0.05 and np.all(s[1:] < 0.02)
    # on tie-free continuous data both run KSG (k = 3) on standardised columns: equal values
    np.testing.assert_allclose(s, mutual_info_regression(X, y, random_state=0), atol=1e-9)


def test_select_k_best_and_discrete_feature_forms():
    rng = np.random.default_rng(1)
    n = 1500
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 4, n), rng.normal(size=n),
                         rng.integers(0, 3, n)]).astype(float)
    y = (X[:, 0] > 0).astype(int) + 2 * (X[:, 1] >= 2)
    support = SelectKBest(mutual_info_scores, k=2).fit(X, y).get_support()
    assert support.tolist() == [True, True, False, False]
    by_mask = mutual_info_scores(X, y, discrete_features=np.array([False, True, False, True]))
    by_index = mutual_info_scores(X, y, discrete_features=[1, 3])
    np.testing.assert_array_equal(by_mask, by_index)
    # "auto" reads integer columns as discrete: the same as the mask on an integer copy
    Xi = X.astype(object)
    Xi[:, 1] = X[:, 1].astype(int)
    cols = [X[:, 0], X[:, 1].astype(int), X[:, 2], X[:, 3].astype(int)]
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({f"c{j}": c for j, c in enumerate(cols)})
    np.testing.assert_array_equal(mutual_info_scores(df, y), by_mask)
    # label columns (strings) are discrete, whatever discrete_features says
    df["c1"] = np.array(["a", "b", "c", "d"])[cols[1]]
    np.testing.assert_array_equal(mutual_info_scores(df, y, discrete_features=[3]), by_mask)
    assert np.all(mutual_info_scores(X, y, discrete_features=True) >= 0)


def test_estimates_and_errors():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 3))
    y = X[:, 0] + rng.normal(size=400)
    scores, ests = mutual_info_scores(X, y, return_estimates=True)
    assert len(ests) == 3 and all(isinstance(e, Estimate) for e in ests)
    assert all(e.ci_low <= s <= e.ci_high for e, s in zip(ests, scores))
    with pytest.raises(ValueError, match=r"discrete_features as a mask must have shape \(3,\)"):
        mutual_info_scores(X, y, discrete_features=np.array([True, False]))
    with pytest.raises(ValueError, match="index out of range for 3 features"):
        mutual_info_scores(X, y, discrete_features=[5])
    with pytest.raises(ValueError, match=r"y must have one entry per row of X \(400\)"):
        mutual_info_scores(X, y[:10])
    with pytest.raises(ValueError, match="target must be one of"):
        mutual_info_scores(X, y, target="regression")
    bad = X.copy()
    bad[0, 2] = np.nan
    with pytest.raises(ValueError, match="X column 2 contains NaN"):
        mutual_info_scores(bad, y)
    with pytest.raises(ValueError, match="X must be 2-D"):
        mutual_info_scores(X[:, 0], y)
