"""Sparse inference: the selected operator against SciPy, dense BLAS and MKL on
pruned network layers, at k = 1, 8 and 64 right-hand sides, and the
sparse/dense crossover density, predicted against measured.

For each matrix of ``bench --suite pruned`` and each k: ``select_kernel(A,
n_vectors=k)`` (its selection and setup cost reported), SciPy's ``A @ X``
(one thread), dense BLAS (NumPy's ``matmul`` on the dense layer, BLAS limited
to ``--threads``), MKL Inspector-Executor (``mkl_sparse_d_mv`` for k = 1,
``mkl_sparse_d_mm`` row-major with the mm hint for k > 1) and, for the record,
dense BLAS on one thread.  Each result is checked against SciPy; then all are
timed side by side in the same run: interleaved rounds in shuffled order,
batches of at least ``spmvtune.timing.STABLE_BATCH_SECONDS``, a pause after
every MKL or BLAS call (their threads spin), medians over ``--repeats`` rounds.

Crossover: for a layer shape and each k, the cost model's predicted density
above which dense BLAS wins (:func:`spmvtune.crossover.predicted_crossover`)
and the measured one (:func:`spmvtune.crossover.measure_crossover`: magnitude-
pruned layers at 9 densities, the sparse candidates against dense BLAS).

    python benchmarks/pruned.py --threads 2 --out benchmarks/results
"""
import argparse
import json
import math
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import spmvtune
from spmvtune import crossover, peers
from spmvtune.bench.items import SUITES
from spmvtune.bench.measure import dense_peer
from spmvtune.pool.dense_mm import BLAS_SPIN_SECONDS
from spmvtune.timing import (OPENMP_SPIN_SECONDS, STABLE_BATCH_SECONDS, interleaved_samples,
                             relative_spread)
from spmvtune.validate import first_mismatch

KS = (1, 8, 64)
PEERS = ("scipy", "dense", "mkl_ie")


def geomean(v):
    v = [x for x in v if x and x > 0 and math.isfinite(x)]
    return math.exp(sum(map(math.log, v)) / len(v)) if v else float("nan")


def check(fn, Y, A, X, ref):
    """Run fn (which writes Y) and compare three columns with SciPy."""
    Y.fill(np.nan)
    fn()
    cols = [None] if X.ndim == 1 else sorted({0, X.shape[1] // 2, X.shape[1] - 1})
    for c in cols:
        y, x, r = (Y, X, ref) if c is None else (Y[:, c], X[:, c], ref[:, c])
        if (bad := first_mismatch(y, A, x, r)) is not None:
            raise AssertionError(f"row {bad}" + ("" if c is None else f", column {c}"))


def measure(A, k, threads, repeats):
    """{contestant: median seconds}, the spreads, and the selection's facts."""
    m, n = A.shape
    rng = np.random.default_rng(k)
    X = rng.uniform(-1, 1, (n, k)) if k > 1 else rng.uniform(-1, 1, n)
    Y = np.empty((m, k)) if k > 1 else np.empty(m)
    ref = A @ X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        op = spmvtune.select_kernel(A, n_vectors=k, threads=threads, cache=False)
        chosen = time.perf_counter() - t0
    run = op.matmat if k > 1 else op.matvec
    fns = {"selected": lambda: run(X, out=Y), "scipy": lambda: A @ X}
    dense = dense_peer(A, threads)
    dense1 = dense_peer(A, 1) if threads > 1 else None
    if dense is not None:
        fns["dense"] = lambda: dense(X, Y)
    if dense1 is not None:
        fns["dense_1t"] = lambda: dense1(X, Y)
    if peers.mkl_available()[0]:
        mk = peers.MKLMatrix(A, threads, optimize=True, n_vectors=k)
        fns["mkl_ie"] = (lambda: mk.matmat(X, Y)) if k > 1 else (lambda: mk(X, Y))
    for name, fn in list(fns.items()):
        if name == "scipy":
            continue
        try:
            check(fn, Y, A, X, ref)
        except AssertionError as exc:
            print(f"    {name}: WRONG RESULT ({exc}); not timed", file=sys.stderr)
            del fns[name]
    settle = {c: OPENMP_SPIN_SECONDS for c in ("mkl_ie",) if c in fns}
    settle.update({c: BLAS_SPIN_SECONDS for c in ("dense", "dense_1t") if c in fns})
    if op.kernel.startswith("dense"):
        settle["selected"] = BLAS_SPIN_SECONDS
    samples = interleaved_samples(fns, repeats=repeats, batch_seconds=STABLE_BATCH_SECONDS,
                                  settle=settle)
    seconds = {c: float(np.median(v)) for c, v in samples.items()}
    spread = {c: relative_spread(v) for c, v in samples.items()}
    return seconds, spread, {"kernel": op.kernel, "threads": op.threads,
                             "selection_seconds": chosen, "setup_seconds": op.setup_seconds,
                             "source": op.selection_source}


def suite(threads, repeats, names, log):
    rows = []
    for name in names:
        build, description = SUITES["pruned"][name]
        A = build()
        log(f"{name}: {A.shape[0]} x {A.shape[1]}, {A.nnz} nonzeros ({description})")
        for k in KS:
            seconds, spread, sel = measure(A, k, threads, repeats)
            flops = 2.0 * A.nnz * k
            row = {"matrix": name, "rows": A.shape[0], "cols": A.shape[1], "nnz": A.nnz, "k": k,
                   "seconds": seconds, "spread": spread, **sel}
            rows.append(row)
            g = {c: flops / s / 1e9 for c, s in seconds.items()}
            log(f"  k={k:3d} {sel['kernel']} x{sel['threads']}: "
                + ", ".join(f"{c} {g[c]:.2f}" for c in seconds) + " GFLOP/s; "
                + ", ".join(f"{seconds[p] / seconds['selected']:.2f}x {p}"
                            for p in PEERS if p in seconds))
        del A
    return rows


def crossovers(shape, threads, log, densities=crossover.DENSITIES, repeats=5):
    """Predicted and measured crossover of a magnitude-pruned layer of ``shape`` per k."""
    from spmvtune import generate
    from spmvtune.features import structural_features, vector_features
    m, n = shape
    out = []
    A = generate.pruned_unstructured(m, n, 0.9)
    f = structural_features(A)
    for k in KS:
        g = dict(f, **(vector_features(A) if k > 1 else {}))
        pred = crossover.predicted_crossover(g, k, threads)
        meas = crossover.measure_crossover(m, n, k, threads, densities=densities,
                                           repeats=repeats, log=lambda s: log("    " + s))
        ratio = (max(pred["density"], meas["density"]) / min(pred["density"], meas["density"])
                 if pred["density"] and meas["density"] else None)
        out.append({"shape": [m, n], "k": k, "predicted": pred["density"],
                    "predicted_wins": pred.get("wins"), "measured": meas["density"],
                    "measured_wins": meas.get("wins"), "ratio": ratio, "points": meas["points"]})
        log(f"  {m} x {n}, k={k}: predicted {pred['density']}, measured {meas['density']} "
            f"({meas.get('wins') or 'crossing'})")
    return out


def fmt(v, spec="{:.2f}"):
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else spec.format(v)


def report(rows, cross, context):
    lines = ["# Sparse inference: selected operator vs SciPy, dense BLAS, MKL IE", ""]
    lines += [f"{k}: {v}" for k, v in context.items()] + [""]
    lines.append("GFLOP/s (2 nnz k / median time) and speedups of the selected operator, "
                 "same run, interleaved.")
    lines.append("")
    head = ("| matrix | k | selected | sel. | SciPy | dense | dense 1t | MKL IE "
            "| vs SciPy | vs dense | vs MKL IE | vs best(MKL IE, dense) | selection+setup s |")
    lines += [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for r in rows:
        s = r["seconds"]
        g = {c: 2.0 * r["nnz"] * r["k"] / v / 1e9 for c, v in s.items()}
        best = min([s[p] for p in ("dense", "mkl_ie") if p in s], default=None)
        lines.append("| " + " | ".join([
            r["matrix"], str(r["k"]), f"{r['kernel']} x{r['threads']}", fmt(g.get("selected")),
            fmt(g.get("scipy")), fmt(g.get("dense")), fmt(g.get("dense_1t")), fmt(g.get("mkl_ie")),
            fmt(s["scipy"] / s["selected"], "{:.2f}x"),
            fmt(s["dense"] / s["selected"] if "dense" in s else None, "{:.2f}x"),
            fmt(s["mkl_ie"] / s["selected"] if "mkl_ie" in s else None, "{:.2f}x"),
            fmt(best / s["selected"] if best else None, "{:.2f}x"),
            fmt(r["selection_seconds"] + r["setup_seconds"], "{:.2f}")]) + " |")
    lines += ["", "Geometric means of the selected operator's speedup:", ""]
    lines.append("| k | vs SciPy | vs dense BLAS | vs MKL IE | vs better of MKL IE and dense "
                 "| worst vs dense |")
    lines.append("|---|---|---|---|---|---|")
    for k in KS + ("all",):
        rk = [r for r in rows if k == "all" or r["k"] == k]
        if not rk:
            continue

        def sp(peer):
            return [r["seconds"][peer] / r["seconds"]["selected"] for r in rk
                    if peer in r["seconds"]]
        best = [min(r["seconds"][p] for p in ("dense", "mkl_ie") if p in r["seconds"])
                / r["seconds"]["selected"] for r in rk
                if any(p in r["seconds"] for p in ("dense", "mkl_ie"))]
        lines.append(f"| {k} | {fmt(geomean(sp('scipy')), '{:.2f}x')} | "
                     f"{fmt(geomean(sp('dense')), '{:.2f}x')} | "
                     f"{fmt(geomean(sp('mkl_ie')), '{:.2f}x')} | {fmt(geomean(best), '{:.2f}x')} | "
                     f"{fmt(min(sp('dense'), default=None), '{:.2f}x')} |")
    if cross:
        lines += ["", "Sparse/dense crossover (density above which dense BLAS wins; "
                  "magnitude-pruned layers):", "",
                  "| shape | k | predicted | measured | ratio | sparse / dense time by density |",
                  "|---|---|---|---|---|---|"]
        for c in cross:
            pts = ", ".join(f"{p['density']:g}: {p['sparse_seconds'] / p['dense_seconds']:.2f}"
                            for p in c["points"])
            pred = (f"{c['predicted']:.3f}" if c["predicted"]
                    else f"{c['predicted_wins']} always")
            meas = f"{c['measured']:.3f}" if c["measured"] else f"{c['measured_wins']} always"
            lines.append(f"| {c['shape'][0]} x {c['shape'][1]} | {c['k']} | {pred} | {meas} | "
                         f"{fmt(c['ratio'], '{:.2f}')} | {pts} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7, help="interleaved rounds (medians)")
    ap.add_argument("--matrices", nargs="*", default=list(SUITES["pruned"]),
                    help="names of the pruned suite (default: all)")
    ap.add_argument("--crossover-shape", default="4096x4096",
                    help="layer shape of the crossover measurement ('' to skip)")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()

    def log(msg):
        print(msg, flush=True)
    start = time.perf_counter()
    from spmvtune.machine import machine_profile
    prof = machine_profile(args.threads)
    ok, why = peers.mkl_available()
    context = {"machine": f"{prof.cpu_model}, {prof.cores} cores", "threads": args.threads,
               "read bandwidth": f"{prof.bandwidth(args.threads):.1f} GB/s",
               "dense BLAS rate (k=1/8/64)": ", ".join(
                   f"{prof.dense_rate(args.threads, k):.1f}" for k in KS) + " GFLOP/s",
               "MKL": "yes" if ok else f"no ({why})",
               "versions": f"spmvtune {spmvtune.__version__}, numpy {np.__version__}, "
                           f"python {platform.python_version()}",
               "timing": f"{args.repeats} interleaved rounds, batches >= "
                         f"{STABLE_BATCH_SECONDS * 1e3:.0f} ms, medians",
               "date": time.strftime("%Y-%m-%d %H:%M")}
    rows = suite(args.threads, args.repeats, args.matrices, log)
    cross = []
    if args.crossover_shape:
        m, n = (int(v) for v in args.crossover_shape.lower().split("x"))
        log(f"crossover at {m} x {n}")
        cross = crossovers((m, n), args.threads, log)
    context["wall time"] = f"{(time.perf_counter() - start) / 60:.1f} min"
    text = report(rows, cross, context)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pruned.txt").write_text(text)
    (out / "pruned.json").write_text(json.dumps({"context": context, "rows": rows,
                                                 "crossover": cross}, indent=1, default=float))
    print(text)


if __name__ == "__main__":
    main()
