"""``personae db check``: SQLite's own integrity check plus the log's invariants.

The invariants: the append-only triggers present with their exact definitions (and
no other trigger on the events table), the indexes that make ids and stream
versions unique, positions gap-free from 1, stream versions gap-free from 1 and
unique, event ids unique, valid JSON data, projection positions within the log.
Content edited in place leaves no trace here when it keeps every invariant: the
triggers are what prevents it, and the personae layer adds what it can see (every
event reads back as its catalogue type; projections match a rebuild).
"""

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
    yield from _append_only(conn)
    yield from _indexes(conn)
    count, low, high = conn.execute(
        "SELECT COUNT(*), MIN(position), MAX(position) FROM events").fetchone()
    if count and (low != 1 or high != count):
        yield Violation("gap-free positions",
                        f"the log has {count} events but positions {low}..{high}"
                        f"{_first_gap(conn, low)}")
    for stream_id, version, times in conn.execute(
        "SELECT stream_id, version, COUNT(*) FROM events GROUP BY stream_id, version "
        "HAVING COUNT(*) > 1 LIMIT 20"
    ):
        yield Violation("unique stream versions",
                        f"stream {stream_id!r} has {times} events at version {version}")
    for event_id, times in conn.execute(
        "SELECT event_id, COUNT(*) FROM events GROUP BY event_id HAVING COUNT(*) > 1 LIMIT 20"
    ):
        yield Violation("unique event ids", f"the event id {event_id!r} is used {times} times")
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


def _normal(sql: str | None) -> str:
    return " ".join((sql or "").split())


def _append_only(conn: sqlite3.Connection) -> Iterator[Violation]:
    """The triggers that refuse updates, deletes and replacing inserts: each present with
    exactly its definition (a trigger recreated with an empty body is as good as none),
    and no other trigger on the events table."""
    found = {name: (table, sql) for name, table, sql in conn.execute(
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")}
    for name, wanted in schema.APPEND_ONLY_TRIGGERS.items():
        if name not in found:
            yield Violation("append-only", f"the trigger {name} is missing")
        elif _normal(found[name][1]) != _normal(wanted):
            yield Violation("append-only", f"the trigger {name} was changed: it reads "
                                           f"{_normal(found[name][1])[:160]!r}")
    for name, (table, _) in sorted(found.items()):
        if name not in schema.APPEND_ONLY_TRIGGERS and table == "events":
            yield Violation("append-only", f"an unknown trigger {name} is on the events table")


def _indexes(conn: sqlite3.Connection) -> Iterator[Violation]:
    """The events table's indexes, with their columns and uniqueness."""
    present = {row[1]: bool(row[2]) for row in conn.execute("PRAGMA index_list(events)")}
    for name, (columns, unique) in schema.EVENT_INDEXES.items():
        if name not in present:
            yield Violation("indexes", f"the index {name} is missing")
            continue
        actual = tuple(row[2] for row in conn.execute(f"PRAGMA index_info({name})"))
        if actual != columns or present[name] != unique:
            yield Violation("indexes", f"the index {name} was changed: "
                                       f"{'unique ' if present[name] else ''}on "
                                       f"{', '.join(actual)}")


def _first_gap(conn: sqlite3.Connection, low: int) -> str:
    if low != 1:
        return f" (nothing before {low})"
    row = conn.execute(
        "SELECT position FROM events AS e WHERE position > 1 AND NOT EXISTS "
        "(SELECT 1 FROM events WHERE position = e.position - 1) ORDER BY position LIMIT 1"
    ).fetchone()
    return f" (the first gap is before {row[0]})" if row else ""
