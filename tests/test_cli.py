"""The command line, through click's CliRunner."""
import json

from click.testing import CliRunner

import spmvtune
from spmvtune.cli import main


def test_kernels_lists_the_registry():
    r = CliRunner().invoke(main, ["kernels", "--json"])
    assert r.exit_code == 0
    assert [k["name"] for k in json.loads(r.output)] == list(spmvtune.kernel_names())
    r = CliRunner().invoke(main, ["kernels"])
    assert all(name in r.output for name in spmvtune.kernel_names())
