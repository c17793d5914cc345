"""Choosing a backend: a path or a ``database.url`` names the log, the scheme the backend.

- ``sqlite:///data/personae.db`` (relative), ``sqlite:////srv/personae.db`` (absolute),
  or a plain path: the embedded SQLite file;
- ``memory://``: a fresh in-memory log (tests, trials; nothing is kept).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from .errors import StoreOpenError
from .memory import MemoryLog
from .projections import Projection
from .protocol import Log
from .sqlite.log import SQLiteLog
from .sqlite.schema import Synchronous
from .store import ThreadedStore
from .upcasting import Upcasters

SCHEMES = ("sqlite", "memory")


def sqlite_path(target: str | Path) -> Path | None:
    """The file a target names when it is an SQLite log, else None."""
    if isinstance(target, Path):
        return target
    if "://" not in target:
        return Path(target)
    scheme, _, rest = target.partition("://")
    if scheme != "sqlite":
        return None
    if not rest.startswith("/") or rest == "/":
        raise StoreOpenError(f"{target!r}: an SQLite URL is sqlite:///relative/path.db or "
                             "sqlite:////absolute/path.db")
    return Path(rest[1:])


def open_log(target: str | Path, *, synchronous: Synchronous = "full",
             upcasters: Upcasters | None = None, projections: Sequence[Projection] = (),
             create: bool = True, read_only: bool = False, lock: bool = False) -> Log:
    """Open (creating or migrating, when ``create``) the log ``target`` names.
    ``read_only``: for tools that only read (works on a read-only file); ``lock``: as
    the log's one writer process (a backend that allows several ignores it)."""
    path = sqlite_path(target)
    if path is not None:
        return SQLiteLog.open(path, synchronous=synchronous, upcasters=upcasters,
                              projections=projections, create=create, read_only=read_only,
                              lock=lock)
    scheme = str(target).partition("://")[0]
    if scheme == "memory":
        return MemoryLog(upcasters=upcasters, projections=projections, location=str(target))
    raise StoreOpenError(f"unknown database URL scheme {scheme!r} in {_safe(str(target))}; "
                         f"use one of {', '.join(s + '://' for s in SCHEMES)}")


async def open_store(target: str | Path, *, synchronous: Synchronous = "full",
                     upcasters: Upcasters | None = None,
                     projections: Sequence[Projection] = (), readers: int = 2,
                     lock: bool = False) -> ThreadedStore:
    """Open the log ``target`` names for asyncio code, without blocking the loop
    (``lock``: as its one writer process, see :func:`open_log`)."""
    log = await asyncio.to_thread(open_log, target, synchronous=synchronous,
                                  upcasters=upcasters, projections=projections, lock=lock)
    return ThreadedStore(log, readers=readers)


def _safe(url: str) -> str:
    """``url`` without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
