import functools
import os
from pathlib import Path

import pytest

from families import FAMILIES

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "matrices"
SHARED = Path(os.environ.get("SPMVTUNE_SHARED_MATRICES", SHARED))


@functools.lru_cache(maxsize=None)
def family_matrix(name):
    return FAMILIES[name]()


def shared_files(sub):
    d = SHARED / sub
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir()
                  if p.name.endswith((".mtx", ".mtx.gz", ".mtx.bz2", ".tar.gz", ".npz")))


def pytest_report_header(config):
    return f"shared matrices: {SHARED} ({'present' if SHARED.is_dir() else 'absent: those tests skip'})"


@pytest.fixture(scope="session")
def shared_dir():
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present")
    return SHARED
