"""spmvtune.load: formats, storage schemes, and a clear error for every bad input."""
import bz2
import gzip
import io
import tarfile

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

import spmvtune
from spmvtune import MatrixFormatError, MatrixTooLargeError
from conftest import shared_files

GENERAL = """%%MatrixMarket matrix coordinate real general
% a comment
3 4 4
1 1 1.5
2 3 -2
3 4 3e0
3 1 4
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def test_general_real(tmp_path):
    A = spmvtune.load(write(tmp_path, "g.mtx", GENERAL))
    assert isinstance(A, sp.csr_array) and A.dtype == np.float64
    assert A.has_canonical_format
    np.testing.assert_array_equal(A.toarray(), [[1.5, 0, 0, 0], [0, 0, -2, 0], [4, 0, 0, 3]])
    assert A.info.symmetry == "general" and A.info.field == "real"


@pytest.mark.parametrize("sym,expected", [
    ("symmetric", [[1, 2, 0], [2, 0, 3], [0, 3, 5]]),
    ("skew-symmetric", [[0, -2, 0], [2, 0, -3], [0, 3, 0]]),
])
def test_symmetric_storage_expanded(tmp_path, sym, expected):
    diag = "1 1 1\n3 3 5\n" if sym == "symmetric" else ""
    n = 4 if diag else 2
    text = f"%%MatrixMarket matrix coordinate real {sym}\n3 3 {n}\n{diag}2 1 2\n3 2 3\n"
    A = spmvtune.load(write(tmp_path, "s.mtx", text))
    np.testing.assert_array_equal(A.toarray(), expected)
    assert A.info.symmetry == sym


def test_pattern_and_integer(tmp_path):
    A = spmvtune.load(write(tmp_path, "p.mtx", "%%MatrixMarket matrix coordinate pattern general\n"
                                               "2 2 2\n1 2\n2 1\n"))
    np.testing.assert_array_equal(A.toarray(), [[0, 1], [1, 0]])
    B = spmvtune.load(write(tmp_path, "i.mtx", "%%MatrixMarket matrix coordinate integer symmetric\n"
                                               "2 2 2\n1 1 7\n2 1 -3\n"))
    np.testing.assert_array_equal(B.toarray(), [[7, -3], [-3, 0]])
    assert B.dtype == np.float64


def test_duplicates_summed(tmp_path):
    A = spmvtune.load(write(tmp_path, "d.mtx", "%%MatrixMarket matrix coordinate real general\n"
                                               "2 2 3\n1 1 1\n1 1 2\n2 2 1\n"))
    assert A.nnz == 2 and A[0, 0] == 3


def test_array_format(tmp_path):
    A = spmvtune.load(write(tmp_path, "a.mtx", "%%MatrixMarket matrix array real general\n"
                                               "2 2\n1\n0\n0\n4\n"))
    np.testing.assert_array_equal(A.toarray(), [[1, 0], [0, 4]])


@pytest.mark.parametrize("suffix,compress", [(".mtx.gz", gzip.compress), (".mtx.bz2", bz2.compress)])
def test_compressed(tmp_path, suffix, compress):
    A = spmvtune.load(write(tmp_path, "c" + suffix, compress(GENERAL.encode())))
    assert A.nnz == 4


def test_suitesparse_archive(tmp_path):
    p = tmp_path / "Foo.tar.gz"
    with tarfile.open(p, "w:gz") as tar:
        for name, text in (("Foo/Foo.mtx", GENERAL), ("Foo/Foo_b.mtx", "junk")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    A = spmvtune.load(p)
    assert A.shape == (3, 4) and A.nnz == 4
    assert "Foo/Foo.mtx" in A.info.source


def test_npz_roundtrip(tmp_path):
    B = sp.random_array((30, 20), density=0.2, rng=0, format="csr")
    sp.save_npz(tmp_path / "m.npz", B)
    A = spmvtune.load(tmp_path / "m.npz")
    assert (A != B).nnz == 0


def test_matches_scipy_reader(tmp_path):
    B = sp.random_array((50, 40), density=0.1, rng=1, format="coo")
    scipy.io.mmwrite(tmp_path / "r.mtx", B)
    A = spmvtune.load(tmp_path / "r.mtx")
    np.testing.assert_allclose(A.toarray(), B.toarray())


# -- errors: (file text, expected line, words the message must contain) --------
BAD = {
    "no_banner": ("3 3 1\n1 1 1\n", 1, "banner"),
    "bare_triplets": ("1 2 0.5\n2 3 1.5\n", 1, "edge or triplet list"),
    "bad_object": ("%%MatrixMarket vector coordinate real general\n1 1 1\n1 1 1\n", 1, "object"),
    "bad_format": ("%%MatrixMarket matrix sparse real general\n1 1 1\n1 1 1\n", 1, "format"),
    "bad_field": ("%%MatrixMarket matrix coordinate float general\n1 1 1\n1 1 1\n", 1, "field"),
    "bad_symmetry": ("%%MatrixMarket matrix coordinate real bogus\n1 1 1\n1 1 1\n", 1, "symmetry"),
    "short_banner": ("%%MatrixMarket matrix coordinate real\n1 1 1\n1 1 1\n", 1, "4 words"),
    "hermitian_real": ("%%MatrixMarket matrix coordinate real hermitian\n1 1 1\n1 1 1\n", 1, "complex"),
    "complex_one_number": ("%%MatrixMarket matrix coordinate complex general\n2 2 1\n1 1 1\n", 3, "invalid"),
    "complex_three_numbers": ("%%MatrixMarket matrix coordinate complex general\n2 2 1\n1 1 1 2 3\n", 3,
                              "'row col real imaginary'"),
    "complex_bad_imaginary": ("%%MatrixMarket matrix coordinate complex general\n2 2 1\n1 1 1 2,5\n", 3,
                              "invalid value"),
    "no_size_line": ("%%MatrixMarket matrix coordinate real general\n% only a comment\n", 3, "size line"),
    "size_not_int": ("%%MatrixMarket matrix coordinate real general\n3 x 1\n1 1 1\n", 2, "size line"),
    "size_negative": ("%%MatrixMarket matrix coordinate real general\n3 -3 1\n1 1 1\n", 2, "size line"),
    "sym_not_square": ("%%MatrixMarket matrix coordinate real symmetric\n3 4 1\n1 1 1\n", 2, "square"),
    "too_many_promised": ("%%MatrixMarket matrix coordinate real general\n2 2 5\n1 1 1\n", 2, "more than"),
    "row_out_of_range": ("%%MatrixMarket matrix coordinate real general\n3 3 2\n1 1 1\n4 2 2\n", 4, "out of bounds"),
    "zero_based": ("%%MatrixMarket matrix coordinate real general\n3 3 2\n0 0 1\n1 2 2\n", 3, "0-based"),
    "too_few_entries": ("%%MatrixMarket matrix coordinate real general\n3 3 3\n1 1 1\n2 2 2\n", None, "promises 3 entries"),
    "too_many_entries": ("%%MatrixMarket matrix coordinate real general\n3 3 1\n1 1 1\n2 2 2\n", 4, "more entry lines"),
    "non_numeric": ("%%MatrixMarket matrix coordinate real general\n3 3 1\n1 1 abc\n", 3, "invalid"),
    "missing_value": ("%%MatrixMarket matrix coordinate real general\n3 3 1\n1 1\n", 3, "invalid"),
    "binary": (b"\x89PNG\r\n\x1a\n\xff\xfe", 1, "not a text file"),
    "array_too_few": ("%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n", 5,
                      "promises 4 entries, found 3"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_gets_one_clear_error(tmp_path, case):
    text, line, words = BAD[case]
    p = write(tmp_path, f"{case}.mtx", text)
    with pytest.raises(MatrixFormatError) as err:
        spmvtune.load(p)
    msg = str(err.value)
    assert str(p) in msg
    assert words.lower() in msg.lower(), msg
    if line is not None:
        assert err.value.line == line, msg
        assert f"{p}:{line}:" in msg


def test_truncated_gzip(tmp_path):
    big = GENERAL.replace("3 4 4", "3 4 400") + "1 1 1\n" * 396
    data = gzip.compress(big.encode())
    p = write(tmp_path, "t.mtx.gz", data[: len(data) // 2])
    with pytest.raises(MatrixFormatError, match="truncated or corrupt"):
        spmvtune.load(p)


def test_not_gzip(tmp_path):
    with pytest.raises(MatrixFormatError, match="truncated or corrupt"):
        spmvtune.load(write(tmp_path, "n.mtx.gz", GENERAL))


def test_memory_estimate_refuses_before_reading(tmp_path):
    text = "%%MatrixMarket matrix coordinate real general\n100000000 100000000 900000000000\n"
    with pytest.raises(MatrixTooLargeError, match="GiB"):
        spmvtune.load(write(tmp_path, "huge.mtx", text))
    with pytest.raises(MatrixTooLargeError):
        spmvtune.load(write(tmp_path, "g.mtx", GENERAL), max_bytes=100)


def test_other_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError):
        spmvtune.load(tmp_path / "missing.mtx")
    with pytest.raises(MatrixFormatError, match="unknown file type"):
        spmvtune.load(write(tmp_path, "m.txt", GENERAL))
    with pytest.raises(MatrixFormatError, match="directory"):
        spmvtune.load(tmp_path)
    with pytest.raises(MatrixFormatError, match="npz"):
        spmvtune.load(write(tmp_path, "bad.npz", b"not a zip"))
    with pytest.raises(MatrixFormatError, match="archive"):
        spmvtune.load(write(tmp_path, "Bad.tar.gz", gzip.compress(b"not a tar")))


@pytest.mark.parametrize("dtype,kept", [(np.float32, np.float32), (np.complex64, np.complex64),
                                         (np.complex128, np.complex128), (np.int32, np.float64)])
def test_npz_keeps_its_value_type(tmp_path, dtype, kept):
    B = sp.csr_array(np.array([[1, 0], [2, 3]], dtype=dtype))
    sp.save_npz(tmp_path / "m.npz", B)
    A = spmvtune.load(tmp_path / "m.npz")
    assert A.dtype == kept and (A != B.astype(kept)).nnz == 0
    assert A.info.field == ("complex" if np.dtype(kept).kind == "c" else "real")


def test_complex_general_and_symmetric(tmp_path):
    A = spmvtune.load(write(tmp_path, "c.mtx", "%%MatrixMarket matrix coordinate complex general\n"
                                               "2 3 2\n1 1 1.5 -2\n2 3 0 1e0\n"))
    assert A.dtype == np.complex128 and A.info.field == "complex"
    np.testing.assert_array_equal(A.toarray(), [[1.5 - 2j, 0, 0], [0, 0, 1j]])
    S = spmvtune.load(write(tmp_path, "s.mtx", "%%MatrixMarket matrix coordinate complex symmetric\n"
                                               "2 2 2\n1 1 1 1\n2 1 0 3\n"))
    np.testing.assert_array_equal(S.toarray(), [[1 + 1j, 3j], [3j, 0]])     # no conjugate


def test_hermitian_storage_expanded_with_the_conjugate(tmp_path):
    text = ("%%MatrixMarket matrix coordinate complex hermitian\n3 3 3\n"
            "1 1 2 0\n2 1 1 2\n3 2 0 -1\n")
    A = spmvtune.load(write(tmp_path, "h.mtx", text))
    assert A.info.symmetry == "hermitian" and A.dtype == np.complex128
    np.testing.assert_array_equal(A.toarray(), [[2, 1 - 2j, 0], [1 + 2j, 0, 1j], [0, -1j, 0]])
    assert abs(A - A.T.conj()).max() == 0


def test_hermitian_file_storing_both_triangles(tmp_path):
    head = "%%MatrixMarket matrix coordinate complex hermitian\n2 2 3\n1 1 1 0\n1 2 3 4\n"
    with pytest.warns(UserWarning, match="both triangles"):
        A = spmvtune.load(write(tmp_path, "b.mtx", head + "2 1 3 -4\n"))    # conjugate pairs
    np.testing.assert_array_equal(A.toarray(), [[1, 3 + 4j], [3 - 4j, 0]])
    with pytest.raises(MatrixFormatError, match="both stored"):
        spmvtune.load(write(tmp_path, "d.mtx", head + "2 1 3 4\n"))         # not conjugate


def test_complex_array_format(tmp_path):
    A = spmvtune.load(write(tmp_path, "a.mtx", "%%MatrixMarket matrix array complex general\n"
                                               "2 1\n1 2\n0 0\n"))
    np.testing.assert_array_equal(A.toarray(), [[1 + 2j], [0]])


def test_long_double_npz_refused(tmp_path):
    B = sp.csr_array(np.eye(2, dtype=np.longdouble))
    np.savez(tmp_path / "l.npz", format=b"csr", shape=np.array(B.shape), data=B.data,
             indices=B.indices, indptr=B.indptr)
    with pytest.raises(MatrixFormatError, match="not supported"):
        spmvtune.load(tmp_path / "l.npz")


@pytest.mark.parametrize("path", shared_files("malformed"), ids=lambda p: p.name)
def test_shared_malformed_files(path):
    """Broken files found in the wild: each gets one clear error, never a crash."""
    with pytest.raises(MatrixFormatError) as err:
        spmvtune.load(path)
    msg = str(err.value)
    assert str(path) in msg and len(msg) < 400
    if path.name in ("netscience.mtx", "lesmis.mtx", "mesh3e1.mtx"):
        assert "0-based" in msg


# -- hostile input (issue 11): no crash, no silent misread, bounded memory -------

HEAD = "%%MatrixMarket matrix coordinate real general\n3 3 2\n"


def load_error(p, cls=MatrixFormatError):
    with pytest.raises(cls) as err:
        spmvtune.load(p)
    assert str(p) in str(err.value), err.value
    assert isinstance(err.value, spmvtune.MatrixLoadError)
    return err.value


@pytest.mark.parametrize("value", ["1\x00", "1.5\x00\x00", "2,5", "0x10", "12abc34", "0.5e",
                                   "1e5.", "infinit", "1.2.3", "--1", "+-1", "1e", "e5", ".",
                                   "nan(1)", "1_000", "\u00a01", "1\xff"])
def test_values_with_junk_are_errors_not_truncated(tmp_path, value):
    p = write(tmp_path, "junk.mtx", (HEAD + f"1 1 {value}\n2 2 1\n").encode("utf-8", "surrogateescape"))
    err = load_error(p)
    assert err.line == 3 and "invalid value" in err.problem, err


@pytest.mark.parametrize("value,expected", [("1.0D+00", 1.0), ("2d-1", 0.2), ("+1.5", 1.5),
                                            ("-.5", -0.5), ("5.", 5.0), ("1E+05", 1e5),
                                            ("-Infinity", -np.inf), ("INF", np.inf),
                                            ("0012", 12.0)])
def test_every_accepted_value_is_read_exactly(tmp_path, value, expected):
    A = spmvtune.load(write(tmp_path, "v.mtx", HEAD.replace("3 3 2", "3 3 1") + f"1 2 {value}\n"))
    assert A[0, 1] == expected


@pytest.mark.parametrize("shape", ["0 3", "3 0", "0 0"])
def test_empty_array_files(tmp_path, shape):
    """fast_matrix_market dies of SIGFPE on an array with no rows (found by the fuzz)."""
    A = spmvtune.load(write(tmp_path, "e.mtx", f"%%MatrixMarket matrix array real general\n{shape}\n"))
    assert A.shape == tuple(map(int, shape.split())) and A.nnz == 0


def test_nan_is_read(tmp_path):
    A = spmvtune.load(write(tmp_path, "n.mtx", HEAD + "1 1 nan\n2 2 -NaN\n"))
    assert np.isnan(A.data).all() and A.nnz == 2


@pytest.mark.parametrize("line,words", [
    ("1 1 1 5", "4 fields"),                   # a trailing extra field
    ("1x 1 1", "row index"),
    ("1 1.0 1", "column index"),
    ("-1 1 1", "row index"),
    ("99999999999999999999999 1 1", "out of bounds"),     # no OverflowError
    ("1 18446744073709551617 1", "out of bounds"),
])
def test_bad_entry_lines(tmp_path, line, words):
    err = load_error(write(tmp_path, "e.mtx", HEAD + line + "\n2 2 1\n"))
    assert err.line == 3 and words in err.problem, err


def test_integer_field_is_strict_and_never_overflows(tmp_path):
    head = "%%MatrixMarket matrix coordinate integer general\n2 2 1\n"
    A = spmvtune.load(write(tmp_path, "big.mtx", head + "1 1 123456789012345678901234567890\n"))
    assert A[0, 0] == pytest.approx(1.2345678901234568e29)
    err = load_error(write(tmp_path, "f.mtx", head + "1 1 1.5\n"))
    assert err.line == 3 and "integers only" in err.problem


def test_size_line_overflow_is_a_clear_error(tmp_path):
    err = load_error(write(tmp_path, "o.mtx", "%%MatrixMarket matrix coordinate real general\n"
                                              "99999999999999999999 3 1\n1 1 1\n"))
    assert err.line == 2 and "2^62" in err.problem


def test_utf8_bom_is_accepted(tmp_path):
    A = spmvtune.load(write(tmp_path, "bom.mtx", b"\xef\xbb\xbf" + GENERAL.encode()))
    assert A.nnz == 4
    err = load_error(write(tmp_path, "u16.mtx", GENERAL.encode("utf-16")))
    assert "UTF-16" in err.problem


def test_comment_and_blank_lines_in_the_body(tmp_path):
    A = spmvtune.load(write(tmp_path, "c.mtx", HEAD + "\n% a note\n1 1 1\r\n\t\n2 2 2"))
    np.testing.assert_array_equal(A.diagonal(), [1, 2, 0])


def test_symmetric_file_storing_both_triangles_is_not_doubled(tmp_path):
    text = ("%%MatrixMarket matrix coordinate real symmetric\n3 3 5\n"
            "1 1 4\n2 1 1\n1 2 1\n3 2 2\n2 3 2\n")
    with pytest.warns(UserWarning, match="stores both triangles.*read each entry once"):
        A = spmvtune.load(write(tmp_path, "both.mtx", text))
    np.testing.assert_array_equal(A.toarray(), [[4, 1, 0], [1, 0, 2], [0, 2, 0]])
    # upper triangle only is unambiguous: mirrored without a word
    A = spmvtune.load(write(tmp_path, "upper.mtx", "%%MatrixMarket matrix coordinate real "
                                                   "symmetric\n3 3 2\n1 2 1\n2 3 2\n"))
    np.testing.assert_array_equal(A.toarray(), [[0, 1, 0], [1, 0, 2], [0, 2, 0]])


def test_symmetric_file_storing_some_pairs_twice_is_an_error(tmp_path):
    text = ("%%MatrixMarket matrix coordinate real symmetric\n% c\n3 3 4\n"
            "2 1 1\n3 1 7\n\n3 2 2\n2 3 5\n")
    err = load_error(write(tmp_path, "some.mtx", text))
    assert "(3, 2) and its mirror (2, 3) are both stored" in err.problem
    assert err.line == 7                       # the blank line counted


def test_skew_symmetric_both_triangles_need_opposite_values(tmp_path):
    text = "%%MatrixMarket matrix coordinate real skew-symmetric\n2 2 2\n2 1 3\n1 2 -3\n"
    with pytest.warns(UserWarning):
        A = spmvtune.load(write(tmp_path, "skew.mtx", text))
    np.testing.assert_array_equal(A.toarray(), [[0, -3], [3, 0]])
    err = load_error(write(tmp_path, "skew2.mtx", text.replace("-3", "3")))
    assert "both stored" in err.problem


def test_long_lines_are_refused_early(tmp_path):
    err = load_error(write(tmp_path, "e.mtx", HEAD + "1 1 " + "1" * 5000 + "\n2 2 1\n"))
    assert err.line == 3 and "longer than" in err.problem
    err = load_error(write(tmp_path, "s.mtx", HEAD + "1 1 1" + " " * 9000 + "\n2 2 1\n"))
    assert err.line == 3 and "longer than" in err.problem


def test_a_huge_comment_line_costs_neither_memory_nor_time(tmp_path):
    """A 64 MiB comment line in a gzip of ~64 KiB: refused after reading 1 MiB."""
    import time
    import tracemalloc
    comment = b"%" + b"x" * (64 << 20) + b"\n"
    body = b"%%MatrixMarket matrix coordinate real general\n" + comment + b"1 1 1\n1 1 1\n"
    p = write(tmp_path, "bomb.mtx.gz", gzip.compress(body, compresslevel=9))
    tracemalloc.start()
    t0 = time.perf_counter()
    err = load_error(p)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert err.line == 2 and "longer than 1 MiB" in err.problem
    assert peak < 16 << 20 and time.perf_counter() - t0 < 5


def test_a_compressed_file_is_decompressed_once(tmp_path, monkeypatch):
    reads = []
    real = gzip.GzipFile.readinto

    def counting(self, b):
        n = real(self, b)
        reads.append(n)
        return n
    monkeypatch.setattr(gzip.GzipFile, "readinto", counting)
    big = GENERAL.replace("3 4 4", "300 400 40000") + "1 1 1\n" * 39996
    A = spmvtune.load(write(tmp_path, "once.mtx.gz", gzip.compress(big.encode())))
    assert A.nnz == 4
    assert sum(reads) < len(big)            # the header came from the same pass


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_special_files_are_refused_without_hanging(tmp_path, kind):
    import os
    import signal
    p = tmp_path / "x.mtx"
    if kind == "fifo":
        os.mkfifo(p)
    else:
        p.symlink_to("/dev/zero")
    signal.signal(signal.SIGALRM, lambda *a: pytest.fail("load hung"))
    signal.alarm(10)
    try:
        err = load_error(p)
    finally:
        signal.alarm(0)
    assert "not a regular file" in err.problem
    assert spmvtune.io.header_entries(p) is None


def test_a_huge_archive_member_is_streamed_not_read_whole(tmp_path):
    import tracemalloc
    member = (b"%%MatrixMarket matrix coordinate real general\n" + b"%" + b"y" * (48 << 20)
              + b"\n3 3 1\n1 1 1\n")
    p = tmp_path / "Big.tar.gz"
    with tarfile.open(p, "w:gz") as tar:
        info = tarfile.TarInfo("Big/Big.mtx")
        info.size = len(member)
        tar.addfile(info, io.BytesIO(member))
    del member
    tracemalloc.start()
    err = load_error(p)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "Big/Big.mtx]:2" in str(err) and peak < 16 << 20


@pytest.mark.parametrize("where", ["header", "body", "body comments"])
def test_runs_of_blank_or_comment_lines_cost_neither_memory_nor_time(tmp_path, where):
    """80 MiB of short lines in a gzip of ~80 KiB: refused after 1M lines before
    the size line (each cost a Python call: 64 MiB of newlines took 20 s) or 64
    MiB of comment and blank lines among the entries (decompressed and scanned
    for nothing: 1 GiB took 12 s)."""
    import time
    import tracemalloc
    head = b"%%MatrixMarket matrix coordinate real general\n"
    run = b"\n" * (80 << 20) if where != "body comments" else b"%\n" * (40 << 20)
    text = head + run + b"3 3 1\n1 1 1\n" if where == "header" else head + b"3 3 1\n" + run + b"1 1 1\n"
    p = write(tmp_path, "blank.mtx.gz", gzip.compress(text, compresslevel=9))
    del text, run
    tracemalloc.start()
    t0 = time.perf_counter()
    err = load_error(p)
    seconds, peak = time.perf_counter() - t0, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if where == "header":
        assert "more than 1048576 comment or blank lines before the size line" in err.problem
        assert err.line == 1048577
    else:
        assert "64 MiB of comment and blank lines among the entries" in err.problem
    assert peak < 48 << 20 and seconds < 10       # the same for a run of 1 GiB


@pytest.mark.parametrize("text,line,words", [
    ("%%MatrixMarket matrix coordinate real skew-symmetric\n3 3 2\n2 1 3\n2 2 1\n", 4,
     "diagonal entry (2, 2) is 1.0, but a skew-symmetric matrix has a zero diagonal"),
    ("%%MatrixMarket matrix coordinate complex hermitian\n3 3 2\n1 1 1 0\n3 3 1 2\n", 4,
     "diagonal entry (3, 3) is (1+2j), but a hermitian matrix has a real diagonal"),
])
def test_a_diagonal_the_declared_symmetry_rules_out_is_an_error(tmp_path, text, line, words):
    """Read as stored it was neither what the file declared nor an error."""
    err = load_error(write(tmp_path, "d.mtx", text))
    assert err.line == line and words in err.problem, err
    ok = text.replace("2 2 1\n", "2 2 0\n").replace("3 3 1 2\n", "3 3 1 0\n")
    assert spmvtune.load(write(tmp_path, "ok.mtx", ok)).nnz >= 2    # zero / real: fine


def test_line_ends_and_headerless_files_get_the_right_hint(tmp_path):
    err = load_error(write(tmp_path, "mac.mtx", GENERAL.replace("\n", "\r")))
    assert err.line == 1 and "bare CR" in err.problem
    err = load_error(write(tmp_path, "nobanner.mtx", "3 3 1\n1 1 1\n"))
    assert "if that line is the size line, add the banner above it" in err.problem


def test_comments_are_free_text_in_any_encoding(tmp_path):
    """A Latin-1 comment before the size line made a valid file 'not a text
    file (undecodable bytes)'; the same comment among the entries was fine."""
    text = GENERAL.replace("% a comment", "% Jos\xe9, \x00 r\xe9sum\xe9").encode("latin-1")
    text += b"% caf\xe9\n"
    A = spmvtune.load(write(tmp_path, "latin1.mtx", text))
    assert A.nnz == 4
    err = load_error(write(tmp_path, "size.mtx", text.replace(b"3 4 4", b"3 4 4\xe9")))
    assert err.line == 3


def test_a_warning_points_at_the_caller_of_load(tmp_path):
    p = write(tmp_path, "both.mtx", "%%MatrixMarket matrix coordinate real symmetric\n"
                                    "2 2 2\n2 1 5\n1 2 5\n")
    tar = tmp_path / "Both.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        t.add(p, "Both/Both.mtx")
    for path in (p, tar):
        with pytest.warns(UserWarning, match="stores both triangles") as rec:
            spmvtune.load(path)
        assert rec[0].filename == __file__


@pytest.mark.parametrize("name,text", [
    ("wide.mtx", "%%MatrixMarket matrix coordinate real general\n1 4611686018427387903 0\n"),
    ("tall.mtx", "%%MatrixMarket matrix coordinate pattern general\n4611686018427387903 1 0\n"),
])
def test_huge_dimensions_without_entries_are_refused_at_load(tmp_path, name, text):
    """They loaded (a few bytes of CSR), then the first product asked for exabytes."""
    err = load_error(write(tmp_path, name, text), MatrixTooLargeError)
    assert "x and y included" in err.problem
    p = npz(tmp_path, **dict(csr_members([], [], [0, 0]), shape=np.array([1, 2**61])))
    assert "x and y included" in load_error(p, MatrixTooLargeError).problem


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "traversal", "absolute"])
def test_archive_links_and_foreign_names_are_not_followed(tmp_path, kind):
    """Name/Name.mtx must be a regular member of that name: a link (to /etc/passwd,
    or to another member) or a path out of the archive is not read, nothing is extracted."""
    p = tmp_path / "Name.tar.gz"
    good = GENERAL.encode()
    with tarfile.open(p, "w:gz") as tar:
        def regular(name):
            info = tarfile.TarInfo(name)
            info.size = len(good)
            tar.addfile(info, io.BytesIO(good))
        if kind in ("symlink", "hardlink"):
            regular("Name/other.mtx")
            info = tarfile.TarInfo("Name/Name.mtx")
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            info.linkname = "/etc/passwd" if kind == "symlink" else "Name/other.mtx"
            tar.addfile(info)
        else:
            regular("../../Name/Name.mtx" if kind == "traversal" else "/Name/Name.mtx")
    err = load_error(p)
    assert "should hold Name/Name.mtx" in err.problem
    assert sorted(x.name for x in tmp_path.iterdir()) == ["Name.tar.gz"]


def test_running_out_of_memory_names_the_file(tmp_path, monkeypatch):
    def no_memory(*a, **kw):
        raise MemoryError()
    monkeypatch.setattr(spmvtune.io, "_convert_values", no_memory)
    err = load_error(write(tmp_path, "g.mtx", GENERAL), MatrixTooLargeError)
    assert "ran out of memory" in err.problem
    assert str(err).startswith(str(tmp_path / "g.mtx"))


def test_every_loader_error_is_one_type_naming_the_file(tmp_path):
    with pytest.raises(spmvtune.MatrixLoadError, match="no such file") as e:
        spmvtune.load(tmp_path / "missing.mtx")
    assert isinstance(e.value, FileNotFoundError) and str(tmp_path) in str(e.value)
    too_big = write(tmp_path, "huge.mtx", "%%MatrixMarket matrix coordinate real general\n"
                                          "100000000 100000000 900000000000\n")
    with pytest.raises(spmvtune.MatrixLoadError, match="huge.mtx:") as e:
        spmvtune.load(too_big)
    assert isinstance(e.value, MemoryError)
    import pickle
    again = pickle.loads(pickle.dumps(e.value))
    assert str(again) == str(e.value) and type(again) is type(e.value)


# -- .npz ------------------------------------------------------------------------

def npz(tmp_path, name="m.npz", **members):
    p = tmp_path / name
    np.savez(p, **members)
    return p


def csr_members(data, indices, indptr, shape=(3, 3)):
    return dict(format=np.array("csr"), shape=np.array(shape), data=np.asarray(data, float),
                indices=np.asarray(indices, np.int32), indptr=np.asarray(indptr, np.int32))


@pytest.mark.parametrize("members,words", [
    (csr_members([1, 2], [0, -1], [0, 1, 2, 2]), "column index -1 of row 1"),
    (csr_members([1, 2], [0, 99], [0, 1, 2, 2]), "column index 99 of row 1"),
    (csr_members([1, 2], [0, 1], [0, 2, 1, 2]), "indptr decreases at row 1"),
    (csr_members([1, 2], [0, 1], [0, 1, 2, 9]), "index pointer should be less"),
    (csr_members([1, 2], [0, 1], [1, 1, 2, 2]), "should start with 0"),
    (csr_members([1, 2], [0, 1], [0, 1, 2]), "index pointer size 3 should be 4"),
    (csr_members([1.0], [0, 1], [0, 1, 2, 2]), "same size"),
    (dict(format=np.array("coo"), shape=np.array([3, 3]), data=np.ones(2),
          row=np.array([0, -1]), col=np.array([0, 1])), "negative"),
    (dict(format=np.array("coo"), shape=np.array([3, 3]), data=np.ones(2),
          row=np.array([0, 5]), col=np.array([0, 1])), "index 5 exceeds"),
    (dict(format=np.array("csr"), shape=np.array([3, 3]), data=np.ones(2)), "lacks member"),
    (dict(format=np.array("xyz"), shape=np.array([3, 3]), data=np.ones(2)), "unknown sparse format"),
    (dict(format=np.array("csr"), shape=np.array([3, -3]), data=np.ones(2),
          indices=np.zeros(2, int), indptr=np.zeros(4, int)), "'shape'"),
    (dict(format=np.array("csr"), shape=np.array([3, 3]), data=np.ones(2),
          indices=np.zeros(2), indptr=np.zeros(4, int)), "must hold integers"),
    (dict(shape=np.array([3, 3]), data=np.ones(2)), "no 'format' member"),
])
def test_npz_index_arrays_are_checked_before_use(tmp_path, members, words):
    err = load_error(npz(tmp_path, **members))
    assert words in str(err), err


def test_npz_files_that_are_not_sparse_npz(tmp_path):
    assert "an empty file" in load_error(write(tmp_path, "e.npz", b"")).problem
    import zipfile
    with zipfile.ZipFile(tmp_path / "zip.npz", "w"):
        pass
    assert "empty zip" in load_error(tmp_path / "zip.npz").problem
    np.save(tmp_path / "arr.npy", np.arange(5))
    (tmp_path / "arr.npy").rename(tmp_path / "arr.npz")
    assert "NumPy .npy array" in load_error(tmp_path / "arr.npz").problem
    assert "not a SciPy sparse" in load_error(write(tmp_path, "t.npz", b"text")).problem
    np.savez(tmp_path / "obj.npz", format=np.array("csr"), shape=np.array([1, 1]),
             data=np.array([object()], dtype=object))
    assert "Python objects" in str(load_error(tmp_path / "obj.npz"))


def test_npz_member_sizes_are_checked_before_reading(tmp_path):
    p = npz(tmp_path, **csr_members([1, 2], [0, 1], [0, 1, 2, 2]))
    with pytest.raises(MatrixTooLargeError, match="m.npz"):
        spmvtune.load(p, max_bytes=100)


def test_npz_dia_offsets_beyond_32_bits_are_not_wrapped(tmp_path):
    """SciPy keeps a small matrix's offsets in 32 bits: 2**62 wrapped to 0 and
    a diagonal outside the matrix was read as its main diagonal."""
    members = dict(format=np.array("dia"), shape=np.array([3, 3]),
                   data=np.array([[1.0, 2, 3], [4, 5, 6]]), offsets=np.array([2**62, 1]))
    A = spmvtune.load(npz(tmp_path, **members))
    np.testing.assert_array_equal(A.toarray(), [[0, 5, 0], [0, 0, 6], [0, 0, 0]])
    members["offsets"] = np.array([-2**32, 2**32])
    assert spmvtune.load(npz(tmp_path, "far.npz", **members)).nnz == 0


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "bsr", "dia"])
def test_npz_every_scipy_format(tmp_path, fmt):
    B = sp.random_array((12, 8), density=0.3, rng=2, format="csr")
    sp.save_npz(tmp_path / f"{fmt}.npz", B.asformat(fmt) if fmt != "bsr" else B.tobsr((2, 2)))
    A = spmvtune.load(tmp_path / f"{fmt}.npz")
    np.testing.assert_array_equal(A.toarray(), B.toarray())
    assert A.has_canonical_format


# -- scipy input to select_kernel: every index array checked --------------------

def _bad_csr(indices=(0, -1), indptr=(0, 1, 2, 2)):
    A = sp.csr_array((np.ones(2), np.array([0, 1]), np.array([0, 1, 2, 2])), shape=(3, 3))
    A.indices = np.array(indices, dtype=np.int32)
    A.indptr = np.array(indptr, dtype=np.int32)
    return A


@pytest.mark.parametrize("make,words", [
    (lambda: _bad_csr(indices=(0, -1)), "column index -1"),
    (lambda: _bad_csr(indices=(0, 99)), "column index 99"),
    (lambda: _bad_csr(indices=(0, 1), indptr=(0, 2, 1, 2)), "indptr decreases at row 1"),
    (lambda: _bad_csr(indices=(0, 1), indptr=(0, 1, 2, 7)), "points past"),
    (lambda: _bad_csr(indices=(0, 1), indptr=(1, 1, 2, 2)), "indptr.0. is 1"),
    (lambda: sp.csc_array(_bad_csr(indices=(0, 1)).T.copy()).__class__(
        (np.ones(2), np.array([0, 5]), np.array([0, 1, 2, 2])), shape=(3, 3)), "row index 5"),
])
def test_select_kernel_checks_scipy_index_arrays(make, words):
    with pytest.raises(ValueError, match=words):
        spmvtune.select_kernel(make(), kernel="csr_balanced")


def test_select_kernel_checks_mutated_coo_and_lying_flags():
    B = sp.coo_array((np.ones(2), (np.array([0, 1]), np.array([0, 1]))), shape=(2, 2))
    B.coords[0][1] = -3
    with pytest.raises(ValueError, match="row index -3"):
        spmvtune.select_kernel(B, kernel="csr_balanced")
    C = sp.csr_array((np.array([1.0, 2.0, 5.0]), np.array([1, 0, 0]), np.array([0, 2, 3])),
                     shape=(2, 2))
    C.has_canonical_format = True              # a lie: unsorted indices
    op = spmvtune.select_kernel(C, kernel="csr_balanced")
    np.testing.assert_array_equal(op(np.array([1.0, 10.0])), [12.0, 5.0])
    np.testing.assert_array_equal(C.indices, [1, 0, 0])      # the input is not modified
