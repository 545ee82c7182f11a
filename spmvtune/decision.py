"""What ``select_kernel`` decided: a typed, frozen record that the selector,
the tuning cache, the operator and the reports share.

A decision read back from the tuning cache (or from anywhere else) goes
through :meth:`Decision.from_json`, which refuses anything that could not have
been written by the selector: an unknown kernel, a thread count outside
1..``max_threads``, options the kernel does not take.
"""
import math
from dataclasses import asdict, dataclass, replace

#: Part of the tuning-cache key: raise it whenever the selection logic changes,
#: so that decisions cached by the old logic are made again.
SELECTOR_REVISION = 13
#: The reference every speedup and break-even is counted against.
BASELINE = "csr_balanced"


@dataclass(frozen=True)
class Decision:
    """kernel: a registered kernel name; threads: threads per product;
    options: sorted (name, value) pairs passed to the kernel's ``prepare``;
    bottlenecks: classes that hold (strongest first), when known;
    predicted_speedup: over the baseline (None when forced);
    predicted_seconds: the cost model's time of one product, when it was used;
    source: how the decision was made (mode, cache, forced; for reports)."""
    kernel: str
    threads: int
    options: tuple = ()
    bottlenecks: tuple = ()
    predicted_speedup: float | None = None
    predicted_seconds: float | None = None
    source: str = ""

    @property
    def options_dict(self):
        return dict(self.options)

    def but(self, **changes):
        """A copy with ``changes`` (the record itself never changes)."""
        if "options" in changes and isinstance(changes["options"], dict):
            changes["options"] = _options(changes["options"])
        return replace(self, **changes)

    def to_json(self):
        """A JSON-able dict of everything but ``source``."""
        d = asdict(self)
        d.pop("source")
        d["options"] = [[k, list(v) if isinstance(v, tuple) else v] for k, v in self.options]
        d["bottlenecks"] = list(self.bottlenecks)
        return d

    @classmethod
    def make(cls, kernel, threads, options=None, **rest):
        return cls(kernel, int(threads), _options(options or {}), **rest)

    @classmethod
    def from_json(cls, doc, max_threads, source=""):
        """Validate and rebuild a decision; ValueError says what is wrong."""
        from .pool import CLASSES, get_kernel
        if not isinstance(doc, dict):
            raise ValueError(f"a decision must be an object, got {type(doc).__name__}")
        kernel = doc.get("kernel")
        if not isinstance(kernel, str):
            raise ValueError(f"kernel must be a name, got {kernel!r}")
        spec = get_kernel(kernel)                     # ValueError when unknown
        threads = doc.get("threads")
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= max_threads:
            raise ValueError(f"threads must be an int in 1..{max_threads}, got {threads!r}")
        raw = doc.get("options", [])
        pairs = list(raw.items()) if isinstance(raw, dict) else raw
        if not isinstance(pairs, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2
                                                  and isinstance(p[0], str) for p in pairs):
            raise ValueError(f"options must be (name, value) pairs, got {raw!r}")
        unknown = {k for k, _ in pairs} - set(spec.options)
        if unknown:
            raise ValueError(f"kernel {kernel!r} takes no options {sorted(unknown)}")
        for k, v in pairs:            # tuning options are positive integers (or a shape pair)
            if not (v is None or _positive_int(v)
                    or isinstance(v, list) and len(v) == 2 and all(map(_positive_int, v))):
                raise ValueError(f"option {k}={v!r} is not a positive integer")
        bottlenecks = doc.get("bottlenecks", [])
        if not isinstance(bottlenecks, list) or not set(bottlenecks) <= set(CLASSES):
            raise ValueError(f"bottlenecks must be classes of {CLASSES}, got {bottlenecks!r}")
        numbers = {}
        for key in ("predicted_speedup", "predicted_seconds"):
            v = doc.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(v) or v <= 0):
                raise ValueError(f"{key} must be a positive number or null, got {v!r}")
            numbers[key] = None if v is None else float(v)
        options = _options({k: tuple(v) if isinstance(v, list) else v for k, v in pairs})
        return cls(kernel, threads, options, tuple(bottlenecks), source=source, **numbers)


def _positive_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**40


def _options(d):
    return tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in d.items()))
