"""The kernel registry: one table that drives the API, the CLI, the docs, the
selector, the cost model, emit, train and the tests.

A kernel is a :class:`KernelSpec`.  Its ``prepare(csr, threads, **options)``
converts a canonical :class:`CSR` once and returns a :class:`Prepared`: a
callable ``run`` and the argument tuple it needs, so that one SpMV is
``run(*args, x, y)`` writing into a caller-allocated ``y`` (the convention of
scipy's ``csr_matvec``).

Every other fact about a kernel lives in its spec too, so that adding a kernel
means one module (plus, optionally, one C template): whether it applies to a
matrix (from the structural features, before anything is prepared), the bytes
its storage streams per product, how it splits work over threads, what its
setup costs, which siblings are worth timing beside it, and its C template.
The functions of a spec take the features dict of
:func:`spmvtune.features.structural_features` (``f``).
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

#: Bottleneck classes of Elafrou et al.: memory bandwidth, memory latency,
#: thread imbalance, computation.
CLASSES = ("MB", "ML", "IMB", "CMP")
#: How a kernel splits one product over threads (the cost model's imbalance):
#: "rows" equal row blocks, "nnz" row blocks of equal nonzero count, "split"
#: equal nonzero ranges (long rows shared), "serial" one thread only, "blas"
#: a BLAS library's own threads.
BALANCES = ("rows", "nnz", "split", "serial", "blas")
#: Value types a kernel may run (NumPy names).  A canonical CSR holds one of these.
DTYPES = ("float32", "float64", "complex64", "complex128")
REAL_DTYPES = ("float32", "float64")
U32_MAX = np.iinfo(np.uint32).max
#: ``max_vectors`` of a kernel that takes any number of right-hand sides.
ANY_VECTORS = 1 << 30


@dataclass(frozen=True)
class CSR:
    """A canonical CSR matrix as the kernels' ``prepare`` steps see it.

    indptr: (n_rows + 1,) int32/int64; indices: (nnz,) int32/int64 sorted per
    row, no duplicates; data: (nnz,) of one of ``DTYPES`` (float32, float64,
    complex64, complex128).  ``symmetry`` is what the source file declared
    ("general", "symmetric", "skew-symmetric", "hermitian") or None when unknown.
    """
    shape: tuple
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    symmetry: str | None = None

    @property
    def nnz(self):
        return int(self.indptr[-1])

    @property
    def dtype(self):
        """The value type (a NumPy dtype)."""
        return self.data.dtype


@dataclass
class Prepared:
    """A kernel ready to run: ``run(*args, x, y)`` computes ``y = A @ x``.

    ``nbytes`` counts the bytes of the kernel's matrix storage (what one SpMV
    must stream from memory, x and y excluded); ``info`` holds kernel-specific
    facts worth reporting (e.g. bytes per nonzero of a compressed format).
    ``scratch``: positions in ``args`` of scratch buffers (partial sums) that
    ``prepare`` allocates in the matrix's value type; a product whose result
    has a wider type (float32 A times float64 x) runs with zeroed copies of
    them in the result's type.
    """
    run: Callable
    args: tuple
    nbytes: int
    info: dict = field(default_factory=dict)
    scratch: tuple = ()

    def args_for(self, dtype):
        """``args`` with the scratch buffers in ``dtype`` (the result's type)."""
        dtype = np.dtype(dtype)
        if not self.scratch or all(self.args[i].dtype == dtype for i in self.scratch):
            return self.args
        return tuple(np.zeros(a.shape, dtype) if i in self.scratch else a
                     for i, a in enumerate(self.args))


class KernelUnusable(ValueError):
    """The kernel cannot represent this matrix (e.g. too many distinct values)."""


# ---- facts shared by many kernels (functions of the features dict f) --------

def index_bytes(max_value):
    """Bytes of one unsigned index able to hold ``max_value`` (4 or 8)."""
    return 4 if max_value <= U32_MAX else 8


def value_bytes(f):
    """Bytes of one stored value (4 float32, 8 float64 and complex64, 16 complex128)."""
    return float(f.get("value_bytes", 8.0))


def value_dtype(f):
    """The value type (NumPy name) the features ``f`` describe, from
    ``value_bytes`` and ``complex_values`` (features are plain floats)."""
    vb = int(value_bytes(f))
    if f.get("complex_values", 0.0):
        return "complex64" if vb <= 8 else "complex128"
    return "float32" if vb <= 4 else "float64"


def csr_bytes(f, value_size=None):
    """Bytes of plain CSR storage: row pointers, one index and one value per nonzero."""
    v = value_bytes(f) if value_size is None else value_size
    return (index_bytes(f["nnz"]) * (f["rows"] + 1)
            + (index_bytes(max(f["cols"] - 1, 0)) + v) * f["nnz"])


def nnz_work(f):
    """Multiply-adds of one product: one per nonzero."""
    return f["nnz"]


def all_columns(f):
    """Columns of x a product reaches into at once: all of them."""
    return f["cols"]


def always(f):
    return None


@dataclass(frozen=True)
class KernelSpec:
    """One entry of the pool, with every fact the rest of spmvtune reads.

    name: stable identifier used by the API and the CLI.
    targets: bottleneck classes the kernel is meant to relieve.
    summary: one line for ``spmvtune kernels`` and the docs.
    prepare: ``prepare(csr: CSR, threads: int, **options) -> Prepared``;
        raises :class:`KernelUnusable` with a reason when it cannot apply.
    options: default values of the tuning parameters ``prepare`` accepts.
    storage: ``storage(f) -> bytes`` of the prepared matrix storage, which one
        product streams (x and y excluded); also the memory the kernel keeps
        beside the caller's matrix (``max_extra_bytes``).
    work: ``work(f) -> multiply-adds`` of one product (nnz; m n for dense).
    x_span: ``x_span(f) -> columns`` of x a product reaches into at once
        (all columns; a column block for the blocked kernels).
    balance: how one product is split over threads (one of ``BALANCES``).
    applies: ``applies(f) -> None`` when the kernel can represent the matrix
        whose features are ``f``, else the reason (cheap; ``prepare`` has the
        last word and may still raise :class:`KernelUnusable`).
    setup_products: conversion cost in baseline products, a prior that the
        trained cost model replaces with measured setup times.
    siblings: kernels worth timing beside this one when it is a candidate.
    c_template, c_defines, c_note: the template of ``kernels/`` that ``emit``
        fills, its ``#define``s, and how the C code differs (if it does).
    c_dtypes: value types the C template runs, where fewer than ``dtypes``.
    serial_only: runs on one thread whatever the caller asks.
    shares_input: runs on views of the caller's CSR arrays where their index
        widths allow (no memory beyond the caller's matrix).
    dtypes: value types the kernel runs (NumPy names, of ``DTYPES``); a
        matrix of another type is refused with a reason (:meth:`dtype_refusal`).
    one_thread_is: the kernel whose compiled loop this one runs at one thread
        (csr_rows and csr_serial run csr_balanced's serial loop there): one
        candidate, not several (:func:`canonical_pair`).
    max_vectors: the most right-hand sides one call takes (1: ``y = A x``
        only; larger: also ``Y = A X`` for ``X`` of shape (n_cols, k)).
    min_vectors: the fewest right-hand sides the selector considers the
        kernel for (the many-vector kernels: 2; they still run ``y = A x``,
        but the single-vector pool serves one vector).
    """
    name: str
    targets: tuple
    summary: str
    prepare: Callable
    options: dict = field(default_factory=dict)
    storage: Callable = csr_bytes
    work: Callable = nnz_work
    x_span: Callable = all_columns
    balance: str = "nnz"
    applies: Callable = always
    setup_products: float = 1.0
    siblings: tuple = ()
    c_template: str | None = None
    c_defines: dict = field(default_factory=dict)
    c_note: str = ""
    c_dtypes: tuple | None = None
    serial_only: bool = False
    shares_input: bool = False
    dtypes: tuple = ("float64",)
    max_vectors: int = 1
    min_vectors: int = 1
    one_thread_is: str | None = None

    def threads_for(self, threads):
        """The thread count this kernel runs with when ``threads`` are asked for."""
        return 1 if self.serial_only else threads

    def dtype_refusal(self, dtype):
        """Why this kernel cannot run values of ``dtype`` (None: it can)."""
        name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
        if name in self.dtypes:
            return None
        return f"{self.name} runs {', '.join(self.dtypes)} values, not {name}"
    def serves(self, k):
        """Whether the selector considers this kernel for ``k`` right-hand sides."""
        return self.min_vectors <= k <= self.max_vectors

    def refusal(self, f):
        """Why this kernel cannot take the matrix of features ``f`` (None: it can)."""
        return self.dtype_refusal(value_dtype(f)) or self.applies(f)


_REGISTRY: dict[str, KernelSpec] = {}


def register(spec):
    if spec.name in _REGISTRY:
        raise ValueError(f"kernel {spec.name!r} registered twice")
    unknown = set(spec.targets) - set(CLASSES)
    if unknown:
        raise ValueError(f"kernel {spec.name!r}: unknown targets {sorted(unknown)}")
    if spec.balance not in BALANCES:
        raise ValueError(f"kernel {spec.name!r}: balance must be one of {BALANCES}")
    if not spec.dtypes or not set(spec.dtypes) <= set(DTYPES):
        raise ValueError(f"kernel {spec.name!r}: dtypes must be among {DTYPES}")
    _REGISTRY[spec.name] = spec
    return spec


def kernel_names():
    """Names of every kernel in the pool, in registration (stable) order."""
    return tuple(_REGISTRY)


def get_kernel(name):
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown kernel {name!r}; choose one of: "
                         + ", ".join(_REGISTRY)) from None


def kernel_specs():
    return tuple(_REGISTRY.values())


def canonical_pair(name, threads):
    """The (kernel, threads) pair whose compiled code ``name`` runs at
    ``threads``.  Pairs that run the same loop are one candidate: timing them
    apart would only compare noise, and the selector ranks the canonical one."""
    spec = get_kernel(name)
    t = spec.threads_for(threads)
    if t == 1 and spec.one_thread_is:
        return spec.one_thread_is, 1
    return name, t


def check_siblings():
    """Every sibling named by a spec is registered (called once the pool is loaded)."""
    for spec in _REGISTRY.values():
        missing = [s for s in spec.siblings + ((spec.one_thread_is,) if spec.one_thread_is else ())
                   if s not in _REGISTRY]
        if missing:
            raise ValueError(f"kernel {spec.name!r}: unknown siblings {missing}")
