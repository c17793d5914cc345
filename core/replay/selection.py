"""Which events a replay shows: filters, and reading the matching rows fast.

Rows are read straight from SQLite in position order, in chunks, and their data is
decoded only when a filter needs to look inside it, so a whole-log ``--json``
replay costs little more than copying the stored JSON.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

COLUMNS = ("position", "event_id", "stream_id", "version", "type", "schema_version", "data",
           "recorded_at", "correlation_id", "causation_id")
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM events"
_CHUNK = 10_000

Row = tuple[int, str, str, int, str, int, str, float, str | None, str | None]
"""An events row as stored (``data`` still JSON text)."""


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What to show. Empty sets mean "any"; every given criterion must hold.

    ``streams`` are resolved conversation streams; ``since``/``until`` bound
    ``recorded_at`` (Unix seconds); ``after``/``upto`` bound the position
    (``after`` exclusive, ``upto`` inclusive).
    """

    streams: frozenset[str] = frozenset()
    personas: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    since: float | None = None
    until: float | None = None
    after: int = 0
    upto: int | None = None

    @property
    def looks_inside(self) -> bool:
        """Whether matching needs the event's data decoded."""
        return bool(self.personas or self.users)


EVERYTHING = EventFilter()
"""The filter that keeps every event."""


def iter_rows(db: sqlite3.Connection, selection: EventFilter,
              after: int | None = None) -> Iterator[Row]:
    """Matching rows after ``after`` (default: the filter's own), in position order."""
    where, params = _where(selection)
    position = selection.after if after is None else max(after, selection.after)
    while True:
        rows = db.execute(f"{_SELECT} WHERE position > ?{where} ORDER BY position LIMIT ?",
                          (position, *params, _CHUNK)).fetchall()
        if selection.looks_inside:
            for row in rows:
                if data_matches(selection, row[4], orjson.loads(row[6])):
                    yield row
        else:
            yield from rows
        if len(rows) < _CHUNK:
            return
        position = rows[-1][0]


# The JSON line of an event, put together by SQLite around the stored data (which is
# JSON already): everything but recorded_at, whose shortest round-trip form only
# Python writes (SQLite's 15 digits would not read back as the same float).
_LINE_HEAD = ("CAST('{\"position\":' || position || ',\"event_id\":' || json_quote(event_id) "
              "|| ',\"stream_id\":' || json_quote(stream_id) || ',\"version\":' || version "
              "|| ',\"type\":' || json_quote(type) || ',\"schema_version\":' || schema_version "
              "|| ',\"data\":' || data || ',\"recorded_at\":' AS BLOB)")
_LINE_TAIL = ("CAST(',\"correlation_id\":' || json_quote(correlation_id) || "
              "',\"causation_id\":' || json_quote(causation_id) || '}' AS BLOB)")


def iter_json_lines(db: sqlite3.Connection, selection: EventFilter) -> Iterator[bytes]:
    """Matching events as JSON lines (the shape of ``personae events --json``), in
    position order, without decoding and re-encoding their data in Python."""
    where, params = _where(selection)
    inside = ", type, data" if selection.looks_inside else ""
    position = selection.after
    while True:
        rows = db.execute(f"SELECT position, {_LINE_HEAD}, recorded_at, {_LINE_TAIL}{inside} "
                          f"FROM events WHERE position > ?{where} ORDER BY position LIMIT ?",
                          (position, *params, _CHUNK)).fetchall()
        for row in rows:
            if not inside or data_matches(selection, row[4], orjson.loads(row[5])):
                yield b"%b%r%b\n" % (row[1], row[2], row[3])
        if len(rows) < _CHUNK:
            return
        position = rows[-1][0]


def _where(selection: EventFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if selection.upto is not None:
        clauses.append("position <= ?")
        params.append(selection.upto)
    if selection.streams:
        # the (stream_id, version) index: a conversation is read without a scan
        clauses.append(f"stream_id IN ({','.join('?' * len(selection.streams))})")
        params.extend(sorted(selection.streams))
    if selection.types:
        # "+type": filter while walking positions; the type index would make SQLite sort
        clauses.append(f"+type IN ({','.join('?' * len(selection.types))})")
        params.extend(sorted(selection.types))
    if selection.since is not None:
        clauses.append("+recorded_at >= ?")
        params.append(selection.since)
    if selection.until is not None:
        clauses.append("+recorded_at <= ?")
        params.append(selection.until)
    return "".join(f" AND {c}" for c in clauses), params


def data_matches(selection: EventFilter, event_type: str, data: Mapping[str, Any]) -> bool:
    """Whether an event's data passes the persona and user criteria."""
    if selection.personas and not (_personas_of(event_type, data) & selection.personas):
        return False
    return not selection.users or bool(_users_of(data) & selection.users)


def _personas_of(event_type: str, data: Mapping[str, Any]) -> set[str]:
    found = {str(data[k]) for k in ("persona_id", "from_persona", "invoked_persona")
             if data.get(k)}
    if event_type == "MessageReceived":
        found.update(str(m) for m in data.get("mentions") or ())
    return found


def _users_of(data: Mapping[str, Any]) -> set[str]:
    found = {str(data[k]) for k in ("author_id", "by_user") if data.get(k)}
    if data.get("author_name"):
        found.add(str(data["author_name"]))
    scope_keys = data.get("scope_keys")
    if isinstance(scope_keys, Mapping) and scope_keys.get("user"):
        found.add(str(scope_keys["user"]))
    return found


def conversation_streams(db: sqlite3.Connection, conversation: str) -> frozenset[str]:
    """The streams ``conversation`` names: a stream id as is, or a channel id on any
    platform (``conv:<platform>:<channel>`` for each platform that has one)."""
    if db.execute("SELECT 1 FROM events WHERE stream_id = ? LIMIT 1",
                  (conversation,)).fetchone():
        return frozenset({conversation})
    candidates = {f"conv:{p}:{conversation}" for p in platforms(db)}
    return frozenset(s for s in candidates if db.execute(
        "SELECT 1 FROM events WHERE stream_id = ? LIMIT 1", (s,)).fetchone())


def platforms(db: sqlite3.Connection) -> list[str]:
    """Every platform with a conversation in the log, found by hopping along the
    stream index (one probe per platform, however long the log)."""
    found: list[str] = []
    low = "conv:"
    while True:
        row = db.execute("SELECT stream_id FROM events WHERE stream_id > ? AND stream_id < ? "
                         "ORDER BY stream_id LIMIT 1", (low, "conv;")).fetchone()
        if row is None:
            return found
        platform = row[0].split(":", 2)[1]
        found.append(platform)
        low = f"conv:{platform};"
