"""The strict tokenizer of Matrix Market entry lines (Numba, one pass over the bytes).

:func:`scan_body` reads a chunk of whole lines after the size line, checks
every byte against the grammar below, writes the 0-based indices into
caller-allocated arrays and copies each value token, normalised, to an output
buffer (one token per line) that ``fast_matrix_market`` converts to float64:
the C++ parser only ever sees text this pass has accepted, because it
truncates silently on junk (``2,5`` -> 2, ``0x10`` -> 0, ``1.0D+00`` -> 1,
``0.5e`` -> 0.5, ``infinit`` -> inf) and crashes on some bytes (a NUL after
a value).

Grammar of one line (whitespace: space, tab, CR, VT, FF)::

    blank line                        skipped
    '%' ...                           comment, skipped
    INDEX INDEX [VALUE [VALUE]]       coordinate (no VALUE for the pattern field,
                                      two real VALUEs for the complex field)
    VALUE [VALUE]                     array
    INDEX   = [0-9]+                  1 <= INDEX <= rows (cols)
    VALUE   = [+-]? (D+ ('.' D*)? | '.' D+) ([eEdD] [+-]? D+)?     real
            | [+-]? ('inf' | 'infinity' | 'nan')  (any case)     real
            | [+-]? D+                                           integer

Values are written without a leading '+' and with a Fortran ``D`` exponent
as ``e``, the forms fast_matrix_market reads exactly; a complex value's two
parts are written on one line, separated by a space.
"""
import numpy as np
from numba import njit

#: Status codes of :func:`scan_body` (0: the chunk is fine).
OK = 0
LINE_TOO_LONG = 1
BAD_ROW = 2             # the row index token is not an unsigned integer
BAD_COL = 3
ROW_RANGE = 4           # the row index is 0 or above the number of rows
COL_RANGE = 5
BAD_VALUE = 6           # the value token does not match the field's grammar
TOO_FEW = 7             # fewer tokens than the line needs
TOO_MANY = 8            # more tokens than the line takes
TOO_MANY_ENTRIES = 9    # more entry lines than the size line promises

_BIG = np.int64(1) << np.int64(62)


@njit(cache=True, inline="always")
def _is_space(b):
    return b == 32 or b == 9 or b == 13 or b == 11 or b == 12


@njit(cache=True, inline="always")
def _is_digit(b):
    return 48 <= b <= 57


@njit(cache=True, inline="always")
def _ends_token(buf, p, n):
    return p == n or buf[p] == 10 or _is_space(buf[p])


@njit(cache=True, inline="always")
def _token_end(buf, p, n):
    while not _ends_token(buf, p, n):
        p += 1
    return p


@njit(cache=True, inline="always")
def _word_at(buf, s, e, word):
    """Is buf[s:e] ``word`` (lower case ASCII), ignoring case?"""
    if e - s != len(word):
        return False
    for t in range(e - s):
        b = buf[s + t]
        if (b + 32 if 65 <= b <= 90 else b) != word[t]:
            return False
    return True


_INF = np.frombuffer(b"inf", dtype=np.uint8).copy()
_INFINITY = np.frombuffer(b"infinity", dtype=np.uint8).copy()
_NAN = np.frombuffer(b"nan", dtype=np.uint8).copy()


@njit(cache=True, inline="always")
def _index_at(buf, p, n):
    """(value, end) of the unsigned integer at buf[p:]: value -1 when there is
    no digit or the token goes on with something else, 2**62 when it has more
    than 18 digits."""
    s = p
    v = np.int64(0)
    while p < n:
        d = np.int64(buf[p]) - 48
        if d < 0 or d > 9:
            break
        v = v * 10 + d
        p += 1
    if p == s or not _ends_token(buf, p, n):
        return np.int64(-1), p
    if p - s > 18:
        return _BIG, p
    return v, p


@njit(cache=True, inline="always")
def _copy_digits(buf, p, n, out, o):
    s = p
    while p < n:
        b = buf[p]
        if b < 48 or b > 57:
            break
        out[o] = b
        o += 1
        p += 1
    return p, o, p - s


@njit(cache=True, inline="always")
def _value_at(buf, p, n, out, o, integer):
    """Check the value token at buf[p:] and copy it to out[o:] normalised.
    Returns (ok, end in buf, end in out)."""
    c = buf[p]
    if c == 45:                                    # '-' kept, '+' dropped
        out[o] = c
        o += 1
        p += 1
    elif c == 43:
        p += 1
    p, o, digits = _copy_digits(buf, p, n, out, o)
    if integer:
        return digits > 0 and _ends_token(buf, p, n), p, o
    if digits == 0 and p < n and buf[p] != 46:     # inf, infinity, nan
        e = _token_end(buf, p, n)
        ok = _word_at(buf, p, e, _INF) or _word_at(buf, p, e, _INFINITY) or \
            _word_at(buf, p, e, _NAN)
        while ok and p < e:
            out[o] = buf[p]
            o += 1
            p += 1
        return ok, p, o
    if p < n and buf[p] == 46:                     # '.' and the fraction
        out[o] = 46
        o += 1
        p, o, more = _copy_digits(buf, p + 1, n, out, o)
        digits += more
    if digits == 0:
        return False, p, o
    if p < n and (buf[p] | 32) in (101, 100):     # e E d D -> e
        out[o] = 101
        o += 1
        p += 1
        if p < n and (buf[p] == 43 or buf[p] == 45):
            out[o] = buf[p]
            o += 1
            p += 1
        p, o, exp = _copy_digits(buf, p, n, out, o)
        if exp == 0:
            return False, p, o
    return _ends_token(buf, p, n), p, o


@njit(cache=True, nogil=True)
def scan_body(buf, n_index, value_kind, n_rows, n_cols, rows, cols, k, k_max, out, o,
              max_line):
    """Check and convert the entry lines in ``buf``.

    buf: (n,) uint8, whole lines (the last one may lack its newline only at
    the end of the file).  n_index: 2 (coordinate) or 0 (array).
    value_kind: 0 none (pattern), 1 real, 2 integer, 3 complex (two reals).  rows, cols: (k_max,)
    int32/int64 receiving the 0-based indices of entries k, k+1, ...
    out: uint8 receiving the value tokens from ``out[o]`` on, one per line
    (room for n + 1 more bytes needed).
    Returns (status, k after the chunk, end of the tokens in out, lines done,
    start and end of the offending token in buf, the offending index value,
    bytes of blank and comment lines).
    On an error, ``lines done`` is the 0-based line of the error within buf.
    """
    n = buf.shape[0]
    line = 0
    p = 0
    skipped = 0
    zero = np.int64(0)
    while p < n:
        start = p
        while p < n and _is_space(buf[p]):
            p += 1
        if p == n or buf[p] == 10 or buf[p] == 37:        # blank line or % comment
            while p < n and buf[p] != 10:
                p += 1
            if p - start > max_line:
                return LINE_TOO_LONG, k, o, line, start, p, zero, skipped
            line += 1
            p += 1
            skipped += p - start
            continue
        if k >= k_max:
            return TOO_MANY_ENTRIES, k, o, line, p, _token_end(buf, p, n), zero, skipped
        fields = 0
        if n_index:
            s = p
            v, p = _index_at(buf, p, n)
            if v < 0:
                return BAD_ROW, k, o, line, s, _token_end(buf, p, n), zero, skipped
            if v < 1 or v > n_rows:
                return ROW_RANGE, k, o, line, s, p, v, skipped
            rows[k] = v - 1
            while p < n and _is_space(buf[p]):
                p += 1
            if p == n or buf[p] == 10:
                return TOO_FEW, k, o, line, start, p, np.int64(1), skipped
            s = p
            v, p = _index_at(buf, p, n)
            if v < 0:
                return BAD_COL, k, o, line, s, _token_end(buf, p, n), zero, skipped
            if v < 1 or v > n_cols:
                return COL_RANGE, k, o, line, s, p, v, skipped
            cols[k] = v - 1
            while p < n and _is_space(buf[p]):
                p += 1
            fields = 2
        if value_kind:
            if p == n or buf[p] == 10:
                return TOO_FEW, k, o, line, start, p, np.int64(fields), skipped
            s = p
            o0 = o
            ok, p, o = _value_at(buf, p, n, out, o, value_kind == 2)
            if not ok:
                return BAD_VALUE, k, o0, line, s, _token_end(buf, s, n), zero, skipped
            if value_kind == 3:                            # complex: the imaginary part
                while p < n and _is_space(buf[p]):
                    p += 1
                if p == n or buf[p] == 10:
                    return TOO_FEW, k, o0, line, start, p, np.int64(fields + 1), skipped
                out[o] = 32
                o += 1
                s = p
                ok, p, o = _value_at(buf, p, n, out, o, False)
                if not ok:
                    return BAD_VALUE, k, o0, line, s, _token_end(buf, s, n), zero, skipped
            out[o] = 10
            o += 1
            while p < n and _is_space(buf[p]):
                p += 1
        if p < n and buf[p] != 10:
            return TOO_MANY, k, o, line, p, _token_end(buf, p, n), zero, skipped
        if p - start > max_line:
            return LINE_TOO_LONG, k, o, line, start, p, zero, skipped
        k += 1
        line += 1
        p += 1
    return OK, k, o, line, 0, 0, zero, skipped


@njit(cache=True, nogil=True)
def count_entry_lines(buf, upto):
    """(found, entry lines passed, lines passed) in ``buf``: stops at the entry
    line numbered ``upto`` (0-based), which is then found; to name the line of
    an entry on an error path."""
    n = buf.shape[0]
    entries = 0
    line = 0
    p = 0
    while p < n:
        end = p
        while end < n and buf[end] != 10:
            end += 1
        q = p
        while q < end and _is_space(buf[q]):
            q += 1
        if not (q == end or buf[q] == 37):
            if entries == upto:
                return True, entries, line
            entries += 1
        line += 1
        p = end + 1
    return False, entries, line


@njit(cache=True, nogil=True)
def triangle_counts(rows, cols):
    """(entries below, entries above the diagonal)."""
    low = 0
    up = 0
    for k in range(rows.shape[0]):
        if rows[k] > cols[k]:
            low += 1
        elif rows[k] < cols[k]:
            up += 1
    return low, up


@njit(cache=True, nogil=True)
def mirrored(rows, cols, data, sign, n_off):
    """The entries followed by the mirror images (j, i, sign * v) of the
    ``n_off`` off-diagonal ones: symmetric storage expanded, in one pass."""
    k = rows.shape[0]
    r = np.empty(k + n_off, dtype=rows.dtype)
    c = np.empty(k + n_off, dtype=cols.dtype)
    d = np.empty(k + n_off, dtype=data.dtype)
    t = k
    for i in range(k):
        r[i] = rows[i]
        c[i] = cols[i]
        d[i] = data[i]
        if rows[i] != cols[i]:
            r[t] = cols[i]
            c[t] = rows[i]
            d[t] = sign * data[i]
            t += 1
    return r, c, d
