"""Permutation independence test."""

import importlib

import numpy as np
import pytest

from divergences.estimate import IndependenceTestResult, independence_test, mutual_information


def test_dependent_data_smallest_pvalue(rng):
    x = rng.normal(size=300)
    res = independence_test(x, np.cos(2 * x) + 0.3 * rng.normal(size=300), permutations=49)
    assert isinstance(res, IndependenceTestResult)
    assert res.pvalue == pytest.approx(1 / 50)
    assert res.statistic > 0.2 and res.estimator == "ksg" and res.method == "permutation"


def test_pvalue_rule_and_reproducibility(rng):
    x, y = rng.normal(size=150), rng.normal(size=150)
    a = independence_test(x, y, permutations=59, seed=3)
    b = independence_test(x, y, permutations=59, seed=3)
    assert a.pvalue == b.pvalue and np.array_equal(a.null_distribution, b.null_distribution)
    expected = (1 + np.sum(a.null_distribution >= a.statistic - 1e-12)) / 60
    assert a.pvalue == pytest.approx(expected)
    assert a.null_distribution.shape == (59,) and a.permutations == 59
    assert 0 < a.pvalue <= 1


def test_independent_pvalues_are_roughly_uniform():
    ps = []
    for s in range(12):
        rng = np.random.default_rng(500 + s)
        ps.append(independence_test(rng.integers(0, 3, 200), rng.integers(0, 3, 200),
                                    permutations=19, seed=s).pvalue)
    ps = np.array(ps)
    assert np.sum(ps <= 0.05) <= 2  # level 5%: P(more than 2 of 12) < 2%
    assert 0.25 < ps.mean() < 0.75


def test_discrete_and_explicit_method(rng):
    x = rng.integers(0, 4, 400)
    res = independence_test(x, (x + rng.integers(0, 2, 400)) % 4, permutations=19)
    assert res.estimator == "discrete" and res.pvalue == pytest.approx(1 / 20)
    res2 = independence_test(rng.normal(size=100), rng.normal(size=100), permutations=9,
                             method="gaussian")
    assert res2.estimator == "gaussian"


def test_errors(rng):
    x = rng.normal(size=50)
    with pytest.raises(ValueError, match="statistic must be one of"):
        independence_test(x, x, statistic="pearson")
    with pytest.raises(ValueError, match="permutations must be >= 1"):
        independence_test(x, x, permutations=0)
    with pytest.raises(TypeError, match="permutations must be an int"):
        independence_test(x, x, permutations=10.0)
    with pytest.raises(ValueError, match="same number of rows"):
        independence_test(x, x[:-1])
    with pytest.raises(TypeError, match="seed"):
        independence_test(x, x, seed="a")


@pytest.mark.parametrize("statistic,module", [("dcor", "divergences.dependence"),
                                              ("hsic", "divergences.kernels")])
def test_other_statistics(rng, statistic, module):
    x = rng.normal(size=80)
    y = x**2 + 0.1 * rng.normal(size=80)
    try:
        importlib.import_module(module)
    except ImportError:
        with pytest.raises(ImportError, match=module.replace(".", r"\.")):
            independence_test(x, y, statistic=statistic, permutations=9)
        return
    res = independence_test(x, y, statistic=statistic, permutations=9)
    assert res.statistic_name == statistic and res.pvalue == pytest.approx(1 / 10)


def test_parallel_is_bit_identical_to_serial(rng):
    x = rng.normal(size=120)
    y = 0.3 * x + rng.normal(size=120)
    runs = [independence_test(x, y, permutations=57, seed=11, n_jobs=j) for j in (1, 2, 3, -1)]
    for r in runs[1:]:
        assert np.array_equal(r.null_distribution, runs[0].null_distribution)
        assert r.pvalue == runs[0].pvalue and r.statistic == runs[0].statistic
    # 57 permutations: blocks of 25, 25, 7, each from its own SeedSequence child
    assert runs[0].null_distribution.shape == (57,)
    other = independence_test(x, y, permutations=57, seed=12, n_jobs=2)
    assert not np.array_equal(other.null_distribution, runs[0].null_distribution)


def test_plus_one_correction_exact_values(rng):
    # strong dependence: no permuted statistic reaches the observed one, p = 1 / (1 + B)
    x = rng.normal(size=200)
    for b in (1, 9, 30):
        res = independence_test(x, x + 0.01 * rng.normal(size=200), permutations=b,
                                n_jobs=2)
        assert res.pvalue == 1 / (1 + b)
    # a constant y: every permuted statistic equals the observed one, p = (1 + B) / (1 + B)
    xi = rng.integers(0, 3, 60)
    res = independence_test(xi, np.zeros(60, dtype=np.int64), permutations=7, n_jobs=2)
    assert res.pvalue == 1.0


def test_n_jobs_errors(rng):
    x = rng.normal(size=50)
    with pytest.raises(ValueError, match="n_jobs must be >= 1 or -1"):
        independence_test(x, x, permutations=5, n_jobs=0)
    with pytest.raises(TypeError, match="n_jobs must be an int"):
        independence_test(x, x, permutations=5, n_jobs=2.0)


def test_mi_statistic_is_the_raw_value():
    # MI estimates are floored at 0 by default; the permutation test must order the raw
    # values, or an observed value below 0 would tie with every permuted one below 0
    # (p = 1 here instead of 0.4)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=300), rng.normal(size=300)
    raw = mutual_information(x, y, "ksg", ci="normal", clip=False).value
    assert raw < 0
    res = independence_test(x, y, method="ksg", permutations=49)
    assert res.statistic == raw and res.pvalue < 1.0
