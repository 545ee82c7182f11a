"""The selector model: labels, JSON persistence (no pickle), prediction, training CLI."""
import json
import warnings

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


def test_label_prefers_the_simplest_within_tolerance():
    times = {"csr_balanced": 1.00, "csr_prefetch": 0.97, "bcsr": 0.50}
    assert label_of(times, ORDER) == "bcsr"
    assert label_of({"csr_balanced": 1.0, "csr_prefetch": 0.97}, ORDER) == "csr_balanced"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """A tiny real sweep: generated families at 1% size, every kernel timed."""
    store = ResultsStore(tmp_path_factory.mktemp("train") / "store.sqlite")
    items = [it for i, it in enumerate(generated_matrices(scale=0.01)) if i % 6 == 0]
    measured, skipped, failed = sweep(items, store, threads=2)
    assert measured == len(items) and failed == 0
    assert sweep(items, store, threads=2) == (0, len(items), 0)     # resumed: nothing redone
    return store.records()


def test_record_contents():
    rec = measure_matrix(family_matrix("power_law"), threads=2, repeats=3, min_seconds=0)
    assert rec["threads"] == 1                        # below SMALL_NNZ
    assert "csr_balanced" in rec["times"] and "csr_sym" not in rec["times"]
    assert set(rec["setup"]) == set(rec["times"]) and rec["profile"]["t_base"] > 0


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
    assert "model" in op.selection_source and op.kernel in m.classes + ["csr_balanced"]
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
    out = tmp_path / "model.json"
    r = CliRunner().invoke(main, ["train", str(d), "--no-generated", "--out", str(out),
                                  "--store", str(tmp_path / "s.sqlite"), "--kind", "tree"])
    assert r.exit_code == 0, r.output
    assert "failed 1" in r.output and out.exists()
    assert TreeModel(json.loads(out.read_text())).classes


def test_rule_with_profile_is_the_default(records, tmp_path, monkeypatch):
    """auto/profile use the bottleneck rule (the cross-validation winner), not the model."""
    monkeypatch.setenv("SPMVTUNE_CACHE_DIR", str(tmp_path))
    fit_model(records, ORDER, kind="tree").save(model_mod.user_model_path())
    A = family_matrix("power_law")
    for mode in ("auto", "profile"):
        op = spmvtune.select_kernel(A, mode=mode, threads=2, cache=False)
        assert "rule" in op.selection_source or "timed" in op.selection_source
    op = spmvtune.select_kernel(A, mode="features", threads=2, cache=False)
    assert "model" in op.selection_source or "timed" in op.selection_source
