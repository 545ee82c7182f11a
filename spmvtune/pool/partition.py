"""Work partitions for the threaded kernels.

A row partition is a ``uint64`` array ``bounds`` of length ``nparts + 1``:
partition ``p`` owns rows ``bounds[p]:bounds[p+1]``.  An nnz partition splits
the nonzeros instead (rows may be shared between partitions), see
:func:`nnz_partition`.
"""
import numpy as np

#: Cost of one row relative to one nonzero when balancing (loop overhead and
#: the write of ``y[i]``); keeps matrices with many empty rows balanced.
ROW_COST = 1.0


def even_rows(n_rows, nparts):
    """``nparts`` partitions with (almost) the same number of rows."""
    return np.linspace(0, n_rows, nparts + 1).round().astype(np.uint64)


def balanced_rows(indptr, nparts):
    """``nparts`` row partitions of (almost) equal cost ``nnz + ROW_COST * rows``.

    indptr: (n_rows + 1,) integer row pointer.  Returns (nparts + 1,) uint64:
    bound p is the first row whose cost before it reaches p / nparts of the
    total (a binary search per bound: O(nparts log n_rows), no pass over
    the rows).
    """
    n_rows = len(indptr) - 1
    cost = lambda i: float(indptr[i]) + ROW_COST * i           # noqa: E731
    targets = np.linspace(0.0, cost(n_rows), nparts + 1)
    bounds = np.zeros(nparts + 1, dtype=np.uint64)
    lo = 0
    for p in range(1, nparts):
        hi = n_rows + 1                      # first i in [lo, n_rows] with cost(i) >= target
        while lo < hi:
            mid = (lo + hi) // 2
            if cost(mid) < targets[p]:
                lo = mid + 1
            else:
                hi = mid
        bounds[p] = lo
    bounds[nparts] = n_rows
    return bounds


def nnz_partition(indptr, nparts):
    """Split the nonzeros into ``nparts`` equal ranges, rows may straddle them.

    Returns ``(kbounds, first_row, end_row, tail_row)``, each uint64:
    partition ``p`` owns nonzeros ``kbounds[p]:kbounds[p+1]``; it writes
    ``y[r]`` for the rows ``first_row[p] <= r < end_row[p]`` that *end* inside
    its range (their start may lie in an earlier partition, whose part is then
    added afterwards), and it computes a partial sum for ``tail_row[p]``, a row
    that starts inside its range and ends in a later one (``n_rows`` if none).
    Every row, empty rows included, is ended by exactly one partition.
    """
    n_rows = len(indptr) - 1
    nnz = int(indptr[-1])
    kb = np.linspace(0, nnz, nparts + 1).round().astype(np.int64)
    # rows ending in (kb[p], kb[p+1]]; partition 0 also takes rows ending at 0.
    # The bounds are searched in indptr's own type (no int64 copy of indptr).
    ends = indptr[1:]
    first = np.searchsorted(ends, kb[:-1].astype(ends.dtype), side="right")
    first[0] = 0
    end = np.searchsorted(ends, kb[1:].astype(ends.dtype), side="right")
    end[-1] = n_rows
    tail = end.copy()
    for p in range(nparts):
        r = end[p]
        if not (r < n_rows and int(indptr[r]) < kb[p + 1] and kb[p] < kb[p + 1]):
            tail[p] = n_rows
    return tuple(a.astype(np.uint64) for a in (kb, first, end, tail))
