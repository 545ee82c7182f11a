"""What ``bench`` measures: matrix files, bundled generated suites, SuiteSparse downloads.

An :class:`Item` is plain data (picklable, so a Dask worker can load it):
``key`` identifies it in the results store, :func:`load_item` builds the matrix.
"""
from dataclasses import dataclass
from pathlib import Path

from .. import generate

MATRIX_SUFFIXES = (".mtx", ".mtx.gz", ".mtx.bz2", ".tar.gz", ".npz", ".npy")


@dataclass(frozen=True)
class Item:
    key: str        # unique in a results store: absolute path, or "suite:<suite>/<name>"
    name: str       # short display name
    kind: str       # "file" | "suite"
    ref: str        # the path, or "<suite>/<name>"


#: Bundled generated suites: suite -> {name: (builder, description)}.
SUITES = {
    # ~1-3.5M nonzeros each (a few L3 caches): every family, about a minute in all
    "quick": {
        "stencil27_40": (lambda: generate.stencil3d(40), "3-D 27-point stencil, 40^3 grid"),
        "laplace2d_400": (lambda: generate.laplacian_2d(400), "2-D 5-point Laplacian, 400^2 grid"),
        "banded_400k": (lambda: generate.banded(400_000, 3), "7 random diagonals"),
        "fem_blocks_20k": (lambda: generate.fem_blocks(20_000, 10), "3x3 dense blocks, FEM-like"),
        "random_scatter_200k": (lambda: generate.random_scatter(200_000, 8),
                                "8 random columns per row"),
        "power_law_200k": (lambda: generate.power_law(200_000, 10.5), "Pareto row lengths"),
        "short_rows_1m": (lambda: generate.short_rows(1_000_000), "1-2 random columns per row"),
        "wide_lp_30k": (lambda: generate.wide_lp(30_000, 300_000, 40), "30k x 300k, LP-like"),
    },
    # 16-30M nonzeros each, far beyond the caches: the figures of the README
    "large": dict(generate.LARGE),
}


def suite_items(suite):
    """The items of a bundled suite (KeyError names the suites that exist)."""
    if suite not in SUITES:
        raise KeyError(f"no suite {suite!r}; bundled suites: {', '.join(SUITES)}")
    return [Item(f"suite:{suite}/{name}", name, "suite", f"{suite}/{name}") for name in SUITES[suite]]


def file_items(paths):
    """Items for files, and for the matrix files under directories (recursive, sorted)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*")
                           if f.is_file() and f.name.lower().endswith(MATRIX_SUFFIXES))
        else:
            files = [p]
        out += [Item(str(f.resolve()), _display_name(f), "file", str(f.resolve())) for f in files]
    return out


def _display_name(path):
    name = path.name
    for suffix in MATRIX_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return name


def stored_entries(item):
    """Entries promised by a Matrix Market file's size line (a lower bound of
    its nonzeros; symmetric storage expands), or None when unknown without
    reading the matrix (archives, .npz, suites)."""
    if item.kind != "file":
        return None
    from ..io import header_entries
    return header_entries(item.ref)


def load_item(item):
    """The matrix of an item as canonical ``scipy.sparse.csr_array``.
    Raises what :func:`spmvtune.load` raises for files."""
    if item.kind == "suite":
        suite, name = item.ref.split("/", 1)
        return SUITES[suite][name][0]()
    from ..io import load
    return load(item.ref)
