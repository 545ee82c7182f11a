"""Does the bottleneck analysis classify, and do the classes' optimizations help?

Runs ``spmvtune.analyze`` (features + micro-profiler) on large generated
matrices each built to have one dominant bottleneck, prints the confusion
table (intended class vs the strongest class found), and for every matrix the
speedup of the recommended kernel (at the recommended thread count: one thread
below 20,000 nonzeros) over the baseline ``csr_balanced`` at ``--threads``,
measured side by side (interleaved medians) -- a class is only useful if its fix helps,
so the rows where it does not are listed.  With ``--shared`` the real matrices
of ../shared/matrices/suitesparse are analysed too (no intended class).

    python benchmarks/analysis_classes.py --threads 2 [--shared DIR]
"""
import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import spmvtune
from spmvtune import generate
from spmvtune.timing import interleaved_medians


def dominant_row(m=50_000, n=8_000_000, seed=0):
    """One nonzero per row near the diagonal, plus one full row holding >99% of
    the nonzeros: row partitions cannot balance it (IMB)."""
    rng = np.random.default_rng(seed)
    rows = np.concatenate([np.arange(1, m), np.zeros(n, dtype=np.int64)])
    cols = np.concatenate([np.arange(1, m) * (n // m), np.arange(n)])
    return sp.csr_array((rng.uniform(-1, 1, len(rows)), (rows, cols)), shape=(m, n))


CASES = {   # name -> (builder, intended class)
    "stencil27": (generate.LARGE["stencil27"][0], "MB"),
    "fem_blocks": (generate.LARGE["fem_blocks"][0], "MB"),
    "random_scatter": (generate.LARGE["random_scatter"][0], "ML"),
    "wide_lp": (generate.LARGE["wide_lp"][0], "ML"),
    "short_rows": (generate.LARGE["short_rows"][0], "ML"),
    "dominant_row": (dominant_row, "IMB"),
    "short_rows_in_cache": (lambda: generate.short_rows(150_000, locality=50), "CMP"),
    "banded_in_cache": (lambda: generate.banded(60_000, 4), "CMP"),
}


def measure(name, A, threads, intended):
    res = spmvtune.analyze(A, threads=threads)
    x = np.random.default_rng(0).uniform(-1, 1, A.shape[1])
    y = np.empty(A.shape[0])
    base = spmvtune.select_kernel(A, kernel="csr_balanced", threads=threads)
    try:
        rec = spmvtune.select_kernel(A, kernel=res.recommended, threads=res.recommended_threads)
    except spmvtune.KernelUnusable as exc:
        print(f"  {name}: recommended kernel unusable: {exc}", file=sys.stderr)
        rec = base
    med = interleaved_medians({"base": lambda: base.matvec(x, out=y),
                               "rec": lambda: rec.matvec(x, out=y)}, repeats=15, min_seconds=3)
    found = res.bottlenecks[0] if res.bottlenecks else "-"
    row = dict(matrix=name, intended=intended, found=found, holds="+".join(res.bottlenecks) or "-",
               scores=res.scores, kernel=res.recommended, expected=res.expected_speedup,
               measured=med["base"] / med["rec"], cost=res.cost)
    print(f"{name:28s} {intended:4s} -> {row['holds']:10s} {res.recommended:22s} "
          f"{res.recommended_threads}t expected "
          f"{row['expected']:4.2f}x measured {row['measured']:4.2f}x  (features "
          f"{res.cost['features_spmvs']:.1f} + profile {res.cost['profile_spmvs']:.1f} products)",
          flush=True)
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shared", default=None, help="directory of real matrices to add")
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    args = ap.parse_args(argv)
    # load the cached Numba code before any cost is measured (first-call cost is
    # reported by benchmarks/overhead.py)
    spmvtune.analyze(generate.banded(100, 2), threads=args.threads)
    rows = []
    for name in args.cases:
        build, intended = CASES[name]
        rows.append(measure(name, build(), args.threads, intended))
    classes = ["MB", "ML", "IMB", "CMP", "-"]
    print("\nConfusion (rows: intended class, columns: strongest class found)")
    print("       " + " ".join(f"{c:>4s}" for c in classes))
    for c in classes[:-1]:
        cnt = Counter(r["found"] for r in rows if r["intended"] == c)
        print(f"  {c:4s} " + " ".join(f"{cnt.get(k, 0):4d}" for k in classes))
    correct = sum(r["found"] == r["intended"] for r in rows)
    print(f"  {correct}/{len(rows)} classified as intended")
    if args.shared:
        files = sorted(p for p in Path(args.shared).iterdir() if p.name.endswith((".mtx", ".mtx.gz")))
        print(f"\nReal matrices ({len(files)} files in {args.shared}):")
        for p in files:
            try:
                A = spmvtune.load(p)
            except spmvtune.MatrixFormatError as exc:
                print(f"  skipped {p.name}: {exc.problem}")
                continue
            rows.append(measure(p.name, A, args.threads, "?"))
    print("\nPer strongest class: speedup of the recommended kernel over csr_balanced (measured)")
    for c in classes:
        sel = [r for r in rows if r["found"] == c]
        if not sel:
            continue
        sp_ = np.array([r["measured"] for r in sel])
        worse = [r["matrix"] for r in sel if r["measured"] < 0.97]
        print(f"  {c:4s} {len(sel):3d} matrices, geometric mean {np.exp(np.mean(np.log(sp_))):.2f}x, "
              f"min {sp_.min():.2f}x, max {sp_.max():.2f}x"
              + (f"; did NOT help on: {', '.join(worse)}" if worse else ""))
    feats = [r["cost"]["features_spmvs"] for r in rows]
    profs = [r["cost"]["profile_spmvs"] for r in rows if r["intended"] != "?"]
    print(f"\nAnalysis cost in baseline products: features median {np.median(feats):.1f}, "
          f"profile (large cases) median {np.median(profs):.1f}")


if __name__ == "__main__":
    main()
