"""The measuring process of :class:`spmvtune.bench.runner.WorkerProcess`.

``python -m spmvtune.bench.worker IN_FD OUT_FD``: reads ``(item, options)``
pairs from the pipe IN_FD and answers on OUT_FD with ``("phase", what)``
messages while it works and one ``("row", row)`` per item.  Its own stdout
and stderr go to the parent's log file; faulthandler writes Python's report
there when native code crashes.
"""
import faulthandler
import os
import sys
from multiprocessing.connection import Connection


def serve(inbox, outbox):
    from .measure import measure_item
    outbox.send(("ready", os.getpid()))
    while True:
        try:
            item, opts = inbox.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        row = measure_item(item, opts, phase=lambda what: outbox.send(("phase", what)))
        outbox.send(("row", row))


def main(argv):
    faulthandler.enable()
    serve(Connection(int(argv[1]), writable=False), Connection(int(argv[2]), readable=False))


if __name__ == "__main__":
    main(sys.argv)
