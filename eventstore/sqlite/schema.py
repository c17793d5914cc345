"""Opening the SQLite file: refusing what is not ours, creating and migrating the schema.

The schema version lives in ``PRAGMA user_version``. Migrations are numbered steps,
run in one transaction each; a file written by a newer personae is refused before
anything is written to it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import sqlite_utils

from ..errors import StoreOpenError

Synchronous = Literal["full", "normal"]

_SQLITE_HEADER = b"SQLite format 3\x00"
_SQLITE_CANTOPEN = 14

APPEND_ONLY_TRIGGERS: dict[str, str] = {
    "events_no_update": "CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT "
    "RAISE(ABORT, 'the event log is append-only: events cannot be updated'); END",
    "events_no_delete": "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT "
    "RAISE(ABORT, 'the event log is append-only: events cannot be deleted'); END",
    # INSERT OR REPLACE deletes the row it collides with without firing the delete
    # trigger (unless recursive_triggers is on), so a colliding insert is refused too.
    "events_no_replace": "CREATE TRIGGER events_no_replace BEFORE INSERT ON events "
    "WHEN EXISTS (SELECT 1 FROM events WHERE position = NEW.position) "
    "OR EXISTS (SELECT 1 FROM events WHERE event_id = NEW.event_id) "
    "OR EXISTS (SELECT 1 FROM events WHERE stream_id = NEW.stream_id "
    "AND version = NEW.version) "
    "BEGIN SELECT RAISE(FAIL, "
    "'the event log is append-only: an existing event cannot be replaced'); END",
}
"""The triggers that make the events table append-only, exactly as created (``db
check`` compares the file's with these)."""

EVENT_INDEXES: dict[str, tuple[tuple[str, ...], bool]] = {
    "events_event_id": (("event_id",), True),
    "events_stream_version": (("stream_id", "version"), True),
    "events_type_position": (("type", "position"), False),
    "events_recorded_at": (("recorded_at",), False),
}
"""The events table's indexes: columns, and whether unique (the unique ones make
idempotency and gap-free stream versions hold)."""


def _migrate_to_1(db: sqlite_utils.Database) -> None:
    # position is the rowid: deletes are refused, so a committed position is never reused.
    db["events"].create(  # type: ignore[union-attr]
        {
            "position": int,
            "event_id": str,
            "stream_id": str,
            "version": int,
            "type": str,
            "schema_version": int,
            "data": str,
            "recorded_at": float,
            "correlation_id": str,
            "causation_id": str,
        },
        pk="position",
        not_null={
            "event_id", "stream_id", "version", "type", "schema_version", "data", "recorded_at",
        },
    )
    events = db.table("events")
    for name, (columns, unique) in EVENT_INDEXES.items():
        events.create_index(list(columns), unique=unique, index_name=name)
    for name in ("events_no_update", "events_no_delete"):
        db.execute(APPEND_ONLY_TRIGGERS[name])
    db["projection_positions"].create(  # type: ignore[union-attr]
        {"name": str, "version": int, "position": int},
        pk="name",
        not_null={"version", "position"},
    )


def _migrate_to_2(db: sqlite_utils.Database) -> None:
    db.execute(APPEND_ONLY_TRIGGERS["events_no_replace"])


KEY_TABLE = (
    "CREATE TABLE content_keys (key_id TEXT PRIMARY KEY, subject TEXT NOT NULL, "
    "period INTEGER NOT NULL, scope TEXT NOT NULL, secret BLOB, created_at REAL NOT NULL, "
    "destroyed_at REAL, due_at REAL) WITHOUT ROWID")
"""The key table of sealed content (eventstore/sealing.py): mutable, unlike events."""


def _migrate_to_3(db: sqlite_utils.Database) -> None:
    db.execute(KEY_TABLE)
    # A key row is written with almost every message: few indexes. Scope first serves
    # both finding a key (all three equal) and shredding a message (a scope prefix);
    # forgetting a person scans the table (rare, and off the hot path).
    db.execute("CREATE INDEX content_keys_scope ON content_keys (scope, subject, period)")
    db.execute("CREATE INDEX content_keys_period ON content_keys (period)")
    db.execute("CREATE INDEX content_keys_destroyed ON content_keys (destroyed_at) "
               "WHERE destroyed_at IS NOT NULL")
    db.execute("CREATE INDEX content_keys_due ON content_keys (due_at) WHERE due_at IS NOT NULL")


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _migrate_to_1, _migrate_to_2, _migrate_to_3)
SCHEMA_VERSION = len(MIGRATIONS)


def refuse_foreign_file(path: Path) -> None:
    """Raise StoreOpenError for a path that is a directory or a file that is not an
    intact SQLite database (nothing is written to it)."""
    if path.is_dir():
        raise StoreOpenError(f"database.path {path} is a directory; name a file inside it")
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb") as f:
        header = f.read(100)
    if header[: len(_SQLITE_HEADER)] != _SQLITE_HEADER:
        raise StoreOpenError(
            f"{path} is not an SQLite database, so personae will not touch it; "
            "move it away or point database.path at another file"
        )
    if not _plausible_header(header):
        raise StoreOpenError(
            f"{path} is damaged (its SQLite header is invalid); restore it from a backup "
            "(`personae db check` tells what is wrong)"
        )


def _plausible_header(header: bytes) -> bool:
    """The fixed fields of the 100-byte SQLite header (sqlite.org/fileformat2.html):
    checked here so that SQLite never opens, and so never touches, a damaged file."""
    if len(header) < 100:
        return False
    page_size = int.from_bytes(header[16:18], "big")
    if page_size == 1:
        page_size = 65536
    return (
        512 <= page_size <= 65536
        and page_size & (page_size - 1) == 0
        and header[18] in (1, 2)
        and header[19] in (1, 2)
        and header[21:24] == b"\x40\x20\x20"
    )


def ensure_parent(path: Path) -> None:
    """Create the log's directory (StoreOpenError when it cannot be)."""
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreOpenError(
            f"cannot create the directory {parent} for the event log: {exc.strerror}"
        ) from None


def _translate(path: Path, exc: sqlite3.Error) -> StoreOpenError:
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return StoreOpenError(
            f"cannot write the event log {path}: its directory {path.parent} is read-only "
            "or not ours; make it writable or point database.path elsewhere"
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreOpenError(
            f"{path} is damaged ({exc}); restore it from a backup "
            "(`personae db check` tells what is wrong)"
        )
    return StoreOpenError(f"cannot open the event log {path}: {exc}")


def connect(path: Path, *, synchronous: Synchronous = "full", create: bool = True) -> sqlite3.Connection:
    """Open ``path`` as a personae event log, creating or migrating its schema.

    Raises :class:`StoreOpenError` with one actionable sentence for a file that is
    not SQLite, is damaged, was written by a newer personae, or cannot be written.
    Nothing is written to a file that is refused.
    """
    path = Path(path)
    refuse_foreign_file(path)
    if not create and not path.exists():
        raise StoreOpenError(f"there is no event log at {path} yet")
    ensure_parent(path)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise _translate(path, exc) from None
    try:
        _check_version(path, conn)
        _probe(conn)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        conn.execute("PRAGMA busy_timeout=5000")
        # The replace guard makes inserts need a statement journal: keep it in memory.
        conn.execute("PRAGMA temp_store=MEMORY")
        # A destroyed key is overwritten with zeros in the file, not left in a free page.
        conn.execute("PRAGMA secure_delete=ON")
        _migrate(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise _translate(path, exc) from None
    except StoreOpenError:
        conn.close()
        raise
    return conn


def connect_read_only(path: Path, *, refuse_newer: bool = True) -> sqlite3.Connection:
    """A connection that never writes, for tools that only read, and works on a log file
    or directory that is read-only. Where both are writable it is a query-only
    connection (SQLite tidies its WAL files away when it closes); else SQLite's
    read-only mode, which needs the WAL's index file, and where that cannot be made (a
    read-only directory after a clean close: no WAL is left to read) the file is
    opened as immutable. ``refuse_newer``: refuse a log of a newer personae."""
    path = Path(path)
    refuse_foreign_file(path)
    if not path.is_file():
        raise StoreOpenError(f"there is no event log at {path} yet")
    if refuse_newer:
        with path.open("rb") as f:
            _refuse_newer(path, int.from_bytes(f.read(100)[60:64], "big"))
    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        conn = connect_reader(path)
        try:
            if refuse_newer:
                _check_version(path, conn)
        except BaseException:
            conn.close()
            raise
        return conn
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                           isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        if refuse_newer:
            _check_version(path, conn)
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if getattr(exc, "sqlite_errorcode", None) != _SQLITE_CANTOPEN:
            raise _translate(path, exc) from None
    except BaseException:
        conn.close()
        raise
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreOpenError(
            f"cannot read the event log {path}: its directory is read-only and it still has "
            f"a write-ahead log ({wal.name}), which SQLite cannot read from there; copy the "
            "three files somewhere writable, or let the bot close the log cleanly first")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True,
                               isolation_level=None, check_same_thread=False)
        if refuse_newer:
            _check_version(path, conn)
    except sqlite3.Error as exc:
        raise _translate(path, exc) from None
    return conn


def connect_reader(path: Path, *, query_only: bool = True) -> sqlite3.Connection:
    """A connection for reads, to a log that :func:`connect` has opened before."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        if query_only:
            conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA busy_timeout=5000")
    except sqlite3.Error as exc:
        raise _translate(Path(path), exc) from None
    return conn


def _check_version(path: Path, conn: sqlite3.Connection) -> None:
    _refuse_newer(path, conn.execute("PRAGMA user_version").fetchone()[0])


def _refuse_newer(path: Path, found: int) -> None:
    if found > SCHEMA_VERSION:
        raise StoreOpenError(
            f"{path} was written by a newer personae (log schema {found}; this version "
            f"understands up to {SCHEMA_VERSION}); upgrade personae to open it"
        )


def _probe(conn: sqlite3.Connection) -> None:
    """Read the schema and one edge of the log's table and indexes, before anything is
    written: damage there is refused now. This is not a scan (`db check` does that)."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    if "events" not in tables:
        return
    conn.execute("SELECT MAX(position) FROM events").fetchone()
    for index in ("events_event_id", "events_stream_version", "events_type_position"):
        if index in tables:
            conn.execute(f"SELECT 1 FROM events INDEXED BY {index} LIMIT 1").fetchone()


def _migrate(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    for target in range(found + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[target - 1](db)
            conn.execute(f"PRAGMA user_version={target}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
