"""Small matrices of every structural family the kernels must handle."""
import numpy as np
import scipy.sparse as sp

from spmvtune import generate


def _csr(A):
    A = sp.csr_array(A, dtype=np.float64)
    A.sum_duplicates()
    return A


def one_dense_row(n=300, row=17, seed=0):
    rng = np.random.default_rng(seed)
    A = sp.lil_array((n, n))
    A[row, :] = rng.uniform(-1, 1, n)
    A.setdiag(2.0)
    return _csr(A)


def empty_rows(n=200, seed=0):
    A = generate.random_scatter(n, 5, seed=seed).tolil()
    A[::3, :] = 0
    A = _csr(A)
    A.eliminate_zeros()
    return A


def wide_gaps(seed=0):
    """Rows whose column gaps need 8-, 16- and 32-bit deltas (delta escapes)."""
    rng = np.random.default_rng(seed)
    n_cols = 200_000
    rows, cols = [], []
    for i in range(60):
        span = (50, 5_000, n_cols)[i % 3]
        c = rng.choice(span, size=8, replace=False) + (0 if span == n_cols else i)
        rows += [i] * 8
        cols += list(c)
    return _csr(sp.coo_array((rng.uniform(-1, 1, len(rows)), (rows, cols)), shape=(60, n_cols)))


FAMILIES = {
    "empty_0x0": lambda: _csr(sp.csr_array((0, 0))),
    "empty_5x0": lambda: _csr(sp.csr_array((5, 0))),
    "empty_0x5": lambda: _csr(sp.csr_array((0, 5))),
    "all_zero_4x7": lambda: _csr(sp.csr_array((4, 7))),
    "single_entry": lambda: _csr(sp.csr_array(([3.0], ([2], [1])), shape=(4, 3))),
    "empty_rows": empty_rows,
    "one_dense_row": one_dense_row,
    "one_column": lambda: _csr(sp.random_array((400, 1), density=0.5, rng=1)),
    "wide": lambda: generate.random_scatter(30, 20, n_cols=5_000, seed=2),
    "tall": lambda: generate.random_scatter(5_000, 2, n_cols=30, seed=3),
    "diagonal": lambda: _csr(sp.diags_array(np.arange(1.0, 501.0))),
    "banded": lambda: generate.banded(700, 4),
    "random": lambda: generate.random_scatter(1_000, 7, seed=4),
    "power_law": lambda: generate.power_law(3_000, 6, exponent=1.2, seed=5),
    "blocks": lambda: generate.fem_blocks(200, 6, bs=3, spread=10),
    "stencil": lambda: generate.stencil3d(9),
    "symmetric": lambda: generate.symmetric(generate.random_scatter(600, 4, seed=6)),
    "skew_symmetric": lambda: generate.symmetric(generate.random_scatter(600, 4, seed=7), skew=True),
    "laplacian": lambda: generate.laplacian_2d(30),
    "short_rows": lambda: generate.short_rows(2_000, seed=8),
    "wide_gaps": wide_gaps,
    "dense_small": lambda: _csr(np.random.default_rng(9).uniform(-1, 1, (40, 30))),
}
