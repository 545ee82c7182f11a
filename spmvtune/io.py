"""Matrix readers: Matrix Market (.mtx, .mtx.gz, .mtx.bz2), SuiteSparse archives
(Name.tar.gz holding Name/Name.mtx), SciPy .npz, and dense weights as NumPy
.npy (a network layer's weight matrix, sparsified on load: :func:`load_npy`).

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


@dataclass(frozen=True)
class MatrixInfo:
    """What the file said about the matrix (attached to loaded matrices as ``A.info``)."""
    source: str
    field: str            # real | integer | pattern
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


def load(path, *, max_bytes=None, threshold=None):
    """Read a matrix file into canonical CSR.

    Returns a ``scipy.sparse.csr_array`` (float64, sorted indices, duplicates
    summed) whose attribute ``info`` is a :class:`MatrixInfo`.  Pattern
    matrices get 1.0 values; symmetric and skew-symmetric storage is expanded.
    max_bytes: refuse files whose size line needs more memory than this
    (default: the memory available now).
    threshold: drop the entries with |a| <= threshold (pruning on load); for
    dense ``.npy`` weights None drops the exact zeros, for the sparse formats
    None keeps every stored entry.
    Raises :class:`MatrixFormatError`, :class:`MatrixTooLargeError`,
    FileNotFoundError.
    """
    if threshold is not None:
        threshold = _check_threshold(threshold)
    A = _load(Path(path), max_bytes, threshold)
    if threshold is not None and not Path(path).name.lower().endswith(".npy"):
        info = A.info
        A.data[np.abs(A.data) <= threshold] = 0.0
        A.eliminate_zeros()
        A.info = info
    return A


def _check_threshold(threshold):
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number, got {threshold!r}") from None
    if not (t >= 0 and np.isfinite(t)):
        raise ValueError(f"threshold must be finite and >= 0, got {threshold!r}")
    return t


def _load(path, max_bytes, threshold):
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise MatrixFormatError(path, "is a directory, not a matrix file")
    name = path.name.lower()
    if name.endswith(".npy"):
        return load_npy(path, threshold=threshold, max_bytes=max_bytes)
    if name.endswith(".npz"):
        return _load_npz(path)
    if name.endswith((".tar.gz", ".tgz")):
        return _load_suitesparse_tar(path, max_bytes)
    if name.endswith((".mtx", ".mtx.gz", ".mtx.bz2", ".mm", ".mm.gz")):
        return _load_mtx(path, _open_maybe_compressed(path), max_bytes)
    raise MatrixFormatError(path, "unknown file type (expected .mtx, .mtx.gz, .mtx.bz2, "
                                  "SuiteSparse .tar.gz, SciPy .npz or dense .npy weights)")


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
    if field == "complex":
        raise MatrixFormatError(label, "complex matrices are not supported "
                                       "(spmvtune kernels are real float64)", 1)
    if sym == "hermitian":
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
        if h.format == "array":
            D = fmm.mmread(stream)
            return sp.csr_array(np.asarray(D, dtype=np.float64))
        (data, (i, j)), shape = fmm.read_coo(stream)
    except ValueError as exc:
        raise _body_error(exc, h, label) from None
    if h.field == "pattern":
        data = np.ones(len(i), dtype=np.float64)
    A = sp.coo_array((np.asarray(data, dtype=np.float64), (i, j)), shape=shape).tocsr()
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
    if np.issubdtype(A.dtype, np.complexfloating):
        raise MatrixFormatError(path, "complex matrices are not supported "
                                      "(spmvtune kernels are real float64)")
    A = sp.csr_array(A, dtype=np.float64)
    A.sum_duplicates()
    A.info = MatrixInfo(str(path), "real", "general", int(A.nnz))
    return A


#: Entries of a dense .npy array scanned at once (bounds the memory of the pass).
_NPY_CHUNK = 1 << 22


def load_npy(path, *, threshold=None, max_bytes=None):
    """Dense weights in a NumPy ``.npy`` file as canonical CSR: a 2-D real
    array (float, integer or bool), entries with |w| <= ``threshold`` dropped
    (None: the exact zeros).

    The file is memory-mapped (``allow_pickle=False``: object arrays are
    refused, nothing in the file is executed) and read in row chunks twice:
    once to count what is kept, so the memory of the result is checked
    against ``max_bytes`` (default: the memory available now) before it is
    built, once to build it.  NaN or infinite weights are refused with their
    position.  Raises :class:`MatrixFormatError` naming the file and the
    problem, :class:`MatrixTooLargeError`.
    """
    path = Path(path)
    threshold = 0.0 if threshold is None else _check_threshold(threshold)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise MatrixFormatError(path, f"cannot read: {exc}") from None
    if magic != b"\x93NUMPY":
        raise MatrixFormatError(path, "not a NumPy .npy file (its first bytes are not the "
                                      "\\x93NUMPY magic)")
    try:
        W = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        msg = str(exc)
        if "allow_pickle" in msg or "Python objects" in msg or "Object arrays" in msg:
            msg = "it holds Python objects (a pickled array), which spmvtune does not load"
        elif "mmap length" in msg or "larger than" in msg:
            msg = "file ends early: the header promises more data than the file holds"
        raise MatrixFormatError(path, f"not a readable .npy array: {msg}") from None
    except (OSError, EOFError) as exc:
        raise MatrixFormatError(path, f"not a readable .npy array: {exc}") from None
    if W.ndim != 2:
        raise MatrixFormatError(path, f"expected a 2-D weight matrix, got shape {W.shape}")
    kind = W.dtype.kind
    if kind == "c":
        raise MatrixFormatError(path, "complex weights are not supported "
                                      "(spmvtune kernels are real float64)")
    if kind not in "biuf":
        raise MatrixFormatError(path, f"expected real numbers, got dtype {W.dtype}")
    m, n = W.shape
    step = max(1, _NPY_CHUNK // max(n, 1))

    def kept(r0):
        block = np.asarray(W[r0:r0 + step], dtype=np.float64)
        bad = ~np.isfinite(block)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise MatrixFormatError(path, f"non-finite weight {float(block[i, j])} at row "
                                          f"{r0 + i}, column {j} (0-based)")
        return block, np.abs(block) > threshold
    nnz = sum(int(np.count_nonzero(kept(r0)[1])) for r0 in range(0, m, step))
    need = nnz * 16 + 8 * (m + 1)
    limit = available_memory() if max_bytes is None else max_bytes
    if need > limit:
        raise MatrixTooLargeError(f"{path}: {m} x {n} weights keep {nnz} entries above the "
                                  f"threshold, about {need / 2**20:.1f} MiB, but only "
                                  f"{limit / 2**20:.1f} MiB is available")
    idx_t = np.int32 if max(n, nnz) < 2**31 else np.int64
    indptr = np.zeros(m + 1, dtype=idx_t)
    indices = np.empty(nnz, dtype=idx_t)
    data = np.empty(nnz)
    at = 0
    for r0 in range(0, m, step):
        block, keep = kept(r0)
        r, c = np.nonzero(keep)
        indices[at:at + len(c)] = c
        data[at:at + len(c)] = block[r, c]
        counts = np.bincount(r, minlength=block.shape[0])
        indptr[r0 + 1:r0 + 1 + block.shape[0]] = at + np.cumsum(counts)
        at += len(c)
    A = sp.csr_array((data, indices, indptr), shape=(m, n))
    A.info = MatrixInfo(str(path), "real", "general", int(m * n))
    return A
