"""The sparse/dense crossover: the density above which dense BLAS beats the
sparse kernels, for a shape, k right-hand sides and this machine.

A pruned layer is only worth running sparse below some density: above it the
dense product (``dense_gemv`` for one vector, ``dense_mm``'s ``gemm`` for k)
streams 8 bytes per entry, nothing per index, and reaches the BLAS's peak
rate, which grows with k.  Park et al. (ICLR 2017) predict this per layer and
machine with a performance model; here the cost model does it:

- :func:`predicted_crossover`: the density where the model's fastest sparse
  pair (kernel, threads) and the dense kernel take the same time, found by
  bisection over the features of the matrix rescaled to each density
  (:func:`features_at_density`);
- :func:`measure_crossover`: the same from timings: pruned layers of the
  shape at a ladder of densities, the sparse candidates and the dense kernel
  timed side by side (interleaved rounds, BLAS spin settled), the crossing
  of a robust line through log(sparse / dense) against log density.
"""
import math

import numpy as np

#: Densities of the measured ladder (a pruned layer keeps 1-90% of its weights).
DENSITIES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
#: Bisection range of the predicted crossover (density).
LOWEST, HIGHEST = 1e-4, 1.0


def dense_kernel(k):
    """The dense fallback for k right-hand sides."""
    return "dense_gemv" if k == 1 else "dense_mm"


def _new_line_share(d):
    """New x lines per nonzero of a uniformly random row pattern of density d:
    a 64-byte line of 8 columns is touched with probability p = 1 - (1 - d)^8,
    new when the previous row missed it (1 - p), per d n / (n / 8) nonzeros."""
    d = min(max(d, 1e-12), 1.0)
    p = 1.0 - (1.0 - d) ** 8
    return min(p * (1.0 - p) / (8.0 * d) + 0.125 * (1.0 - p), 1.0)


def _fill(d, size):
    """Stored values / nonzeros of a uniformly random pattern of density d in
    blocks of ``size`` entries: a block is stored when any entry is set."""
    d = min(max(d, 1e-12), 1.0)
    return -math.expm1(size * math.log1p(-d)) / d if d < 1.0 else 1.0


def _refill(g, f, density, fill_key, r_key, c_key):
    """Rescale the fill ``f[fill_key]`` of an r x c block shape from the
    matrix's density to ``density`` as a random pattern's fill changes, at
    least 1 (block-pruned layers are full at every density)."""
    if fill_key not in f:
        return
    size = int(f.get(r_key, 1.0) * f.get(c_key, 1.0))
    g[fill_key] = max(f[fill_key] * _fill(density, size) / _fill(f.get("density", density), size),
                      1.0)


def features_at_density(f, density):
    """Features of a matrix like ``f`` (same shape, row-length spread, block
    and value structure) holding ``density`` of its entries: counts that grow
    with the nonzeros scale, shares and shapes stay, and the new x lines per
    nonzero follow a random pattern's dependence on density."""
    from .pool.bcsr import block_bytes
    m, n = f["rows"], f["cols"]
    g = dict(f)
    nnz = density * m * n
    r = nnz / f["nnz"] if f["nnz"] else 0.0
    g["nnz"], g["density"] = nnz, density
    g["csr_bytes"] = 12.0 * nnz + 4.0 * (m + 1)
    g["working_set_bytes"] = g["csr_bytes"] + 8.0 * (m + n)
    for key in ("row_mean", "row_std", "row_min"):
        g[key] = f.get(key, 0.0) * r
    g["row_max"] = min(f.get("row_max", 0.0) * r, n)
    if not f["nnz"]:
        g["row_mean"] = g["row_max"] = nnz / max(m, 1)
    # blocks fill up as the density grows (a random pattern's 2 x 2 blocks hold
    # 1.9 entries per nonzero at 10% and 1.1 at 90%)
    _refill(g, f, density, "bcsr_fill", "bcsr_r", "bcsr_c")
    _refill(g, f, density, "spmm_bcsr_fill", "spmm_bcsr_r", "spmm_bcsr_c")
    if "bcsr_bytes" in f:
        if f["nnz"] and "bcsr_fill" in f:
            g["bcsr_bytes"] = block_bytes(nnz, m, g["bcsr_fill"], f.get("bcsr_r", 1.0),
                                          f.get("bcsr_c", 1.0), float(f.get("value_bytes", 8.0)))
        else:
            g["bcsr_bytes"] = f["bcsr_bytes"] * r if f["nnz"] else g["csr_bytes"]
    if "distinct_values" in f and not f.get("few_values"):
        g["distinct_values"] = max(f["distinct_values"] * r, 1.0)
    here = _new_line_share(max(f.get("density", density), 1e-12))
    if here > 0:
        g["x_lines_per_nnz"] = min(f.get("x_lines_per_nnz", 1.0) * _new_line_share(density)
                                   / here, 1.0)
    # else a full matrix (every line reused by the next row): nothing to rescale from
    return g


def _best(model, machine, specs, f, threads, k, max_threads):
    from .select import thread_candidates
    best = (math.inf, None, None)
    for spec in specs:
        for T in sorted({spec.threads_for(t) for t in thread_candidates(threads)}):
            t = model.predict(spec, f, T, machine, max_threads, k)
            if t < best[0]:
                best = (t, spec.name, T)
    return best


def predicted_crossover(f, k=1, threads=2, machine=None, model=None):
    """The cost model's crossover for the matrix of features ``f`` (with
    :func:`~spmvtune.features.vector_features` for k > 1) at k vectors.

    Returns a dict: ``density`` (None when one side wins at every density in
    [1e-4, 1]; then ``wins`` says which), ``dense_kernel``, ``dense_seconds``
    and ``dense_threads``, the ``sparse_kernel`` and ``sparse_threads`` the
    model prefers at the crossover (or at the matrix's own density),
    ``here`` ("sparse" or "dense": the faster at the matrix's density).
    """
    from .costmodel import current_cost_model
    from .machine import machine_profile
    from .pool import get_kernel, kernel_specs
    machine = machine or machine_profile()
    model = model or current_cost_model()
    dense = get_kernel(dense_kernel(k))
    sparse = [s for s in kernel_specs() if s.serves(k) and s.balance != "blas"]
    out = {"n_vectors": k, "dense_kernel": dense.name, "density": None, "wins": None,
           "matrix_density": f["density"]}
    if dense.storage(f) > _max_dense_bytes():
        out.update(wins="sparse", reason="the dense copy would not fit the dense kernels' limit")
        return out
    t_dense, _, T_dense = _best(model, machine, [dense], f, threads, k, threads)
    out.update(dense_seconds=t_dense, dense_threads=T_dense)

    def sparse_at(d):
        g = features_at_density(f, d)
        usable = [s for s in sparse if s.refusal(g) is None]
        return _best(model, machine, usable, g, threads, k, threads)

    here = sparse_at(max(f["density"], LOWEST))
    out["here"] = "sparse" if here[0] <= t_dense else "dense"
    out["sparse_seconds_here"] = here[0]
    lo, hi = math.log(LOWEST), math.log(HIGHEST)
    if sparse_at(HIGHEST)[0] <= t_dense:
        out.update(wins="sparse", sparse_kernel=here[1], sparse_threads=here[2])
        return out
    if sparse_at(LOWEST)[0] >= t_dense:
        out.update(wins="dense", sparse_kernel=here[1], sparse_threads=here[2])
        return out
    for _ in range(40):                      # log-density bisection to ~1e-5 relative
        mid = 0.5 * (lo + hi)
        if sparse_at(math.exp(mid))[0] < t_dense:
            lo = mid
        else:
            hi = mid
    d = math.exp(0.5 * (lo + hi))
    at = sparse_at(d)
    out.update(density=d, sparse_kernel=at[1], sparse_threads=at[2])
    return out


def _max_dense_bytes():
    from .pool.dense import MAX_DENSE_BYTES
    return MAX_DENSE_BYTES


def _layer(m, n, density, seed, family):
    from . import generate
    if family == "unstructured":
        return generate.pruned_unstructured(m, n, 1.0 - density, seed=seed)
    if family == "blocks":
        return generate.pruned_blocks(m, n, 1.0 - density, seed=seed)
    raise ValueError(f"family must be 'unstructured' or 'blocks', got {family!r}")


def measure_crossover(m, n, k=1, threads=2, densities=DENSITIES, family="unstructured",
                      repeats=7, batch_seconds=None, seed=0, candidates=2, log=None):
    """The measured crossover of an m x n pruned layer (``family``:
    "unstructured" or "blocks") at k vectors and ``threads``.

    At each density: the ``candidates`` sparse pairs the cost model ranks
    first, plus the baseline, and the dense kernel on 1 and on ``threads``
    threads are timed side by side (interleaved rounds of calibrated batches,
    a pause after each BLAS call); each side's time is its fastest pair's (as
    the selector may pick either thread count).
    Returns a dict: ``points`` [{density, sparse_seconds, sparse_kernel,
    dense_seconds}], ``density`` (where sparse/dense crosses 1, see
    :func:`crossing`; None when one side wins on the whole ladder, ``wins``
    says which).
    """
    from .costmodel import current_cost_model
    from .features import structural_features, vector_features
    from .machine import machine_profile
    from .operator import build_operator
    from .pool import KernelUnusable, kernel_specs
    from .pool.dense_mm import BLAS_SPIN_SECONDS
    from .select import baseline_for, thread_candidates
    from .timing import STABLE_BATCH_SECONDS, interleaved_medians
    from .validate import as_canonical_csr
    machine = machine_profile()
    model = current_cost_model()
    batch_seconds = STABLE_BATCH_SECONDS if batch_seconds is None else batch_seconds
    dense_name = dense_kernel(k)
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, k)) if k > 1 else rng.uniform(-1, 1, n)
    Y = np.empty((m, k)) if k > 1 else np.empty(m)
    points = []
    dense_ops = None
    for d in densities:
        csr = as_canonical_csr(_layer(m, n, d, seed, family))
        f = structural_features(csr, caches=machine.caches, threads=threads)
        if k > 1:
            f.update(vector_features(csr))
        sparse = [s for s in kernel_specs() if s.serves(k) and s.balance != "blas"
                  and s.refusal(f) is None]
        ranked = model.rank(f, machine, sparse, thread_candidates(threads), threads, k)
        pairs = list(dict.fromkeys([(name, T) for _, name, T in ranked[:candidates]]
                                   + [(baseline_for(k), threads)]))
        ops = {}
        for name, T in pairs:
            try:
                ops[(name, T)] = build_operator(csr, name, T)
            except KernelUnusable:
                continue
        if dense_ops is None:          # the dense product's time does not depend on the density
            dense_ops = {("dense", T): build_operator(csr, dense_name, T)
                         for T in thread_candidates(threads)}
        run = "matmat" if k > 1 else "matvec"
        contestants = {p: (lambda f_=getattr(op, run): f_(X, out=Y))
                       for p, op in {**ops, **dense_ops}.items()}
        med = interleaved_medians(contestants, repeats=repeats, batch_seconds=batch_seconds,
                                  settle={p: BLAS_SPIN_SECONDS for p in dense_ops})
        best = min((p for p in med if p[0] != "dense"), key=med.get)
        dense = min(dense_ops, key=med.get)
        points.append({"density": d, "sparse_seconds": med[best], "sparse_kernel": best[0],
                       "sparse_threads": best[1], "dense_seconds": med[dense],
                       "dense_threads": dense[1]})
        if log:
            log(f"density {d:.3g}: {best[0]} x{best[1]} {med[best] * 1e3:.3f} ms, "
                f"dense x{dense[1]} {med[dense] * 1e3:.3f} ms")
        del ops, contestants
    return {"n_vectors": k, "shape": (m, n), "family": family, "threads": threads,
            "dense_kernel": dense_name, "points": points, **crossing(points)}


def crossing(points):
    """{"density": d or None, "wins": ...}: where the sparse/dense time ratio
    crosses 1.  The sparse time grows about in proportion to the density and
    the dense time does not depend on it, so log(ratio) is close to a line in
    log(density): the crossing is that of a robust (Theil-Sen) line through
    the points, which one noisy timing cannot move far; with two points, or
    when the line does not rise, the first crossing between neighbours
    (interpolated in log density and log ratio).  None when one side wins at
    every measured density (``wins`` says which)."""
    ratio = [(p["density"], p["sparse_seconds"] / p["dense_seconds"]) for p in points]
    if ratio and all(r < 1.0 for _, r in ratio):
        return {"density": None, "wins": "sparse"}
    if ratio and all(r >= 1.0 for _, r in ratio):
        return {"density": None, "wins": "dense"}
    if len(ratio) >= 3:
        from scipy.stats import theilslopes
        ld = np.log([d for d, _ in ratio])
        lr = np.log([r for _, r in ratio])
        slope, intercept, _, _ = theilslopes(lr, ld)
        if slope > 0:
            d = math.exp(-intercept / slope)
            if ratio[0][0] <= d <= ratio[-1][0]:
                return {"density": d, "wins": None}
    for (d0, r0), (d1, r1) in zip(ratio, ratio[1:]):
        if r0 < 1.0 <= r1:
            w = math.log(r0) / (math.log(r0) - math.log(r1))
            return {"density": math.exp(math.log(d0) + w * (math.log(d1) - math.log(d0))),
                    "wins": None}
    return {"density": None, "wins": "mixed"}
