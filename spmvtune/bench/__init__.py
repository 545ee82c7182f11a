"""``spmvtune bench``: sweep a collection of matrices, peers side by side.

The data flow, one module a step:

    items    what to measure: files, directories, bundled suites, SuiteSparse downloads
    measure  one matrix -> one result row (every contestant checked against SciPy, timed)
    runner   where rows are measured: in this process, in a worker process with a
             timeout, or on a Dask cluster
    store    rows committed to SQLite as soon as measured (resume), CSV export
    report   summary figures, report.md; plots the PNG charts
"""

from .store import read_results  # noqa: E402

__all__ = ["read_results"]
