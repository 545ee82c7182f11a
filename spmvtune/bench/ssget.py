"""``--ssget QUERY``: download a SuiteSparse Matrix Collection selection with ssgetpy.

QUERY is ``Group/Name``, ``Group/`` (a whole group), a name pattern, a numeric
id, or comma-separated filters of ``ssgetpy.search``:
``group=HB,nzbounds=1000:200000,isspd=true,kind=structural,limit=20``
(default limit 10).  ssgetpy answers the query from its index; the archives
(``Name.tar.gz``) are streamed into ``dest/Group/`` here and read directly; a
second run finds them there and downloads nothing.
"""
from pathlib import Path

_BOUNDS = {"rowbounds", "colbounds", "nzbounds"}
_BOOLS = {"isspd", "is2d3d"}
_TEXT = {"group", "name", "kind", "dtype"}


class OfflineError(RuntimeError):
    """The collection's index or files cannot be fetched."""


def parse_query(query):
    """``(name_or_id, filters)`` for ``ssgetpy.search``; raises ValueError."""
    query = query.strip()
    if not query:
        raise ValueError("empty --ssget query")
    if "=" not in query:
        return (int(query) if query.isdigit() else query), {"limit": 10}
    filters = {"limit": 10}
    for part in query.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise ValueError(f"--ssget: {part!r} is not key=value")
        if key in _BOUNDS:
            lo, _, hi = value.partition(":")
            filters[key] = (int(lo) if lo else None, int(hi) if hi else None)
        elif key in _BOOLS:
            filters[key] = value.lower() in ("1", "true", "yes")
        elif key == "limit":
            filters[key] = int(value)
        elif key in _TEXT:
            filters[key] = value
        else:
            raise ValueError(f"--ssget: unknown filter {key!r}; known: "
                             + ", ".join(sorted(_BOUNDS | _BOOLS | _TEXT | {"limit"})))
    return None, filters


def download(query, dest, log=print):
    """Download the matrices matching ``query`` into ``dest``; returns the
    archive paths.  Raises OfflineError when the collection cannot be reached,
    RuntimeError when ssgetpy is missing, ValueError for a bad query."""
    name_or_id, filters = parse_query(query)
    try:
        import ssgetpy                       # fetches the collection's index on import
    except ImportError:
        raise RuntimeError("--ssget needs ssgetpy: python -m pip install 'spmvtune[ssget]'") from None
    except Exception as exc:                 # noqa: BLE001 - requests' errors, offline
        raise OfflineError(_offline(exc)) from None
    try:
        matrices = ssgetpy.search(name_or_id, **filters)
    except Exception as exc:                 # noqa: BLE001
        raise OfflineError(_offline(exc)) from None
    dest = Path(dest)
    paths = []
    for m in matrices:
        target = dest / m.group / f"{m.name}.tar.gz"
        if not target.exists():
            log(f"downloading {m.group}/{m.name} ({m.nnz} nonzeros)")
            try:
                fetch(m.url("MM"), target)
            except OSError as exc:
                raise OfflineError(_offline(exc)) from None
        paths.append(target)
    return paths


def fetch(url, target, chunk=1 << 20):
    """Stream ``url`` into ``target`` (atomically: a partial download never
    looks finished).  ssgetpy's own download sleeps 0.1 s per 4 KiB."""
    import urllib.request
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    with urllib.request.urlopen(url, timeout=60) as src, open(tmp, "wb") as out:
        while block := src.read(chunk):
            out.write(block)
    tmp.replace(target)


def _offline(exc):
    return ("cannot reach the SuiteSparse Matrix Collection (sparse.tamu.edu); is this "
            f"machine offline? ({type(exc).__name__}: {str(exc)[:200]})")
