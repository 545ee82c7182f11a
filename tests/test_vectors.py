"""Many right-hand sides through the stack: selection for k vectors, the cost
model's k terms and keys, the sparse/dense crossover, analyze, bench and train."""
import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

import spmvtune
from spmvtune import costmodel, generate
from spmvtune.cli import main
from spmvtune.features import structural_features, vector_features
from spmvtune.pool import get_kernel, kernel_specs
from test_spmm import assert_matches_many
from fake_machine import fake_machine
from reference import assert_matches

MANY = {s.name for s in kernel_specs() if s.serves(8)}


@pytest.fixture(scope="module")
def layer():
    return generate.pruned_blocks(256, 384, 0.8, block=(4, 1), seed=2)


@pytest.mark.parametrize("mode", ["auto", "predicted", "exhaustive", "profile", "features"])
def test_selection_for_k_vectors(layer, mode):
    op = spmvtune.select_kernel(layer, n_vectors=8, mode=mode, threads=2, cache=False)
    assert op.kernel in MANY and op.n_vectors == 8
    X = np.random.default_rng(0).uniform(-1, 1, (layer.shape[1], 8))
    assert_matches_many(op(X), layer, X, mode)
    x = X[:, 1].copy()
    assert_matches(op(x), layer, x, mode + " (one vector)")
    assert op.predicted_speedup is None or op.predicted_speedup > 0


def test_one_vector_selection_keeps_the_single_vector_pool(layer):
    for mode in ("auto", "exhaustive"):
        op = spmvtune.select_kernel(layer, mode=mode, threads=2, cache=False)
        assert get_kernel(op.kernel).min_vectors == 1 and op.n_vectors == 1


def test_decisions_for_k_vectors_are_cached_apart(layer):
    op8 = spmvtune.select_kernel(layer, n_vectors=8, threads=2, mode="predicted")
    again = spmvtune.select_kernel(layer, n_vectors=8, threads=2, mode="predicted")
    assert again.selection_source == "cache" and again.kernel == op8.kernel
    one = spmvtune.select_kernel(layer, threads=2, mode="predicted")
    assert one.selection_source != "cache" and get_kernel(one.kernel).serves(1)


def test_few_expected_calls_take_the_many_vector_baseline(layer):
    op = spmvtune.select_kernel(layer, n_vectors=16, expected_calls=3, cache=False)
    assert op.kernel == "spmm_csr" and op.break_even_calls == 0.0


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "8"])
def test_n_vectors_is_checked(layer, bad):
    with pytest.raises(ValueError, match="n_vectors"):
        spmvtune.select_kernel(layer, n_vectors=bad)


# ---- cost model --------------------------------------------------------------------

def test_keys_carry_a_power_of_two_k_bucket():
    assert costmodel.pair_key("spmm_csr", 2) == "spmm_csr@2"
    assert costmodel.pair_key("spmm_csr", 2, 1) == "spmm_csr@2"
    assert [costmodel.k_bucket(k) for k in (1, 2, 3, 6, 8, 11, 64, 100, 5000)] == \
        [1, 2, 4, 8, 8, 8, 64, 128, 256]
    assert costmodel.parse_key("spmm_csr@2@k64") == ("spmm_csr", 2, 64)
    assert costmodel.parse_key("csr_balanced@1") == ("csr_balanced", 1, 1)
    assert costmodel.split_key("spmm_csr@2@k64") == ("spmm_csr", 2)
    for bad in ("spmm_csr", "spmm_csr@x", "spmm_csr@2@8", "spmm_csr@2@kx", "@2"):
        with pytest.raises(ValueError):
            costmodel.parse_key(bad)


def test_model_documents_with_k_keys_load_and_are_checked():
    doc = costmodel.CostModel({"spmm_csr@2@k8": [1, 1, 2, 1, 0.1, 0.1],
                               "csr_balanced@2": [1] * 6}).to_doc()
    model = costmodel.CostModel.from_doc(json.loads(json.dumps(doc)))
    assert set(model.coef) == {"spmm_csr@2@k8", "csr_balanced@2"}
    spec = get_kernel("spmm_csr")
    assert list(model.coefficients(spec, 2, 8)) == [1, 1, 2, 1, 0.1, 0.1]
    assert list(model.coefficients(spec, 2, 9)) == [1, 1, 2, 1, 0.1, 0.1]       # same bucket
    assert list(model.coefficients(spec, 2, 64)) == list(costmodel.PRIOR_MANY)  # no fit: prior
    bad = dict(doc, coef={"spmm_csr@2@k7": [1] * 6})
    with pytest.raises(ValueError, match="power of two"):
        costmodel.CostModel.from_doc(bad)


def test_terms_scale_with_k(layer):
    machine = fake_machine()
    f = structural_features(layer, caches=machine.caches)
    f.update(vector_features(layer))
    spec = get_kernel("spmm_csr")
    t1, t8, t64 = (costmodel.terms(spec, f, 2, machine, 2, k) for k in (1, 8, 64))
    assert t8[2] > t1[2] and t64[2] > t8[2]               # multiply-adds grow with k
    assert t64[2] < 64 * t1[2] * 1.01                     # ... at a faster (vector) rate
    dense = get_kernel("dense_mm")
    d8, d64 = (costmodel.terms(dense, f, 2, machine, 2, k) for k in (8, 64))
    assert d8[4] == d8[5] == 0.0                          # gemm streams X: no latency terms
    assert d64[2] / d8[2] < 8                             # BLAS's rate rises with k


def test_fit_learns_coefficients_per_k(monkeypatch):
    machine = fake_machine()
    monkeypatch.setattr(costmodel, "MIN_SAMPLES", 3)
    records = []
    for i, n in enumerate((200, 300, 400, 500)):
        A = generate.pruned_unstructured(n, n, 0.9, seed=i)
        f = structural_features(A, caches=machine.caches)
        f.update(vector_features(A))
        t = {"spmm_csr@2@k8": 1e-9 * A.nnz * 8, "csr_balanced@2": 2e-9 * A.nnz}
        records.append({"features": f, "times": t, "setup": {}})
    model = costmodel.fit(records, machine, kernel_specs(), 2)
    assert set(model.coef) == {"spmm_csr@2@k8", "csr_balanced@2"}
    spec = get_kernel("spmm_csr")
    for rec in records:
        pred = model.predict(spec, rec["features"], 2, machine, 2, 8)
        assert abs(pred / rec["times"]["spmm_csr@2@k8"] - 1) < 0.3


# ---- crossover ---------------------------------------------------------------------

def test_features_at_density_scale_the_counts(layer):
    from spmvtune.crossover import features_at_density
    f = structural_features(layer)
    g = features_at_density(f, 2 * f["density"])
    assert math.isclose(g["nnz"], 2 * f["nnz"], rel_tol=1e-9)
    assert math.isclose(g["row_mean"], 2 * f["row_mean"], rel_tol=1e-9)
    assert g["rows"] == f["rows"] and g["cols"] == f["cols"]
    assert g["x_lines_per_nnz"] <= f["x_lines_per_nnz"] * 1.0001


def test_block_fill_at_another_density_follows_a_random_pattern():
    """A magnitude-pruned layer's r x 1 blocks fill up as it gets denser: the
    rescaled fill matches the fill measured on the layer pruned that far."""
    from spmvtune.crossover import features_at_density
    sparse_f = structural_features(generate.pruned_unstructured(1024, 1024, 0.9))
    sparse_f.update(vector_features(generate.pruned_unstructured(1024, 1024, 0.9)))
    dense_layer = generate.pruned_unstructured(1024, 1024, 0.3)
    measured = vector_features(dense_layer)
    g = features_at_density(sparse_f, 0.7)
    assert measured["spmm_bcsr_r"] >= 2 and sparse_f["spmm_bcsr_fill"] > 1.5
    assert abs(g["spmm_bcsr_fill"] / measured["spmm_bcsr_fill"] - 1) < 0.15
    assert g["bcsr_fill"] >= 1.0
    # full blocks (block pruning) stay full
    full = dict(sparse_f, spmm_bcsr_fill=1.0)
    assert features_at_density(full, 0.7)["spmm_bcsr_fill"] == 1.0


def test_predicted_crossover_rises_with_the_dense_advantage(layer):
    from spmvtune.crossover import predicted_crossover
    machine = fake_machine()
    f = structural_features(layer, caches=machine.caches)
    f.update(vector_features(layer))
    out = {k: predicted_crossover(f, k, 2, machine, costmodel.CostModel()) for k in (1, 8, 64)}
    for k, x in out.items():
        assert x["dense_kernel"] == ("dense_gemv" if k == 1 else "dense_mm")
        assert x["density"] is None or 1e-4 < x["density"] < 1.0
        assert x["here"] in ("sparse", "dense")
    d = [out[k]["density"] or 1.0 for k in (1, 64)]
    assert d[1] <= d[0] * 1.5                  # gemm's rate grows with k: dense wins earlier


def test_a_full_matrix_has_a_crossover_too():
    """Every entry stored (density 1): no x line is new from one row to the
    next, which once divided by zero in analyze, bench and train."""
    from spmvtune.crossover import features_at_density, predicted_crossover
    full = sp.csr_array(np.arange(1.0, 4097.0).reshape(64, 64))
    machine = fake_machine()
    f = structural_features(full, caches=machine.caches)
    assert f["density"] == 1.0
    assert features_at_density(f, 0.5)["x_lines_per_nnz"] == f["x_lines_per_nnz"]
    out = predicted_crossover(f, 1, 2, machine, costmodel.CostModel())
    assert out["here"] in ("sparse", "dense")


def test_crossing_interpolates_in_log_density():
    from spmvtune.crossover import crossing
    pts = [{"density": d, "sparse_seconds": s, "dense_seconds": 1.0}
           for d, s in ((0.1, 0.5), (0.4, 2.0))]
    assert math.isclose(crossing(pts)["density"], 0.2, rel_tol=1e-9)
    assert crossing(pts[:1]) == {"density": None, "wins": "sparse"}
    assert crossing([dict(pts[1])]) == {"density": None, "wins": "dense"}


def test_measured_crossover_times_both_sides():
    from spmvtune.crossover import measure_crossover
    r = measure_crossover(96, 128, 4, 2, densities=(0.05, 0.6), repeats=1, batch_seconds=1e-4)
    assert [p["density"] for p in r["points"]] == [0.05, 0.6]
    assert all(p["sparse_seconds"] > 0 and p["dense_seconds"] > 0 for p in r["points"])
    assert all(get_kernel(p["sparse_kernel"]).serves(4) for p in r["points"])
    assert r["density"] is None or 0.05 <= r["density"] <= 0.6


def test_analyze_reports_the_crossover_for_k(tmp_path, layer, monkeypatch):
    import scipy.sparse as sp

    from spmvtune import crossover
    real = crossover.measure_crossover
    monkeypatch.setattr(crossover, "measure_crossover",
                        lambda m, n, k, threads: real(m, n, k, threads, densities=(0.1, 0.5),
                                                      repeats=1, batch_seconds=1e-4))
    path = tmp_path / "layer.npz"
    sp.save_npz(path, layer)
    r = CliRunner().invoke(main, ["analyze", str(path), "--vectors", "8", "--no-profile",
                                  "--json"])
    assert r.exit_code == 0, r.output
    x = json.loads(r.output)["crossover"]
    assert x["n_vectors"] == 8 and x["best_kernel"] in MANY and x["dense_kernel"] == "dense_mm"
    r = CliRunner().invoke(main, ["analyze", str(path), "--vectors", "8", "--no-profile",
                                  "--measure-crossover"])
    assert r.exit_code == 0, r.output
    assert "Y = A X, 8 vectors" in r.output and "sparse/dense" in r.output
    assert "measured" in r.output
    r = CliRunner().invoke(main, ["analyze", str(path), "--vectors", "0"])
    assert r.exit_code == 2


# ---- bench and train ------------------------------------------------------------------

def test_bench_measures_each_k(tmp_path, layer):
    import scipy.sparse as sp
    sp.save_npz(tmp_path / "layer.npz", layer)
    out = tmp_path / "out"
    args = ["bench", str(tmp_path / "layer.npz"), "--vectors", "1,4", "--no-mkl", "--repeats", "2",
            "--threads", "2", "--out", str(out), "--json"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    rows = {row.get("vectors", 1): row for row in doc["rows"]}
    assert set(rows) == {1, 4}
    assert rows[4]["matrix"].endswith("#k4") and rows[4]["selected_kernel"] in MANY
    assert {"scipy", "selected", "baseline", "dense"} <= set(rows[4]["seconds"])
    assert "dense" in rows[1]["seconds"]
    assert set(doc["summary"]["by_vectors"]) == {"1", "4"}          # JSON keys
    assert doc["summary"]["speedup_vs_best_peer"] is not None
    r = CliRunner().invoke(main, args)                     # a rerun finds both rows done
    assert r.exit_code == 0 and len(json.loads(r.output)["rows"]) == 2
    r = CliRunner().invoke(main, ["bench", str(tmp_path / "layer.npz"), "--vectors", "1,x"])
    assert r.exit_code == 2 and "--vectors" in r.output


def test_train_measures_missing_k_and_merges(tmp_path, layer):
    from spmvtune.train import ResultsStore, sweep
    store = ResultsStore(tmp_path / "t.sqlite")
    items = [("layer", "pruned", lambda: layer)]
    timing = {"repeats": 1, "batch_seconds": 1e-4}
    assert sweep(items, store, 2, timing=dict(timing, vectors=(1,))) == (1, 0, 0)
    first = store.get("layer")
    assert first["vectors"] == [1] and all(key.count("@") == 1 for key in first["times"])
    assert sweep(items, store, 2, timing=dict(timing, vectors=(1,))) == (0, 1, 0)
    assert sweep(items, store, 2, timing=dict(timing, vectors=(1, 4))) == (1, 0, 0)
    rec = store.get("layer")
    assert rec["vectors"] == [1, 4]
    k4 = {key for key in rec["times"] if key.endswith("@k4")}
    assert {"spmm_csr@2@k4", "spmm_csr@1@k4"} <= k4
    assert all(costmodel.parse_key(key)[0] in MANY for key in k4)
    assert set(first["times"]) <= set(rec["times"]) and "spmm_bcsr_fill" in rec["features"]
    assert rec["profile"] == first["profile"]              # k = 1 was not measured again
