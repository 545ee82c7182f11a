"""Matrix readers: Matrix Market (.mtx, .mtx.gz, .mtx.bz2), SuiteSparse archives
(Name.tar.gz holding Name/Name.mtx) and SciPy .npz.

The Matrix Market header is parsed here (so header errors carry a line number
and the size line allows a memory estimate before anything large is read); the
entries are parsed by ``fast_matrix_market`` (C++, multi-threaded).  Every
problem is reported as one :class:`MatrixFormatError` naming the file, the line
where known, and what is wrong.
"""
import bz2
import gzip
import io
import os
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

_OBJECTS = {"matrix"}
_FORMATS = {"coordinate", "array"}
_FIELDS = {"real", "double", "integer", "pattern", "complex"}
_SYMMETRIES = {"general", "symmetric", "skew-symmetric", "hermitian"}
#: bytes needed per stored entry while reading (COO int64 rows/cols + float64)
#: and converting to CSR (int32/64 indices + float64), with some slack.
_BYTES_PER_ENTRY = 48


class MatrixFormatError(ValueError):
    """A matrix file that cannot be read: ``path:line: problem``."""

    def __init__(self, path, problem, line=None):
        self.path, self.problem, self.line = str(path), problem, line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class MatrixTooLargeError(MemoryError):
    """The size line promises more than this machine's available memory."""


def field_dtype(field):
    """The value type a Matrix Market field loads as: complex -> complex128,
    real / integer / pattern -> float64."""
    return np.dtype(np.complex128) if field == "complex" else np.dtype(np.float64)


def hermitian_expand(rows, cols, vals):
    """Mirror the strictly lower (or upper) entries of hermitian storage:
    (i, j, a) also gives (j, i, conj(a)).  Returns the three full arrays."""
    off = rows != cols
    return (np.concatenate([rows, cols[off]]), np.concatenate([cols, rows[off]]),
            np.concatenate([vals, np.conj(vals[off])]))


@dataclass(frozen=True)
class MatrixInfo:
    """What the file said about the matrix (attached to loaded matrices as ``A.info``)."""
    source: str
    field: str            # real | integer | pattern | complex
    symmetry: str         # general | symmetric | skew-symmetric | hermitian
    stored_entries: int   # entries in the file (before symmetric expansion)


@dataclass(frozen=True)
class _Header:
    format: str
    field: str
    symmetry: str
    rows: int
    cols: int
    entries: int
    size_line: int


def load(path, *, max_bytes=None):
    """Read a matrix file into canonical CSR.

    Returns a ``scipy.sparse.csr_array`` (sorted indices, duplicates summed)
    whose attribute ``info`` is a :class:`MatrixInfo`: float64 for real,
    integer and pattern fields (pattern matrices get 1.0 values), complex128
    for complex ones; SciPy ``.npz`` files keep float32, float64, complex64
    and complex128 values.  Symmetric, skew-symmetric and hermitian storage
    is expanded (the declared symmetry is kept in ``A.info.symmetry``).
    max_bytes: refuse files whose size line needs more memory than this
    (default: the memory available now).
    Raises :class:`MatrixFormatError`, :class:`MatrixTooLargeError`,
    FileNotFoundError.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise MatrixFormatError(path, "is a directory, not a matrix file")
    name = path.name.lower()
    if name.endswith(".npz"):
        return _load_npz(path)
    if name.endswith((".tar.gz", ".tgz")):
        return _load_suitesparse_tar(path, max_bytes)
    if name.endswith((".mtx", ".mtx.gz", ".mtx.bz2", ".mm", ".mm.gz")):
        return _load_mtx(path, _open_maybe_compressed(path), max_bytes)
    raise MatrixFormatError(path, "unknown file type (expected .mtx, .mtx.gz, .mtx.bz2, "
                                  "SuiteSparse .tar.gz or SciPy .npz)")


def header_entries(path):
    """Entries promised by the size line of a Matrix Market file, read without
    the body (cheap), or None for other file types or an unreadable header."""
    path = Path(path)
    if not path.name.lower().endswith((".mtx", ".mtx.gz", ".mtx.bz2", ".mm", ".mm.gz")):
        return None
    try:
        with _open_maybe_compressed(path)() as f:
            return _read_header(f, str(path)).entries
    except (MatrixFormatError, EOFError, zlib.error, OSError):
        return None


def _open_maybe_compressed(path):
    name = path.name.lower()
    if name.endswith(".gz"):
        return lambda: gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return lambda: bz2.open(path, "rb")
    return lambda: open(path, "rb")


def _load_mtx(path, opener, max_bytes, label=None):
    label = label or str(path)
    try:
        with opener() as f:
            header = _read_header(f, label)
            _check_memory(header, label, max_bytes)
            with opener() as body:
                A = _read_body(body, header, label)
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise MatrixFormatError(label, f"truncated or corrupt compressed data ({exc})") from None
    A.info = MatrixInfo(label, "real" if header.field == "double" else header.field,
                        header.symmetry, header.entries)
    return A


def _read_header(f, label):
    """Parse banner, comments and size line; the stream is left after the size line."""
    first = f.readline()
    text = _decode(first, label, 1).strip()
    if not text.startswith("%%"):
        hint = _guess_headerless(text)
        raise MatrixFormatError(label, "missing '%%MatrixMarket matrix <format> <field> "
                                       f"<symmetry>' banner{hint}", 1)
    tokens = text.split()
    if tokens[0].lower() != "%%matrixmarket":
        raise MatrixFormatError(label, f"banner must start with %%MatrixMarket, found {tokens[0]!r}", 1)
    if len(tokens) != 5:
        raise MatrixFormatError(label, f"banner needs 4 words after %%MatrixMarket "
                                       f"(object format field symmetry), found {len(tokens) - 1}", 1)
    obj, fmt, field, sym = (t.lower() for t in tokens[1:])
    for word, allowed, what in ((obj, _OBJECTS, "object"), (fmt, _FORMATS, "format"),
                                (field, _FIELDS, "field"), (sym, _SYMMETRIES, "symmetry")):
        if word not in allowed:
            raise MatrixFormatError(label, f"unknown {what} {word!r} in banner "
                                           f"(expected one of {', '.join(sorted(allowed))})", 1)
    if sym == "hermitian" and field != "complex":
        raise MatrixFormatError(label, "hermitian storage needs complex values, "
                                       f"but the field is {field!r}", 1)
    if field == "pattern" and fmt == "array":
        raise MatrixFormatError(label, "pattern field is not allowed with array format", 1)
    lineno = 1
    while True:
        raw = f.readline()
        lineno += 1
        if not raw:
            raise MatrixFormatError(label, "file ends before the size line", lineno)
        line = _decode(raw, label, lineno).strip()
        if line and not line.startswith("%"):
            break
    parts = line.split()
    want = 3 if fmt == "coordinate" else 2
    what = "rows cols entries" if want == 3 else "rows cols"
    if len(parts) != want or not all(re.fullmatch(r"\d+", p) for p in parts):
        raise MatrixFormatError(label, f"size line must be '{what}' as non-negative "
                                       f"integers, found {line[:60]!r}", lineno)
    rows, cols = int(parts[0]), int(parts[1])
    entries = int(parts[2]) if want == 3 else rows * cols
    if sym != "general" and rows != cols:
        raise MatrixFormatError(label, f"{sym} matrix must be square, size line says "
                                       f"{rows} x {cols}", lineno)
    if want == 3 and entries > rows * cols:
        raise MatrixFormatError(label, f"size line promises {entries} entries, more than "
                                       f"{rows} x {cols} positions", lineno)
    return _Header(fmt, field, sym, rows, cols, entries, lineno)


def _decode(raw, label, lineno):
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MatrixFormatError(label, "not a text file (undecodable bytes)", lineno) from None


def _guess_headerless(text):
    parts = text.split()
    if parts and all(re.fullmatch(r"[-+0-9.eE]+", p) for p in parts):
        return ("; the file starts with numbers: it looks like a bare edge or triplet "
                "list, which has no size line, so its dimensions are unknown")
    return ""


def available_memory():
    """Bytes of memory available now (Linux MemAvailable; else total physical)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_memory(h, label, max_bytes):
    stored = h.entries * (2 if h.symmetry != "general" else 1)
    need = stored * _BYTES_PER_ENTRY + 16 * (h.rows + 1)
    limit = available_memory() if max_bytes is None else max_bytes
    if need > limit:
        raise MatrixTooLargeError(
            f"{label}: {h.rows} x {h.cols} with {h.entries} entries needs about "
            f"{need / 2**30:.1f} GiB to load, but only {limit / 2**30:.1f} GiB is available")


def _read_body(stream, h, label):
    import fast_matrix_market as fmm
    try:
        dtype = field_dtype(h.field)
        if h.format == "array":
            D = fmm.mmread(stream)
            return sp.csr_array(np.asarray(D, dtype=dtype))
        if h.symmetry == "hermitian":            # expanded here, with the conjugate
            (data, (i, j)), shape = fmm.read_coo(stream, generalize_symmetry=False)
            i, j, data = hermitian_expand(np.asarray(i), np.asarray(j), np.asarray(data))
        else:
            (data, (i, j)), shape = fmm.read_coo(stream)
    except ValueError as exc:
        raise _body_error(exc, h, label) from None
    if h.field == "pattern":
        data = np.ones(len(i), dtype=np.float64)
    A = sp.coo_array((np.asarray(data, dtype=dtype), (i, j)), shape=shape).tocsr()
    A.sum_duplicates()
    return A


def _body_error(exc, h, label):
    msg = str(exc)
    m = re.match(r"Line (\d+): (.*)", msg)
    line, problem = (int(m.group(1)), m.group(2)) if m else (None, msg)
    if "out of bounds" in problem and line is not None:
        problem = problem[0].lower() + problem[1:]
        problem += f" (the matrix is {h.rows} x {h.cols}, indices are 1-based)"
        if line == h.size_line + 1 or "index" in problem:
            problem += _zero_based_hint(label)
    elif problem.startswith("Truncated file"):
        problem = (f"file ends early: the size line (line {h.size_line}) promises "
                   f"{h.entries} entries; {problem}")
    elif "too long" in problem:
        problem = f"more entry lines than the {h.entries} the size line (line {h.size_line}) promises"
    elif "Invalid" in problem:
        problem += f" (field is {h.field!r})"
    return MatrixFormatError(label, problem[0].lower() + problem[1:], line)


def _zero_based_hint(label):
    return ("; an index 0 suggests the file is 0-based, which Matrix Market does not allow"
            if _has_zero_index(label) else "")


def _has_zero_index(label):
    try:
        opener = _open_maybe_compressed(Path(label))
        with opener() as f:
            for n, raw in enumerate(f):
                if n > 10_000:
                    break
                if raw.startswith(b"%"):
                    continue
                parts = raw.split()
                if len(parts) >= 2 and b"0" in (parts[0], parts[1]):
                    return True
    except OSError:
        pass
    return False


def _load_suitesparse_tar(path, max_bytes):
    """``Name.tar.gz`` from the SuiteSparse collection: read ``Name/Name.mtx``."""
    stem = path.name[:-len(".tar.gz")] if path.name.lower().endswith(".tar.gz") else path.stem
    try:
        with tarfile.open(path, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".mtx")]
            wanted = [m for m in members if m.name in (f"{stem}/{stem}.mtx", f"{stem}.mtx")]
            if not wanted:
                names = ", ".join(m.name for m in members[:5]) or "no .mtx file"
                raise MatrixFormatError(path, f"SuiteSparse archive should hold {stem}/{stem}.mtx; "
                                              f"found {names}")
            member = wanted[0]
            payload = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise MatrixFormatError(path, f"truncated or corrupt archive ({exc})") from None
    return _load_mtx(path, lambda: io.BytesIO(payload), max_bytes,
                     label=f"{path}[{member.name}]")


def _load_npz(path):
    try:
        A = sp.load_npz(path)
    except (ValueError, OSError, KeyError, zlib.error) as exc:
        raise MatrixFormatError(path, f"not a SciPy sparse .npz file ({exc})") from None
    from .validate import canonical_dtype
    try:
        dtype = canonical_dtype(A.dtype)
    except TypeError as exc:
        raise MatrixFormatError(path, str(exc)) from None
    A = sp.csr_array(A, dtype=dtype)
    A.sum_duplicates()
    A.info = MatrixInfo(str(path), "complex" if dtype.kind == "c" else "real", "general",
                        int(A.nnz))
    return A
