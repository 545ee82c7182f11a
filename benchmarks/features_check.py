"""Structural features of this checkout against an older revision's: accuracy and cost.

    python benchmarks/features_check.py accuracy [--old REV] [--quick]
    python benchmarks/features_check.py cost [--old REV] [--rounds 15]

``accuracy`` computes ``structural_features`` + ``vector_features`` with the old
revision's code (``git archive REV spmvtune``, imported as ``spmvtune_old``), with
this checkout's, and with this checkout's sampling switched off (every row
inspected: the exact value), on the large generated families, a 100^3 Poisson
matrix, the UNSEEN families, mid-size matrices, a dozen real matrices of
../shared/matrices/suitesparse and small edge cases.  It prints, per feature, the
largest relative difference new vs old (over all matrices, and over those the old
code inspected every row of), new vs exact, and old vs exact (where the old value
was itself a sampled estimate), with the matrix where it occurs.

``cost`` times the old and the new features (interleaved rounds, min and median)
on the large matrices in baseline products (``csr_balanced`` at 2 threads, timed
in the same rounds).

Large matrices are cached as .npz under --cache (default /tmp/spmvtune-features-check).
"""
import argparse
import importlib
import os
import subprocess
import sys
import io
import tarfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import spmvtune  # noqa: E402
from spmvtune import generate  # noqa: E402

#: Features the cost model reads (the brief's 5% target).
COST_MODEL = ["x_lines_per_nnz", "imbalance_rows", "imbalance_nnz", "value_bytes",
              "distinct_values", "few_values", "symmetric", "bcsr_bytes", "bcsr_fill",
              "bcsr_r", "bcsr_c", "delta_index_bytes", "delta_saving", "spmm_bcsr_fill",
              "spmm_bcsr_r", "spmm_bcsr_c"]
SKIP = {"seconds", "sampled_row_stride"}
CACHES = {"L1d": 32 << 10, "L2": 1 << 20, "L3": 32 << 20}
REAL = ["dblp-2010.mtx.gz", "pkustk02.mtx.gz", "cage11.mtx.gz", "Trefethen_20000.mtx.gz",
        "ca-AstroPh.mtx.gz", "delaunay_n16.mtx.gz", "bcsstk38.mtx.gz", "rgg_n_2_15_s0.mtx.gz",
        "arrow.mtx.gz", "memplus.mtx.gz", "Franz6_id1959_aug.mtx.gz",
        "sparse-images-1024_subset.mtx.gz", "bayer10.mtx.gz", "reactome-pathway.mtx.gz"]


def old_package(rev, dest):
    """Import revision ``rev``'s spmvtune as ``spmvtune_old`` (extracted under dest)."""
    pkg = Path(dest) / f"old-{rev[:12]}"
    if not (pkg / "spmvtune_old").is_dir():
        blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "spmvtune"],
                              check=True, capture_output=True).stdout
        pkg.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            tar.extractall(pkg, filter="data")
        (pkg / "spmvtune").rename(pkg / "spmvtune_old")
    sys.path.insert(0, str(pkg))
    return importlib.import_module("spmvtune_old.features")


def cached(cache, name, build):
    path = Path(cache) / f"{name}.npz"
    if path.exists():
        return sp.csr_array(sp.load_npz(path))
    A = sp.csr_array(build())
    path.parent.mkdir(parents=True, exist_ok=True)
    sp.save_npz(path, A, compressed=False)
    return A


def poisson():
    from solvers import poisson3d
    return poisson3d(100)


def large_matrices(cache):
    yield "poisson_100", cached(cache, "poisson_100", poisson)
    for name, (build, _) in generate.LARGE.items():
        yield name, cached(cache, name, build)


def other_matrices(cache, quick=False):
    for name, (build, _) in generate.UNSEEN.items():
        if quick and name.endswith(("_20", "_1500", "_40k", "_1m", "_2m", "_150")):
            continue
        yield f"unseen:{name}", cached(cache, f"unseen_{name}", build)
    mid = {
        "laplace2d_500": lambda: generate.laplacian_2d(500),
        "banded_300k": lambda: generate.banded(300_000, 3),
        "scatter_200k_8": lambda: generate.random_scatter(200_000, 8),
        "power_law_200k": lambda: generate.power_law(200_000, 8, exponent=1.3),
        "fem_blocks_50k": lambda: generate.fem_blocks(50_000, 10),
        "dominant_80k_12_0.55": lambda: generate.dominant_row(80_000, 12, 0.55),
        "dominant_150k_4_0.75": lambda: generate.dominant_row(150_000, 4, 0.75),
        "short_rows_1m": lambda: generate.short_rows(1_000_000),
        "wide_lp_50k": lambda: generate.wide_lp(50_000, 1_000_000, 40),
        "stencil27_40": lambda: generate.stencil3d(40),
    }
    for name, build in mid.items():
        yield f"mid:{name}", cached(cache, f"mid_{name}", build)
    shared = next((p / "shared" / "matrices" / "suitesparse" for p in ROOT.parents
                   if (p / "shared" / "matrices" / "suitesparse").is_dir()), Path("/nonexistent"))
    for fname in REAL:
        if (shared / fname).exists():
            yield f"real:{fname.split('.')[0]}", spmvtune.load(shared / fname)
    sys.path.insert(0, str(ROOT / "tests"))
    from families import FAMILIES
    for name, build in FAMILIES.items():
        yield f"small:{name}", build()
    yield "small:single_row", sp.csr_array(np.random.default_rng(1).uniform(-1, 1, (1, 500)))
    yield "small:rect_dense_rows", sp.csr_array(
        sp.random_array((50, 20_000), density=0.3, rng=3))
    yield "small:float32_stencil", generate.stencil3d(12).astype(np.float32)
    yield "small:complex_random", (generate.random_scatter(3000, 6, seed=4)
                                   * (1 + 1j)).astype(np.complex128)


def rel(a, b):
    a, b = float(a), float(b)
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def all_features(mod, A):
    f = mod.structural_features(A, caches=CACHES, threads=2)
    f.update(mod.vector_features(A))
    return f


def exact_features(A):
    from spmvtune import features as F
    keep = F.EXACT_NNZ
    F.EXACT_NNZ = 1 << 62
    try:
        return all_features(F, A)
    finally:
        F.EXACT_NNZ = keep


def accuracy(args):
    from spmvtune import features as new
    old = old_package(args.old, args.cache)
    worst = {}          # (feature, kind) -> [(diff, matrix, a, b)]
    mats = list(large_matrices(args.cache)) if not args.small_only else []
    for name, A in mats + list(other_matrices(args.cache, args.quick or args.small_only)):
        if args.small_only and not name.startswith(("small:", "real:")):
            continue
        fo, fn = all_features(old, A), all_features(new, A)
        fe = exact_features(A)
        line = []
        for key in sorted(set(fo) | set(fn)):
            if key in SKIP:
                continue
            assert key in fo and key in fn, (name, key)
            pairs = [("new/old", fn[key], fo[key]), ("new/exact", fn[key], fe[key]),
                     ("old/exact", fo[key], fe[key])]
            if fo["sampled_row_stride"] == 1.0:           # the old value was exact
                pairs.append(("new/exact old", fn[key], fo[key]))
            for kind, a, b in pairs:
                worst.setdefault((key, kind), []).append((rel(a, b), name, a, b))
            d = rel(fn[key], fo[key])
            if d > 0.05:
                line.append(f"{key} {fo[key]:.4g}->{fn[key]:.4g} (exact {fe[key]:.4g})")
        print(f"{name:38s} nnz={A.nnz:>9d} stride {fn['sampled_row_stride']:7.1f}  "
              + ("; ".join(line) if line else "all within 5% of old"), flush=True)
    print("\nlargest relative difference per feature (matrix):")
    kinds = ("new/old", "new/exact old", "new/exact", "old/exact")
    print(f"{'feature':24s} {'new vs old':>34s} {'new vs old, old exact':>34s} "
          f"{'new vs exact':>34s} {'old vs exact':>34s}")
    for key in sorted({k for k, _ in worst}, key=lambda k: (k not in COST_MODEL, k)):
        cells = []
        for kind in kinds:
            d, name, a, b = max(worst.get((key, kind), [(0.0, "", 0, 0)]), key=lambda t: t[0])
            cells.append(f"{100 * d:7.2f}% {name[:25] if d else '':>25s}")
        mark = "*" if key in COST_MODEL else " "
        print(f"{mark}{key:23s} " + " ".join(cells))
    print("(* = read by the cost model; differences are |a - b| / max(|a|, |b|); "
          "'old exact': matrices the old code inspected every row of)")


def cost(args):
    from spmvtune import features as new
    from spmvtune.operator import build_operator
    from spmvtune.validate import as_canonical_csr
    from spmvtune.machine import cache_sizes
    old = old_package(args.old, args.cache)
    caches = cache_sizes()
    for name, A in large_matrices(args.cache):
        if args.only and name not in args.only:
            continue
        csr = as_canonical_csr(A)
        csr_old = importlib.import_module("spmvtune_old.validate").as_canonical_csr(A)
        op = build_operator(csr, "csr_balanced", 2)
        x = np.ones(csr.shape[1])
        y = np.zeros(csr.shape[0])
        fns = {"product": lambda: op.matvec(x, out=y),
               "old": lambda: old.structural_features(csr_old, caches=caches, threads=2),
               "new": lambda: new.structural_features(csr, caches=caches, threads=2)}
        times = {k: [] for k in fns}
        for f in fns.values():
            f()
        for _ in range(args.rounds):
            for k, f in fns.items():
                t = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t)
        p_min, p_med = min(times["product"]), float(np.median(times["product"]))
        cells = [f"{k} {min(times[k]) / p_min:5.2f} (median {np.median(times[k]) / p_med:5.2f})"
                 for k in ("old", "new")]
        print(f"{name:15s} nnz {csr.nnz / 1e6:5.1f}M product {p_min * 1e3:6.2f} ms | features in "
              f"products: " + " | ".join(cells)
              + f" | feature_seconds {new.feature_seconds(csr) / p_min:5.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("accuracy", "cost"))
    ap.add_argument("--old", default=None,
                    help="revision to compare with (default: merge-base with main)")
    ap.add_argument("--cache", default="/tmp/spmvtune-features-check")
    ap.add_argument("--quick", action="store_true", help="skip the large UNSEEN matrices")
    ap.add_argument("--small-only", action="store_true", help="only small and real matrices")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--points", type=int, help="override features.SAMPLE_POINTS (experiments)")
    ap.add_argument("--only", nargs="*", help="cost: these large matrices only")
    args = ap.parse_args()
    if args.old is None:
        args.old = subprocess.run(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"],
                                  check=True, capture_output=True, text=True).stdout.strip()
    os.makedirs(args.cache, exist_ok=True)
    if args.points:
        from spmvtune import features
        features.SAMPLE_POINTS = args.points
    (accuracy if args.mode == "accuracy" else cost)(args)


if __name__ == "__main__":
    main()
