"""A cost model per kernel: the time of one product of each usable (kernel,
threads) pair, predicted from the structural features and the machine profile.

For kernel k at T threads the model is a non-negative combination of terms
that each carry a physical unit of time (seconds)::

    t(k, T) = θ0 · call(T)                      per-call overhead (+ thread launch)
            + θ1 · I · B_k / BW(T)              streaming the kernel's bytes from memory
            + θ2 · I · 2 W_k / R(T)             multiply-adds at the in-cache CSR rate
            + θ3 · I · 2 m / R(T)               per-row work (y writes, loop set-up)
            + θ4 · (I / T) · L · P2 · lat(L3)   x lines missing the L2 (hit in the L3)
            + θ5 · (I / T) · L · P3 · lat(mem)  x lines missing the L3

where B_k is the kernel's storage plus x and y (``KernelSpec.storage``; only
the share beyond the L3 counts; both follow the value type through
``value_bytes``), W_k its multiply-adds (``KernelSpec.work``; a complex one
counts as 4 real ones),
m the rows, L the x cache lines a product touches (``x_lines_per_nnz`` x nnz),
P2/P3 the chance that x (of ``KernelSpec.x_span`` columns) outgrows the L2 /
L3, I >= 1 the imbalance of the kernel's partition at T threads
(``KernelSpec.balance``: ``imbalance_rows``, ``imbalance_nnz``, 1 for split),
and BW(T), R(T), call(T), lat come from the machine profile.

Many right-hand sides (``Y = A X``, k > 1, row-major X): the matrix is
streamed once for all k vectors while x and y grow to k (n_cols + n_rows)
numbers; W_k is multiplied by k and computed at the machine's measured rate
for the kernel's kind: BLAS's ``dense_rate`` for the dense fallback (at every
k), the vector kernels' ``spmm_rate`` with X in the L2 for the others.  For
those the last two terms then carry the cost of X outgrowing the caches
instead of latencies (a nonzero loads k contiguous numbers of X, which the
hardware prefetches; what limits is the cache's bandwidth)::

    θ4 · I · P2 · 2 k W_k (1 / R_L3 - 1 / R_L2)   X served by the L3, not the L2
    θ5 · I · P3 · k W_k · b / BW(T)               X slices from memory

with R_L2, R_L3 the measured rates of ``spmm_csr`` with X in the L2 / in the
L3 (``MachineProfile.spmm_rate``), P2 = ramp(X bytes / L2, 0.5, 2) (every
thread reads all of X) and P3 as above; the per-row term counts one pass per
8 columns of Y.  Coefficients are fitted per (kernel, threads, k bucket):
keys "kernel@T" for one vector, "kernel@T@k8" for k rounded to a power of two
(2..256).

With the prior coefficients (θ = 1 on every physical term, less on latency
because a core overlaps several misses) this is an analytic model that ranks
kernels on any machine.  ``spmvtune train`` fits θ per (kernel, threads) to
this machine's measured times by non-negative least squares on relative
error, and fits each kernel's setup time (a + b nnz + c m seconds) the same
way.  Models are JSON (coefficients only): loading one runs no code.
"""
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np

FORMAT = "spmvtune-cost-model"
TERMS = ("call", "stream", "compute", "rows", "x_l3", "x_mem")
#: Prior θ per term: physical units, except latency overlap (memory-level parallelism).
PRIOR = np.array([1.0, 1.0, 1.0, 0.5, 0.25, 0.25])
#: Prefetching kernels hide most of the latency of x.
PRIOR_PREFETCH = np.array([1.0, 1.0, 1.2, 0.5, 0.05, 0.05])
#: k > 1: the last two terms are bandwidth terms (X from the L3, from memory).
PRIOR_MANY = np.array([1.0, 1.0, 1.0, 0.5, 1.0, 0.5])
SETUP_TERMS = ("fixed", "per_nnz", "per_row")
#: Seconds per call of a serial kernel (Python dispatch and the Numba entry).
CALL_SECONDS = 1.5e-6
#: Fewer training samples than this for a pair: keep the prior, scaled.
MIN_SAMPLES = 8
#: Weight of the pull toward the (scaled) prior when fitting.
RIDGE = 0.01
#: Largest model file accepted (bytes): a model is a few hundred numbers.
MAX_MODEL_BYTES = 4 << 20


def ramp(value, lo, hi):
    return float(min(max((value - lo) / (hi - lo), 0.0), 1.0))


#: k buckets of the fitted coefficients: powers of two.
MAX_K_BUCKET = 256


def k_bucket(k):
    """The power of two (2..MAX_K_BUCKET) whose coefficients serve k > 1 vectors; 1 for k = 1."""
    k = int(k)
    if k <= 1:
        return 1
    return int(min(max(2 ** round(math.log2(k)), 2), MAX_K_BUCKET))


def pair_key(kernel, threads, k=1):
    """"kernel@T" (one vector) or "kernel@T@k8" (k > 1, bucketed)."""
    b = k_bucket(k)
    return f"{kernel}@{int(threads)}" + (f"@k{b}" if b > 1 else "")


def parse_key(key):
    """(kernel, threads, k) of a :func:`pair_key`; ValueError when malformed."""
    parts = key.split("@")
    if len(parts) not in (2, 3) or not parts[0]:
        raise ValueError(f"not a kernel@threads[@kN] key: {key!r}")
    k = 1
    if len(parts) == 3:
        if not parts[2].startswith("k") or not parts[2][1:].isdigit():
            raise ValueError(f"not a kernel@threads@kN key: {key!r}")
        k = int(parts[2][1:])
    return parts[0], int(parts[1]), k


def split_key(key):
    """(kernel, threads) of a :func:`pair_key`."""
    kernel, threads, _ = parse_key(key)
    return kernel, threads


def imbalance(spec, f, threads, max_threads):
    """I >= 1 of the kernel's partition at ``threads`` (features hold it at
    ``max_threads``; other counts are interpolated)."""
    if threads <= 1 or spec.balance in ("split", "serial", "blas"):
        return 1.0
    key = "imbalance_rows" if spec.balance == "rows" else "imbalance_nnz"
    full = max(float(f.get(key, 1.0)), 1.0)
    if max_threads <= 1:
        return 1.0
    return 1.0 + (full - 1.0) * (threads - 1) / (max_threads - 1)


def compute_rate(spec, machine, threads, k=1):
    """flop/s of the kernel's multiply-adds: BLAS's dense rate for the dense
    kernels, the vector kernels' rate (X in the L2) for k > 1, else the
    in-cache CSR rate."""
    if spec.balance == "blas" and hasattr(machine, "dense_rate"):
        return machine.dense_rate(threads, k) * 1e9
    if many_vector_terms(spec, machine, k):
        return machine.spmm_rate(threads, k) * 1e9
    return machine.incache_rate(threads) * 1e9


def many_vector_terms(spec, machine, k):
    """Whether the last two terms are the many-vector kernels' X-traffic terms."""
    return k > 1 and spec.max_vectors > 1 and spec.balance != "blas" and hasattr(machine,
                                                                                   "spmm_rate")


def terms(spec, f, threads, machine, max_threads=None, k=1):
    """The six terms (seconds) of one (kernel, threads) pair; see the module docstring.
    k: right-hand sides per call (x and y are (n, k); the matrix is streamed once)."""
    max_threads = max_threads or machine.threads
    T = max(int(threads), 1)
    k = max(int(k), 1)
    I = imbalance(spec, f, T, max_threads)
    caches = machine.caches
    rows, nnz = f["rows"], f["nnz"]
    vb = float(f.get("value_bytes", 8.0))
    real_per_madd = 4.0 if f.get("complex_values", 0.0) else 1.0
    xy_bytes = vb * k * (rows + f["cols"])
    ws = spec.storage(f) + xy_bytes
    beyond_l3 = ramp(ws / caches["L3"], 0.5, 1.5)
    rate = compute_rate(spec, machine, T, k)
    x_bytes = vb * k * spec.x_span(f)
    p3 = ramp(x_bytes / caches["L3"], 0.25, 1.0)
    call = CALL_SECONDS + (machine.launch_overhead_us * 1e-6 if T > 1 else 0.0)
    work = 2.0 * k * real_per_madd * spec.work(f)   # a complex multiply-add is 4 real ones
    passes = 1.0 if k == 1 else math.ceil(k / 8.0)           # per-row work per 8 columns of Y
    head = [call,
            I * ws * beyond_l3 / (machine.bandwidth(T) * 1e9),
            I * work / rate,
            I * 2.0 * rows * passes / rate]
    if many_vector_terms(spec, machine, k):
        p2 = ramp(x_bytes / caches["L2"], 0.5, 2.0)
        slower = max(1.0 / (machine.spmm_rate(T, k, "L3") * 1e9) - 1.0 / rate, 0.0)
        return np.array(head + [I * p2 * work * slower,
                                I * p3 * 0.5 * work * vb / (machine.bandwidth(T) * 1e9)])
    if spec.balance == "blas" and k > 1:
        return np.array(head + [0.0, 0.0])                  # gemm streams X in blocks
    p2 = ramp(x_bytes / (caches["L2"] * T), 0.5, 2.0)
    lines = f.get("x_lines_per_nnz", 0.125) * nnz
    lat = machine.latency_ns if getattr(machine, "latency_ns", None) else {"L3": 12.0,
                                                                            "memory": 90.0}
    return np.array(head + [I / T * lines * p2 * lat["L3"] * 1e-9,
                            I / T * lines * p3 * lat["memory"] * 1e-9])


def prior_coefficients(spec, k=1):
    if k > 1 and spec.max_vectors > 1 and spec.balance != "blas":
        return PRIOR_MANY.copy()
    return PRIOR_PREFETCH.copy() if "prefetch" in spec.name else PRIOR.copy()


def setup_terms(f):
    return np.array([1e-4, f["nnz"] * 1e-8, f["rows"] * 1e-8])


class CostModel:
    """Coefficients per (kernel, threads[, k bucket]) and per-kernel setup models.

    ``coef``: {"kernel@T" or "kernel@T@kB": array of len(TERMS)} (:func:`pair_key`);
    missing pairs use the prior.
    ``setup``: {kernel: array of len(SETUP_TERMS)}; missing kernels use the
    spec's ``setup_products`` prior.  ``error``: {"kernel@T": median relative
    error of the fit} (what the selector may trust).
    """

    def __init__(self, coef=None, setup=None, error=None, meta=None):
        self.coef = {k: np.asarray(v, dtype=float) for k, v in (coef or {}).items()}
        self.setup = {k: np.asarray(v, dtype=float) for k, v in (setup or {}).items()}
        self.error = dict(error or {})
        self.meta = dict(meta or {})

    @property
    def trained(self):
        return bool(self.coef)

    def coefficients(self, spec, threads, k=1):
        c = self.coef.get(pair_key(spec.name, threads, k))
        return prior_coefficients(spec, k) if c is None else c

    def predict(self, spec, f, threads, machine, max_threads=None, k=1):
        """Seconds of one product of ``spec`` at ``threads`` with ``k`` right-hand sides."""
        return float(self.coefficients(spec, threads, k) @ terms(spec, f, threads, machine,
                                                                  max_threads, k))

    def predict_setup(self, spec, f, t_base):
        """Seconds ``prepare`` is expected to take (t_base: one baseline product)."""
        c = self.setup.get(spec.name)
        if c is None:
            return spec.setup_products * t_base
        return float(c @ setup_terms(f))

    def rank(self, f, machine, specs, thread_counts, max_threads=None, k=1):
        """[(seconds, kernel, threads)] of every usable pair, fastest first.
        specs: kernel specs to consider (their ``applies`` is checked here);
        k: right-hand sides per product."""
        from .pool import canonical_pair
        out = []
        for spec in specs:
            if spec.refusal(f) is not None:
                continue
            for T in sorted({spec.threads_for(t) for t in thread_counts}):
                if canonical_pair(spec.name, T) != (spec.name, T):
                    continue                  # the same loop as another pair: ranked once
                out.append((self.predict(spec, f, T, machine, max_threads, k), spec.name, T))
        out.sort()
        return out

    # ---- persistence ---------------------------------------------------------------

    def to_doc(self):
        return {"format": FORMAT, "version": 1, "terms": list(TERMS),
                "setup_terms": list(SETUP_TERMS),
                "coef": {k: [float(v) for v in c] for k, c in self.coef.items()},
                "setup": {k: [float(v) for v in c] for k, c in self.setup.items()},
                "error": {k: float(v) for k, v in self.error.items()}, **self.meta}

    def save(self, path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_doc(), indent=1))
        tmp.replace(path)

    @classmethod
    def from_doc(cls, doc):
        """Validate a model document; ValueError says what is wrong."""
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not an spmvtune cost model")
        if doc.get("terms") != list(TERMS) or doc.get("setup_terms") != list(SETUP_TERMS):
            raise ValueError("cost model terms differ from this version's "
                             f"({', '.join(TERMS)}); retrain with `spmvtune train`")
        from .pool import kernel_names
        known = set(kernel_names())

        def table(name, width, keyed_by_pair):
            raw = doc.get(name, {})
            if not isinstance(raw, dict):
                raise ValueError(f"{name} must be an object")
            out = {}
            for key, vals in raw.items():
                kernel, threads, k = parse_key(key) if keyed_by_pair else (key, 1, 1)
                if kernel not in known:
                    continue                    # a kernel of another version: ignored
                if keyed_by_pair and threads < 1:
                    raise ValueError(f"{name}[{key!r}]: threads must be at least 1")
                if keyed_by_pair and k != k_bucket(k):
                    raise ValueError(f"{name}[{key!r}]: k must be a power of two in "
                                     f"2..{MAX_K_BUCKET}")
                if (not isinstance(vals, list) or len(vals) != width
                        or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                   and math.isfinite(v) and v >= 0 for v in vals)):
                    raise ValueError(f"{name}[{key!r}] must be {width} non-negative numbers")
                out[key] = vals
            return out
        try:
            coef = table("coef", len(TERMS), True)
            setup = table("setup", len(SETUP_TERMS), False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed cost model: {exc}") from None
        error = {k: float(v) for k, v in doc.get("error", {}).items()
                 if isinstance(v, (int, float)) and math.isfinite(v)}
        meta = {k: v for k, v in doc.items()
                if k in ("machine", "trained_on", "trained_at", "versions", "samples")}
        return cls(coef, setup, error, meta)


def load_cost_model(path):
    """Read a cost model file (bounded size, validated); warns when it was
    trained on another machine."""
    from .machine import machine_fingerprint
    path = Path(path)
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise ValueError(f"{path}: {path.stat().st_size} bytes is too large for a cost model")
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    model = CostModel.from_doc(doc)
    if doc.get("machine") != machine_fingerprint():
        warnings.warn(f"cost model {path} was trained on another machine; run `spmvtune train` "
                      "to fit one for this machine", stacklevel=2)
    return model


def user_cost_model_path():
    from .machine import cache_dir
    return cache_dir() / "costmodel.json"


def default_cost_model_path():
    return Path(__file__).parent / "models" / "costmodel.json"


_CACHE = {}


def current_cost_model():
    """The user's trained model (``spmvtune train``), else the shipped one, else
    the analytic prior.  Loaded once per process (reloaded when the file changes)."""
    for path in (user_cost_model_path(), default_cost_model_path()):
        try:
            stamp = (str(path), path.stat().st_mtime_ns)
        except OSError:
            continue
        if stamp not in _CACHE:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")       # a foreign model: still a fair prior
                    _CACHE[stamp] = load_cost_model(path)
            except (ValueError, OSError) as exc:
                warnings.warn(f"ignoring unreadable cost model {path}: {exc}")
                _CACHE[stamp] = None
        if _CACHE[stamp] is not None:
            return _CACHE[stamp]
    return CostModel()


# ---- fitting -------------------------------------------------------------------------

def fit_pair(Phi, t, prior, weights=None):
    """Non-negative θ minimising sum(w (Phi θ / t - 1)^2) + RIDGE n |θ/s - prior|^2,
    where s rescales the prior to the data's level (so that the pull keeps the
    shape of the prior, not its absolute speed).  Phi: (n, len(TERMS)); t: (n,);
    weights: (n,) non-negative, mean 1 (default: all 1)."""
    from scipy.optimize import nnls
    w = np.ones(len(t)) if weights is None else np.asarray(weights, float) / np.mean(weights)
    A = Phi / t[:, None] * np.sqrt(w)[:, None]
    scale = float(np.median(t / np.maximum(Phi @ prior, 1e-30)))
    lam = math.sqrt(RIDGE * len(t))
    colnorm = np.maximum(np.abs(A).max(axis=0), 1e-30)
    A_aug = np.vstack([A / colnorm, lam * np.diag(1.0 / colnorm) / np.maximum(prior * scale, 1e-9)])
    b_aug = np.concatenate([np.sqrt(w), lam * np.ones(len(prior))])
    theta, _ = nnls(A_aug, b_aug, maxiter=50 * A_aug.shape[1])
    return theta / colnorm


def canonical_times(times):
    """``times`` {"kernel@T[@kB]": seconds} with every pair that runs another
    pair's loop (:func:`spmvtune.pool.canonical_pair`) given that pair's time:
    the same code measured twice differs only by noise."""
    from .pool import canonical_pair
    out = dict(times)
    for key in times:
        kernel, T, k = parse_key(key)
        try:
            canon = pair_key(*canonical_pair(kernel, T), k)
        except ValueError:                       # a kernel of another version
            continue
        if canon != key and canon in times:
            out[key] = times[canon]
    return out


def record_group(name, family):
    """The fit's group of a stored record (``spmvtune.train`` store rows): its
    generated family, or, for a matrix file ("file:..." family), the matrix itself."""
    return name if family.startswith("file:") else family


def fit(records, machine, specs, max_threads=None, groups=None):
    """A :class:`CostModel` fitted to training records (see :mod:`spmvtune.train`):
    each record has ``features`` and ``times`` {"kernel@T" or "kernel@T@kB": seconds}
    (B: the k the product was timed with, a power of two) and ``setup``
    {"kernel@T": seconds}.

    groups: one label per record (e.g. the generated family); each group then
    weighs as much as one matrix, however many records it holds, so that a
    family swept over many parameters does not outvote the rest (default: every
    record its own group)."""
    from . import __version__
    from .machine import machine_fingerprint
    by_name = {s.name: s for s in specs}
    rows = {}
    setups = {}
    if groups is None:
        weights = [1.0] * len(records)
    else:
        sizes = {}
        for g in groups:
            sizes[g] = sizes.get(g, 0) + 1
        weights = [1.0 / sizes[g] for g in groups]
    for rec, w in zip(records, weights):
        f = rec["features"]
        from .pool import canonical_pair
        for key, t in rec.get("times", {}).items():
            kernel, T, k = parse_key(key)
            if kernel in by_name and canonical_pair(kernel, T) != (kernel, T):
                continue                         # ranked as its canonical pair
            if kernel in by_name and t > 0 and math.isfinite(t):
                rows.setdefault(pair_key(kernel, T, k), []).append(
                    (terms(by_name[kernel], f, T, machine, max_threads, k), t, w))
        for key, s in rec.get("setup", {}).items():
            kernel = parse_key(key)[0] if "@" in key else key
            if kernel in by_name and s > 0 and math.isfinite(s):
                setups.setdefault(kernel, []).append((setup_terms(f), s))
    coef, error = {}, {}
    for key, pairs in rows.items():
        if len(pairs) < MIN_SAMPLES:
            continue
        Phi = np.array([p for p, _, _ in pairs])
        t = np.array([t for _, t, _ in pairs])
        kernel, _, k = parse_key(key)
        theta = fit_pair(Phi, t, prior_coefficients(by_name[kernel], k),
                         np.array([w for _, _, w in pairs]))
        coef[key] = theta
        error[key] = float(np.median(np.abs(Phi @ theta / t - 1.0)))
    setup = {}
    for kernel, pairs in setups.items():
        if len(pairs) < MIN_SAMPLES:
            continue
        Phi = np.array([p for p, _ in pairs])
        s = np.array([s for _, s in pairs])
        setup[kernel] = fit_pair(Phi, s, np.ones(len(SETUP_TERMS)))
    meta = {"machine": machine_fingerprint(), "trained_on": len(records),
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "versions": {"spmvtune": __version__, "numpy": np.__version__},
            "samples": {k: len(v) for k, v in rows.items()}}
    return CostModel(coef, setup, error, meta)
