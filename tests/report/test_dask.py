"""The Dask engine of divergences.report.compare on a local cluster of worker processes: its
numbers against the local engine and exact full-data values; the command line; errors."""

import json
import re
import sys

import numpy as np
import pytest
from scipy import stats

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from divergences import cli, discrete  # noqa: E402
from divergences.report import InputError, compare  # noqa: E402
from divergences.report import _dask as engine  # noqa: E402
from divergences.report._columns import BINS, bin_codes, smoothed  # noqa: E402
from divergences.report._io import read_table  # noqa: E402

FAST = dict(permutations=9, n_boot=5, seed=4)
SAMPLE = 400
FILES, ROWS = 6, 400


def _frame(rng, n, shift):
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.02] = np.nan
    return pd.DataFrame({
        "x": x,
        "z": np.round(rng.exponential(1.0 + shift, n), 2),            # ties
        "k": rng.integers(0, 4 + int(shift > 0), n),        # integers, compared as categories
        "colour": rng.choice(["red", "green", "blue"], n,
                             p=[0.5, 0.3, 0.2] if shift == 0 else [0.3, 0.3, 0.4]),
        "t": rng.integers(0, 2, n),
    })


def _write(folder, seed, shift, suffix="parquet"):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(FILES):
        df = _frame(rng, ROWS + 37 * i, shift)
        if suffix == "parquet":
            df.to_parquet(folder / f"part-{i:02d}.parquet", index=False)
        else:
            df.to_csv(folder / f"part-{i:02d}.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("dask-data")
    return _write(base / "ref", 0, 0.0), _write(base / "cur", 1, 0.4)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=40) as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def reports(data, client):
    ref, cur = data
    names = (str(ref), str(cur))
    dask_rep = compare(str(ref), str(cur), target="t", engine="dask", scheduler=client,
                       sample=SAMPLE, categorical=["k"], **FAST)
    local_rep = compare(read_table(ref), read_table(cur), target="t", sample=SAMPLE,
                        names=names, categorical=["k"], **FAST)
    return dask_rep, local_rep, read_table(ref), read_table(cur)


def _present(df, col):
    v = df[col].to_numpy(dtype=np.float64)
    return v[~np.isnan(v)]


def test_full_data_categorical_measures_are_exact(reports):
    rep, _, ref, cur = reports
    for col in ("colour", "k"):
        res = rep.column(col)
        assert res.kind == "categorical"
        r, c = ref[col].astype(str).to_numpy(), cur[col].astype(str).to_numpy()
        cats = sorted(set(r) | set(c))
        assert res.categories == cats
        hr = np.array([(r == k).sum() for k in cats], float)
        hc = np.array([(c == k).sum() for k in cats], float)
        assert res.reference_counts == hr.astype(int).tolist()
        assert res.current_counts == hc.astype(int).tolist()
        pr, pc = hr / hr.sum(), hc / hc.sum()
        m = res.measures
        assert m["js"].plugin == pytest.approx(float(discrete.js(pr, pc)), rel=1e-9)
        assert m["tv"].plugin == pytest.approx(float(discrete.tv(pr, pc)), rel=1e-9)
        assert m["chi2"].plugin == pytest.approx(
            float(discrete.chi2(smoothed(hr), smoothed(hc))), rel=1e-9)
        # the test of the full table, not of a sample
        p = stats.chi2_contingency(np.vstack([hr, hc]), correction=False).pvalue
        assert m["chi2"].pvalue == pytest.approx(p, rel=1e-9) and res.drift_test == "chi-square"
        for mm in m.values():
            assert 0 <= mm.ci_low <= mm.value <= mm.ci_high
        assert (res.n_reference, res.n_current) == (len(ref), len(cur))


def test_full_data_numeric_measures_within_the_sketch_error(reports):
    rep, _, ref, cur = reports
    for col in ("x", "z"):
        res = rep.column(col)
        r, c = _present(ref, col), _present(cur, col)
        assert (res.n_reference, res.n_current) == (r.size, c.size)
        assert res.missing_reference == len(ref) - r.size
        err = rep.meta["sketch"]["columns"][col]
        pooled = np.concatenate([r, c])
        h = (pooled.max() - pooled.min()) / engine.GRID_BINS
        assert err["grid_width"] == pytest.approx(h, rel=1e-12)
        # exact counts on the reported (grid-snapped) edges, and js/psi computed from them
        edges = np.asarray(res.edges)
        k = len(edges) - 1
        assert k <= BINS
        hr = np.bincount(bin_codes(r, edges), minlength=k).astype(float)
        hc = np.bincount(bin_codes(c, edges), minlength=k).astype(float)
        assert res.reference_counts == hr.astype(int).tolist()
        assert res.current_counts == hc.astype(int).tolist()
        m = res.measures
        assert m["js"].plugin == pytest.approx(float(discrete.js(hr / hr.sum(), hc / hc.sum())),
                                               rel=1e-9)
        assert m["psi"].plugin == pytest.approx(
            float(discrete.jeffreys(smoothed(hr), smoothed(hc))), rel=1e-9)
        # each edge within a few grid widths of the exact pooled quantile the local engine uses
        exact = np.quantile(pooled, np.linspace(0, 1, BINS + 1))
        assert np.abs(edges - np.unique(exact)).max() <= 3 * h
        w = stats.wasserstein_distance(r, c)
        assert abs(m["wasserstein"].plugin - w) <= err["wasserstein"]
        assert err["wasserstein"] <= 2 * h
        ks = stats.ks_2samp(r, c).statistic
        assert m["ks"].plugin <= ks + 1e-12 <= m["ks"].plugin + err["ks"] + 1e-12
        # intervals and p-values of the full-data statistics: the value inside its interval,
        # the KS p-value that of the full row counts
        for mm in m.values():
            assert 0 <= mm.ci_low <= mm.value <= mm.ci_high
        p = stats.kstwobign.sf(m["ks"].plugin * np.sqrt(r.size * c.size / (r.size + c.size)))
        assert m["ks"].pvalue == pytest.approx(min(1.0, p), rel=1e-9)
    print({c: {k: v.value for k, v in rep.column(c).measures.items()} for c in ("x", "z")})


def test_sampled_measures_equal_the_local_engine(reports):
    rep, local, _, _ = reports
    assert rep.meta["sample_rows"] == [SAMPLE, SAMPLE]
    assert sorted(c.name for c in rep.columns) == sorted(c.name for c in local.columns)
    for res in rep.columns:
        loc = local.column(res.name)
        assert res.kind == loc.kind
        if res.kind == "numeric":  # kl and the plot come from the sample
            a, b = res.measures["kl"], loc.measures["kl"]
            assert (a.value, a.ci_low, a.ci_high, a.clipped) == (b.value, b.ci_low, b.ci_high,
                                                                 b.clipped)
            assert np.array_equal(rep.plot_data[res.name][0], local.plot_data[res.name][0])
    assert rep.joint == local.joint
    assert rep.mutual_information == local.mutual_information
    js = [c.measures["js"].value for c in rep.columns]
    assert js == sorted(js, reverse=True)


def test_full_data_intervals_are_narrower_than_the_samples(reports):
    """Issue 13 item 6: the intervals were the sample's, translated to the full value (full
    TV 0.0016 with p = 0.03 from a sample TV of 0.024); now they belong to the full data,
    whose row count is 7 times the sample's."""
    rep, local, _, _ = reports
    for col in ("x", "colour"):
        name = "js"
        full, samp = rep.column(col).measures[name], local.column(col).measures[name]
        assert full.ci_high - full.ci_low < samp.ci_high - samp.ci_low


def test_js_bins_do_not_depend_on_the_row_count(reports):
    """JS on adaptive bins gave 0.074 on 5k rows and 0.102 on all rows: the bin count grew
    with n. Ten decile bins whatever n: the sample's JS estimates the full data's (within the
    sample's sampling error)."""
    rep, local, _, _ = reports
    for col in ("x", "z"):
        full, samp = rep.column(col).measures["js"], local.column(col).measures["js"]
        assert len(rep.column(col).edges) == len(local.column(col).edges) == BINS + 1
        assert abs(samp.value - full.value) <= 1.5 * (samp.ci_high - samp.ci_low)


def test_meta_and_renderings(reports):
    rep = reports[0]
    meta = rep.meta
    assert meta["engine"] == "dask" and meta["partitions"] == [FILES, FILES]
    assert meta["rows_reference"] == sum(ROWS + 37 * i for i in range(FILES))
    assert meta["full_data_measures"]["numeric"] == ["js", "psi", "wasserstein", "ks"]
    assert "kl" in meta["sampled_measures"]
    doc = json.loads(rep.to_json())
    assert doc["meta"]["sketch"]["grid_bins"] == engine.GRID_BINS
    # the page's own chart markers ("<svg" also matched text inside the plotly.js bundle)
    page = rep.to_html()
    assert 'data-figure="js"' in page and 'data-figure="mi"' in page
    assert page.count('data-figure="col') == len(rep.columns)
    assert '<script type="application/json" id="figures">{"js":' in page
    assert any(re.match(r"(DRIFT|ok) +x +", line) for line in rep.table(width=None).splitlines())


def test_csv_folder_and_equal_results_on_resplit_data(tmp_path, data, client, reports):
    """The same rows as CSV files: the categorical counts are those of the Parquet run."""
    ref = tmp_path / "ref_csv"
    ref.mkdir()
    whole = read_table(data[0])
    for i, part in enumerate(np.array_split(np.arange(len(whole)), 3)):
        whole.iloc[part].to_csv(ref / f"p{i}.csv", index=False)
    rep = compare(str(ref), str(data[1]), engine="dask", scheduler=client, sample=50,
                  columns=["colour", "x"], permutations=5, n_boot=3)
    assert rep.meta["partitions"][0] == 3
    for col in ("colour", "x"):
        assert rep.column(col).reference_counts == reports[0].column(col).reference_counts
        assert rep.column(col).measures["js"].plugin == \
            reports[0].column(col).measures["js"].plugin


def _run(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_with_scheduler_address(data, client, tmp_path, capsys):
    ref, cur = data
    out = tmp_path / "rep"
    code, stdout, err = _run(["report", str(ref), str(cur), "--engine", "dask", "--target", "t",
                              "--scheduler", client.scheduler.address, "--out", str(out),
                              "--sample", "300", "--permutations", "5", "--n-boot", "3",
                              "--no-rich"], capsys)
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"report.html", "report.json", "report.md"}
    doc = json.loads((out / "report.json").read_text())
    assert doc["meta"]["engine"] == "dask"
    assert doc["meta"]["scheduler"] == client.scheduler.address
    assert doc["target"]["name"] == "t" and "wrote html" in stdout
    assert "engine dask" in stdout and "a sample of 300+300 rows" in stdout


def test_cli_default_starts_and_closes_a_local_cluster(data, tmp_path, capsys, monkeypatch):
    # A one-worker cluster in threads keeps this test quick; the worker-process cluster is
    # exercised by the module's other tests through its address.
    monkeypatch.setattr(engine, "LOCAL_CLUSTER", {"n_workers": 1, "threads_per_worker": 1,
                                                  "processes": False,
                                                  "dashboard_address": ":0"})
    ref, cur = data
    out = tmp_path / "rep"
    code, stdout, err = _run(["report", str(ref), str(cur), "--engine", "dask", "--target", "t",
                              "--out", str(out), "--sample", "200", "--permutations", "5",
                              "--n-boot", "3", "--format", "json", "--no-rich"], capsys)
    assert code == 0, err
    assert "wrote json" in stdout
    doc = json.loads((out / "report.json").read_text())
    assert doc["meta"]["scheduler"].startswith("local cluster (1 worker")
    assert doc["target"]["mutual_information"]


def test_cli_bad_scheduler_is_one_line(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT", 1.0)
    ref, cur = data
    for address in ("tcp://127.0.0.1:9", "no-such-scheme://x"):
        code, _, err = _run(["report", str(ref), str(cur), "--engine", "dask", "--scheduler",
                             address, "--out", str(tmp_path / "o")], capsys)
        assert code == 2
        lines = err.strip().splitlines()
        assert lines[-1].startswith("divergences: error: scheduler ")
        assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_dask_missing_names_the_install(data, tmp_path, capsys, monkeypatch):
    for mod in ("dask", "dask.dataframe", "distributed"):
        monkeypatch.setitem(sys.modules, mod, None)
    ref, cur = data
    code, _, err = _run(["report", str(ref), str(cur), "--engine", "dask",
                         "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert err.strip() == f"divergences: error: {engine.INSTALL_HINT}"
    assert "pip install 'divergences[dask]'" in err
    with pytest.raises(InputError, match="pip install"):
        compare(str(ref), str(cur), engine="dask")


@pytest.mark.parametrize("argv, match", [
    (["--scheduler", "tcp://x:1"], "--scheduler needs --engine dask"),
    (["--engine", "dask"], "reads two paths"),
    (["REF", "--engine", "dask", "--split", "k=1"], "reads two paths"),
    (["REF", "CUR", "--engine", "dask", "--sample", "0"], "needs --sample"),
    (["REF", "CUR", "--engine", "spark"], "invalid choice"),
])
def test_cli_usage_errors(argv, match, data, tmp_path, capsys):
    argv = [str(data[0]) if a == "REF" else str(data[1]) if a == "CUR" else a for a in argv]
    code, _, err = _run(["report", *argv, "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and match in err and "Traceback" not in err


def test_input_errors_before_any_cluster(data, tmp_path):
    ref, cur = data
    missing = tmp_path / "nope"
    with pytest.raises(InputError, match="no such file or folder"):
        compare(str(missing), str(cur), engine="dask")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no .csv or .parquet"):
        compare(str(empty), str(cur), engine="dask")
    with pytest.raises(InputError, match="no target column 'nope'"):
        compare(str(ref), str(cur), target="nope", engine="dask")
    with pytest.raises(InputError, match="no column 'q'"):
        compare(str(ref), str(cur), columns=["q"], engine="dask")
    odd = tmp_path / "odd"
    odd.mkdir()
    pd.DataFrame({"a": [1.0]}).to_parquet(odd / "a.parquet")
    pd.DataFrame({"b": [1.0]}).to_parquet(odd / "b.parquet")
    with pytest.raises(InputError, match="b.parquet: its columns differ"):
        compare(str(odd), str(cur), engine="dask")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="could not be read as Parquet"):
        compare(str(bad), str(cur), engine="dask")
    with pytest.raises(TypeError, match="pass a path"):
        compare(read_table(ref), str(cur), engine="dask")
    with pytest.raises(ValueError, match="engine must be"):
        compare(str(ref), str(cur), engine="ray")
    with pytest.raises(ValueError, match="only used with engine='dask'"):
        compare({"a": [1.0, 2.0]}, {"a": [1.0, 2.0]}, scheduler="tcp://x:1")


def test_mixed_kinds_across_partitions(tmp_path, client, data):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    pd.DataFrame({"a": np.arange(20.0)}).to_parquet(mixed / "1.parquet")
    pd.DataFrame({"a": ["u"] * 20}).to_parquet(mixed / "2.parquet")
    with pytest.raises(InputError, match="'a' in .*mixes numbers and text"):
        compare(str(mixed), str(mixed), engine="dask", scheduler=client)


def test_partition_without_values_and_unsupported_columns(tmp_path, client):
    rng = np.random.default_rng(5)
    folders = []
    for side in ("r", "c"):
        d = tmp_path / side
        d.mkdir()
        pd.DataFrame({"a": rng.normal(size=30), "when": pd.Timestamp("2024-01-01")}).to_parquet(
            d / "1.parquet")
        pd.DataFrame({"a": pd.Series([None] * 10, dtype=object),
                      "when": pd.Timestamp("2024-01-02")}).to_parquet(d / "2.parquet")
        folders.append(str(d))
    rep = compare(*folders, engine="dask", scheduler=client, sample=20, permutations=5,
                  n_boot=3)
    a = rep.column("a")
    assert (a.n_reference, a.missing_reference) == (30, 10)
    assert sum(a.reference_counts) == 30
    assert rep.skipped and rep.skipped[0]["column"] == "when"


def test_only_categorical_columns(data, client, reports):
    rep = compare(str(data[0]), str(data[1]), columns=["k", "colour"], categorical=["k"],
                  engine="dask",
                  scheduler=client, sample=50, permutations=5, n_boot=3)
    assert rep.meta["sketch"]["columns"] == {} and rep.joint is None
    for col in ("k", "colour"):
        assert rep.column(col).current_counts == reports[0].column(col).current_counts
        assert rep.column(col).measures["chi2"].plugin == \
            reports[0].column(col).measures["chi2"].plugin


def test_bad_columns_are_skipped_with_a_reason(tmp_path, client):
    """One bad column never aborts the report: too few values, a text ID, a column in one
    data set only (issue 13)."""
    rng = np.random.default_rng(8)
    n = 200
    ref = pd.DataFrame({"x": rng.normal(size=n), "few": [1.0, 2.0] + [np.nan] * (n - 2),
                        "id": [f"u{i}" for i in range(n)], "only_ref": rng.normal(size=n),
                        "empty": np.full(n, np.nan), "gone": rng.choice(["a", "b"], n)})
    cur = pd.DataFrame({"x": rng.normal(size=n), "few": rng.normal(size=n),
                        "id": [f"v{i}" for i in range(n)], "empty": rng.normal(size=n),
                        "gone": pd.Series([None] * n, dtype=object)})
    ref.to_parquet(tmp_path / "r.parquet", index=False)
    cur.to_parquet(tmp_path / "c.parquet", index=False)
    rep = compare(str(tmp_path / "r.parquet"), str(tmp_path / "c.parquet"), engine="dask",
                  scheduler=client, sample=100, permutations=5, n_boot=3)
    reasons = {s["column"]: s["reason"] for s in rep.skipped}
    assert "numeric columns need at least" in reasons["few"]
    assert reasons["id"].startswith("unique per row")
    assert reasons["only_ref"] == f"only in {tmp_path / 'r.parquet'}"
    # all-NaN columns: skipped, numeric or text, as the local engine says it
    assert reasons["empty"] == f"every value is missing in {tmp_path / 'r.parquet'}"
    assert reasons["gone"] == f"every value is missing in {tmp_path / 'c.parquet'}"
    assert [c.name for c in rep.columns] == ["x"]
    assert rep.meta["rows_total"] == [n, n] and not rep.column("x").drift


def test_progress_while_reading(data, client):
    """The terminal stayed blank while the dask engine read and sketched (issue 13)."""
    calls = []
    compare(str(data[0]), str(data[1]), columns=["x", "colour"], engine="dask",
            scheduler=client, sample=50, permutations=5, n_boot=3,
            progress=lambda done, total, what: calls.append((done, total, what)))
    reading = [c for c in calls if c[2] == "reading partitions"]
    counting = [c for c in calls if c[2] == "counting and sampling partitions"]
    assert [c[0] for c in reading] == list(range(1, 2 * FILES + 1))
    assert reading[-1][1] == 2 * FILES and counting[-1][0] == counting[-1][1]
    assert calls[-1][:2] == (2, 2)                      # then the columns, as locally


def test_real_data_intervals_never_below_zero_and_around_the_value(tmp_path, client):
    """Issue 13 items 2, 3 and 6 on a real table (the bundled breast-cancer data, split at
    random): dask-engine intervals went below zero for JS, TV, KS and W1, and came from the
    sample while the value came from all rows."""
    from divergences.report._io import load_bundled
    df = load_bundled("breast_cancer.csv").drop(columns=["target"])
    rng = np.random.default_rng(2)
    cur_rows = rng.random(len(df)) < 0.5
    paths = []
    for name, rows in (("ref", ~cur_rows), ("cur", cur_rows)):
        folder = tmp_path / name
        folder.mkdir()
        part = df[rows].reset_index(drop=True)
        for i, chunk in enumerate(np.array_split(np.arange(len(part)), 2)):
            part.iloc[chunk].to_parquet(folder / f"p{i}.parquet", index=False)
        paths.append(str(folder))
    rep = compare(*paths, engine="dask", scheduler=client, sample=100, permutations=19,
                  n_boot=30)
    assert rep.meta["rows_total"] == [int((~cur_rows).sum()), int(cur_rows.sum())]
    assert rep.meta["sampled_reference"] == 100
    for c in rep.columns:
        for name, m in c.measures.items():
            assert 0 <= m.ci_low <= m.value <= m.ci_high, (c.name, name, m)
    assert rep.column("diagnosis").kind == "categorical"
    assert rep.meta["drifted"] <= 3          # a random split: (almost) nothing drifts


def test_numeric_ids_are_skipped_as_the_local_engine_skips_them(tmp_path, client):
    """Numeric ID columns, found from the sketches (monotone across partitions) or by the
    occupancy pass (dense, shuffled, no value twice), are skipped with the local engine's
    reason; near-IDs (one value twice, in two partitions; monotone within partitions only)
    are compared, as the local engine compares them (issue 13)."""
    rng = np.random.default_rng(9)
    parts, n = 4, 60
    for name, offset in (("ref", 0), ("cur", 10_000)):
        folder = tmp_path / name
        folder.mkdir()
        shuffled = rng.permutation(parts * n) + offset
        dup = rng.permutation(parts * n) + offset
        dup[-1] = dup[0]                                # the same value in two partitions
        for i in range(parts):
            rows = slice(i * n, (i + 1) * n)
            pd.DataFrame({
                "x": rng.normal(size=n),
                "row_id": np.arange(i * n, (i + 1) * n) + offset,          # increasing
                "countdown": np.arange(parts * n - i * n, parts * n - (i + 1) * n, -1),
                "shuffled": shuffled[rows],
                "dup": dup[rows],
                "restarts": np.arange(n) * 10 + i,       # increasing within partitions only
            }).to_parquet(folder / f"part-{i}.parquet", index=False)
    ref, cur = str(tmp_path / "ref"), str(tmp_path / "cur")
    rep = compare(ref, cur, engine="dask", scheduler=client, sample=100, permutations=5,
                  n_boot=3)
    local = compare(read_table(tmp_path / "ref"), read_table(tmp_path / "cur"), sample=100,
                    permutations=5, n_boot=3)
    want = [{"column": c, "reason": "unique per row: looks like an ID"}
            for c in ("row_id", "countdown", "shuffled")]
    assert rep.skipped == local.skipped == want
    assert sorted(c.name for c in rep.columns) == sorted(c.name for c in local.columns) \
        == ["dup", "restarts", "x"]
    # numeric= keeps an ID column in the comparison, as with the local engine
    kept = compare(ref, cur, engine="dask", scheduler=client, sample=100, permutations=5,
                   n_boot=3, numeric=["shuffled"])
    assert "shuffled" in [c.name for c in kept.columns]
