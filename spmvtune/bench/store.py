"""Bench results that survive: one SQLite row per matrix, committed as soon as
it is measured, so an interrupted sweep loses at most the matrix in progress
and a rerun with the same store skips what is done.  ``results.csv`` is an
export for spreadsheets and pandas, rewritten from the store.
"""
import csv
import json
import os
import sqlite3
import warnings
from pathlib import Path

from .measure import FAILED, TIMEOUT, gflops_of

#: CSV columns before the per-contestant GFLOP/s columns.
CSV_FIELDS = ("name", "status", "reason", "rows", "cols", "nnz", "dtype", "vectors", "threads",
              "selected_kernel", "selected_threads", "selection_source", "selection_seconds",
              "setup_seconds",
              "selection_products", "oracle_kernel", "regret", "bottlenecks", "intensity",
              "gbps", "bandwidth_percent", "host", "elapsed", "measured_at", "matrix")


class BenchStore:
    """``results.sqlite`` in an output directory (WAL: readers never block the writer)."""

    COLUMNS = ["matrix", "threads", "status", "row"]

    def __init__(self, out_dir):
        """Open (or create) the store; ValueError saying why when the directory
        cannot be written or the file is not a results store."""
        self.dir = Path(out_dir)
        self.path = self.dir / "results.sqlite"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ValueError(f"cannot create --out directory {self.dir}: a file is in the "
                             "way") from None
        except OSError as exc:
            raise ValueError(f"cannot create --out directory {self.dir}: "
                             f"{exc.strerror or exc}") from None
        if not os.access(self.dir, os.W_OK | os.X_OK) or (
                self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK)):
            raise ValueError(f"{self.path if self.path.exists() else self.dir} is not writable: "
                             "choose another --out")
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path}: not a spmvtune results store ({exc}); "
                             "choose another --out or remove the file") from None

    def _open(self):
        db = sqlite3.connect(self.path, timeout=30)
        try:          # another program's database is refused before anything in it changes
            tables = {t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables - {"rows"}:
                raise sqlite3.DatabaseError(f"it holds other tables: {', '.join(sorted(tables))}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS rows (matrix TEXT NOT NULL, threads INTEGER "
                       "NOT NULL, status TEXT NOT NULL, row TEXT NOT NULL, "
                       "PRIMARY KEY (matrix, threads))")
            cols = [r[1] for r in db.execute("PRAGMA table_info(rows)")]
            if cols != self.COLUMNS:
                raise sqlite3.DatabaseError(f"its 'rows' table has columns {cols}")
            db.commit()
        except sqlite3.DatabaseError:
            db.close()
            raise
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
        out = []
        for (r,) in self._db.execute(q + " ORDER BY rowid", args):
            try:
                row = json.loads(r)
            except (ValueError, TypeError):
                row = None
            if isinstance(row, dict) and "matrix" in row and "name" in row:
                out.append(row)
            else:
                warnings.warn(f"{self.path}: a stored row is not a result; skipped")
        return out

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


def read_results(out_dir):
    """A sweep's results as a pandas DataFrame: one row per matrix and contestant.

    Columns: matrix, name, status, rows, cols, nnz, threads, contestant,
    seconds (median per product), gflops, bytes (the contestant's matrix
    storage: the kernel's for pool kernels, plain CSR for SciPy and the
    peers), gbps (bytes + x + y over the time), selected_kernel, oracle_kernel,
    regret.  Failed matrices appear once with contestant None and their reason.
    out_dir: a ``bench --out`` directory (or its results.sqlite)."""
    import pandas as pd
    from ..machine import csr_bytes
    path = Path(out_dir)
    if path.is_dir():
        path = path / "results.sqlite"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no bench results here")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = [json.loads(r) for (r,) in db.execute("SELECT row FROM rows ORDER BY rowid")]
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{path}: not a spmvtune results store ({exc})") from None
    finally:
        db.close()
    out = []
    for r in rows:
        base = {k: r.get(k) for k in ("matrix", "name", "status", "rows", "cols", "nnz",
                                      "threads", "selected_kernel", "oracle_kernel", "regret")}
        seconds = r.get("seconds") or {}
        if not seconds:
            out.append({**base, "contestant": None, "seconds": None, "gflops": None,
                        "bytes": None, "gbps": None, "reason": r.get("reason")})
            continue
        plain = csr_bytes(r["rows"], r["cols"], r["nnz"]) - 8.0 * (r["rows"] + r["cols"])
        kb = r.get("kernel_bytes") or {}
        for name, t in seconds.items():
            nbytes = (r.get("selected_bytes") if name == "selected" else
                      kb.get(name, kb.get("baseline") if name == "csr_balanced" else None))
            nbytes = float(nbytes) if nbytes is not None else plain
            out.append({**base, "contestant": name, "seconds": t,
                        "gflops": 2.0 * r["nnz"] / t / 1e9 if t > 0 else None,
                        "bytes": nbytes,
                        "gbps": (nbytes + 8.0 * (r["rows"] + r["cols"])) / t / 1e9 if t > 0 else None,
                        "reason": r.get("reason")})
    return pd.DataFrame(out)
