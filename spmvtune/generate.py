"""Generators of synthetic matrix families, each built to stress one bottleneck.

All return ``scipy.sparse.csr_array`` (float64, canonical) and take a ``seed``.
Small sizes feed the tests; large ones (working set far beyond the L3 cache)
feed ``benchmarks/``.  Values are random unless the family has natural ones
(the stencil's coefficients), so value-indexed kernels gain only where real
matrices would let them.
"""
import numpy as np
import scipy.sparse as sp


def _sorted_unique(a):
    """np.unique for large int64 arrays (numpy 2.4's np.unique is ~20x slower than a sort)."""
    a = np.sort(a)
    keep = np.ones(len(a), dtype=bool)
    keep[1:] = a[1:] != a[:-1]
    return a[keep]


def _from_rows(n_rows, n_cols, rows, cols, vals=None, rng=None):
    """CSR from unsorted (row, col) pairs; duplicates merged, values random if None."""
    key = rows.astype(np.int64) * n_cols + cols.astype(np.int64)
    key = _sorted_unique(key)
    r, c = np.divmod(key, n_cols) if n_cols else (key, key)
    if vals is None:
        vals = (rng or np.random.default_rng(0)).uniform(-1.0, 1.0, size=len(key))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n_rows), out=indptr[1:])
    idx_t = np.int32 if max(n_cols, len(key)) < 2**31 else np.int64
    return sp.csr_array((vals, c.astype(idx_t), indptr.astype(idx_t)), shape=(n_rows, n_cols))


def stencil3d(n, seed=0, random_values=False):
    """27-point stencil on an n^3 grid: 26 on the diagonal, -1 off it (MB);
    with ``random_values`` the same structure with random values."""
    one = sp.diags_array([np.ones(n - 1), np.ones(n), np.ones(n - 1)], offsets=[-1, 0, 1],
                         shape=(n, n))
    A = sp.kron(sp.kron(one, one), one, format="csr")
    A.data[:] = -1.0
    A.setdiag(26.0)
    if random_values:
        A.data[:] = np.random.default_rng(seed).uniform(-1.0, 1.0, A.nnz)
    A = sp.csr_array(A)
    A.sum_duplicates()
    return A


def fem_blocks(n_block_rows, blocks_per_row=10, bs=3, spread=50, seed=0):
    """FEM-like: bs x bs dense blocks, ``blocks_per_row`` near the diagonal (MB)."""
    rng = np.random.default_rng(seed)
    nb = n_block_rows
    brow = np.repeat(np.arange(nb), blocks_per_row)
    bcol = np.clip(brow + rng.integers(-spread, spread + 1, size=len(brow)), 0, nb - 1)
    bcol[::blocks_per_row] = brow[::blocks_per_row]          # keep the diagonal block
    key = _sorted_unique(brow.astype(np.int64) * nb + bcol)
    brow, bcol = np.divmod(key, nb)
    off = np.arange(bs)
    rows = (brow[:, None, None] * bs + off[None, :, None]).repeat(bs, axis=2).ravel()
    cols = (bcol[:, None, None] * bs + off[None, None, :]).repeat(bs, axis=1).ravel()
    return _from_rows(nb * bs, nb * bs, rows, cols, rng=rng)


def random_scatter(n_rows, per_row=8, n_cols=None, seed=0):
    """``per_row`` nonzeros per row at uniformly random columns (ML)."""
    rng = np.random.default_rng(seed)
    n_cols = n_rows if n_cols is None else n_cols
    rows = np.repeat(np.arange(n_rows), per_row)
    cols = rng.integers(0, max(n_cols, 1), size=len(rows))
    return _from_rows(n_rows, n_cols, rows, cols, rng=rng)


def power_law(n_rows, mean_per_row=10, exponent=1.8, n_cols=None, seed=0):
    """Row lengths drawn from a Pareto law (a few huge rows), random columns (IMB)."""
    rng = np.random.default_rng(seed)
    n_cols = n_rows if n_cols is None else n_cols
    lengths = rng.pareto(exponent, size=n_rows) + 1.0
    lengths = np.minimum(lengths * (mean_per_row / lengths.mean()), n_cols).astype(np.int64)
    lengths = np.maximum(lengths, 1)
    rows = np.repeat(np.arange(n_rows), lengths)
    cols = rng.integers(0, n_cols, size=len(rows))
    return _from_rows(n_rows, n_cols, rows, cols, rng=rng)


def short_rows(n_rows, seed=0, locality=None):
    """1-2 nonzeros per row (CMP in cache, ML out of it); columns random, or
    within ``locality`` of the diagonal when given."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 3, size=n_rows)
    rows = np.repeat(np.arange(n_rows), lengths)
    if locality is None:
        cols = rng.integers(0, n_rows, size=len(rows))
    else:
        cols = np.clip(rows + rng.integers(-locality, locality + 1, size=len(rows)), 0, n_rows - 1)
    return _from_rows(n_rows, n_rows, rows, cols, rng=rng)


def wide_lp(n_rows, n_cols, per_row=40, seed=0):
    """LP-like: few rows, many columns, random columns (ML; large x)."""
    return random_scatter(n_rows, per_row, n_cols=n_cols, seed=seed)


def banded(n, half_bandwidth=3, seed=0):
    """Banded with random values."""
    rng = np.random.default_rng(seed)
    offs = range(-half_bandwidth, half_bandwidth + 1)
    diags = [rng.uniform(-1, 1, n - abs(o)) for o in offs]
    A = sp.csr_array(sp.diags_array(diags, offsets=list(offs), shape=(n, n)))
    A.sum_duplicates()
    return A


def symmetric(A, skew=False):
    """A + A^T (or A - A^T) of a square matrix."""
    S = A - A.T if skew else A + A.T
    S = sp.csr_array(S)
    S.sum_duplicates()
    return S


def laplacian_2d(n):
    """5-point Laplacian on an n x n grid (symmetric, 2 distinct values)."""
    T = sp.diags_array([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], offsets=[-1, 0, 1])
    eye = sp.eye_array(n)
    A = sp.csr_array(sp.kron(T, eye) + sp.kron(eye, T))
    A.sum_duplicates()
    return A


#: Large out-of-cache benchmark families: name -> (builder, description).
LARGE = {
    "stencil27": (lambda: stencil3d(100), "3-D 27-point stencil, 100^3 grid, 26.5M nnz"),
    "fem_blocks": (lambda: fem_blocks(1_000_000 // 3 + 1, 10), "3x3 dense blocks, FEM-like, ~30M nnz"),
    "random_scatter": (lambda: random_scatter(2_000_000, 8), "8 random columns per row, 16M nnz"),
    "power_law": (lambda: power_law(2_000_000, 10.5), "Pareto row lengths, random columns, ~21M nnz"),
    "short_rows": (lambda: short_rows(11_000_000), "1-2 random columns per row, ~16M nnz"),
    "wide_lp": (lambda: wide_lp(300_000, 3_000_000, 40), "300k x 3M, 40 random columns per row"),
}


def dominant_row(n_rows, per_row=6, share=0.6, seed=0):
    """Short random rows plus one row holding ``share`` of all the nonzeros.
    Past half the work, no row partition can balance it (IMB); the matrix is
    as wide as that row needs."""
    rng = np.random.default_rng(seed)
    base = n_rows * per_row
    heavy = int(base * share / (1 - share))
    n_cols = max(n_rows, int(heavy * 1.25))
    rows = np.concatenate([np.repeat(np.arange(n_rows), per_row),
                           np.full(heavy, rng.integers(n_rows))])
    cols = np.concatenate([rng.integers(0, n_cols, size=base),
                           rng.choice(n_cols, size=heavy, replace=False)])
    return _from_rows(n_rows, n_cols, rows, cols, rng=rng)


# ---- families kept out of training: the selector is evaluated on them ----------

def rmat(scale, edge_factor=8, probs=(0.57, 0.19, 0.19, 0.05), seed=0):
    """R-MAT (Kronecker) graph of 2**scale vertices and ~edge_factor edges per
    vertex, pattern values (1.0): power-law degrees on both sides."""
    rng = np.random.default_rng(seed)
    n = 1 << scale
    m = n * edge_factor
    rows = np.zeros(m, dtype=np.int64)
    cols = np.zeros(m, dtype=np.int64)
    a, b, c, _ = probs
    for bit in range(scale):
        r = rng.random(m)
        right = (r >= a) & (r < a + b) | (r >= a + b + c)
        down = r >= a + b
        rows |= down.astype(np.int64) << bit
        cols |= right.astype(np.int64) << bit
    return _pattern(n, n, rows, cols)


def _pattern(n_rows, n_cols, rows, cols):
    A = _from_rows(n_rows, n_cols, rows, cols, rng=np.random.default_rng(0))
    A.data[:] = 1.0
    return A


def stencil2d_9pt(n):
    """9-point stencil on an n x n grid: 8 on the diagonal, -1 off it."""
    one = sp.diags_array([np.ones(n - 1), np.ones(n), np.ones(n - 1)], offsets=[-1, 0, 1],
                         shape=(n, n))
    A = sp.kron(one, one, format="csr")
    A.data[:] = -1.0
    A.setdiag(8.0)
    A = sp.csr_array(A)
    A.sum_duplicates()
    return A


def block_diagonal(n_blocks, bs=24, density=0.6, seed=0):
    """Dense-ish bs x bs blocks on the diagonal (random sparsity inside), random values."""
    rng = np.random.default_rng(seed)
    per = int(bs * bs * density)
    b = np.repeat(np.arange(n_blocks), per)
    r = rng.integers(0, bs, size=len(b))
    c = rng.integers(0, bs, size=len(b))
    n = n_blocks * bs
    return _from_rows(n, n, b * bs + r, b * bs + c, rng=rng)


def arrow(n, width=3, dense=4, seed=0):
    """Arrowhead: a band of half-width ``width`` plus ``dense`` full rows and
    columns at the start (one row holds a large share of the work)."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    rows = [np.repeat(i, 2 * width + 1)]
    cols = [np.clip(rows[0] + np.tile(np.arange(-width, width + 1), n), 0, n - 1)]
    for d in range(dense):
        rows += [np.full(n, d), i]
        cols += [i, np.full(n, d)]
    return _from_rows(n, n, np.concatenate(rows), np.concatenate(cols), rng=rng)


def circuit_like(n, per_row=3, hubs=20, hub_share=0.02, seed=0):
    """Circuit-like: a diagonal, a few random couplings per row, and ``hubs``
    rows and columns (supply nets) touching ``hub_share`` of all nodes."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    rows = [i, np.repeat(i, per_row)]
    cols = [i, np.clip(rows[1] + rng.integers(-n // 50 - 1, n // 50 + 2, size=n * per_row), 0, n - 1)]
    hub = rng.choice(n, size=hubs, replace=False)
    for h in hub:
        touched = rng.choice(n, size=max(int(n * hub_share), 1), replace=False)
        rows += [np.full(len(touched), h), touched]
        cols += [touched, np.full(len(touched), h)]
    return _from_rows(n, n, np.concatenate(rows), np.concatenate(cols), rng=rng)


def banded_gaps(n, half_bandwidth=6, keep=0.6, seed=0):
    """A band with a random ``keep`` share of its entries: irregular short runs."""
    rng = np.random.default_rng(seed)
    offs = np.arange(-half_bandwidth, half_bandwidth + 1)
    rows = np.repeat(np.arange(n), len(offs))
    cols = rows + np.tile(offs, n)
    ok = (cols >= 0) & (cols < n) & (rng.random(len(rows)) < keep)
    ok |= cols == rows
    return _from_rows(n, n, rows[ok], cols[ok], rng=rng)


def stencil3d_7pt(n):
    """7-point Laplacian on an n^3 grid (symmetric, two values)."""
    T = sp.diags_array([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], offsets=[-1, 0, 1])
    eye = sp.eye_array(n)
    A = sp.kron(sp.kron(T, eye), eye) + sp.kron(sp.kron(eye, T), eye) + sp.kron(sp.kron(eye, eye), T)
    A = sp.csr_array(A)
    A.sum_duplicates()
    return A


#: Families no training sweep uses, at an in-cache and an out-of-cache size:
#: name -> (builder, description).  benchmarks/selection_eval.py reports on them.
UNSEEN = {
    "rmat_14": (lambda: rmat(14, 8), "R-MAT graph, 16k vertices, pattern"),
    "rmat_20": (lambda: rmat(20, 10), "R-MAT graph, 1M vertices, pattern"),
    "stencil9_300": (lambda: stencil2d_9pt(300), "2-D 9-point stencil, 300^2"),
    "stencil9_1500": (lambda: stencil2d_9pt(1500), "2-D 9-point stencil, 1500^2"),
    "blockdiag_2k": (lambda: block_diagonal(2_000, 24, 0.6), "24x24 60%-dense diagonal blocks"),
    "blockdiag_40k": (lambda: block_diagonal(40_000, 24, 0.6), "the same, 40k blocks"),
    "arrow_50k": (lambda: arrow(50_000), "arrowhead, 50k"),
    "arrow_1m": (lambda: arrow(1_000_000), "arrowhead, 1M"),
    "circuit_60k": (lambda: circuit_like(60_000), "circuit-like with hub nets, 60k"),
    "circuit_2m": (lambda: circuit_like(2_000_000, hub_share=0.002), "circuit-like, 2M"),
    "bandgaps_100k": (lambda: banded_gaps(100_000), "band with random gaps, 100k"),
    "bandgaps_2m": (lambda: banded_gaps(2_000_000), "band with random gaps, 2M"),
    "poisson7_40": (lambda: stencil3d_7pt(40), "3-D 7-point Laplacian, 40^3"),
    "poisson7_150": (lambda: stencil3d_7pt(150), "3-D 7-point Laplacian, 150^3"),
}
# ---- pruned weight matrices (sparse inference) ---------------------------------------
#
# A fully connected layer of m outputs and n inputs is an m x n weight matrix.
# The generators below prune a Gaussian layer the way network compression does,
# at the layer sizes of real networks, without ever holding the dense layer
# (rows are generated and pruned in chunks).  Rows and columns carry log-normal
# scales (some neurons matter more than others), so magnitude pruning leaves
# rows of varying length, as in trained networks.

#: Spread of the log-normal row and column scales (sigma of log scale).
NEURON_SPREAD = 0.2
#: Rows generated and pruned at once (bounds the memory to ~CHUNK_ENTRIES floats).
CHUNK_ENTRIES = 1 << 23


def _neuron_scales(m, n, rng):
    return (rng.lognormal(0.0, NEURON_SPREAD, m), rng.lognormal(0.0, NEURON_SPREAD, n))


def _csr_from_chunks(m, n, chunks):
    """CSR from (r0, dense rows r0:r0+len) chunks whose zeros are dropped."""
    data, cols, counts = [], [], np.zeros(m, dtype=np.int64)
    for r0, D in chunks:
        r, c = np.nonzero(D)
        data.append(D[r, c])
        cols.append(c)
        counts[r0:r0 + D.shape[0]] = np.bincount(r, minlength=D.shape[0])
    indptr = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    idx_t = np.int32 if max(n, int(indptr[-1])) < 2**31 else np.int64
    data = np.concatenate(data) if data else np.zeros(0)
    cols = np.concatenate(cols).astype(idx_t) if cols else np.zeros(0, idx_t)
    return sp.csr_array((data.astype(np.float64), cols, indptr.astype(idx_t)), shape=(m, n))


def _row_chunks(m, n):
    step = max(1, CHUNK_ENTRIES // max(n, 1))
    return [(r0, min(r0 + step, m)) for r0 in range(0, m, step)]


def _check_fraction(name, value, lo=0.0, hi=1.0):
    if not lo <= value < hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}), got {value}")


def quantize(A, levels):
    """``A`` with its values rounded to ``levels`` distinct values (an even
    number: symmetric levels ±(i + 1/2) step, none of them zero, as uniform
    weight quantization without a zero code): few distinct values, which the
    value-indexed kernels store as 1-byte codes."""
    if levels < 2 or levels % 2:
        raise ValueError(f"levels must be an even number >= 2, got {levels}")
    A = sp.csr_array(A, copy=True)
    if A.nnz == 0:
        return A
    half = levels // 2
    step = np.abs(A.data).max() / half
    q = np.minimum(np.floor(np.abs(A.data) / step), half - 1) + 0.5
    A.data = np.copysign(q * step, A.data)
    return A


def pruned_unstructured(m, n, sparsity, seed=0, levels=None):
    """Magnitude pruning: the share ``sparsity`` of an m x n Gaussian layer
    with the smallest magnitudes set to zero (the threshold is the
    ``sparsity`` quantile of |w|, estimated on a million-entry sample).
    levels: quantize the kept weights to that many values (16, 256)."""
    _check_fraction("sparsity", sparsity)
    rng = np.random.default_rng(seed)
    rs, cs = _neuron_scales(m, n, rng)
    s = min(m * n, 1 << 20)
    sample = np.abs(rs[rng.integers(0, m, s)] * cs[rng.integers(0, n, s)] * rng.standard_normal(s))
    threshold = np.quantile(sample, sparsity) if sparsity > 0 else -1.0

    def chunks():
        for i, (r0, r1) in enumerate(_row_chunks(m, n)):
            g = np.random.default_rng([seed, 1, i])
            D = g.standard_normal((r1 - r0, n), dtype=np.float32)
            D *= rs[r0:r1, None].astype(np.float32)
            D *= cs[None, :].astype(np.float32)
            D[np.abs(D) <= threshold] = 0.0
            yield r0, D
    A = _csr_from_chunks(m, n, chunks())
    return quantize(A, levels) if levels else A


def pruned_blocks(m, n, sparsity, block=(4, 4), seed=0, levels=None):
    """Block pruning: the m x n layer cut into ``block`` (r x c) tiles, the
    share ``sparsity`` of tiles with the smallest norms removed, the kept tiles
    dense (4 x 4 as in block-sparse inference; 1 x 8 and 8 x 1 as vector pruning)."""
    _check_fraction("sparsity", sparsity)
    br, bc = block
    if br < 1 or bc < 1:
        raise ValueError(f"block must be two positive sizes, got {block}")
    rng = np.random.default_rng(seed)
    mb, nb = -(-m // br), -(-n // bc)
    rs, cs = _neuron_scales(mb, nb, rng)
    rows = []
    for i, (r0, r1) in enumerate(_row_chunks(mb, nb)):
        g = np.random.default_rng([seed, 2, i])
        score = rs[r0:r1, None] * cs[None, :] * np.sqrt(g.chisquare(br * bc, (r1 - r0, nb)))
        rows.append(score)
    score = np.concatenate(rows)
    threshold = np.quantile(score, sparsity) if sparsity > 0 else -1.0

    def chunks():
        step = max(1, CHUNK_ENTRIES // max(n * br, 1))
        for i, b0 in enumerate(range(0, mb, step)):
            b1 = min(b0 + step, mb)
            g = np.random.default_rng([seed, 3, i])
            keep = np.repeat(np.repeat(score[b0:b1] > threshold, br, axis=0), bc, axis=1)
            keep = keep[:min(b1 * br, m) - b0 * br, :n]
            D = g.standard_normal(keep.shape) * np.repeat(rs[b0:b1], br)[:keep.shape[0], None]
            D *= np.repeat(cs, bc)[None, :n]
            D[~keep] = 0.0
            yield b0 * br, D
    A = _csr_from_chunks(m, n, chunks())
    return quantize(A, levels) if levels else A


def pruned_nm(m, n, keep=2, group=4, seed=0, levels=None):
    """N:M structured sparsity (2:4 as sparse tensor cores run it): in every
    run of ``group`` consecutive weights of a row, the ``keep`` largest in
    magnitude stay (a shorter last run keeps at most ``keep``)."""
    if not 1 <= keep <= group:
        raise ValueError(f"need 1 <= keep <= group, got {keep}:{group}")
    rng = np.random.default_rng(seed)
    rs, cs = _neuron_scales(m, n, rng)
    pad = -n % group

    def chunks():
        for i, (r0, r1) in enumerate(_row_chunks(m, n)):
            g = np.random.default_rng([seed, 4, i])
            D = g.standard_normal((r1 - r0, n)) * rs[r0:r1, None] * cs[None, :]
            P = np.pad(np.abs(D), ((0, 0), (0, pad))).reshape(r1 - r0, -1, group)
            order = np.argsort(-P, axis=2, kind="stable")
            drop = np.zeros(P.shape, dtype=bool)
            np.put_along_axis(drop, order[:, :, keep:], True, axis=2)
            D[drop.reshape(r1 - r0, -1)[:, :n]] = 0.0
            yield r0, D
    A = _csr_from_chunks(m, n, chunks())
    return quantize(A, levels) if levels else A


def pruned_channels(m, n, keep_rows=0.5, keep_cols=0.5, sparsity=0.0, seed=0, levels=None):
    """Channel pruning: only ``keep_rows`` of the output channels (rows) and
    ``keep_cols`` of the input channels (columns) remain, the others empty;
    the kept weights are optionally magnitude-pruned to ``sparsity`` inside."""
    for name, v in (("keep_rows", keep_rows), ("keep_cols", keep_cols)):
        if not 0.0 < v <= 1.0:
            raise ValueError(f"{name} must be in (0, 1], got {v}")
    _check_fraction("sparsity", sparsity)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(m, max(1, round(keep_rows * m)), replace=False))
    cols = np.sort(rng.choice(n, max(1, round(keep_cols * n)), replace=False))
    inner = pruned_unstructured(len(rows), len(cols), sparsity, seed=seed + 1)
    coo = inner.tocoo()
    A = sp.csr_array(sp.coo_array((coo.data, (rows[coo.row], cols[coo.col])), shape=(m, n)))
    A.sum_duplicates()
    return quantize(A, levels) if levels else A
