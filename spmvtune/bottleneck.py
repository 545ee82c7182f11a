"""Bottleneck classes from evidence: pure functions, testable with injected numbers.

Classes (Elafrou, Goumas & Koziris): **MB** memory bandwidth, **ML** memory
latency, **IMB** thread imbalance, **CMP** computation.  Each gets a score in
[0, 1]; a class *holds* when its score is at least ``HOLDS`` (several may).
Scores ramp linearly between two thresholds, calibrated on the project machine
(2-core Zen 4) with the generated families of ``benchmarks/analysis_classes.py``:

=====  =====================================  ==========  ==========
class  evidence                               score 0 at  score 1 at
=====  =====================================  ==========  ==========
MB     bandwidth_share (achieved / measured)  0.55        0.85
ML     latency_share (1 - t_regular/t_base)   0.15        0.45
IMB    imbalance (slowest / mean thread)      1.15        1.6
CMP    1 - max(MB, ML, IMB) scores, when the  (in cache   only)
       working set fits the L3
=====  =====================================  ==========  ==========

MB also needs the working set to leave the L3 (``ws_over_l3 > 1``): in cache,
"bandwidth" is not the memory's. Out of cache the structure cross-checks the
timing: a working set well past the L3 (``ws_over_l3`` 1 -> 3) read with
regular x (the ``x_lines_per_nnz`` gate below, inverted) is bandwidth-bound by
construction, so there (unless imbalance or latency explains the time) a share
of 0.30 -> 0.45 already confirms MB (a busy neighbour or a shared memory bus
once measured a 27-point stencil at 45-63% of the bandwidth and nothing was
flagged). ML also needs the structure to agree: its score is multiplied by a
ramp of ``x_lines_per_nnz`` from 0.10 to 0.25 (new x cache lines per nonzero;
0.125 is a perfectly regular sweep), so timing noise cannot call a stencil
latency-bound. IMB is likewise scaled by a ramp of nnz from 5,000 to 20,000:
below, per-thread timings measure the launch skew. Without a profile,
:func:`scores_from_features` gives weaker, structure-only guesses.
"""
import numpy as np

HOLDS = 0.5
THRESHOLDS = {
    "MB": ("bandwidth_share", 0.55, 0.85),
    "ML": ("latency_share", 0.15, 0.45),
    "IMB": ("imbalance", 1.15, 1.6),
}


def ramp(value, lo, hi):
    """0 at or below lo, 1 at or above hi, linear between."""
    return float(np.clip((value - lo) / (hi - lo), 0.0, 1.0))


#: Structural gate of ML (x_lines_per_nnz): below -> 0, above -> 1.
SCATTER_GATE = (0.10, 0.25)
#: Where the structure says MB, the bandwidth share that confirms it: 0 -> 1.
MB_CONFIRM = (0.30, 0.45)
#: IMB needs products big enough for thread timings to mean something (nnz).
IMB_MIN_NNZ = (5_000, 20_000)


def scores_from_profile(evidence, features):
    """evidence: dict with bandwidth_share, latency_share, imbalance (see
    :class:`spmvtune.profile.Profile`); features: dict with ws_over_l3 and
    x_lines_per_nnz.  Returns {"MB", "ML", "IMB", "CMP"} scores."""
    ws_over_l3 = features["ws_over_l3"]
    s = {cls: ramp(evidence[key], lo, hi) for cls, (key, lo, hi) in THRESHOLDS.items()}
    scattered = ramp(features["x_lines_per_nnz"], *SCATTER_GATE)
    s["ML"] *= scattered
    # a tiny product's per-thread timings measure the thread launch, not the work
    s["IMB"] *= ramp(features.get("nnz", IMB_MIN_NNZ[1]), *IMB_MIN_NNZ)
    # unless the time is explained otherwise (one slow thread, scattered x)
    structural_mb = ramp(ws_over_l3, 1.0, 3.0) * (1.0 - scattered) * (1.0 - max(s["IMB"], s["ML"]))
    s["MB"] = max(s["MB"], structural_mb * ramp(evidence["bandwidth_share"], *MB_CONFIRM))
    if ws_over_l3 <= 1.0:
        s["MB"] = 0.0
    s["CMP"] = (1.0 - max(s.values())) if ws_over_l3 <= 1.0 else 0.0
    return s


def scores_from_features(f, threads):
    """Structure-only guesses (no timing): {"MB", "ML", "IMB", "CMP"} scores.

    - ML: scattered x beyond the caches: estimated new x lines per nonzero
      (``x_lines_per_nnz``, 0.1 -> 0.5) times whether x outgrows the L2 share.
    - MB: out-of-cache working set (``ws_over_l3`` 1 -> 3) with regular x.
    - IMB: one row holds a large share of the work (``max_row_share`` relative
      to 1/threads: 0.3 -> 0.8) or very uneven rows (``row_cv`` 2 -> 6).
    - CMP: in cache with short rows (``row_mean`` 8 -> 2).
    """
    if f.get("nnz", 1) == 0:
        return {"MB": 0.0, "ML": 0.0, "IMB": 0.0, "CMP": 0.0}
    out_of_l2 = min(1.0, f["x_over_l3"] * 4)          # x beyond ~L3/4 ≈ the L2s
    ml = ramp(f["x_lines_per_nnz"], 0.1, 0.5) * out_of_l2
    mb = ramp(f["ws_over_l3"], 1.0, 3.0) * (1.0 - ml)
    imb = max(ramp(f["max_row_share"] * threads, 0.3, 0.8), ramp(f["row_cv"], 2.0, 6.0))
    cmp_ = ramp(-f["row_mean"], -8.0, -2.0) if f["ws_over_l3"] <= 1.0 else 0.0
    return {"MB": mb, "ML": ml, "IMB": imb if threads > 1 else 0.0, "CMP": cmp_}


#: Tie-break between equal scores: imbalance multiplies every other cost, and
#: latency hides bandwidth, so fix them first.
PRIORITY = ("IMB", "ML", "MB", "CMP")


def holding(scores):
    """The classes that hold, strongest first (ties in ``PRIORITY`` order)."""
    order = sorted(scores, key=lambda c: (-scores[c], PRIORITY.index(c)))
    return tuple(c for c in order if scores[c] >= HOLDS)
