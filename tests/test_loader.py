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
