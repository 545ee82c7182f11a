"""BiCGSTAB: SciPy's ``bicgstab`` with the products and the vector work fused."""
import math

import numpy as np
import scipy.sparse.linalg as _sla

from ._setup import Counter, describe, make_system, scipy_M, start

#: SciPy's breakdown thresholds (from the original Fortran: eps**2).
RHOTOL = np.finfo(np.float64).eps ** 2
OMEGATOL = RHOTOL


def bicgstab(A, b, x0=None, *, rtol=1e-5, atol=0., maxiter=None, M=None, callback=None):
    """Solve ``A x = b`` with BiCGSTAB, like :func:`scipy.sparse.linalg.bicgstab`
    (same arguments, stopping test ``||b - A x|| < max(rtol ||b||, atol)``,
    return value ``(x, info)``: 0 converged, ``maxiter`` not converged, -10
    breakdown of rho, -11 breakdown of omega or of ``rtilde . v``).

    A, b, x0, M, callback: as in :func:`spmvtune.linalg.cg`.  Each iteration
    runs two products, each fused with the dots that follow it, and three
    passes over the vectors.
    """
    return _solve(A, b, x0, rtol=rtol, atol=atol, maxiter=maxiter, M=M, callback=callback)[:2]


def _solve(A, b, x0=None, *, rtol=1e-5, atol=0., maxiter=None, M=None, callback=None,
           monitor=None, threads=None, details=None):
    s = make_system("bicgstab", A, b, x0, M, atol, rtol, maxiter, threads, products_per_iter=2)
    if s is None:
        it = Counter(callback)
        x, info = _sla.bicgstab(A, b, x0, rtol=rtol, atol=atol, maxiter=maxiter,
                                M=scipy_M(A, M), callback=it)
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
    direction = s.kernel("bicg_direction")
    half = s.kernel("bicg_half")
    step = s.kernel("bicg_step")
    r = np.empty(n)
    if x.any():
        product(x, r)
        s.kernel("residual")(bounds, red, b, r)
    else:
        r[:] = b
    rtilde = r.copy()
    p = np.zeros(n)
    v = np.zeros(n)
    t = np.empty(n)
    phat = np.empty(n) if dinv is not None else p
    shat = np.empty(n) if dinv is not None else r
    rr, rho_next = product.dot2(r, r, rtilde, r)
    s.checkpoint(math.sqrt(rr))
    rho_prev = omega = alpha = np.float64(0.0)
    info = s.maxiter
    iterations = 0
    for iteration in range(s.maxiter):
        if math.sqrt(rr) < atol:
            info = 0
            break
        rho = np.float64(rho_next)
        if abs(rho) < RHOTOL:
            info = -10
            break
        if iteration > 0:
            if abs(omega) < OMEGATOL:
                info = -11
                break
            beta = (rho / rho_prev) * (alpha / omega)
        else:
            beta = np.float64(0.0)
        direction(bounds, beta, omega, p, v, r, phat, dinv)
        if s.psolve is not None:
            phat = s.precondition(p)
        rv = product.dots(phat, v, rtilde)[0]
        if rv == 0:
            info = -11
            break
        alpha = rho / np.float64(rv)
        ss = half(bounds, red, alpha, r, v, shat, dinv)
        if math.sqrt(ss) < atol:
            s.kernel("axpy")(bounds, alpha, phat, x)
            info = 0
            iterations = iteration + 1          # half a step, no callback (as SciPy)
            break
        if s.psolve is not None:
            shat = s.precondition(r)
        ts, tt = product.dots(shat, t, r)
        omega = np.float64(ts) / np.float64(tt)
        rr, rho_next = step(bounds, red, alpha, omega, x, phat, shat, r, t, rtilde)
        rho_prev = rho
        iterations = iteration + 1
        if callback is not None:
            callback(x)
        if monitor is not None:
            monitor(iterations, math.sqrt(rr))
        s.checkpoint(math.sqrt(rr))
    return x, info, iterations
