"""Summary figures of a sweep, the summary table, and ``report.md``."""
import math
from collections import Counter, defaultdict

from .measure import NEAR_BEST, OK, SKIPPED, gflops_of

CLASSES = ("MB", "ML", "IMB", "CMP")


def one_line(text):
    """``text`` on one line: control characters (newlines, tabs, escapes)
    written as backslash escapes, so that a file name cannot break a line of
    the terminal output or of report.md."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def md_cell(text):
    """``text`` for a Markdown table cell: one line, '|' and '\\' escaped,
    '<' as an entity (no HTML from a file name)."""
    return one_line(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def geomean(values):
    values = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def speedup(row, over, of="selected"):
    s = row.get("seconds", {})
    if over == BEST_PEER:                 # the faster of MKL IE and dense BLAS
        peers = [s[p] for p in ("mkl_ie", "dense") if p in s]
        return min(peers) / s[of] if peers and of in s and s[of] > 0 else None
    return s[over] / s[of] if of in s and over in s and s[of] > 0 else None


#: Pseudo-peer of :func:`speedup`: the faster of MKL IE and dense BLAS in each row.
BEST_PEER = "best_peer"
OVER = ("scipy", "baseline", "mkl_csr", "mkl_ie", "graphblas", "dense", BEST_PEER)
LABELS = {"scipy": "SciPy", "baseline": "CSR baseline", "mkl_csr": "MKL CSR",
          "mkl_ie": "MKL Inspector-Executor", "graphblas": "GraphBLAS mxv",
          "dense": "dense BLAS", BEST_PEER: "better of MKL IE, dense"}


def summarize(rows):
    """Figures of a sweep (a dict; None where nothing was measured):
    counts, geometric-mean speedups of the selected kernel over the peers,
    selection accuracy and regret (needs --all-kernels), overhead in baseline
    products, per-bottleneck-class counts and speedups, failures."""
    ok = [r for r in rows if r.get("status") == OK or r.get("seconds")]
    s = {"matrices": len(rows),
         "measured": sum(r.get("status") == OK for r in rows),
         "skipped": sum(r.get("status") == SKIPPED for r in rows),
         "failed": sum(r.get("status") not in (OK, SKIPPED) for r in rows)}
    for over in OVER:
        s[f"speedup_vs_{over}"] = geomean(v for r in ok if (v := speedup(r, over)) is not None)
        s[f"n_vs_{over}"] = sum(speedup(r, over) is not None for r in ok)
    vs_dense = [v for r in ok if (v := speedup(r, "dense")) is not None]
    s["min_vs_dense"] = min(vs_dense) if vs_dense else None
    ks = sorted({r.get("vectors", 1) for r in ok})
    s["by_vectors"] = {}
    if len(ks) > 1 or ks != [1]:
        for k in ks:
            rk = [r for r in ok if r.get("vectors", 1) == k]
            d = [v for r in rk if (v := speedup(r, "dense")) is not None]
            s["by_vectors"][k] = {"count": len(rk), "min_vs_dense": min(d) if d else None,
                                  **{f"speedup_vs_{o}": geomean(v for r in rk
                                                                if (v := speedup(r, o)))
                                     for o in OVER}}
    s["oracle_vs_scipy"] = geomean(r["seconds"]["scipy"] / r["oracle_seconds"] for r in ok
                                   if r.get("oracle_seconds") and "scipy" in r["seconds"])
    regrets = [r["regret"] for r in ok if r.get("regret") is not None]
    s["selection_accuracy"] = (sum(g <= NEAR_BEST for g in regrets) / len(regrets)) if regrets else None
    s["mean_regret"] = sum(regrets) / len(regrets) if regrets else None
    s["worst_regret"] = max(regrets) if regrets else None
    costs = sorted(r["selection_products"] for r in ok if r.get("selection_products") is not None)
    s["median_selection_products"] = costs[len(costs) // 2] if costs else None
    s["bandwidth_percent"] = _median(r.get("bandwidth_percent") for r in ok)
    by_class = defaultdict(list)
    for r in ok:
        for c in r.get("bottlenecks") or ["none"]:
            by_class[c].append(r)
    s["classes"] = {c: {"count": len(rs),
                        "speedup_vs_scipy": geomean(v for r in rs if (v := speedup(r, "scipy"))),
                        "speedup_vs_mkl_ie": geomean(v for r in rs if (v := speedup(r, "mkl_ie")))}
                    for c, rs in sorted(by_class.items(), key=lambda kv: _class_order(kv[0]))}
    s["selected_kernels"] = dict(Counter(r["selected_kernel"] for r in ok
                                         if r.get("selected_kernel")).most_common())
    s["failures"] = [{"name": r.get("name"), "status": r.get("status"), "reason": r.get("reason")}
                     for r in rows if r.get("status") not in (OK, SKIPPED)]
    return s


def _median(values):
    v = sorted(x for x in values if x is not None)
    return v[len(v) // 2] if v else None


def _class_order(c):
    return CLASSES.index(c) if c in CLASSES else len(CLASSES)


def _x(v, fmt="{:.2f}x"):
    return "-" if v is None else fmt.format(v)


def summary_lines(s):
    """The summary table as text lines."""
    lines = [f"matrices {s['matrices']}: measured {s['measured']}, skipped {s['skipped']}, "
             f"failed {s['failed']}"]
    for over in OVER:
        label = "SciPy csr_matvec" if over == "scipy" else LABELS[over]
        if s.get(f"n_vs_{over}"):
            lines.append(f"selected vs {label:24s} {_x(s[f'speedup_vs_{over}'])} "
                         f"(geometric mean of {s[f'n_vs_{over}']})")
    if s.get("min_vs_dense") is not None:
        lines.append(f"selected vs dense BLAS, worst {_x(s['min_vs_dense'])}")
    for k, v in (s.get("by_vectors") or {}).items():
        parts = [f"{LABELS[o]} {_x(v[f'speedup_vs_{o}'])}" for o in ("scipy", "mkl_ie", "dense",
                                                                     BEST_PEER)
                 if v[f"speedup_vs_{o}"] is not None]
        worst = f", worst vs dense {_x(v['min_vs_dense'])}" if v["min_vs_dense"] else ""
        lines.append(f"k = {k} ({v['count']} matrices): vs " + ", ".join(parts) + worst)
    if s["oracle_vs_scipy"]:
        lines.append(f"oracle   vs {'SciPy csr_matvec':24s} {_x(s['oracle_vs_scipy'])}")
    if s["mean_regret"] is not None:
        lines.append(f"selection: {s['selection_accuracy']:.0%} within {NEAR_BEST:.0%} of the "
                     f"fastest kernel, mean regret {s['mean_regret']:.1%}, "
                     f"worst {s['worst_regret']:.1%}")
    if s["median_selection_products"] is not None:
        lines.append(f"selection + setup cost: median {s['median_selection_products']:.1f} "
                     "baseline products")
    if s["bandwidth_percent"] is not None:
        lines.append(f"selected kernel: median {s['bandwidth_percent']:.0f}% of the measured "
                     "memory bandwidth (effective CSR bytes)")
    if s["classes"]:
        lines.append("by bottleneck class: " + ", ".join(
            f"{c} {v['count']} ({_x(v['speedup_vs_scipy'])} vs SciPy)"
            for c, v in s["classes"].items()))
    for f in s["failures"]:
        lines.append(f"{str(f['status']).upper()}: {one_line(f['name'])}: {one_line(f['reason'])}")
    return lines


def write_markdown(path, rows, s, plots, context):
    """``report.md``: context, summary, plots, the per-matrix table."""
    out = ["# spmvtune bench report", ""]
    out += [f"- {k}: {v}" for k, v in context.items()]
    out += ["", "## Summary", "", "```", *summary_lines(s), "```", ""]
    titles = {"speedup": "Speedup per matrix", "roofline": "Roofline",
              "classes": "Speedup by bottleneck class"}
    for key, file in plots.items():
        out += [f"## {titles.get(key, key)}", "", f"![{key}]({file})", ""]
    out += ["## Per matrix", "",
            "GFLOP/s of each contestant; speedups are of the selected kernel.", "",
            "| matrix | nnz | bottlenecks | selected | GFLOP/s selected | SciPy | MKL IE "
            "| vs SciPy | vs MKL IE | vs dense | GB/s (% bandwidth) | status |",
            "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        g = gflops_of(r) if r.get("seconds") else {}
        status = r.get("status", "") + (f": {r['reason']}" if r.get("reason") else "")
        out.append("| " + " | ".join([
            md_cell(r.get("name")), str(r.get("nnz", "")), ",".join(r.get("bottlenecks") or []) or "-",
            str(r.get("selected_kernel") or "-"), _x(g.get("selected"), "{:.2f}"),
            _x(g.get("scipy"), "{:.2f}"), _x(g.get("mkl_ie"), "{:.2f}"),
            _x(speedup(r, "scipy")), _x(speedup(r, "mkl_ie")), _x(speedup(r, "dense")),
            (f"{r['gbps']:.1f} ({r['bandwidth_percent']:.0f}%)" if r.get("gbps") else "-"),
            md_cell(status)]) + " |")
    out += _kernel_table(rows)
    path.write_text("\n".join(out) + "\n")
    return path


def _kernel_table(rows):
    """With --all-kernels: every kernel's speed beside the memory its storage
    takes (a time-memory choice; ``select_kernel(max_extra_bytes=...)``)."""
    rows = [r for r in rows if len(r.get("kernel_bytes") or {}) > 1 and r.get("seconds")]
    if not rows:
        return []
    out = ["", "## Every kernel: speed and storage", "",
           "Storage: the kernel's prepared matrix (x and y excluded), in MB and in bytes per "
           "nonzero; plain CSR with 32-bit indices takes 12 per nonzero in float64.", "",
           "| matrix | kernel | GFLOP/s | storage MB | bytes / nonzero |",
           "|---|---|---:|---:|---:|"]
    for r in rows:
        g = gflops_of(r)
        nnz = max(int(r.get("nnz") or 0), 1)
        for label, nbytes in sorted(r["kernel_bytes"].items(), key=lambda kv: -g.get(kv[0], 0)):
            name = BASELINE_LABEL if label == "baseline" else label
            out.append(f"| {md_cell(r.get('name'))} | {md_cell(name)} | "
                       f"{_x(g.get(label), '{:.2f}')} | {nbytes / 1e6:.2f} | {nbytes / nnz:.1f} |")
    return out


#: What the baseline contestant of a row is.
BASELINE_LABEL = "csr_balanced (baseline)"
