"""The per-kernel cost model: its terms, its ranking on injected numbers, the
thread choice, fitting, and safe persistence."""
import json
import warnings

import numpy as np
import pytest

from spmvtune import costmodel, generate
from spmvtune.costmodel import TERMS, CostModel, fit, load_cost_model, terms
from spmvtune.features import cheap_features, structural_features
from spmvtune.pool import get_kernel, kernel_specs
from fake_machine import fake_machine

MACHINE = fake_machine()


def feats(A, threads=2):
    return structural_features(A, caches=MACHINE.caches, threads=threads)


def test_terms_have_their_physical_meaning():
    A = generate.random_scatter(4000, 8, seed=1)
    f = feats(A)
    base = get_kernel("csr_balanced")
    t1, t2 = terms(base, f, 1, MACHINE), terms(base, f, 2, MACHINE)
    assert len(t1) == len(TERMS) and (t1 >= 0).all()
    assert t2[0] > t1[0]                                # the thread launch
    assert t1[1] == 0.0                                  # in cache: nothing streamed from memory
    assert t1[2] == pytest.approx(2 * A.nnz / (MACHINE.incache_rate(1) * 1e9))
    assert t2[2] == pytest.approx(f["imbalance_nnz"] * 2 * A.nnz / (MACHINE.incache_rate(2) * 1e9))


def test_out_of_cache_bytes_come_from_the_kernel_spec():
    f = {**cheap_features(generate.banded(200, 2), MACHINE.caches), "rows": 4e6, "cols": 4e6,
         "nnz": 1e8, "bcsr_bytes": 3e8, "bcsr_fill": 1.0, "distinct_values": 2.0,
         "symmetric": 1.0}
    stream = {k: terms(get_kernel(k), f, 2, MACHINE)[1] for k in ("csr_balanced", "bcsr", "csr_sym")}
    ws = {k: get_kernel(k).storage(f) + 8 * (f["rows"] + f["cols"]) for k in stream}
    for k in stream:
        assert stream[k] == pytest.approx(ws[k] / (MACHINE.bandwidth(2) * 1e9))
    assert stream["bcsr"] < stream["csr_sym"] < stream["csr_balanced"]


def test_model_ranks_by_injected_coefficients():
    """With injected coefficients the ranking follows them exactly."""
    f = feats(generate.banded(3000, 3))
    specs = [get_kernel(k) for k in ("csr_balanced", "csr_unroll4", "csr_prefetch")]
    unit = np.zeros(len(TERMS))
    unit[2] = 1.0                                         # time = the compute term
    model = CostModel({"csr_balanced@1": 3 * unit, "csr_balanced@2": 3 * unit,
                       "csr_unroll4@1": 1 * unit, "csr_unroll4@2": 5 * unit,
                       "csr_prefetch@1": 2 * unit, "csr_prefetch@2": 9 * unit})
    ranked = model.rank(f, MACHINE, specs, [1, 2])
    # compute term: 2 nnz / rate(T), rate(2) = 2 rate(1) on the fake machine
    assert [(k, t) for _, k, t in ranked] == [("csr_unroll4", 1), ("csr_balanced", 2),
                                              ("csr_prefetch", 1), ("csr_unroll4", 2),
                                              ("csr_balanced", 1), ("csr_prefetch", 2)]


def test_rank_leaves_out_kernels_that_do_not_apply():
    f = feats(generate.random_scatter(20_000, 6))         # general, 120k distinct values
    ranked = CostModel().rank(f, MACHINE, kernel_specs(), [1, 2])
    names = {k for _, k, _ in ranked}
    assert "csr_sym" not in names and "csr_vi" not in names and "dense_gemv" not in names
    assert {"csr_balanced", "csr_unroll4", "csr_split"} <= names
    assert all(t == 1 for _, k, t in ranked if k == "csr_serial")


def test_thread_choice_follows_size_and_launch_cost():
    model = CostModel()
    base = get_kernel("csr_balanced")
    tiny = feats(generate.banded(100, 1))
    big = {**cheap_features(generate.banded(200, 2), MACHINE.caches), "rows": 2e6, "cols": 2e6,
           "nnz": 2e7, "imbalance_nnz": 1.0, "imbalance_rows": 1.0}
    assert model.predict(base, tiny, 1, MACHINE) < model.predict(base, tiny, 2, MACHINE)
    assert model.predict(base, big, 2, MACHINE) < model.predict(base, big, 1, MACHINE)


def test_imbalance_makes_row_kernels_lose_to_split():
    A = generate.dominant_row(20_000, 6, share=0.7)
    f = feats(A)
    assert f["imbalance_nnz"] > 1.3
    model = CostModel()
    assert (model.predict(get_kernel("csr_split"), f, 2, MACHINE)
            < model.predict(get_kernel("csr_balanced"), f, 2, MACHINE))


def _synthetic_records(theta_by_pair, n=40, seed=0):
    """Records whose times follow known coefficients exactly (up to 1% noise)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        A = generate.random_scatter(int(rng.integers(200, 3000)), int(rng.integers(2, 12)),
                                    seed=i)
        f = feats(A)
        times = {}
        for key, theta in theta_by_pair.items():
            kernel, T = costmodel.split_key(key)
            times[key] = float(theta @ terms(get_kernel(kernel), f, T, MACHINE)) * rng.uniform(0.99, 1.01)
        out.append({"features": f, "times": times,
                    "setup": {k: 1e-4 + 1e-8 * f["nnz"] for k in theta_by_pair}})
    return out


def test_fit_recovers_the_ranking_of_known_costs():
    theta = {"csr_balanced@1": np.array([1.0, 1, 1.0, 0.5, 0.2, 0.2]),
             "csr_unroll4@1": np.array([1.0, 1, 0.6, 0.5, 0.2, 0.2]),
             "csr_balanced@2": np.array([2.0, 1, 1.1, 0.5, 0.2, 0.2])}
    train, test = _synthetic_records(theta, 40, 0), _synthetic_records(theta, 10, 1)
    model = fit(train, MACHINE, kernel_specs())
    assert set(model.coef) == set(theta)
    assert max(model.error.values()) < 0.03
    specs = [get_kernel("csr_balanced"), get_kernel("csr_unroll4")]
    for rec in test:
        want = min(rec["times"], key=rec["times"].get)
        got = next(f"{k}@{t}" for _, k, t in model.rank(rec["features"], MACHINE, specs, [1, 2])
                   if f"{k}@{t}" in theta)
        assert rec["times"][got] <= rec["times"][want] * 1.03


def test_json_round_trip_and_validation(tmp_path):
    theta = {"csr_balanced@1": np.array([1.0, 1, 1.0, 0.5, 0.2, 0.2])}
    model = fit(_synthetic_records(theta, 12), MACHINE, kernel_specs())
    path = tmp_path / "cm.json"
    model.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # trained here: no warning
        back = load_cost_model(path)
    assert back.coef.keys() == model.coef.keys()
    np.testing.assert_allclose(back.coef["csr_balanced@1"], model.coef["csr_balanced@1"])
    doc = json.loads(path.read_text())
    for bad in ({**doc, "format": "pickle"}, {**doc, "terms": ["x"]},
                {**doc, "coef": {"csr_balanced@1": [1, 2]}},
                {**doc, "coef": {"csr_balanced@1": [1, 1, 1, 1, 1, -1]}},
                {**doc, "coef": {"csr_balanced@0": [1] * 6}},
                {**doc, "coef": {"csr_balanced@1": ["1"] * 6}},
                {**doc, "coef": []}):
        with pytest.raises(ValueError):
            CostModel.from_doc(bad)
    # coefficients of kernels this version does not have are ignored
    assert "gone@1" not in CostModel.from_doc({**doc, "coef": {**doc["coef"], "gone@1": [1] * 6}}).coef
    doc["machine"] = "elsewhere"
    path.write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match="another machine"):
        load_cost_model(path)


def test_oversized_or_garbage_model_file_is_refused(tmp_path):
    big = tmp_path / "big.json"
    big.write_text(" " * (costmodel.MAX_MODEL_BYTES + 1))
    with pytest.raises(ValueError, match="too large"):
        load_cost_model(big)
    junk = tmp_path / "junk.json"
    junk.write_bytes(b"\xff\xfe not json")
    with pytest.raises(ValueError, match="not JSON"):
        load_cost_model(junk)
