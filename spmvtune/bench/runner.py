"""Where result rows are measured.

* :func:`run_local`, by default in a worker process (:class:`WorkerProcess`):
  a crash in native code (a parser, a kernel, MKL) or a timeout costs that
  matrix's row, recorded with its real reason (the signal, and what the
  worker was doing), and the next matrix gets a fresh process.  With
  ``isolate=False`` in this process (faster to start; a crash ends the sweep).
* :func:`run_distributed` on a Dask distributed cluster: each task measures
  one matrix on its worker, serialised per worker process (timings must not
  share the cores), in a worker process of its own, and rows stream back to
  the caller as they finish.

All yield rows in completion order; the caller stores each at once.
"""
import atexit
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection

from .measure import FAILED, TIMEOUT, base_row, measure_item

#: Seconds a new worker may take to import spmvtune before it counts as broken.
STARTUP_SECONDS = 300


def run_local(items, opts, timeout=None, isolate=True):
    """Rows of ``items`` measured in a worker process (``isolate``, required
    for ``timeout``) or in this process."""
    if not isolate:
        if timeout is not None:
            raise ValueError("a timeout needs a worker process (isolate=True)")
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
    """A child Python process (``python -m spmvtune.bench.worker``) measuring
    one item at a time over two pipes; restarted after a timeout or a crash.

    The child says when its imports are done, so the timeout counts from when
    the item is handed over, not from the process start, and it reports each
    phase of the work, so a crash says what it interrupted.  Started with
    ``subprocess`` rather than ``multiprocessing``: it also works inside a
    daemonic Dask worker, which may not have multiprocessing children.
    """

    #: The module run as the measuring process (tests substitute one that crashes).
    module = "spmvtune.bench.worker"

    def __init__(self):
        self._proc = self._send = self._recv = self._log = None

    def _start(self):
        to_child, from_parent = os.pipe()
        to_parent, from_child = os.pipe()
        self._log = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", self.module, str(to_child), str(from_child)],
                pass_fds=(to_child, from_child), stdin=subprocess.DEVNULL,
                stdout=self._log, stderr=self._log,
                start_new_session=True)    # Ctrl-C reaches the parent only, which kills it
        finally:
            os.close(to_child)
            os.close(from_child)
        self._send = Connection(from_parent, readable=False)
        self._recv = Connection(to_parent, writable=False)
        if not self._recv.poll(STARTUP_SECONDS):
            raise RuntimeError(f"the measuring process did not start in {STARTUP_SECONDS} s")
        self._recv.recv()                             # ("ready", pid)

    def measure(self, item, opts, timeout=None):
        """The row of ``item``; a crash or a timeout gives a row saying so."""
        try:
            if self._proc is None or self._proc.poll() is not None:
                self.close()
                self._start()
            self._send.send((item, opts))
        except (OSError, EOFError, RuntimeError) as exc:
            self.close()
            return dict(base_row(item, opts), status=FAILED, elapsed=0.0,
                        reason=f"could not start the measuring process: {exc}")
        t0 = time.perf_counter()
        phase = "starting"
        while True:
            left = None if timeout is None else timeout - (time.perf_counter() - t0)
            if left is not None and left <= 0:
                self.close()
                return dict(base_row(item, opts), status=TIMEOUT,
                            elapsed=time.perf_counter() - t0,
                            reason=f"over the per-matrix timeout of {timeout:g} s "
                                   f"(killed while {phase})")
            try:
                if not self._recv.poll(1.0 if left is None else min(left, 1.0)):
                    if self._proc.poll() is None:
                        continue
                    raise EOFError
                kind, payload = self._recv.recv()
            except (EOFError, OSError):
                return dict(base_row(item, opts), status=FAILED,
                            elapsed=time.perf_counter() - t0, reason=self._death(phase))
            if kind == "phase":
                phase = payload
            else:
                return payload

    def _death(self, phase):
        """Why the worker died: the signal or exit status, what it was doing,
        and the first line of Python's fatal-error report when there is one."""
        try:
            code = self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            code = self._proc.wait()
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            what = f"killed by {name}"
            if -code == signal.SIGKILL:
                what += " (out of memory? the kernel's OOM killer sends it)"
            elif signal.strsignal(-code):
                what += f" ({signal.strsignal(-code).lower()})"
        else:
            what = f"exited with status {code}"
        detail = self._log_line()
        self.close()
        return (f"the measuring process was {what} while {phase}"
                + (f": {detail}" if detail else ""))

    def _log_line(self):
        try:
            self._log.seek(0)
            lines = self._log.read()[-20000:].decode("utf-8", "replace").splitlines()
        except (OSError, ValueError, AttributeError):
            return ""
        fatal = [ln for ln in lines if ln.startswith(("Fatal Python error", "MemoryError"))]
        return (fatal[0] if fatal else "")[:200]

    def close(self):
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        for c in (self._send, self._recv, self._log):
            if c is not None:
                try:
                    c.close()
                except OSError:
                    pass
        self._proc = self._send = self._recv = self._log = None


# ---- Dask distributed ---------------------------------------------------------

_ONE_AT_A_TIME = threading.Lock()
_WORKER = {}


@atexit.register
def _close_worker():
    if "process" in _WORKER:
        _WORKER.pop("process").close()


def measure_on_worker(item, opts, timeout=None):
    """The Dask task: measure one item on this worker, one at a time per worker
    process whatever its thread count (the lock), in a measuring subprocess
    (a crash costs the row, not the Dask worker)."""
    with _ONE_AT_A_TIME:
        worker = _WORKER.setdefault("process", WorkerProcess())
        return worker.measure(item, opts, timeout)


def run_distributed(items, opts, scheduler, timeout=None):
    """Rows of ``items`` measured by the workers of the Dask cluster at
    ``scheduler`` (an address like ``tcp://host:8786``), as they complete.
    Matrix files must be readable at the same path on the workers."""
    from ..cluster import connect
    client, as_completed = connect(scheduler)
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
