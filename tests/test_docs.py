"""The README's kernel table is the registry's."""
import re
from pathlib import Path

import spmvtune

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_kernel_once():
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|", README.read_text(), flags=re.M)
    assert rows == list(spmvtune.kernel_names())


def test_every_subpackage_is_shipped():
    """pyproject lists packages by hand: a subpackage missing there imports from a
    checkout (as the tests run) but not from an installed wheel."""
    import pytest
    tomllib = pytest.importorskip("tomllib")        # Python >= 3.11
    root = README.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(root).parts)
             for p in (root / "spmvtune").rglob("__init__.py")}
    assert found <= listed, f"not in pyproject's packages: {sorted(found - listed)}"
