"""Restarted GMRES: SciPy's ``gmres`` with the product and modified Gram-Schmidt fused."""
import math
import warnings

import numpy as np
import scipy.sparse.linalg as _sla
from scipy.linalg import get_lapack_funcs

from ._setup import describe, make_system, scipy_M, start

_EPS = np.finfo(np.float64).eps
_CALLBACK_TYPES = ("x", "pr_norm", "legacy")


def gmres(A, b, x0=None, *, rtol=1e-5, atol=0., restart=None, maxiter=None, M=None,
          callback=None, callback_type=None):
    """Solve ``A x = b`` with restarted GMRES, like :func:`scipy.sparse.linalg.gmres`.

    Same arguments and return value ``(x, info)`` (0 converged, ``maxiter``
    not converged), the same left preconditioning, inner tolerance control
    (gh-8400) and final test ``||b - A x|| <= max(rtol ||b||, atol)``.
    restart: Krylov vectors per cycle (default 20, at most n).  maxiter:
    restart cycles (default 10 n); with ``callback_type="legacy"`` (the
    default when a callback is given), inner iterations.
    callback_type: ``"x"`` (``callback(x)`` after each cycle), ``"pr_norm"``
    (``callback(||preconditioned residual|| / ||b||)`` after each inner
    iteration) or ``"legacy"``.
    A, b, x0, M: as in :func:`spmvtune.linalg.cg`.  Modified Gram-Schmidt
    subtracts the basis vectors from ``w`` in SciPy's order, two per pass over
    ``w``, and computes the next two coefficients in the same pass
    (:func:`_orthogonalize`): three vector streams per basis vector instead
    of SciPy's seven (a dot, then an axpy through a temporary).
    """
    return _solve(A, b, x0, rtol=rtol, atol=atol, restart=restart, maxiter=maxiter, M=M,
                  callback=callback, callback_type=callback_type)[:2]


def _solve(A, b, x0=None, *, rtol=1e-5, atol=0., restart=None, maxiter=None, M=None,
           callback=None, callback_type=None, monitor=None, threads=None, details=None):
    """gmres returning ``(x, info, inner iterations)``; ``monitor(inner,
    ||preconditioned residual||)`` after each inner iteration."""
    if callback is not None and callback_type is None:
        warnings.warn("spmvtune.linalg.gmres called without specifying `callback_type`. "
                      "The default value will be changed in a future release (as in SciPy). "
                      "For compatibility, specify a value for `callback_type` explicitly, "
                      "e.g., ``gmres(..., callback_type='pr_norm')``, or to retain the old "
                      "behavior ``gmres(..., callback_type='legacy')``",
                      category=DeprecationWarning, stacklevel=3)
    if callback_type is None:
        callback_type = "legacy"
    if callback_type not in _CALLBACK_TYPES:
        raise ValueError(f"Unknown callback_type: {callback_type!r}")
    if callback is None:
        callback_type = None
    restart_n = 20 if restart is None else restart
    s = make_system("gmres", A, b, x0, M, atol, rtol, maxiter, threads,
                    products_per_iter=min(restart_n, max(1, _n_of(A))) + 1)
    if s is None:
        count = _InnerCounter(callback, callback_type)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            x, info = _sla.gmres(A, b, x0, rtol=rtol, atol=atol, restart=restart,
                                 maxiter=maxiter, M=scipy_M(A, M), callback=count,
                                 callback_type=callback_type or "pr_norm")
        describe(None, details)
        return x, info, count.n
    if s.bnrm2 == 0:
        describe(s, details)
        return s.b.copy(), 0, 0
    start(s)
    try:
        with s.blas_limited():
            return _iterate(s, min(restart_n, s.n), callback, callback_type, monitor)
    finally:
        describe(s, details)


def _n_of(A):
    try:
        return int(A.shape[0])
    except (AttributeError, TypeError, IndexError):
        return 1


class _InnerCounter:
    """Counts inner iterations of a solve handed to SciPy (pr_norm callbacks)."""

    def __init__(self, callback, callback_type):
        self.callback = callback
        self.callback_type = callback_type
        self.n = 0

    def __call__(self, arg):
        if self.callback_type != "x":
            self.n += 1
        if self.callback is not None:
            self.callback(arg)


def _iterate(s, restart, callback, callback_type, monitor):
    n, x, b, atol, dinv, product = s.n, s.x, s.b, s.atol, s.dinv, s.product
    bounds, red, bnrm2, maxiter = s.bounds, s.red, s.bnrm2, s.maxiter
    residual = s.kernel("residual")
    mgs_first = s.kernel("mgs_first")
    mgs_pair = s.kernel("mgs_pair")
    red4 = np.zeros((red.shape[0], 4))
    scale = s.kernel("scale")
    plain = dinv is None and s.psolve is None
    lartg = get_lapack_funcs("lartg", dtype=np.float64)

    Mb_nrm2 = float(np.linalg.norm(s.precondition(b)))
    ptol_max_factor = 1.0
    ptol = Mb_nrm2 * min(ptol_max_factor, atol / bnrm2)
    presid = 0.0
    v = np.empty((restart + 1, n))
    h = np.zeros((restart, restart + 1))
    givens = np.zeros((restart, 2))
    S = np.zeros(restart + 1)
    r = v[0] if plain else np.empty(n)      # r = b - A x goes straight into v[0]
    inner_iter = 0
    rnorm = None

    for iteration in range(maxiter):
        if iteration == 0:
            if x.any():
                product(x, r)
                rr = residual(bounds, red, b, r)
            else:
                r[:] = b
                rr = product.dot2(r, r, r, r)[0]
            rnorm = math.sqrt(rr)
            if rnorm < atol:
                return x, 0, inner_iter
            s.checkpoint(rnorm)
        if plain:                           # v[0] already holds r
            tmp = np.float64(rnorm)
        elif dinv is not None:
            tmp = np.float64(math.sqrt(s.kernel("precond_copy")(bounds, red, r, dinv, v[0])))
        else:
            v[0] = s.precondition(r)
            tmp = np.float64(math.sqrt(product.dot2(v[0], v[0], v[0], v[0])[0]))
        scale(bounds, 1 / tmp, v[0])
        S[:] = 0.0
        S[0] = tmp

        breakdown = False
        for col in range(restart):
            w = v[col + 1]
            if plain:
                # the product fused with (v0 . w, w . w): the first Gram-Schmidt pass
                v0w, ww = product.dots(v[col], w, v[0])
            else:
                product(v[col], w)
                if s.psolve is not None:
                    w[:] = s.precondition(w)
                ww, v0w = mgs_first(bounds, red, w, v[0], dinv)
            h0 = math.sqrt(ww)
            h[col, 0] = v0w
            ww = _orthogonalize(mgs_pair, bounds, red4, h, v, w, col)
            h1 = math.sqrt(ww)
            h[col, col + 1] = h1
            if h1 <= _EPS * h0:
                h[col, col + 1] = 0
                breakdown = True
            else:
                scale(bounds, 1 / np.float64(h1), w)

            for k in range(col):
                c, sn = givens[k, 0], givens[k, 1]
                n0, n1 = h[col, k], h[col, k + 1]
                h[col, k], h[col, k + 1] = c * n0 + sn * n1, -sn * n0 + c * n1
            c, sn, mag = lartg(h[col, col], h[col, col + 1])
            givens[col, 0], givens[col, 1] = c, sn
            h[col, col], h[col, col + 1] = mag, 0
            tmp = -sn * S[col]
            S[col], S[col + 1] = c * S[col], tmp
            presid = abs(tmp)
            inner_iter += 1
            if callback_type in ("legacy", "pr_norm"):
                callback(presid / bnrm2)
            if monitor is not None:
                monitor(inner_iter, presid)
            if callback_type == "legacy" and inner_iter == maxiter:
                break
            if presid <= ptol or breakdown:
                break

        if h[col, col] == 0:
            S[col] = 0
        y = np.zeros(col + 1)
        y[:] = S[:col + 1]
        for k in range(col, 0, -1):
            if y[k] != 0:
                y[k] /= h[k, k]
                tmp = y[k]
                y[:k] -= tmp * h[k, :k]
        if y[0] != 0:
            y[0] /= h[0, 0]
        s.kernel("combine")(bounds, x, y, v)

        product(x, r)
        rnorm = math.sqrt(residual(bounds, red, b, r))
        if callback_type == "legacy" and inner_iter == maxiter:
            return x, 0 if rnorm <= atol else maxiter, inner_iter
        if callback_type == "x":
            callback(x)
        s.checkpoint(rnorm)
        if rnorm <= atol:
            break
        elif breakdown:
            break
        elif presid <= ptol:
            ptol_max_factor = max(_EPS, 0.25 * ptol_max_factor)
        else:
            ptol_max_factor = min(1.0, 1.5 * ptol_max_factor)
        ptol = presid * min(ptol_max_factor, atol / rnorm)

    if rnorm is None:                        # maxiter = 0: SciPy fails here; report the start
        product(x, r)
        rnorm = math.sqrt(residual(bounds, red, b, r))
    return x, 0 if rnorm <= atol else maxiter, inner_iter


def _orthogonalize(mgs_pair, bounds, red4, h, v, w, col, pairs=True):
    """Modified Gram-Schmidt of ``w`` against ``v[0..col]``, ``h[col, 0]``
    already computed.  Each pass subtracts the one or two vectors whose
    coefficients are known, in MGS order, and computes the next two
    coefficients: the first exactly as MGS does (against w after the
    subtractions), the second from its dot with the same w, corrected by the
    Gram term (vd . vc) times the first -- what MGS computes after subtracting
    the first, in exact arithmetic.  Half the passes over w.  Returns ||w||^2.
    ``pairs=False``: one step per pass (SciPy's order exactly)."""
    sub_a, sub_b = 0, None
    nxt = 1
    while True:
        c = nxt if nxt <= col else None
        d = nxt + 1 if (pairs and nxt + 1 <= col) else None
        ww, dc, dd, g = mgs_pair(
            bounds, red4, np.float64(h[col, sub_a]), v[sub_a],
            np.float64(h[col, sub_b] if sub_b is not None else 0.0),
            v[sub_b] if sub_b is not None else None, w,
            v[c] if c is not None else None, v[d] if d is not None else None)
        if c is None:
            return ww
        h[col, c] = dc
        sub_a, sub_b = c, None
        if d is not None:
            h[col, d] = dd - dc * g
            sub_b = d
        nxt += 2 if d is not None else 1
