"""The selector model: labels, JSON persistence (no pickle), prediction, training CLI."""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import spmvtune
from spmvtune import model as model_mod
from spmvtune.cli import main
from spmvtune.model import (FEATURES, TreeModel, dataset, fit_model, label_of,
                            load_model)
from spmvtune.pool import kernel_names
from spmvtune.train import ResultsStore, generated_matrices, measure_matrix, sweep
from conftest import family_matrix

ORDER = kernel_names()
#: Tests time quickly: the figures are not what they check.
FAST = {"repeats": 2, "batch_seconds": 1e-4}


def test_label_prefers_the_simplest_within_tolerance():
    times = {"csr_balanced": 1.00, "csr_prefetch": 0.97, "bcsr": 0.50}
    assert label_of(times, ORDER) == "bcsr"
    assert label_of({"csr_balanced": 1.0, "csr_prefetch": 0.995}, ORDER) == "csr_balanced"
    assert label_of({"csr_balanced": 1.0, "csr_prefetch": 0.97}, ORDER) == "csr_prefetch"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """A tiny real sweep: generated families at 1% size, every kernel timed."""
    store = ResultsStore(tmp_path_factory.mktemp("train") / "store.sqlite")
    items = [it for i, it in enumerate(generated_matrices(scale=0.01)) if i % 20 == 0]
    measured, skipped, failed = sweep(items, store, threads=2, timing=FAST)
    assert measured == len(items) and failed == 0
    assert sweep(items, store, threads=2) == (0, len(items), 0)     # resumed: nothing redone
    return store.records()


def test_record_contents():
    rec = measure_matrix(family_matrix("power_law"), threads=2, **FAST)
    assert rec["threads"] == 2
    assert {"csr_balanced@1", "csr_balanced@2", "csr_serial@1"} <= set(rec["times"])
    assert "csr_serial@2" not in rec["times"] and "csr_sym@1" not in rec["times"]
    assert set(rec["setup"]) == set(rec["times"]) and rec["profile"]["t_base"] > 0
    assert not rec["errors"]


def test_a_wrong_kernel_is_recorded_not_timed(monkeypatch):
    """Every pair is checked against SciPy before it is timed."""
    spec = spmvtune.pool.get_kernel("csr_unroll4")
    broken = spec.prepare

    def wrong(csr, threads, **kw):
        p = broken(csr, threads, **kw)
        p.args = (p.args[0], p.args[1], p.args[2], p.args[3] * 2.0)     # doubled values
        return p
    object.__setattr__(spec, "prepare", wrong)          # specs are frozen: patched by hand
    try:
        rec = measure_matrix(family_matrix("banded"), threads=2, kernels=["csr_balanced",
                                                                          "csr_unroll4"], **FAST)
    finally:
        object.__setattr__(spec, "prepare", broken)
    assert "csr_unroll4@1" in rec["errors"] and "wrong result" in rec["errors"]["csr_unroll4@1"]
    assert "csr_unroll4@1" not in rec["times"] and "csr_balanced@2" in rec["times"]


def test_large_pools_are_timed_in_groups_against_the_baseline(monkeypatch):
    from spmvtune import train
    monkeypatch.setattr(train, "GROUP_BYTES", 1)          # one kernel per group
    rec = measure_matrix(family_matrix("banded"), threads=2,
                         kernels=["csr_balanced", "csr_unroll4", "csr_rows"], **FAST)
    assert {"csr_unroll4@1", "csr_rows@2", "csr_balanced@2"} <= set(rec["times"])
    assert all(v > 0 for v in rec["times"].values())


def _fake_records(n=60, seed=0):
    """Records whose best kernel is a known function of the features."""
    rng = np.random.default_rng(seed)
    base = {k: 0.0 for k in ("rows", "cols", "nnz", "density", "ws_over_l3", "x_over_l3")}
    out = []
    for i in range(n):
        f = {k: float(rng.uniform(0, 1)) for k in FEATURES if not k.startswith("log_") and k != "threads"}
        f.update(base, rows=1e4, cols=1e4, nnz=1e5, density=1e-3, ws_over_l3=0.5, x_over_l3=0.01)
        best = "csr_prefetch" if f["x_lines_per_nnz"] > 0.5 else "bcsr"
        times = {"csr_balanced": 1.0, best: 0.5}
        out.append((f"m{i}", f"fam{i % 4}", {"nnz": 1e5, "threads": 2, "features": f,
                                           "times": times, "profile": None}))
    return out


@pytest.mark.parametrize("kind", ["tree", "forest"])
def test_json_model_matches_sklearn_and_never_pickles(kind, tmp_path):
    recs = _fake_records()
    m = fit_model(recs, ORDER, kind=kind)
    path = tmp_path / "m.json"
    m.save(path)
    text = path.read_text()
    doc = json.loads(text)                              # plain JSON, nothing executable
    assert doc["format"] == "spmvtune-tree-model" and doc["features"] == FEATURES
    assert {"machine", "versions", "trained_on", "class_speedup"} <= set(doc)
    back = load_model(path)
    X, y, _, _ = dataset(recs, ORDER)
    est = model_mod.make_estimator(kind).fit(X, y)
    for x in X:
        assert back.predict(x)[0] == est.predict(x[None])[0]
        np.testing.assert_allclose(back.predict_proba(x), est.predict_proba(x[None])[0], atol=1e-12)
    assert (np.array([back.predict(x)[0] for x in X]) == y).mean() > 0.9


def test_foreign_model_warns(tmp_path):
    m = fit_model(_fake_records(), ORDER, kind="tree")
    m.doc["machine"] = "elsewhere"
    m.save(tmp_path / "m.json")
    with pytest.warns(UserWarning, match="another machine"):
        load_model(tmp_path / "m.json")
    (tmp_path / "bad.json").write_text('{"format": "pickle"}')
    with pytest.raises(ValueError, match="not an spmvtune model"):
        load_model(tmp_path / "bad.json")


def test_model_trained_on_real_timings_drives_select(records, tmp_path, monkeypatch):
    m = fit_model(records, ORDER, kind="forest")
    monkeypatch.setenv("SPMVTUNE_CACHE_DIR", str(tmp_path))
    m.save(model_mod.user_model_path())
    A = family_matrix("blocks")
    op = spmvtune.select_kernel(A, mode="features", threads=2)
    assert "model" in op.selection_source
    assert op.kernel in {c.partition("@")[0] for c in m.classes} | {"csr_balanced"}
    x = np.ones(A.shape[1])
    np.testing.assert_allclose(op(x), A @ x, rtol=1e-12, atol=1e-12)


def test_unusable_prediction_falls_back_to_baseline(tmp_path, monkeypatch):
    recs = _fake_records()
    for _, _, r in recs:                               # a model that always says csr_sym
        r["times"] = {"csr_balanced": 1.0, "csr_sym": 0.5}
    recs[0][2]["times"] = {"csr_balanced": 0.5, "csr_sym": 1.0}
    m = fit_model(recs, ORDER, kind="tree")
    monkeypatch.setenv("SPMVTUNE_CACHE_DIR", str(tmp_path))
    m.save(model_mod.user_model_path())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        op = spmvtune.select_kernel(family_matrix("wide"), mode="features", threads=2, cache=False)
    assert op.kernel == "csr_balanced" and "unusable" in op.selection_source


def test_train_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("SPMVTUNE_CACHE_DIR", str(tmp_path))
    d = tmp_path / "mats"
    d.mkdir()
    for name, fam in (("a.mtx", "power_law"), ("b.mtx", "blocks"), ("c.mtx", "short_rows"),
                      ("d.mtx", "stencil")):
        import scipy.io
        scipy.io.mmwrite(d / name, family_matrix(fam))
    (d / "bad.mtx").write_text("not a matrix\n")
    out = tmp_path / "models"
    r = CliRunner().invoke(main, ["train", str(d), "--no-generated", "--out", str(out),
                                  "--store", str(tmp_path / "s.sqlite"), "--kind", "tree",
                                  "--repeats", "2", "--batch-seconds", "0.0001"])
    assert r.exit_code == 0, r.output
    assert "failed 1" in r.output and (out / "costmodel.json").exists()
    assert TreeModel(json.loads((out / "model.json").read_text())).classes
    assert json.loads((out / "costmodel.json").read_text())["format"] == "spmvtune-cost-model"
    r = CliRunner().invoke(main, ["train", "--no-generated", "--fit-only", "--out", str(out),
                                  "--store", str(tmp_path / "s.sqlite")])
    assert r.exit_code == 0 and "measured" not in r.output, r.output


def test_each_mode_uses_its_own_selector(records, tmp_path, monkeypatch):
    """auto and predicted use the cost model, profile the bottleneck rule,
    features the forest."""
    monkeypatch.setenv("SPMVTUNE_CACHE_DIR", str(tmp_path))
    fit_model(records, ORDER, kind="tree").save(model_mod.user_model_path())
    A = family_matrix("power_law")
    sources = {mode: spmvtune.select_kernel(A, mode=mode, threads=2, cache=False).selection_source
               for mode in ("auto", "predicted", "profile", "features")}
    assert sources["auto"].startswith("auto") and sources["predicted"] == "predicted"
    assert "rule" in sources["profile"] and "model" in sources["features"]


def test_train_with_an_unreachable_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr("spmvtune.cluster.CONNECT_SECONDS", 1)
    bundled = Path(__file__).resolve().parents[1] / "matrices"
    r = CliRunner().invoke(main, ["train", str(bundled / "laplace2d_40.mtx"), "--no-generated",
                                  "--no-pruned", "--store", str(tmp_path / "s.sqlite"),
                                  "--out", str(tmp_path / "m"), "--scheduler",
                                  "tcp://127.0.0.1:9"])
    assert r.exit_code != 0 and "cannot reach the Dask scheduler" in r.output, r.output


def test_train_on_a_dask_cluster_fills_the_same_resumable_store(tmp_path):
    """`train --scheduler` measures on the cluster's workers, one matrix at a
    time each, into the store a local run resumes from."""
    distributed = pytest.importorskip("distributed")
    bundled = Path(__file__).resolve().parents[1] / "matrices"
    files = [str(bundled / "laplace2d_40.mtx"), str(bundled / "scatter_5000.mtx.gz")]
    store, out = tmp_path / "store.sqlite", tmp_path / "models"
    fast = ["--repeats", "1", "--batch-seconds", "0.0005", "--no-generated", "--no-pruned",
            "--store", str(store), "--out", str(out)]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        r = CliRunner().invoke(main, ["train", *files, *fast,
                                      "--scheduler", cluster.scheduler_address])
    assert r.exit_code == 0, r.output
    recs = {Path(m).name: rec for m, _, rec in ResultsStore(store).records()}
    assert set(recs) == {"laplace2d_40.mtx", "scatter_5000.mtx.gz"}
    assert all("csr_balanced@2" in rec["times"] for rec in recs.values())
    assert (out / "costmodel.json").exists()
    # a local rerun finds everything done
    r = CliRunner().invoke(main, ["train", *files, *fast])
    assert r.exit_code == 0 and "already in the store 2" in r.output
