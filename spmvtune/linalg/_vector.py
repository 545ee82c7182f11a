"""Fused, threaded vector kernels of the solvers.

Each kernel streams its vectors once and writes in place: the updates of one
solver step (axpys, the preconditioner's diagonal, the dot products the next
step needs) share one pass over memory instead of one NumPy call (and often
one temporary) each.

Conventions (those of the pool's kernels, :mod:`spmvtune.pool`):

- ``bounds``: (nparts + 1,) uint64 partition of ``0..n`` (:func:`vector_bounds`);
  ``_par`` kernels run one partition per thread (``prange``), ``_ser`` ones loop
  over them on the calling thread (no thread launch, for short vectors).
- ``red``: (nparts, 2) float64 scratch for per-partition partial sums, so that
  reductions allocate nothing and are summed in a fixed order.
- ``dinv``: the inverse of the Jacobi preconditioner's diagonal, or ``None``
  (the identity); the choice is made by type at compile time (:func:`_pre`).
- Vectors are (n,) float64, C-contiguous.  Nothing is allocated.

The arithmetic of every update is the one SciPy's solvers perform (e.g.
``p = (p - omega v) * beta + r`` for BiCGSTAB), so iterates agree with
SciPy's to rounding; only dot products are summed in another order (each
partition in four interleaved partial sums).
"""
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ..pool.partition import even_rows

U0, U1, U2, U3, U4 = (np.uint64(v) for v in range(5))

#: Below this length the vector kernels run on the calling thread: a threaded
#: launch costs a few microseconds, and passes over vectors that live in the
#: L2/L3 gain little from a second core (benchmarks/solvers.py --kernels: on
#: the shared 2-core machine threads tied serial loops up to 2^18 and won at
#: 2^20).
SERIAL_BELOW = 1 << 16


def vector_bounds(n, threads):
    """(nparts + 1,) uint64 even partition of ``0..n``: one part per thread,
    one part when ``n < SERIAL_BELOW``."""
    return even_rows(n, threads if n >= SERIAL_BELOW else 1)


def _pre(dinv, r, i):
    """``dinv[i] * r[i]`` (Jacobi) or ``r[i]`` (no preconditioner)."""
    return r[i] if dinv is None else dinv[i] * r[i]


@overload(_pre, inline="always")
def _pre_impl(dinv, r, i):
    if isinstance(dinv, types.NoneType):
        return lambda dinv, r, i: r[i]
    return lambda dinv, r, i: dinv[i] * r[i]


# ---------------------------------------------------------------- reductions

@njit(cache=True, nogil=True)
def _dot2_part(lo, hi, a, b, c, d):
    """(a.b, c.d) over [lo, hi), four partial sums each (no latency chain)."""
    s0 = s1 = s2 = s3 = 0.0
    t0 = t1 = t2 = t3 = 0.0
    i = lo
    while i + U4 <= hi:
        s0 += a[i] * b[i]
        s1 += a[i + U1] * b[i + U1]
        s2 += a[i + U2] * b[i + U2]
        s3 += a[i + U3] * b[i + U3]
        t0 += c[i] * d[i]
        t1 += c[i + U1] * d[i + U1]
        t2 += c[i + U2] * d[i + U2]
        t3 += c[i + U3] * d[i + U3]
        i += U4
    while i < hi:
        s0 += a[i] * b[i]
        t0 += c[i] * d[i]
        i += U1
    return (s0 + s1) + (s2 + s3), (t0 + t1) + (t2 + t3)


@njit(cache=True, nogil=True)
def _sum2(red):
    s = t = 0.0
    for p in range(red.shape[0]):
        s += red[p, 0]
        t += red[p, 1]
    return s, t


@njit(cache=True, parallel=True)
def dot2_par(bounds, red, a, b, c, d):
    """(a.b, c.d) in one pass."""
    for p in prange(bounds.shape[0] - 1):
        red[p, 0], red[p, 1] = _dot2_part(bounds[p], bounds[p + 1], a, b, c, d)
    return _sum2(red)


@njit(cache=True, nogil=True)
def dot2_ser(bounds, red, a, b, c, d):
    return _dot2_part(U0, bounds[-1], a, b, c, d)


# ---------------------------------------------------------------- CG

@njit(cache=True, nogil=True)
def _cg_residual_part(lo, hi, alpha, x, p, r, q, dinv):
    # x += alpha p (unless x is None: deferred); r -= alpha q;
    # returns (r.r, r.(M r)) with M = diag(dinv) or the identity
    s0 = s1 = t0 = t1 = 0.0
    i = lo
    while i + U2 <= hi:
        if x is not None:
            x[i] += alpha * p[i]
            x[i + U1] += alpha * p[i + U1]
        a = r[i] - alpha * q[i]
        b = r[i + U1] - alpha * q[i + U1]
        r[i] = a
        r[i + U1] = b
        s0 += a * a
        s1 += b * b
        if dinv is not None:
            t0 += a * _pre(dinv, r, i)
            t1 += b * _pre(dinv, r, i + U1)
        i += U2
    while i < hi:
        if x is not None:
            x[i] += alpha * p[i]
        a = r[i] - alpha * q[i]
        r[i] = a
        s0 += a * a
        if dinv is not None:
            t0 += a * _pre(dinv, r, i)
        i += U1
    s = s0 + s1
    return s, (s if dinv is None else t0 + t1)


@njit(cache=True, parallel=True)
def cg_residual_par(bounds, red, alpha, x, p, r, q, dinv):
    """x += alpha p (skipped when x is None); r -= alpha q.  Returns
    (r.r, r.z) with z = diag(dinv) r (= r.r without dinv)."""
    for pp in prange(bounds.shape[0] - 1):
        red[pp, 0], red[pp, 1] = _cg_residual_part(bounds[pp], bounds[pp + 1],
                                                   alpha, x, p, r, q, dinv)
    return _sum2(red)


@njit(cache=True, nogil=True)
def cg_residual_ser(bounds, red, alpha, x, p, r, q, dinv):
    return _cg_residual_part(U0, bounds[-1], alpha, x, p, r, q, dinv)


@njit(cache=True, nogil=True)
def _cg_direction_part(lo, hi, alpha, x, p, z, dinv, beta):
    for i in range(lo, hi):
        if x is not None:
            x[i] += alpha * p[i]
        p[i] = p[i] * beta + _pre(dinv, z, i)


@njit(cache=True, parallel=True)
def cg_direction_par(bounds, alpha, x, p, z, dinv, beta):
    """x += alpha p (skipped when x is None), then p = p beta + M z with
    M = diag(dinv) or the identity."""
    for pp in prange(bounds.shape[0] - 1):
        _cg_direction_part(bounds[pp], bounds[pp + 1], alpha, x, p, z, dinv, beta)


@njit(cache=True, nogil=True)
def cg_direction_ser(bounds, alpha, x, p, z, dinv, beta):
    _cg_direction_part(U0, bounds[-1], alpha, x, p, z, dinv, beta)


# ---------------------------------------------------------------- BiCGSTAB

@njit(cache=True, nogil=True)
def _bicg_direction_part(lo, hi, beta, omega, p, v, r, phat, dinv):
    for i in range(lo, hi):
        a = (p[i] - omega * v[i]) * beta + r[i]
        p[i] = a
        if dinv is not None:
            phat[i] = dinv[i] * a


@njit(cache=True, parallel=True)
def bicg_direction_par(bounds, beta, omega, p, v, r, phat, dinv):
    """p = (p - omega v) beta + r; phat = diag(dinv) p when dinv is given."""
    for pp in prange(bounds.shape[0] - 1):
        _bicg_direction_part(bounds[pp], bounds[pp + 1], beta, omega, p, v, r, phat, dinv)


@njit(cache=True, nogil=True)
def bicg_direction_ser(bounds, beta, omega, p, v, r, phat, dinv):
    _bicg_direction_part(U0, bounds[-1], beta, omega, p, v, r, phat, dinv)


@njit(cache=True, nogil=True)
def _bicg_half_part(lo, hi, alpha, r, v, shat, dinv):
    s0 = s1 = 0.0
    i = lo
    while i + U2 <= hi:
        a = r[i] - alpha * v[i]
        b = r[i + U1] - alpha * v[i + U1]
        r[i] = a
        r[i + U1] = b
        s0 += a * a
        s1 += b * b
        if dinv is not None:
            shat[i] = dinv[i] * a
            shat[i + U1] = dinv[i + U1] * b
        i += U2
    while i < hi:
        a = r[i] - alpha * v[i]
        r[i] = a
        s0 += a * a
        if dinv is not None:
            shat[i] = dinv[i] * a
        i += U1
    return s0 + s1, 0.0


@njit(cache=True, parallel=True)
def bicg_half_par(bounds, red, alpha, r, v, shat, dinv):
    """r -= alpha v (r is then SciPy's s); shat = diag(dinv) r when dinv is
    given.  Returns r.r."""
    for pp in prange(bounds.shape[0] - 1):
        red[pp, 0], red[pp, 1] = _bicg_half_part(bounds[pp], bounds[pp + 1], alpha, r, v,
                                                 shat, dinv)
    return _sum2(red)[0]


@njit(cache=True, nogil=True)
def bicg_half_ser(bounds, red, alpha, r, v, shat, dinv):
    return _bicg_half_part(U0, bounds[-1], alpha, r, v, shat, dinv)[0]


@njit(cache=True, nogil=True)
def _bicg_step_part(lo, hi, alpha, omega, x, phat, shat, r, t, rtilde):
    s0 = s1 = t0 = t1 = 0.0
    i = lo
    while i + U2 <= hi:
        x[i] = (x[i] + alpha * phat[i]) + omega * shat[i]
        x[i + U1] = (x[i + U1] + alpha * phat[i + U1]) + omega * shat[i + U1]
        a = r[i] - omega * t[i]
        b = r[i + U1] - omega * t[i + U1]
        r[i] = a
        r[i + U1] = b
        s0 += a * a
        s1 += b * b
        t0 += rtilde[i] * a
        t1 += rtilde[i + U1] * b
        i += U2
    while i < hi:
        x[i] = (x[i] + alpha * phat[i]) + omega * shat[i]
        a = r[i] - omega * t[i]
        r[i] = a
        s0 += a * a
        t0 += rtilde[i] * a
        i += U1
    return s0 + s1, t0 + t1


@njit(cache=True, parallel=True)
def bicg_step_par(bounds, red, alpha, omega, x, phat, shat, r, t, rtilde):
    """x = (x + alpha phat) + omega shat; r -= omega t.  Returns (r.r, rtilde.r).
    ``shat`` may be ``r`` itself (no preconditioner): it is read before r is
    written, element by element."""
    for pp in prange(bounds.shape[0] - 1):
        red[pp, 0], red[pp, 1] = _bicg_step_part(bounds[pp], bounds[pp + 1], alpha, omega,
                                                 x, phat, shat, r, t, rtilde)
    return _sum2(red)


@njit(cache=True, nogil=True)
def bicg_step_ser(bounds, red, alpha, omega, x, phat, shat, r, t, rtilde):
    return _bicg_step_part(U0, bounds[-1], alpha, omega, x, phat, shat, r, t, rtilde)


# ---------------------------------------------------------------- shared

@njit(cache=True, nogil=True)
def _axpy_part(lo, hi, a, x, y):
    for i in range(lo, hi):
        y[i] += a * x[i]


@njit(cache=True, parallel=True)
def axpy_par(bounds, a, x, y):
    """y += a x."""
    for pp in prange(bounds.shape[0] - 1):
        _axpy_part(bounds[pp], bounds[pp + 1], a, x, y)


@njit(cache=True, nogil=True)
def axpy_ser(bounds, a, x, y):
    _axpy_part(U0, bounds[-1], a, x, y)


@njit(cache=True, nogil=True)
def _residual_part(lo, hi, b, y):
    s0 = s1 = 0.0
    i = lo
    while i + U2 <= hi:
        a = b[i] - y[i]
        c = b[i + U1] - y[i + U1]
        y[i] = a
        y[i + U1] = c
        s0 += a * a
        s1 += c * c
        i += U2
    while i < hi:
        a = b[i] - y[i]
        y[i] = a
        s0 += a * a
        i += U1
    return s0 + s1, 0.0


@njit(cache=True, parallel=True)
def residual_par(bounds, red, b, y):
    """y = b - y (y holds A x on entry).  Returns y.y."""
    for pp in prange(bounds.shape[0] - 1):
        red[pp, 0], red[pp, 1] = _residual_part(bounds[pp], bounds[pp + 1], b, y)
    return _sum2(red)[0]


@njit(cache=True, nogil=True)
def residual_ser(bounds, red, b, y):
    return _residual_part(U0, bounds[-1], b, y)[0]


# ---------------------------------------------------------------- GMRES

@njit(cache=True, nogil=True)
def _mgs_first_part(lo, hi, w, v0, dinv):
    s0 = s1 = t0 = t1 = 0.0
    i = lo
    while i + U2 <= hi:
        if dinv is not None:
            w[i] = dinv[i] * w[i]
            w[i + U1] = dinv[i + U1] * w[i + U1]
        a = w[i]
        b = w[i + U1]
        s0 += a * a
        s1 += b * b
        t0 += v0[i] * a
        t1 += v0[i + U1] * b
        i += U2
    while i < hi:
        if dinv is not None:
            w[i] = dinv[i] * w[i]
        a = w[i]
        s0 += a * a
        t0 += v0[i] * a
        i += U1
    return s0 + s1, t0 + t1


@njit(cache=True, parallel=True)
def mgs_first_par(bounds, red, w, v0, dinv):
    """w = diag(dinv) w when dinv is given.  Returns (w.w, v0.w)."""
    for pp in prange(bounds.shape[0] - 1):
        red[pp, 0], red[pp, 1] = _mgs_first_part(bounds[pp], bounds[pp + 1], w, v0, dinv)
    return _sum2(red)


@njit(cache=True, nogil=True)
def mgs_first_ser(bounds, red, w, v0, dinv):
    return _mgs_first_part(U0, bounds[-1], w, v0, dinv)


@njit(cache=True, nogil=True)
def _precond_copy_part(lo, hi, r, dinv, v):
    s0 = s1 = 0.0
    i = lo
    while i + U2 <= hi:
        a = _pre(dinv, r, i)
        b = _pre(dinv, r, i + U1)
        v[i] = a
        v[i + U1] = b
        s0 += a * a
        s1 += b * b
        i += U2
    while i < hi:
        a = _pre(dinv, r, i)
        v[i] = a
        s0 += a * a
        i += U1
    return s0 + s1, 0.0


@njit(cache=True, parallel=True)
def precond_copy_par(bounds, red, r, dinv, v):
    """v = diag(dinv) r (or a copy of r).  Returns v.v."""
    for pp in prange(bounds.shape[0] - 1):
        red[pp, 0], red[pp, 1] = _precond_copy_part(bounds[pp], bounds[pp + 1], r, dinv, v)
    return _sum2(red)[0]


@njit(cache=True, nogil=True)
def precond_copy_ser(bounds, red, r, dinv, v):
    return _precond_copy_part(U0, bounds[-1], r, dinv, v)[0]


@njit(cache=True, nogil=True)
def _scale_part(lo, hi, a, w):
    for i in range(lo, hi):
        w[i] *= a


@njit(cache=True, parallel=True)
def scale_par(bounds, a, w):
    """w *= a."""
    for pp in prange(bounds.shape[0] - 1):
        _scale_part(bounds[pp], bounds[pp + 1], a, w)


@njit(cache=True, nogil=True)
def scale_ser(bounds, a, w):
    _scale_part(U0, bounds[-1], a, w)


@njit(cache=True, nogil=True)
def _combine_part(lo, hi, x, y, V):
    k = y.shape[0]
    for i in range(lo, hi):
        s = 0.0
        for j in range(k):
            s += y[j] * V[j, i]
        x[i] += s


@njit(cache=True, parallel=True)
def combine_par(bounds, x, y, V):
    """x += y @ V[:len(y)] (V: (>= len(y), n) rows of the Krylov basis)."""
    for pp in prange(bounds.shape[0] - 1):
        _combine_part(bounds[pp], bounds[pp + 1], x, y, V)


@njit(cache=True, nogil=True)
def combine_ser(bounds, x, y, V):
    _combine_part(U0, bounds[-1], x, y, V)


@njit(cache=True, nogil=True)
def _mgs_pair_part(lo, hi, ha, va, hb, vb, w, vc, vd):
    s0 = s1 = c0 = c1 = d0 = d1 = g0 = g1 = 0.0
    i = lo
    while i + U2 <= hi:
        a = w[i] - ha * va[i]
        b = w[i + U1] - ha * va[i + U1]
        if vb is not None:
            a = a - hb * vb[i]
            b = b - hb * vb[i + U1]
        w[i] = a
        w[i + U1] = b
        s0 += a * a
        s1 += b * b
        if vc is not None:
            c0 += vc[i] * a
            c1 += vc[i + U1] * b
            if vd is not None:
                d0 += vd[i] * a
                d1 += vd[i + U1] * b
                g0 += vd[i] * vc[i]
                g1 += vd[i + U1] * vc[i + U1]
        i += U2
    while i < hi:
        a = w[i] - ha * va[i]
        if vb is not None:
            a = a - hb * vb[i]
        w[i] = a
        s0 += a * a
        if vc is not None:
            c0 += vc[i] * a
            if vd is not None:
                d0 += vd[i] * a
                g0 += vd[i] * vc[i]
        i += U1
    return s0 + s1, c0 + c1, d0 + d1, g0 + g1


@njit(cache=True, parallel=True)
def mgs_pair_par(bounds, red4, ha, va, hb, vb, w, vc, vd):
    """Two modified Gram-Schmidt steps in one pass, in MGS order per element
    (w -= ha va, then w -= hb vb when vb is given), with the next two steps'
    dots: returns (w.w, vc.w, vd.w, vd.vc) (zeros for what is None).  The
    caller corrects vd's coefficient by the Gram term: vd . (w - hc vc) =
    vd.w - hc (vd.vc).  red4: (nparts, 4) scratch."""
    for pp in prange(bounds.shape[0] - 1):
        red4[pp, 0], red4[pp, 1], red4[pp, 2], red4[pp, 3] = _mgs_pair_part(
            bounds[pp], bounds[pp + 1], ha, va, hb, vb, w, vc, vd)
    s = c = d = g = 0.0
    for pp in range(bounds.shape[0] - 1):
        s += red4[pp, 0]
        c += red4[pp, 1]
        d += red4[pp, 2]
        g += red4[pp, 3]
    return s, c, d, g


@njit(cache=True, nogil=True)
def mgs_pair_ser(bounds, red4, ha, va, hb, vb, w, vc, vd):
    return _mgs_pair_part(U0, bounds[-1], ha, va, hb, vb, w, vc, vd)
