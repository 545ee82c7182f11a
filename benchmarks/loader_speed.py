"""How fast does ``spmvtune.load`` read Matrix Market files, against an older loader?

The strict reader (spmvtune/mtx_scan.py checks every byte, fast_matrix_market
converts only the accepted value tokens) must stay close to the loader it
replaced, which handed the whole body to fast_matrix_market.  This times both
side by side: the old ``spmvtune/io.py`` is taken from a git revision and
imported on its own (it needs only numpy, scipy and fast_matrix_market), and
each round loads every file with both loaders in shuffled order; medians over
the rounds.  Without FILES it writes two 1M-entry files (plain and gzip) with
full-precision values to a temporary directory and adds the largest files of
../shared/matrices/suitesparse when present.

    python benchmarks/loader_speed.py [--baseline-rev REV] [--rounds N] [FILES...]

Output: a table on stdout and in benchmarks/results/loader_speed.txt.
"""
import argparse
import gzip
import importlib.util
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse as sp

import spmvtune.io as new_io

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "matrices" / "suitesparse"


def old_loader(rev, tmp):
    """The ``load`` of spmvtune/io.py at git revision ``rev``."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:spmvtune/io.py"],
                         check=True, capture_output=True, text=True).stdout
    path = Path(tmp) / "old_io.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_io", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.load


def sample_files(tmp):
    A = sp.random_array((200_000, 200_000), density=1_000_000 / 200_000**2, rng=0, format="coo")
    plain = Path(tmp) / "random_1m.mtx"
    scipy.io.mmwrite(plain, A, precision=17)
    packed = Path(tmp) / "random_1m.mtx.gz"
    with open(plain, "rb") as f, gzip.open(packed, "wb", compresslevel=6) as g:
        shutil.copyfileobj(f, g)
    files = [plain, packed]
    for name in ("cage11.mtx.gz", "dblp-2010.mtx.gz", "bcsstk28.mtx.gz"):
        if (SHARED / name).exists():
            files.append(SHARED / name)
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--baseline-rev", default="9c178f7",
                    help="git revision of the loader to compare with (default: the last "
                         "one that handed the body to fast_matrix_market)")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        old = old_loader(args.baseline_rev, tmp)
        files = args.files or sample_files(tmp)
        loaders = {"old": old, "new": new_io.load}
        times = {(f, k): [] for f in files for k in loaders}
        for f in files:                       # warm-up: JIT caches, page cache
            for load in loaders.values():
                load(f)
        for _ in range(args.rounds):
            order = [(f, k) for f in files for k in loaders]
            random.shuffle(order)
            for f, k in order:
                t0 = time.perf_counter()
                A = loaders[k](f)
                times[(f, k)].append(time.perf_counter() - t0)
                del A
        header = f"{'file':28s} {'entries':>10s} {'old ms':>8s} {'new ms':>8s} {'new/old':>8s}"
        lines.append(header)
        for f in files:
            o, n = (statistics.median(times[(f, k)]) for k in ("old", "new"))
            entries = new_io.load(f).info.stored_entries
            lines.append(f"{f.name:28s} {entries:10d} {o * 1e3:8.1f} {n * 1e3:8.1f} {n / o:8.2f}")
    lines.append(f"(medians of {args.rounds} shuffled rounds; baseline {args.baseline_rev}; "
                 f"numpy {np.__version__}, python {sys.version.split()[0]})")
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / "loader_speed.txt"
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
