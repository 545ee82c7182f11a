"""Pruned weight matrices: the generators of spmvtune.generate and dense
.npy weights sparsified on load."""
import numpy as np
import pytest
import scipy.sparse as sp

import spmvtune
from spmvtune import generate as g
from spmvtune.io import MatrixFormatError, MatrixTooLargeError


def canonical(A, dtype=np.float64):
    A.check_format(full_check=True)
    assert A.has_canonical_format and A.dtype == dtype
    return A


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.99])
def test_unstructured_pruning_keeps_the_largest_weights(sparsity):
    A = canonical(g.pruned_unstructured(300, 500, sparsity, seed=1))
    assert A.shape == (300, 500)
    assert abs(A.nnz / (300 * 500) - (1 - sparsity)) < 0.02
    lengths = np.diff(A.indptr)
    assert lengths.std() > 0                            # neurons differ, as in trained layers
    assert (g.pruned_unstructured(300, 500, sparsity, seed=1) != A).nnz == 0   # seeded
    assert (g.pruned_unstructured(300, 500, sparsity, seed=2) != A).nnz > 0


@pytest.mark.parametrize("block", [(4, 4), (1, 8), (8, 1), (2, 2)])
def test_block_pruning_keeps_whole_tiles(block):
    br, bc = block
    A = canonical(g.pruned_blocks(64, 96, 0.75, block=block, seed=3))
    tiles = (A.toarray() != 0).reshape(64 // br, br, 96 // bc, bc).transpose(0, 2, 1, 3)
    full = tiles.all(axis=(2, 3))
    assert (full | ~tiles.any(axis=(2, 3))).all()       # every tile all or nothing
    assert abs(full.mean() - 0.25) < 0.03


def test_block_pruning_of_a_shape_that_is_not_a_multiple_of_the_block():
    A = canonical(g.pruned_blocks(30, 45, 0.5, block=(4, 4), seed=0))
    assert A.shape == (30, 45) and A.nnz > 0


def test_two_of_four_structured_sparsity():
    A = canonical(g.pruned_nm(16, 40, 2, 4, seed=0))
    kept = (A.toarray() != 0).reshape(16, 10, 4).sum(axis=2)
    assert (kept == 2).all()
    B = canonical(g.pruned_nm(8, 10, 2, 4))              # a last run of two keeps both
    assert ((B.toarray() != 0)[:, 8:]).all()
    assert A.nnz == 16 * 20


def test_channel_pruning_empties_rows_and_columns():
    A = canonical(g.pruned_channels(200, 100, keep_rows=0.25, keep_cols=0.5, sparsity=0.5, seed=4))
    rows = np.diff(A.indptr) > 0
    cols = np.bincount(A.indices, minlength=100) > 0
    assert rows.sum() <= 50 and cols.sum() <= 50
    assert rows.sum() > 40 and cols.sum() > 40
    assert abs(A.nnz / (50 * 50) - 0.5) < 0.05


@pytest.mark.parametrize("levels", [16, 256])
def test_quantized_weights_have_few_values_and_no_zeros(levels):
    A = canonical(g.pruned_unstructured(200, 300, 0.8, seed=5, levels=levels))
    values = np.unique(A.data)
    assert len(values) <= levels and (values != 0).all()
    assert len(values) > levels // 2
    B = g.pruned_unstructured(200, 300, 0.8, seed=5)
    assert (A != 0).nnz == B.nnz and np.all(np.sign(A.data) == np.sign(B.data))


def test_generator_arguments_are_checked():
    for call, msg in ((lambda: g.pruned_unstructured(10, 10, 1.0), "sparsity"),
                      (lambda: g.pruned_blocks(10, 10, -0.1), "sparsity"),
                      (lambda: g.pruned_blocks(10, 10, 0.5, block=(0, 4)), "block"),
                      (lambda: g.pruned_nm(10, 10, 5, 4), "keep"),
                      (lambda: g.pruned_channels(10, 10, keep_rows=0.0), "keep_rows"),
                      (lambda: g.quantize(sp.eye_array(3, format="csr"), 3), "levels")):
        with pytest.raises(ValueError, match=msg):
            call()


def test_the_pruned_suite_holds_real_layer_sizes():
    from spmvtune.bench.items import SUITE_VECTORS, SUITES, suite_items, with_vectors
    assert all(description for _, description in SUITES["pruned"].values())
    assert SUITE_VECTORS["pruned"] == (1, 8, 64)
    assert "vgg_fc6_unstructured_95" in SUITES["pruned"] and len(SUITES["pruned"]) >= 10
    items = with_vectors(suite_items("pruned"), (1, 8))
    assert len(items) == 2 * len(SUITES["pruned"])
    assert {i.vectors for i in items} == {1, 8}
    assert len({i.key for i in items}) == len(items)
    assert items[0].key == "suite:pruned/fc_4096_unstructured_90" and items[1].key.endswith("#k8")


# ---- dense weights in .npy files -------------------------------------------------------

@pytest.fixture
def weights(tmp_path):
    W = np.random.default_rng(0).standard_normal((120, 70))
    W[np.abs(W) < 0.8] = 0.0
    path = tmp_path / "w.npy"
    np.save(path, W)
    return path, W


def test_npy_weights_load_as_csr(weights):
    path, W = weights
    A = canonical(spmvtune.load(path))
    assert np.array_equal(A.toarray(), W)
    assert A.info.source == str(path) and A.info.stored_entries == W.size
    B = canonical(spmvtune.load(path, threshold=1.5))
    assert np.array_equal(B.toarray(), np.where(np.abs(W) > 1.5, W, 0.0))


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8, bool])
def test_npy_weights_of_other_real_types_and_orders(tmp_path, weights, dtype):
    _, W = weights
    V = np.asfortranarray((W * 10).astype(dtype))
    np.save(tmp_path / "v.npy", V)
    kept = np.float32 if np.dtype(dtype) == np.float32 else np.float64   # value types are kept
    A = canonical(spmvtune.load(tmp_path / "v.npy"), kept)
    assert np.array_equal(A.toarray(), V.astype(kept))


def test_npy_chunks_cover_every_row(tmp_path, monkeypatch):
    from spmvtune import io
    monkeypatch.setattr(io, "_NPY_CHUNK", 7)            # rows read one at a time
    W = np.random.default_rng(1).standard_normal((13, 5))
    W[W < 0] = 0
    np.save(tmp_path / "c.npy", W)
    assert np.array_equal(spmvtune.load(tmp_path / "c.npy").toarray(), W)


def test_bad_npy_files_name_the_file_and_the_problem(tmp_path, weights):
    path, W = weights
    cases = {}
    np.save(tmp_path / "obj.npy", np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    cases["obj.npy"] = "Python objects"
    (tmp_path / "trunc.npy").write_bytes(path.read_bytes()[:500])
    cases["trunc.npy"] = "ends early"
    (tmp_path / "junk.npy").write_bytes(b"definitely not numpy")
    cases["junk.npy"] = "not a NumPy .npy file"
    bad = W.copy()
    bad[7, 3] = np.inf
    np.save(tmp_path / "inf.npy", bad)
    cases["inf.npy"] = "non-finite weight inf at row 7, column 3"
    np.save(tmp_path / "vec.npy", np.ones(4))
    cases["vec.npy"] = r"2-D weight matrix, got shape \(4,\)"
    np.save(tmp_path / "cube.npy", np.ones((2, 2, 2)))
    cases["cube.npy"] = "2-D"
    np.save(tmp_path / "str.npy", np.array([["a"]]))
    cases["str.npy"] = "expected numbers"
    for name, msg in cases.items():
        with pytest.raises(MatrixFormatError, match=msg) as err:
            spmvtune.load(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name))
    with pytest.raises(MatrixTooLargeError, match="entries above the threshold"):
        spmvtune.load(path, max_bytes=1000)
    for t in (-1, float("nan"), "x"):
        with pytest.raises(ValueError, match="threshold"):
            spmvtune.load(path, threshold=t)


def test_threshold_prunes_sparse_formats_too(tmp_path):
    A = sp.csr_array(np.array([[0.5, -2.0, 0.0], [0.0, 0.1, 3.0]]))
    sp.save_npz(tmp_path / "a.npz", A)
    B = canonical(spmvtune.load(tmp_path / "a.npz", threshold=0.5))
    assert np.array_equal(B.toarray(), [[0, -2.0, 0], [0, 0, 3.0]])
    assert spmvtune.load(tmp_path / "a.npz").nnz == 4        # no threshold: all kept


def test_cli_reads_npy_weights_with_a_threshold(weights):
    from click.testing import CliRunner

    from spmvtune.cli import main
    path, W = weights
    r = CliRunner().invoke(main, ["analyze", str(path), "--no-profile", "--threshold", "1.5",
                                  "--json"])
    assert r.exit_code == 0, r.output
    import json
    assert json.loads(r.output)["nnz"] == int((np.abs(W) > 1.5).sum())
    r = CliRunner().invoke(main, ["analyze", str(path), "--threshold", "-1"])
    assert r.exit_code == 2 and "threshold" in r.output.lower()
