"""Property-based: random CSR structures (hypothesis) through every kernel."""
import numpy as np
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings, strategies as st

import spmvtune
from spmvtune.pool import KernelUnusable
from reference import assert_matches


@st.composite
def csr_matrices(draw):
    m = draw(st.integers(0, 40))
    n = draw(st.integers(0, 40))
    cells = m * n
    nnz = draw(st.integers(0, min(cells, 200)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    flat = rng.choice(cells, size=nnz, replace=False) if nnz else np.zeros(0, dtype=int)
    if draw(st.booleans()) and nnz:          # concentrate entries in one row sometimes
        flat = (flat % max(n, 1)) + n * (seed % max(m, 1))
        flat = np.unique(flat)
    values = draw(st.sampled_from(["random", "ones", "few", "wide_range"]))
    k = len(flat)
    data = {"random": rng.uniform(-1, 1, k), "ones": np.ones(k),
            "few": rng.choice([-1.0, 0.5, 2.0], k),
            "wide_range": rng.uniform(-1, 1, k) * 10.0 ** rng.integers(-200, 200, k)}[values]
    A = sp.csr_array((data, np.divmod(flat, max(n, 1))), shape=(m, n))
    if draw(st.booleans()) and m == n:
        A = sp.csr_array(A + A.T)
    A.sum_duplicates()
    return A


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(A=csr_matrices(), threads=st.sampled_from([1, 2]), seed=st.integers(0, 1000))
def test_all_kernels_on_random_structures(A, threads, seed):
    x = np.random.default_rng(seed).uniform(-1, 1, A.shape[1])
    for kernel in spmvtune.kernel_names():
        try:
            op = spmvtune.select_kernel(A, kernel=kernel, threads=threads)
        except KernelUnusable:
            assert kernel == "csr_sym"
            continue
        assert_matches(op(x), A, x, kernel)
