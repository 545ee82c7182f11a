"""spmvtune: fast sparse matrix-vector products, tuned to the machine it runs on.

>>> import spmvtune
>>> A = spmvtune.load("m.mtx")                 # canonical CSR (float64, complex128, ...)
>>> op = spmvtune.select_kernel(A, threads=2)  # prepare once
>>> y = op(x)                                  # then y = A @ x, many times

The public names are imported on first use (PEP 562), so that ``import
spmvtune`` (and the ``spmvtune`` command before it has anything to do) loads
neither NumPy, SciPy nor Numba: the command can then report in one line that
their libraries cannot be loaded (under a tight memory cap, say).
"""
import importlib

__version__ = "0.2.0"

#: Public name -> the submodule defining it.
_EXPORTS = {"load": "io", "MatrixInfo": "io", "MatrixLoadError": "io",
            "MatrixFormatError": "io", "MatrixTooLargeError": "io",
            "analyze": "analysis", "Analysis": "analysis",
            "SpMVOperator": "operator", "single_threaded_blas": "operator",
            "KernelUnusable": "pool", "kernel_names": "pool",
            "select_kernel": "select"}

__all__ = ["load", "analyze", "Analysis", "kernel_names", "select_kernel", "SpMVOperator",
           "single_threaded_blas", "MatrixInfo",
           "MatrixLoadError", "MatrixFormatError", "MatrixTooLargeError", "KernelUnusable", "__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    try:                                  # a submodule: spmvtune.generate, spmvtune.linalg, ...
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
