"""``spmvtune bench``: sweeps through click's CliRunner on small files, the
results store (resume, interruption), failures recorded, reports, timeouts,
the Dask path on a local cluster, and the ssget download (offline-safe)."""
import json
import shutil
import sqlite3
import sys
import tarfile
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

import spmvtune
from spmvtune.bench import items as items_mod
from spmvtune.bench import measure as measure_mod
from spmvtune.bench.report import geomean, summarize
from spmvtune.bench.store import BenchStore
from spmvtune.cli import main

BUNDLED = Path(__file__).resolve().parents[1] / "matrices"
FAST = ["--repeats", "2", "--threads", "2", "--no-mkl"]
BAD_TEXT = "%%MatrixMarket matrix coordinate real general\n2 2 1\n3 3 1\n"


@pytest.fixture
def collection(tmp_path):
    """Two small good matrices and one malformed file in a directory tree."""
    d = tmp_path / "coll"
    (d / "sub").mkdir(parents=True)
    shutil.copy(BUNDLED / "laplace2d_40.mtx", d / "laplace2d_40.mtx")
    shutil.copy(BUNDLED / "fem_blocks_900.mtx.gz", d / "sub" / "fem_blocks_900.mtx.gz")
    (d / "bad.mtx").write_text(BAD_TEXT)
    (d / "notes.txt").write_text("not a matrix")
    return d


def bench(*args):
    return CliRunner().invoke(main, ["bench", *map(str, args)], catch_exceptions=False)


def stored(out):
    return {r["name"]: r for r in BenchStore(out).rows()}


def test_sweep_records_every_matrix_and_writes_reports(collection, tmp_path):
    out = tmp_path / "out"
    r = bench(collection, "--out", out, *FAST)
    assert r.exit_code == 1, r.output          # the malformed file is a failure
    rows = stored(out)
    assert set(rows) == {"laplace2d_40", "fem_blocks_900", "bad"}
    assert rows["bad"]["status"] == "failed"
    assert f"{collection / 'bad.mtx'}:3" in rows["bad"]["reason"]
    assert "out of bounds" in rows["bad"]["reason"]
    good = rows["laplace2d_40"]
    assert good["status"] == "ok" and good["nnz"] == 7840
    assert {"scipy", "baseline", "selected"} <= set(good["seconds"])
    assert good["selected_kernel"] in spmvtune.kernel_names()
    assert 0 < good["bandwidth_percent"] and good["intensity"] == pytest.approx(
        2 * 7840 / (12 * 7840 + 4 * 1601 + 8 * 3200))
    assert good["bottlenecks"] and set(good["bottlenecks"]) <= {"MB", "ML", "IMB", "CMP"}
    # the summary, the CSV, the plots and the report
    assert "selected vs SciPy csr_matvec" in r.output and "FAILED: bad" in r.output
    assert "[1/3] (ETA" in r.output and "[3/3] " in r.output     # progress without a terminal
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 4 and "gflops_selected" in csv_lines[0]
    for png in ("speedup.png", "roofline.png", "classes.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in (out / "report.md").read_text()
    assert "| laplace2d_40 | 7840 |" in (out / "report.md").read_text()


def test_rerun_skips_what_is_done(collection, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert bench(collection / "laplace2d_40.mtx", "--out", out, *FAST).exit_code == 0
    seen = []
    real = measure_mod.measure_item
    monkeypatch.setattr(measure_mod, "measure_item", lambda item, o: seen.append(item.name) or real(item, o))
    from spmvtune.bench import runner
    monkeypatch.setattr(runner, "measure_item", measure_mod.measure_item)
    r = bench(collection, "--out", out, *FAST, "--in-process")
    assert sorted(seen) == ["bad", "fem_blocks_900"]
    assert "1 of 3 matrices already in" in r.output
    assert len(stored(out)) == 3
    seen.clear()
    assert bench(collection, "--out", out, *FAST, "--retry-failed", "--in-process").exit_code == 1
    assert seen == ["bad"]                     # failures measured again on request


def test_interrupted_sweep_keeps_what_was_measured_and_resumes(collection, tmp_path, monkeypatch):
    from spmvtune.bench import runner
    out = tmp_path / "out"
    real = measure_mod.measure_item
    calls = []

    def interrupt_second(item, o):
        calls.append(item.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(item, o)
    monkeypatch.setattr(runner, "measure_item", interrupt_second)
    r = bench(collection, "--out", out, *FAST, "--in-process")
    assert r.exit_code == 130 and "rerun with --out" in r.output
    assert len(stored(out)) == 1               # the first matrix survived
    monkeypatch.setattr(runner, "measure_item", real)
    r = bench(collection, "--out", out, *FAST)
    assert "1 of 3 matrices already in" in r.output and len(stored(out)) == 3


def test_failing_and_wrong_kernels_are_recorded_and_the_sweep_goes_on(collection, tmp_path,
                                                                      monkeypatch):
    from spmvtune.pool import registry

    def broken(csr, threads, **kw):
        raise RuntimeError("kaboom")
    real_unroll = registry.get_kernel("csr_unroll4").prepare

    def wrong(csr, threads, **kw):
        prep = real_unroll(csr, threads, **kw)
        return registry.Prepared(lambda *a: a[-1].fill(1.0), prep.args, prep.nbytes)
    monkeypatch.setitem(registry._REGISTRY, "csr_rows",
                        registry.KernelSpec("csr_rows", (), "broken", broken))
    monkeypatch.setitem(registry._REGISTRY, "csr_unroll4",
                        registry.KernelSpec("csr_unroll4", ("CMP",), "wrong", wrong))
    out = tmp_path / "out"
    r = bench(collection / "laplace2d_40.mtx", collection / "sub", "--out", out, *FAST,
              "--all-kernels", "--no-cache", "--in-process")
    assert r.exit_code == 1
    for row in stored(out).values():
        assert "kaboom" in row["kernel_errors"]["csr_rows"]
        assert "but SciPy gives" in row["kernel_errors"]["csr_unroll4"]
        assert "csr_unroll4" not in row["seconds"] and "csr_balanced" in row["seconds"]
        assert row["oracle_kernel"].partition("@")[0] in spmvtune.kernel_names()
        if "selected" in row["seconds"]:          # the selector may have picked the wrong one
            assert row["regret"] >= 0
        else:
            assert "but SciPy gives" in row["kernel_errors"]["selected"]
        assert row["oracle_seconds"] <= min(row["seconds"][k] for k in spmvtune.kernel_names()
                                            if k in row["seconds"])


def test_max_nnz_and_limit(collection, tmp_path):
    out = tmp_path / "out"
    r = bench(collection, "--out", out, *FAST, "--max-nnz", "10000")
    assert r.exit_code == 1                    # only because of bad.mtx
    rows = stored(out)
    assert rows["fem_blocks_900"]["status"] == "skipped"
    assert "--max-nnz 10000" in rows["fem_blocks_900"]["reason"]
    assert rows["laplace2d_40"]["status"] == "ok"
    out2 = tmp_path / "out2"
    assert bench(collection, "--out", out2, *FAST, "--limit", "1").exit_code == 1
    assert list(stored(out2)) == ["bad"]       # sorted order: bad.mtx first


def test_json_has_summary_and_rows(collection):
    r = CliRunner().invoke(main, ["bench", str(collection / "laplace2d_40.mtx"), *FAST, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["summary"]["measured"] == 1 and doc["summary"]["speedup_vs_scipy"] > 0
    assert doc["rows"][0]["name"] == "laplace2d_40"


def test_timeout_kills_the_worker_and_goes_on(collection, tmp_path):
    out = tmp_path / "out"
    # far too short for a worker process even to start: every matrix times out
    r = bench(collection / "laplace2d_40.mtx", collection / "sub", "--out", out, *FAST,
              "--timeout", "0.001")
    assert r.exit_code == 1
    rows = stored(out)
    assert all(v["status"] == "timeout" and "0.001 s" in v["reason"] for v in rows.values())
    # a generous timeout measures in the worker process
    r = bench(collection / "laplace2d_40.mtx", "--out", out, *FAST, "--timeout", "300",
              "--retry-failed")
    assert r.exit_code == 0, r.output
    assert stored(out)["laplace2d_40"]["status"] == "ok"


def test_distributed_on_a_local_cluster(collection, tmp_path):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        r = bench(collection, "--out", out, *FAST, "--scheduler", cluster.scheduler_address)
    assert r.exit_code == 1                    # bad.mtx
    rows = stored(out)
    assert rows["laplace2d_40"]["status"] == "ok" and rows["fem_blocks_900"]["status"] == "ok"
    assert rows["bad"]["status"] == "failed"
    assert (out / "report.md").exists()


def test_unreachable_scheduler_is_a_clear_error(collection, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr("spmvtune.cluster.CONNECT_SECONDS", 1)
    r = bench(collection / "laplace2d_40.mtx", *FAST, "--scheduler", "tcp://127.0.0.1:9")
    assert r.exit_code == 1 and "cannot reach the Dask scheduler" in r.output


def test_bad_arguments():
    r = bench("--suite", "nope")
    assert r.exit_code == 2 and "no suite 'nope'" in r.output
    r = bench()
    assert r.exit_code == 2 and "nothing to measure" in r.output
    r = bench(BUNDLED, "--kernel", "nope")
    assert r.exit_code == 2 and "unknown kernel 'nope'" in r.output
    r = bench(BUNDLED, "--timeout", "0")
    assert r.exit_code == 2


def test_a_corrupt_store_is_a_clear_error(collection, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.sqlite").write_text("this is not sqlite" * 100)
    r = bench(collection / "laplace2d_40.mtx", "--out", out, *FAST)
    assert r.exit_code == 1 and "not a spmvtune results store" in r.output


def test_help_explains():
    r = bench("--help")
    assert r.exit_code == 0
    for phrase in ("checked against SciPy", "--suite", "--ssget", "--scheduler", "resume"):
        assert phrase in " ".join(r.output.split())


# ---- suites ---------------------------------------------------------------------

def test_suites_build_what_they_promise(monkeypatch):
    assert {"quick", "large"} <= set(items_mod.SUITES)
    for item in items_mod.suite_items("quick"):
        assert item.key == f"suite:quick/{item.name}"
    # the quick suite's matrices are built by the generators (checked cheaply
    # by building one); the large suite is the benchmarks' LARGE families
    A = items_mod.load_item(items_mod.suite_items("quick")[1])
    assert A.nnz > 500_000
    assert set(items_mod.SUITES["large"]) == set(spmvtune.generate.LARGE)


def test_suite_sweep(tmp_path, monkeypatch):
    tiny = {"lap": (lambda: spmvtune.generate.laplacian_2d(30), "small"),
            "scatter": (lambda: spmvtune.generate.random_scatter(3000, 5), "small")}
    monkeypatch.setitem(items_mod.SUITES, "tiny", tiny)
    out = tmp_path / "out"
    r = bench("--suite", "tiny", "--out", out, *FAST, "--one-thread", "--in-process")
    assert r.exit_code == 0, r.output
    rows = stored(out)
    assert set(rows) == {"lap", "scatter"} and all(r["source"] == "suite" for r in rows.values())
    assert all("selected_1t" in r["seconds"] for r in rows.values())


# ---- ssget ------------------------------------------------------------------------

def test_ssget_query_parsing():
    from spmvtune.bench.ssget import parse_query
    assert parse_query("HB/bcsstk01") == ("HB/bcsstk01", {"limit": 10})
    assert parse_query("1234") == (1234, {"limit": 10})
    assert parse_query("group=HB,nzbounds=100:2000,isspd=true,limit=3") == (
        None, {"group": "HB", "nzbounds": (100, 2000), "isspd": True, "limit": 3})
    assert parse_query("nzbounds=:5000")[1]["nzbounds"] == (None, 5000)
    for bad in ("", "colour=red", "group="):
        with pytest.raises(ValueError):
            parse_query(bad)


def _fake_ssgetpy(monkeypatch, search):
    mod = types.ModuleType("ssgetpy")
    mod.search = search
    monkeypatch.setitem(sys.modules, "ssgetpy", mod)


def test_ssget_offline_says_so(monkeypatch):
    def search(*a, **kw):
        raise ConnectionError("Failed to resolve 'sparse.tamu.edu'")
    _fake_ssgetpy(monkeypatch, search)
    r = bench("--ssget", "HB/bcsstk01", *FAST)
    assert r.exit_code == 1 and "machine offline?" in r.output


def test_ssget_downloads_then_benches(monkeypatch, tmp_path):
    archive = tmp_path / "served" / "lap40.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(BUNDLED / "laplace2d_40.mtx", arcname="lap40/lap40.mtx")

    class FakeMatrix:
        group, name, nnz = "Demo", "lap40", 7840

        def url(self, format):
            assert format == "MM"
            return archive.as_uri()                 # file:// stands in for https://
    _fake_ssgetpy(monkeypatch, lambda name_or_id, **kw: [FakeMatrix()])
    out = tmp_path / "out"
    r = bench("--ssget", "Demo/lap40", "--out", out, *FAST)
    assert r.exit_code == 0, r.output
    assert (out / "ssget" / "Demo" / "lap40.tar.gz").exists()
    assert stored(out)["lap40"]["nnz"] == 7840


# ---- summary figures --------------------------------------------------------------

def test_summary_figures():
    rows = [
        {"name": "a", "status": "ok", "nnz": 10, "selected_kernel": "k1", "bottlenecks": ["MB"],
         "seconds": {"selected": 1.0, "scipy": 2.0, "mkl_ie": 1.5, "k1": 1.0, "k2": 0.8},
         "oracle_kernel": "k2", "regret": 0.25, "selection_products": 3.0},
        {"name": "b", "status": "ok", "nnz": 10, "selected_kernel": "k2", "bottlenecks": [],
         "seconds": {"selected": 1.0, "scipy": 8.0, "k2": 1.0},
         "oracle_kernel": "k2", "regret": 0.0, "selection_products": 5.0},
        {"name": "c", "status": "failed", "reason": "broken file"},
        {"name": "d", "status": "skipped", "reason": "too big"},
    ]
    s = summarize(rows)
    assert (s["matrices"], s["measured"], s["skipped"], s["failed"]) == (4, 2, 1, 1)
    assert s["speedup_vs_scipy"] == pytest.approx(4.0)      # sqrt(2 * 8)
    assert s["speedup_vs_mkl_ie"] == pytest.approx(1.5) and s["n_vs_mkl_ie"] == 1
    assert s["selection_accuracy"] == 0.5 and s["mean_regret"] == pytest.approx(0.125)
    assert s["classes"]["MB"]["count"] == 1 and s["classes"]["none"]["count"] == 1
    assert s["failures"] == [{"name": "c", "status": "failed", "reason": "broken file"}]
    assert geomean([]) is None


def test_store_keeps_rows_per_thread_count(tmp_path):
    st = BenchStore(tmp_path)
    st.put({"matrix": "m", "threads": 1, "status": "ok", "name": "m"})
    st.put({"matrix": "m", "threads": 2, "status": "failed", "name": "m"})
    st.put({"matrix": "m", "threads": 2, "status": "ok", "name": "m"})   # replaces
    assert st.done(2) == {"m"} and st.done(3) == set()
    assert [r["status"] for r in st.rows(2)] == ["ok"] and len(st.rows()) == 2
    with sqlite3.connect(st.path) as db:                  # plain SQLite for other tools
        assert db.execute("SELECT COUNT(*) FROM rows").fetchone() == (2,)


def test_a_real_ctrl_c_keeps_the_rows_and_a_rerun_finishes(collection, tmp_path):
    """SIGINT to a running `python -m spmvtune bench`: exit 130, what was
    measured is in the store, and the rerun measures only the rest."""
    import os
    import signal
    import subprocess
    import time

    from spmvtune.machine import machine_profile
    machine_profile(2)                    # the subprocess reads this (fake) profile from the cache
    for i in range(6):                    # enough matrices that the signal lands mid-sweep
        shutil.copy(BUNDLED / "fem_blocks_900.mtx.gz", collection / f"copy{i}.mtx.gz")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "spmvtune", "bench", str(collection), "--out", str(out),
           "--repeats", "200", "--threads", "2", "--no-mkl"]
    # SIGINT's default action in the child even when this suite runs where it is ignored
    # (a background job of a non-interactive shell), which Python would inherit
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "results.sqlite").exists() and len(BenchStore(out).rows()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "rerun with --out" in err
    kept = len(BenchStore(out).rows())
    assert 2 <= kept < 9
    r = subprocess.run(cmd[:-5] + ["--repeats", "2", "--threads", "2", "--no-mkl"],
                       capture_output=True, text=True, timeout=300, env=os.environ)
    assert r.returncode == 1                # bad.mtx
    assert f"{kept} of 9 matrices already in" in r.stderr
    assert len(BenchStore(out).rows()) == 9


def test_a_row_whose_selected_kernel_failed_is_reported(tmp_path):
    from spmvtune.bench.report import write_markdown
    from spmvtune.cli import _row_line
    row = {"matrix": "m", "name": "m", "status": "failed", "nnz": 10, "threads": 2,
           "selected_kernel": "csr_vi", "selected_threads": 2, "bottlenecks": ["CMP"],
           "seconds": {"scipy": 1.0, "baseline": 0.5, "csr_rows": 0.4}, "intensity": 0.1,
           "oracle_kernel": "csr_rows", "oracle_seconds": 0.4, "reason": "selected: wrong"}
    assert "selected csr_vi x2 failed its check" in _row_line(row)
    s = summarize([row])
    assert s["failed"] == 1 and s["mean_regret"] is None
    assert "| m | 10 |" in write_markdown(tmp_path / "r.md", [row], s, {}, {}).read_text()


def test_read_results_gives_one_row_per_matrix_and_contestant(collection, tmp_path):
    from spmvtune.bench import read_results
    from spmvtune.peers import graphblas_available
    out = tmp_path / "out"
    bench(collection, "--out", out, "--all-kernels", "--kernel", "csr_unroll4",
          "--kernel", "bcsr", *FAST)
    df = read_results(out)
    good = df[df.name == "fem_blocks_900"]
    assert {"selected", "baseline", "scipy", "bcsr", "bcsr@1", "csr_unroll4"} <= set(good.contestant)
    if graphblas_available()[0]:
        assert "graphblas" in set(good.contestant)
    row = good.set_index("contestant")
    assert row.loc["bcsr", "bytes"] < row.loc["baseline", "bytes"]       # 3x3 blocks: fewer bytes
    assert (good.seconds > 0).all() and (good.gflops > 0).all()
    nnz = int(good.nnz.iloc[0])
    assert row.loc["scipy", "gflops"] == pytest.approx(2 * nnz / row.loc["scipy", "seconds"] / 1e9)
    bad = df[df.name == "bad"]
    assert len(bad) == 1 and bad.contestant.isna().all() and "out of bounds" in bad.reason.iloc[0]
    with pytest.raises(FileNotFoundError):
        read_results(tmp_path / "nowhere")
    # report.md puts each kernel's storage beside its speed
    report = (out / "report.md").read_text()
    assert "## Every kernel: speed and storage" in report
    line = next(ln for ln in report.splitlines() if ln.startswith("| fem_blocks_900 | bcsr |"))
    assert float(line.split("|")[5]) < 12.0            # bytes per nonzero below plain CSR's


# ---- hostile input (issue 11): a bad matrix costs one row, never the sweep ---------

@pytest.fixture
def crashing_worker(monkeypatch):
    """Measuring processes run tests/crash_worker.py (crashes chosen by name)."""
    import os
    from spmvtune.bench import runner
    tests = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [tests, str(Path(spmvtune.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setattr(runner.WorkerProcess, "module", "crash_worker")


def test_a_crashing_matrix_costs_its_row_with_the_real_reason(collection, tmp_path,
                                                              crashing_worker):
    for name in ("segv_file", "abort_file", "exit_file"):
        shutil.copy(BUNDLED / "laplace2d_40.mtx", collection / f"{name}.mtx")
    out = tmp_path / "out"
    r = bench(collection, "--out", out, *FAST, "--timeout", "120")
    assert r.exit_code == 1
    rows = stored(out)
    assert rows["laplace2d_40"]["status"] == "ok" and rows["fem_blocks_900"]["status"] == "ok"
    segv, abort, died = rows["segv_file"], rows["abort_file"], rows["exit_file"]
    assert segv["status"] == "failed"
    assert "killed by SIGSEGV" in segv["reason"] and "while loading the file" in segv["reason"]
    assert "Fatal Python error: Segmentation fault" in segv["reason"]
    # a crash after 0.15 s is a crash, not a timeout
    assert abort["status"] == "failed" and "SIGABRT" in abort["reason"]
    assert "while timing csr_balanced" in abort["reason"] and abort["elapsed"] < 60
    assert died["status"] == "failed" and "exited with status 3" in died["reason"]
    assert "SIGSEGV" in (out / "report.md").read_text()
    assert len((out / "results.csv").read_text().splitlines()) == 7
    # every failure was stored: a rerun moves on instead of dying on the same file
    r = bench(collection, "--out", out, *FAST)
    assert "6 of 6 matrices already in" in r.output


def test_a_segfault_without_timeout_is_isolated_too(collection, tmp_path, crashing_worker):
    shutil.copy(BUNDLED / "laplace2d_40.mtx", collection / "segv_x.mtx")
    out = tmp_path / "out"
    r = bench(collection / "segv_x.mtx", collection / "laplace2d_40.mtx", "--out", out, *FAST)
    assert r.exit_code == 1
    rows = stored(out)
    assert "SIGSEGV" in rows["segv_x"]["reason"] and rows["laplace2d_40"]["status"] == "ok"


@pytest.mark.parametrize("exc", [OverflowError("Line 3"), EOFError(), TypeError("bad"),
                                 RuntimeError("vector::_M_default_append")])
def test_any_exception_while_loading_is_a_stored_row(collection, tmp_path, monkeypatch, exc):
    def boom(item, *rest):
        if item.name == "bad":
            raise exc
        return real(item, *rest)
    real = items_mod.load_item
    monkeypatch.setattr(items_mod, "load_item", boom)
    out = tmp_path / "out"
    r = bench(collection, "--out", out, *FAST, "--in-process")
    assert r.exit_code == 1
    rows = stored(out)
    assert rows["bad"]["status"] == "failed" and type(exc).__name__ in rows["bad"]["reason"]
    assert str(collection / "bad.mtx") in rows["bad"]["reason"]
    assert rows["laplace2d_40"]["status"] == "ok"
    assert (out / "results.csv").exists() and (out / "report.md").exists()


def test_the_report_is_written_even_when_the_sweep_breaks(collection, tmp_path, monkeypatch):
    from spmvtune.bench import runner
    real = measure_mod.measure_item
    seen = []

    def second_breaks(item, o):
        seen.append(item)
        if len(seen) == 2:
            raise ValueError("a bug in the sweep itself")
        return real(item, o)
    monkeypatch.setattr(runner, "measure_item", second_breaks)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["bench", str(collection), "--out", str(out), *FAST,
                                  "--in-process"])
    assert r.exit_code == 1 and "a bug in the sweep itself" in r.output
    assert "Traceback" not in r.output
    assert len(stored(out)) == 1 and (out / "report.md").exists() and (out / "results.csv").exists()


def test_nan_and_inf_matrices_are_measured(tmp_path):
    p = tmp_path / "nonfinite.mtx"
    p.write_text("%%MatrixMarket matrix coordinate real general\n3 3 4\n"
                 "1 1 nan\n2 2 inf\n3 3 1\n3 1 -inf\n")
    out = tmp_path / "out"
    r = bench(p, "--out", out, *FAST)
    assert r.exit_code == 0, r.output
    assert stored(out)["nonfinite"]["status"] == "ok"


def test_file_names_with_pipes_and_newlines_keep_report_md_intact(tmp_path):
    d = tmp_path / "odd"
    d.mkdir()
    for name in ("a|b.mtx", "two\nlines.mtx", "x<script>.mtx"):
        shutil.copy(BUNDLED / "laplace2d_40.mtx", d / name)
    (d / "bad|one\n.mtx").write_text(BAD_TEXT)
    out = tmp_path / "out"
    r = bench(d, "--out", out, *FAST)
    assert r.exit_code == 1
    report = (out / "report.md").read_text()
    table = [ln for ln in report.splitlines() if ln.startswith("| ")]
    assert len(table) == 5                       # header + 4 matrices, one line each
    assert all(ln.count(" | ") == table[0].count(" | ") for ln in table)
    assert "a\\|b" in report and "two\\\\nlines" in report and "<script>" not in report
    fence = report.split("```")[1]               # the summary: still one fenced block
    assert "FAILED: bad\\|one" not in fence and "bad|one\\n" in fence


def test_value_types_are_measured_as_such(collection, tmp_path):
    """--dtype float32 measures float32 products (SciPy's float32 product the
    peer), in rows of their own; a complex file is measured complex."""
    out = tmp_path / "out"
    lap = collection / "laplace2d_40.mtx"
    assert bench(lap, "--out", out, *FAST).exit_code == 0
    r = bench(lap, "--out", out, *FAST, "--dtype", "float32")
    assert r.exit_code == 0, r.output
    rows = stored(out)
    assert rows["laplace2d_40"]["dtype"] == "float64"
    f32 = rows["laplace2d_40 (float32)"]
    assert f32["status"] == "ok" and f32["dtype"] == "float32"
    assert {"scipy", "baseline", "selected"} <= set(f32["seconds"])
    assert f32["intensity"] == pytest.approx(2 * 7840 / (8 * 7840 + 4 * 1601 + 4 * 3200))
    assert "dtype" in (out / "results.csv").read_text().splitlines()[0]
    cplx = tmp_path / "c.mtx"
    cplx.write_text("%%MatrixMarket matrix coordinate complex hermitian\n3 3 3\n"
                    "1 1 2 0\n2 1 1 2\n3 2 0 -1\n")
    r = CliRunner().invoke(main, ["bench", str(cplx), *FAST, "--json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)["rows"][0]
    assert row["dtype"] == "complex128" and row["status"] == "ok"
    r = CliRunner().invoke(main, ["bench", str(cplx), *FAST, "--json", "--dtype", "float32"])
    assert r.exit_code == 1 and "imaginary part" in json.loads(r.stdout)["rows"][0]["reason"]
