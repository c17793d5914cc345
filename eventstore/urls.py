"""Choosing a backend: a path or a ``database.url`` names the log, the scheme the backend.

- ``sqlite:///data/personae.db`` (relative), ``sqlite:////srv/personae.db`` (absolute),
  or a plain path: the embedded SQLite file;
- ``memory://``: a fresh in-memory log (tests, trials; nothing is kept);
- ``postgresql://user@host:5432/dbname?schema=personae``: a schema of a PostgreSQL
  database, shared by several processes (see :mod:`eventstore.postgres.target`). The
  password comes apart (``password=``), from the environment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from .errors import StoreOpenError
from .memory import MemoryLog
from .postgres.log import PostgresLog
from .postgres.target import SCHEMES as POSTGRES_SCHEMES
from .projections import Projection
from .protocol import Log
from .sqlite.log import SQLiteLog
from .sqlite.schema import Synchronous
from .store import ThreadedStore
from .upcasting import Upcasters

SCHEMES = ("sqlite", "memory", *POSTGRES_SCHEMES)


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
             create: bool = True, password: str | None = None, read_only: bool = False,
             lock: bool = False, seal: bool = True) -> Log:
    """Open (creating or migrating, when ``create``) the log ``target`` names.

    ``synchronous`` is SQLite's; a PostgreSQL server's durability is its own
    ``synchronous_commit``. ``password`` is PostgreSQL's (None: the URL's, or libpq's
    usual PGPASSWORD and ~/.pgpass). ``read_only``: for tools that only read (works on a
    read-only file); ``lock``: as the log's one writer process (a backend that allows
    several ignores it); ``seal``: store the fields events ask to seal encrypted (False:
    in clear; what was sealed before still opens)."""
    path = sqlite_path(target)
    if path is not None:
        return SQLiteLog.open(path, synchronous=synchronous, upcasters=upcasters,
                              projections=projections, create=create, read_only=read_only,
                              lock=lock, seal=seal)
    scheme = str(target).partition("://")[0]
    if scheme == "memory":
        return MemoryLog(upcasters=upcasters, projections=projections, location=str(target),
                         seal=seal)
    if scheme in POSTGRES_SCHEMES:
        return PostgresLog.open(str(target), password=password, upcasters=upcasters,
                                projections=projections, create=create, seal=seal)
    raise StoreOpenError(f"unknown database URL scheme {scheme!r} in {_safe(str(target))}; "
                         f"use one of {', '.join(s + '://' for s in SCHEMES)}")


async def open_store(target: str | Path, *, synchronous: Synchronous = "full",
                     upcasters: Upcasters | None = None,
                     projections: Sequence[Projection] = (), readers: int = 2,
                     password: str | None = None, lock: bool = False,
                     seal: bool = True) -> ThreadedStore:
    """Open the log ``target`` names for asyncio code, without blocking the loop
    (``lock``: as its one writer process, see :func:`open_log`)."""
    log = await asyncio.to_thread(open_log, target, synchronous=synchronous,
                                  upcasters=upcasters, projections=projections,
                                  password=password, lock=lock, seal=seal)
    return ThreadedStore(log, readers=readers)


def _safe(url: str) -> str:
    """``url`` without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
