"""How good is the selector?  Cross-validation on the training store, then
held-out matrices measured live.

1. Cross-validation (stored timings; a pick's regret is its stored time over
   the fastest stored (kernel, threads) pair, minus 1):
   - leave-family-out on the generated families: the cost model, the
     random forest and the rule are fitted without the family they are
     tested on;
   - 5 folds over the real training matrices.
   Selectors: the cost model's prediction ("predicted"), auto as it plans its
   check (the planned pairs' stored times: no timing noise), the forest on
   features (labels: the simplest pair within 1%), the bottleneck rule with
   the micro-profile, and csr_balanced at all threads / at its best count.
2. Held out (nothing tuned on them): the real matrices of the held-out part
   (benchmarks/real_split.tsv), the unseen generated families
   (spmvtune.generate.UNSEEN) and the large families (generate.LARGE).  Each
   as a solver calls it, ``select_kernel(A, cache=False)`` with the shipped
   models, then every (kernel, threads) pair of the pool, SciPy, MKL IE (best
   of 1 and all threads) and GraphBLAS timed in interleaved rounds of 20 ms
   batches, anchored on csr_balanced so groups compare.  Rows are stored as
   they are measured (resumable).

    python benchmarks/selection_eval.py --store benchmarks/results/training.sqlite \
        [--shared ../shared/matrices/suitesparse] [--cv-only | --heldout-only]
"""
import argparse
import json
import sqlite3
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import spmvtune
from spmvtune import generate, peers
from spmvtune.costmodel import canonical_times, fit as fit_cost_model, record_group
from spmvtune.decision import BASELINE
from spmvtune.machine import machine_profile
from spmvtune.model import TOLERANCE, dataset, make_estimator, single_vector_times
from spmvtune.pool import canonical_pair, get_kernel, kernel_names, kernel_specs
from spmvtune.select import (FOREST_CANDIDATES, HORIZON, agreed_pair, check_extras,
                             long_products, plan_check, repaid, spent_seconds, steady_pick,
                             thread_candidates, usable_pairs)
from spmvtune.timing import OPENMP_SPIN_SECONDS, STABLE_BATCH_SECONDS, interleaved_medians
from spmvtune.train import ResultsStore, measure_matrix

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from real_split import read_split  # noqa: E402

ORDER = list(kernel_names())


def regret(times, key):
    """Stored time of the pick over the fastest, minus 1 (an unusable pick runs the baseline)."""
    times = canonical_times(single_vector_times(times))   # one loop: one time; k = 1 only
    t = times.get(key)
    if t is None:
        t = min(v for k, v in times.items() if k.startswith(BASELINE + "@"))
    return t / min(times.values()) - 1.0


def line(name, regrets):
    r = np.asarray(regrets)
    if not len(r):
        return f"  {name:44s} (none)"
    return (f"  {name:44s} n={len(r):4d}  within 5% {np.mean(r <= TOLERANCE):6.1%}  "
            f"mean regret {r.mean():6.1%}  worst {r.max():7.1%}")


# ---- 1. cross-validation ------------------------------------------------------------

def cost_model_picks(model, rec, machine, threads, forest_labels=None):
    """(predicted pick, auto's pick) of a fitted cost model on a stored record:
    auto as ``select_kernel`` plans it (the forest's two most probable usable
    classes, ``forest_labels`` most probable first, timed beside the
    model's, or taken when no check is planned), its timing read from the store,
    and the baseline kept where the measured gain would not repay the selection."""
    f = rec["features"]
    times = single_vector_times(rec["times"])
    ranked = model.rank(f, machine, kernel_specs(), thread_candidates(threads), threads)
    ranked = [r for r in ranked if f"{r[1]}@{r[2]}" in times] or ranked
    best = f"{ranked[0][1]}@{ranked[0][2]}"
    t_base = min((t for t, k, _ in ranked if k == BASELINE), default=ranked[0][0])
    forest = usable_pairs(forest_labels or [], threads, {(k, t) for _, k, t in ranked},
                          FOREST_CANDIDATES)
    also = forest[0] if forest else None
    extra = check_extras(forest, f, ranked, machine.caches)
    timed = plan_check(ranked, t_base, HORIZON,
                       lambda k: model.predict_setup(get_kernel(k), f, t_base),
                       lambda k, t: model.error.get(f"{k}@{t}", 0.0), also=extra,
                       agreed=agreed_pair(forest, ranked))
    if not timed:
        return best, (f"{also[0]}@{also[1]}" if also else best)
    measured = {(k, t): times[f"{k}@{t}"] for k, t in timed if f"{k}@{t}" in times}
    if not measured:
        return best, best
    (k, t), _ = steady_pick(measured)
    pick = f"{k}@{t}"
    base = [f"{k}@{t}" for k, t in measured if k == BASELINE]
    if base and not pick.startswith(BASELINE + "@"):
        # the measured gain must repay the selection, as auto weighs it
        spent = spent_seconds(f.get("seconds", 0.0), measured,
                              lambda k: model.predict_setup(get_kernel(k), f, t_base),
                              long_products({(k, t): p for p, k, t in ranked}, timed))
        b = min(base, key=times.get)
        if not repaid(spent, times[b], times[pick], HORIZON):
            pick = b
    return best, pick


def evaluate_fold(train, test, machine, threads, out):
    model = fit_cost_model([r for _, _, r in train], machine, kernel_specs(), threads,
                           groups=[record_group(n, fam) for n, fam, _ in train])
    labels_ok = len({lab for lab in dataset(train, ORDER)[1]}) > 1
    forest = None
    if labels_ok:
        X, y, _, _ = dataset(train, ORDER)
        forest = make_estimator("forest").fit(X, y)
    Xt, _, _, kept = dataset(test, ORDER)
    for i, (name, family, rec) in enumerate(kept):
        times = single_vector_times(rec["times"])
        labels = None
        if forest is not None:
            proba = forest.predict_proba(Xt[i:i + 1])[0]
            labels = [str(forest.classes_[j]) for j in np.argsort(-proba) if proba[j] > 0]
        forest_pick = labels[0] if labels else None
        predicted, auto = cost_model_picks(model, rec, machine, threads, labels)
        out["cost model: predicted"].append(regret(times, predicted))
        out["auto (planned check, stored times)"].append(regret(times, auto))
        if forest is not None:
            out["random forest (features)"].append(regret(times, forest_pick))
        if rec.get("rule"):
            rt = get_kernel(rec["rule"]).threads_for(rec.get("rule_threads") or threads)
            out["bottleneck rule (micro-profile)"].append(regret(times, f"{rec['rule']}@{rt}"))
        out[f"always {BASELINE}@{threads}"].append(regret(times, f"{BASELINE}@{threads}"))
        best_base = min((k for k in times if k.startswith(BASELINE + "@")), key=times.get)
        out[f"{BASELINE} at its best thread count"].append(regret(times, best_base))


SELECTORS = ("auto (planned check, stored times)", "cost model: predicted",
             "random forest (features)", "bottleneck rule (micro-profile)",
             f"{BASELINE} at its best thread count")


def cross_validation(records, machine, threads):
    from sklearn.model_selection import KFold
    gen = [r for r in records if not r[1].startswith("file:")]
    real = [r for r in records if r[1].startswith("file:")]
    print(f"1. Cross-validation on the training store ({len(gen)} generated matrices in "
          f"{len({f for _, f, _ in gen})} families, {len(real)} real matrices)\n")
    results = {}
    out = {k: [] for k in (*SELECTORS, f"always {BASELINE}@{threads}")}
    for family in sorted({f for _, f, _ in gen}):
        test = [r for r in gen if r[1] == family]
        evaluate_fold([r for r in records if r[1] != family], test, machine, threads, out)
    print("  leave-family-out, generated families (each family unseen in its fold):")
    for k, v in out.items():
        print(line(k, v))
    results["leave-family-out"] = {k: list(map(float, v)) for k, v in out.items()}
    if len(real) >= 10:
        out = {k: [] for k in (*SELECTORS, f"always {BASELINE}@{threads}")}
        for tr, te in KFold(5, shuffle=True, random_state=0).split(real):
            evaluate_fold(gen + [real[i] for i in tr], [real[i] for i in te], machine, threads, out)
        print("\n  5-fold, real training matrices (each matrix unseen in its fold):")
        for k, v in out.items():
            print(line(k, v))
        results["real 5-fold"] = {k: list(map(float, v)) for k, v in out.items()}
    model = fit_cost_model([r for _, _, r in records], machine, kernel_specs(), threads,
                           groups=[record_group(n, fam) for n, fam, _ in records])
    errs = sorted(model.error.items(), key=lambda kv: -kv[1])
    print("\n  cost model fitted on everything: median relative error per pair "
          f"(median over pairs {np.median([e for _, e in errs]):.1%}; worst: "
          + ", ".join(f"{k} {e:.0%}" for k, e in errs[:4]) + ")")
    return results


# ---- 2. held-out matrices, measured live ---------------------------------------------

def heldout_items(shared):
    items = []
    if shared and (shared / "MANIFEST.tsv").exists():
        split = read_split()
        for name, part in sorted(split.items()):
            if part == "heldout" and (shared / name).exists():
                items.append((f"real/{name}", "real", lambda p=shared / name: spmvtune.load(p)))
    items += [(f"unseen/{k}", "unseen", b) for k, (b, _) in generate.UNSEEN.items()]
    items += [(f"large/{k}", "large", b) for k, (b, _) in generate.LARGE.items()]
    return items


def measure_heldout(A, threads):
    """Row of one held-out matrix (seconds per product; see the module docstring)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the first selection in a process loads the kernels' compiled code from
        # Numba's cache (first-call latency, reported by benchmarks/overhead.py);
        # the selection cost is that of a warm process, as in a solver's loop
        spmvtune.select_kernel(A, threads=threads, cache=False)
        t0 = time.perf_counter()
        op = spmvtune.select_kernel(A, threads=threads, cache=False)
        select_wall = time.perf_counter() - t0
    A = A.tocsr()
    x = np.random.default_rng(0).uniform(-1, 1, A.shape[1]).astype(A.dtype)
    y = np.empty(A.shape[0], np.result_type(A.dtype, x.dtype))
    ref = A @ x
    if not np.allclose(op(x), ref, rtol=1e-10, atol=1e-12 * max(np.abs(ref).max(), 1.0)):
        raise AssertionError("the selected operator gives a wrong result")
    pool = measure_matrix(A, threads, profile=False)
    pool["times"] = canonical_times(pool["times"])
    anchor_key = f"{BASELINE}@{threads}"
    anchor = spmvtune.select_kernel(A, kernel=BASELINE, threads=threads)
    cont = {"anchor": lambda: anchor.matvec(x, out=y), "selected": lambda: op.matvec(x, out=y),
            "scipy": lambda: A @ x}
    if threads > 1:
        anchor1 = spmvtune.select_kernel(A, kernel=BASELINE, threads=1)
        cont["anchor1"] = lambda: anchor1.matvec(x, out=y)
    # The fastest pair of the pool's timing, timed again beside the selected one:
    # the minimum over ~30 noisy medians is biased low (near-ties), so the regret
    # is also taken from this second, independent measurement.
    oracle_key = min(pool["times"], key=pool["times"].get)
    selected_key = "@".join(map(str, canonical_pair(op.kernel, op.threads)))
    if oracle_key != selected_key:
        ok, ot = oracle_key.split("@")
        oracle = spmvtune.select_kernel(A, kernel=ok, threads=int(ot))
        cont["oracle"] = lambda: oracle.matvec(x, out=y)
    spin = {}
    real64 = A.dtype == np.float64                  # the peers' wrappers take float64
    if real64 and peers.mkl_available()[0] and max(A.shape) < 2**31:
        for t in sorted({1, threads}):
            m = peers.MKLMatrix(A, t, optimize=True)
            cont[f"mkl_ie@{t}"] = lambda m=m: m(x, y)
            spin[f"mkl_ie@{t}"] = OPENMP_SPIN_SECONDS
    if real64 and peers.graphblas_available()[0]:
        g = peers.GraphBLASMatrix(A, threads)
        g(x, y)
        if np.allclose(y, ref, rtol=1e-10, atol=1e-12 * max(np.abs(ref).max(), 1.0)):
            cont["graphblas"] = g.mxv
    med = interleaved_medians(cont, repeats=7, settle=spin, batch_seconds=STABLE_BATCH_SECONDS)
    scale = pool["times"][anchor_key] / med["anchor"]          # onto the pool's anchor
    peers_t = {k: v * scale for k, v in med.items()}
    times = dict(pool["times"])
    # every ratio below is taken side by side in the second run (peers_t); the
    # pool's run gives the one-run regret (biased high by near-ties) for comparison
    t_sel = peers_t["selected"]
    t_sel_pool = times.get(selected_key, t_sel)
    best_pool = min(times.values())
    mkl = [v for k, v in peers_t.items() if k.startswith("mkl_ie")]
    t_base = peers_t["anchor"]
    base_best = min([t_base, peers_t["anchor1"]] if "anchor1" in peers_t else [t_base])
    saving = t_base - t_sel
    chosen_base = canonical_pair(op.kernel, op.threads) == canonical_pair(BASELINE, threads)
    break_even = (0.0 if chosen_base else
                  (op.selection_seconds + op.setup_seconds) / saving if saving > 0 else float("inf"))
    regret2 = t_sel / peers_t["oracle"] - 1.0 if "oracle" in peers_t else 0.0
    return {"nnz": int(A.nnz), "rows": A.shape[0], "cols": A.shape[1],
            "kernel": op.kernel, "threads": op.threads, "source": op.selection_source,
            "fastest": oracle_key, "regret_one_run": t_sel_pool / min(best_pool, t_sel_pool) - 1.0,
            "regret": regret2,
            "vs_scipy": peers_t["scipy"] / t_sel, "vs_baseline": t_base / t_sel,
            "vs_best_baseline": base_best / t_sel,
            "vs_mkl_ie": min(mkl) / t_sel if mkl else None,
            "vs_graphblas": peers_t["graphblas"] / t_sel if "graphblas" in peers_t else None,
            "oracle_vs_scipy": peers_t["scipy"] / min(peers_t.get("oracle", t_sel), t_sel),
            "selection_products": op.selection_seconds / base_best,
            "setup_products": op.setup_seconds / base_best,
            "select_wall_seconds": select_wall, "break_even_calls": break_even,
            "reported_break_even": op.break_even_calls,
            "times": times, "peers": peers_t}


def heldout(items, threads, store_path):
    con = sqlite3.connect(store_path)
    con.execute("CREATE TABLE IF NOT EXISTS rows (name TEXT PRIMARY KEY, grp TEXT, row TEXT)")
    con.commit()
    done = {n for (n,) in con.execute("SELECT name FROM rows")}
    for i, (name, grp, build) in enumerate(items, 1):
        if name in done:
            continue
        try:
            row = measure_heldout(build(), threads)
        except Exception as exc:           # noqa: BLE001 - report and go on
            row = {"error": f"{type(exc).__name__}: {exc}"}
        with con:
            con.execute("INSERT OR REPLACE INTO rows VALUES (?, ?, ?)", (name, grp, json.dumps(row)))
        if "error" in row:
            print(f"  [{i}/{len(items)}] {name}: {row['error']}", flush=True)
        else:
            print(f"  [{i}/{len(items)}] {name:40s} nnz {row['nnz']:>9d} {row['kernel']}@{row['threads']}"
                  f" regret {row['regret']:6.1%} (fastest {row['fastest']}) vs SciPy "
                  f"{row['vs_scipy']:.2f}x vs base {row['vs_baseline']:.2f}x  selection "
                  f"{row['selection_products']:.0f} products", flush=True)
    rows = [(n, g, json.loads(r)) for n, g, r in con.execute("SELECT name, grp, row FROM rows")]
    con.close()
    return [(n, g, r) for n, g, r in rows if "error" not in r]


def geomean(v):
    v = [x for x in v if x]
    return float(np.exp(np.mean(np.log(v)))) if v else float("nan")


def summarize_heldout(rows):
    print("\n2. Held out (select_kernel(A) with the shipped models; 2 threads; 20 ms batches):")
    groups = [("real (held-out part of ../shared)", [r for _, g, r in rows if g == "real"]),
              ("unseen generated families", [r for _, g, r in rows if g == "unseen"]),
              ("large generated (12-31M nonzeros)", [r for _, g, r in rows if g == "large"])]
    summary = {}
    for label, rs in groups:
        if not rs:
            continue
        reg = np.array([r["regret"] for r in rs])
        non_base = [r for r in rs if not (r["kernel"] == BASELINE)]
        be = [r["break_even_calls"] for r in non_base]
        s = {"n": len(rs), "mean_regret": float(reg.mean()), "within_5": float(np.mean(reg <= 0.05)),
             "worst_regret": float(reg.max()),
             "vs_scipy": geomean(r["vs_scipy"] for r in rs),
             "min_vs_scipy": float(min(r["vs_scipy"] for r in rs)),
             "min_vs_baseline": float(min(r["vs_baseline"] for r in rs)),
             "min_vs_best_baseline": float(min(r["vs_best_baseline"] for r in rs)),
             "mean_regret_one_run": float(np.mean([r.get("regret_one_run", r["regret"])
                                                   for r in rs])),
             "vs_mkl_ie": geomean(r["vs_mkl_ie"] for r in rs),
             "vs_graphblas": geomean(r["vs_graphblas"] for r in rs),
             "oracle_vs_scipy": geomean(r["oracle_vs_scipy"] for r in rs),
             "selection_products_median": float(np.median([r["selection_products"] for r in rs])),
             "selection_products_max": float(max(r["selection_products"] for r in rs)),
             "non_baseline": len(non_base),
             "break_even_max": float(max(be)) if be else 0.0,
             "break_even_over_1000": int(sum(b > 1000 for b in be))}
        summary[label] = s
        print(f"  {label}: {s['n']} matrices")
        print(f"    mean regret {s['mean_regret']:.1%}, within 5% of the fastest pair "
              f"{s['within_5']:.0%}, worst {s['worst_regret']:.0%} (taken in one run with "
              f"the whole pool: mean {s['mean_regret_one_run']:.1%})")
        print(f"    vs SciPy {s['vs_scipy']:.2f}x (lowest {s['min_vs_scipy']:.2f}x; the oracle "
              f"{s['oracle_vs_scipy']:.2f}x), lowest vs csr_balanced at its best thread count "
              f"{s['min_vs_best_baseline']:.2f}x, "
              f"vs MKL IE {s['vs_mkl_ie']:.2f}x, vs GraphBLAS {s['vs_graphblas']:.2f}x")
        print(f"    selection cost median {s['selection_products_median']:.0f} products "
              f"(max {s['selection_products_max']:.0f}); non-baseline picks {s['non_baseline']}, "
              f"break-even max {s['break_even_max']:.0f} calls, over 1000: "
              f"{s['break_even_over_1000']}")
        worst = sorted(rs, key=lambda r: -r["regret"])[:3]
        print("    largest regrets: " + "; ".join(
            f"{r['kernel']}@{r['threads']} vs {r['fastest']} {r['regret']:.0%}" for r in worst))
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="the training store (spmvtune train --store)")
    ap.add_argument("--shared", type=Path, default=HERE.parents[1] / "shared" / "matrices"
                    / "suitesparse")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--heldout-store", default=str(HERE / "results" / "selection_heldout.sqlite"))
    ap.add_argument("--cv-only", action="store_true")
    ap.add_argument("--heldout-only", action="store_true")
    ap.add_argument("--limit", type=int, default=None, help="at most this many held-out matrices")
    args = ap.parse_args(argv)
    machine = machine_profile()
    summary = {}
    if not args.heldout_only:
        records = [r for r in ResultsStore(args.store).records() if "times" in r[2]]
        summary["cv"] = cross_validation(records, machine, args.threads)
        print()
    if not args.cv_only:
        items = heldout_items(args.shared)[:args.limit]
        rows = heldout(items, args.threads, args.heldout_store)
        summary["heldout"] = summarize_heldout(rows)
    (HERE / "results" / "selection_eval.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
