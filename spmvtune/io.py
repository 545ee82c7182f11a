"""Matrix readers: Matrix Market (.mtx, .mtx.gz, .mtx.bz2), SuiteSparse archives
(Name.tar.gz holding Name/Name.mtx), SciPy .npz, and dense weights as NumPy
.npy (a network layer's weight matrix, sparsified on load: :func:`load_npy`).

Files come from strangers, so nothing is trusted:

* only regular files are opened (a FIFO would hang, ``/dev/zero`` never ends);
* compressed data is decompressed once, as a stream, in bounded chunks;
  header lines are bounded (:data:`MAX_HEADER_LINE`, :data:`MAX_HEADER_LINES`),
  entry lines too (:data:`MAX_ENTRY_LINE`), comment and blank lines in all
  (:data:`MAX_HEADER_BYTES` before the size line and again among the
  entries), and the size line is checked against the memory available
  before anything large is allocated;
* the Matrix Market body is checked byte by byte by a strict tokenizer
  (:mod:`spmvtune.mtx_scan`, Numba) that also parses the indices; only the
  value tokens it accepted are converted to float64 (complex128 for the
  complex field) by ``fast_matrix_market``;
* ``.npz`` members are read without pickle, their sizes checked from the
  array headers first, and every index array is checked before SciPy sees it.

Every problem is one :class:`MatrixLoadError` (subclasses
:class:`MatrixFormatError`, :class:`MatrixTooLargeError`,
:class:`MatrixFileError`) whose message is ``path[:line]: problem``.
"""
import bz2
import contextlib
import gzip
import io
import os
import re
import stat
import sys
import tarfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

_OBJECTS = {"matrix"}
_FORMATS = {"coordinate", "array"}
_FIELDS = {"real", "double", "integer", "pattern", "complex"}
_SYMMETRIES = {"general", "symmetric", "skew-symmetric", "hermitian"}
MTX_SUFFIXES = (".mtx", ".mtx.gz", ".mtx.bz2", ".mm", ".mm.gz")
#: bytes needed per stored entry while reading (indices, the value text,
#: float64 values, COO -> CSR), with some slack; complex values need more.
_BYTES_PER_ENTRY = 64
_BYTES_PER_COMPLEX_ENTRY = 96
#: Longest header line (banner, comment, size line) accepted.
MAX_HEADER_LINE = 1 << 20
#: Most header bytes (all comment lines together) accepted; the comment and
#: blank lines among the entries get the same budget.
MAX_HEADER_BYTES = 64 << 20
#: Most lines before the size line (blank lines cost a Python call each).
MAX_HEADER_LINES = 1 << 20
#: Longest entry line accepted ('row col value' needs well under 100 bytes).
MAX_ENTRY_LINE = 4096
#: Bytes decompressed and scanned at a time.
_CHUNK = 4 << 20
#: Largest dimension accepted (indices are int64).
_MAX_DIM = 1 << 62
_UTF8_BOM = b"\xef\xbb\xbf"


class MatrixLoadError(Exception):
    """A matrix file that cannot be loaded: ``path:line: problem``.

    Attributes: ``path``, ``problem``, ``line`` (None when the problem has no line).
    """

    def __init__(self, path, problem, line=None):
        self.path, self.problem, self.line = str(path), problem, line
        where = f"{self.path}:{line}" if line is not None else self.path
        self.message = f"{where}: {problem}"
        super().__init__(self.message)

    def __str__(self):
        return self.message

    def __reduce__(self):
        return type(self), (self.path, self.problem, self.line)


class MatrixFormatError(MatrixLoadError, ValueError):
    """The file's content is not a matrix this reader accepts."""


class MatrixTooLargeError(MatrixLoadError, MemoryError):
    """The size line (or the arrays) need more than this machine's available memory."""


class MatrixFileError(MatrixLoadError, OSError):
    """The file cannot be opened or read (permissions, I/O)."""


class MatrixNotFoundError(MatrixFileError, FileNotFoundError):
    """No such file."""


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
    entries: int          # value lines the body must hold
    size_line: int


def load(path, *, max_bytes=None, threshold=None):
    """Read a matrix file into canonical CSR.

    Returns a ``scipy.sparse.csr_array`` (sorted indices, duplicates summed)
    whose attribute ``info`` is a :class:`MatrixInfo`: float64 for real,
    integer and pattern fields (pattern matrices get 1.0 values), complex128
    for complex ones; SciPy ``.npz`` files keep float32, float64, complex64
    and complex128 values (integers become float64).  Symmetric,
    skew-symmetric and hermitian storage is expanded (hermitian with the
    conjugate); the declared symmetry is kept in ``A.info.symmetry``.
    max_bytes: refuse files whose size line needs more memory than this
    (default: the memory available now).
    threshold: drop the entries with |a| <= threshold (pruning on load); for
    dense ``.npy`` weights None drops the exact zeros, for the sparse formats
    None keeps every stored entry.
    Raises :class:`MatrixLoadError` (one of :class:`MatrixFormatError`,
    :class:`MatrixTooLargeError`, :class:`MatrixFileError`,
    :class:`MatrixNotFoundError`, the latter also a FileNotFoundError).
    """
    path = Path(path)
    if threshold is not None:
        threshold = _check_threshold(threshold)
    try:
        A = _load(path, max_bytes, threshold)
    except MatrixLoadError:
        raise
    except MemoryError:
        raise MatrixTooLargeError(path, "ran out of memory while reading") from None
    except Exception as exc:      # noqa: BLE001 - whatever a hostile file provokes names it
        raise MatrixFormatError(path, f"cannot be read ({type(exc).__name__}: {exc})") from exc
    if threshold is not None and not path.name.lower().endswith(".npy"):
        info = A.info
        A.data[np.abs(A.data) <= threshold] = 0
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


def _load(path, max_bytes, threshold=None):
    name = path.name.lower()
    if name.endswith(".npy"):
        return load_npy(path, threshold=threshold, max_bytes=max_bytes)
    if name.endswith(".npz"):
        return _load_npz(path, max_bytes)
    if name.endswith((".tar.gz", ".tgz")):
        return _load_suitesparse_tar(path, max_bytes)
    if name.endswith(MTX_SUFFIXES):
        return _load_mtx(_mtx_opener(path), str(path), max_bytes)
    _open_file(path).close()              # missing, directory, device: say that first
    raise MatrixFormatError(path, "unknown file type (expected .mtx, .mtx.gz, .mtx.bz2, "
                                  "SuiteSparse .tar.gz, SciPy .npz or dense .npy weights)")


def header_entries(path):
    """Entries promised by the size line of a Matrix Market file, read without
    the body (cheap), or None for other file types or an unreadable header."""
    path = Path(path)
    if not path.name.lower().endswith(MTX_SUFFIXES):
        return None
    try:
        with _mtx_opener(path)() as f:
            return _read_header(f, str(path)).entries
    except Exception:             # noqa: BLE001 - unreadable: load() will say why
        return None


# ---- opening ------------------------------------------------------------------

def _open_file(path):
    """A buffered binary file of ``path``, refused unless it is a regular file
    (opened non-blocking, so that a FIFO cannot hang the open)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise MatrixNotFoundError(path, "no such file") from None
    except IsADirectoryError:
        raise MatrixFormatError(path, "is a directory, not a matrix file") from None
    except OSError as exc:
        raise MatrixFileError(path, f"cannot open: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise MatrixFormatError(path, "is a directory, not a matrix file")
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
                else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file")
        raise MatrixFormatError(path, f"is {kind}, not a regular file (only regular files are "
                                      "read: a device or a pipe may never end)")
    return os.fdopen(fd, "rb")


def _mtx_opener(path):
    """A context-manager factory giving the decompressed text of ``path``."""
    name = path.name.lower()

    @contextlib.contextmanager
    def opener():
        with _open_file(path) as raw:
            if name.endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                    yield f
            elif name.endswith(".bz2"):
                with bz2.BZ2File(raw, mode="rb") as f:
                    yield f
            else:
                yield raw
    return opener


_CORRUPT = (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError, OSError)


def _load_mtx(opener, label, max_bytes, member=None):
    """Header, memory check and body from one pass over ``opener()``'s stream.
    label: the file; member: for archives, a callable naming the member read
    once the stream is open (errors then say ``archive[member]``)."""
    what = "archive" if member else "compressed data"
    try:
        with opener() as f:
            label = f"{label}[{member()}]" if member else label
            header = _read_header(f, label)
            _check_memory(header, label, max_bytes)
            try:
                A = _read_body(f, header, label, opener)
            except MemoryError:
                raise MatrixTooLargeError(
                    label, f"ran out of memory reading {header.rows} x {header.cols} with "
                           f"{header.entries} entries") from None
    except MatrixLoadError:
        raise
    except _CORRUPT as exc:
        raise MatrixFormatError(label, f"truncated or corrupt {what} ({exc})") from None
    A.info = MatrixInfo(label, "real" if header.field == "double" else header.field,
                        header.symmetry, header.entries)
    return A


# ---- the header -----------------------------------------------------------------

def _read_header(f, label):
    """Parse banner, comments and size line; the stream is left after the size line."""
    total = 0

    def line_of(lineno):
        nonlocal total
        raw = f.readline(MAX_HEADER_LINE + 1)
        total += len(raw)
        if len(raw) > MAX_HEADER_LINE:
            raise MatrixFormatError(label, f"line longer than {MAX_HEADER_LINE >> 20} MiB before "
                                           "the size line (Matrix Market header lines are short)",
                                    lineno)
        if total > MAX_HEADER_BYTES:
            raise MatrixFormatError(label, f"more than {MAX_HEADER_BYTES >> 20} MiB of comments "
                                           "before the size line", lineno)
        if lineno > MAX_HEADER_LINES:
            raise MatrixFormatError(label, f"more than {MAX_HEADER_LINES} comment or blank lines "
                                           "before the size line", lineno)
        return raw

    first = line_of(1)
    if first.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise MatrixFormatError(label, "not a text file this reader accepts: it is UTF-16 "
                                       "(save it as ASCII or UTF-8)", 1)
    if first.startswith(_UTF8_BOM):
        first = first[len(_UTF8_BOM):]
    text = _decode(first, label, 1).strip()
    if "\r" in text:
        raise MatrixFormatError(label, "lines end with a bare CR (classic Mac OS line ends); "
                                       "convert them to LF", 1)
    if not text.startswith("%%"):
        hint = _guess_headerless(text)
        raise MatrixFormatError(label, "missing '%%MatrixMarket matrix <format> <field> "
                                       f"<symmetry>' banner{hint}", 1)
    tokens = text.split()
    if tokens[0].lower() != "%%matrixmarket":
        raise MatrixFormatError(label, f"banner must start with %%MatrixMarket, found "
                                       f"{_show(tokens[0])}", 1)
    if len(tokens) != 5:
        raise MatrixFormatError(label, f"banner needs 4 words after %%MatrixMarket "
                                       f"(object format field symmetry), found {len(tokens) - 1}", 1)
    obj, fmt, field, sym = (t.lower() for t in tokens[1:])
    for word, allowed, what in ((obj, _OBJECTS, "object"), (fmt, _FORMATS, "format"),
                                (field, _FIELDS, "field"), (sym, _SYMMETRIES, "symmetry")):
        if word not in allowed:
            raise MatrixFormatError(label, f"unknown {what} {_show(word)} in banner "
                                           f"(expected one of {', '.join(sorted(allowed))})", 1)
    if sym == "hermitian" and field != "complex":
        raise MatrixFormatError(label, "hermitian storage needs complex values, "
                                       f"but the field is {field!r}", 1)
    if field == "pattern" and fmt == "array":
        raise MatrixFormatError(label, "pattern field is not allowed with array format", 1)
    lineno = 1
    while True:
        lineno += 1
        raw = line_of(lineno)
        if not raw:
            raise MatrixFormatError(label, "file ends before the size line", lineno)
        if raw.lstrip().startswith(b"%"):
            continue                  # a comment is free text, in any encoding
        line = _decode(raw, label, lineno).strip()
        if line:
            break
    parts = line.split()
    want = 3 if fmt == "coordinate" else 2
    what = "rows cols entries" if want == 3 else "rows cols"
    if len(parts) != want or not all(re.fullmatch(r"[0-9]{1,30}", p) for p in parts):
        raise MatrixFormatError(label, f"size line must be '{what}' as non-negative "
                                       f"integers, found {_show(line)}", lineno)
    rows, cols = int(parts[0]), int(parts[1])
    if max(rows, cols) >= _MAX_DIM:
        raise MatrixFormatError(label, f"size line says {rows} x {cols}: dimensions of 2^62 "
                                       "and more are not supported", lineno)
    if sym != "general" and rows != cols:
        raise MatrixFormatError(label, f"{sym} matrix must be square, size line says "
                                       f"{rows} x {cols}", lineno)
    if want == 3:
        entries = int(parts[2])
        if entries > rows * cols:
            raise MatrixFormatError(label, f"size line promises {entries} entries, more than "
                                           f"{rows} x {cols} positions", lineno)
    else:
        entries = {"general": rows * cols, "symmetric": rows * (rows + 1) // 2,
                   "hermitian": rows * (rows + 1) // 2,
                   "skew-symmetric": rows * (rows - 1) // 2}[sym]
    return _Header(fmt, field, sym, rows, cols, entries, lineno)


def _decode(raw, label, lineno):
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MatrixFormatError(label, "not a text file (undecodable bytes)", lineno) from None


def _show(text, limit=40):
    """A token quoted for a message: control and non-ASCII bytes escaped, long ones cut."""
    if isinstance(text, str):
        text = text.encode("utf-8", "backslashreplace")
    cut = len(text) > limit
    shown = repr(bytes(text[:limit]))[1:]
    return shown[:-1] + "...'" if cut else shown


def _guess_headerless(text):
    parts = text.split()
    if parts and all(re.fullmatch(r"[-+0-9.eE]+", p) for p in parts):
        return ("; the file starts with numbers: if that line is the size line, add the banner "
                "above it; if it is a bare edge or triplet list (no size line), its dimensions "
                "are unknown")
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
    """The size line against the memory available: the reading, the CSR
    matrix and the vectors x and y of a product with it (a matrix with few
    entries but 2^60 columns must not load, only to exhaust memory in its
    first product)."""
    stored = h.rows * h.cols if h.format == "array" else h.entries
    stored *= 2 if h.symmetry != "general" else 1
    per = _BYTES_PER_COMPLEX_ENTRY if h.field == "complex" else _BYTES_PER_ENTRY
    vectors = (16 if h.field == "complex" else 8) * (h.rows + h.cols)
    _refuse_over(stored * per + 16 * (h.rows + 1) + vectors, label,
                 f"{h.rows} x {h.cols} with {h.entries} entries", max_bytes)


def _refuse_over(need, label, what, max_bytes):
    limit = available_memory() if max_bytes is None else max_bytes
    if need > limit:
        raise MatrixTooLargeError(
            label, f"{what} needs about {need / 2**30:.1f} GiB to load and multiply (x and y "
                   f"included), but only {limit / 2**30:.1f} GiB is available")


# ---- the body -----------------------------------------------------------------

#: (format, field) -> (indices per line, value kind of mtx_scan, the line's layout).
_FIELD_LINE = {("coordinate", "pattern"): (2, 0, "row col"),
               ("coordinate", "real"): (2, 1, "row col value"),
               ("coordinate", "double"): (2, 1, "row col value"),
               ("coordinate", "integer"): (2, 2, "row col value"),
               ("coordinate", "complex"): (2, 3, "row col real imaginary"),
               ("array", "real"): (0, 1, "value"),
               ("array", "double"): (0, 1, "value"),
               ("array", "integer"): (0, 2, "value"),
               ("array", "complex"): (0, 3, "real imaginary")}
#: The value kind of mtx_scan for complex values (two real tokens).
_COMPLEX = 3


def _read_body(f, h, label, opener):
    """Scan the entry lines chunk by chunk (:func:`mtx_scan.scan_body`) through
    one reused buffer, then convert the accepted value tokens (collected in
    one growing buffer, after the header fast_matrix_market needs) and build
    the CSR matrix."""
    from .mtx_scan import OK, scan_body
    n_index, value_kind, _ = _FIELD_LINE[(h.format, h.field)]
    coordinate = h.format == "coordinate"
    kind, dtype = (("complex", np.complex128) if value_kind == _COMPLEX
                   else ("real", np.float64))
    itype = np.int32 if max(h.rows, h.cols) < 2**31 else np.int64
    n = h.entries
    rows = np.empty(n if coordinate else 0, dtype=itype)
    cols = np.empty(n if coordinate else 0, dtype=itype)
    if value_kind:
        head = (f"%%MatrixMarket matrix array {kind} general\n{n} 1\n" if coordinate else
                f"%%MatrixMarket matrix array {kind} {h.symmetry}\n{h.rows} {h.cols}\n").encode()
        per = 48 if value_kind == _COMPLEX else 24
        out = np.empty(len(head) + min(per * n, 1 << 30) + _CHUNK + MAX_ENTRY_LINE + 2, np.uint8)
        out[:len(head)] = np.frombuffer(head, dtype=np.uint8)
        o = len(head)
    else:
        out, o = np.empty(0, np.uint8), 0
    raw = bytearray(_CHUNK + MAX_ENTRY_LINE + 1)
    view, buf = memoryview(raw), np.frombuffer(raw, dtype=np.uint8)
    k, have = 0, 0                    # entries read, bytes carried over (a partial line)
    skipped = 0                       # bytes of comment and blank lines
    line = h.size_line + 1            # the line number of the chunk's first line
    while True:
        got = f.readinto(view[have:have + _CHUNK])
        total = have + got
        if got:
            cut = raw.rfind(b"\n", have, total) + 1 or raw.rfind(b"\n", 0, have) + 1
        else:
            cut = total
        if value_kind and o + cut + 1 > out.shape[0]:
            out = np.concatenate([out[:o], np.empty(max(out.shape[0], cut + 1), np.uint8)])
        status, k, o, lines, s, e, v, blank = scan_body(
            buf[:cut], n_index, value_kind, h.rows, h.cols, rows, cols, k, n, out, o,
            MAX_ENTRY_LINE)
        if status != OK:
            raise _scan_error(status, bytes(raw[:cut]), s, e, h, label, line + lines)
        line += lines
        skipped += blank
        if skipped > MAX_HEADER_BYTES:      # a compressed run of blank lines: time, not data
            raise MatrixFormatError(label, f"more than {MAX_HEADER_BYTES >> 20} MiB of comment "
                                           "and blank lines among the entries", line - 1)
        if not got:
            break
        have = total - cut
        if have > MAX_ENTRY_LINE:
            raise MatrixFormatError(label, _too_long(), line)
        raw[:have] = raw[cut:total]
    del view, buf
    if k < n:
        raise MatrixFormatError(label, f"file ends early: the size line (line {h.size_line}) "
                                       f"promises {n} entries, found {k}", line - 1)
    if not value_kind:
        values = None
    elif k == 0:                      # fast_matrix_market dies of SIGFPE on a 0-row array
        values = np.zeros((0, 1) if coordinate else (h.rows, h.cols), dtype=dtype)
    else:
        values = _convert_values(out[:o], label, dtype)
    del out
    if not coordinate:
        return sp.csr_array(values)
    data = values.ravel() if value_kind else np.ones(k, dtype=np.float64)
    if h.symmetry in ("symmetric", "skew-symmetric", "hermitian"):
        rows, cols, data = _expand_symmetric(rows, cols, data, h, label, opener)
    A = sp.coo_array((data, (rows, cols)), shape=(h.rows, h.cols)).tocsr()
    A.sum_duplicates()
    return A


def _too_long():
    return (f"line longer than {MAX_ENTRY_LINE} bytes (an entry line is 'row col value' "
            "and needs well under 100)")


def _convert_values(text, label, dtype=np.float64):
    """Values of ``text`` (a Matrix Market array header, then the accepted
    tokens, one entry per line) by fast_matrix_market, as ``dtype``
    (float64, or complex128 for the complex field)."""
    import fast_matrix_market as fmm
    try:
        return np.asarray(fmm.read_array(io.BytesIO(text)), dtype=dtype)
    except ValueError as exc:        # the tokenizer accepted what the converter refuses
        raise MatrixFormatError(label, f"values could not be converted ({exc})") from None


def _scan_error(status, data, s, e, h, label, line):
    from . import mtx_scan as ms
    n_index, value_kind, layout = _FIELD_LINE[(h.format, h.field)]
    tok = _show(data[s:e])
    line_start = data.rfind(b"\n", 0, s) + 1
    line_end = data.find(b"\n", s)
    words = len(data[line_start:line_end if line_end >= 0 else len(data)].split())
    shape = f"the matrix is {h.rows} x {h.cols}, indices are 1-based"
    if status == ms.LINE_TOO_LONG:
        problem = _too_long()
    elif status in (ms.BAD_ROW, ms.BAD_COL):
        which = "row" if status == ms.BAD_ROW else "column"
        problem = f"{which} index {tok} is not a positive integer"
    elif status in (ms.ROW_RANGE, ms.COL_RANGE):
        which = "row" if status == ms.ROW_RANGE else "column"
        problem = f"{which} index {data[s:e].decode()[:30]} out of bounds ({shape})"
        if int(data[s:e][:30]) == 0:
            problem += "; an index 0 suggests the file is 0-based, which Matrix Market does not allow"
    elif status == ms.BAD_VALUE:
        problem = f"invalid value {tok} (field is {h.field!r}"
        if value_kind == 2 and re.fullmatch(rb"[-+]?[0-9.eEdD+-]+", data[s:e]):
            problem += ": integers only"
        elif b"," in data[s:e]:
            problem += ": a decimal comma? Matrix Market writes 1.5, not 1,5"
        problem += ")"
    elif status == ms.TOO_FEW:
        problem = (f"invalid entry line: {words} field(s), but a {h.format} {h.field} line "
                   f"is '{layout}'")
    elif status == ms.TOO_MANY:
        problem = (f"invalid entry line: {words} fields, but a {h.format} {h.field} line "
                   f"is '{layout}'")
        if h.field == "pattern" and words == 3:
            problem += " (the banner says pattern, but the line carries a value)"
    elif status == ms.TOO_MANY_ENTRIES:
        problem = (f"more entry lines than the {h.entries} the size line (line {h.size_line}) "
                   "promises")
    else:                                          # pragma: no cover - a new status code
        problem = f"unreadable entry line (status {status})"
    return MatrixFormatError(label, problem, line)


def _expand_symmetric(rows, cols, data, h, label, opener):
    """Mirror the off-diagonal entries of symmetric (skew: negated; hermitian:
    conjugated) storage.

    Storage keeps one triangle.  A file that stores every entry of both
    triangles (mirrored pairs with equal values) is read as it is, each entry
    once, with a warning; a file that stores some pairs twice is an error, and
    so is a diagonal the declared symmetry rules out (a nonzero one in
    skew-symmetric storage, a non-real one in hermitian storage).
    """
    from .mtx_scan import mirrored, triangle_counts
    sign = -1.0 if h.symmetry == "skew-symmetric" else 1.0
    hermitian = h.symmetry == "hermitian"
    if h.symmetry != "symmetric":
        on_diagonal = rows == cols
        bad = on_diagonal & ((data.imag != 0) if hermitian else (data != 0))
        if bad.any():
            k = int(np.argmax(bad))
            i = int(rows[k]) + 1
            rule = ("a hermitian matrix has a real diagonal" if hermitian
                    else "a skew-symmetric matrix has a zero diagonal, which is not stored")
            raise MatrixFormatError(label, f"diagonal entry ({i}, {i}) is {data[k]}, but {rule}",
                                    _entry_line(opener, h, k))

    def mirror(v):
        return np.conj(v) if hermitian else sign * v
    n_low, n_up = triangle_counts(rows, cols)
    if n_low and n_up:
        lower, upper = rows > cols, rows < cols
        kl = _pair_keys(rows[lower], cols[lower], h.rows)
        ku = _pair_keys(cols[upper], rows[upper], h.rows)
        common = np.intersect1d(kl, ku)
        if common.size:
            ol, ou = np.argsort(kl, kind="stable"), np.argsort(ku, kind="stable")
            if (n_low == n_up and np.array_equal(kl[ol], ku[ou])
                    and np.array_equal(data[lower][ol], mirror(data[upper][ou]), equal_nan=True)):
                _warn(f"{label}: declares {h.symmetry} storage (one triangle) but stores both "
                      f"triangles ({n_low} mirrored pairs); read each entry once, as a general "
                      "matrix")
                return rows, cols, data
            where = np.flatnonzero(lower)[np.isin(kl, common)]
            first = int(min(where[0], np.flatnonzero(upper)[np.isin(ku, common)][0]))
            i, j = int(rows[first]) + 1, int(cols[first]) + 1
            raise MatrixFormatError(
                label, f"entry ({i}, {j}) and its mirror ({j}, {i}) are both stored, but "
                       f"{h.symmetry} storage keeps one triangle and mirrors it: the sum would "
                       "be doubled (declare the matrix 'general', or keep one triangle)",
                _entry_line(opener, h, first))
    r, c, d = mirrored(rows, cols, data, sign, n_low + n_up)
    if hermitian:                          # the mirror images follow the entries
        np.conjugate(d[len(data):], out=d[len(data):])
    return r, c, d


def _warn(message):
    """A UserWarning attributed to the caller of :func:`load` (the first frame
    outside this module, however deep the reader that warns)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, stacklevel=level)


def _pair_keys(i, j, n):
    """One comparable key per (i, j) pair."""
    i, j = i.astype(np.int64), j.astype(np.int64)
    if n < 2**31:
        return i * n + j
    return np.ascontiguousarray(np.stack([i, j], axis=1)).view(np.dtype((np.void, 16))).ravel()


def _entry_line(opener, h, k):
    """Line number of entry ``k`` (0-based), found by reading the file again
    (only on an error path), or None when it cannot be read again."""
    from .mtx_scan import count_entry_lines
    try:
        with opener() as f:
            for _ in range(h.size_line):
                f.readline(MAX_HEADER_LINE + 1)
            line, seen, carry = h.size_line + 1, 0, b""
            while True:
                chunk = f.read(_CHUNK)
                data = carry + chunk
                cut = data.rfind(b"\n") + 1 if chunk else len(data)
                if cut == 0 and not chunk:
                    return None
                found, entries, lines = count_entry_lines(
                    np.frombuffer(data, dtype=np.uint8, count=cut), k - seen)
                if found:
                    return line + lines
                seen, line, carry = seen + entries, line + lines, data[cut:]
                if not chunk:
                    return None
    except (MatrixLoadError, *_CORRUPT):
        return None


# ---- SuiteSparse archives -----------------------------------------------------

def _load_suitesparse_tar(path, max_bytes):
    """``Name.tar.gz`` from the SuiteSparse collection: read ``Name/Name.mtx``,
    streamed from the archive (never extracted, never read whole)."""
    lower = path.name.lower()
    stem = path.name[:-len(".tar.gz")] if lower.endswith(".tar.gz") else path.name[:-len(".tgz")]
    wanted = (f"{stem}/{stem}.mtx", f"{stem}.mtx")
    found = {}

    @contextlib.contextmanager
    def opener():
        with _open_file(path) as raw, _maybe_gunzip(raw) as data, \
                tarfile.open(fileobj=data, mode="r|") as tar:
            seen = []
            for member in tar:
                if member.isfile() and member.name in wanted:
                    found["name"] = member.name
                    yield tar.extractfile(member)
                    return
                if member.isfile() and member.name.endswith(".mtx") and len(seen) < 5:
                    seen.append(member.name)
            raise MatrixFormatError(path, f"SuiteSparse archive should hold {stem}/{stem}.mtx; "
                                          f"found {', '.join(seen) or 'no .mtx file'}")
    return _load_mtx(opener, str(path), max_bytes, member=lambda: found["name"])


@contextlib.contextmanager
def _maybe_gunzip(raw):
    """``raw`` itself, or its gzip decompression (bounded reads, unlike
    tarfile's own stream decompression, which inflates a whole block at once)."""
    if raw.peek(2)[:2] == b"\x1f\x8b":
        with gzip.GzipFile(fileobj=raw, mode="rb") as f:
            yield f
    else:
        yield raw


# ---- SciPy .npz ---------------------------------------------------------------

#: Members of scipy.sparse.save_npz files, per format.
_NPZ_MEMBERS = {"csr": ("data", "indices", "indptr"), "csc": ("data", "indices", "indptr"),
                "bsr": ("data", "indices", "indptr"), "coo": ("data", "row", "col"),
                "dia": ("data", "offsets")}


def _load_npz(path, max_bytes=None):
    """A ``scipy.sparse.save_npz`` file: member sizes checked from the .npy
    headers before reading, no pickle, every index array checked."""
    from .validate import as_checked_csr, canonical_dtype
    label = str(path)
    with _open_file(path) as f:
        head = f.peek(8)[:8]
        if not head:
            raise MatrixFormatError(label, "an empty file, not a SciPy sparse .npz file")
        if head.startswith(b"\x93NUMPY"):
            raise MatrixFormatError(label, "a NumPy .npy array, not a SciPy sparse .npz file "
                                           "(write one with scipy.sparse.save_npz)")
        try:
            arrays = _read_npz_members(f, label, max_bytes)
        except MatrixLoadError:
            raise
        except MemoryError:
            raise MatrixTooLargeError(label, "ran out of memory reading the arrays") from None
        except (zipfile.BadZipFile, ValueError, EOFError, zlib.error, OSError, KeyError,
                NotImplementedError, RuntimeError) as exc:     # RuntimeError: "encrypted"
            raise MatrixFormatError(label, f"not a SciPy sparse .npz file ({exc})") from None
    fmt = arrays["format"]
    shape = arrays["shape"]
    try:
        fmt = fmt.item()
        fmt = fmt.decode("ascii") if isinstance(fmt, bytes) else str(fmt)
    except (ValueError, UnicodeDecodeError):
        raise MatrixFormatError(label, "not a SciPy sparse .npz file (bad 'format' member)") from None
    if fmt not in _NPZ_MEMBERS:
        raise MatrixFormatError(label, f"unknown sparse format {_show(fmt)} (expected one of "
                                       f"{', '.join(_NPZ_MEMBERS)})")
    missing = [m for m in _NPZ_MEMBERS[fmt] if m not in arrays]
    if fmt == "coo" and missing and "coords" in arrays:
        missing = []
    if missing:
        raise MatrixFormatError(label, f"{fmt} .npz lacks member(s) {', '.join(missing)}")
    if (shape.ndim != 1 or shape.size != 2 or not np.issubdtype(shape.dtype, np.integer)
            or shape.min() < 0 or shape.max() >= _MAX_DIM):
        raise MatrixFormatError(label, f"'shape' must be two non-negative integers, "
                                       f"found {_show(str(shape.tolist()))}")
    shape = (int(shape[0]), int(shape[1]))
    data = arrays["data"]
    _refuse_over(sum(a.nbytes for a in arrays.values()) * 3 + 8 * (shape[0] + 1)
                 + 16 * (shape[0] + shape[1]), label, f"{shape[0]} x {shape[1]}", max_bytes)
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == np.bool_):
        raise MatrixFormatError(label, f"'data' must be numbers, found dtype {data.dtype}")
    try:
        canonical_dtype(data.dtype)
    except TypeError as exc:               # values of a type spmvtune does not run
        raise MatrixFormatError(label, str(exc)) from None
    for name in ("coords",) + _NPZ_MEMBERS[fmt][1:]:
        if name in arrays and not np.issubdtype(arrays[name].dtype, np.integer):
            raise MatrixFormatError(label, f"'{name}' must hold integers, found dtype "
                                           f"{arrays[name].dtype}")
    try:
        A = _npz_matrix(fmt, arrays, shape)
        C = as_checked_csr(A)
    except MemoryError:
        raise MatrixTooLargeError(label, "ran out of memory converting the arrays") from None
    except (ValueError, TypeError, IndexError, OverflowError) as exc:
        raise MatrixFormatError(label, f"inconsistent {fmt} arrays: {exc}") from None
    C.info = MatrixInfo(label, "complex" if C.dtype.kind == "c" else "real", "general",
                        int(C.nnz))
    return C


def _read_npz_members(f, label, max_bytes):
    """{name: array} of an .npz, each member's size checked from its .npy header
    (and against the zip entry) before it is read; object arrays refused."""
    limit = available_memory() if max_bytes is None else max_bytes
    out, total = {}, 0
    with zipfile.ZipFile(f) as z:
        infos = z.infolist()
        if not infos:
            raise MatrixFormatError(label, "not a SciPy sparse .npz file (an empty zip archive)")
        if len(infos) > 16:
            raise MatrixFormatError(label, f"not a SciPy sparse .npz file ({len(infos)} members)")
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            with z.open(info) as m:
                shape, dtype = _npy_header(m, label, name)
                if dtype.hasobject:
                    raise MatrixFormatError(label, f"member {_show(name)} holds Python objects "
                                                   "(refused: loading them could run code)")
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if nbytes > info.file_size:
                    raise MatrixFormatError(label, f"member {_show(name)} is truncated: its header "
                                                   f"promises {nbytes} bytes, the entry holds "
                                                   f"{info.file_size}")
                total += nbytes
                if total * 3 > limit:
                    raise MatrixTooLargeError(label, f"the arrays need about {3 * total / 2**30:.1f} "
                                                     f"GiB to load, but only {limit / 2**30:.1f} "
                                                     "GiB is available")
            with z.open(info) as m:
                out[name] = np.lib.format.read_array(m, allow_pickle=False,
                                                     max_header_size=10_000)
    for required in ("format", "shape", "data"):
        if required not in out:
            raise MatrixFormatError(label, f"not a SciPy sparse .npz file (no {required!r} member; "
                                           f"members: {', '.join(sorted(out)) or 'none'})")
    return out


def _npy_header(m, label, name):
    """(shape, dtype) from the header of an .npy member (format 1.0 or 2.0)."""
    fmt = np.lib.format
    version = fmt.read_magic(m)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(m, max_header_size=10_000)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(m, max_header_size=10_000)
    else:
        raise MatrixFormatError(label, f"member {_show(name)}: .npy format {version} is not "
                                       "supported (1.0 and 2.0 are)")
    return shape, dtype


def _npz_matrix(fmt, a, shape):
    if fmt in ("csr", "csc", "bsr"):
        cls = {"csr": sp.csr_array, "csc": sp.csc_array, "bsr": sp.bsr_array}[fmt]
        return cls((a["data"], a["indices"], a["indptr"]), shape=shape)
    if fmt == "dia":
        # SciPy keeps offsets in 32 bits for a small matrix and wraps larger ones
        # (2**62 became 0: the main diagonal); a diagonal outside the matrix holds nothing
        offsets = a["offsets"]
        inside = (offsets > -shape[0]) & (offsets < shape[1])
        return sp.dia_array((a["data"][inside], offsets[inside]), shape=shape)
    coords = (a["row"], a["col"]) if "row" in a else tuple(a["coords"])
    return sp.coo_array((a["data"], coords), shape=shape)


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
    from .validate import canonical_dtype
    path = Path(path)
    threshold = 0.0 if threshold is None else _check_threshold(threshold)
    with _open_file(path) as fh:               # regular files only, clear errors
        magic = fh.read(6)
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
    if kind not in "biufc":
        raise MatrixFormatError(path, f"expected numbers, got dtype {W.dtype}")
    try:
        value_t = canonical_dtype(W.dtype)      # float32/complex weights keep their type
    except TypeError as exc:
        raise MatrixFormatError(path, str(exc)) from None
    m, n = W.shape
    step = max(1, _NPY_CHUNK // max(n, 1))

    def kept(r0):
        block = np.asarray(W[r0:r0 + step], dtype=value_t)
        bad = ~np.isfinite(block)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise MatrixFormatError(path, f"non-finite weight {float(block[i, j])} at row "
                                          f"{r0 + i}, column {j} (0-based)")
        return block, np.abs(block) > threshold
    nnz = sum(int(np.count_nonzero(kept(r0)[1])) for r0 in range(0, m, step))
    need = nnz * (8 + np.dtype(value_t).itemsize) + 8 * (m + 1)
    limit = available_memory() if max_bytes is None else max_bytes
    if need > limit:
        raise MatrixTooLargeError(path, f"{m} x {n} weights keep {nnz} entries above the "
                                        f"threshold, about {need / 2**20:.1f} MiB, but only "
                                        f"{limit / 2**20:.1f} MiB is available")
    idx_t = np.int32 if max(n, nnz) < 2**31 else np.int64
    indptr = np.zeros(m + 1, dtype=idx_t)
    indices = np.empty(nnz, dtype=idx_t)
    data = np.empty(nnz, dtype=value_t)
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
    A.info = MatrixInfo(str(path), "complex" if np.dtype(value_t).kind == "c" else "real",
                        "general", int(m * n))
    return A
