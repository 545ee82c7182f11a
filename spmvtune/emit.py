"""``spmvtune emit``: a kernel of the pool as standalone C99 + OpenMP source.

The templates live in the top-level ``kernels/`` folder (shipped in the wheel
as ``spmvtune.kernels``): ``common.h`` (types, errors, partitions),
``value_index.h`` and one ``.c`` per kernel family, specialised by
``#define``s.  :func:`render` pastes the pieces into one self-contained file
whose functions carry a prefix (default ``spmvtune_<kernel>``)::

    <prefix>_plan *<prefix>_prepare(n_rows, n_cols, indptr, indices, data, threads);
    void <prefix>_run(const <prefix>_plan *plan, const T *x, T *y);  /* y = A x */
    void <prefix>_free(<prefix>_plan *plan);
    const char *<prefix>_last_error(void);   /* why prepare returned NULL */

The many-vector kernels (``max_vectors`` > 1) also define
``void <prefix>_matmat(const <prefix>_plan *plan, int64_t k, const double *X,
double *Y)``: ``Y = A X`` for a row-major X (n_cols x k) and Y (n_rows x k).

Input: plain CSR, 0-based, column indices sorted within rows, no duplicates;
``indptr``/``indices`` of ``SPMV_INDEX`` (int32_t or int64_t), ``data``,
``x`` and ``y`` of the value type T (``SPMV_VALUE``: double, float, double
complex or float complex from ``<complex.h>``; ``VALUE_TYPES``), chosen by
the matrix's dtype; a kernel whose registry entry does not claim a type
refuses it.  ``prepare`` does the conversion to the kernel's storage in C (value
index, delta-coded indices, blocks, lower triangle, partitions).  Kernels that
keep plain CSR (the row loops, split) read the caller's arrays, which must
outlive the plan.
"""
import re
import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import Path



#: NumPy value type -> (C type, complex, conjugate function).
VALUE_TYPES = {"float64": ("double", 0, None), "float32": ("float", 0, None),
               "complex128": ("double complex", 1, "conj"),
               "complex64": ("float complex", 1, "conjf")}


def templated_kernels():
    """Kernels of the pool that have a C template (``KernelSpec.c_template``), in registry order."""
    from .pool import kernel_specs
    return tuple(s.name for s in kernel_specs() if s.c_template)


def _spec_with_template(kernel):
    from .pool import get_kernel
    spec = get_kernel(kernel)                        # ValueError for unknown names
    if not spec.c_template:
        raise ValueError(f"kernel {kernel!r} has no C template")
    return spec


@dataclass
class Emitted:
    kernel: str
    prefix: str
    source: str     # the .c file
    header: str     # the matching .h file
    defines: dict


def template_dir():
    """The templates: ``kernels/`` of the source checkout this package runs
    from, else the package data of the installed wheel (``spmvtune.kernels``).
    The checkout comes first: an editable install of another checkout maps
    ``spmvtune.kernels`` to *its* templates."""
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / "kernels" / "common.h").is_file():
        return root / "kernels"
    try:
        return resources.files("spmvtune.kernels")
    except ModuleNotFoundError:
        return root / "kernels"


def template_text(name):
    return template_dir().joinpath(name).read_text()


def value_type(kernel, dtype):
    """(C type, complex, conjugate function) of ``dtype`` values; ValueError
    when ``kernel`` does not claim the type."""
    import numpy as np
    name = np.dtype(dtype).name
    spec = _spec_with_template(kernel)
    why = spec.dtype_refusal(name)
    if why is None and spec.c_dtypes is not None and name not in spec.c_dtypes:
        why = (f"{kernel}'s C template runs {', '.join(spec.c_dtypes)} values, not {name} "
               "(the Numba kernel runs more)")
    if why or name not in VALUE_TYPES:
        raise ValueError(why or f"no C type for {name} values")
    return VALUE_TYPES[name]


def defines_for(kernel, op=None, index_bits=32, code_bits=16, dtype=None):
    """The ``#define``s of ``kernel``: the template's defaults, then what the
    prepared operator ``op`` chose for the matrix (prefetch distance, block
    shape, value code width), and the value type (``dtype``; default: the
    operator's, else float64)."""
    spec = _spec_with_template(kernel)
    d = dict(spec.c_defines)
    info = dict(getattr(op, "info", None) or {})
    if "distance" in info and "SPMV_PREFETCH" in d:
        d["SPMV_PREFETCH"] = int(info["distance"])
    if "block_columns" in info:
        d["SPMV_BLOCK_COLS"] = int(info["block_columns"])
    if "shape" in info and "SPMV_BR" in d:
        r, c = info["shape"]
        d["SPMV_BR"], d["SPMV_BC"] = (int(r), int(c)) if r > 1 else (1, int(c))
    if d.get("SPMV_VALUE_INDEX"):
        if "value_bytes" in info:
            code_bits = 8 * int(info["value_bytes"])
        d["SPMV_CODE"] = f"uint{code_bits}_t"
    d["SPMV_INDEX"] = f"int{index_bits}_t"
    dtype = dtype if dtype is not None else getattr(op, "dtype", None) or "float64"
    c_type, cplx, conj = value_type(kernel, dtype)
    d["SPMV_VALUE"] = c_type
    if cplx:
        d["SPMV_COMPLEX"] = 1
        d["SPMV_CONJ"] = conj
    return d


def prototypes(prefix, index_type, value="double", matmat=False):
    return (f"typedef struct {prefix}_plan {prefix}_plan;\n"
            f"{prefix}_plan *{prefix}_prepare(int64_t n_rows, int64_t n_cols, "
            f"const {index_type} *indptr,\n"
            f"    const {index_type} *indices, const {value} *data, int threads);\n"
            f"void {prefix}_run(const {prefix}_plan *plan, const {value} *x, {value} *y);\n"
            + (f"void {prefix}_matmat(const {prefix}_plan *plan, int64_t k, const {value} *X, "
               f"{value} *Y);\n" if matmat else "")
            + f"void {prefix}_free({prefix}_plan *plan);\n"
            f"const char *{prefix}_last_error(void);\n")


def usage(prefix, c_file="kernel.c", matmat=False):
    return (f"Build:  cc -O3 -march=native -fopenmp -c {shlex.quote(c_file)}\n"
            "Use (CSR: 0-based, column indices sorted within rows, no duplicates):\n"
            f"    {prefix}_plan *plan = {prefix}_prepare(n_rows, n_cols, indptr, indices, data, 0);\n"
            f"    if (!plan) {{ fprintf(stderr, \"%s\\n\", {prefix}_last_error()); exit(1); }}\n"
            f"    for (int it = 0; it < iterations; it++)\n"
            f"        {prefix}_run(plan, x, y);            // y = A x\n"
            + (f"    {prefix}_matmat(plan, k, X, Y);         // Y = A X, X row-major (n_cols x k)\n"
               if matmat else "")
            + f"    {prefix}_free(plan);\n"
            "threads = 0 uses OpenMP's default (OMP_NUM_THREADS).")


C_KEYWORDS = {"auto", "break", "case", "char", "const", "continue", "default", "do", "double",
              "else", "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long",
              "register", "restrict", "return", "short", "signed", "sizeof", "static", "struct",
              "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "_Bool",
              "_Complex", "_Imaginary"}


def comment_safe(text):
    """``text`` fit for one line of a C block comment: printable ASCII only
    (anything else, newlines included, written as a backslash escape) and no
    ``*/`` or ``/*``, so that a file name cannot end the comment and inject code."""
    text = "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii")
                   for c in str(text))
    while "*/" in text or "/*" in text:
        text = text.replace("*/", "*\\/").replace("/*", "/\\*")
    return text


def render(kernel, *, prefix=None, op=None, index_bits=32, code_bits=16, notes=(),
           c_file="kernel.c", dtype=None):
    """The C source and header of ``kernel`` (see the module docstring).
    notes: lines for the header comment (matrix, bottlenecks, expected speed).
    dtype: the value type (default: ``op``'s, else float64); ValueError when
    the kernel does not claim it."""
    if index_bits not in (32, 64):
        raise ValueError("index_bits must be 32 or 64")
    prefix = prefix or f"spmvtune_{kernel}"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", prefix) or prefix in C_KEYWORDS:
        raise ValueError(f"prefix {prefix!r} is not a C identifier (ASCII letters, digits and "
                         "'_', at most 64, not a keyword)")
    defines = defines_for(kernel, op, index_bits, code_bits, dtype)
    spec = _spec_with_template(kernel)
    template = spec.c_template
    matmat = spec.max_vectors > 1
    index_type = defines["SPMV_INDEX"]
    value = defines["SPMV_VALUE"]
    comment = ["spmvtune kernel " + kernel + " (generated by `spmvtune emit`; C99 + OpenMP)", ""]
    comment += list(notes) + ([""] if notes else [])
    if spec.c_note:
        comment += [f"Differs from the Numba kernel: {spec.c_note}.", ""]
    comment += usage(prefix, c_file, matmat).splitlines()
    head = "/*\n" + "".join(f" * {comment_safe(line)}".rstrip() + "\n" for line in comment) + " */\n"
    parts = [head,
             "".join(f"#define {k} {v}\n" for k, v in defines.items()),
             f"#define SPMV_NAME(x) {prefix}_##x\n\n",
             template_text("common.h"), "\n",
             prototypes(prefix, index_type, value, matmat).replace(
                 f"const char *{prefix}_last_error(void);\n", ""),
             "\n"]
    if defines.get("SPMV_VALUE_INDEX"):
        parts += [template_text("value_index.h"), "\n"]
    parts.append(template_text(template))
    guard = prefix.upper() + "_H"
    includes = "#include <stdint.h>\n" + ("#include <complex.h>\n" if defines.get("SPMV_COMPLEX")
                                          else "")
    header = (head + f"#ifndef {guard}\n#define {guard}\n{includes}\n"
              + prototypes(prefix, index_type, value, matmat) + f"\n#endif /* {guard} */\n")
    return Emitted(kernel, prefix, "".join(parts), header, defines)
