"""float32 against float64 on large matrices: the kernel select_kernel picks
for each type, side by side, with SciPy's float32 and float64 products.

A float32 matrix with a float32 x streams 8 bytes per nonzero instead of 12
(4-byte values, 4-byte column indices), and x and y are half the size.  For
each large generated family (``spmvtune.generate.LARGE``, 12-30M nonzeros)
this selects a kernel for the float64 matrix and one for its float32 copy
(``select_kernel(A, threads=T, cache=False, mode=--mode)``, outside the timing),
checks both against SciPy, then times the four contestants interleaved
(``spmvtune.timing.interleaved_medians``, calibrated batches of
``STABLE_BATCH_SECONDS``): spmvtune float64, spmvtune float32, SciPy float64,
SciPy float32.  Prints GFLOP/s (2 nnz / median time), the float32 / float64
speed ratio of each, and their geometric means.  The kernels accumulate in
the result's type (float32 sums for float32, as SciPy and MKL do).

    python benchmarks/float32.py --threads 2 --out benchmarks/results/float32.txt
"""
import argparse
import gc
import math
import sys
import time

import numpy as np

import spmvtune
from spmvtune import generate
from spmvtune.timing import STABLE_BATCH_SECONDS, gflops, interleaved_samples, relative_spread
from spmvtune.validate import first_mismatch


def geomean(values):
    values = [v for v in values if v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def run_family(name, build, threads, repeats, min_seconds, log, mode="auto"):
    A64 = build()
    A32 = A64.astype(np.float32)
    rng = np.random.default_rng(1)
    x64 = rng.uniform(-1, 1, A64.shape[1])
    x32 = x64.astype(np.float32)
    y64 = np.empty(A64.shape[0])
    y32 = np.empty(A64.shape[0], np.float32)
    ops = {}
    for label, A in (("float64", A64), ("float32", A32)):
        t0 = time.perf_counter()
        ops[label] = spmvtune.select_kernel(A, threads=threads, cache=False, mode=mode)
        log(f"  {label}: selected {ops[label].kernel} on {ops[label].threads} thread(s) "
            f"in {time.perf_counter() - t0:.1f} s ({ops[label].selection_source})")
    op64, op32 = ops["float64"], ops["float32"]
    for label, op, A, x, y in (("float64", op64, A64, x64, y64), ("float32", op32, A32, x32, y32)):
        op.matvec(x, out=y)
        bad = first_mismatch(y, A, x)
        if bad is not None:
            raise AssertionError(f"{name} {label} {op.kernel}: row {bad} differs from SciPy")
    contestants = {
        "spmvtune_f64": lambda: op64.matvec(x64, out=y64),
        "spmvtune_f32": lambda: op32.matvec(x32, out=y32),
        "scipy_f64": lambda: A64 @ x64,
        "scipy_f32": lambda: A32 @ x32,
    }
    samples = interleaved_samples(contestants, repeats=repeats, min_seconds=min_seconds,
                                  batch_seconds=STABLE_BATCH_SECONDS)
    med = {k: float(np.median(v)) for k, v in samples.items()}
    spread = {k: relative_spread(v) for k, v in samples.items()}
    row = {"family": name, "nnz": A64.nnz, "kernel_f64": op64.kernel, "threads_f64": op64.threads,
           "kernel_f32": op32.kernel, "threads_f32": op32.threads,
           "bytes_per_nnz_f64": op64.nbytes / max(A64.nnz, 1),
           "bytes_per_nnz_f32": op32.nbytes / max(A64.nnz, 1),
           **{f"gflops_{k}": gflops(A64.nnz, t) for k, t in med.items()},
           **{f"iqr_{k}": s for k, s in spread.items()}}
    row["ratio_spmvtune"] = med["spmvtune_f64"] / med["spmvtune_f32"]
    row["ratio_scipy"] = med["scipy_f64"] / med["scipy_f32"]
    return row                          # the caller collects the matrices before the next


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10, help="interleaved rounds (at least)")
    ap.add_argument("--min-seconds", type=float, default=10.0,
                    help="wall time of the interleaved rounds per family (at least)")
    ap.add_argument("--families", nargs="*", default=list(generate.LARGE))
    ap.add_argument("--mode", default="auto",
                    help="select_kernel's mode for both types (exhaustive: the best of the pool)")
    ap.add_argument("--out", default=None, help="write the report here too")
    args = ap.parse_args(argv)
    lines = []

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    def out(msg=""):
        print(msg, flush=True)
        lines.append(msg)

    rows = []
    for name in args.families:
        build, desc = generate.LARGE[name]
        log(f"{name}: {desc}")
        gc.collect()
        rows.append(run_family(name, build, args.threads, args.repeats, args.min_seconds, log,
                               args.mode))
    out(f"float32 vs float64, selected kernel (mode {args.mode}, {args.threads} threads max) "
        f"and SciPy (1 thread); GFLOP/s = 2 nnz / median time of interleaved rounds "
        f"(batches of {STABLE_BATCH_SECONDS * 1e3:.0f} ms, >= {args.repeats} rounds, "
        f">= {args.min_seconds:g} s per family)")
    out()
    out("| family | nnz | kernel f64 | kernel f32 | B/nnz f64 | B/nnz f32 | spmvtune f64 | "
        "spmvtune f32 | f32/f64 | SciPy f64 | SciPy f32 | f32/f64 |")
    out("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        out(f"| {r['family']} | {r['nnz'] / 1e6:.1f}M | {r['kernel_f64']}@{r['threads_f64']} | "
            f"{r['kernel_f32']}@{r['threads_f32']} | {r['bytes_per_nnz_f64']:.1f} | "
            f"{r['bytes_per_nnz_f32']:.1f} | {r['gflops_spmvtune_f64']:.2f} | "
            f"{r['gflops_spmvtune_f32']:.2f} | {r['ratio_spmvtune']:.2f}x | "
            f"{r['gflops_scipy_f64']:.2f} | {r['gflops_scipy_f32']:.2f} | "
            f"{r['ratio_scipy']:.2f}x |")
    out()
    out(f"Geometric mean of the float32 / float64 speed ratio: spmvtune (selected kernels) "
        f"{geomean(r['ratio_spmvtune'] for r in rows):.2f}x, SciPy "
        f"{geomean(r['ratio_scipy'] for r in rows):.2f}x")
    out(f"float32 selected kernel vs SciPy float32: "
        f"{geomean(r['gflops_spmvtune_f32'] / r['gflops_scipy_f32'] for r in rows):.2f}x (geomean)")
    worst = max(max(r[k] for k in r if k.startswith("iqr_")) for r in rows)
    out(f"Largest per-contestant IQR / median: {worst:.2f}")
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
