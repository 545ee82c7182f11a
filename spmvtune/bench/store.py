"""Bench results that survive: one SQLite row per matrix, committed as soon as
it is measured, so an interrupted sweep loses at most the matrix in progress
and a rerun with the same store skips what is done.  ``results.csv`` is an
export for spreadsheets and pandas, rewritten from the store.
"""
import csv
import json
import sqlite3
from pathlib import Path

from .measure import FAILED, TIMEOUT, gflops_of

#: CSV columns before the per-contestant GFLOP/s columns.
CSV_FIELDS = ("name", "status", "reason", "rows", "cols", "nnz", "vectors", "threads",
              "selected_kernel",
              "selected_threads", "selection_source", "selection_seconds", "setup_seconds",
              "selection_products", "oracle_kernel", "regret", "bottlenecks", "intensity",
              "gbps", "bandwidth_percent", "host", "elapsed", "measured_at", "matrix")


class BenchStore:
    """``results.sqlite`` in an output directory (WAL: readers never block the writer)."""

    def __init__(self, out_dir):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "results.sqlite"
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path}: not a spmvtune results store ({exc}); "
                             "choose another --out or remove the file") from None

    def _open(self):
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS rows (matrix TEXT NOT NULL, threads INTEGER NOT NULL,"
                   " status TEXT NOT NULL, row TEXT NOT NULL, PRIMARY KEY (matrix, threads))")
        db.commit()
        return db

    def done(self, threads, retry_failed=False):
        """Keys of the matrices already recorded at ``threads`` (failures too,
        unless ``retry_failed``)."""
        q = "SELECT matrix FROM rows WHERE threads = ?"
        if retry_failed:
            q += f" AND status NOT IN ('{FAILED}', '{TIMEOUT}')"
        return {k for (k,) in self._db.execute(q, (threads,))}

    def put(self, row):
        """Record one row (replacing an earlier one of the same matrix and threads)."""
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?)",
                             (row["matrix"], row["threads"], row["status"], json.dumps(row)))

    def rows(self, threads=None):
        """Every recorded row (of one thread count when given), in insertion order."""
        q, args = "SELECT row FROM rows", ()
        if threads is not None:
            q, args = q + " WHERE threads = ?", (threads,)
        return [json.loads(r) for (r,) in self._db.execute(q + " ORDER BY rowid", args)]

    def export_csv(self, rows=None):
        """Write ``results.csv`` (one line per matrix, GFLOP/s per contestant); returns its path."""
        rows = self.rows() if rows is None else rows
        contestants = sorted({k for r in rows for k in r.get("seconds", {})},
                             key=_contestant_order)
        path = self.dir / "results.csv"
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(list(CSV_FIELDS) + [f"gflops_{c}" for c in contestants])
            for r in rows:
                g = gflops_of(r) if "seconds" in r else {}
                vals = [",".join(v) if isinstance(v := r.get(k), list) else v for k in CSV_FIELDS]
                w.writerow(["" if v is None else v for v in vals]
                           + [f"{g[c]:.4f}" if c in g else "" for c in contestants])
        tmp.replace(path)
        return path

    def close(self):
        self._db.close()


def _contestant_order(name):
    first = ("selected", "selected_1t", "baseline", "scipy", "mkl_csr", "mkl_ie", "dense")
    return (first.index(name), "") if name in first else (len(first), name)
