"""The kernel selector model: a decision tree or random forest over matrix
features, trained on this machine's timings, stored as plain JSON.

Persistence is the fitted trees' arrays (children, split feature, threshold,
leaf class weights) in JSON, read back and evaluated with NumPy: loading a
model never executes code (no pickle) and selection does not import
scikit-learn.  The JSON also records the feature list, the classes, library
versions and the fingerprint of the machine it was trained on; a model from
another machine loads with a warning.

Labels tolerate timing noise: a matrix's label is the first kernel in registry
order (simplest first) within ``LABEL_TOLERANCE`` (1%) of the fastest; a
prediction counts as correct when its kernel is within ``TOLERANCE`` (5%).
A 5% label tolerance taught the forest the simplest pair wherever it was
within 5%, a systematic few-percent regret on small matrices (cross-validation
in benchmarks/selection_eval.py: unseen families 3.2% mean regret for auto
with 1% labels against 4.0% with 5%, unseen real 4.1% against 4.6%).
"""
import json
import time
import warnings
from pathlib import Path

import numpy as np

FORMAT = "spmvtune-tree-model"
TOLERANCE = 0.05
LABEL_TOLERANCE = 0.01
FEATURES = ["log_rows", "log_cols", "log_nnz", "log_density", "log_ws_over_l3", "log_x_over_l3",
            "row_mean", "row_cv", "row_skew", "max_row_share", "empty_row_share",
            "bandwidth_norm", "scattering", "clustering", "x_lines_per_nnz",
            "diagonals_per_row", "distinct_value_share", "few_values", "symmetric",
            "delta_index_bytes", "threads"]
PROFILE_FEATURES = ["bandwidth_share", "latency_share", "imbalance", "incache_share"]


def feature_vector(features, threads, profile=None, names=FEATURES):
    """The model's inputs from a features dict (and a profile dict when the model
    uses one).  Sizes enter as log10 so that trees split on orders of magnitude."""
    f = dict(features)
    for key in ("rows", "cols", "nnz"):
        f[f"log_{key}"] = np.log10(max(f[key], 1.0))
    f["log_density"] = np.log10(max(f["density"], 1e-12))
    f["log_ws_over_l3"] = np.log10(max(f["ws_over_l3"], 1e-9))
    f["log_x_over_l3"] = np.log10(max(f["x_over_l3"], 1e-9))
    f["threads"] = float(threads)
    if profile:
        f.update({k: profile[k] for k in PROFILE_FEATURES})
    return np.array([float(f[k]) for k in names])


def label_of(times, order):
    """The simplest (kernel, threads) pair within LABEL_TOLERANCE of the fastest:
    ``order`` lists kernels simplest first (registry order), and fewer threads
    come first.  Keys of ``times`` are "kernel@threads" (or bare kernel names)."""
    best = min(times.values())
    rank = {name: i for i, name in enumerate(order)}

    def simplicity(key):
        kernel, _, t = key.partition("@")
        return (rank.get(kernel, len(rank)), int(t) if t.isdigit() else 0)
    for key in sorted(times, key=simplicity):
        if times[key] <= best * (1 + LABEL_TOLERANCE):
            return key
    return min(times, key=times.get)


def single_vector_times(times):
    """The "kernel@threads" entries of a record's times (k > 1 keys carry "@kK")."""
    return {k: v for k, v in times.items() if k.count("@") <= 1}


def dataset(records, order, use_profile=False):
    """X (n, d), y (n,) labels, groups (n,) families, kept record list."""
    X, y, groups, kept = [], [], [], []
    names = FEATURES + (PROFILE_FEATURES if use_profile else [])
    for matrix, family, rec in records:
        if not rec.get("times") or not rec.get("nnz"):
            continue
        if use_profile and not rec.get("profile"):
            continue
        X.append(feature_vector(rec["features"], rec["threads"], rec.get("profile"), names))
        y.append(label_of(single_vector_times(rec["times"]), order))
        groups.append(family)
        kept.append((matrix, family, rec))
    return np.array(X), np.array(y), np.array(groups), kept


def make_estimator(kind, seed=0):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier
    if kind == "tree":
        return DecisionTreeClassifier(max_depth=6, min_samples_leaf=2, random_state=seed)
    if kind == "forest":
        return RandomForestClassifier(n_estimators=60, max_depth=8, min_samples_leaf=1,
                                      random_state=seed, n_jobs=1)
    if kind == "boosting":            # evaluated in benchmarks/; not exportable to JSON here
        from sklearn.ensemble import HistGradientBoostingClassifier
        return HistGradientBoostingClassifier(max_depth=4, learning_rate=0.1, random_state=seed)
    raise ValueError(f"kind must be 'tree', 'forest' or 'boosting', got {kind!r}")


class TreeModel:
    """A fitted tree ensemble as arrays; ``predict_proba(x)`` for one feature vector."""

    def __init__(self, doc):
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not an spmvtune model file")
        check_model_doc(doc)
        self.doc = doc
        self.features = doc["features"]
        self.classes = doc["classes"]
        self.uses_profile = any(k in PROFILE_FEATURES for k in self.features)
        # plain lists: a walk indexes one element per level, which lists do
        # several times faster than NumPy arrays
        self._trees = [(list(map(int, t["left"])), list(map(int, t["right"])),
                        list(map(int, t["feature"])), list(map(float, t["threshold"])),
                        np.asarray(t["value"], dtype=float)) for t in doc["trees"]]
        self.class_speedup = doc.get("class_speedup", {})

    @classmethod
    def from_estimator(cls, est, features, meta):
        trees = est.estimators_ if hasattr(est, "estimators_") else [est]
        classes = [str(c) for c in est.classes_]
        out = []
        for t in trees:
            tr = t.tree_
            value = tr.value[:, 0, :]
            # a forest's trees index est.classes_ through their own classes_ (same order)
            out.append({"left": tr.children_left.tolist(), "right": tr.children_right.tolist(),
                        "feature": tr.feature.tolist(), "threshold": tr.threshold.tolist(),
                        "value": (value / np.maximum(value.sum(axis=1, keepdims=True), 1e-300)).tolist()})
        doc = {"format": FORMAT, "version": 1, "features": list(features), "classes": classes,
               "trees": out, **meta}
        return cls(doc)

    def predict_proba(self, x):
        x = [float(v) for v in x]
        leaves = []
        for left, right, feat, thr, value in self._trees:
            node = 0
            while left[node] != -1:
                node = left[node] if x[feat[node]] <= thr[node] else right[node]
            leaves.append(value[node])
        return np.sum(leaves, axis=0) / len(self._trees)

    def predict(self, x):
        """(kernel, probability)."""
        p = self.predict_proba(x)
        i = int(np.argmax(p))
        return self.classes[i], float(p[i])

    def ranked(self, x):
        """[(kernel, probability)] best first."""
        p = self.predict_proba(x)
        return [(self.classes[i], float(p[i])) for i in np.argsort(-p)]

    def save(self, path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.doc))
        tmp.replace(path)


def fit_model(records, order, kind="forest", use_profile=False):
    """Fit on training records; returns a :class:`TreeModel` with metadata."""
    import sklearn

    from . import __version__
    from .machine import machine_fingerprint
    X, y, groups, kept = dataset(records, order, use_profile)
    if len(set(y)) < 2:
        raise ValueError(f"need at least two distinct best kernels to train, got {sorted(set(y))}")
    est = make_estimator(kind).fit(X, y)
    speed = {}
    for (_, _, rec), label in zip(kept, y):
        base = min(v for k, v in rec["times"].items() if k.partition("@")[0] == "csr_balanced")
        speed.setdefault(label, []).append(base / rec["times"][label])
    names = FEATURES + (PROFILE_FEATURES if use_profile else [])
    meta = {"kind": kind, "machine": machine_fingerprint(), "trained_on": len(y),
            "families": sorted(set(groups)), "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "versions": {"spmvtune": __version__, "sklearn": sklearn.__version__,
                         "numpy": np.__version__},
            "class_speedup": {k: float(np.median(v)) for k, v in speed.items()}}
    return TreeModel.from_estimator(est, names, meta)


#: Bounds on a model file: bytes, trees, nodes in all (the shipped forest has
#: 60 trees and ~10,000 nodes).
MAX_MODEL_BYTES = 64 << 20
MAX_TREES = 1000
MAX_NODES = 2_000_000


def check_model_doc(doc):
    """Raise ValueError unless ``doc`` is a well-formed tree model: known
    feature names, known kernels as classes, trees whose arrays agree in
    length, whose children come after their parent (so every walk ends at a
    leaf), whose split features exist and whose thresholds and leaf weights
    are finite; at most MAX_TREES trees and MAX_NODES nodes."""
    from .pool import kernel_names
    features, classes, trees = doc.get("features"), doc.get("classes"), doc.get("trees")
    known = FEATURES + PROFILE_FEATURES
    if (not isinstance(features, list) or not features or len(set(map(str, features))) != len(features)
            or not all(isinstance(f, str) and f in known for f in features)):
        raise ValueError(f"model features must be distinct names from {known}")
    def known_label(c):               # "kernel" or "kernel@threads"
        if not isinstance(c, str):
            return False
        kernel, at, t = c.partition("@")
        return kernel in kernel_names() and (not at or t.isascii() and t.isdigit() and int(t) >= 1)
    if (not isinstance(classes, list) or not classes or len(set(map(str, classes))) != len(classes)
            or not all(map(known_label, classes))):
        raise ValueError("model classes must be distinct kernel names (or kernel@threads) of "
                         f"this spmvtune (got {str(classes)[:200]})")
    if not isinstance(trees, list) or not 1 <= len(trees) <= MAX_TREES:
        raise ValueError(f"a model needs 1..{MAX_TREES} trees")
    speed = doc.get("class_speedup", {})
    if not isinstance(speed, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v > 0
            for v in speed.values()):
        raise ValueError("class_speedup must map kernels to positive numbers")
    nodes = 0
    for t, tree in enumerate(trees):
        if not isinstance(tree, dict) or not {"left", "right", "feature", "threshold",
                                               "value"} <= set(tree):
            raise ValueError(f"tree {t}: needs left, right, feature, threshold, value")
        try:
            left, right, feat = (np.asarray(tree[k], dtype=np.int64)
                                 for k in ("left", "right", "feature"))
            thr = np.asarray(tree["threshold"], dtype=np.float64)
            value = np.asarray(tree["value"], dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"tree {t}: arrays of numbers expected") from None
        n = left.shape[0] if left.ndim == 1 else -1
        nodes += max(n, 0)
        if n < 1 or nodes > MAX_NODES or any(a.shape != (n,) for a in (right, feat, thr)):
            raise ValueError(f"tree {t}: left, right, feature, threshold must be 1-D of one "
                             f"length (at most {MAX_NODES} nodes in all)")
        if value.shape != (n, len(classes)) or not np.isfinite(value).all() or (value < 0).any():
            raise ValueError(f"tree {t}: value must be {n} x {len(classes)} non-negative weights")
        leaf = left == -1
        node = np.arange(n)
        inner = ~leaf
        if ((right == -1) != leaf).any():
            raise ValueError(f"tree {t}: a node has one child")
        if (inner & ((left <= node) | (right <= node) | (left >= n) | (right >= n))).any():
            raise ValueError(f"tree {t}: every child must come after its parent (no cycles)")
        if (inner & ((feat < 0) | (feat >= len(features)) | ~np.isfinite(thr))).any():
            raise ValueError(f"tree {t}: a split names a feature that does not exist or has "
                             "no finite threshold")


def load_model(path):
    """Read a model file; warns when it was trained on another machine.
    Raises ValueError for a file that is not a well-formed model."""
    from .machine import machine_fingerprint
    path = Path(path)
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise ValueError(f"{path}: larger than {MAX_MODEL_BYTES >> 20} MiB, not a model")
    try:
        doc = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    model = TreeModel(doc)
    if doc.get("machine") != machine_fingerprint():
        warnings.warn(f"model {path} was trained on another machine; run `spmvtune train` "
                      "to fit one for this machine", stacklevel=2)
    return model


def user_model_path():
    """Where ``spmvtune train`` writes this machine's model."""
    from .machine import cache_dir
    return cache_dir() / "model.json"


def default_model_path():
    return Path(__file__).parent / "models" / "default.json"


_CACHE = {}


def current_model():
    """The user's model (``spmvtune train``) if present, else the shipped default,
    else None.  Loaded once per process."""
    for path in (user_model_path(), default_model_path()):
        if path.exists():
            key = (str(path), path.stat().st_mtime)
            if key not in _CACHE:
                try:
                    _CACHE[key] = load_model(path)
                except (ValueError, KeyError, OSError) as exc:
                    warnings.warn(f"ignoring unreadable model {path}: {exc}")
                    continue
            return _CACHE[key]
    return None
