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
    with pytest.warns(UserWarning, match="dropping an invalid decision"):
        op = spmvtune.select_kernel(A, threads=2, mode="profile")
    assert op.selection_source != "cache" and 1 <= op.threads <= 2
    x = np.ones(A.shape[1])
    np.testing.assert_allclose(op(x), A @ x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # made again and stored: a clean hit now
        assert spmvtune.select_kernel(A, threads=2, mode="profile").selection_source == "cache"


def test_a_cached_row_that_is_not_json_is_made_again(cache):
    A = family_matrix("random")
    spmvtune.select_kernel(A, threads=2, mode="profile")
    with sqlite3.connect(cache.path) as con:
        con.execute("UPDATE decisions SET decision = '{not json'")
    assert spmvtune.select_kernel(A, threads=2, mode="profile").selection_source != "cache"
    assert spmvtune.select_kernel(A, threads=2, mode="profile").selection_source == "cache"


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


def test_the_transpose_verifies_symmetry_instead_of_trusting_the_file(tmp_path):
    """A declared-symmetric matrix was taken as its own transpose: after an edit
    in place, rmatvec (and select_kernel(transpose=True)) returned A x, not A^T x."""
    import scipy.io
    B = generate.laplacian_2d(6)
    p = tmp_path / "lap.mtx"
    scipy.io.mmwrite(p, sp.tril(B).tocoo(), symmetry="symmetric")
    A = spmvtune.load(p)
    z = np.random.default_rng(1).uniform(size=A.shape[0])
    op = spmvtune.select_kernel(A, threads=1, cache=False)
    assert op.T is op                                  # still symmetric: no copy
    A[0, 1] = 0.0                                      # a Dirichlet row: symmetric no more
    A[0, 0] = 1.0
    op = spmvtune.select_kernel(A, threads=1, cache=False)
    assert op.T is not op
    np.testing.assert_allclose(op.rmatvec(z), A.T @ z, rtol=1e-12)
    np.testing.assert_allclose(op.as_linear_operator().rmatvec(z), A.T @ z, rtol=1e-12)
    opT = spmvtune.select_kernel(A, threads=1, cache=False, transpose=True)
    np.testing.assert_allclose(opT(z), A.T @ z, rtol=1e-12)


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


# -- the command line: one line per error, JSON with --json, no traceback --------

def cli(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kw)


def one_line_error(r, code):
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("Error: ")]
    assert len(errors) == 1, r.output
    return errors[0]


@pytest.mark.parametrize("threads", ["0", "99", "-1", "two"])
@pytest.mark.parametrize("command", [["analyze", BUNDLED_LAPLACE], ["bench", BUNDLED_LAPLACE],
                                     ["emit", BUNDLED_LAPLACE], ["machine"], ["train"]])
def test_bad_thread_counts_are_one_line_usage_errors(command, threads):
    line = one_line_error(cli(*command, "--threads", threads), 2)
    assert "--threads" in line and "--help" in line


def test_errors_are_json_with_json(tmp_path):
    bad = tmp_path / "bad.mtx"
    bad.write_text("1 2 3\n")
    for args, code in ((["analyze", bad, "--json"], 1), (["analyze", BUNDLED_LAPLACE, "--json",
                                                          "--threads", "0"], 2),
                       (["bench", "--json"], 2), (["analyze", tmp_path / "nope.mtx", "--json"], 2)):
        r = cli(*args)
        assert r.exit_code == code
        doc = json.loads(r.stdout)
        assert doc["exit_code"] == code and doc["error"]
    assert str(bad) in json.loads(cli("analyze", bad, "--json").stdout)["error"]


def test_loader_and_internal_errors_are_one_line(tmp_path, monkeypatch):
    bad = tmp_path / "junk.mtx"
    bad.write_text("%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 2,5\n")
    assert f"{bad}:3: invalid value" in one_line_error(cli("analyze", bad), 1)
    from spmvtune import analysis

    def broken(*a, **kw):
        raise RuntimeError("something\nunexpected")
    monkeypatch.setattr(analysis, "analyze", broken)
    line = one_line_error(cli("analyze", BUNDLED_LAPLACE), 1)
    assert "RuntimeError: something\\nunexpected" in line and "SPMVTUNE_DEBUG" in line
    import spmvtune.io

    def no_memory(*a, **kw):
        raise MemoryError()
    monkeypatch.setattr(spmvtune.io, "load", no_memory)
    monkeypatch.setattr(spmvtune, "load", no_memory)
    assert one_line_error(cli("emit", BUNDLED_LAPLACE), 1) == "Error: out of memory"


def test_the_command_says_in_one_line_when_its_libraries_cannot_be_loaded():
    """Under a memory cap too small to map NumPy's or Numba's libraries the
    command stops before its code runs: one line (JSON with --json), no traceback."""
    import resource
    import subprocess
    import sys

    def capped():
        resource.setrlimit(resource.RLIMIT_AS, (280 << 20, 280 << 20))
    for extra in ([], ["--json"]):
        r = subprocess.run([sys.executable, "-m", "spmvtune", "machine", *extra],
                           capture_output=True, text=True, preexec_fn=capped, timeout=120)
        if r.returncode == 0:
            pytest.skip("280 MB of address space were enough here")
        out = (r.stdout if extra else r.stderr).strip()
        assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr
        assert len(out.splitlines()) == 1 and "cannot load spmvtune's libraries" in out
        if extra:
            assert json.loads(out)["exit_code"] == 1


def test_train_on_a_garbage_or_foreign_store(tmp_path):
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"\x00garbage" * 1000)
    line = one_line_error(cli("train", "--no-generated", BUNDLED_LAPLACE, "--store", garbage), 1)
    assert str(garbage) in line and "not a spmvtune training store" in line
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE results (a, b)")
    line = one_line_error(cli("train", "--no-generated", BUNDLED_LAPLACE, "--store", foreign), 1)
    assert "columns" in line


def _journal_mode(path):
    with sqlite3.connect(path) as con:
        return con.execute("PRAGMA journal_mode").fetchone()[0]


def test_a_foreign_database_is_refused_before_anything_in_it_changes(tmp_path):
    """train --store took over another program's database (a 'results' table
    added, WAL switched on); bench --out refused it but had switched it to WAL."""
    foreign = tmp_path / "invoices.sqlite"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE invoices (id)")
    line = one_line_error(cli("train", "--no-generated", BUNDLED_LAPLACE, "--store", foreign), 1)
    assert "not a spmvtune training store" in line and "invoices" in line
    line = one_line_error(cli("train", "--fit-only", "--store", foreign), 1)
    assert "invoices" in line
    out = tmp_path / "out"
    out.mkdir()
    with sqlite3.connect(out / "results.sqlite") as con:
        con.execute("CREATE TABLE invoices (id)")
    assert "invoices" in one_line_error(cli("bench", BUNDLED_LAPLACE, "--out", out), 1)
    for db in (foreign, out / "results.sqlite"):
        with sqlite3.connect(db) as con:
            tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master")]
        assert tables == ["invoices"] and _journal_mode(db) == "delete"


def test_stores_that_cannot_be_written_say_why(tmp_path, monkeypatch):
    import os
    from spmvtune.train import ResultsStore
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    line = one_line_error(cli("train", "--fit-only", "--store", blocker / "s.sqlite"), 1)
    assert "a file is in the way" in line                # was: "File exists"
    line = one_line_error(cli("bench", BUNDLED_LAPLACE, "--out", blocker / "sub"), 1)
    assert "a file is in the way" in line
    store = tmp_path / "ro.sqlite"
    ResultsStore(store).put("m", "f", {"nnz": 1})
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode & os.W_OK and (
        str(p).endswith(("ro.sqlite", "rodir"))) else real(p, mode))
    # was: "OperationalError: attempt to write a readonly database (an internal error ...)"
    line = one_line_error(cli("train", "--no-generated", BUNDLED_LAPLACE, "--store", store), 1)
    assert f"{store} is read-only" in line
    assert "nothing to fit" in one_line_error(cli("train", "--fit-only", "--store", store), 1)
    (tmp_path / "rodir").mkdir()
    line = one_line_error(cli("train", "--no-generated", BUNDLED_LAPLACE, "--store",
                              tmp_path / "rodir" / "new.sqlite"), 1)
    assert "rodir is read-only" in line                  # was: "unable to open database file"


def test_bench_out_foreign_or_read_only(tmp_path):
    import os
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "results.sqlite") as con:
        con.execute("CREATE TABLE invoices (id)")
    line = one_line_error(cli("bench", BUNDLED_LAPLACE, "--out", foreign, "--no-mkl"), 1)
    assert "not a spmvtune results store" in line and "invoices" in line
    other = tmp_path / "other"
    other.mkdir()
    with sqlite3.connect(other / "results.sqlite") as con:
        con.execute("CREATE TABLE rows (x, y)")
    assert "columns" in one_line_error(cli("bench", BUNDLED_LAPLACE, "--out", other), 1)
    if os.geteuid() == 0:
        pytest.skip("root writes to read-only directories")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert "not writable" in one_line_error(cli("bench", BUNDLED_LAPLACE, "--out", ro), 1)
    finally:
        ro.chmod(0o700)


def test_bench_out_read_only_store_file(tmp_path, monkeypatch):
    import os
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.sqlite").touch()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).endswith(".sqlite")
                        else real(p, mode))
    line = one_line_error(cli("bench", BUNDLED_LAPLACE, "--out", out), 1)
    assert "results.sqlite is not writable" in line


def test_cli_warnings_are_one_line(tmp_path):
    both = tmp_path / "both.mtx"
    both.write_text("%%MatrixMarket matrix coordinate real symmetric\n3 3 3\n2 1 5\n1 2 5\n"
                    "3 3 1\n")
    r = cli("analyze", both, "--no-profile", "--threads", "1")
    assert r.exit_code == 0, r.output
    warned = [ln for ln in r.output.splitlines() if "stores both triangles" in ln]
    assert len(warned) == 1 and warned[0].startswith("Warning: " + str(both))
    assert "UserWarning" not in r.output and "_load_mtx" not in r.output


# -- emit -----------------------------------------------------------------------------

INJECT = '__attribute__((constructor)) static void pwn(void){__builtin_puts("PWNED");}'


def test_emit_escapes_the_matrix_path_in_the_c_comment(tmp_path):
    """A path holding '*/' ... '/*' once closed the header comment and put a
    constructor into the emitted C (it ran in the program that linked it)."""
    import shutil
    import subprocess
    d = tmp_path / "x*" / INJECT / "*y\nz"
    d.mkdir(parents=True)
    shutil.copy(BUNDLED_LAPLACE, d / "m.mtx")
    out = tmp_path / "k.c"
    r = cli("emit", d / "m.mtx", "-o", out, "--kernel", "csr_balanced", "--threads", "1")
    assert r.exit_code == 0, r.output
    src = out.read_text()
    comment = src[:src.index("*/") + 2]
    assert "PWNED" in comment and comment.count("*/") == 1 and "/*" not in comment[2:]
    assert "*\\/" in comment and "\\n" in comment
    assert all(" " <= c <= "~" for ln in comment.splitlines() for c in ln)
    from spmvtune.cbuild import find_compiler
    cc = find_compiler()
    if cc:
        main_c = tmp_path / "main.c"
        main_c.write_text("int main(void) { return 0; }\n")
        exe = tmp_path / "prog"
        subprocess.run([cc, "-std=c99", "-fopenmp", str(out), str(main_c), "-o", str(exe)],
                       check=True, capture_output=True)
        assert "PWNED" not in subprocess.run([str(exe)], capture_output=True, text=True).stdout


def test_emit_output_paths(tmp_path):
    line = one_line_error(cli("emit", BUNDLED_LAPLACE, "--header", "-o", tmp_path / "k.h"), 2)
    assert "source and the header would both be" in line
    assert not (tmp_path / "k.h").exists()
    line = one_line_error(cli("emit", BUNDLED_LAPLACE, "-o", tmp_path / "missing" / "k.c"), 2)
    assert "does not exist" in line
    spaced = tmp_path / "my dir"
    spaced.mkdir()
    r = cli("emit", BUNDLED_LAPLACE, "-o", spaced / "k; rm -rf ~.c", "--kernel", "csr_balanced",
            "--threads", "1", "--header")
    assert r.exit_code == 0, r.output
    assert f"-c '{spaced / 'k; rm -rf ~.c'}'" in r.output
    assert (spaced / "k; rm -rf ~.h").exists()
    # the build line in the C comment is quoted too (it was pasted as it came)
    assert " * Build:  cc -O3 -march=native -fopenmp -c 'k; rm -rf ~.c'\n" in \
        (spaced / "k; rm -rf ~.c").read_text()
    # -o naming the matrix itself (or a link to it) once overwrote it with C
    import shutil
    m = tmp_path / "m.mtx"
    shutil.copy(BUNDLED_LAPLACE, m)
    (tmp_path / "link.c").symlink_to(m)
    before = m.read_bytes()
    for target in (m, tmp_path / "link.c"):
        line = one_line_error(cli("emit", m, "-o", target, "--kernel", "csr_balanced",
                                  "--threads", "1"), 2)
        assert "is the matrix FILE itself" in line
    assert m.read_bytes() == before
    # the header of -o K.H is K.h: the same file where names ignore case
    line = one_line_error(cli("emit", BUNDLED_LAPLACE, "--header", "-o", tmp_path / "K.H"), 2)
    assert "source and the header would both be" in line
    with pytest.raises(ValueError, match="not a C identifier"):
        from spmvtune.emit import render
        render("csr_balanced", prefix="int")
