"""``analyze``: why is SpMV slow on this matrix, here, and what would fix it?

features (one pass) + micro-profile (a few timed runs) + machine profile
-> bottleneck scores -> the recommended kernel and its expected speedup.
"""
from dataclasses import asdict, dataclass

from .bottleneck import holding, scores_from_features, scores_from_profile
from .features import structural_features
from .validate import as_canonical_csr, check_threads


@dataclass
class Analysis:
    """Result of :func:`analyze`.

    features: dict of named numbers (see ``spmvtune.features.FORMULAS``);
    scores: {"MB", "ML", "IMB", "CMP"} in [0, 1]; bottlenecks: the classes that
    hold, strongest first; evidence: sentences with the numbers behind them;
    profile: the micro-profile as a dict (None with ``profile=False``);
    recommended: kernel name; recommended_threads; expected_speedup over
    csr_balanced (a roofline/profile estimate, not a measurement);
    roofline_gflops: min(arithmetic intensity x bandwidth, in-cache rate);
    cost: seconds and baseline-product equivalents of the feature pass and profile;
    crossover: the sparse/dense crossover at ``n_vectors`` right-hand sides
    (:func:`spmvtune.crossover.predicted_crossover`: the density above which
    dense BLAS wins for this shape, and which side wins at this matrix's
    density), with the cost model's best pair at k (``best_kernel``,
    ``best_threads``) and, when asked, the ``measured`` crossover
    (:func:`spmvtune.crossover.measure_crossover`).
    """
    shape: tuple
    nnz: int
    threads: int
    features: dict
    scores: dict
    bottlenecks: tuple
    evidence: list
    profile: dict | None
    recommended: str
    recommended_threads: int
    expected_speedup: float
    roofline_gflops: float
    cost: dict
    crossover: dict | None = None

    def to_dict(self):
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["bottlenecks"] = list(self.bottlenecks)
        return d


def analyze(A, *, threads=None, profile=True, machine=None, n_vectors=1,
            measure_crossover=False):
    """Inspect ``A`` (any scipy.sparse) and return an :class:`Analysis`.

    n_vectors: right-hand sides per product the crossover and the best pair
    are for (k).  measure_crossover: also time pruned layers of A's shape at a
    ladder of densities (seconds to minutes)."""
    from .machine import machine_profile
    threads = check_threads(threads)
    machine = machine or machine_profile()
    csr = as_canonical_csr(A)
    f = structural_features(csr, caches=machine.caches, threads=threads)
    bw = machine.bandwidth(threads)
    bytes_moved = f["working_set_bytes"]
    t_est = machine.product_seconds(csr.nnz, *csr.shape, threads)
    prof = None
    if profile and csr.nnz:
        from .profile import micro_profile
        prof = micro_profile(csr, threads=threads, machine=machine)
        scores = scores_from_profile(prof.to_dict(), f)
        t_base = prof.t_base
    else:
        scores = scores_from_features(f, threads)
        t_base = t_est
    evidence = _evidence(f, prof, machine, threads)
    kernel, speedup = recommend(csr, f, scores, prof, machine, threads)
    ai = 2.0 * f["nnz"] / bytes_moved if bytes_moved else 0.0
    roof = min(ai * bw, machine.incache_rate(threads))
    cost = {"features_seconds": f["seconds"], "features_spmvs": f["seconds"] / t_base,
            "profile_seconds": prof.cost_seconds if prof else 0.0,
            "profile_spmvs": prof.cost_spmvs if prof else 0.0}
    rec_threads = best_threads(kernel, f, machine, threads)
    cross = vectors_report(csr, f, n_vectors, threads, machine, measure_crossover)
    return Analysis(csr.shape, csr.nnz, threads, f, scores, holding(scores), evidence,
                    prof.to_dict() if prof else None, kernel, rec_threads, speedup, roof, cost,
                    cross)


def vectors_report(csr, f, k, threads, machine, measure=False):
    """The crossover dict of :class:`Analysis` (see there)."""
    from .costmodel import current_cost_model
    from .crossover import measure_crossover, predicted_crossover
    from .features import vector_features
    from .pool import kernel_specs
    from .select import thread_candidates
    g = dict(f)
    if k > 1:
        g.update(vector_features(csr))
    model = current_cost_model()
    out = predicted_crossover(g, k, threads, machine, model)
    ranked = model.rank(g, machine, [s for s in kernel_specs() if s.serves(k)],
                        thread_candidates(threads), threads, k)
    if ranked:
        out["best_seconds"], out["best_kernel"], out["best_threads"] = ranked[0]
    if measure:
        m, n = csr.shape
        out["measured"] = measure_crossover(m, n, k, threads)
    return out


def best_threads(kernel, f, machine, threads):
    """The thread count (1..threads) at which the cost model predicts ``kernel`` runs fastest."""
    from .costmodel import current_cost_model
    from .pool import get_kernel
    from .select import thread_candidates
    spec = get_kernel(kernel)
    model = current_cost_model()
    counts = sorted({spec.threads_for(t) for t in thread_candidates(threads)})
    return min(counts, key=lambda t: model.predict(spec, f, t, machine, threads))


def structural_bottlenecks(A, threads=None):
    """The classes the structure alone suggests (one feature pass, no timing):
    for reports when the selection did not analyse ``A``."""
    return list(analyze(A, threads=threads, profile=False).bottlenecks)


def _evidence(f, prof, machine, threads):
    l3 = machine.caches["L3"] / 2**20
    out = [f"working set {f['working_set_bytes'] / 2**20:.1f} MiB = {f['ws_over_l3']:.2f} x the "
           f"{l3:.0f} MiB L3; x alone {f['x_over_l3']:.2f} x L3",
           f"rows: mean {f['row_mean']:.1f} nonzeros, cv {f['row_cv']:.2f}, longest row holds "
           f"{100 * f['max_row_share']:.1f}% of the nonzeros",
           f"estimated new x cache lines per nonzero {f['x_lines_per_nnz']:.2f} "
           f"(0.125 = perfectly regular, 1 = every access a new line)"]
    if prof:
        out += [f"achieved {prof.achieved_gbs:.1f} GB/s of {prof.bandwidth_gbs:.1f} GB/s measured "
                f"bandwidth ({100 * prof.bandwidth_share:.0f}%)",
                f"with x read in order the product takes {prof.t_regular * 1e3:.2f} ms instead of "
                f"{prof.t_base * 1e3:.2f} ms: {100 * prof.latency_share:.0f}% of the time is "
                f"latency of scattered x",
                f"slowest thread {prof.imbalance:.2f} x the mean ({threads} threads)",
                f"{prof.achieved_gflops:.2f} GFLOP/s vs {prof.incache_gflops:.2f} GFLOP/s in-cache "
                f"CSR rate ({100 * prof.incache_share:.0f}%)"]
    return out


#: The formats the MB remedy chooses among (by the bytes their specs estimate).
MB_FORMATS = ("csr_balanced", "csr_delta", "bcsr", "csr_vi", "bcsr_vi", "csr_sym", "csr_delta_vi")


def _mb_choice(csr, f):
    """(kernel, bytes) of the usable format with the fewest estimated bytes
    (``KernelSpec.storage``)."""
    from .pool import get_kernel
    options = [(name, get_kernel(name).storage(f)) for name in MB_FORMATS
               if get_kernel(name).refusal(f) is None]
    return min(options, key=lambda kv: kv[1])


#: Calibration on the project machine (benchmarks/analysis_classes.py): making
#: x regular sped the product up by R = t_base / t_regular, software prefetch
#: and column blocking recover about R ** 0.3 of it.
LATENCY_RECOVERY = 0.3
#: Compressed formats turn instruction-bound at about 1.5x the in-cache CSR rate.
COMPRESSED_COMPUTE_FACTOR = 1.5
#: Column blocking pays when each row still has this many nonzeros per block.
COLBLOCK_MIN_PER_BLOCK = 4.0


def _latency_kernel(f):
    """csr_colblock_prefetch when x outgrows the L3 share and rows are long
    enough to amortize a pass per column block, else csr_prefetch."""
    from .pool.colblock import DEFAULT_BLOCK_BYTES
    blocks = max(1.0, f.get("value_bytes", 8.0) * f["cols"] / DEFAULT_BLOCK_BYTES)
    if f["x_over_l3"] > 0.25 and f["row_mean"] / blocks >= COLBLOCK_MIN_PER_BLOCK:
        return "csr_colblock_prefetch"
    return "csr_prefetch"


def recommend(csr, f, scores, prof, machine, threads):
    """(kernel, expected speedup over csr_balanced) from the strongest class.

    IMB: split long rows, expected = measured imbalance (max / mean thread).
    ML: prefetch or column blocking, expected = (t_base / t_regular) ** 0.3.
    MB: the format with the fewest bytes, expected = byte ratio, capped where
        the compressed kernel becomes instruction-bound.
    CMP: bcsr if blocks cut the instructions, else csr_unroll4 for long rows;
        very short rows have no remedy in the pool (expected 1.0).
    """
    holds = holding(scores)
    if not holds or f["nnz"] == 0:
        return "csr_balanced", 1.0
    top = holds[0]
    if top == "IMB":
        kernel = "csr_split_prefetch" if "ML" in holds else "csr_split"
        return kernel, max(prof.imbalance if prof else 1.0 + 0.5 * scores["IMB"], 1.0)
    if top == "ML":
        gain = (prof.t_base / prof.t_regular) ** LATENCY_RECOVERY if prof else 1.0 + 0.3 * scores["ML"]
        return _latency_kernel(f), max(gain, 1.0)
    kernel, nbytes = _mb_choice(csr, f)
    vb = f.get("value_bytes", 8.0)
    xy = vb * (f["rows"] + f["cols"])
    byte_gain = ((4 + vb) * f["nnz"] + 4 * f["rows"] + xy) / (nbytes + xy)
    if top == "MB":
        cap = (COMPRESSED_COMPUTE_FACTOR / prof.incache_share) if prof else byte_gain
        return kernel, max(min(byte_gain, cap), 1.0)
    if kernel.startswith("bcsr"):                 # CMP: blocks save instructions too
        return kernel, max(min(byte_gain, COMPRESSED_COMPUTE_FACTOR), 1.0)
    if f["row_mean"] >= 8:
        return "csr_unroll4", 1.1
    return "csr_balanced", 1.0
