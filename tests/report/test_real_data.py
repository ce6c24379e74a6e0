"""The comparison report on real tables that ship inside statsmodels and scikit-learn (no
download): the numbered problems of issue 13, each a regression test."""

import math

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
datasets = pytest.importorskip("sklearn.datasets")
sm_datasets = pytest.importorskip("statsmodels.datasets")

from divergences.report import compare  # noqa: E402

FAST = dict(permutations=19, n_boot=30)


def _fair():
    df = sm_datasets.fair.load_pandas().data.copy()
    df["had_affair"] = (df["affairs"] > 0).astype(int)
    return df


def _wide_breast_cancer(seed=0, factor=None):
    """breast_cancer widened to 120 columns (each column and three copies whose rows are
    shuffled, so that every copy meets the split differently), split at random in two;
    ``factor`` multiplies the first column of the current half."""
    base = datasets.load_breast_cancer(as_frame=True).frame.drop(columns="target")
    rng = np.random.default_rng(seed)
    cols = {}
    for j in range(4):
        order = np.arange(len(base)) if j == 0 else rng.permutation(len(base))
        for c in base.columns:
            cols[f"{c} #{j}"] = base[c].to_numpy()[order]
    wide = pd.DataFrame(cols)
    cur_rows = rng.random(len(wide)) < 0.5
    ref, cur = wide[~cur_rows].reset_index(drop=True), wide[cur_rows].reset_index(drop=True)
    if factor is not None:
        first = wide.columns[0]
        cur[first] = cur[first] * factor
    return ref, cur


@pytest.fixture(scope="module")
def wide():
    ref, cur = _wide_breast_cancer(factor=1.5)
    return compare(ref, cur, **FAST)


def test_item1_mi_with_target_on_tied_integer_data():
    """fair: ``affairs`` determines ``had_affair``, so MI = H(had_affair) = 0.629 nats
    (scikit-learn's mutual_info_classif: 0.6288); the report gave 0.014 [-1.25, 0.118]."""
    df = _fair()
    p = df["had_affair"].mean()
    entropy = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    half = len(df) // 2
    rep = compare(df.iloc[:half], df.iloc[half:], target="had_affair",
                  columns=["affairs", "religious", "age"], **FAST)
    mi = {row["column"]: row for row in rep.mutual_information}
    assert mi["affairs"]["value"] == pytest.approx(entropy, abs=0.01)
    assert mi["affairs"]["rank"] == 1
    for row in rep.mutual_information:
        assert 0 <= row["ci_low"] <= row["value"] <= row["ci_high"], row


def test_item2_3_every_measure_non_negative_and_inside_its_interval(wide):
    """120 columns on a random split: JS was 3.87e-05 [5.51e-04, 0.031] in 38 of them, and
    the nearest-neighbour KL negative on most undrifted columns."""
    assert len(wide.columns) == 120
    for c in wide.columns:
        for name, m in c.measures.items():
            assert 0 <= m.ci_low <= m.value <= m.ci_high, (c.name, name, m)
    undrifted = [c for c in wide.columns if not c.drift]
    assert any(c.measures["kl"].clipped for c in undrifted)   # clipping happens, and says so
    assert not any(c.measures["kl"].clipped for c in wide.columns if c.measures["kl"].value > 0)


def test_item4_one_drifted_column_among_120_is_flagged(wide):
    """With 99 permutations the drifted column got q = 0.6 after Benjamini-Hochberg."""
    first = wide.column("mean radius #0")
    assert first.drift and first.drift_qvalue <= 0.05
    assert first.decided_by.startswith("KS q=")
    assert first.measures["ks"].qvalue <= 0.05
    # its permutation p-values refined until the floor survives the adjustment over 120
    assert wide.meta["max_permutations"] == 9999
    assert first.measures["wasserstein"].qvalue <= 0.05
    others = [c.name for c in wide.columns if c.drift and c.name != first.name]
    assert len(others) <= 3, others
    assert wide.meta["drifted"] == 1 + len(others)


@pytest.mark.parametrize("sample", [None, 2000])
def test_item5_a_table_against_itself_gives_zero_and_flags_nothing(sample):
    df = _fair()
    rep = compare(df, df.copy(), target="had_affair", sample=sample, **FAST)
    assert rep.meta["drifted"] == 0
    for c in rep.columns:
        assert not c.drift, c.decided_by
        for name, m in c.measures.items():
            assert m.value == 0.0, (c.name, name, m)
        assert c.drift_pvalue == 1.0
    assert rep.joint["statistic"] <= 1e-12 and rep.joint["pvalue"] == 1.0
    assert rep.meta["sampled"] == (sample is not None)


def test_missing_share_change_is_drift():
    """A column going from 2% to 15% missing is drift, even when its values are not."""
    wine = datasets.load_wine(as_frame=True).frame
    rng = np.random.default_rng(3)
    ref = pd.concat([wine] * 6, ignore_index=True)
    cur = ref.sample(frac=1.0, random_state=1).reset_index(drop=True)
    ref.loc[rng.random(len(ref)) < 0.02, "alcohol"] = np.nan
    cur.loc[rng.random(len(cur)) < 0.15, "alcohol"] = np.nan
    rep = compare(ref, cur, **FAST)
    col = rep.column("alcohol")
    assert col.missing_share_reference == pytest.approx(0.02, abs=0.01)
    assert col.missing_share_current == pytest.approx(0.15, abs=0.02)
    assert col.drift and col.decided_by.startswith("missing 2.")
    assert col.missing_qvalue <= 0.05
    assert [c.name for c in rep.columns if c.drift] == ["alcohol"]


def test_kinds_come_from_the_dtype_and_do_not_flip_with_the_sample():
    """fair's float columns with few integer values (religious: 4, rate_marriage: 5) and
    randhie's integer-valued columns: one kind whatever the rows drawn."""
    df = _fair()
    kinds = set()
    for seed in range(3):
        rep = compare(df.iloc[:3000], df.iloc[3000:], sample=200, seed=seed, **FAST)
        kinds.add(tuple(sorted((c.name, c.kind) for c in rep.columns)))
    assert len(kinds) == 1
    assert dict(next(iter(kinds)))["religious"] == "numeric"
    rep = compare(df.iloc[:3000], df.iloc[3000:], categorical=["religious"], sample=300,
                  **FAST)
    assert rep.column("religious").kind == "categorical"
    assert rep.column("religious").categories == ["1", "2", "3", "4"]
    # few rows per category: the chi-square test by permutation, and it says so
    small = compare(df.iloc[:3000], df.iloc[3000:], categorical=["occupation"],
                    columns=["occupation"], sample=60, **FAST)
    occ = small.column("occupation")
    assert occ.drift_test.startswith("chi-square (permutation, ")
    assert occ.decided_by.startswith("chi-square (permutation, ")


def test_ids_text_timestamps_decimals_and_one_sided_columns():
    import decimal
    diabetes = datasets.load_diabetes(as_frame=True).frame
    n = len(diabetes)
    df = diabetes.copy()
    df["row_id"] = np.arange(n)
    df["note"] = [f"patient note {i}: {v:.3f}" for i, v in enumerate(diabetes["bmi"])]
    df["seen"] = pd.date_range("2024-01-01", periods=n, freq="h")
    df["seen_utc"] = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    df["bp_dec"] = [decimal.Decimal(f"{v:.4f}") for v in diabetes["bp"]]
    ref, cur = df.iloc[: n // 2].reset_index(drop=True), df.iloc[n // 2:].reset_index(drop=True)
    cur = cur.assign(extra=1.0)
    rep = compare(ref, cur, **FAST)
    reasons = {s["column"]: s["reason"] for s in rep.skipped}
    assert reasons["row_id"] == "unique per row: looks like an ID"
    assert reasons["note"].startswith("unique per row")
    assert reasons["seen"] == reasons["seen_utc"]          # aware and naive alike
    assert "timestamps" in reasons["seen"]
    assert reasons["extra"] == "only in current"
    assert rep.column("bp_dec").kind == "numeric"
    bp, bp_dec = rep.column("bp").measures, rep.column("bp_dec").measures
    assert bp_dec["ks"].value == pytest.approx(bp["ks"].value, abs=1e-12)
    assert {c.name for c in rep.columns} == set(diabetes.columns) | {"bp_dec"}


def test_one_bad_column_never_aborts_the_report():
    macro = sm_datasets.macrodata.load_pandas().data
    ref, cur = macro.iloc[:100].copy(), macro.iloc[100:].copy()
    ref["sparse"], cur["sparse"] = np.nan, np.nan
    ref.loc[:2, "sparse"] = [1.0, 2.0, 3.0]             # 3 values: too few
    cur.loc[cur.index[:40], "sparse"] = np.sqrt(np.arange(40.0))
    rep = compare(ref, cur, **FAST)
    reasons = {s["column"]: s["reason"] for s in rep.skipped}
    assert "numeric columns need at least" in reasons["sparse"]
    assert len(rep.columns) == macro.shape[1]            # every other column is there
    assert rep.column("realgdp").drift                    # 1959-1983 against 1984-2009
