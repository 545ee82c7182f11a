"""Split the real matrices of ../shared/matrices/suitesparse into a training part
and a held-out part that nothing is tuned on.

A matrix's group is its SuiteSparse name (or its file stem), and a group is held
out when a hash of its name falls in the last third: deterministic, independent
of the order of the files, and the same matrix from two sources always lands in
the same part.  Writes benchmarks/real_split.tsv (file, group, part, nnz, kind).

    python benchmarks/real_split.py [--shared ../shared/matrices/suitesparse]
"""
import argparse
import csv
import hashlib
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = HERE.parents[1] / "shared" / "matrices" / "suitesparse"


def group_of(row):
    name = (row.get("suitesparse_name") or "").split("/")[-1]
    return (name or re.sub(r"\.mtx(\.gz|\.bz2)?$", "", row["file"])).lower()


def part_of(group):
    h = int(hashlib.blake2b(group.encode(), digest_size=8).hexdigest(), 16)
    return "heldout" if h % 3 == 2 else "train"


def read_split(path=HERE / "real_split.tsv"):
    """{file name: part} of a split file."""
    with open(path, newline="") as f:
        return {r["file"]: r["part"] for r in csv.DictReader(f, delimiter="\t")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    args = ap.parse_args(argv)
    with open(args.shared / "MANIFEST.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    out = HERE / "real_split.tsv"
    with open(out, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["file", "group", "part", "nnz", "kind"])
        for r in sorted(rows, key=lambda r: r["file"]):
            g = group_of(r)
            w.writerow([r["file"], g, part_of(g), r["nnz_expanded"], r["kind"]])
    parts = read_split(out)
    print(f"{out}: {sum(p == 'train' for p in parts.values())} train, "
          f"{sum(p == 'heldout' for p in parts.values())} held out")


if __name__ == "__main__":
    main()
