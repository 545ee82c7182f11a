"""A Dask cluster for ``bench --scheduler`` and ``train --scheduler``."""

#: Seconds to wait for the scheduler before calling it unreachable.
CONNECT_SECONDS = 10


def connect(scheduler):
    """(Client, as_completed) for the Dask scheduler at ``scheduler`` (an
    address like ``tcp://host:8786``), or RuntimeError with what to do."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise RuntimeError("--scheduler needs Dask distributed: "
                           "python -m pip install 'spmvtune[distributed]'") from None
    try:
        return Client(scheduler, timeout=CONNECT_SECONDS), as_completed
    except (OSError, TimeoutError) as exc:
        raise RuntimeError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
