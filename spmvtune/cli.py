"""The ``spmvtune`` command line: one subcommand per capability, ``--json`` for machines."""
import json
import sys
import warnings
from pathlib import Path

import click
import numpy as np

MATRIX_SUFFIXES = (".mtx", ".mtx.gz", ".mtx.bz2", ".tar.gz", ".npz")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spmvtune")
def main():
    """spmvtune: sparse matrix-vector products (y = A x) tuned to this machine.

    \b
    spmvtune analyze FILE       why SpMV is slow on a matrix here, and the fix
    spmvtune machine            this machine's bandwidth, caches, in-cache rate
    spmvtune kernels            the kernel pool and what each kernel targets
    spmvtune bench PATH...      time every kernel against SciPy (and MKL) on files
    spmvtune train [PATH...]    time the pool on many matrices, fit this machine's selector
    spmvtune cache info|clear   the tuning cache of select_kernel decisions
    """


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def kernels(as_json):
    """List the kernels of the pool, the bottleneck classes they target
    (MB memory bandwidth, ML memory latency, IMB imbalance, CMP computation)
    and their tuning options."""
    from .pool import kernel_specs
    specs = [{"name": s.name, "targets": list(s.targets), "summary": s.summary,
              "options": s.options} for s in kernel_specs()]
    if as_json:
        click.echo(json.dumps(specs, indent=2))
        return
    for s in specs:
        opts = " ".join(f"{k}={v}" for k, v in s["options"].items())
        click.echo(f"{s['name']:20s} {','.join(s['targets']) or '-':8s} {s['summary']}"
                   + (f" [{opts}]" if opts else ""))


def matrix_files(paths):
    """Files given, and the matrix files under the directories given, sorted."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(MATRIX_SUFFIXES))
        else:
            out.append(p)
    return out


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--threads", type=int, default=None, help="Threads per SpMV (default: all cores).")
@click.option("--kernel", "kernel_list", multiple=True,
              help="Only these kernels (repeatable; default: the whole pool).")
@click.option("--repeats", type=int, default=10, show_default=True,
              help="Timed runs per contestant (median reported), after 2 warm-up runs.")
@click.option("--mkl/--no-mkl", default=True, show_default=True,
              help="Include Intel MKL (plain CSR and Inspector-Executor) when installed.")
@click.option("--no-cache", is_flag=True,
              help="Select afresh instead of reading select_kernel's tuning cache.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of tables.")
def bench(paths, threads, kernel_list, repeats, mkl, no_cache, as_json):
    """Time every kernel of the pool on matrix files and directories.

    Each kernel's result is checked against SciPy before it is timed; a file
    that cannot be read or a kernel that fails is reported and the sweep goes
    on.  "selected" is what select_kernel(A) picks (with its selection and
    setup seconds).  GFLOP/s = 2 nnz / median time.  Exit status 1 if
    anything failed.
    """
    from . import load, select_kernel
    from .pool import KernelUnusable, kernel_names
    from .timing import gflops, interleaved_medians
    from .validate import check_threads

    threads = check_threads(threads)
    names = list(kernel_list) or list(kernel_names())
    for n in names:
        if n not in kernel_names():
            raise click.BadParameter(f"unknown kernel {n!r}; see `spmvtune kernels`",
                                     param_hint="--kernel")
    files = matrix_files(paths)
    if not files:
        raise click.UsageError("no matrix files found (looked for " + ", ".join(MATRIX_SUFFIXES) + ")")
    mkl_ok = False
    if mkl:
        from .peers import MKLMatrix, mkl_available
        mkl_ok, why = mkl_available()
        if not mkl_ok and not as_json:
            click.echo(f"(MKL skipped: {why})", err=True)
    results, failures = [], 0
    for i, path in enumerate(files, 1):
        if not as_json:
            click.echo(f"[{i}/{len(files)}] {path}", err=True)
        try:
            A = load(path)
        except (ValueError, MemoryError, OSError) as exc:
            failures += 1
            results.append({"matrix": str(path), "error": str(exc)})
            if not as_json:
                click.echo(f"  error: {exc}", err=True)
            continue
        x = np.random.default_rng(0).uniform(-1, 1, A.shape[1])
        y = np.empty(A.shape[0])
        ref = A @ x
        contestants, errors = {"scipy": lambda: A @ x}, {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sel = select_kernel(A, threads=threads, cache=not no_cache)
        contestants["selected"] = lambda: sel.matvec(x, out=y)
        if mkl_ok and max(A.shape) < 2**31:
            for label, opt in (("mkl_csr", False), ("mkl_ie", True)):
                m = MKLMatrix(A, threads, optimize=opt)
                contestants[label] = lambda m=m: m(x, y)
        for name in names:
            try:
                op = select_kernel(A, kernel=name, threads=threads)
                op.matvec(x, out=y)
                scale = np.abs(A) @ np.abs(x)
                if not np.all(np.abs(y - ref) <= 1e-12 * (scale + 1e-300) * (A.nnz + 1)):
                    raise AssertionError("result differs from SciPy")
            except KernelUnusable:
                continue
            except Exception as exc:    # a failing kernel must not stop the sweep
                errors[name] = f"{type(exc).__name__}: {exc}"
                continue
            contestants[name] = lambda op=op: op.matvec(x, out=y)
        med = interleaved_medians(contestants, repeats=repeats)
        row = {"matrix": str(path), "rows": A.shape[0], "cols": A.shape[1], "nnz": int(A.nnz),
               "threads": threads, "gflops": {k: gflops(A.nnz, t) for k, t in med.items()},
               "seconds": med, "kernel_errors": errors,
               "selected": {"kernel": sel.kernel, "threads": sel.threads,
                            "selection_seconds": sel.selection_seconds,
                            "setup_seconds": sel.setup_seconds, "source": sel.selection_source}}
        failures += bool(errors)
        results.append(row)
        if not as_json:
            _print_row(row)
    if as_json:
        click.echo(json.dumps(results, indent=2))
    sys.exit(1 if failures else 0)


def _print_row(row):
    g = row["gflops"]
    ours = {k: v for k, v in g.items() if k not in ("scipy", "mkl_csr", "mkl_ie", "selected")}
    best = max(ours, key=ours.get) if ours else None
    click.echo(f"  {row['rows']} x {row['cols']}, nnz {row['nnz']}, {row['threads']} threads; GFLOP/s:")
    for k, v in sorted(g.items(), key=lambda kv: -kv[1]):
        mark = "  <- best of the pool" if k == best else ""
        click.echo(f"    {k:20s} {v:8.3f}{mark}")
    if best:
        click.echo(f"  best/scipy {ours[best] / g['scipy']:.2f}x"
                   + (f", best/MKL IE {ours[best] / g['mkl_ie']:.2f}x" if "mkl_ie" in g else ""))
    sel = row["selected"]
    click.echo(f"  selected: {sel['kernel']} on {sel['threads']} thread(s) ({sel['source']}; "
               f"selection {sel['selection_seconds'] * 1e3:.1f} ms, setup {sel['setup_seconds'] * 1e3:.1f} ms)")
    for k, e in row["kernel_errors"].items():
        click.echo(f"  kernel {k} FAILED: {e}")


@main.command()
@click.option("--threads", type=int, default=None, help="Largest thread count to measure (default: all).")
@click.option("--refresh", is_flag=True, help="Measure again instead of using the cached profile.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
def machine(threads, refresh, as_json):
    """Measure (once, then cached) what SpMV can expect from this machine:
    caches, read-only and triad memory bandwidth at 1..N threads, the in-cache
    CSR rate and the launch overhead of a threaded call.  The profile is stored
    in the user cache directory (SPMVTUNE_CACHE_DIR overrides), keyed by CPU
    model and thread count."""
    from .machine import machine_profile
    from .validate import check_threads
    if not as_json:
        click.echo("(measuring takes a few seconds; later calls read the cache)", err=True)
    prof = machine_profile(check_threads(threads), refresh=refresh)
    if as_json:
        click.echo(json.dumps(prof.to_dict(), indent=2))
        return
    c = prof.caches
    click.echo(f"CPU            {prof.cpu_model}, {prof.cores} cores, profile for {prof.threads} threads")
    click.echo(f"caches         L1d {c['L1d'] >> 10} KiB, L2 {c['L2'] >> 10} KiB, L3 {c['L3'] >> 20} MiB")
    for t in sorted(prof.read_bandwidth):
        click.echo(f"{t} thread(s)    read {prof.read_bandwidth[t]:6.1f} GB/s   triad "
                   f"{prof.triad_bandwidth[t]:6.1f} GB/s   in-cache CSR {prof.incache_csr_gflops[t]:5.2f} GFLOP/s")
    click.echo(f"launch         {prof.launch_overhead_us:.1f} us extra per threaded call")
    click.echo(f"measured       {prof.measured_at}")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--threads", type=int, default=None, help="Threads per SpMV (default: all cores).")
@click.option("--no-profile", is_flag=True,
              help="Structure only: skip the timed runs (weaker, but costs no products).")
@click.option("--json", "as_json", is_flag=True, help="The same report as one JSON document.")
def analyze(file, threads, no_profile, as_json):
    """Why is SpMV slow on FILE here, and what would fix it?

    Reports the matrix's structural features, the bottleneck classes that hold
    (MB memory bandwidth, ML memory latency, IMB thread imbalance, CMP
    computation) with the measured evidence, the roofline bound, and the
    recommended kernel with its expected speedup over the baseline.
    """
    from . import load
    from .analysis import analyze as run_analysis
    from .validate import check_threads
    try:
        A = load(file)
    except (ValueError, MemoryError) as exc:
        raise click.ClickException(str(exc))
    res = run_analysis(A, threads=check_threads(threads), profile=not no_profile)
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2, default=float))
        return
    f = res.features
    click.echo(f"{file}: {res.shape[0]} x {res.shape[1]}, {res.nnz} nonzeros, "
               f"density {f['density']:.2e}, {res.threads} threads")
    click.echo("\nevidence:")
    for line in res.evidence:
        click.echo(f"  - {line}")
    click.echo("\nbottleneck scores (a class holds at >= 0.5):")
    for cls, v in res.scores.items():
        mark = "  <- holds" if cls in res.bottlenecks else ""
        click.echo(f"  {cls:4s} {v:4.2f} {'#' * round(20 * v):20s}{mark}")
    if not res.profile:
        click.echo("  (from structure only; drop --no-profile for measured evidence)")
    click.echo(f"\nroofline bound   {res.roofline_gflops:.2f} GFLOP/s")
    click.echo(f"recommended      {res.recommended} on {res.recommended_threads} thread(s), "
               f"expected {res.expected_speedup:.2f}x over csr_balanced (estimate)")
    c = res.cost
    click.echo(f"analysis cost    features {c['features_seconds'] * 1e3:.1f} ms "
               f"({c['features_spmvs']:.1f} products), profile {c['profile_seconds'] * 1e3:.1f} ms "
               f"({c['profile_spmvs']:.1f} products)")


@main.group()
def cache():
    """The tuning cache of select_kernel decisions (SQLite in the user cache directory)."""


@cache.command("info")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
def cache_info(as_json):
    """Where the cache is, how many decisions it holds and its size."""
    from .tuning_cache import TuningCache
    info = TuningCache().info()
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(f"{info['path']}: {info['entries']} decisions, {info['bytes'] / 1024:.1f} KiB")


@cache.command("clear")
def cache_clear():
    """Forget every cached decision (the next select_kernel call selects afresh)."""
    from .tuning_cache import TuningCache
    c = TuningCache()
    c.clear()
    click.echo(f"cleared {c.path}")


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Model file to write (default: the user model select_kernel's "
                   "features mode reads).")
@click.option("--store", type=click.Path(dir_okay=False), default=None,
              help="Results store (SQLite; default: training.sqlite in the cache directory). "
                   "A rerun with the same store skips the matrices already measured.")
@click.option("--threads", type=int, default=None, help="Threads per SpMV (default: all cores).")
@click.option("--generated/--no-generated", default=True, show_default=True,
              help="Include the generated families swept over their parameters.")
@click.option("--kind", type=click.Choice(["forest", "tree"]), default="forest", show_default=True)
@click.option("--max-nnz", type=int, default=None, help="Skip larger matrices.")
def train(paths, out, store, threads, generated, kind, max_nnz):
    """Time every kernel on many matrices and fit the selector for this machine.

    PATHS are matrix files or directories (as `bench` takes); the generated
    families add 208 matrices covering every bottleneck class (about 15
    minutes on 2 cores).  Each
    matrix is measured once and stored; interrupting loses at most the matrix
    in progress.  The fitted model is written as JSON (no pickle) and used by
    select_kernel(mode="features") from then on.
    """
    from . import load
    from .machine import cache_dir
    from .model import fit_model, user_model_path
    from .pool import kernel_names
    from .train import ResultsStore, generated_matrices, sweep
    from .validate import check_threads
    threads = check_threads(threads)
    db = ResultsStore(store or cache_dir() / "training.sqlite")
    items = [(str(p), "file:" + p.parent.name, lambda p=p: load(p)) for p in matrix_files(paths)]
    if generated:
        items += list(generated_matrices())
    if not items:
        raise click.UsageError("nothing to train on: give PATHS or keep --generated")

    def progress(i, n, name, rec, seconds):
        best = min(rec["times"], key=rec["times"].get)
        click.echo(f"[{i}/{n}] {name}: nnz {rec['nnz']}, best {best} "
                   f"({rec['times']['csr_balanced'] / rec['times'][best]:.2f}x baseline), "
                   f"{seconds:.1f}s", err=True)
    measured, skipped, failed = sweep(items, db, threads, progress, max_nnz)
    click.echo(f"measured {measured}, already in the store {skipped}, failed {failed}", err=True)
    records = db.records()
    model = fit_model(records, kernel_names(), kind=kind)
    path = Path(out) if out else user_model_path()
    model.save(path)
    click.echo(f"model ({kind}, {model.doc['trained_on']} matrices, classes "
               f"{', '.join(model.classes)}) written to {path}")

