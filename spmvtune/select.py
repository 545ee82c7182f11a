"""``select_kernel``: choose a (kernel, threads) pair of the pool for a matrix and prepare it.

Modes (how the choice is made):

- ``"auto"`` (default): the structural features (one pass) and the trained
  cost model (:mod:`spmvtune.costmodel`) predict the time of every usable
  (kernel, threads) pair; the few pairs within the model's error of the best
  are then timed side by side with the baseline (a few products) and the
  fastest is kept.  How much is spent is budgeted against what the product
  costs and how often it will run: below ``MIN_CALLS`` nothing is analysed;
  when the features cannot repay themselves the pair comes from the size of
  the matrix alone; when timing cannot, the prediction is trusted.
- ``"predicted"``: the cost model's best pair, untimed.
- ``"profile"``: the bottleneck rule of :mod:`spmvtune.analysis` on the
  micro-profiler's measurements (~25 baseline products), untimed.
- ``"features"``: the random forest of :mod:`spmvtune.model` on the features.
- ``"exhaustive"``: prepare and time every usable pair; pick the fastest.

``threads`` is the most threads a product may use; the thread count is part
of the decision (a pair is a kernel and a thread count).  ``max_extra_bytes``
leaves out kernels whose storage beyond the caller's matrix would exceed it.
Decisions are kept in the tuning cache (:mod:`spmvtune.tuning_cache`) unless
``cache=False``; the key includes the value type and whether the selection is
for a transpose.

``transpose=True`` selects for ``y = A^T x`` (:mod:`spmvtune.transpose`): on
a CSR copy of A^T when the memory budget allows, else by scattering from A.
``cache=False``.

Many right-hand sides (``n_vectors=k`` > 1, ``Y = A X``): the candidates are
the kernels that serve k vectors (``KernelSpec.serves``: the many-vector
kernels and the dense fallback ``dense_mm``), ranked by the cost model at k
and timed with an (n_cols, k) ``X``; speedups count against ``spmm_csr``.
With k = 1 the single-vector pool is chosen from, as before.
"""
import time

import numpy as np

from .decision import BASELINE, Decision
from .operator import SpMVOperator, build_operator
from .pool import KernelUnusable, get_kernel, kernel_specs
from .validate import as_canonical_csr, check_threads

MODES = ("auto", "predicted", "features", "profile", "exhaustive")
#: With fewer expected calls than this, selection is skipped.
MIN_CALLS = 10
#: Products the selection plans to be repaid within when ``expected_calls`` is
#: None ("many"): a choice whose selection and setup the gain does not repay
#: within these calls is not made.
HORIZON = 1000
#: At most this many pairs are timed beside the baseline.
MAX_TIMED = 3
#: Pairs predicted within this factor of the best (widened by the model's
#: error) are timed.
MARGIN = 0.10
#: The features pass runs when it costs less than this share of the time
#: HORIZON (or expected_calls) products take.
FEATURE_SHARE = 0.3
#: Timing rounds of the check (after one warm-up call each).
CHECK_ROUNDS = 4
#: Products at least this long (seconds) are timed one per sample, without an
#: untimed call before each, for CHECK_ROUNDS_LONG rounds after one warm-up
#: call: 1 + CHECK_ROUNDS_LONG products per pair (a large matrix streams from
#: memory whatever ran before it).
LONG_PRODUCT_SECONDS = 1e-3
CHECK_ROUNDS_LONG = 3
#: The whole check (setups and timing) costs at most this many products of
#: the baseline: the candidates are taken in ranked order while they fit.
#: Millisecond products (timed one per sample: ~4 products a pair) get the
#: smaller budget; shorter ones are timed in batches with an untimed call
#: before each (~10 products a pair), so the same three or four candidates
#: need the larger one (cross-validation: 24 left the forest's pick untimed
#: on mid-size matrices, 12.5% mean regret on unseen families against 4.2%).
CHECK_BUDGET_PRODUCTS = 24
CHECK_BUDGET_SHORT_PRODUCTS = 48
#: A sample of the check is a batch of products lasting at least this long
#: (shorter batches of microsecond products measure the timer and the call).
CHECK_BATCH_SECONDS = 5e-5
#: Python work per timed pair beyond its products (building the operator,
#: calibrating its batch): what timing costs even when products are free.
CHECK_PAIR_SECONDS = 1e-4
#: The random forest's most probable usable classes timed in the check.
FOREST_CANDIDATES = 2
#: A sparse pair must beat the timed dense fallback by this share to be
#: taken over it (:func:`steady_pick`).
DENSE_MARGIN = 0.10
#: The reference of speedups for k > 1 right-hand sides.
BASELINE_MANY = "spmm_csr"


def baseline_for(n_vectors):
    """The kernel speedups and fallbacks count against for ``n_vectors`` vectors."""
    return BASELINE if n_vectors == 1 else BASELINE_MANY


def select_kernel(A, *, expected_calls=None, mode="auto", threads=None, kernel=None,
                  options=None, cache=True, wide_indices=False, max_extra_bytes=None,
                  transpose=False, n_vectors=1):
    """Prepare ``A`` for repeated ``y = A @ x`` and return an :class:`SpMVOperator`.

    A: any scipy.sparse matrix or array (converted once to canonical CSR;
        float32, float64, complex64 and complex128 values keep their type,
        integers become float64).
    expected_calls: how many products the caller will run (None: many; the
        selection is then planned to be repaid within ``HORIZON`` products).
    mode: "auto", "predicted", "features", "profile" or "exhaustive" (module docstring).
    threads: the most threads per product (default: all of Numba's threads);
        the selection picks the count, a forced kernel runs with exactly this.
    kernel: a name from :func:`spmvtune.kernel_names` to force a choice.
    options: tuning parameters of a forced kernel (e.g. ``{"distance": 32}``).
    cache: use the tuning cache for the decision.
    wide_indices: force 64-bit index arrays (testing the large-matrix path).
    max_extra_bytes: leave out kernels whose storage beyond the caller's
        matrix exceeds this many bytes (None: no limit; 0: only kernels that
        run on the caller's arrays).  With ``transpose``, the copy of A^T
        counts too.
    transpose: prepare for ``y = A^T x`` instead (e.g. PageRank): the
        selection runs on a CSR copy of A^T (its own decision, cached apart),
        or, when that copy would exceed ``max_extra_bytes``, the operator
        scatters from A's CSR (kernel ``csr_scatter_t``, no copy).  The
        operator's shape is then (n_cols, n_rows).
    n_vectors: right-hand sides per product the selection is for (k): with
        k > 1 the operator's ``op(X)`` / ``op.matmat(X)`` takes a C-contiguous
        ``X`` of shape (n_cols, k) and reads the matrix once for all k
        columns (``op(x)`` with a 1-D ``x`` still works).
    Raises ValueError for bad arguments and :class:`~spmvtune.pool.KernelUnusable`
    when a forced kernel cannot represent A (or does not run its value type).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if expected_calls is not None and (isinstance(expected_calls, bool)
                                       or not isinstance(expected_calls, (int, np.integer))
                                       or expected_calls < 1):
        raise ValueError(f"expected_calls must be a positive int or None, got {expected_calls!r}")
    if max_extra_bytes is not None and (isinstance(max_extra_bytes, bool)
                                        or not isinstance(max_extra_bytes, (int, np.integer))
                                        or max_extra_bytes < 0):
        raise ValueError(f"max_extra_bytes must be a non-negative int or None, "
                         f"got {max_extra_bytes!r}")
    if (isinstance(n_vectors, bool) or not isinstance(n_vectors, (int, np.integer))
            or n_vectors < 1):
        raise ValueError(f"n_vectors must be a positive int, got {n_vectors!r}")
    n_vectors = int(n_vectors)
    csr = as_canonical_csr(A)
    if n_vectors > 1 and not any(s.serves(n_vectors) and s.dtype_refusal(csr.data.dtype) is None
                                 for s in kernel_specs()):
        n_vectors = 1       # no many-vector kernel runs this value type: op.matmat goes by column
    threads = check_threads(threads)
    if kernel is not None:
        get_kernel(kernel)                           # unknown names fail here
    elif options:
        raise ValueError("options apply to a forced kernel; pass kernel= too")
    kwargs = dict(expected_calls=expected_calls, mode=mode, threads=threads, kernel=kernel,
                  options=options, cache=cache, wide_indices=wide_indices, n_vectors=n_vectors)
    if transpose:
        op = _select_transposed(csr, max_extra_bytes, **kwargs)
    else:
        op = _select(csr, max_extra_bytes=max_extra_bytes, **kwargs)
    op._select_kwargs = dict(kwargs, max_extra_bytes=max_extra_bytes)
    return op


def _select_transposed(csr, max_extra_bytes, **kw):
    """The operator of A^T (see ``select_kernel``'s ``transpose``); its own
    transpose (``op.T``) is then selected on ``csr`` without a copy."""
    from .transpose import SCATTER, prepare_scatter, scatter_threads, transpose_bytes, transpose_csr
    copy = transpose_bytes(csr)
    if max_extra_bytes is None or copy <= max_extra_bytes:
        t0 = time.perf_counter()
        csr_t = transpose_csr(csr)
        t_copy = time.perf_counter() - t0
        op = _select(csr_t, max_extra_bytes=None if max_extra_bytes is None
                     else max_extra_bytes - copy, transpose=True, **kw)
        op.setup_seconds += t_copy
        op.extra_bytes += copy
        op.info = dict(op.info, transpose_copy_bytes=copy)
    else:
        threads = scatter_threads(csr, kw["threads"], max_extra_bytes)
        t0 = time.perf_counter()
        prepared = prepare_scatter(csr, threads, kw["wide_indices"] or _wide_to_fit(csr, 0))
        setup = time.perf_counter() - t0
        op = SpMVOperator(SCATTER, (csr.shape[1], csr.shape[0]), prepared, threads, setup,
                          csr.nnz, csr.data.dtype, prepared.info["buffer_bytes"])
        decision = Decision(SCATTER, threads, source=(
            f"transpose: A^T's CSR copy ({copy} bytes) exceeds max_extra_bytes="
            f"{max_extra_bytes}; scattered from A's CSR on {threads} thread(s)"))
        op.decision = decision
        op.selection_source = decision.source
        op.break_even_calls = 0.0
    op._transpose_source = (csr, "forward")
    return op


def _select(csr, *, expected_calls, mode, threads, kernel, options, cache, wide_indices,
            max_extra_bytes, transpose=False, n_vectors=1):
    t0 = time.perf_counter()
    baseline = baseline_for(n_vectors)
    wide_indices = wide_indices or _wide_to_fit(csr, max_extra_bytes)
    if kernel is not None:
        spec = get_kernel(kernel)
        decision = Decision.make(kernel, spec.threads_for(threads), options, source="forced")
        ops = {}
    else:
        sel = _Selection(csr, threads, expected_calls, max_extra_bytes, wide_indices, transpose,
                         n_vectors)
        decision = sel.decide(mode, cache)
        ops = sel.ops
    selection = time.perf_counter() - t0
    op = ops.get((decision.kernel, decision.threads)) if not decision.options else None
    if op is not None:
        selection -= op.setup_seconds      # prepared while timing: counted as setup
    try:
        op = op or build_operator(csr, decision.kernel, decision.threads, decision.options_dict,
                                  wide_indices)
    except (KernelUnusable, ValueError) as exc:
        if decision.source == "forced":
            raise
        if decision.source == "cache":
            # a stored decision this matrix cannot run (options out of range, ...):
            # forget it and decide again
            import warnings
            warnings.warn(f"dropping a cached decision that cannot be prepared ({exc}); "
                          "selecting again")
            sel.forget_cached(mode)
            return _select(csr, expected_calls=expected_calls, mode=mode, threads=threads,
                           kernel=None, options=None, cache=cache, wide_indices=wide_indices,
                           max_extra_bytes=max_extra_bytes, transpose=transpose,
                           n_vectors=n_vectors)
        decision = Decision(baseline, decision.threads, (), decision.bottlenecks, 1.0, None,
                            f"{decision.kernel} unusable here; baseline")
        op = build_operator(csr, baseline, decision.threads, None, wide_indices)
    op.decision = decision
    op.n_vectors = n_vectors
    op.selection_seconds = selection
    op.bottlenecks = tuple(decision.bottlenecks)
    op.predicted_speedup = decision.predicted_speedup
    op.selection_source = decision.source
    op.break_even_calls = _break_even(op, decision, csr, n_vectors)
    return op


def _wide_to_fit(csr, max_extra_bytes):
    """Whether int64 index arrays must be run as 64-bit views: converting them
    to 32 bits is a copy the memory budget does not allow."""
    from .pool.indices import shares_input
    if max_extra_bytes is None or shares_input(csr) or not shares_input(csr, wide=True):
        return False
    return 4 * (csr.shape[0] + 1 + csr.nnz) > max_extra_bytes


def thread_candidates(max_threads):
    """Thread counts a decision chooses among: 1, half and all of ``max_threads``."""
    return sorted({1, max(max_threads // 2, 1), max_threads})


class _Selection:
    """One selection: the matrix, the budget, and what was prepared on the way
    (``ops``: {(kernel, threads): operator}, reused when chosen)."""

    def __init__(self, csr, max_threads, expected_calls, max_extra_bytes, wide, transpose=False,
                 n_vectors=1):
        from .costmodel import current_cost_model
        from .machine import machine_profile
        self.csr = csr
        self.max_threads = max_threads
        self.expected_calls = expected_calls
        self.horizon = expected_calls if expected_calls is not None else HORIZON
        self.max_extra_bytes = max_extra_bytes
        self.wide = wide
        self.transpose = transpose
        self.machine = machine_profile()
        self.model = current_cost_model()
        self.ops = {}
        self.k = n_vectors
        self.baseline = baseline_for(n_vectors)

    # -- the features ladder ---------------------------------------------------------

    def cheap_features(self):
        """Features from the shape and the row pointer only (O(m), microseconds):
        the x terms assume a regular sweep."""
        from .features import cheap_features
        return cheap_features(self.csr, self.machine.caches, self.max_threads)

    def features(self):
        from .features import structural_features, vector_features
        f = structural_features(self.csr, caches=self.machine.caches, threads=self.max_threads)
        if self.k > 1:
            f.update(vector_features(self.csr))
        return f

    def specs(self, f):
        """Kernel specs that serve k vectors, allowed by the memory budget."""
        from .pool.indices import shares_input
        out = []
        for spec in kernel_specs():
            if not spec.serves(self.k):
                continue
            if self.max_extra_bytes is not None:
                extra = 0 if spec.shares_input and shares_input(self.csr, self.wide) else spec.storage(f)
                if extra > self.max_extra_bytes:
                    continue
            out.append(spec)
        return out

    def ranked(self, f, kernels=None):
        specs = [s for s in self.specs(f) if kernels is None or s.name in kernels]
        return self.model.rank(f, self.machine, specs, thread_candidates(self.max_threads),
                               self.max_threads, self.k)

    def base_time(self, f, ranked):
        """Predicted seconds of the baseline at its best thread count."""
        times = [t for t, k, _ in ranked if k == self.baseline]
        return min(times) if times else self.model.predict(get_kernel(self.baseline), f, 1,
                                                            self.machine, self.max_threads, self.k)

    # -- decisions --------------------------------------------------------------------

    def forget_cached(self, mode):
        from .tuning_cache import TuningCache, decision_key
        TuningCache().delete(decision_key(self.csr, self.max_threads, mode, self.max_extra_bytes,
                                          self.transpose, self.k))

    def decide(self, mode, cache):
        if self.expected_calls is not None and self.expected_calls < MIN_CALLS:
            f = self.cheap_features()
            best = self.ranked(f, {self.baseline})[0]
            return Decision(self.baseline, best[2],
                            source=f"expected_calls < {MIN_CALLS}: no selection",
                            predicted_speedup=1.0, predicted_seconds=best[0])
        store = key = None
        if cache:
            from .tuning_cache import TuningCache, decision_key
            store = TuningCache()
            key = decision_key(self.csr, self.max_threads, mode, self.max_extra_bytes,
                               self.transpose, self.k)
            hit = store.get_decision(key, self.max_threads)
            if hit is not None:
                return self.afford(hit.but(source="cache"))
        decision = getattr(self, f"_{mode}")()
        if store is not None:
            store.put(key, decision.to_json())
        return self.afford(decision)

    def _auto(self):
        f0 = self.cheap_features()
        t_base = self.base_time(f0, self.ranked(f0, {self.baseline}))
        from .features import feature_seconds
        if feature_seconds(self.csr) > FEATURE_SHARE * self.horizon * t_base:
            # the features cannot repay themselves: decide from the size alone
            ranked0 = self.ranked(f0)
            t, kernel, threads = next(r for r in ranked0 if get_kernel(r[1]).shares_input
                                      or r[1] == self.baseline)
            return self._predicted_decision(t, kernel, threads, t_base, (),
                                            "auto (size only: product too cheap to analyse)")
        f = self.features()
        ranked = self.ranked(f)
        t_base = self.base_time(f, ranked)
        bottlenecks = _bottlenecks(f, self.max_threads)
        from .costmodel import pair_key
        predicted = {(k, t): p for p, k, t in ranked}
        forest = self.forest_pairs(f, predicted)
        second = forest[0] if forest else None
        also = check_extras(forest, f, ranked, self.machine.caches)

        def setup(kernel):
            return self.model.predict_setup(get_kernel(kernel), f, t_base)
        timed = plan_check(ranked, t_base, self.horizon, setup,
                           lambda k, t: self.model.error.get(pair_key(k, t, self.k), 0.0),
                           baseline=self.baseline, also=also, agreed=agreed_pair(forest, ranked))
        if not timed:
            if second is not None:
                kernel, threads = second
                return self._predicted_decision(predicted[second], kernel, threads, t_base,
                                                bottlenecks, "auto (forest; a check would not be repaid)")
            t, kernel, threads = ranked[0]
            return self._predicted_decision(t, kernel, threads, t_base, bottlenecks,
                                            "auto (predicted)")
        measured = self.time_pairs(timed, predicted)
        if not measured:
            t, kernel, threads = ranked[0]
            return self._predicted_decision(t, kernel, threads, t_base, bottlenecks,
                                            "auto (predicted)")
        (kernel, threads), t = steady_pick(measured)
        base = min(((p, v) for p, v in measured.items() if p[0] == self.baseline),
                   key=lambda kv: kv[1], default=None)
        if base is None:
            return Decision(kernel, threads, (), bottlenecks, 1.0, t,
                            f"auto (predicted; {len(measured)} pairs timed)")
        (base_kernel, base_threads), base_t = base
        spent = spent_seconds(f["seconds"], measured, setup, long_products(predicted, measured))
        if kernel != self.baseline and not repaid(spent, base_t, t, self.horizon):
            return Decision(base_kernel, base_threads, (), bottlenecks, 1.0, base_t,
                            f"auto (baseline: {kernel} measured {base_t / t:.2f}x, which would "
                            f"not repay the selection within {self.horizon} calls)")
        return Decision(kernel, threads, (), bottlenecks, base_t / t, t,
                        f"auto (predicted; {len(measured)} pairs timed)")

    def forest_ranked(self, f):
        """(model, [(label, probability)] most probable first) of the random
        forest (:mod:`spmvtune.model`) on the features ``f``, or None without one."""
        from .model import current_model, feature_vector
        model = current_model()
        if model is None:
            return None
        return model, model.ranked(feature_vector(f, self.max_threads, names=model.features))

    def forest_pairs(self, f, predicted, n=FOREST_CANDIDATES):
        """The random forest's ``n`` most probable classes that are usable
        ranked pairs, most probable first ([] for k > 1, without a model, or
        when the budget or the type leaves none in).

        A second opinion beside the cost model: the per-kernel linear terms
        cannot tell where a format's structure pays (blocks, symmetry) as well
        as trees on the features can, and the two err on different matrices
        (cross-validation in benchmarks/selection_eval.py).  The runner-up is
        timed too: the most probable class may not fit the check's budget
        (``bcsr_vi``'s setup on a 7-point stencil of 7M nonzeros) or may be a
        near-tie (cross-validation: unseen families 85.6% within 5% with one,
        86.3% with two)."""
        forest = self.forest_ranked(f) if self.k == 1 else None
        if forest is None:
            return []
        return usable_pairs([c for c, p in forest[1] if p > 0], self.max_threads, predicted, n)

    def _predicted_decision(self, t, kernel, threads, t_base, bottlenecks, source):
        return Decision(kernel, threads, (), tuple(bottlenecks), max(t_base / t, 1e-6) if t else 1.0,
                        t, source)

    def _predicted(self):
        f = self.features()
        ranked = self.ranked(f)
        t, kernel, threads = ranked[0]
        return self._predicted_decision(t, kernel, threads, self.base_time(f, ranked),
                                        _bottlenecks(f, self.max_threads), "predicted")

    def _profile(self):
        if self.k > 1:
            return self._predicted().but(source="profile (k > 1: predicted)")
        from .analysis import analyze
        res = analyze(self.csr, threads=self.max_threads, profile=True, machine=self.machine)
        return Decision(res.recommended, get_kernel(res.recommended).threads_for(
            res.recommended_threads), (), tuple(res.bottlenecks), res.expected_speedup, None,
            "profile (rule)")

    def _features(self):
        if self.k > 1:
            return self._predicted().but(source="features (k > 1: predicted)")
        from .model import current_model
        if current_model() is None:
            return self._predicted().but(source="features (no forest model: predicted)")
        f = self.features()
        model, ranked = self.forest_ranked(f)
        label, prob = ranked[0]
        kernel, threads = _parse_label(label, self.max_threads)
        return Decision(kernel, threads, (), _bottlenecks(f, self.max_threads),
                        model.class_speedup.get(label, 1.0), None,
                        f"features (model, p={prob:.2f})")

    def _exhaustive(self):
        f = self.features()
        pairs = [(s.name, t) for s in self.specs(f) if s.refusal(f) is None
                 for t in sorted({s.threads_for(t) for t in thread_candidates(self.max_threads)})]
        measured = self.time_pairs(pairs)
        (kernel, threads), t = min(measured.items(), key=lambda kv: kv[1])
        base_t = min((v for (k, _), v in measured.items() if k == self.baseline), default=t)
        return Decision(kernel, threads, (), _bottlenecks(f, self.max_threads), base_t / t, t,
                        "exhaustive")

    # -- timing ----------------------------------------------------------------------

    def time_pairs(self, pairs, predicted=None):
        """{(kernel, threads): median seconds} of the usable pairs, timed side by
        side (interleaved rounds); the operators are kept in ``self.ops``.
        predicted: {pair: predicted seconds}, which decides how they are timed.

        BLAS products (the dense fallback) are timed after the others, one
        after another: their threads spin after a call on the cores the next
        contestant needs, and the pause that would let them stop
        (``BLAS_SPIN_SECONDS`` a round) costs more than the check and slows the
        next product too (a vCPU woken from idle runs the first few
        milliseconds up to 2x slower)."""
        from .timing import interleaved_medians
        dtype = self.csr.data.dtype
        if self.k > 1:
            x = np.ones((self.csr.shape[1], self.k), dtype)
            y = np.empty((self.csr.shape[0], self.k), dtype)
        else:
            x = np.ones(self.csr.shape[1], dtype)
            y = np.empty(self.csr.shape[0], dtype)
        for kernel, threads in pairs:
            if (kernel, threads) in self.ops:
                continue
            try:
                self.ops[(kernel, threads)] = build_operator(self.csr, kernel, threads, None,
                                                             self.wide)
            except KernelUnusable:
                continue
        ops = {p: self.ops[p] for p in pairs if p in self.ops}
        run = "matmat" if self.k > 1 else "matvec"
        contestants = {p: (lambda f=getattr(op, run): f(x, out=y)) for p, op in ops.items()}
        long = long_products(predicted or {}, ops)
        blas = [p for p in ops if runs_blas(p)]
        out = {}
        for group in ([p for p in ops if p not in blas], *([p] for p in blas)):
            if not group:
                continue
            timed = {p: contestants[p] for p in group}
            if long:
                out.update(interleaved_medians(timed, repeats=CHECK_ROUNDS_LONG, warmup=0,
                                               batch_seconds=CHECK_BATCH_SECONDS, prime=False))
            else:
                out.update(interleaved_medians(timed, repeats=CHECK_ROUNDS, warmup=1,
                                               batch_seconds=CHECK_BATCH_SECONDS))
        return out

    # -- budget ----------------------------------------------------------------------

    def afford(self, decision):
        """The baseline instead, when ``expected_calls`` cannot repay the setup."""
        if self.expected_calls is None or decision.kernel == self.baseline:
            return decision
        if (decision.kernel, decision.threads) in self.ops:
            return decision                            # already prepared: nothing more to pay
        gain = decision.predicted_speedup or 1.0
        t_sel = decision.predicted_seconds
        f = self.cheap_features()
        if t_sel is None:
            t_sel = self.model.predict(get_kernel(self.baseline), f, decision.threads, self.machine,
                                       self.max_threads, self.k) / max(gain, 1e-6)
        setup = self.model.predict_setup(get_kernel(decision.kernel), f, t_sel * gain)
        if gain <= 1.0 or self.expected_calls * t_sel * (gain - 1.0) < setup:
            return Decision(self.baseline, decision.threads, (), decision.bottlenecks, 1.0, None,
                            f"{self.expected_calls} calls cannot repay the setup of "
                            f"{decision.kernel}")
        return decision


def fewest_bytes_pair(f, ranked, caches):
    """On a matrix whose CSR outgrows the L3, the ranked pair (at the most
    threads ranked) whose kernel stores the fewest bytes, or None.

    Out of cache the product streams the matrix, so the smallest format is the
    bandwidth-bound remedy (a compressed or symmetric one); the fitted cost
    model, trained mostly on matrices in cache, underrates that (the 27-point
    stencil of 26M nonzeros: ``bcsr_vi`` 1.54x faster than its pick)."""
    if not ranked or f.get("csr_bytes", 0.0) <= caches["L3"]:
        return None
    top = max(t for _, _, t in ranked)
    best, best_bytes = None, f["csr_bytes"]
    for _, kernel, threads in ranked:
        if threads != top:
            continue
        size = get_kernel(kernel).storage(f)      # ranking evaluated it already: it holds
        if size < best_bytes:
            best, best_bytes = (kernel, threads), size
    return best


def check_extras(forest, f, ranked, caches):
    """The pairs the check takes before the cost model's near ones: the
    forest's ``forest`` pairs (most probable first), then the fewest bytes out
    of cache (:func:`fewest_bytes_pair`)."""
    fewest = fewest_bytes_pair(f, ranked, caches)
    return list(forest) + ([fewest] if fewest is not None and fewest not in forest else [])


def agreed_pair(forest, ranked):
    """The cost model's best pair when the forest names it too, else None."""
    best = (ranked[0][1], ranked[0][2]) if ranked else None
    return best if best in forest else None


def runs_blas(pair):
    """Whether the (kernel, threads) pair is a dense BLAS product (threads that spin)."""
    return get_kernel(pair[0]).balance == "blas"


def steady_pick(measured):
    """((kernel, threads), seconds) the check picks from ``measured``
    ({(kernel, threads): seconds}): the fastest, but the dense fallback when it
    was timed within DENSE_MARGIN of a faster sparse pair.

    Dense BLAS runs at the same speed whatever the sparsity pattern; the check's
    short samples of a sparse product beside it were measured 0.7-1.35x their
    ratio in the steady state (2:4 and 50%-pruned layers, 2 threads), so a sparse
    pick there needs a clear win."""
    best = min(measured.items(), key=lambda kv: kv[1])
    dense = [kv for kv in measured.items() if runs_blas(kv[0])]
    if dense:
        fallback = min(dense, key=lambda kv: kv[1])
        if fallback[1] <= best[1] * (1.0 + DENSE_MARGIN):
            return fallback
    return best


def repaid(spent, base_seconds, seconds, horizon):
    """Whether a kernel measured at ``seconds`` per product against the
    baseline's ``base_seconds`` repays the selection within ``horizon`` calls
    (``spent``: seconds of features, preparing and timing the candidates).

    A candidate must beat the baseline by that much to be taken: gains of a few
    percent are also what the short check cannot tell from noise
    (cross-validation on the stored timings: selections not repaid within 1,000
    calls on unseen real matrices 16 -> 4, within 5% of the fastest 79.8% ->
    79.4%)."""
    return (base_seconds - seconds) * horizon >= spent


def spent_seconds(feature_seconds, measured, setup_seconds, long):
    """Seconds a selection cost as a warm process pays it: the features, then
    each timed pair's setup (``setup_seconds(kernel)``) and its check at the
    measured seconds per product (``measured``: {(kernel, threads): seconds}).
    Not the wall clock, which counts loading the kernels' compiled code."""
    return feature_seconds + sum(setup_seconds(k) + check_cost(v, long)
                                 for (k, _), v in measured.items())


def long_products(predicted, pairs):
    """Whether the check times ``pairs`` one product per sample (all predicted
    at least LONG_PRODUCT_SECONDS)."""
    return bool(pairs) and all(predicted.get(p, 0.0) >= LONG_PRODUCT_SECONDS for p in pairs)


def check_cost(pair_seconds, long):
    """Seconds of timing one pair whose product takes ``pair_seconds``:
    warm-up (and calibration) and the rounds, as :meth:`_Selection.time_pairs` runs them."""
    if long:
        return (1 + CHECK_ROUNDS_LONG) * pair_seconds
    return (CHECK_PAIR_SECONDS + 2 * pair_seconds
            + CHECK_ROUNDS * (max(pair_seconds, CHECK_BATCH_SECONDS) + pair_seconds))


def plan_check(ranked, t_base, horizon, setup_seconds, rel_error, baseline=BASELINE, also=None,
               agreed=None):
    """The (kernel, threads) pairs ``auto`` times, or [] to trust the prediction.

    ranked: [(predicted seconds, kernel, threads)] fastest first; t_base: the
    baseline's predicted seconds; horizon: products the selection must be
    repaid within; setup_seconds(kernel) and rel_error(kernel, threads): the
    cost model's setup estimate and median relative error; baseline: the
    kernel always timed beside the candidates (``spmm_csr`` for k > 1);
    also: (kernel, threads) pairs of ``ranked`` other selectors prefer (the
    forest's pick, the fewest bytes out of cache), taken first, before the cost
    model's near pairs (cross-validation: 4.6% mean regret on unseen real
    matrices against 5.0% when they follow the model's best); agreed: a
    pair both the cost model and the forest prefer, timed when only its setup
    keeps it out of the budget, provided its predicted gain repays that setup
    and its check within ``horizon`` calls (the budget bounds timing likely
    wasted; the chosen kernel's setup is paid anyway).  A 2:4-pruned 2048 x
    2048 layer: the model ranks ``dense_gemv`` first, the forest second, and
    its densifying did not fit beside the forest's pick, so the 15% faster
    dense product was never timed.

    Timed: the pairs predicted within MARGIN (plus the best pair's model
    error) of the best, at most MAX_TIMED, and the baseline at its best thread
    count, as many as fit CHECK_BUDGET_PRODUCTS (CHECK_BUDGET_SHORT_PRODUCTS
    below LONG_PRODUCT_SECONDS) baseline products of setup and timing
    (:func:`check_cost`), the baseline first.  Nothing is timed when
    only one pair is left, or when preparing and timing them would cost more
    than the predicted gain (at least 5% of a baseline product) over
    ``horizon`` calls."""
    if not ranked:
        return []
    best_t, best_k, best_threads = ranked[0]
    margin = MARGIN + rel_error(best_k, best_threads)
    near = [(k, t) for p, k, t in ranked if p <= best_t * (1.0 + margin)][:MAX_TIMED]
    if also:
        near = list(dict.fromkeys(list(also) + near))
    base = next(((k, t) for _, k, t in ranked if k == baseline), None)
    timed = list(dict.fromkeys(near + ([base] if base else [])))
    if len(timed) < 2:
        return []
    predicted = {(k, t): p for p, k, t in ranked}
    long = long_products(predicted, timed)
    # the baseline first (the reference of every speedup), then the candidates
    # in the order above while the check stays within its budget
    order = ([base] if base else []) + [p for p in timed if p != base]
    budget = (CHECK_BUDGET_PRODUCTS if long else CHECK_BUDGET_SHORT_PRODUCTS) * t_base
    kept, cost = [], 0.0
    for pair in order:
        timing = check_cost(predicted[pair], long)
        c = setup_seconds(pair[0]) + timing
        if kept and cost + c > budget and not (
                pair == agreed and cost + timing <= budget
                and c <= (t_base - predicted[pair]) * horizon):
            continue
        kept.append(pair)
        cost += c
    if len(kept) < 2 or cost > max(t_base - best_t, 0.05 * t_base) * horizon:
        return []
    return [p for p in timed if p in kept]


def forest_label_pair(label, max_threads, usable):
    """The canonical (kernel, threads) pair a forest class label ("kernel@T")
    names, when it is in ``usable`` (a container of pairs); else None (also
    for a label a model of another version may hold)."""
    from .pool import canonical_pair
    try:
        pair = canonical_pair(*_parse_label(label, max_threads))
    except ValueError:
        return None
    return pair if pair in usable else None


def usable_pairs(labels, max_threads, usable, n):
    """The pairs of the first ``n`` labels (in ``labels``' order) that are in ``usable``."""
    out = []
    for label in labels:
        pair = forest_label_pair(label, max_threads, usable)
        if pair is not None and pair not in out:
            out.append(pair)
            if len(out) == n:
                break
    return out


def _parse_label(label, max_threads):
    kernel, _, t = label.partition("@")
    threads = min(int(t), max_threads) if t.isdigit() else max_threads
    return kernel, get_kernel(kernel).threads_for(max(threads, 1))


def _bottlenecks(f, threads):
    from .bottleneck import holding, scores_from_features
    return tuple(holding(scores_from_features(f, threads)))


def _break_even(op, decision, csr, n_vectors=1):
    """Calls after which selection + setup are repaid (0 for the baseline,
    inf when no gain is predicted)."""
    gain = decision.predicted_speedup
    if decision.kernel == baseline_for(n_vectors) and decision.source != "forced":
        return 0.0
    if not gain or gain <= 1.0:
        return float("inf")
    t_sel = decision.predicted_seconds
    if t_sel is None:
        from .machine import machine_profile
        t_sel = (machine_profile().product_seconds(csr.nnz * n_vectors, *csr.shape, op.threads)
                 / gain)
    saving = t_sel * (gain - 1.0)
    return (op.selection_seconds + op.setup_seconds) / saving
