"""The synchronous SQLite event log: appends, reads, projections.

:class:`EventLog` owns one connection and is used from one thread at a time: the
group-commit writer thread of :class:`~eventstore.store.EventStore`, or a command
line tool. Asyncio code uses :class:`~eventstore.store.EventStore` instead.
"""

from __future__ import annotations

import heapq
import itertools
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from . import schema
from .errors import EventStoreError, WrongExpectedVersion
from .model import (
    ANY,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    build_recorded_event,
)
from .projections import Projection, ProjectionDifference, compare_snapshots
from .upcasting import Upcasters

_COLUMNS = (
    "position, event_id, stream_id, version, type, schema_version, data, recorded_at, "
    "correlation_id, causation_id"
)
_INSERT = (
    "INSERT INTO events (position, event_id, stream_id, version, type, schema_version, data, "
    "recorded_at, correlation_id, causation_id) VALUES "
)
_ROW_MARKS = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# Rows per INSERT statement: each statement costs a statement journal (the triggers
# make one necessary), so one statement for many rows is much cheaper than one per row.
_ROWS_PER_INSERT = 100
_READ_CHUNK = 5000
# A stream's tail as one JSON text: the rows come back in a single step, which matters
# under load: sqlite3 lets go of the GIL at every step, and a reader thread that must win
# it back for each of ~100 rows waits up to a switch interval (5 ms) each time the event
# loop's thread is busy. recorded_at goes through printf so no digit of the REAL is lost.
_TAIL_AS_JSON = (
    "SELECT json_group_array(json_array(position, event_id, stream_id, version, type, "
    "schema_version, data, json(printf('%!.17g', recorded_at)), correlation_id, "
    "causation_id)) FROM (SELECT * FROM events WHERE stream_id = ? ORDER BY version DESC "
    "LIMIT ?)"
)


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One atomic append: all of ``events`` land in ``stream_id`` or none do."""

    stream_id: str
    events: Sequence[NewEvent]
    expected_version: ExpectedVersion = ANY


# orjson is ten times faster than the json module here. The pass-through options make
# it refuse datetimes and dataclasses as json does, rather than convert them quietly.
_ORJSON_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)
# orjson writes NaN and infinities as null; this strict encoder runs only when a null
# appears, to refuse them instead, because a number must not come back as None.
_STRICT_ENCODER = json.JSONEncoder(allow_nan=False)


def encode_data(data: Mapping[str, Any]) -> str:
    """The JSON text stored for an event's data.

    Raises TypeError or ValueError for data that JSON cannot represent exactly
    (non-JSON types, NaN and infinities, integers beyond 64 bits).
    """
    data = data if type(data) is dict else dict(data)
    text = orjson.dumps(data, option=_ORJSON_OPTIONS)
    if b"null" in text:
        _STRICT_ENCODER.encode(data)
    return text.decode()


def _as_store_error(request: AppendRequest, exc: Exception) -> EventStoreError:
    if isinstance(exc, EventStoreError):
        return exc
    if isinstance(exc, TypeError | ValueError):
        error = EventStoreError(
            f"append to {request.stream_id!r} refused: its data cannot be stored as JSON ({exc})"
        )
    else:
        error = EventStoreError(f"append to {request.stream_id!r} refused: {exc}")
    error.__cause__ = exc
    return error


class EventLog:
    """An open event log file. See the module docstring for threading rules."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        *,
        upcasters: Upcasters | None = None,
        projections: Sequence[Projection] = (),
    ) -> None:
        self._db = conn
        self.path = path
        self._upcasters = upcasters or Upcasters()
        self._projections = tuple(projections)
        for projection in self._projections:
            self._prepare_projection(projection)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        synchronous: schema.Synchronous = "full",
        upcasters: Upcasters | None = None,
        projections: Sequence[Projection] = (),
        create: bool = True,
    ) -> EventLog:
        """Open (creating or migrating) the log at ``path``.

        Opening reads no events unless a registered projection is behind the log.
        """
        path = Path(path)
        conn = schema.connect(path, synchronous=synchronous, create=create)
        return cls(conn, path, upcasters=upcasters, projections=projections)

    def close(self) -> None:
        """Close the connection. Committed events are durable before this returns."""
        self._db.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection, for projection queries in the same thread."""
        return self._db

    # -- appending -----------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically, in their own transaction."""
        (outcome,) = self.append_batch([AppendRequest(stream_id, events, expected_version)])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def append_batch(
        self, requests: Sequence[AppendRequest], *, recorded: bool = False
    ) -> list[AppendResult | EventStoreError]:
        """Run many appends in one transaction (one fsync): the heart of group commit.

        Each request succeeds or fails on its own (a savepoint each); a failure is
        returned in its slot, not raised. Only a failure of the transaction itself
        (the disk, the commit) raises. With ``recorded`` each result carries the
        events it wrote (``AppendResult.written``).
        """
        outcomes: list[AppendResult | EventStoreError] = []
        now = time.time()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._catch_up_projections()
            # The write lock is held from here to COMMIT, so positions can be handed out
            # here: the inserts then need no lastrowid round trip and can be batched.
            next_position = self.last_position() + 1
            for request in requests:
                self._db.execute("SAVEPOINT request")
                try:
                    result = self._append_one(request, now, next_position, recorded)
                except Exception as exc:
                    self._db.execute("ROLLBACK TO request")
                    outcomes.append(_as_store_error(request, exc))
                else:
                    outcomes.append(result)
                    if result.positions:
                        next_position = max(next_position, max(result.positions) + 1)
                self._db.execute("RELEASE request")
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return outcomes

    def _append_one(self, request: AppendRequest, now: float, next_position: int,
                    recorded: bool) -> AppendResult:
        stream_id = request.stream_id
        existing = self._existing_positions([e.event_id for e in request.events])
        current = self.stream_version(stream_id)
        if all(e.event_id in existing for e in request.events):
            positions = tuple(existing[e.event_id] for e in request.events)
            return AppendResult(positions, current, duplicates=len(positions))
        expected = request.expected_version
        if expected != ANY and expected != current:
            raise WrongExpectedVersion(stream_id, int(expected), current)
        positions: list[int] = []
        rows: list[tuple] = []
        version = current
        for event in request.events:
            position = existing.get(event.event_id)
            if position is None:
                position, next_position = next_position, next_position + 1
                version += 1
                existing[event.event_id] = position
                rows.append((
                    position, event.event_id, stream_id, version, event.type,
                    event.schema_version, encode_data(event.data), now,
                    event.correlation_id, event.causation_id,
                ))
            positions.append(position)
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            part = rows[start : start + _ROWS_PER_INSERT]
            self._db.execute(
                _INSERT + ",".join([_ROW_MARKS] * len(part)),
                [value for row in part for value in row],
            )
        written: list[RecordedEvent] = []
        if self._projections or recorded:
            # Projections (and followers) see the data as stored (decoded back), exactly
            # as a rebuild from the log will, so they never disagree over tuples or keys.
            written = self._events(rows)
            self._apply_projections(written)
        return AppendResult(tuple(positions), version, len(request.events) - len(rows),
                            tuple(written) if recorded else ())

    def _existing_positions(self, event_ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self._db.execute(
                f"SELECT event_id, position FROM events WHERE event_id IN ({marks})", chunk
            ).fetchall())
        return found

    # -- reading -------------------------------------------------------------------

    def stream_version(self, stream_id: str) -> int:
        """The stream's current version: 0 for a stream with no events."""
        row = self._db.execute(
            "SELECT MAX(version) FROM events WHERE stream_id = ?", (stream_id,)
        ).fetchone()
        return int(row[0] or 0)

    def last_position(self) -> int:
        """The position of the newest event, 0 for an empty log."""
        return int(self._db.execute("SELECT MAX(position) FROM events").fetchone()[0] or 0)

    def read_stream(
        self, stream_id: str, from_version: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        """Events of ``stream_id`` from ``from_version`` (inclusive), oldest first."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND version >= ? "
            "ORDER BY version LIMIT ?",
            (stream_id, from_version, -1 if limit is None else limit),
        )
        return [self._from_row(row) for row in rows]

    def read_stream_tail(self, stream_id: str, count: int) -> list[RecordedEvent]:
        """The last ``count`` events of ``stream_id``, oldest first, without a scan."""
        (text,) = self._db.execute(_TAIL_AS_JSON, (stream_id, count)).fetchone()
        rows = orjson.loads(text)
        rows.sort(key=_version)  # an aggregate keeps no promise about its input's order
        return self._events(rows)

    def read_all(
        self,
        after: int = 0,
        *,
        types: Iterable[str] | None = None,
        until: int | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Events with ``after < position <= until``, in position order, optionally by type."""
        return list(self.iter_all(after, types=types, until=until, limit=limit))

    def iter_all(
        self,
        after: int = 0,
        *,
        types: Iterable[str] | None = None,
        until: int | None = None,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
        """Like :meth:`read_all`, but streams in chunks so memory stays flat."""
        type_list = sorted(set(types)) if types is not None else None
        remaining = limit
        while remaining is None or remaining > 0:
            size = _READ_CHUNK if remaining is None else min(_READ_CHUNK, remaining)
            rows = self._chunk(after, until, type_list, size)
            yield from self._events(rows)
            if len(rows) < size:
                return
            after = rows[-1][0]
            if remaining is not None:
                remaining -= len(rows)

    def _chunk(
        self, after: int, until: int | None, types: list[str] | None, size: int
    ) -> list[tuple]:
        """The next ``size`` rows after ``after``, in position order.

        Each type is read along its own ``(type, position)`` index range and the ranges
        are merged: one query with ``type IN (...)`` makes SQLite sort every matching
        row after ``after``, for every chunk, which is quadratic over a long log.
        """
        sql = f"SELECT {_COLUMNS} FROM events WHERE position > ?"
        bounds: list[Any] = [after]
        if until is not None:
            sql += " AND position <= ?"
            bounds.append(until)
        if types is None:
            return self._db.execute(sql + " ORDER BY position LIMIT ?", [*bounds, size]).fetchall()
        sql += " AND type = ? ORDER BY position LIMIT ?"
        per_type = [self._db.execute(sql, [*bounds, t, size]).fetchall() for t in types]
        if len(per_type) == 1:
            return per_type[0]
        return list(itertools.islice(heapq.merge(*per_type), size))

    def get(self, event_id: str) -> RecordedEvent | None:
        """The event with ``event_id``, or None."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM events WHERE event_id = ?", (event_id,)
        ).fetchone()
        return self._from_row(row) if row else None

    def _events(self, rows: Sequence[Sequence[Any]]) -> list[RecordedEvent]:
        """:meth:`_from_row` for many rows, with its lookups hoisted: replay's inner loop."""
        loads, event = orjson.loads, build_recorded_event
        upcast, upcast_types = self._upcasters.upcast, self._upcasters.types
        events = []
        for (position, event_id, stream_id, version, type_, schema_version, data, recorded_at,
             correlation_id, causation_id) in rows:
            data = loads(data)
            if type_ in upcast_types:
                schema_version, data = upcast(type_, schema_version, data)
            events.append(event(
                position, event_id, stream_id, version, type_, schema_version, data,
                recorded_at, correlation_id, causation_id,
            ))
        return events

    def _from_row(self, row: tuple) -> RecordedEvent:
        return self._events([row])[0]

    # -- projections -----------------------------------------------------------------

    def projection_position(self, name: str) -> int:
        """How far the projection ``name`` has read, 0 if it never ran."""
        row = self._db.execute(
            "SELECT position FROM projection_positions WHERE name = ?", (name,)
        ).fetchone()
        return int(row[0]) if row else 0

    def _prepare_projection(self, projection: Projection) -> None:
        row = self._db.execute(
            "SELECT version FROM projection_positions WHERE name = ?", (projection.name,)
        ).fetchone()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if row is None or row[0] != projection.version:
                projection.drop(self._db, "main")
                projection.create(self._db, "main")
                self._db.execute(
                    "INSERT OR REPLACE INTO projection_positions (name, version, position) "
                    "VALUES (?, ?, 0)",
                    (projection.name, projection.version),
                )
            self._catch_up(projection)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _catch_up_projections(self) -> None:
        for projection in self._projections:
            self._catch_up(projection)

    def _catch_up(self, projection: Projection) -> None:
        position = self.projection_position(projection.name)
        last = position
        for event in self.iter_all(position):
            projection.apply(self._db, "main", event)
            last = event.position
        if last != position:
            self._set_projection_position(projection.name, last)

    def _apply_projections(self, events: list[RecordedEvent]) -> None:
        if not events or not self._projections:
            return
        for projection in self._projections:
            for event in events:
                projection.apply(self._db, "main", event)
            self._set_projection_position(projection.name, events[-1].position)

    def _set_projection_position(self, name: str, position: int) -> None:
        self._db.execute(
            "UPDATE projection_positions SET position = ? WHERE name = ?", (position, name)
        )

    def rebuild_and_compare(self, projection: Projection) -> list[ProjectionDifference]:
        """Rebuild ``projection`` from position zero in a scratch database and compare it
        with the live tables. An empty list means they agree."""
        self._db.execute("ATTACH DATABASE ':memory:' AS rebuild")
        try:
            projection.create(self._db, "rebuild")
            self._db.execute("BEGIN")
            try:
                until = self.projection_position(projection.name)
                for event in self.iter_all(0, until=until):
                    projection.apply(self._db, "rebuild", event)
                live = projection.snapshot(self._db, "main")
                rebuilt = projection.snapshot(self._db, "rebuild")
            finally:
                self._db.execute("ROLLBACK")
        finally:
            self._db.execute("DETACH DATABASE rebuild")
        return compare_snapshots(projection.name, live, rebuilt)


def _version(row: list[Any]) -> int:
    return row[3]
