"""PNG charts of a sweep (matplotlib, headless): speedup per matrix, roofline,
speedup by bottleneck class."""
from .measure import gflops_of
from .report import CLASSES, geomean, speedup


def write_plots(out_dir, rows, bandwidth_gbs, incache_gflops=None):
    """Write the charts into ``out_dir``; returns {chart: file name}.
    bandwidth_gbs: the machine's measured read bandwidth (the roofline's slope)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get("seconds") and "selected" in r["seconds"]]
    if not rows:
        return {}
    files = {}

    peers = [p for p in ("scipy", "mkl_ie") if any(speedup(r, p) for r in rows)]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for peer, color in zip(peers, ("tab:blue", "tab:orange")):
        vals = sorted(v for r in rows if (v := speedup(r, peer)))
        ax.plot(range(1, len(vals) + 1), vals, "o-", color=color, ms=4,
                label=f"vs {'SciPy' if peer == 'scipy' else 'MKL IE'} "
                      f"(geomean {geomean(vals):.2f}x)")
    ax.axhline(1.0, color="grey", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("matrices, sorted by speedup")
    ax.set_ylabel("speedup of the selected kernel")
    ax.set_title("spmvtune selected kernel: speedup per matrix")
    ax.legend()
    files["speedup"] = _save(fig, out_dir, "speedup.png")

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ai = [r["intensity"] for r in rows]
    lo, hi = min(ai) * 0.8, max(ai) * 1.25
    xs = [lo, hi]
    ax.plot(xs, [bandwidth_gbs * v for v in xs], "k-", lw=1.5,
            label=f"measured bandwidth {bandwidth_gbs:.1f} GB/s x intensity")
    if incache_gflops:
        ax.axhline(incache_gflops, color="grey", ls="--", lw=1,
                   label=f"in-cache CSR rate {incache_gflops:.1f} GFLOP/s")
    for name, marker, color in (("selected", "o", "tab:green"), ("scipy", "s", "tab:blue"),
                                ("mkl_ie", "^", "tab:orange")):
        pts = [(r["intensity"], g[name]) for r in rows if name in (g := gflops_of(r))]
        if pts:
            ax.scatter(*zip(*pts), marker=marker, color=color, s=22, label=name, alpha=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (flop per CSR byte)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title("Roofline: SpMV against the measured memory bandwidth")
    ax.legend(fontsize=8)
    files["roofline"] = _save(fig, out_dir, "roofline.png")

    groups = {}
    for r in rows:
        for c in r.get("bottlenecks") or ["none"]:
            if (v := speedup(r, "scipy")) is not None:
                groups.setdefault(c, []).append(v)
    order = sorted(groups, key=lambda c: CLASSES.index(c) if c in CLASSES else len(CLASSES))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.boxplot([groups[c] for c in order], showfliers=True)
    ax.set_xticks(range(1, len(order) + 1), [f"{c}\n({len(groups[c])})" for c in order])
    ax.axhline(1.0, color="grey", lw=1)
    ax.set_yscale("log")
    ax.set_ylabel("selected vs SciPy")
    ax.set_title("Speedup by bottleneck class")
    files["classes"] = _save(fig, out_dir, "classes.png")
    return files


def _save(fig, out_dir, name):
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=110)
    plt.close(fig)
    return name
