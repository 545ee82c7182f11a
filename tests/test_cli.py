"""The command line, through click's CliRunner."""
import json
from pathlib import Path

from click.testing import CliRunner

import spmvtune
from spmvtune.cli import main

BUNDLED = Path(__file__).resolve().parents[1] / "matrices"


def test_kernels_lists_the_registry():
    r = CliRunner().invoke(main, ["kernels", "--json"])
    assert r.exit_code == 0
    assert [k["name"] for k in json.loads(r.output)] == list(spmvtune.kernel_names())
    r = CliRunner().invoke(main, ["kernels"])
    assert all(name in r.output for name in spmvtune.kernel_names())


def test_bench_on_a_bundled_matrix():
    r = CliRunner().invoke(main, ["bench", str(BUNDLED / "laplace2d_40.mtx"), "--repeats", "3",
                                  "--threads", "2", "--json", "--no-mkl"])
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.output)
    assert row["nnz"] == 7840 and not row["kernel_errors"]
    assert row["selected"]["kernel"] in spmvtune.kernel_names() and "selected" in row["gflops"]
    assert set(spmvtune.kernel_names()) <= set(row["gflops"]) | {"csr_vi_prefetch"}
    assert all(v > 0 for v in row["gflops"].values())


def test_bench_goes_on_after_a_bad_file(tmp_path):
    bad = tmp_path / "bad.mtx"
    bad.write_text("%%MatrixMarket matrix coordinate real general\n2 2 1\n3 3 1\n")
    good = BUNDLED / "fem_blocks_900.mtx.gz"
    r = CliRunner().invoke(main, ["bench", str(bad), str(good), "--repeats", "3", "--no-cache",
                                  "--kernel", "csr_balanced", "--json", "--no-mkl"])
    assert r.exit_code == 1
    rows = json.loads(r.output)
    assert "out of bounds" in rows[0]["error"] and f"{bad}:3" in rows[0]["error"]
    assert rows[1]["gflops"]["csr_balanced"] > 0


def test_bench_rejects_unknown_kernel():
    r = CliRunner().invoke(main, ["bench", str(BUNDLED), "--kernel", "nope"])
    assert r.exit_code == 2 and "unknown kernel 'nope'" in r.output


def test_help_explains():
    r = CliRunner().invoke(main, ["bench", "--help"])
    assert r.exit_code == 0 and "checked against SciPy" in r.output
