"""Hypothesis fuzz of the Matrix Market and .npz readers (issue 11).

Properties: a well-formed file reads exactly (against a reference built here);
any file, mutated at random, either reads or raises one MatrixLoadError whose
message starts with the file's path -- never another exception, never a
crash; a value token is accepted exactly when it matches the documented
grammar, and then read as Python reads it.  Bounded: ~200 examples per test,
a few seconds each."""
import gzip
import re

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spmvtune
from spmvtune.io import MatrixLoadError

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def load_or_error(path):
    """The matrix, or the MatrixLoadError; anything else fails the test."""
    try:
        return spmvtune.load(path)
    except MatrixLoadError as exc:
        assert str(exc).startswith(str(path)), exc
        assert "\n" not in str(exc)[len(str(path)):], exc
        return exc


# -- well-formed Matrix Market files ------------------------------------------------

FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


def _fmt_value(v, style, field):
    if field == "integer":
        return str(int(v))
    if np.isnan(v):
        return ["nan", "NaN", "-nan"][style % 3]
    if np.isinf(v):
        return ("-" if v < 0 else "") + ["inf", "Infinity", "INF"][style % 3]
    return [repr(v), f"{v:.17g}", f"{v:.16e}", f"{v:.16E}", f"{v:.16e}".replace("e", "D"),
            repr(v) if np.signbit(v) else "+" + repr(v)][style % 6]   # -0.0 is signed too


@st.composite
def mtx_files(draw):
    field = draw(st.sampled_from(["real", "integer", "pattern"]))
    symmetry = draw(st.sampled_from(["general", "symmetric", "skew-symmetric"]
                                    if field != "pattern" else ["general", "symmetric"]))
    m = draw(st.integers(1, 9))
    n = m if symmetry != "general" else draw(st.integers(1, 9))
    k = draw(st.integers(0, min(20, m * n)))   # a size line may not promise more
    entries = []
    for _ in range(k):
        i = draw(st.integers(1, m))
        j = draw(st.integers(1, n))
        if symmetry == "symmetric" and i < j or symmetry == "skew-symmetric" and i <= j:
            i, j = max(i, j), min(i, j)
            if symmetry == "skew-symmetric" and i == j:
                continue
        v = (draw(st.integers(-10**6, 10**6)) if field == "integer" else
             draw(FLOATS) if field == "real" else 1.0)
        entries.append((i, j, float(v), draw(st.integers(0, 5))))
    sep = draw(st.sampled_from([" ", "  ", "\t", " \t "]))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [f"%%MatrixMarket matrix coordinate {field} {symmetry}",
             *draw(st.lists(st.sampled_from(["%", "% a comment", "%%another"]), max_size=2)),
             f"{m} {n} {len(entries)}"]
    for i, j, v, style in entries:
        parts = [str(i), str(j)] + ([] if field == "pattern" else [_fmt_value(v, style, field)])
        lines.append(draw(st.sampled_from(["", " "])) + sep.join(parts))
    text = eol.join(lines) + draw(st.sampled_from([eol, "", eol + eol]))
    ref = np.zeros((m, n))
    for i, j, v, _ in entries:
        ref[i - 1, j - 1] += v
        if symmetry != "general" and i != j:
            ref[j - 1, i - 1] += v if symmetry == "symmetric" else -v
    return text.encode(), ref


@FUZZ
@given(mtx_files(), st.booleans())
def test_well_formed_files_read_exactly(workdir, case, packed):
    text, ref = case
    path = workdir / ("w.mtx.gz" if packed else "w.mtx")
    path.write_bytes(gzip.compress(text) if packed else text)
    with np.errstate(invalid="ignore"):
        A = spmvtune.load(path)
    assert isinstance(A, sp.csr_array) and A.has_canonical_format
    np.testing.assert_array_equal(A.toarray(), ref)


# -- mutated files: read or one clear error, never anything else ---------------------

MUTATIONS = st.lists(st.tuples(st.sampled_from(["insert", "delete", "replace", "truncate",
                                                "duplicate_line"]),
                               st.integers(0, 10**6), st.binary(min_size=1, max_size=6)),
                     min_size=1, max_size=4)
JUNK = st.sampled_from([b"\x00", b",", b"x", b"0x", b"e", b"D", b".", b"-", b"+", b"%", b"\n",
                        b" ", b"\r", b"99999999999999999999", b"\xef\xbb\xbf", b"\xff", b"nan",
                        b"inf", b"1e999", b"\t", b"0"])


def mutate(text, mutations, junk):
    b = bytearray(text)
    for kind, pos, blob in mutations:
        pos = pos % (len(b) + 1)
        blob = junk if pos % 2 else blob
        if kind == "insert":
            b[pos:pos] = blob
        elif kind == "delete":
            del b[pos:pos + len(blob)]
        elif kind == "replace":
            b[pos:pos + len(blob)] = blob
        elif kind == "truncate":
            del b[pos:]
        else:
            lines = bytes(b).split(b"\n")
            if lines:
                at = pos % len(lines)
                lines.insert(at, lines[at])
            b = bytearray(b"\n".join(lines))
    return bytes(b)


@FUZZ
@given(mtx_files(), MUTATIONS, JUNK, st.sampled_from([".mtx", ".mtx.gz", ".mtx.bz2"]))
def test_mutated_files_read_or_fail_clearly(workdir, case, mutations, junk, suffix):
    import bz2
    text = mutate(case[0], mutations, junk)
    path = workdir / ("m" + suffix)
    pack = {".mtx": bytes, ".mtx.gz": gzip.compress, ".mtx.bz2": bz2.compress}[suffix]
    path.write_bytes(pack(text))
    with np.errstate(invalid="ignore"):
        load_or_error(path)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([".mtx", ".mtx.gz", ".npz", ".tar.gz"]))
def test_random_bytes_read_or_fail_clearly(workdir, blob, suffix):
    path = workdir / ("r" + suffix)
    path.write_bytes(blob)
    assert isinstance(load_or_error(path), MatrixLoadError)


# -- the value grammar ---------------------------------------------------------------

GRAMMAR = re.compile(rb"[+-]?((\d+(\.\d*)?|\.\d+)([eEdD][+-]?\d+)?|inf|infinity|nan)",
                     re.IGNORECASE)


@FUZZ
@given(st.text(alphabet="0123456789+-.eEdDinfatyINFATY,x_\x00", min_size=1, max_size=12))
def test_a_value_is_read_as_written_or_refused(workdir, token):
    path = workdir / "v.mtx"
    path.write_bytes(b"%%MatrixMarket matrix coordinate real general\n1 1 1\n1 1 "
                     + token.encode() + b"\n")
    got = load_or_error(path)
    if GRAMMAR.fullmatch(token.encode()):
        expected = float(token.lower().replace("d", "e").replace("infinitey", "x"))
        assert not isinstance(got, Exception), (token, got)
        value = got.toarray()[0, 0]
        assert value == expected or (np.isnan(value) and np.isnan(expected)), token
    else:
        assert isinstance(got, MatrixLoadError) and got.line == 3, (token, got)


# -- .npz -------------------------------------------------------------------------------

def _valid_csr(m, n, indptr, indices, data):
    if len(indptr) != m + 1 or indptr[0] != 0 or any(b < a for a, b in zip(indptr, indptr[1:])):
        return False
    if indptr[-1] > len(indices) or len(data) != len(indices):
        return False
    return all(0 <= j < n for j in indices[:indptr[-1]])


@FUZZ
@given(st.integers(0, 5), st.integers(0, 5), st.lists(st.integers(-2, 8), max_size=8),
       st.lists(st.integers(-2, 7), max_size=8), st.sampled_from(["int32", "int64", "uint8"]),
       st.sampled_from(["csr", "csc"]))
def test_npz_compressed_arrays_read_exactly_or_fail_clearly(workdir, m, n, indptr, indices,
                                                            itype, fmt):
    data = np.arange(1, len(indices) + 1, dtype=float)
    ind = np.array(indices, dtype=np.int64).astype(itype)     # uint8 wraps -1 to 255
    ptr = np.array(indptr, dtype=np.int64).astype(itype)
    path = workdir / "c.npz"
    np.savez(path, format=np.array(fmt), shape=np.array([m, n]), data=data, indices=ind,
             indptr=ptr)
    got = load_or_error(path)
    major, minor = (m, n) if fmt == "csr" else (n, m)
    idx, ptr = ind.astype(np.int64).tolist(), ptr.astype(np.int64).tolist()
    valid = _valid_csr(major, minor, ptr, idx, data)
    if not valid:
        assert isinstance(got, MatrixLoadError), (fmt, m, n, ptr, idx)
        return
    ref = np.zeros((major, minor))
    for r in range(major):
        for k in range(ptr[r], ptr[r + 1]):
            ref[r, idx[k]] += data[k]
    assert not isinstance(got, Exception), got
    np.testing.assert_array_equal(got.toarray(), ref if fmt == "csr" else ref.T)


@FUZZ
@given(st.integers(0, 4), st.integers(0, 4), st.lists(st.tuples(st.integers(-2, 5),
                                                                st.integers(-2, 5)), max_size=6))
def test_npz_coo_reads_exactly_or_fails_clearly(workdir, m, n, coords):
    path = workdir / "o.npz"
    row = np.array([c[0] for c in coords], dtype=np.int64)
    col = np.array([c[1] for c in coords], dtype=np.int64)
    data = np.arange(1, len(coords) + 1, dtype=float)
    np.savez(path, format=np.array("coo"), shape=np.array([m, n]), data=data, row=row, col=col)
    got = load_or_error(path)
    if all(0 <= i < m and 0 <= j < n for i, j in coords):
        ref = np.zeros((m, n))
        for (i, j), v in zip(coords, data):
            ref[i, j] += v
        np.testing.assert_array_equal(got.toarray(), ref)
    else:
        assert isinstance(got, MatrixLoadError)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**5), st.integers(0, 255)), min_size=1, max_size=6))
def test_npz_with_corrupted_bytes_reads_or_fails_clearly(workdir, flips):
    B = sp.random_array((6, 5), density=0.4, rng=0, format="csr")
    path = workdir / "f.npz"
    sp.save_npz(path, B, compressed=False)
    raw = bytearray(path.read_bytes())
    for pos, byte in flips:
        raw[pos % len(raw)] = byte
    path.write_bytes(bytes(raw))
    load_or_error(path)
