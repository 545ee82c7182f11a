"""Where result rows are measured.

* :func:`run_local` in this process, one matrix after another.
* With a timeout, in a worker process (:class:`WorkerProcess`) that is killed
  and replaced when a matrix takes too long or crashes it (a segfault in a
  kernel costs one row, not the sweep).
* :func:`run_distributed` on a Dask distributed cluster: each task measures
  one matrix on its worker, serialised per worker process (timings must not
  share the cores), and rows stream back to the caller as they finish.

All yield rows in completion order; the caller stores each at once.
"""
import multiprocessing
import threading
import time

from .measure import FAILED, TIMEOUT, measure_item


def run_local(items, opts, timeout=None):
    """Rows of ``items`` measured here (in a worker process when ``timeout``)."""
    if timeout is None:
        for item in items:
            yield measure_item(item, opts)
        return
    worker = WorkerProcess()
    try:
        for item in items:
            yield worker.measure(item, opts, timeout)
    finally:
        worker.close()


class WorkerProcess:
    """A spawned process measuring one item at a time; restarted after a
    timeout or a crash.  The first item pays the worker's imports (~2 s), the
    timeout counts from when the item is handed over."""

    def __init__(self):
        self._proc = self._conn = None

    def _start(self):
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self._proc.start()
        child.close()

    def measure(self, item, opts, timeout):
        if self._proc is None or not self._proc.is_alive():
            self._start()
        t0 = time.perf_counter()
        self._conn.send((item, opts))
        base = {"matrix": item.key, "name": item.name, "source": item.kind,
                "threads": opts.threads, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        try:
            if self._conn.poll(timeout):
                return self._conn.recv()
        except (EOFError, OSError):
            pass                                     # the worker died mid-item
        died = not self._proc.is_alive()
        code = self._proc.exitcode
        self.close()
        if died:
            return dict(base, status=FAILED, elapsed=time.perf_counter() - t0,
                        reason=f"the measuring process died (exit code {code}; "
                               "a negative code is the signal that killed it)")
        return dict(base, status=TIMEOUT, elapsed=time.perf_counter() - t0,
                    reason=f"over the per-matrix timeout of {timeout:g} s")

    def close(self):
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(5)
            self._conn.close()
        self._proc = self._conn = None


def _serve(conn):
    while True:
        try:
            item, opts = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        conn.send(measure_item(item, opts))


# ---- Dask distributed ---------------------------------------------------------

_ONE_AT_A_TIME = threading.Lock()
_WORKER = {}


def measure_on_worker(item, opts, timeout=None):
    """The Dask task: measure one item on this worker, one at a time per worker
    process whatever its thread count (the lock), in a worker subprocess when
    a timeout is set."""
    with _ONE_AT_A_TIME:
        if timeout is None:
            return measure_item(item, opts)
        worker = _WORKER.setdefault("process", WorkerProcess())
        return worker.measure(item, opts, timeout)


def run_distributed(items, opts, scheduler, timeout=None):
    """Rows of ``items`` measured by the workers of the Dask cluster at
    ``scheduler`` (an address like ``tcp://host:8786``), as they complete.
    Matrix files must be readable at the same path on the workers."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise RuntimeError("--scheduler needs Dask distributed: "
                           "python -m pip install 'spmvtune[distributed]'") from None
    try:
        client = Client(scheduler, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise RuntimeError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        futures = {client.submit(measure_on_worker, item, opts, timeout, key=f"spmvtune-{i}",
                                 pure=False): item for i, item in enumerate(items)}
        for fut in as_completed(futures):
            item = futures[fut]
            try:
                yield fut.result()
            except Exception as exc:      # noqa: BLE001 - a lost worker costs a row
                yield {"matrix": item.key, "name": item.name, "source": item.kind,
                       "threads": opts.threads, "status": FAILED,
                       "reason": f"Dask task failed: {type(exc).__name__}: {exc}"}
    finally:
        client.close()
