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


@pytest.fixture(scope="session", autouse=True)
def isolated_machine(tmp_path_factory):
    """No test measures this machine or touches the user's cache: a private cache
    directory and a made-up machine profile (tests/fake_machine.py)."""
    from spmvtune import machine
    from fake_machine import fake_machine

    def fake_measure(threads=None):
        prof = fake_machine()
        prof.cpu_model = machine.cpu_model()
        return prof
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPMVTUNE_CACHE_DIR", str(tmp_path_factory.mktemp("spmvtune-cache")))
        mp.setattr(machine, "measure", fake_measure)
        yield


@pytest.fixture(scope="session")
def shared_dir():
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present")
    return SHARED
