"""The command line, through click's CliRunner."""
import json

from click.testing import CliRunner

import spmvtune
from spmvtune.cli import main


def test_kernels_lists_the_registry():
    r = CliRunner().invoke(main, ["kernels", "--json"])
    assert r.exit_code == 0
    doc = json.loads(r.output)
    assert [k["name"] for k in doc] == list(spmvtune.kernel_names())
    assert all(k["dtypes"] == list(spmvtune.pool.get_kernel(k["name"]).dtypes) for k in doc)
    r = CliRunner().invoke(main, ["kernels"])
    assert all(name in r.output for name in spmvtune.kernel_names())
