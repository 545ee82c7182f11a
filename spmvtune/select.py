"""``select_kernel``: choose a kernel of the pool for a matrix and prepare it.

Modes (how the choice is made):

- ``"profile"``: the bottleneck rule of :mod:`spmvtune.analysis` on the
  micro-profiler's measurements (~25 baseline products), untimed.
- ``"auto"`` (default): ``"profile"``, then the recommendation, its cheap
  sibling (``CHECK_WITH``) and ``csr_unroll4`` are timed against the baseline
  (a few products) and the fastest kept: the lowest regret of every selector
  tried in cross-validation grouped by matrix family (4.3% against 14% for
  the untimed rule and 13% for the forest; benchmarks/selection_eval.py).
  Below ``PROFILE_MIN_CALLS`` expected calls the profile cannot pay for itself
  and the baseline is used.
- ``"features"``: the trained model (:mod:`spmvtune.model`: the user's from
  ``spmvtune train``, else the one shipped) on structural features only (one
  pass, about 1-4 products).  Best on matrices like those it was trained on
  (train it on your own collection).  Without a model: the bottleneck rule on
  features.
- ``"exhaustive"``: prepare and time every usable kernel; pick the fastest.

``expected_calls`` bounds what selection may spend: below ``MIN_CALLS`` nothing
is analysed, and a kernel whose estimated setup the calls cannot repay is
replaced by the baseline.  Decisions are kept in the tuning cache
(:mod:`spmvtune.tuning_cache`) unless ``cache=False``.
"""
import time

import numpy as np

from .operator import SpMVOperator
from .pool import KernelUnusable, get_kernel, kernel_names
from .validate import as_canonical_csr, check_threads

MODES = ("auto", "features", "profile", "exhaustive")
#: Part of the tuning-cache key: raise it whenever the selection logic changes,
#: so that decisions cached by the old logic are made again.
SELECTOR_REVISION = 2
BASELINE = "csr_balanced"
#: Below this many nonzeros one thread wins: the thread launch (~3 us) costs
#: more than the second thread saves (on the held-out real matrices of
#: benchmarks/selection_eval.py one thread was fastest up to ~95,000).
SMALL_NNZ = 100_000
#: With fewer expected calls than this, selection is skipped.
MIN_CALLS = 10
#: Conversion cost of each kernel in baseline products, from the setup times of
#: benchmarks/pool_vs_peers.py on the project machine (conservative round-up).
SETUP_PRODUCTS = {"bcsr": 300, "bcsr_vi": 300, "csr_delta": 80, "csr_delta_vi": 80,
                  "csr_vi": 30, "csr_vi_prefetch": 30, "csr_colblock": 50,
                  "csr_colblock_prefetch": 50, "csr_sym": 50, "dense_gemv": 50}
#: In "auto", a strongest class score below this is checked by timing; in
#: "features", so is a model prediction below this probability.
CONFIDENT = 0.6
#: "auto" profiles only when at least this many calls are expected.
PROFILE_MIN_CALLS = 100
#: Candidates timed when unsure: the model's top ones plus the baseline.
TOP_CANDIDATES = 2
#: In "auto", timed beside the rule's pick (cheap to prepare).  On the 760
#: training matrices (benchmarks/selection_eval.py, stored timings) the pick
#: alone against the baseline left 9.2% mean regret, with these siblings and
#: csr_unroll4 4.3%.
CHECK_WITH = {"csr_split": ("csr_split_prefetch",), "csr_split_prefetch": ("csr_split",),
              "csr_prefetch": ("csr_colblock_prefetch",),
              "csr_colblock_prefetch": ("csr_prefetch",)}


def select_kernel(A, *, expected_calls=None, mode="auto", threads=None, kernel=None,
                  options=None, cache=True, wide_indices=False):
    """Prepare ``A`` for repeated ``y = A @ x`` and return an :class:`SpMVOperator`.

    A: any scipy.sparse matrix or array (converted once to canonical float64 CSR).
    expected_calls: how many products the caller will run (None: many).
    mode: "auto", "features", "profile" or "exhaustive" (module docstring).
    threads: threads per call (default: all of Numba's threads; small matrices
        get one thread from the selection).
    kernel: a name from :func:`spmvtune.kernel_names` to force a choice.
    options: tuning parameters of a forced kernel (e.g. ``{"distance": 32}``).
    cache: use the tuning cache for the decision.
    wide_indices: force 64-bit index arrays (testing the large-matrix path).
    Raises ValueError for bad arguments and :class:`~spmvtune.pool.KernelUnusable`
    when a forced kernel cannot represent A.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if expected_calls is not None and (isinstance(expected_calls, bool)
                                       or not isinstance(expected_calls, (int, np.integer))
                                       or expected_calls < 1):
        raise ValueError(f"expected_calls must be a positive int or None, got {expected_calls!r}")
    csr = as_canonical_csr(A)
    threads = check_threads(threads)
    t0 = time.perf_counter()
    if kernel is not None:
        get_kernel(kernel)                           # unknown names fail here
        decision = {"kernel": kernel, "threads": 1 if kernel == "csr_serial" else threads,
                    "options": dict(options or {}), "bottlenecks": [],
                    "predicted_speedup": None, "source": "forced"}
    else:
        if options:
            raise ValueError("options apply to a forced kernel; pass kernel= too")
        decision = _decide(csr, threads, mode, expected_calls, cache)
    selection = time.perf_counter() - t0
    try:
        # an operator prepared while timing candidates is kept, not rebuilt
        op = decision.get("op") if not wide_indices else None
        op = op or build(csr, decision, wide_indices)
    except KernelUnusable:
        if decision["source"] == "forced":
            raise
        decision = dict(_baseline(csr, threads, f"{decision['kernel']} unusable here"),
                        bottlenecks=decision["bottlenecks"])
        op = build(csr, decision, wide_indices)
    op.selection_seconds = selection
    op.bottlenecks = tuple(decision["bottlenecks"])
    op.predicted_speedup = decision["predicted_speedup"]
    op.selection_source = decision["source"]
    op.break_even_calls = _break_even(op, decision, csr, threads)
    return op


def build(csr, decision, wide_indices=False):
    """Prepare the decided kernel; returns the operator (no selection metadata)."""
    spec = get_kernel(decision["kernel"])
    options = decision.get("options") or {}
    unknown = set(options) - set(spec.options)
    if unknown:
        raise ValueError(f"kernel {spec.name!r} takes options {sorted(spec.options) or 'none'}, "
                         f"got {sorted(unknown)}")
    t0 = time.perf_counter()
    try:
        prepared = spec.prepare(csr, decision["threads"], wide=wide_indices, **options)
    except KernelUnusable as exc:
        raise KernelUnusable(f"kernel {spec.name!r} cannot run this matrix: {exc}") from None
    return SpMVOperator(spec.name, csr.shape, prepared, decision["threads"],
                        time.perf_counter() - t0, csr.nnz)


def _baseline(csr, threads, source):
    return {"kernel": BASELINE, "threads": 1 if csr.nnz < SMALL_NNZ else threads,
            "options": {}, "bottlenecks": [], "predicted_speedup": 1.0, "source": source}


def _decide(csr, threads, mode, expected_calls, cache):
    if expected_calls is not None and expected_calls < MIN_CALLS:
        return _baseline(csr, threads, f"expected_calls < {MIN_CALLS}: no selection")
    store = key = None
    if cache:
        from .tuning_cache import TuningCache, decision_key
        store, key = TuningCache(), decision_key(csr, threads, mode)
        hit = store.get(key)
        if hit is not None:
            hit["source"] = "cache"
            return _afford(hit, csr, threads, expected_calls)
    from .model import current_model
    model = current_model() if mode == "features" else None
    if mode == "exhaustive":
        decision = _exhaustive(csr, threads)
    elif model is not None:
        decision = _by_model(csr, threads, mode, model)
    elif mode == "auto" and expected_calls is not None and expected_calls < PROFILE_MIN_CALLS:
        return _baseline(csr, threads, f"auto: {expected_calls} calls cannot repay a profile")
    else:
        from .analysis import analyze
        res = analyze(csr, threads=threads, profile=(mode != "features"))
        decision = {"kernel": res.recommended, "threads": res.recommended_threads,
                    "options": {}, "bottlenecks": list(res.bottlenecks),
                    "predicted_speedup": res.expected_speedup, "source": f"{mode} (rule)"}
        if mode == "auto":
            # a few products against the profile's ~25: the rule's pick, its
            # cheap sibling and the unrolled loop must beat the baseline here
            picks = [decision["kernel"], *CHECK_WITH.get(decision["kernel"], ()), "csr_unroll4"]
            decision = _check_by_timing(csr, picks, decision, threads)
    if store is not None:
        store.put(key, {k: v for k, v in decision.items() if k not in ("source", "op")})
    return _afford(decision, csr, threads, expected_calls)


def _afford(decision, csr, threads, expected_calls):
    """The baseline instead, when ``expected_calls`` cannot repay the setup."""
    if expected_calls is None or decision["kernel"] == BASELINE:
        return decision
    gain = decision.get("predicted_speedup") or 1.0
    setup = SETUP_PRODUCTS.get(decision["kernel"], 2)
    if gain <= 1.0 or expected_calls * (1.0 - 1.0 / gain) < setup:
        base = _baseline(csr, threads, f"{expected_calls} calls cannot repay the setup of "
                                       f"{decision['kernel']}")
        base["bottlenecks"] = decision["bottlenecks"]
        return base
    return decision


def _candidates_timed(csr, names, threads):
    """{name: (median seconds, threads, operator)} for the usable kernels among
    ``names``, timed side by side (interleaved batches, see :mod:`spmvtune.timing`)."""
    from .timing import interleaved_medians
    x = np.ones(csr.shape[1])
    y = np.empty(csr.shape[0])
    ops = {}
    for name in names:
        try:
            ops[name] = build(csr, {"kernel": name, "threads": 1 if name == "csr_serial" else threads})
        except KernelUnusable:
            continue
    med = interleaved_medians({k: (lambda op=op: op.matvec(x, out=y)) for k, op in ops.items()},
                              repeats=5)
    return {k: (med[k], ops[k].threads, ops[k]) for k in ops}


def _exhaustive(csr, threads):
    names = [n for n in kernel_names() if n != "dense_gemv" or csr.shape[0] * csr.shape[1] <= 1 << 22]
    timed = _candidates_timed(csr, names, threads)
    best = min(timed, key=lambda k: timed[k][0])
    base = timed[BASELINE][0]
    return {"kernel": best, "threads": timed[best][1], "options": {}, "bottlenecks": [],
            "predicted_speedup": base / timed[best][0], "source": "exhaustive"}


def _by_model(csr, threads, mode, model):
    """The model's choice; its top candidates timed when it is unsure."""
    from .bottleneck import holding, scores_from_features
    from .features import structural_features
    from .machine import machine_profile
    from .model import feature_vector
    t = 1 if csr.nnz < SMALL_NNZ else threads
    f = structural_features(csr, caches=machine_profile().caches, threads=t)
    ranked = model.ranked(feature_vector(f, t, names=model.features))
    kernel, prob = ranked[0]
    decision = {"kernel": kernel, "threads": 1 if kernel == "csr_serial" else t, "options": {},
                "bottlenecks": list(holding(scores_from_features(f, t))),
                "predicted_speedup": model.class_speedup.get(kernel, 1.0),
                "source": f"{mode} (model, p={prob:.2f})"}
    if prob < CONFIDENT:
        decision = _check_by_timing(csr, [k for k, _ in ranked[:TOP_CANDIDATES]], decision, t)
    return decision


def _check_by_timing(csr, candidates, decision, threads):
    """Time the candidates and the baseline side by side, keep the fastest."""
    t = decision["threads"]
    timed = _candidates_timed(csr, list(dict.fromkeys([*candidates, BASELINE])), t)
    base = timed[BASELINE][0]
    best = min(timed, key=lambda k: timed[k][0])
    if best == BASELINE:
        out = _baseline(csr, threads, f"{decision['source']}; timed: baseline fastest")
        out["threads"] = t
        out["bottlenecks"] = decision["bottlenecks"]
        return out
    return dict(decision, kernel=best, threads=timed[best][1], op=timed[best][2],
                predicted_speedup=base / timed[best][0], source=f"{decision['source']}; timed")


def _break_even(op, decision, csr, threads):
    """Calls after which selection + setup are repaid (inf if no gain predicted)."""
    gain = decision.get("predicted_speedup")
    if not gain or gain <= 1.0:
        return float("inf") if decision["kernel"] != BASELINE else 0.0
    from .machine import machine_profile
    t_base = machine_profile().product_seconds(csr.nnz, *csr.shape, op.threads)
    saving = t_base * (1.0 - 1.0 / gain)
    return (op.selection_seconds + op.setup_seconds) / saving
