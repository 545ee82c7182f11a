"""The kernel pool against SciPy and Intel MKL on large out-of-cache matrices.

For each generated family (working set several times the L3 cache) this
prepares every kernel of the pool, checks its result against SciPy, then
times all contestants interleaved (median of ``--repeats`` after warm-up) at
the same thread count: SciPy (single-threaded by design), MKL plain CSR and
MKL Inspector-Executor.  Prints GFLOP/s, effective GB/s and % of the measured
read bandwidth, and the best kernel's speedup over MKL IE per family and as a
geometric mean.  Writes CSV and Markdown to ``--out``.

    python benchmarks/pool_vs_peers.py --threads 2 --out benchmarks/results
"""
import argparse
import csv
import gc
import os
import sys
import time

import numpy as np

import spmvtune
from spmvtune import generate, peers
from spmvtune.machine import read_bandwidth
from spmvtune.pool import KernelUnusable
from spmvtune.timing import gflops, interleaved_samples, relative_spread


def contestants_for(A, threads, kernels):
    """name -> (callable, bytes moved per call, setup seconds)."""
    x = np.random.default_rng(1).uniform(-1, 1, A.shape[1])
    y = np.empty(A.shape[0])
    ref = A @ x
    xy_bytes = 8 * (A.shape[0] + A.shape[1])
    csr_bytes = A.data.nbytes + A.indices.nbytes + A.indptr.nbytes + xy_bytes
    out = {"scipy": (lambda: A @ x, csr_bytes, 0.0)}
    ok, why = peers.mkl_available()
    if ok:
        for label, opt in (("mkl_csr", False), ("mkl_ie", True)):
            t0 = time.perf_counter()
            m = peers.MKLMatrix(A, threads, optimize=opt)
            setup = time.perf_counter() - t0
            m(x, y)
            np.testing.assert_allclose(y, ref, rtol=1e-9, atol=1e-9)
            out[label] = ((lambda m=m: m(x, y)), csr_bytes, setup)
    else:
        print(f"  MKL skipped: {why}", file=sys.stderr)
    for name in kernels:
        try:
            op = spmvtune.select_kernel(A, kernel=name, threads=threads)
        except KernelUnusable as exc:
            print(f"  {name}: {exc}", file=sys.stderr)
            continue
        op.matvec(x, out=y)
        err = np.max(np.abs(y - ref)) / max(np.max(np.abs(ref)), 1e-300)
        if err > 1e-10:
            print(f"  {name}: WRONG RESULT (rel. err {err:.2e}); not timed", file=sys.stderr)
            continue
        out[name] = ((lambda op=op: op.matvec(x, out=y)), op.nbytes + xy_bytes, op.setup_seconds)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10, help="at least this many rounds")
    ap.add_argument("--min-seconds", type=float, default=20.0,
                    help="and at least this much wall time of rounds per family")
    ap.add_argument("--families", nargs="*", default=list(generate.LARGE))
    ap.add_argument("--kernels", nargs="*", default=list(spmvtune.kernel_names()))
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    kernels = [k for k in args.kernels if k not in ("csr_serial", "dense_gemv")]
    bw = read_bandwidth(args.threads)
    print(f"read bandwidth, {args.threads} threads: {bw:.1f} GB/s")
    rows = []
    for fam in args.families:
        build, desc = generate.LARGE[fam]
        A = build()
        print(f"\n{fam}: {desc}; {A.shape[0]} x {A.shape[1]}, nnz {A.nnz}", flush=True)
        cont = contestants_for(A, args.threads, kernels)
        samples = interleaved_samples({k: v[0] for k, v in cont.items()}, repeats=args.repeats,
                                      min_seconds=args.min_seconds)
        for name, (_, nbytes, setup) in cont.items():
            t = float(np.median(samples[name]))
            rows.append(dict(family=fam, contestant=name, nnz=A.nnz, seconds=t,
                             rounds=len(samples[name]), spread=relative_spread(samples[name]),
                             gflops=gflops(A.nnz, t), gbs=nbytes / t / 1e9,
                             pct_bw=100 * nbytes / t / 1e9 / bw, setup_s=setup,
                             threads=1 if name == "scipy" else args.threads))
        for r in sorted((r for r in rows if r["family"] == fam), key=lambda r: r["seconds"]):
            print(f"  {r['contestant']:22s} {r['gflops']:6.2f} GFLOP/s {r['gbs']:6.1f} GB/s "
                  f"{r['pct_bw']:5.0f}% bw  IQR/median {r['spread']:5.1%}  setup {r['setup_s']:.2f}s")
        del cont, A
        gc.collect()
    with open(os.path.join(args.out, "pool_vs_peers.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    write_summary(rows, bw, args)


def write_summary(rows, bw, args):
    fams = list(dict.fromkeys(r["family"] for r in rows))
    rounds = min(r["rounds"] for r in rows)
    lines = [f"Read bandwidth ({args.threads} threads): {bw:.1f} GB/s. GFLOP/s, medians of at least "
             f"{rounds} interleaved rounds (>= {args.min_seconds:.0f} s per family); "
             f"{args.threads} threads except SciPy (1).", "",
             "| family | SciPy | MKL CSR | MKL IE | best spmvtune kernel | GFLOP/s | GB/s (% bw) | vs MKL IE |",
             "|---|---|---|---|---|---|---|---|"]
    ratios = []
    for fam in fams:
        fr = {r["contestant"]: r for r in rows if r["family"] == fam}
        ours = [r for k, r in fr.items() if k not in ("scipy", "mkl_csr", "mkl_ie")]
        best = min(ours, key=lambda r: r["seconds"])
        ie = fr.get("mkl_ie")
        ratio = ie["seconds"] / best["seconds"] if ie else float("nan")
        ratios.append(ratio)
        g = lambda k: f"{fr[k]['gflops']:.2f}" if k in fr else "n/a"  # noqa: E731
        lines.append(f"| {fam} | {g('scipy')} | {g('mkl_csr')} | {g('mkl_ie')} | "
                     f"{best['contestant']} | {best['gflops']:.2f} | {best['gbs']:.1f} "
                     f"({best['pct_bw']:.0f}%) | {ratio:.2f}x |")
    geo = float(np.exp(np.mean(np.log(ratios))))
    lines += ["", f"Geometric mean of the best kernel's speedup over MKL IE: **{geo:.2f}x**"]
    text = "\n".join(lines)
    print("\n" + text)
    with open(os.path.join(args.out, "pool_vs_peers.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
