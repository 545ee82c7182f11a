"""Each structural feature against a naive implementation of its formula."""
import numpy as np
import pytest
import scipy.sparse as sp

from spmvtune.features import FORMULAS, structural_features
from conftest import family_matrix

CACHES = {"L1d": 32 << 10, "L2": 1 << 20, "L3": 32 << 20}


def naive(A):
    A = sp.csr_array(A)
    A.sum_duplicates()
    m, n = A.shape
    rows = [A.indices[A.indptr[i]:A.indptr[i + 1]] for i in range(m)]
    vals = [A.data[A.indptr[i]:A.indptr[i + 1]] for i in range(m)]
    r = np.array([len(c) for c in rows], dtype=float)
    out = {}
    nz = [c for c in rows if len(c)]
    out["scattering"] = np.mean([len(c) / (c[-1] - c[0] + 1) for c in nz]) if nz else 0.0
    runs = sum(1 + sum(1 for a, b in zip(c[:-1], c[1:]) if b - a != 1) for c in nz)
    out["clustering"] = runs / A.nnz if A.nnz else 0.0
    fresh, prev = 0, set()
    for c in rows:
        lines = set(int(v) // 8 for v in c)
        fresh += len(lines - prev)
        prev = lines
    out["x_lines_per_nnz"] = fresh / A.nnz if A.nnz else 0.0
    out["diagonals"] = len({int(j) - i for i, c in enumerate(rows) for j in c})
    dom = [abs(sum(v[c == i])) >= sum(abs(v[c != i])) for i, (c, v) in enumerate(zip(rows, vals)) if len(c)]
    out["diag_dominant_share"] = np.mean(dom) if dom else 0.0
    out["row_max"] = r.max() if m else 0.0
    out["max_row_share"] = r.max() / A.nnz if A.nnz else 0.0
    out["bandwidth"] = max((abs(j - i * n / m) for i, c in enumerate(rows) for j in c), default=0.0)
    gap_bytes = 0
    for c in rows:
        if len(c) >= 2:
            g = int(np.diff(c).max())
            gap_bytes += (1 if g < 256 else 2 if g < 65536 else 4) * (len(c) - 1)
    out["delta_index_bytes"] = (gap_bytes + 9 * m) / A.nnz if A.nnz else 0.0
    out["empty_row_share"] = float(np.mean(r == 0)) if m else 0.0
    out["row_cv"] = r.std() / r.mean() if m and r.mean() else 0.0
    return out


@pytest.mark.parametrize("family", ["empty_0x0", "all_zero_4x7", "empty_rows", "one_dense_row",
                                    "wide", "tall", "diagonal", "banded", "random", "power_law",
                                    "blocks", "stencil", "wide_gaps", "short_rows"])
def test_features_match_their_formulas(family):
    A = family_matrix(family)
    f = structural_features(A, caches=CACHES)
    assert set(FORMULAS) <= set(f), set(FORMULAS) - set(f)
    for key, want in naive(A).items():
        assert f[key] == pytest.approx(want, rel=1e-12, abs=1e-12), key
    assert all(np.isfinite(v) for v in f.values())


def test_working_set_and_cache_ratios():
    A = family_matrix("random")
    f = structural_features(A, caches=CACHES, threads=2)
    ws = 12 * A.nnz + 4 * (A.shape[0] + 1) + 8 * sum(A.shape)
    assert f["working_set_bytes"] == ws
    assert f["ws_over_l3"] == ws / CACHES["L3"]
    assert f["ws_over_l2"] == ws / (2 * CACHES["L2"])


def test_value_and_symmetry_features():
    lap = family_matrix("laplacian")
    f = structural_features(lap, caches=CACHES)
    assert f["few_values"] == 1.0 and f["symmetric"] == 1.0
    g = structural_features(family_matrix("random"), caches=CACHES)
    assert g["few_values"] == 0.0 and g["symmetric"] < 0.1
    assert g["distinct_value_share"] > 0.9


def test_regular_vs_scattered_line_estimate():
    band = structural_features(family_matrix("banded"), caches=CACHES)
    scat = structural_features(family_matrix("random"), caches=CACHES)
    assert band["x_lines_per_nnz"] < 0.2 < 0.8 < scat["x_lines_per_nnz"]
