"""The ``spmvtune`` command line: one subcommand per capability, ``--json`` for machines."""
import json
import os
import re
import shlex
import sys
import time
import warnings
from pathlib import Path

import click
import numpy as np

# imported here, not when an error happens: an out-of-memory error must still be reported
from .bench.report import one_line
from .io import MatrixLoadError
from .pool import KernelUnusable


class _Main(click.Group):
    """The command group, with one error handler for every command: an error
    is one line on stderr (``Error: ...``), or with ``--json`` one JSON object
    ``{"error": ..., "exit_code": ...}`` on stdout, never a traceback (set
    SPMVTUNE_DEBUG=1 to see one).  Exit status 2 for usage errors, 130 when
    interrupted, 1 otherwise."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        as_json = "--json" in argv[:argv.index("--") if "--" in argv else len(argv)]
        try:
            with warnings.catch_warnings():       # a warning is one line on stderr too
                warnings.showwarning = _show_warning
                code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()                    # a command group called alone: its help, as click does
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            hint = (f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else "")
            _fail(exc.format_message() + hint, exc.exit_code, as_json)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code, as_json)
        except (KeyboardInterrupt, click.exceptions.Abort):
            _fail("interrupted", 130, as_json)
        except Exception as exc:          # noqa: BLE001 - the one place errors become messages
            if os.environ.get("SPMVTUNE_DEBUG"):
                raise
            _fail(_describe(exc), 1, as_json)
        if standalone_mode:
            sys.exit(code or 0)
        return code


def _describe(exc):
    """A one-line message for an exception that escaped a command."""
    if isinstance(exc, (MatrixLoadError, KernelUnusable)):
        return str(exc)
    if isinstance(exc, MemoryError):
        return f"out of memory{': ' + str(exc) if str(exc) else ''}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror}"
    if isinstance(exc, ValueError) and str(exc):
        return str(exc)
    return (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) + \
        " (an internal error: set SPMVTUNE_DEBUG=1 for the traceback)"


def _show_warning(message, category, filename, lineno, file=None, line=None):
    click.echo(f"Warning: {one_line(str(message))}", err=True)


def _fail(message, code, as_json):
    message = one_line(message.strip()) or "failed"
    if as_json:
        click.echo(json.dumps({"error": message, "exit_code": code}))
    else:
        click.echo(f"Error: {message}", err=True)
    sys.exit(code)


class _Threads(click.ParamType):
    """--threads: a whole number in 1..NUMBA_NUM_THREADS (checked when parsed)."""
    name = "N"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int) and not isinstance(value, bool):
            n = value
        else:
            try:
                n = int(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a whole number", param, ctx)
        if n is None:
            return None
        import numba
        limit = numba.config.NUMBA_NUM_THREADS
        if not 1 <= n <= limit:
            self.fail(f"{n} is not in 1..{limit} (the threads Numba may use here; "
                      "NUMBA_NUM_THREADS)", param, ctx)
        return n


THREADS = _Threads()


#: The largest k the CLI accepts for --vectors.
MAX_VECTORS = 4096


def parse_vectors(text, flag="--vectors"):
    """'1,8,64' -> (1, 8, 64): right-hand sides per product, each in 1..MAX_VECTORS."""
    try:
        ks = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}",
                                 param_hint=flag) from None
    if not ks or any(not 1 <= k <= MAX_VECTORS for k in ks):
        raise click.BadParameter(f"each k must be in 1..{MAX_VECTORS}, got {text!r}",
                                 param_hint=flag)
    return tuple(dict.fromkeys(ks))




@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spmvtune")
def main():
    """spmvtune: sparse matrix-vector products (y = A x) tuned to this machine.

    \b
    spmvtune analyze FILE       why SpMV is slow on a matrix here, and the fix
    spmvtune machine            this machine's bandwidth, caches, in-cache rate
    spmvtune kernels            the kernel pool and what each kernel targets
    spmvtune bench PATH...      sweep matrices: selected kernel vs SciPy and MKL
    spmvtune train [PATH...]    time the pool on many matrices, fit this machine's selector
    spmvtune emit FILE          the chosen kernel as standalone C (OpenMP)
    spmvtune solve FILE         solve A x = b (CG, BiCGSTAB, GMRES), optionally against SciPy
    spmvtune cache info|clear   the tuning cache of select_kernel decisions
    """


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def kernels(as_json):
    """List the kernels of the pool, the bottleneck classes they target
    (MB memory bandwidth, ML memory latency, IMB imbalance, CMP computation),
    their tuning options and the value types they run (all of float32,
    float64, complex64, complex128 unless said); kernels marked [k>1] serve
    many right-hand sides (select_kernel(A, n_vectors=k)); --json adds every
    fact of the registry (thread balance, value types, C template, ...)."""
    from .pool import kernel_specs
    from .pool.registry import DTYPES
    specs = [{"name": s.name, "targets": list(s.targets), "summary": s.summary,
              "options": s.options, "balance": s.balance, "serial_only": s.serial_only,
              "shares_input": s.shares_input, "dtypes": list(s.dtypes),
              "min_vectors": s.min_vectors, "max_vectors": s.max_vectors,
              "siblings": list(s.siblings), "setup_products": s.setup_products,
              "c_template": s.c_template}
             for s in kernel_specs()]
    if as_json:
        click.echo(json.dumps(specs, indent=2))
        return
    for s in specs:
        opts = " ".join(f"{k}={v}" for k, v in s["options"].items())
        types = "" if set(s["dtypes"]) == set(DTYPES) else f" ({', '.join(s['dtypes'])} only)"
        many = " [k>1]" if s["min_vectors"] > 1 else ""
        click.echo(f"{s['name']:22s} {','.join(s['targets']) or '-':8s} {s['summary']}"
                   + (f" [{opts}]" if opts else "") + types + many)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--suite", "suites", multiple=True, metavar="NAME",
              help="A bundled generated suite: 'quick' (8 matrices, about a minute), "
                   "'large' (6 out-of-cache matrices of 12-29M nonzeros) or 'pruned' (12 "
                   "pruned network layers up to 4096 x 25088, at k = 1, 8, 64). Repeatable.")
@click.option("--ssget", "ssget_query", metavar="QUERY",
              help="Download a SuiteSparse selection with ssgetpy, e.g. 'HB/bcsstk13' or "
                   "'group=HB,nzbounds=1000:200000,limit=20' (needs the network).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Results directory: results.sqlite (each matrix committed as soon as "
                   "measured; a rerun skips what is done), results.csv, PNG plots, report.md.")
@click.option("--threads", type=THREADS, default=None, help="Threads per SpMV (default: all cores).")
@click.option("--one-thread", is_flag=True, help="Add the selected kernel on 1 thread as a column.")
@click.option("--all-kernels", is_flag=True,
              help="Time every kernel of the pool too: the fastest is the oracle, giving "
                   "selection accuracy and regret (slower).")
@click.option("--kernel", "kernel_list", multiple=True,
              help="With --all-kernels, only these kernels (repeatable).")
@click.option("--repeats", type=int, default=10, show_default=True,
              help="Timed rounds per contestant (median reported), after 2 warm-up calls.")
@click.option("--mkl/--no-mkl", default=True, show_default=True,
              help="Include Intel MKL (plain CSR and Inspector-Executor) when installed "
                   "(pip install 'spmvtune[peers]').")
@click.option("--graphblas/--no-graphblas", default=True, show_default=True,
              help="Include SuiteSparse:GraphBLAS (python-graphblas mxv, the product alone) "
                   "when installed (pip install 'spmvtune[peers]').")
@click.option("--no-cache", is_flag=True,
              help="Select afresh instead of reading select_kernel's tuning cache.")
@click.option("--max-nnz", type=int, default=None, help="Skip (and record) larger matrices.")
@click.option("--dtype", type=click.Choice(["float32", "float64", "complex64", "complex128"]),
              default=None,
              help="Measure every matrix converted to this value type (default: as loaded: "
                   "float64, complex128 for complex files, an .npz file's own type); SciPy "
                   "runs the same types; MKL runs float64 only.")
@click.option("--limit", type=int, default=None, help="At most this many matrices.")
@click.option("--timeout", type=float, default=None,
              help="Seconds per matrix: past it the worker process measuring the matrix is "
                   "killed and replaced, and the matrix recorded as a timeout.")
@click.option("--scheduler", metavar="ADDRESS",
              help="Measure on a Dask distributed cluster (e.g. tcp://host:8786); matrix "
                   "files must be readable at the same paths on the workers.")
@click.option("--retry-failed", is_flag=True, help="Measure again what failed or timed out.")
@click.option("--in-process", is_flag=True,
              help="Measure in this process instead of a worker process: starts faster, but "
                   "a crash in native code ends the sweep (no --timeout).")
@click.option("--vectors", "vectors_text", default=None, metavar="K[,K...]",
              help="Right-hand sides per product, e.g. 1,8,64: each matrix is measured once "
                   "per k (k > 1: Y = A X with row-major X, select_kernel(A, n_vectors=k), "
                   "MKL mkl_sparse_d_mm). Default 1; the pruned suite: 1,8,64.")
@click.option("--dense/--no-dense", "dense", default=None,
              help="Dense BLAS (NumPy on the dense matrix, same thread count) as a peer. "
                   "Default: on with --vectors or the pruned suite.")
@click.option("--threshold", type=click.FloatRange(min=0), default=None,
              help="Drop entries with |a| <= THRESHOLD when loading (dense .npy weights: "
                   "the default drops exact zeros).")
@click.option("--json", "as_json", is_flag=True, help="Summary and rows as one JSON document.")
def bench(paths, suites, ssget_query, out_dir, threads, one_thread, all_kernels, kernel_list,
          repeats, mkl, graphblas, no_cache, max_nnz, dtype, limit, timeout, scheduler,
          retry_failed, in_process, vectors_text, dense, threshold, as_json):
    """Sweep matrices and compare the selected kernel with SciPy and MKL.

    PATHS are matrix files (.mtx, .mtx.gz, .mtx.bz2, SuiteSparse .tar.gz, .npz,
    dense .npy weights) and directories (searched recursively).  Per matrix: SciPy, the CSR
    baseline, the kernel select_kernel picks (with its selection and setup
    cost), MKL when installed, and with --all-kernels the whole pool; every
    result is checked against SciPy before it is timed.  Reported: GFLOP/s
    (2 nnz / median time), effective GB/s and % of this machine's measured
    bandwidth, bottleneck classes, and a summary of geometric-mean speedups.

    Each matrix is measured in a worker process: a malformed file, a crash
    in native code or a timeout costs that matrix's row (stored with its
    reason), never the sweep.

    \b
    Exit status: 0 all measured (or skipped by a filter), 1 something failed
    (unreadable file, kernel error, crash, timeout), 130 interrupted (rerun
    with the same --out to resume).
    """
    from .bench.items import SUITE_VECTORS, SUITES, file_items, suite_items, with_vectors
    from .bench.measure import OK, SKIPPED, Options
    from .machine import cache_dir, machine_profile
    from .pool import kernel_names
    from .validate import check_threads

    threads = check_threads(threads)
    for n in kernel_list:
        if n not in kernel_names():
            raise click.BadParameter(f"unknown kernel {n!r}; see `spmvtune kernels`",
                                     param_hint="--kernel")
    for name in suites:
        if name not in SUITES:
            raise click.BadParameter(f"no suite {name!r}; bundled: {', '.join(SUITES)}",
                                     param_hint="--suite")
    for flag, value in (("--max-nnz", max_nnz), ("--limit", limit), ("--repeats", repeats)):
        if value is not None and value < 1:
            raise click.BadParameter("must be at least 1", param_hint=flag)
    if timeout is not None and timeout <= 0:
        raise click.BadParameter("must be positive", param_hint="--timeout")
    if in_process and (timeout is not None or scheduler):
        raise click.UsageError("--in-process measures here: it cannot take --timeout or "
                               "--scheduler")
    say = (lambda msg: None) if as_json else (lambda msg: click.echo(msg, err=True))

    vectors = parse_vectors(vectors_text) if vectors_text else None
    items = with_vectors(file_items(paths), vectors or (1,))
    for name in suites:
        items += with_vectors(suite_items(name), vectors or SUITE_VECTORS.get(name, (1,)))
    if ssget_query:
        from .bench.ssget import download
        dest = Path(out_dir) / "ssget" if out_dir else cache_dir() / "ssget"
        try:
            items += with_vectors(file_items(download(ssget_query, dest, log=say)),
                                  vectors or (1,))
        except (RuntimeError, ValueError) as exc:
            raise click.ClickException(str(exc))
    items = list({i.key: i for i in items}.values())[:limit]
    if dtype:                        # its own rows in a results store, beside the as-loaded ones
        import dataclasses
        items = [dataclasses.replace(i, key=f"{i.key}#{dtype}", name=f"{i.name} ({dtype})")
                 for i in items]
    if not items:
        raise click.UsageError("nothing to measure: give matrix files or directories, "
                               "--suite quick, or --ssget QUERY")

    if dense is None:
        dense = vectors is not None or "pruned" in suites
    opts = Options(threads=threads, repeats=repeats, all_kernels=all_kernels or bool(kernel_list),
                   one_thread=one_thread, mkl=mkl, graphblas=graphblas, cache=not no_cache,
                   max_nnz=max_nnz, kernels=tuple(kernel_list), dtype=dtype, dense=dense,
                   threshold=threshold)
    from .machine import profile_path
    if not profile_path(threads).exists():
        say("(measuring this machine's bandwidth once; later runs read the cache)")
    prof = machine_profile(threads)
    if mkl:
        from .peers import mkl_available
        ok, why = mkl_available()
        if not ok:
            say(f"(MKL columns skipped: {why})")
    store = None
    todo = items
    if out_dir:
        from .bench.store import BenchStore
        try:
            store = BenchStore(out_dir)
        except ValueError as exc:
            raise click.ClickException(str(exc))
        done = store.done(threads, retry_failed)
        todo = [i for i in items if i.key not in done]
        if len(todo) < len(items):
            say(f"{len(items) - len(todo)} of {len(items)} matrices already in {store.path}; "
                f"measuring {len(todo)}")
    measured = []
    try:
        interrupted = _run_sweep(todo, opts, timeout, scheduler, store, say, as_json,
                                 not in_process, measured)
    finally:                          # whatever happened, what was measured is reported
        rows = measured
        if store:
            keys = {i.key for i in items}
            rows = [r for r in store.rows(threads) if r["matrix"] in keys]
        _report(rows, prof, threads, store, out_dir, as_json, say)
    if interrupted:
        say(f"interrupted: {len(todo) - len(measured)} matrices not measured"
            + (f"; rerun with --out {out_dir} to resume" if out_dir else ""))
        sys.exit(130)
    sys.exit(0 if all(r.get("status") in (OK, SKIPPED) for r in rows) else 1)


def _run_sweep(todo, opts, timeout, scheduler, store, say, as_json, isolate, rows):
    """Measure ``todo``, storing each row as it arrives and appending it to
    ``rows``.  Returns whether the sweep was interrupted."""
    from tqdm import tqdm

    from .bench.runner import run_distributed, run_local
    bar = tqdm(total=len(todo), unit="matrix", file=sys.stderr, disable=as_json or None,
               dynamic_ncols=True)
    start = time.perf_counter()

    def announce(items):
        for item in items:
            bar.set_description_str(item.name[:30])
            yield item
    try:
        if scheduler:
            source = run_distributed(todo, opts, scheduler, timeout)
        else:
            source = run_local(announce(todo), opts, timeout, isolate=isolate)
        for row in source:
            if store:
                store.put(row)
            rows.append(row)
            bar.update()
            if not as_json:
                done = len(rows)
                eta = (time.perf_counter() - start) / done * (len(todo) - done)
                # without a terminal the bar is off: the count and ETA go on each line
                where = f"[{done}/{len(todo)}] " + (f"(ETA {eta / 60:.1f} min) " if bar.disable
                                                    and done < len(todo) else "")
                bar.write(where + _row_line(row), file=sys.stderr)
    except KeyboardInterrupt:
        bar.close()
        return True
    except RuntimeError as exc:          # unreachable scheduler, missing extra
        bar.close()
        raise click.ClickException(str(exc))
    bar.close()
    return False


def _row_line(row):
    from .bench.measure import OK, gflops_of
    from .bench.report import one_line, speedup
    name = one_line(row["name"])
    if row.get("status") != OK and not row.get("seconds"):
        return f"{name}: {row['status'].upper()}: {one_line(row.get('reason'))}"
    g = gflops_of(row)
    sel = f"{row['selected_kernel']} x{row['selected_threads']}"
    parts = [f"{name}: nnz {row['nnz']}",
             (f"{sel} {g['selected']:.2f} GFLOP/s {row['gbps']:.1f} GB/s "
              f"({row['bandwidth_percent']:.0f}% bw)") if "selected" in g
             else f"selected {sel} failed its check"]
    for peer, label in (("scipy", "SciPy"), ("mkl_ie", "MKL IE"), ("dense", "dense")):
        if (v := speedup(row, peer)) is not None:
            parts.append(f"{v:.2f}x {label}")
    if row.get("oracle_kernel"):
        parts.append(f"oracle {row['oracle_kernel']}"
                     + (f" (regret {row['regret']:.0%})" if row.get("regret") is not None else ""))
    parts.append(",".join(row.get("bottlenecks") or []) or "no bottleneck")
    line = ", ".join(parts)
    if row.get("reason"):
        line += f"; FAILED: {one_line(row['reason'])}"
    return line


def _report(rows, prof, threads, store, out_dir, as_json, say):
    """Summary to the terminal (or JSON); with --out also CSV, plots, report.md."""
    import platform

    from . import __version__
    from .bench.report import summarize, summary_lines, write_markdown
    summary = summarize(rows)
    written = {}
    if store:
        written["csv"] = store.export_csv(rows)
        try:
            from .bench.plots import write_plots
            plots = write_plots(store.dir, rows, prof.bandwidth(threads), prof.incache_rate(threads))
        except ImportError:
            plots = {}
            say("(plots skipped: matplotlib is not installed)")
        context = {"machine": f"{prof.cpu_model}, {prof.cores} cores",
                   "threads": threads,
                   "measured bandwidth": f"{prof.bandwidth(threads):.1f} GB/s (read)",
                   "python": platform.python_version(),
                   "spmvtune": __version__}
        written["report"] = write_markdown(store.dir / "report.md", rows, summary, plots, context)
        store.close()
    if as_json:
        click.echo(json.dumps({"summary": summary, "rows": rows}, indent=2, default=float))
        return
    click.echo("")
    for line in summary_lines(summary):
        click.echo(line)
    if written:
        click.echo(f"\nwritten: {written['csv']}, {written['report']} (with PNG plots)")


@main.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="The .c file to write (default: <matrix>_<kernel>.c here).")
@click.option("--kernel", help="Emit this kernel instead of the one select_kernel picks.")
@click.option("--header", is_flag=True, help="Also write the matching .h next to the .c.")
@click.option("--prefix", help="Prefix of the C functions (default: spmvtune_<kernel>).")
@click.option("--index-bits", type=click.Choice(["32", "64"]), default=None,
              help="Width of the CSR index arrays the C code takes (default: 32 when the "
                   "matrix fits, else 64).")
@click.option("--threads", type=THREADS, default=None, help="Threads to tune for (default: all cores).")
@click.option("--dtype", type=click.Choice(["float32", "float64", "complex64", "complex128"]),
              default=None,
              help="Value type of the C code (double, float, double complex, float complex; "
                   "default: the matrix's, complex128 for complex files).")
@click.option("--list", "list_only", is_flag=True, help="List the C templates and exit.")
@click.option("--vectors", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="Right-hand sides per product to select for (k > 1: the many-vector "
                   "kernels, whose C code also has <prefix>_matmat for Y = A X).")
@click.option("--threshold", type=click.FloatRange(min=0), default=None,
              help="Drop entries with |a| <= THRESHOLD when loading (dense .npy weights: "
                   "the default drops exact zeros).")
def emit(file, output, kernel, header, prefix, index_bits, threads, dtype, list_only, vectors,
         threshold):
    """Write the kernel chosen for FILE as standalone C99 + OpenMP source.

    The source holds the SpMV function over raw arrays, the conversion from
    plain CSR to the kernel's storage (in C), and a header comment with the
    matrix fingerprint, its bottleneck classes, the speed measured here and a
    usage example.  Build it with  cc -O3 -march=native -fopenmp -c FILE.c
    """
    from .pool import get_kernel, kernel_names, kernel_specs
    if list_only:
        for spec in kernel_specs():
            if spec.c_template:
                note = f"  ({spec.c_note})" if spec.c_note else ""
                click.echo(f"{spec.name:22s} kernels/{spec.c_template}{note}")
            else:
                click.echo(f"{spec.name:22s} no C template")
        return
    if file is None:
        raise click.UsageError("give a matrix FILE (or --list)")
    if kernel is not None and kernel not in kernel_names():
        raise click.BadParameter(f"unknown kernel {kernel!r}; see `spmvtune emit --list`",
                                 param_hint="--kernel")
    from . import load, select_kernel
    from .emit import render
    from .pool import KernelUnusable
    from .timing import gflops, interleaved_medians
    from .tuning_cache import matrix_fingerprint
    from .validate import as_canonical_csr, check_threads
    bits = None
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(file).name.split(".")[0]) or "matrix"
    out = Path(output) if output else None
    if out is not None and header and out.with_suffix(".h").name.lower() == out.name.lower():
        raise click.BadParameter(f"with --header the source and the header would both be "
                                 f"{out}: name the .c file", param_hint="-o/--output")
    if out is not None and not out.parent.is_dir():
        raise click.BadParameter(f"directory {out.parent} does not exist", param_hint="-o/--output")
    A = load(file, threshold=threshold)
    if dtype:
        from .validate import as_value_type
        A = as_value_type(A, dtype)
    threads = check_threads(threads)
    try:
        op = select_kernel(A, kernel=kernel, threads=threads, n_vectors=vectors)
    except KernelUnusable as exc:
        raise click.ClickException(str(exc))
    if not get_kernel(op.kernel).c_template:
        raise click.ClickException(f"{op.kernel} has no C template")
    from .analysis import structural_bottlenecks
    bottlenecks = list(op.bottlenecks) or structural_bottlenecks(A, threads)
    if vectors > 1:
        X = np.ones((A.shape[1], vectors), A.dtype)
        Y = np.empty((A.shape[0], vectors), A.dtype)
        speed = gflops(A.nnz * vectors,
                       interleaved_medians({"k": lambda: op.matmat(X, out=Y)}, repeats=5)["k"])
    else:
        x = np.ones(A.shape[1], A.dtype)
        y = np.empty(A.shape[0], A.dtype)
        speed = gflops(A.nnz, interleaved_medians({"k": lambda: op.matvec(x, out=y)},
                                                  repeats=5)["k"])
    bits = int(index_bits) if index_bits else (32 if max(A.shape[1], A.nnz) < 2**31 else 64)
    out = out or Path(f"{name}_{op.kernel}.c")
    from .machine import cpu_model
    prof_cpu = cpu_model()
    notes = [f"Matrix: {file} ({A.shape[0]} x {A.shape[1]}, {A.nnz} nonzeros, {A.dtype.name})",
             f"Fingerprint: {matrix_fingerprint(as_canonical_csr(A))}",
             f"Bottlenecks: {', '.join(bottlenecks) or 'none'}",
             f"Chosen by: {op.selection_source} for {op.threads} thread(s)"
             + (f", {vectors} right-hand sides" if vectors > 1 else ""),
             f"Expected: {speed:.2f} GFLOP/s (the Numba twin, measured on {prof_cpu})"]
    try:
        em = render(op.kernel, prefix=prefix, op=op, index_bits=bits, notes=notes, c_file=out.name)
    except ValueError as exc:
        raise click.ClickException(str(exc))
    written = [out] + ([out.with_suffix(".h")] if header else [])
    for path in written:
        if _same_file(path, file):
            raise click.BadParameter(f"{path} is the matrix FILE itself: writing the C source "
                                     "there would destroy it", param_hint="-o/--output")
    for path, text in zip(written, (em.source, em.header)):
        try:
            path.write_text(text)
        except OSError as exc:
            raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}")
    click.echo(f"{op.kernel} ({', '.join(bottlenecks) or 'no bottleneck'}; {speed:.2f} GFLOP/s here) "
               f"written to {', '.join(map(str, written))}", err=True)
    click.echo(f"build: cc -O3 -march=native -fopenmp -c {shlex.quote(str(out))}", err=True)


def _same_file(a, b):
    """Whether paths ``a`` and ``b`` name one existing file (links followed)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@main.command()
@click.option("--threads", type=THREADS, default=None, help="Largest thread count to measure (default: all).")
@click.option("--refresh", is_flag=True, help="Measure again instead of using the cached profile.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
def machine(threads, refresh, as_json):
    """Measure (once, then cached) what SpMV can expect from this machine:
    caches, read-only and triad memory bandwidth at 1..N threads, the in-cache
    CSR rate, the launch overhead of a threaded call, and for many vectors the
    rates of dense BLAS and of spmm_csr (X in the L2 / in the L3).  The profile is stored
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
    for t in sorted(prof.read_bandwidth):
        click.echo(f"{t} thread(s)    k vectors: dense BLAS "
                   + " ".join(f"k={k} {prof.dense_rate(t, k):.1f}" for k in (1, 8, 64))
                   + ", spmm_csr X in L2 / L3 "
                   + " ".join(f"k={k} {prof.spmm_rate(t, k):.1f}/{prof.spmm_rate(t, k, 'L3'):.1f}"
                              for k in (8, 64)) + " GFLOP/s")
    click.echo(f"measured       {prof.measured_at}")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--threads", type=THREADS, default=None, help="Threads per SpMV (default: all cores).")
@click.option("--no-profile", is_flag=True,
              help="Structure only: skip the timed runs (weaker, but costs no products).")
@click.option("--json", "as_json", is_flag=True, help="The same report as one JSON document.")
@click.option("--vectors", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="Right-hand sides per product (Y = A X with k columns): the best pair and "
                   "the sparse/dense crossover are reported for this k.")
@click.option("--measure-crossover", is_flag=True,
              help="Also measure the crossover: time pruned layers of this shape at 9 "
                   "densities, sparse against dense BLAS (seconds to minutes).")
@click.option("--threshold", type=click.FloatRange(min=0), default=None,
              help="Drop entries with |a| <= THRESHOLD when loading (dense .npy weights: "
                   "the default drops exact zeros).")
def analyze(file, threads, no_profile, as_json, vectors, measure_crossover, threshold):
    """Why is SpMV slow on FILE here, and what would fix it?

    Reports the matrix's structural features, the bottleneck classes that hold
    (MB memory bandwidth, ML memory latency, IMB thread imbalance, CMP
    computation) with the measured evidence, the roofline bound, and the
    recommended kernel with its expected speedup over the baseline.  For k
    right-hand sides (--vectors): the cost model's best pair and the density
    above which dense BLAS beats the sparse kernels for this shape (predicted;
    measured with --measure-crossover).
    """
    from . import load
    from .analysis import analyze as run_analysis
    from .validate import check_threads
    A = load(file, threshold=threshold)
    say = (lambda msg: None) if as_json else (lambda msg: click.echo(msg, err=True))
    if measure_crossover:
        say("(measuring the crossover: pruned layers of this shape at 9 densities)")
    res = run_analysis(A, threads=check_threads(threads), profile=not no_profile,
                       n_vectors=vectors, measure_crossover=measure_crossover)
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
    for line in _crossover_lines(res.crossover):
        click.echo(line)


def _crossover_lines(x):
    """The many-vector and crossover lines of ``analyze``'s report."""
    if not x:
        return []
    k = x["n_vectors"]
    what = "y = A x" if k == 1 else f"Y = A X, {k} vectors"
    lines = [f"\n{what}:"]
    if x.get("best_kernel"):
        lines.append(f"  best predicted  {x['best_kernel']} on {x['best_threads']} thread(s), "
                     f"{x['best_seconds'] * 1e3:.3g} ms per product")

    def verdict(c):
        if c.get("density") is not None:
            return f"density {c['density']:.3g}"
        return f"none in the range: {c.get('wins')} wins at every density"
    lines.append(f"  sparse/dense    {x['dense_kernel']} wins above the crossover; predicted "
                 f"{verdict(x)} (this matrix: {x['matrix_density']:.3g}, "
                 f"{x.get('here', 'sparse')} is faster here)")
    if x.get("reason"):
        lines.append(f"                  ({x['reason']})")
    m = x.get("measured")
    if m:
        pts = ", ".join(f"{p['density']:g}: {p['dense_seconds'] / p['sparse_seconds']:.2f}x"
                        for p in m["points"])
        lines.append(f"  measured        {verdict(m)} (sparse speedup over dense by density: {pts})")
    return lines


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
@click.option("--files-from", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A text file listing matrix files, one per line (added to PATHS).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Directory for the fitted models costmodel.json and model.json "
                   "(default: the user cache directory, where select_kernel reads them).")
@click.option("--store", type=click.Path(dir_okay=False), default=None,
              help="Results store (SQLite; default: training.sqlite in the cache directory). "
                   "A rerun with the same store skips the matrices already measured.")
@click.option("--threads", type=THREADS, default=None,
              help="Most threads per SpMV (default: all cores); every kernel is timed at 1 "
                   "and at this many.")
@click.option("--generated/--no-generated", default=True, show_default=True,
              help="Include the generated families swept over their parameters.")
@click.option("--kind", type=click.Choice(["forest", "tree"]), default="forest", show_default=True,
              help="The classifier fitted beside the cost model (select_kernel's mode='features').")
@click.option("--max-nnz", type=int, default=None, help="Skip larger matrices.")
@click.option("--scheduler", metavar="ADDRESS",
              help="Measure on a Dask distributed cluster (e.g. tcp://host:8786), one matrix "
                   "at a time per worker; matrix files must be readable at the same paths there.")
@click.option("--repeats", type=click.IntRange(1), default=7, show_default=True,
              help="Timed rounds per pair (median kept).")
@click.option("--batch-seconds", type=click.FloatRange(min=0, min_open=True), default=0.02,
              show_default=True,
              help="Each timed sample is a batch of products lasting at least this long.")
@click.option("--fit-only", is_flag=True, help="Measure nothing: fit the models on the store.")
@click.option("--vectors", "vectors_text", default="1", show_default=True, metavar="K[,K...]",
              help="Right-hand sides per product to time, e.g. 1,8,64: k > 1 times the "
                   "many-vector kernels (Y = A X) and fits their coefficients per k. A matrix "
                   "already in the store is measured at the missing k only.")
@click.option("--pruned/--no-pruned", default=None,
              help="Include pruned weight matrices (unstructured, block, 2:4, channel, "
                   "quantized; ~50 layers). Default: when --vectors has a k > 1.")
def train(paths, files_from, out, store, threads, generated, kind, max_nnz, scheduler, repeats,
          batch_seconds, fit_only, vectors_text, pruned):
    """Time every (kernel, threads) pair on many matrices and fit this machine's selector.

    PATHS are matrix files or directories (as `bench` takes); the generated
    families add several hundred matrices covering every bottleneck class (an
    hour or two on 2 cores).  Each matrix is measured once and stored as soon
    as it is measured: interrupting loses at most the matrix in progress, and a
    rerun with the same --store goes on where it stopped.  Then the cost model
    (what select_kernel's default mode uses) and a random forest are fitted on
    everything in the store and written as JSON (no pickle).
    """
    from . import load
    from .costmodel import fit as fit_cost_model, record_group
    from .machine import cache_dir, machine_profile
    from .model import fit_model
    from .pool import kernel_names, kernel_specs
    from .train import ResultsStore, generated_matrices, pruned_matrices, sweep
    from .validate import check_threads
    threads = check_threads(threads)
    vectors = parse_vectors(vectors_text, "--vectors")
    db = ResultsStore(store or cache_dir() / "training.sqlite", write=not fit_only)  # ValueError
    from .bench.items import file_items
    listed = list(paths)
    if files_from:
        listed += [line.strip() for line in Path(files_from).read_text().splitlines()
                   if line.strip() and not line.startswith("#")]
    items = [(i.key, "file:" + Path(i.ref).parent.name, lambda i=i: load(i.ref))
             for i in file_items(listed)]
    if generated:
        items += list(generated_matrices())
    if pruned or (pruned is None and max(vectors) > 1):
        items += list(pruned_matrices())
    if not items and not fit_only:
        raise click.UsageError("nothing to train on: give PATHS or keep --generated")

    def progress(i, n, name, rec, seconds):
        if "error" in rec:
            click.echo(f"[{i}/{n}] {name}: FAILED: {rec['error']}", err=True)
            return
        from .model import single_vector_times
        one = single_vector_times(rec["times"])
        if not one:
            click.echo(f"[{i}/{n}] {name}: nnz {rec['nnz']}, {len(rec['times'])} pairs timed, "
                       f"{seconds:.1f}s", err=True)
            return
        best = min(one, key=one.get)
        base = min(v for k, v in one.items() if k.startswith("csr_balanced@"))
        click.echo(f"[{i}/{n}] {name}: nnz {rec['nnz']}, best {best} "
                   f"({base / one[best]:.2f}x csr_balanced), {seconds:.1f}s", err=True)
    if not fit_only:
        try:
            measured, skipped, failed = sweep(items, db, threads, progress, max_nnz, scheduler,
                                              {"repeats": repeats, "batch_seconds": batch_seconds,
                                               "vectors": vectors})
        except RuntimeError as exc:
            raise click.ClickException(str(exc))
        click.echo(f"measured {measured}, already in the store {skipped}, failed {failed}",
                   err=True)
    records = [r for r in db.records() if "times" in r[2]]
    if not records:
        raise click.ClickException(f"no measured matrix in {db.path}: nothing to fit")
    out_dir = Path(out) if out else cache_dir()
    cost = fit_cost_model([r for _, _, r in records], machine_profile(), kernel_specs(), threads,
                          groups=[record_group(n, fam) for n, fam, _ in records])
    cost.save(out_dir / "costmodel.json")
    click.echo(f"cost model ({len(cost.coef)} kernel x thread pairs, {len(records)} matrices) "
               f"written to {out_dir / 'costmodel.json'}")
    try:
        forest = fit_model(records, kernel_names(), kind=kind)
    except ValueError as exc:
        click.echo(f"({kind} not fitted: {exc})", err=True)
        return
    forest.save(out_dir / "model.json")
    click.echo(f"{kind} ({forest.doc['trained_on']} matrices, {len(forest.classes)} classes) "
               f"written to {out_dir / 'model.json'}")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--rhs", default="ones", show_default=True, metavar="ones|random|FILE",
              help="Right-hand side b: all ones, seeded standard normal, or a file "
                   "(.npy, Matrix Market vector, or text with one value per entry).")
@click.option("--method", type=click.Choice(["cg", "bicgstab", "gmres"]), default="cg",
              show_default=True, help="cg needs a symmetric positive definite matrix.")
@click.option("--rtol", type=float, default=1e-5, show_default=True,
              help="Stop when ||b - A x|| <= max(rtol ||b||, atol) (SciPy's test).")
@click.option("--atol", type=float, default=0.0, show_default=True)
@click.option("--maxiter", type=int, default=None,
              help="Iteration limit (GMRES: restart cycles); default SciPy's, 10 n.")
@click.option("--restart", type=int, default=None, help="GMRES: vectors per cycle (default 20).")
@click.option("--precond", "M", type=click.Choice(["none", "jacobi"]), default="none",
              show_default=True, help="Jacobi: scale by the inverse diagonal (fused).")
@click.option("--x0", "x0_spec", metavar="FILE", default=None,
              help="Initial guess (a vector file, as --rhs); default zeros.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the solution x to this .npy file.")
@click.option("--compare", is_flag=True,
              help="Also solve with SciPy's solver and print its time, iterations and residual.")
@click.option("--threads", type=THREADS, default=None, help="Threads per product (default: all cores).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --rhs random.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
def solve(file, rhs, method, rtol, atol, maxiter, restart, M, x0_spec, out, compare, threads,
          seed, as_json):
    """Solve A x = b for the matrix in FILE with spmvtune.linalg.

    Prints the iterations, the final relative residual ||b - A x|| / ||b||
    (recomputed from x), the wall time (kernel selection and setup included;
    loading the compiled kernels, once per process, is reported apart) and
    the kernel the product ran; --compare runs SciPy's solver on the same
    system for the time it would take.  A line on stderr every 2 seconds shows
    the progress of a long solve.

    \b
    Exit status: 0 converged, 1 not converged, a breakdown or an error.
    """
    from . import load
    from .linalg._cli import SolveError, read_rhs, solve as run, solve_scipy, status
    from .validate import check_threads
    try:
        threads = check_threads(threads)
        A = load(file)
        if A.shape[0] != A.shape[1]:
            raise SolveError(f"{file}: the matrix is {A.shape[0]} x {A.shape[1]}; "
                             "a solve needs a square matrix")
        n = A.shape[0]
        b = read_rhs(rhs, n, seed)
        x0 = read_rhs(x0_spec, n) if x0_spec else None
        if restart is not None and restart < 1:
            raise SolveError("--restart must be at least 1")
        if maxiter is not None and maxiter < 0:
            raise SolveError("--maxiter must not be negative")
        if rtol < 0 or atol < 0:
            raise SolveError("--rtol and --atol must not be negative")
        precond = None if M == "none" else M
        kw = dict(rtol=rtol, atol=atol, maxiter=maxiter, restart=restart, M=precond, x0=x0)
        if not as_json:
            click.echo(f"{file}: {n} x {n}, {A.nnz} nonzeros; {method}, rtol {rtol:g}"
                       + (f", {precond}" if precond else ""), err=True)
        res = run(A, b, method, threads=threads, progress=not as_json, **kw)
        ref = solve_scipy(A, b, method, **kw) if compare else None
    except (ValueError, MemoryError) as exc:       # SolveError, MatrixFormatError, ...
        raise click.ClickException(str(exc))
    if out:
        np.save(out, res["x"], allow_pickle=False)
    if as_json:
        doc = {k: v for k, v in res.items() if k != "x"}
        doc.update(file=file, method=method, n=n, nnz=int(A.nnz), rtol=rtol, atol=atol,
                   status=status(res["info"]), out=out)
        if ref is not None:
            doc["scipy"] = {k: v for k, v in ref.items() if k != "x"}
            doc["speedup"] = ref["seconds"] / res["seconds"]
        click.echo(json.dumps(doc, indent=2, default=float))
    else:
        what = "inner iterations" if method == "gmres" else "iterations"
        click.echo(f"spmvtune  {status(res['info'])}: {res['iterations']} {what}, residual "
                   f"{res['residual']:.2e}, {res['seconds']:.3f} s  (kernel {res['kernel']}, "
                   f"{res['threads']} threads)")
        for event in res.get("tuning") or ():
            click.echo(f"          {event}")
        click.echo(f"          (compiled kernels loaded in {res['load_seconds']:.2f} s before "
                   "the solve: once per process)", err=True)
        if ref is not None:
            click.echo(f"SciPy     {status(ref['info'])}: {ref['iterations']} {what}, residual "
                       f"{ref['residual']:.2e}, {ref['seconds']:.3f} s  -> spmvtune "
                       f"{ref['seconds'] / res['seconds']:.2f}x")
        if out:
            click.echo(f"x written to {out}")
    if res["info"] != 0:
        sys.exit(1)
