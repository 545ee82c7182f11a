"""What ``bench`` measures: matrix files, bundled generated suites, SuiteSparse downloads.

An :class:`Item` is plain data (picklable, so a Dask worker can load it):
``key`` identifies it in the results store, :func:`load_item` builds the matrix.
An item with ``vectors`` = k > 1 measures ``Y = A X`` with k right-hand sides
(:func:`with_vectors`; its key gains "#kK").
"""
import functools
from dataclasses import dataclass, replace
from pathlib import Path

from .. import generate

MATRIX_SUFFIXES = (".mtx", ".mtx.gz", ".mtx.bz2", ".tar.gz", ".npz", ".npy")


@dataclass(frozen=True)
class Item:
    key: str        # unique in a results store: absolute path, or "suite:<suite>/<name>"
    name: str       # short display name
    kind: str       # "file" | "suite"
    ref: str        # the path, or "<suite>/<name>"
    vectors: int = 1  # right-hand sides per product (k)


def with_vectors(items, vectors):
    """Each item once per k of ``vectors`` (k = 1 keeps its key, so stores of
    single-vector sweeps stay valid)."""
    return [item if k == 1 else replace(item, key=f"{item.key}#k{k}", name=f"{item.name} k={k}",
                                        vectors=k)
            for item in items for k in vectors]


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
    # pruned fully connected layers at the sizes of real networks (0.3-5M nonzeros):
    # sparse inference, measured at k = 1, 8, 64 right-hand sides (PRUNED_VECTORS)
    "pruned": {
        "fc_4096_unstructured_90": (lambda: generate.pruned_unstructured(4096, 4096, 0.9),
                                    "4096 x 4096 (VGG fc7), magnitude-pruned to 90%"),
        "fc_2048_unstructured_70": (lambda: generate.pruned_unstructured(2048, 2048, 0.7, seed=1),
                                    "2048 x 2048, magnitude-pruned to 70%"),
        "fc_1024_unstructured_50": (lambda: generate.pruned_unstructured(1024, 1024, 0.5, seed=2),
                                    "1024 x 1024, magnitude-pruned to 50%"),
        "fc_8192_unstructured_99": (lambda: generate.pruned_unstructured(8192, 8192, 0.99, seed=3),
                                    "8192 x 8192, magnitude-pruned to 99%"),
        "vgg_fc6_unstructured_95": (lambda: generate.pruned_unstructured(4096, 25088, 0.95, seed=4),
                                    "4096 x 25088 (VGG fc6), magnitude-pruned to 95%"),
        "fc_4096_blocks4x4_90": (lambda: generate.pruned_blocks(4096, 4096, 0.9, (4, 4), seed=5),
                                 "4096 x 4096, 4x4 blocks pruned to 90%"),
        "fc_2048_blocks1x8_80": (lambda: generate.pruned_blocks(2048, 2048, 0.8, (1, 8), seed=6),
                                 "2048 x 2048, 1x8 blocks pruned to 80%"),
        "fc_2048_blocks8x1_80": (lambda: generate.pruned_blocks(2048, 2048, 0.8, (8, 1), seed=7),
                                 "2048 x 2048, 8x1 blocks pruned to 80%"),
        "fc_2048_nm2_4": (lambda: generate.pruned_nm(2048, 2048, 2, 4, seed=8),
                          "2048 x 2048, 2:4 structured (50%)"),
        "fc_4096_channels_50_80": (lambda: generate.pruned_channels(4096, 4096, 0.5, 0.5, 0.8,
                                                                    seed=9),
                                   "4096 x 4096, half the channels kept, those pruned to 80%"),
        "fc_4096_unstructured_90_q16": (lambda: generate.pruned_unstructured(
            4096, 4096, 0.9, seed=10, levels=16), "4096 x 4096 pruned to 90%, 16 weight values"),
        "fc_2048_blocks4x4_90_q256": (lambda: generate.pruned_blocks(
            2048, 2048, 0.9, (4, 4), seed=11, levels=256),
            "2048 x 2048, 4x4 blocks pruned to 90%, 256 weight values"),
    },
}
#: Right-hand sides a suite is measured at unless --vectors says otherwise.
SUITE_VECTORS = {"pruned": (1, 8, 64)}


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


def load_item(item, threshold=None):
    """The matrix of an item as canonical ``scipy.sparse.csr_array`` (the last
    generated one is kept, so the items of one suite matrix at several k build
    it once).  threshold: drop entries with |a| <= threshold (see
    :func:`spmvtune.load`).  Raises what :func:`spmvtune.load` raises for files."""
    if item.kind == "suite":
        A = _suite_matrix(item.ref)
        if threshold is not None:
            A = A.copy()
            A.data[abs(A.data) <= threshold] = 0.0
            A.eliminate_zeros()
        return A
    from ..io import load
    return load(item.ref, threshold=threshold)


@functools.lru_cache(maxsize=1)
def _suite_matrix(ref):
    suite, name = ref.split("/", 1)
    return SUITES[suite][name][0]()
