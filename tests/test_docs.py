"""The README's kernel table is the registry's."""
import re
from pathlib import Path

import spmvtune

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_kernel_once():
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|", README.read_text(), flags=re.M)
    assert rows == list(spmvtune.kernel_names())
