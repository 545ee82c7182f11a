"""``select_kernel``: choose a kernel of the pool for a matrix and prepare it."""
import time

from .operator import SpMVOperator
from .pool import KernelUnusable, get_kernel
from .validate import as_canonical_csr, check_threads

#: Below this many nonzeros one thread wins: a parallel launch costs about as
#: much as the whole product (measured on the project machine).
SMALL_NNZ = 20_000


def default_rule(csr, threads):
    """A fixed rule until the trained selector lands: (kernel, threads)."""
    if csr.nnz < SMALL_NNZ:
        return "csr_balanced", 1
    return "csr_balanced", threads


def select_kernel(A, *, kernel=None, threads=None, options=None, wide_indices=False):
    """Prepare ``A`` for repeated ``y = A @ x`` and return an :class:`SpMVOperator`.

    A: any scipy.sparse matrix or array (converted once to canonical float64 CSR).
    kernel: a name from :func:`spmvtune.kernel_names` to force a choice; None
        uses the built-in rule.
    threads: threads per call (default: all of Numba's threads; small matrices
        may get one thread from the rule).
    options: tuning parameters of the kernel (e.g. ``{"distance": 32}`` for
        the prefetch kernels); see ``KernelSpec.options``.
    wide_indices: force 64-bit index arrays (testing the large-matrix path).
    Raises ValueError for an unknown kernel or one that cannot represent A
    (:class:`~spmvtune.pool.KernelUnusable`, with the reason).
    """
    csr = as_canonical_csr(A)
    threads = check_threads(threads)
    if kernel is None:
        kernel, threads = default_rule(csr, threads)
    spec = get_kernel(kernel)
    options = dict(options or {})
    unknown = set(options) - set(spec.options)
    if unknown:
        raise ValueError(f"kernel {kernel!r} takes options {sorted(spec.options) or 'none'}, "
                         f"got {sorted(unknown)}")
    if kernel == "csr_serial":
        threads = 1
    t0 = time.perf_counter()
    try:
        prepared = spec.prepare(csr, threads, wide=wide_indices, **options)
    except KernelUnusable as exc:
        raise KernelUnusable(f"kernel {kernel!r} cannot run this matrix: {exc}") from None
    setup = time.perf_counter() - t0
    return SpMVOperator(kernel, csr.shape, prepared, threads, setup, csr.nnz)
