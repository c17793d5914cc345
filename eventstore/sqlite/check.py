"""``personae db check``: SQLite's own integrity check plus the log's invariants."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ..errors import StoreOpenError
from ..model import Violation
from . import schema


def check_log(path: str | Path) -> list[Violation]:
    """Check the log at ``path`` read-only; an empty list means it is healthy.

    Raises :class:`~eventstore.errors.StoreOpenError` when the file is not a log at all.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreOpenError(f"there is no event log at {path}")
    conn = schema.connect_read_only(path, refuse_newer=False)
    try:
        return list(_violations(conn))
    except sqlite3.DatabaseError as exc:
        return [Violation("sqlite", f"the file cannot be read: {exc}")]
    finally:
        conn.close()


def _violations(conn: sqlite3.Connection) -> Iterator[Violation]:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > schema.SCHEMA_VERSION:
        yield Violation(
            "schema", f"log schema is {version}, newer than this personae's {schema.SCHEMA_VERSION}"
        )
        return
    if version < schema.SCHEMA_VERSION:
        yield Violation(
            "schema", f"log schema is {version}, older than this personae's "
            f"{schema.SCHEMA_VERSION}; `personae db init` migrates it"
        )
        return
    for (message,) in conn.execute("PRAGMA integrity_check"):
        if message != "ok":
            yield Violation("sqlite integrity", message)
    triggers = {
        name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    }
    for needed in ("events_no_update", "events_no_delete", "events_no_replace"):
        if needed not in triggers:
            yield Violation("append-only", f"the trigger {needed} is missing")
    gaps = conn.execute(
        "SELECT stream_id, COUNT(*), MIN(version), MAX(version) FROM events "
        "GROUP BY stream_id HAVING MIN(version) != 1 OR MAX(version) != COUNT(*) LIMIT 20"
    )
    for stream_id, count, low, high in gaps:
        yield Violation(
            "gap-free versions",
            f"stream {stream_id!r} has {count} events but versions {low}..{high}",
        )
    for position, event_id in conn.execute(
        "SELECT position, event_id FROM events WHERE json_valid(data) = 0 LIMIT 20"
    ):
        yield Violation("valid JSON", f"event {event_id!r} at position {position} has invalid data")
    last = conn.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()[0]
    for name, position in conn.execute("SELECT name, position FROM projection_positions"):
        if position > last:
            yield Violation(
                "projection position",
                f"projection {name!r} claims position {position}, past the log's end {last}",
            )
