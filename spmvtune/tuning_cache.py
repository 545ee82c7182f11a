"""The tuning cache: decisions of ``select_kernel`` kept in SQLite, so a solver
that asks again for the same matrix pays nothing.

Key: a fingerprint of the matrix (shape, nnz, the whole row pointer, an evenly
spaced sample of column indices and values, and sums over all of them), the
value type, whether the decision is for a transpose product, the machine
fingerprint, the thread count, the selection mode and the spmvtune version.
The key is not a full hash of the values (that would cost more than the
feature pass); two matrices it cannot tell apart share a *decision*, which
costs speed at worst, never correctness: the operator is always built from the
matrix given.

The database lives in the user cache directory (``SPMVTUNE_CACHE_DIR``
overrides), uses WAL journaling and a busy timeout so several processes can use
it at once, and is rebuilt with a warning if it is corrupt or of another schema.
"""
import hashlib
import json
import sqlite3
import time
import warnings

import numpy as np

SCHEMA = 1
_SAMPLE = 4096


def matrix_fingerprint(csr):
    """A hex key of the matrix structure and values (see the module docstring)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(csr.shape, dtype=np.int64).tobytes())
    h.update(np.asarray(csr.indptr, dtype=np.int64).tobytes())
    nnz = csr.nnz
    if nnz:
        pick = np.linspace(0, nnz - 1, min(nnz, _SAMPLE)).astype(np.int64)
        h.update(np.asarray(csr.indices)[pick].astype(np.int64).tobytes())
        h.update(np.asarray(csr.data)[pick].tobytes())
        h.update(np.asarray([np.sum(csr.indices, dtype=np.int64)], dtype=np.int64).tobytes())
        h.update(np.asarray([np.sum(csr.data), np.sum(np.abs(csr.data))]).tobytes())
    return h.hexdigest()


def decision_key(csr, threads, mode, max_extra_bytes=None, transpose=False, n_vectors=1):
    """Also keyed by the value type, the transpose flag (``csr`` is then the
    CSR of A^T), the memory budget, the right-hand sides per product (k > 1
    only, so single-vector keys are unchanged) and the selector's revision: a
    decision made by older selection logic is not reused
    (``decision.SELECTOR_REVISION``)."""
    from . import __version__
    from .decision import SELECTOR_REVISION
    from .machine import machine_fingerprint
    budget = "" if max_extra_bytes is None else f":b{int(max_extra_bytes)}"
    kind = np.dtype(csr.data.dtype).name + (":T" if transpose else "")
    vectors = "" if n_vectors == 1 else f":k{int(n_vectors)}"
    return (f"{matrix_fingerprint(csr)}:{kind}:{machine_fingerprint()}:{threads}:{mode}{budget}"
            f"{vectors}:{__version__}:r{SELECTOR_REVISION}")


class TuningCache:
    """``get(key) -> dict | None`` and ``put(key, decision)`` over SQLite."""

    def __init__(self, path=None):
        from .machine import cache_dir
        self.path = path or (cache_dir() / "tuning.sqlite")

    def _connect(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
        con.execute("CREATE TABLE IF NOT EXISTS decisions (key TEXT PRIMARY KEY, "
                    "decision TEXT NOT NULL, created REAL NOT NULL)")
        row = con.execute("SELECT v FROM meta WHERE k = 'schema'").fetchone()
        if row is None:
            con.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA),))
            con.commit()
        elif row[0] != str(SCHEMA):
            raise sqlite3.DatabaseError(f"schema {row[0]}, expected {SCHEMA}")
        return con

    def _run(self, fn):
        """Run fn(connection); a corrupt or foreign database is rebuilt once."""
        for attempt in (1, 2):
            try:
                con = self._connect()
                try:
                    return fn(con)
                finally:
                    con.close()
            except sqlite3.DatabaseError as exc:
                if attempt == 2:
                    warnings.warn(f"tuning cache {self.path} unusable ({exc}); not caching")
                    return None
                warnings.warn(f"tuning cache {self.path} is corrupt or foreign ({exc}); rebuilding")
                self.clear()
            except OSError as exc:
                warnings.warn(f"tuning cache {self.path} not writable ({exc}); not caching")
                return None

    def get(self, key):
        row = self._run(lambda con: con.execute(
            "SELECT decision FROM decisions WHERE key = ?", (key,)).fetchone())
        try:
            return json.loads(row[0]) if row else None
        except ValueError:
            return None

    def get_decision(self, key, max_threads):
        """The :class:`~spmvtune.decision.Decision` stored under ``key``, or None.
        A row that is not a valid decision (unknown kernel, threads outside
        1..max_threads, ...) is dropped with a warning, so it is made again."""
        from .decision import Decision
        doc = self.get(key)
        if doc is None:
            return None
        try:
            return Decision.from_json(doc, max_threads)
        except ValueError as exc:
            warnings.warn(f"tuning cache {self.path}: dropping an invalid decision ({exc}); "
                          "selecting again")
            self.delete(key)
            return None

    def delete(self, key):
        def remove(con):
            with con:
                con.execute("DELETE FROM decisions WHERE key = ?", (key,))
        self._run(remove)

    def put(self, key, decision):
        def write(con):
            with con:
                con.execute("INSERT OR REPLACE INTO decisions VALUES (?, ?, ?)",
                            (key, json.dumps(decision), time.time()))
        self._run(write)

    def info(self):
        """{"path", "entries", "bytes"}."""
        def count(con):
            return con.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
        n = self._run(count) if self.path.exists() else 0
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*")
                   if p.exists()) if self.path.parent.exists() else 0
        return {"path": str(self.path), "entries": n or 0, "bytes": size}

    def clear(self):
        for p in self.path.parent.glob(self.path.name + "*"):
            try:
                p.unlink()
            except OSError:
                pass
