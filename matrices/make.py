"""Write the small bundled matrices of this folder (run from the repository root).

    python matrices/make.py
"""
import gzip
import io
from pathlib import Path

import scipy.io

from spmvtune import generate

HERE = Path(__file__).parent
SMALL = {
    "stencil27_12.mtx.gz": (generate.stencil3d(12), "3-D 27-point stencil on a 12^3 grid"),
    "laplace2d_40.mtx": (generate.laplacian_2d(40), "2-D 5-point Laplacian, symmetric"),
    "powerlaw_4000.mtx.gz": (generate.power_law(4000, 8, exponent=1.3, seed=1), "Pareto row lengths"),
    "scatter_5000.mtx.gz": (generate.random_scatter(5000, 6, seed=2), "6 random columns per row"),
    "fem_blocks_900.mtx.gz": (generate.fem_blocks(300, 6, bs=3, spread=20, seed=3), "3x3 blocks"),
}

if __name__ == "__main__":
    for name, (A, comment) in SMALL.items():
        sym = "symmetric" if (A != A.T).nnz == 0 else "general"
        buf = io.BytesIO()
        scipy.io.mmwrite(buf, A, comment=comment, symmetry=sym, precision=6)
        data = buf.getvalue()
        if name.endswith(".gz"):
            data = gzip.compress(data, mtime=0)
        (HERE / name).write_bytes(data)
        print(name, A.shape, A.nnz, sym)
