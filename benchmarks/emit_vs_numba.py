"""Emitted C kernels against their Numba twins on the large generated matrices.

For each family of ``spmvtune.generate.LARGE`` (working set 5-10x the L3) and
each kernel of ``--kernels``: the Numba operator (``select_kernel(A,
kernel=...)``) and the C source ``spmvtune emit`` writes for it, compiled
with ``cc -O3 -march=native -fopenmp`` and called through ctypes, both checked
against SciPy, then timed interleaved (median of ``--repeats`` rounds) at the
same thread count.  The C contestants sleep briefly after each sample so that
libgomp's spinning workers do not steal the cores of the next contestant.
Also reports each side's setup (conversion) time.

    python benchmarks/emit_vs_numba.py --threads 2 --out benchmarks/results
"""
import argparse
import gc
import sys
import time

import numpy as np

import spmvtune
from spmvtune import generate
from spmvtune.cbuild import CKernel
from spmvtune.emit import render
from spmvtune.pool import KernelUnusable
from spmvtune.timing import gflops, interleaved_medians
from spmvtune.validate import first_mismatch

DEFAULT_KERNELS = ("csr_balanced", "csr_unroll4", "csr_prefetch", "csr_split_prefetch",
                   "csr_colblock_prefetch", "csr_vi", "csr_delta", "bcsr", "bcsr_vi", "csr_sym")
#: libgomp spins ~0.3 ms (GOMP_SPINCOUNT) after a parallel region; sleep past it.
C_SETTLE = 0.005


def compare(A, kernels, threads, repeats):
    x = np.random.default_rng(1).uniform(-1, 1, A.shape[1])
    y = np.empty(A.shape[0])
    ref = A @ x
    cont, setup = {}, {}
    for name in kernels:
        try:
            op = spmvtune.select_kernel(A, kernel=name, threads=threads)
        except KernelUnusable as exc:
            print(f"  {name}: {exc}", file=sys.stderr)
            continue
        ck = CKernel(render(name, op=op, index_bits=32 if A.nnz < 2**31 else 64))
        t0 = time.perf_counter()
        try:
            plan = ck.prepare(A, threads)
        except ValueError as exc:
            print(f"  C {name}: {exc}", file=sys.stderr)
            continue
        setup[name] = (op.setup_seconds, time.perf_counter() - t0)
        for label, fn in ((f"{name}", lambda op=op: op.matvec(x, out=y)),
                          (f"{name}.c", lambda plan=plan: plan(x, y))):
            fn()
            if first_mismatch(y, A, x, ref) is not None:
                print(f"  {label}: WRONG RESULT; not timed", file=sys.stderr)
                continue
            cont[label] = fn
    settle = {k: C_SETTLE for k in cont if k.endswith(".c")}
    med = interleaved_medians(cont, repeats=repeats, settle=settle)
    return med, setup


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--kernels", nargs="*", default=DEFAULT_KERNELS)
    ap.add_argument("--families", nargs="*", default=list(generate.LARGE))
    ap.add_argument("--out", default=None, help="directory for emit_vs_numba.md")
    args = ap.parse_args()
    lines = [f"C (cc -O3 -march=native -fopenmp, via ctypes) vs Numba, {args.threads} threads, "
             f"GFLOP/s (median of {args.repeats} interleaved rounds); setup = conversion seconds.",
             "", "| family | kernel | Numba | C | C / Numba | setup Numba | setup C |",
             "|---|---|---|---|---|---|---|"]
    ratios = []
    for fam in args.families:
        print(f"{fam}: building", file=sys.stderr, flush=True)
        A = generate.LARGE[fam][0]()
        med, setup = compare(A, args.kernels, args.threads, args.repeats)
        for name in args.kernels:
            if name in med and f"{name}.c" in med:
                g_n, g_c = gflops(A.nnz, med[name]), gflops(A.nnz, med[f"{name}.c"])
                ratios.append(g_c / g_n)
                lines.append(f"| {fam} | {name} | {g_n:.2f} | {g_c:.2f} | {g_c / g_n:.2f}x | "
                             f"{setup[name][0]:.2f} s | {setup[name][1]:.2f} s |")
                print(lines[-1], flush=True)
        del A
        gc.collect()
    gm = float(np.exp(np.mean(np.log(ratios)))) if ratios else float("nan")
    lines += ["", f"Geometric mean C / Numba: **{gm:.2f}x** over {len(ratios)} pairs"]
    print(lines[-1])
    if args.out:
        path = f"{args.out}/emit_vs_numba.md"
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"written {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
