"""How good is the selector?  Cross-validation, held-out matrices, a CG solve.

1. Cross-validation on the training store, grouped by matrix family (a family
   is never in both the training and the test fold): accuracy (the chosen
   kernel within 5% of the fastest), mean and worst regret (time of chosen /
   time of fastest - 1) of a decision tree and a random forest on features,
   and of a forest on features + profile, against "always csr_balanced",
   "always the single best kernel" (picked on the training folds) and the
   bottleneck rule of the analysis.
2. Held-out matrices (../shared/matrices and the large generated families, none
   used in training): select_kernel(A) as a solver calls it, its kernel timed
   against SciPy, MKL Inspector-Executor and the fastest kernel of the pool,
   side by side; the selection cost in baseline products.
3. CG on a 3-D Poisson matrix with op.as_linear_operator() vs SciPy's matvec,
   end to end including selection.

    python benchmarks/selection_eval.py --store STORE.sqlite [--shared DIR]
"""
import argparse
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import cg

import spmvtune
from spmvtune import generate, peers
from spmvtune.model import TOLERANCE, dataset, make_estimator
from spmvtune.pool import KernelUnusable, kernel_names
from spmvtune.select import CHECK_WITH
from spmvtune.timing import interleaved_medians
from spmvtune.train import ResultsStore

ORDER = list(kernel_names())


def regret(times, kernel):
    t = times.get(kernel, times["csr_balanced"])     # unusable -> the baseline runs
    return t / min(times.values()) - 1.0


def summarize(name, regrets):
    r = np.array(regrets)
    acc = np.mean(r <= TOLERANCE)
    print(f"  {name:34s} accuracy {acc:6.1%}  mean regret {r.mean():6.1%}  worst {r.max():7.1%}")
    return acc, r.mean(), r.max()


def cross_validation(records):
    from sklearn.model_selection import GroupKFold
    print(f"1. Cross-validation grouped by family ({len(records)} training matrices)")
    X, y, groups, kept = dataset(records, ORDER)
    times = [rec["times"] for _, _, rec in kept]
    n_groups = len(set(groups))
    folds = list(GroupKFold(n_splits=min(5, n_groups)).split(X, y, groups))
    out = {}
    for label, kind, use_profile in (("decision tree (features)", "tree", False),
                                     ("random forest (features)", "forest", False),
                                     ("gradient boosting (features)", "boosting", False),
                                     ("random forest (features + profile)", "forest", True)):
        Xp, yp, gp, keptp = dataset(records, ORDER, use_profile) if use_profile else (X, y, groups, kept)
        tp = [rec["times"] for _, _, rec in keptp]
        regs = []
        for tr, te in GroupKFold(n_splits=min(5, n_groups)).split(Xp, yp, gp):
            est = make_estimator(kind).fit(Xp[tr], yp[tr])
            regs += [regret(tp[i], k) for i, k in zip(te, est.predict(Xp[te]))]
        out[label] = summarize(label, regs)
    from sklearn.model_selection import KFold
    regs = []
    for tr, te in KFold(5, shuffle=True, random_state=0).split(X):
        est = make_estimator("forest").fit(X[tr], y[tr])
        regs += [regret(times[i], k) for i, k in zip(te, est.predict(X[te]))]
    out["forest, random folds"] = summarize("random forest, random folds (seen families)", regs)
    regs = [regret(t, "csr_balanced") for t in times]
    out["always csr_balanced"] = summarize("always csr_balanced", regs)
    regs = []
    for tr, te in folds:
        best = min(ORDER, key=lambda k: np.mean([regret(times[i], k) for i in tr]))
        regs += [regret(times[i], best) for i in te]
    out["always the single best kernel"] = summarize("always the single best (train folds)", regs)
    regs = [regret(rec["times"], rec["rule"]) for _, _, rec in kept]
    out["bottleneck rule"] = summarize("bottleneck rule (with profile)", regs)
    # auto mode times the rule's pick, its cheap sibling and csr_unroll4 against
    # the baseline and keeps the fastest (here with the stored medians, i.e.
    # without the check's own noise)
    only = [min(regret(rec["times"], rec["rule"]), regret(rec["times"], "csr_balanced"))
            for _, _, rec in kept]
    summarize("rule, pick timed against the baseline", only)
    auto = [min(regret(rec["times"], k) for k in (rec["rule"], *CHECK_WITH.get(rec["rule"], ()),
                                                   "csr_unroll4", "csr_balanced"))
            for _, _, rec in kept]
    out["auto"] = summarize("auto: rule + timed check (stored times)", auto)
    print("  per bottleneck class (classes held by the profile; a matrix may hold several):")
    by_class = {}
    for (_, _, rec), r in zip(kept, auto):
        for c in [c for c, v in rec.get("scores", {}).items() if v >= 0.5] or ["none"]:
            by_class.setdefault(c, []).append(r)
    for c in ("MB", "ML", "IMB", "CMP", "none"):
        if c in by_class:
            r = np.array(by_class[c])
            print(f"    {c:4s} {len(r):4d} matrices: auto within 5% {np.mean(r <= TOLERANCE):6.1%}, "
                  f"mean regret {r.mean():6.1%}")
    if all("rule_features" in rec for _, _, rec in kept):
        regs = [regret(rec["times"], rec["rule_features"]) for _, _, rec in kept]
        out["bottleneck rule (features)"] = summarize("bottleneck rule (features only)", regs)
    return out


def held_out(paths, threads, large):
    print(f"\n2. Held-out matrices ({threads} threads): select_kernel(A) as a solver calls it")
    rows = []
    items = [(p.name, lambda p=p: spmvtune.load(p)) for p in paths]
    items += [(name, build) for name, (build, _) in generate.LARGE.items()] if large else []
    mkl_ok = peers.mkl_available()[0]
    for name, build in items:
        try:
            A = build()
        except spmvtune.MatrixFormatError:
            continue
        x = np.random.default_rng(0).uniform(-1, 1, A.shape[1])
        y = np.empty(A.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            op = spmvtune.select_kernel(A, threads=threads, cache=False)
        cont = {"scipy": lambda: A @ x, "selected": lambda: op.matvec(x, out=y)}
        if mkl_ok:
            m = peers.MKLMatrix(A, threads, optimize=True)
            cont["mkl_ie"] = lambda m=m: m(x, y)
        pool = {}
        for k in ORDER:
            if k == "dense_gemv" and A.shape[0] * A.shape[1] > 1 << 22:
                continue
            t = 1 if k == "csr_serial" else (1 if A.nnz < 20_000 else threads)
            try:
                pool[k] = spmvtune.select_kernel(A, kernel=k, threads=t)
            except KernelUnusable:
                continue
            cont[k] = lambda o=pool[k]: o.matvec(x, out=y)
        med = interleaved_medians(cont, repeats=7, min_seconds=0.5 if A.nnz < 1e6 else 3)
        fastest = min(pool, key=lambda k: med[k])
        t_base = med["csr_balanced"]
        row = dict(matrix=name, nnz=A.nnz, kernel=op.kernel, threads=op.threads,
                   vs_scipy=med["scipy"] / med["selected"],
                   vs_mkl=med["mkl_ie"] / med["selected"] if mkl_ok else float("nan"),
                   regret=med["selected"] / med[fastest] - 1, fastest=fastest,
                   cost=op.selection_seconds / t_base, large=name in generate.LARGE)
        rows.append(row)
        print(f"  {name:30s} {op.kernel:22s}{op.threads}t  vs SciPy {row['vs_scipy']:5.2f}x  "
              f"vs MKL IE {row['vs_mkl']:5.2f}x  regret {row['regret']:6.1%} (fastest {fastest})  "
              f"selection {row['cost']:7.1f} products", flush=True)
    for label, sel in (("all held-out", rows), ("large generated", [r for r in rows if r["large"]]),
                       ("real (../shared)", [r for r in rows if not r["large"]])):
        if not sel:
            continue
        g = lambda k: np.exp(np.mean(np.log([r[k] for r in sel])))  # noqa: E731
        reg = np.array([r["regret"] for r in sel])
        cost = np.array([r["cost"] for r in sel])
        print(f"  {label:18s} {len(sel):3d} matrices: geo-mean speedup vs SciPy {g('vs_scipy'):.2f}x, "
              f"vs MKL IE {g('vs_mkl'):.2f}x; mean regret {reg.mean():.1%}; "
              f"selection cost median {np.median(cost):.1f} products")
    return rows


def poisson3d(n):
    T = sp.diags_array([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], offsets=[-1, 0, 1])
    eye = sp.eye_array(n)
    A = sp.kron(sp.kron(T, eye), eye) + sp.kron(sp.kron(eye, T), eye) + sp.kron(sp.kron(eye, eye), T)
    A = sp.csr_array(A)
    A.sum_duplicates()
    return A


def cg_solve(threads, n=100):
    print(f"\n3. CG on the 3-D Poisson matrix ({n}^3 unknowns), rtol 1e-8, end to end")
    A = poisson3d(n)
    b = np.ones(A.shape[0])
    for blas_limited in (False, True):
        runs = []
        for _ in range(3):                   # median of 3 end-to-end solves each
            with spmvtune.single_threaded_blas() if blas_limited else nullcontext():
                t0 = time.perf_counter()
                x_ref, info_ref = cg(A, b, rtol=1e-8, maxiter=2000)
                t_scipy = time.perf_counter() - t0
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    op = spmvtune.select_kernel(A, threads=threads, cache=False,
                                                expected_calls=500)
                t_sel = time.perf_counter() - t0
                x, info = cg(op.as_linear_operator(), b, rtol=1e-8, maxiter=2000)
                t_ours = time.perf_counter() - t0
            assert info == 0 and info_ref == 0
            runs.append((t_scipy, t_ours, t_sel, op.kernel, op.threads))
        t_scipy, t_ours, t_sel, kernel, th = sorted(runs, key=lambda r: r[0] / r[1])[1]
        err = np.linalg.norm(x - x_ref) / np.linalg.norm(x_ref)
        x1 = np.ones(A.shape[1])
        med = interleaved_medians({"scipy": lambda: A @ x1, "ours": lambda: op(x1)}, repeats=20)
        label = ("inside spmvtune.single_threaded_blas() (both solves)" if blas_limited
                 else "NumPy's BLAS as configured (2 threads)")
        print(f"  {label}:\n    SciPy: {t_scipy:.2f} s; spmvtune ({kernel}, {th} threads, "
              f"selection + setup {t_sel:.2f} s included): {t_ours:.2f} s -> "
              f"{t_scipy / t_ours:.2f}x end to end (median of 3; kernels chosen: "
              f"{', '.join(r[3] for r in runs)}); the product alone "
              f"{med['scipy'] / med['ours']:.2f}x; solutions agree to {err:.1e}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--shared", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-large", action="store_true")
    ap.add_argument("--cg-only", action="store_true", help="only part 3, the CG solve")
    ap.add_argument("--cv-only", action="store_true", help="only part 1, cross-validation")
    args = ap.parse_args(argv)
    if args.cg_only:
        cg_solve(args.threads)
        return
    records = [r for r in ResultsStore(args.store).records() if "times" in r[2]]
    cross_validation(records)
    if args.cv_only:
        return
    paths = sorted(p for p in Path(args.shared).iterdir()
                   if p.name.endswith((".mtx", ".mtx.gz"))) if args.shared else []
    held_out(paths, args.threads, not args.no_large)
    cg_solve(args.threads)


if __name__ == "__main__":
    main()
