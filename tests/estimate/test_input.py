"""Input validation: every error path names the argument and what was expected."""

import warnings

import numpy as np
import pytest
import torch

from divergences.estimate import (
    conditional_mutual_information,
    entropy,
    js,
    kl,
    mutual_information,
)


@pytest.fixture
def xy(rng):
    x = rng.normal(size=200)
    return x, x + rng.normal(size=200)


def test_length_mismatch(xy):
    x, y = xy
    with pytest.raises(ValueError, match=r"same number of rows: x has 200, y has 199"):
        mutual_information(x, y[:-1])
    with pytest.raises(ValueError, match=r"z has 10"):
        conditional_mutual_information(x, y, x[:10])


@pytest.mark.parametrize("bad,what", [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
def test_nan_and_inf(xy, bad, what):
    x, y = xy
    x = x.copy()
    x[3] = bad
    with pytest.raises(ValueError, match=f"x contains {what}"):
        mutual_information(x, y)
    with pytest.raises(ValueError, match=f"y contains {what}"):
        mutual_information(y, x)
    with pytest.raises(ValueError, match=f"x contains {what}"):
        entropy(x)
    with pytest.raises(ValueError, match=f"y contains {what}"):
        kl(y, x)


def test_too_few_samples_for_k(rng):
    x = rng.normal(size=3)
    with pytest.raises(ValueError, match=r"too few samples for k=3: need at least 4, got n=3"):
        entropy(x[:, None].repeat(2, 1) + rng.normal(size=(3, 2)), method="knn", k=3)
    with pytest.raises(ValueError, match="too few samples for k=3"):
        mutual_information(x, x + 1.0, method="ksg", k=3)
    with pytest.raises(ValueError, match="too few samples for k=5"):
        kl(rng.normal(size=20), rng.normal(size=4), k=5)


@pytest.mark.parametrize("k,exc", [(0, ValueError), (-1, ValueError), (2.0, TypeError),
                                   (True, TypeError), ("3", TypeError)])
def test_bad_k(xy, k, exc):
    x, y = xy
    with pytest.raises(exc, match="k"):
        mutual_information(x, y, method="ksg", k=k)


@pytest.mark.parametrize("bad", [np.array(["a", "b", "c"]), np.array([1 + 2j, 3j, 1j]),
                                 np.array([object(), object(), object()]), [[1.0], [2.0, 3.0]]])
def test_wrong_dtype(bad):
    with pytest.raises(TypeError, match="x must be"):
        entropy(bad)
    with pytest.raises(TypeError, match="y must be"):
        mutual_information(np.arange(3), bad)


def test_wrong_shape(rng):
    with pytest.raises(ValueError, match=r"x must have shape \(n,\) or \(n, d\); got a scalar"):
        entropy(1.0)
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 4\)"):
        entropy(rng.normal(size=(2, 3, 4)))
    with pytest.raises(ValueError, match="x is empty"):
        entropy(np.array([]))
    with pytest.raises(ValueError, match="zero columns"):
        entropy(np.zeros((5, 0)))


def test_unknown_method_lists_choices(xy):
    x, y = xy
    with pytest.raises(ValueError, match=r"method must be one of 'auto', 'ksg'"):
        mutual_information(x, y, method="kraskov")
    with pytest.raises(ValueError, match="method must be one of"):
        entropy(x, method="parzen")
    with pytest.raises(ValueError, match="method must be one of"):
        conditional_mutual_information(x, y, x, method="mixed")
    with pytest.raises(ValueError, match="method must be one of 'knn'"):
        kl(x, y, method="gaussian")


def test_method_and_dtype_mismatch(rng, xy):
    x, y = xy
    ints = rng.integers(0, 3, 200)
    with pytest.raises(TypeError, match="needs discrete data"):
        entropy(x, method="plugin")
    with pytest.raises(TypeError, match=r"method='discrete' needs integer arrays; x has a float"):
        mutual_information(x, ints, method="discrete")
    with pytest.raises(TypeError, match="one discrete"):
        mutual_information(x, y, method="ross")
    with pytest.raises(TypeError, match="one discrete"):
        mutual_information(ints, ints, method="ross")
    with pytest.raises(ValueError, match="1-D samples"):
        entropy(rng.normal(size=(50, 2)), method="vasicek")
    with pytest.raises(TypeError, match="x is an integer array"):
        kl(ints, y)
    with pytest.raises(ValueError, match="same number of columns"):
        kl(rng.normal(size=(50, 2)), rng.normal(size=(50, 3)))
    with pytest.raises(TypeError, match="needs float x and y"):
        conditional_mutual_information(ints, y, x, method="ksg")
    with pytest.raises(TypeError, match="y, z float"):
        conditional_mutual_information(ints, x, y, method="discrete")
    with pytest.raises(ValueError, match="supports all-integer"):
        conditional_mutual_information(ints, y, x)


def test_other_arguments(xy):
    x, y = xy
    with pytest.raises(TypeError, match="seed"):
        mutual_information(x, y, seed=1.5)
    with pytest.raises(ValueError, match="noise"):
        mutual_information(x, y, noise=-1.0)
    with pytest.raises(ValueError, match="bins must be >= 1"):
        mutual_information(x, y, method="binned", bins=0)
    with pytest.raises(TypeError, match="bins must be an integer"):
        mutual_information(x, y, method="binned", bins=2.5)
    with pytest.raises(ValueError, match="base"):
        entropy(x, base=1)


def test_singular_gaussian(rng):
    x = rng.normal(size=100)
    with pytest.raises(ValueError, match="singular covariance"):
        mutual_information(x, 2 * x, method="gaussian")
    with pytest.raises(ValueError, match="more samples than dimensions"):
        mutual_information(x[:3], x[:3] + 1, method="gaussian")
    with pytest.raises(ValueError, match="singular"):
        entropy(np.stack([x, -x], 1), method="gaussian")
    for method in ("gaussian", "knn", "vasicek"):
        with pytest.raises(ValueError, match="x column 0 is constant"):
            entropy(np.ones(50), method=method)


def test_exact_duplicates_without_noise():
    x = np.repeat(np.arange(10.0), 5)
    with pytest.raises(ValueError, match="exact duplicates"):
        entropy(np.stack([x, x], 1), method="knn", noise=0.0)
    with pytest.raises(ValueError, match="spacing 0"):
        entropy(np.repeat(np.arange(3.0), 30), method="vasicek", noise=0.0)
    with pytest.raises(ValueError, match="exact duplicates"):
        kl(x, x[:40], noise=0.0)
    # the default tie-breaking rule keeps every estimate finite
    with pytest.warns(UserWarning, match="repeated values"):
        ests = (entropy(np.stack([x, x], 1), method="knn"), kl(x, x[:40]),
                entropy(x, method="vasicek"))
    for e in ests:
        assert np.isfinite(e.value) and np.isfinite(e.stderr)


def test_ross_needs_a_repeated_label(rng):
    with pytest.raises(ValueError, match="seen at least twice"):
        mutual_information(np.arange(20), rng.normal(size=20))


def test_high_dimension_warns(rng):
    x = rng.normal(size=(60, 6))
    with pytest.warns(UserWarning, match="dimensions is high for n=60"):
        mutual_information(x[:, :3], x[:, 3:], method="ksg")
    with pytest.warns(UserWarning, match="high"):
        entropy(x, method="knn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mutual_information(x[:, 0], x[:, 1], method="ksg")  # 2-D: no warning


def test_torch_and_list_inputs(rng):
    x = rng.normal(size=300)
    y = x + rng.normal(size=300)
    ref = mutual_information(x, y)
    assert mutual_information(torch.from_numpy(x), torch.from_numpy(y)) == ref
    t = torch.from_numpy(x).requires_grad_(True)
    assert mutual_information(t, y.tolist()) == ref
    assert entropy([0, 1, 1, 2], method="plugin") == entropy(np.array([0, 1, 1, 2]),
                                                             method="plugin")


def test_bool_arrays_are_discrete(rng):
    b = rng.random(500) < 0.3
    assert entropy(b).method == "grassberger"
    assert mutual_information(b, b).method == "discrete"


def test_js_validates(rng):
    with pytest.raises(TypeError, match="integer"):
        js(np.arange(10), rng.normal(size=10))


def test_bootstrap_needs_enough_rows(rng):
    with pytest.raises(ValueError, match="half-samples"):
        entropy(rng.normal(size=(7, 2)), method="knn", k=3, ci="bootstrap")
    with pytest.raises(ValueError, match="half-samples"):
        kl(rng.normal(size=4), rng.normal(size=50), k=1, k_x=2, ci="bootstrap")
