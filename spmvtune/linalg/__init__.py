"""Iterative solvers with SciPy's interface, running spmvtune's kernels.

``cg``, ``bicgstab`` and ``gmres`` take the arguments of their
``scipy.sparse.linalg`` namesakes and return ``(x, info)`` the same way, so
swapping the import is the whole change::

    from spmvtune.linalg import cg          # instead of scipy.sparse.linalg
    x, info = cg(A, b, rtol=1e-8)

What differs is inside: the product runs a kernel of spmvtune's pool
(selected during the solve when enough iterations remain to repay it,
:mod:`spmvtune.linalg.tune`), the vector updates of each iteration are fused
into threaded Numba loops that stream each vector as few times as possible
(:mod:`spmvtune.linalg._vector`), dot products ride along with the product
where the kernel allows (:mod:`spmvtune.linalg._fused`), nothing of size n is
allocated per iteration, and NumPy's BLAS is held to one thread during the
solve.  Complex and single-precision systems are passed to SciPy.
"""
from .bicgstab import bicgstab
from .cg import cg
from .gmres import gmres

__all__ = ["cg", "bicgstab", "gmres"]
