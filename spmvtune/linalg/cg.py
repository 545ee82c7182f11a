"""Conjugate gradients: SciPy's ``cg`` with the product and the vector work fused."""
import math

import numpy as np
import scipy.sparse.linalg as _sla

from ._setup import Counter, describe, make_system, scipy_M, start


def cg(A, b, x0=None, *, rtol=1e-5, atol=0., maxiter=None, M=None, callback=None):
    """Solve ``A x = b`` for a symmetric positive definite ``A``, like
    :func:`scipy.sparse.linalg.cg` (same arguments, stopping test
    ``||b - A x|| < max(rtol ||b||, atol)``, return value ``(x, info)``:
    0 converged, ``maxiter`` not converged).

    A: a scipy.sparse matrix (a kernel is selected and prepared inside), an
        operator from :func:`spmvtune.select_kernel`, or anything SciPy accepts
        (a LinearOperator, a dense array: its own product is used).
    b: (n,) or (n, 1).  x0: None, ``"Mb"`` or (n,) / (n, 1).
    M: None, ``"jacobi"`` (the inverse of A's diagonal, fused into the vector
        updates; A must be sparse) or any preconditioner SciPy accepts.
    callback: ``callback(xk)`` after each iteration (xk is the iterate, updated
        in place: copy it to keep it).
    Returns x as a new (n,) float64 array.  Complex and single-precision
    systems are passed to SciPy's ``cg``.
    """
    return _solve(A, b, x0, rtol=rtol, atol=atol, maxiter=maxiter, M=M, callback=callback)[:2]


def _solve(A, b, x0=None, *, rtol=1e-5, atol=0., maxiter=None, M=None, callback=None,
           monitor=None, threads=None, details=None):
    """cg returning ``(x, info, iterations)``; ``monitor(iteration, ||r||)`` is
    called after each iteration (cheap: no x)."""
    s = make_system("cg", A, b, x0, M, atol, rtol, maxiter, threads, products_per_iter=1)
    if s is None:
        it = Counter(callback)
        x, info = _sla.cg(A, b, x0, rtol=rtol, atol=atol, maxiter=maxiter, M=scipy_M(A, M),
                          callback=it)
        describe(None, details)
        return x, info, it.n
    if s.bnrm2 == 0:
        describe(s, details)
        return s.b.copy(), 0, 0
    start(s)
    try:
        with s.blas_limited():
            return _iterate(s, callback, monitor)
    finally:
        describe(s, details)


def _iterate(s, callback, monitor):
    n, x, b, atol, dinv, product = s.n, s.x, s.b, s.atol, s.dinv, s.product
    bounds, red = s.bounds, s.red
    residual = s.kernel("cg_residual")
    direction = s.kernel("cg_direction")
    r = np.empty(n)
    p = np.zeros(n)
    q = np.empty(n)
    z = r
    if x.any():
        product(x, r)
        s.kernel("residual")(bounds, red, b, r)
    else:
        r[:] = b
    rr, rz = s.product.dot2(r, r, r, r) if dinv is None else _rz(s, r)
    s.checkpoint(math.sqrt(rr))
    # Without a callback, x += alpha p waits for the next pass over p (one
    # stream fewer); ``pending`` marks an alpha not yet applied to x.
    eager = callback is not None
    alpha = pending = np.float64(0.0)
    rho_prev = np.float64(1.0)
    iterations = 0
    for iteration in range(s.maxiter):
        if math.sqrt(rr) < atol:
            break
        if s.psolve is not None:
            z = s.precondition(r)
            rho_cur = np.float64(s.product.dot2(r, z, r, z)[0])
        else:
            rho_cur = np.float64(rz)
        beta = rho_cur / rho_prev if iteration > 0 else np.float64(0.0)
        direction(bounds, pending, x if pending else None, p, z, dinv, beta)
        pending = np.float64(0.0)
        pq = product.dots(p, q, p)[0]
        alpha = rho_cur / np.float64(pq)
        rr, rz = residual(bounds, red, alpha, x if eager else None, p, r, q, dinv)
        if not eager:
            pending = alpha
        rho_prev = rho_cur
        iterations = iteration + 1
        if callback is not None:
            callback(x)
        if monitor is not None:
            monitor(iterations, math.sqrt(rr))
        s.checkpoint(math.sqrt(rr))
    else:
        iterations = s.maxiter
        if pending:
            s.kernel("axpy")(bounds, pending, p, x)
        return x, s.maxiter, iterations
    if pending:
        s.kernel("axpy")(bounds, pending, p, x)
    return x, 0, iterations


def _rz(s, r):
    """(r.r, r.(D^-1 r)) of the initial residual (Jacobi)."""
    z = s.dinv * r
    return s.product.dot2(r, r, r, z)
