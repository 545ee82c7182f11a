"""Hostile input past the loader (issue 11): the operator, the tuning cache, the
symmetric kernel, user models, emitted C and the command line's errors."""
import json
import sqlite3
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

import spmvtune
from spmvtune import generate
from spmvtune.cli import main
from spmvtune.tuning_cache import TuningCache, decision_key
from spmvtune.validate import as_canonical_csr
from conftest import family_matrix

BUNDLED_LAPLACE = "matrices/laplace2d_40.mtx"


# -- the operator ------------------------------------------------------------------

def test_out_aliasing_x_is_refused():
    A = generate.laplacian_2d(10)
    op = spmvtune.select_kernel(A, kernel="csr_balanced", threads=1)
    x = np.arange(A.shape[1], dtype=float)
    with pytest.raises(ValueError, match="must not share memory with x"):
        op.matvec(x, out=x)
    buf = np.zeros(2 * A.shape[0])
    with pytest.raises(ValueError, match="share memory"):
        op.matvec(buf[:A.shape[1]], out=buf[A.shape[0] // 2:A.shape[0] // 2 + A.shape[0]])
    y = op.matvec(x, out=np.empty(A.shape[0]))
    np.testing.assert_allclose(y, A @ x)


# -- the tuning cache ------------------------------------------------------------------

@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPMVTUNE_CACHE_DIR", str(tmp_path / "cache"))
    return TuningCache()


@pytest.mark.parametrize("edit", [
    {"threads": 0}, {"threads": 999}, {"threads": "2"}, {"threads": True},
    {"kernel": "csr_nonexistent"}, {"kernel": None},
    {"options": {"distance": -5}}, {"options": {"nope": 1}}, {"options": "x"},
    {"bottlenecks": ["XYZ"]}, {"predicted_speedup": float("nan")},
    {"predicted_speedup": "fast"},
])
def test_an_invalid_cached_decision_is_dropped_and_made_again(cache, edit):
    A = family_matrix("random")
    spmvtune.select_kernel(A, threads=2, mode="profile")
    key = decision_key(as_canonical_csr(A), 2, "profile")
    good = cache.get(key)
    assert good is not None
    bad = {**good, "kernel": "csr_prefetch", **edit} if "options" in edit else {**good, **edit}
    cache.put(key, bad)
    with pytest.warns(UserWarning, match="dropped an invalid decision"):
        op = spmvtune.select_kernel(A, threads=2, mode="profile")
    assert op.selection_source != "cache" and 1 <= op.threads <= 2
    x = np.ones(A.shape[1])
    np.testing.assert_allclose(op(x), A @ x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # made again and stored: a clean hit now
        assert spmvtune.select_kernel(A, threads=2, mode="profile").selection_source == "cache"


def test_a_cached_row_that_is_not_json_is_dropped(cache):
    A = family_matrix("random")
    spmvtune.select_kernel(A, threads=2, mode="profile")
    with sqlite3.connect(cache.path) as con:
        con.execute("UPDATE decisions SET decision = '{not json'")
    with pytest.warns(UserWarning, match="not JSON"):
        spmvtune.select_kernel(A, threads=2, mode="profile")


# -- the symmetric kernel ------------------------------------------------------------

def test_csr_sym_verifies_symmetry_instead_of_trusting_the_file(tmp_path):
    B = generate.laplacian_2d(6)
    p = tmp_path / "lap.mtx"
    import scipy.io
    scipy.io.mmwrite(p, sp.tril(B).tocoo(), symmetry="symmetric")
    A = spmvtune.load(p)
    assert A.info.symmetry == "symmetric"
    A[0, 1] = 0.0                              # a Dirichlet row: symmetric no more
    A[0, 0] = 1.0
    with pytest.raises(spmvtune.KernelUnusable, match="not symmetric.*changed since"):
        spmvtune.select_kernel(A, kernel="csr_sym")
    op = spmvtune.select_kernel(A, threads=1, cache=False)     # selection falls back
    x = np.random.default_rng(0).uniform(size=A.shape[1])
    np.testing.assert_allclose(op(x), A @ x, rtol=1e-12)


# -- user models -----------------------------------------------------------------------

def _model_doc():
    from spmvtune.model import default_model_path
    return json.loads(default_model_path().read_text())


def _cyclic(doc):
    """The root's left child made an inner node whose children are the root."""
    t = doc["trees"][0]
    child = t["left"][0]
    t["left"][child] = t["right"][child] = 0
    t["feature"][child], t["threshold"][child] = 0, 0.5
    return doc


@pytest.mark.parametrize("break_it,words", [
    (_cyclic, "after its parent"),
    (lambda d: d["trees"][0].update(value=d["trees"][0]["value"][:-1]) or d, "value must be"),
    (lambda d: d["trees"][0].update(feature=[99] * len(d["trees"][0]["feature"])) or d,
     "feature that does not exist"),
    (lambda d: d["trees"][0].pop("threshold") and d, "needs left"),
    (lambda d: d.update(features=d["features"][:-1] + ["bogus"]) or d, "features must be"),
    (lambda d: d.update(classes=d["classes"][:-1] + ["csr_gone"]) or d, "classes must be"),
    (lambda d: d.update(trees=d["trees"] * 20) or d, "trees"),
    (lambda d: d["trees"][0].update(left=[1] * 3) or d, "one length"),
    (lambda d: d.update(class_speedup={"csr_vi": "fast"}) or d, "class_speedup"),
])
def test_a_malformed_user_model_is_refused_on_load(tmp_path, monkeypatch, break_it, words):
    from spmvtune import model as model_mod
    doc = break_it(_model_doc())
    path = tmp_path / "model.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=words):
        model_mod.load_model(path)
    # select_kernel(mode="features") ignores it with a warning and uses the shipped one
    monkeypatch.setattr(model_mod, "user_model_path", lambda: path)
    model_mod._CACHE.clear()
    A = family_matrix("random")
    with pytest.warns(UserWarning, match="ignoring unreadable model"):
        op = spmvtune.select_kernel(A, mode="features", cache=False, threads=2)
    assert op.kernel in spmvtune.kernel_names()


def test_a_huge_or_deep_model_file_is_refused(tmp_path):
    from spmvtune.model import load_model
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="not"):
        load_model(deep)
