"""A measuring process for bench's tests that crashes on purpose, by matrix name:
``segv*`` (a segmentation fault while loading), ``abort*`` (SIGABRT after
0.15 s of measuring), ``exit*`` (exit status 3).  Run as
``python -m crash_worker IN_FD OUT_FD`` with tests/ on PYTHONPATH."""
import ctypes
import os
import signal
import sys
import time

from spmvtune.bench import measure, worker

_real = measure.measure_item


def measure_item(item, opts, phase=None):
    phase = phase or (lambda what: None)
    if item.name.startswith("segv"):
        phase("loading the file")
        ctypes.string_at(0)
    if item.name.startswith("abort"):
        phase("timing csr_balanced")
        time.sleep(0.15)
        os.kill(os.getpid(), signal.SIGABRT)
    if item.name.startswith("exit"):
        os._exit(3)
    return _real(item, opts, phase)


measure.measure_item = measure_item

if __name__ == "__main__":
    worker.main(sys.argv)
