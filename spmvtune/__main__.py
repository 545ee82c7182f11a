"""``python -m spmvtune`` and the ``spmvtune`` command.

The command line (:mod:`spmvtune.cli`) needs NumPy, SciPy and Numba; when
their libraries cannot be loaded (a memory cap too small to map them, a
broken install) that is one line on stderr, or one JSON object with
``--json``, like every other error, instead of an import traceback.
"""
import json
import sys


def run():
    try:
        from .cli import main
    except (ImportError, MemoryError, OSError) as exc:
        detail = (str(exc).strip().splitlines() or ["out of memory"])[0]
        message = f"cannot load spmvtune's libraries ({type(exc).__name__}: {detail})"
        if "--json" in sys.argv[1:]:
            print(json.dumps({"error": message, "exit_code": 1}))
        else:
            print(f"Error: {message}", file=sys.stderr)
        sys.exit(1)
    main(prog_name="spmvtune")


if __name__ == "__main__":
    run()
