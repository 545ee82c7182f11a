"""analyze(), the micro-profiler and the machine profile cache (fake machine numbers)."""
import json

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

import spmvtune
from spmvtune import machine as machine_mod
from spmvtune.cli import main
from spmvtune.profile import micro_profile
from conftest import family_matrix
from fake_machine import fake_machine


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPMVTUNE_CACHE_DIR", str(tmp_path / "cache"))
    calls = []

    def fake_measure(threads=None):
        calls.append(threads)
        prof = fake_machine()
        prof.cpu_model = machine_mod.cpu_model()      # a profile of *this* CPU
        return prof
    monkeypatch.setattr(machine_mod, "measure", fake_measure)
    return calls


@pytest.mark.parametrize("family", ["power_law", "banded", "one_dense_row", "single_entry"])
def test_micro_profile_sane(family):
    A = family_matrix(family)
    p = micro_profile(A, threads=2, machine=fake_machine())
    assert p.t_base > 0 and p.t_regular > 0
    assert p.imbalance >= 1.0 and 0.0 <= p.latency_share <= 1.0
    assert p.bytes_moved == 12 * A.nnz + 4 * (A.shape[0] + 1) + 8 * sum(A.shape)
    assert p.bandwidth_gbs == 30.0 and p.cost_spmvs > 0


def test_profile_sees_a_dominant_row_as_imbalance():
    """Row partitions cannot split one huge row: the per-thread cycle counts show it."""
    n = 1_000_000
    rows = np.concatenate([np.zeros(n, dtype=np.int64), np.arange(1, 100_001)])
    cols = np.concatenate([np.arange(n), np.arange(1, 100_001)])
    A = sp.csr_array((np.ones(len(rows)), (rows, cols)), shape=(100_001, n))
    assert np.diff(A.indptr).max() / A.nnz > 0.9
    p = micro_profile(A, threads=2, machine=fake_machine())
    assert p.imbalance > 1.3


def test_analyze_result(isolated_cache):
    A = family_matrix("stencil")
    res = spmvtune.analyze(A, threads=2)
    assert isolated_cache == [2]                        # measured once, then cached
    assert res.recommended in spmvtune.kernel_names()
    assert set(res.scores) == {"MB", "ML", "IMB", "CMP"}
    assert set(res.bottlenecks) <= set(res.scores)
    assert res.expected_speedup >= 1.0 and res.roofline_gflops > 0
    assert res.recommended_threads in (1, 2)
    assert spmvtune.analyze(family_matrix("diagonal"), threads=2).recommended_threads == 1
    d = json.loads(json.dumps(res.to_dict(), default=float))
    assert d["features"]["nnz"] == A.nnz and d["profile"]["threads"] == 2
    spmvtune.analyze(A, threads=2, profile=False)
    assert isolated_cache == [2]


def test_analyze_without_profile_has_no_timing():
    res = spmvtune.analyze(family_matrix("random"), threads=2, profile=False)
    assert res.profile is None and res.cost["profile_spmvs"] == 0.0


def test_empty_matrix():
    res = spmvtune.analyze(family_matrix("empty_0x5"), threads=2)
    assert res.recommended == "csr_balanced" and res.bottlenecks == ()


def test_machine_cache_survives_corruption(isolated_cache, tmp_path):
    machine_mod.machine_profile(2)
    path = machine_mod.profile_path(2)
    assert path.exists()
    path.write_text("{not json")
    prof = machine_mod.machine_profile(2)
    assert prof.bandwidth(2) == 30.0 and len(isolated_cache) == 2
    machine_mod.machine_profile(2, refresh=True)
    assert len(isolated_cache) == 3


def test_cache_sizes_from_os():
    c = machine_mod.cache_sizes()
    assert c["L1d"] < c["L2"] < c["L3"]


def test_cli_analyze_and_machine(tmp_path):
    p = tmp_path / "s.mtx"
    p.write_text("%%MatrixMarket matrix coordinate real symmetric\n3 3 3\n1 1 2\n2 1 1\n3 3 1\n")
    r = CliRunner().invoke(main, ["analyze", str(p), "--json", "--threads", "2"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["nnz"] == 4 and d["recommended"] in spmvtune.kernel_names()
    r = CliRunner().invoke(main, ["analyze", str(p), "--no-profile"])
    assert r.exit_code == 0 and "bottleneck scores" in r.output and "structure only" in r.output
    r = CliRunner().invoke(main, ["machine", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["read_bandwidth"]["2"] == 30.0
    bad = tmp_path / "b.mtx"
    bad.write_text("1 2 3\n")
    r = CliRunner().invoke(main, ["analyze", str(bad)])
    assert r.exit_code == 1 and "banner" in r.output


def test_profile_calls_a_large_regular_matrix_bandwidth_bound(isolated_cache, monkeypatch):
    """A 27-point stencil far out of cache is memory-bandwidth bound: the
    micro-profile, measured against this machine's own read bandwidth, must
    say so (it once measured half the bandwidth on a busy machine and flagged
    nothing)."""
    from spmvtune import generate
    real = fake_machine()
    real.read_bandwidth = {t: machine_mod.read_bandwidth(t, nbytes=96 << 20) for t in (1, 2)}
    real.caches = machine_mod.cache_sizes()
    if real.caches["L3"] > 128 << 20:
        pytest.skip("an out-of-cache stencil would be too large for a test here")
    n = int(np.ceil((3 * real.caches["L3"] / 12.5 / 27) ** (1 / 3)))   # ~3x the L3
    A = generate.stencil3d(n)
    res = spmvtune.analyze(A, threads=2, machine=real)
    assert res.features["ws_over_l3"] > 1.5
    assert "MB" in res.bottlenecks, (res.scores, res.evidence)
