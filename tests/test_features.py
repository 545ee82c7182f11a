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


# ---- the sampled pass: edge cases where a row sample could go wrong ----------------------

from spmvtune import features as F  # noqa: E402
from spmvtune import generate  # noqa: E402

SAMPLED = ("scattering", "clustering", "x_lines_per_nnz", "x_lines_per_row", "diag_dominant_share",
           "delta_index_bytes", "delta_saving", "diagonals")
EXACT_ALWAYS = ("rows", "cols", "nnz", "row_mean", "row_std", "row_min", "row_max", "row_cv",
                "row_skew", "empty_row_share", "max_row_share", "bandwidth", "profile_per_row",
                "imbalance_rows", "imbalance_nnz", "distinct_values", "symmetric", "has_nan",
                "bcsr_bytes", "bcsr_fill")


@pytest.fixture
def sample_everything(monkeypatch):
    """Sample rows from the first nonzero on (as on a matrix beyond EXACT_NNZ), with
    few points, so that small matrices exercise the sampled pass."""
    def use(points=512, parallel=False):
        monkeypatch.setattr(F, "EXACT_NNZ", 0)
        monkeypatch.setattr(F, "SAMPLE_POINTS", points)
        monkeypatch.setattr(F, "PARALLEL_NNZ", 0 if parallel else 1 << 62)
    return use


def _exact(A):
    return structural_features(A, caches=CACHES)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("family", ["empty_0x0", "empty_5x0", "empty_0x5", "all_zero_4x7",
                                    "single_entry", "empty_rows", "one_dense_row", "one_column",
                                    "wide", "tall", "diagonal", "wide_gaps", "dense_small"])
def test_sampled_pass_on_edge_cases(family, parallel, sample_everything):
    """Empty matrices and rows, one row holding most nonzeros, a single column or row,
    rectangles: the sampled pass keeps every feature finite, the exact ones exact,
    and rows that hold a whole window (the dense row) are always visited."""
    A = family_matrix(family)
    want = _exact(A)
    sample_everything(points=64, parallel=parallel)
    f = structural_features(A, caches=CACHES)
    assert set(FORMULAS) <= set(f)
    assert all(np.isfinite(v) for v in f.values()), f
    for key in EXACT_ALWAYS:
        assert f[key] == pytest.approx(want[key], rel=1e-12, abs=1e-12), key
    assert 0 <= f["x_lines_per_nnz"] <= 1 and 0 <= f["clustering"] <= 1
    assert 0 <= f["diag_dominant_share"] <= 1 and 0 <= f["scattering"] <= 1
    assert f["diagonals"] <= max(A.shape[0] + A.shape[1] - 1, 0) and f["diagonals"] <= A.nnz
    if A.nnz:
        assert f["sampled_row_stride"] >= 1.0


def test_single_row_is_visited_whole(sample_everything):
    """A one-row matrix is one heavy row: the sample holds it for certain, so the
    sampled statistics are exact."""
    A = sp.csr_array(np.random.default_rng(1).uniform(-1, 1, (1, 500)))
    want = _exact(A)
    sample_everything(points=16)
    f = structural_features(A, caches=CACHES)
    for key in SAMPLED:
        assert f[key] == pytest.approx(want[key], rel=1e-12), key


def test_dominant_row_counts_at_its_weight(sample_everything):
    """One row with 60% of the nonzeros among short random rows: the old stride
    sample met it or not by chance (x_lines_per_nnz 1.0 or 0.37); the weighted
    sample always visits it and estimates the per-nonzero statistics within 2%."""
    A = generate.dominant_row(20_000, 4, 0.6)
    want = _exact(A)
    sample_everything(points=2048)
    f = structural_features(A, caches=CACHES)
    for key in ("x_lines_per_nnz", "clustering", "delta_index_bytes", "diagonals"):
        assert f[key] == pytest.approx(want[key], rel=0.02), key


@pytest.mark.parametrize("build", [lambda: generate.stencil3d(32),
                                   lambda: generate.banded(80_000, 4),
                                   lambda: generate.fem_blocks(12_000, 6, bs=3, spread=10),
                                   lambda: generate.random_scatter(40_000, 8),
                                   lambda: generate.power_law(40_000, 8, exponent=1.5),
                                   lambda: generate.short_rows(100_000)])
def test_sampled_estimates_are_close(build, sample_everything):
    """On regular, blocked, random and skewed rows, 4096 points (windows of ~8 or
    more rows) estimate the per-nonzero statistics within a few percent of every
    row's value."""
    A = build()
    want = _exact(A)
    sample_everything(points=4096, parallel=True)
    f = structural_features(A, caches=CACHES)
    assert f["sampled_row_stride"] > 2.0
    for key, rel in (("clustering", 0.03), ("x_lines_per_nnz", 0.06), ("delta_index_bytes", 0.02),
                     ("scattering", 0.06), ("diagonals", 0.25)):
        assert f[key] == pytest.approx(want[key], rel=rel, abs=1e-3), key


def test_windows_of_few_rows_inspect_every_row(sample_everything):
    """Where the sample would visit most rows anyway (windows of < 2 mean rows), every
    row is inspected: exact values, at less cost."""
    A = generate.random_scatter(2_000, 8)
    sample_everything(points=4096)
    assert F._sampling(*A.shape[:1], A.nnz) == (0, 1)
    f = structural_features(A, caches=CACHES)
    assert f["sampled_row_stride"] == 1.0 and f == {**_exact(A), "seconds": f["seconds"]}


def test_features_are_deterministic_and_serial_equals_parallel(monkeypatch):
    """Same matrix, same features (fixed seed); the parallel pass (per-thread diagonal
    marks, chunk sums) agrees with the serial one."""
    A = generate.random_scatter(30_000, 6)
    monkeypatch.setattr(F, "EXACT_NNZ", 50_000)          # sampled
    monkeypatch.setattr(F, "PARALLEL_NNZ", 1 << 62)
    ser = structural_features(A, caches=CACHES)
    assert structural_features(A, caches=CACHES) == {**ser, "seconds": pytest.approx(0, abs=10)}
    monkeypatch.setattr(F, "PARALLEL_NNZ", 0)
    par = structural_features(A, caches=CACHES)
    for key in FORMULAS:
        assert par[key] == pytest.approx(ser[key], rel=1e-9), key


def _sorted_distinct(sample):
    s = np.sort(sample)
    return int(np.count_nonzero(s[1:] != s[:-1]) + 1) if len(s) else 0


@pytest.mark.parametrize("values", [
    [], [1.0], [0.0, -0.0, 1.0, 1.0], [np.nan, np.nan, 2.0, 2.0, np.inf, -np.inf],
    np.arange(1.0, 5001.0), np.repeat([1.5, -2.0, 3.25], 100),
    np.random.default_rng(0).integers(0, 50, 3000).astype(np.float32),
    np.array([1 + 2j, 1 + 2j, 1 - 2j, -0.0 + 0j, 0j, complex(np.nan, 1), 3j]),
])
def test_distinct_values_as_the_sorted_sample_counted_them(values):
    """The hash count matches the old sort-based count (each NaN its own value, -0.0
    equal to 0.0), for real, float32 and complex values."""
    data = np.asarray(values)
    if data.dtype.kind not in "fc":
        data = data.astype(np.float64)
    s, distinct, nan = F._distinct(data, 1)
    assert s == len(data) and distinct == _sorted_distinct(data)
    assert (nan > 0) == bool(len(data) and np.isnan(data).any())


def test_block_counts_match_a_direct_count():
    """The block-shape sample's counts (unions of row pairs) against sets of block keys
    (for the shapes that fit the matrix: block_estimates drops the others)."""
    from spmvtune.pool.bcsr import _block_counts
    for name in ("banded", "blocks", "stencil", "random", "one_dense_row", "tall", "wide",
                 "one_column", "empty_rows"):
        A = sp.csr_array(family_matrix(name))
        m, n = A.shape
        rows = [A.indices[A.indptr[i]:A.indptr[i + 1]].tolist() for i in range(m)]
        starts, stretch = np.array([0, 12 * (m // 24)], dtype=np.int64), 24
        got = np.zeros((4, 4), np.int64)
        _block_counts(A.indptr, A.indices, n, starts, stretch, got)
        want = np.zeros((4, 4), np.int64)
        for s in starts:
            e = min(s + stretch, m)
            for i in range(s, e):
                want[0, 0] += len(rows[i])
                for C in range(2, 5):
                    if C > n:
                        continue
                    k = 0
                    while k < len(rows[i]):
                        start = min(rows[i][k], n - C)
                        while k < len(rows[i]) and rows[i][k] < start + C:
                            k += 1
                        want[0, C - 1] += 1
            for R in range(2, 5):
                for r0 in range(s, e, R):
                    cols = sorted(set(c for t in range(r0, min(r0 + R, m)) for c in rows[t]))
                    for C in range(1, 5):
                        want[R - 1, C - 1] += len({min(c - c % C, n - C) for c in cols})
        usable = np.arange(1, 5)[None, :] <= n            # shapes wider than the matrix are unused
        assert (got[usable.repeat(4, 0)] == want[usable.repeat(4, 0)]).all(), name


def test_cheap_features_row_statistics():
    A = family_matrix("power_law")
    lengths = np.diff(A.indptr)
    f = F.cheap_features(A, CACHES)
    assert f["row_std"] == pytest.approx(lengths.std(), rel=1e-12)
    assert (f["row_min"], f["row_max"]) == (lengths.min(), lengths.max())
    assert f["empty_row_share"] == np.mean(lengths == 0)


def test_feature_seconds_follows_the_size():
    small, large = generate.banded(200, 2), generate.random_scatter(100_000, 8)
    assert 1e-5 < F.feature_seconds(small) < 1e-3
    assert F.feature_seconds(small) < F.feature_seconds(large) < 0.05
