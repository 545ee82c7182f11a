"""Per-call overhead on a tiny matrix, and first-call latency (JIT vs cache).

Most real matrices live in cache, where the cost of a call matters as much as
the loop.  This prints, for a 10 x 10 matrix, microseconds per ``op(x)`` and
per ``op.matvec(x, out=y)`` for every kernel at 1 and 2 threads, next to
SciPy's ``A @ x`` and MKL's ``mkl_sparse_d_mv``.  Then, in fresh processes,
the time from ``import spmvtune`` to the first product with an empty Numba
cache (compilation) and with a warm one (``cache=True`` reloading).

    python benchmarks/overhead.py
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.sparse as sp

import spmvtune
from spmvtune import peers
from spmvtune.pool import KernelUnusable

LOOPS = 20_000


def per_call_us(fn):
    fn()
    best = np.inf
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(LOOPS):
            fn()
        best = min(best, (time.perf_counter() - t0) / LOOPS * 1e6)
    return best


def call_overhead():
    A = sp.csr_array(sp.random_array((10, 10), density=0.3, rng=0))
    A = A + sp.eye_array(10, format="csr")
    x = np.ones(10)
    y = np.empty(10)
    print(f"Per-call time on a 10 x 10 matrix ({A.nnz} nnz), microseconds (best of 5 x {LOOPS}):")
    print(f"  scipy A @ x                 {per_call_us(lambda: A @ x):7.2f}")
    if peers.mkl_available()[0]:
        m = peers.MKLMatrix(A, 1, optimize=True)
        print(f"  MKL IE (1 thread)           {per_call_us(lambda: m(x, y)):7.2f}")
    for name in spmvtune.kernel_names():
        cells = []
        for threads in (1, 2):
            try:
                op = spmvtune.select_kernel(A, kernel=name, threads=threads)
            except KernelUnusable:
                cells.append("   n/a            ")
                continue
            cells.append(f"{per_call_us(lambda: op(x)):7.2f} / {per_call_us(lambda: op.matvec(x, out=y)):5.2f}")
        print(f"  {name:22s} 1 thread {cells[0]}   2 threads {cells[1]}   (op(x) / matvec(out=))")


_FIRST_CALL = r"""
import time, json, sys
t0 = time.perf_counter()
import numpy as np, scipy.sparse as sp, spmvtune
t1 = time.perf_counter()
A = sp.csr_array(sp.random_array((50, 50), density=0.1, rng=0)); x = np.ones(50)
out = {"import_s": t1 - t0}
for name in sys.argv[1:]:
    t = time.perf_counter()
    try:
        spmvtune.select_kernel(A, kernel=name, threads=2)(x)
    except spmvtune.KernelUnusable:
        continue
    out[name] = time.perf_counter() - t
print(json.dumps(out))
"""


def first_call(names):
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        runs = []
        for label in ("cold (compiles)", "warm (cache=True)"):
            r = subprocess.run([sys.executable, "-c", _FIRST_CALL, *names], env=env,
                               capture_output=True, text=True, check=True)
            runs.append((label, json.loads(r.stdout)))
    print("\nFirst call in a fresh process (select_kernel + first op(x), 2 threads), seconds:")
    print(f"  {'':22s} " + "  ".join(f"{label:>18s}" for label, _ in runs))
    for key in ["import_s", *names]:
        if all(key in r for _, r in runs):
            print(f"  {key:22s} " + "  ".join(f"{r[key]:18.3f}" for _, r in runs))


if __name__ == "__main__":
    call_overhead()
    first_call(list(spmvtune.kernel_names()))
