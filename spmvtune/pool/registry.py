"""The kernel registry: one table that drives the API, the CLI, the docs and the tests.

A kernel is a :class:`KernelSpec`.  Its ``prepare(csr, threads, **options)``
converts a canonical :class:`CSR` once and returns a :class:`Prepared`: a
callable ``run`` and the argument tuple it needs, so that one SpMV is
``run(*args, x, y)`` writing into a caller-allocated ``y`` (the convention of
scipy's ``csr_matvec``).
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

#: Bottleneck classes of Elafrou et al.: memory bandwidth, memory latency,
#: thread imbalance, computation.
CLASSES = ("MB", "ML", "IMB", "CMP")


@dataclass(frozen=True)
class CSR:
    """A canonical CSR matrix as the kernels' ``prepare`` steps see it.

    indptr: (n_rows + 1,) int32/int64; indices: (nnz,) int32/int64 sorted per
    row, no duplicates; data: (nnz,) float64.  ``symmetry`` is what the source
    file declared ("general", "symmetric", "skew-symmetric", "hermitian") or
    None when unknown.
    """
    shape: tuple
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    symmetry: str | None = None

    @property
    def nnz(self):
        return int(self.indptr[-1])


@dataclass
class Prepared:
    """A kernel ready to run: ``run(*args, x, y)`` computes ``y = A @ x``.

    ``nbytes`` counts the bytes of the kernel's matrix storage (what one SpMV
    must stream from memory, x and y excluded); ``info`` holds kernel-specific
    facts worth reporting (e.g. bytes per nonzero of a compressed format).
    """
    run: Callable
    args: tuple
    nbytes: int
    info: dict = field(default_factory=dict)


class KernelUnusable(ValueError):
    """The kernel cannot represent this matrix (e.g. too many distinct values)."""


@dataclass(frozen=True)
class KernelSpec:
    """One entry of the pool.

    name: stable identifier used by the API and the CLI.
    targets: bottleneck classes the kernel is meant to relieve.
    summary: one line for ``spmvtune kernels`` and the docs.
    prepare: ``prepare(csr: CSR, threads: int, **options) -> Prepared``;
        raises :class:`KernelUnusable` with a reason when it cannot apply.
    options: default values of the tuning parameters ``prepare`` accepts.
    """
    name: str
    targets: tuple
    summary: str
    prepare: Callable
    options: dict = field(default_factory=dict)


_REGISTRY: dict[str, KernelSpec] = {}


def register(spec):
    if spec.name in _REGISTRY:
        raise ValueError(f"kernel {spec.name!r} registered twice")
    unknown = set(spec.targets) - set(CLASSES)
    if unknown:
        raise ValueError(f"kernel {spec.name!r}: unknown targets {sorted(unknown)}")
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
