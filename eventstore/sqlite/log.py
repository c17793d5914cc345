"""The SQLite backend's :class:`~eventstore.protocol.Log`: one file, WAL mode.

:class:`SQLiteLog` owns one connection and is used from one thread at a time: the
writer thread of a :class:`~eventstore.store.ThreadedStore`, a reader thread (through
:meth:`SQLiteLog.reader`), or a command-line tool.
"""

from __future__ import annotations

import heapq
import itertools
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from ..appending import (
    as_store_error,
    claim_lost,
    claimed_already,
    in_load_order,
    shreds_of,
    stored_data,
)
from ..encoding import encode_checked_before, encode_data, json_line
from ..errors import EventStoreError, LogUnavailable, StoreOpenError, WrongExpectedVersion
from ..filters import EventFilter
from ..keys import SqlKeyTable
from ..model import (
    ANY,
    AppendRequest,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    Violation,
    build_recorded_event,
)
from ..projections import (
    Projection,
    ProjectionDifference,
    Where,
    apply_events,
    check_tables,
    compare_tables,
)
from ..sealing import SEALED, KeyRecord, Resealer, Sealer
from ..tables import MemoryTables
from ..upcasting import Upcasters
from . import schema
from .lock import WriterLock
from .tables import SQLiteTables

_COLUMNS = (
    "position, event_id, stream_id, version, type, schema_version, data, recorded_at, "
    "correlation_id, causation_id"
)
_INSERT = f"INSERT INTO events ({_COLUMNS}) VALUES "
_ROW_MARKS = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# Rows per INSERT statement: each statement costs a statement journal (the triggers
# make one necessary), so one statement for many rows is much cheaper than one per row.
_ROWS_PER_INSERT = 100
_READ_CHUNK = 5000
_SQLITE_FULL = 13
_SMALL_WAL_PAGES = 100
"""Checkpoint every ~400 KB of WAL (SQLite's default is 1000 pages) once the disk was full."""
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
# The JSON line of an event, put together by SQLite around the stored data (which is
# JSON already): everything but recorded_at, whose shortest round-trip form only
# Python writes (SQLite's 15 digits would not read back as the same float).
_LINE_HEAD = ("CAST('{\"position\":' || position || ',\"event_id\":' || json_quote(event_id) "
              "|| ',\"stream_id\":' || json_quote(stream_id) || ',\"version\":' || version "
              "|| ',\"type\":' || json_quote(type) || ',\"schema_version\":' || schema_version "
              "|| ',\"data\":' || data || ',\"recorded_at\":' AS BLOB)")
_LINE_TAIL = ("CAST(',\"correlation_id\":' || json_quote(correlation_id) || "
              "',\"causation_id\":' || json_quote(causation_id) || '}' AS BLOB)")


class SQLiteLog:
    """An open SQLite event log file. See the module docstring for threading rules."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        *,
        upcasters: Upcasters | None = None,
        projections: Sequence[Projection] = (),
        read_only: bool = False,
        lock: WriterLock | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        check_tables(projections)
        self._db = conn
        self._sealer = sealer or Sealer()
        self._keys = SqlKeyTable(self._fetch)
        self._shredded = False
        self.path = path
        self.location = str(path)
        self.shared = False
        self._read_only = read_only
        self._lock = lock
        self._upcasters = upcasters or Upcasters()
        self._projections = tuple(projections)
        self._tables = SQLiteTables(conn)
        self._disk_was_full = False
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
        read_only: bool = False,
        lock: bool = False,
        seal: bool = True,
    ) -> SQLiteLog:
        """Open (creating or migrating) the log at ``path``.

        Opening reads no events unless a registered projection is behind the log.
        ``read_only``: never write (no migration, no projection catch-up), so that a
        read-only file or directory can be read; ``lock``: be the one writer of this file
        (:class:`~eventstore.sqlite.lock.WriterLock`), refused while another holds it;
        ``seal``: store the fields events ask to seal encrypted (False: in clear).
        """
        path = Path(path)
        sealer = Sealer(enabled=seal)
        if read_only:
            if projections:
                raise ValueError("a read-only log keeps no projections up to date")
            return cls(schema.connect_read_only(path), path, upcasters=upcasters,
                       read_only=True, sealer=sealer)
        writer = None
        if lock:
            schema.refuse_foreign_file(path)
            if not create and not path.exists():
                raise StoreOpenError(f"there is no event log at {path} yet")
            schema.ensure_parent(path)
            writer = WriterLock.acquire(path)
        try:
            conn = schema.connect(path, synchronous=synchronous, create=create)
            return cls(conn, path, upcasters=upcasters, projections=projections, lock=writer,
                       sealer=sealer)
        except BaseException:
            if writer is not None:
                writer.release()
            raise

    @staticmethod
    def others_appended_to(stream_id: str) -> int:
        """See :meth:`~eventstore.protocol.Log.others_appended_to`: no other writer."""
        return 0

    def reader(self) -> SQLiteLog:
        """Another, query-only connection to this file (WAL lets it read while we write)."""
        conn = schema.connect_read_only(self.path) if self._read_only else \
            schema.connect_reader(self.path)
        return SQLiteLog(conn, self.path, upcasters=self._upcasters, read_only=self._read_only,
                         sealer=self._sealer)

    def listen(self) -> None:
        """None: another process's commits are seen at a follower's next wake-up (an
        SQLite log has one writing process, the bot; others are tools run by hand)."""
        return None

    def problem(self) -> None:
        """None: a file has no server to lose (a full disk shows in its appends)."""
        return None

    def close(self) -> None:
        """Close the connection (and let go of the writer lock). Committed events are
        durable before this returns."""
        self._db.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection (SQLite's own tools: backup, checks, tests)."""
        return self._db

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, params).fetchall()

    def key_table(self) -> SqlKeyTable:
        """The key table of sealed content, on this connection."""
        return self._keys

    def load_keys(self, records: Iterable[KeyRecord]) -> int:
        """See :meth:`~eventstore.protocol.Log.load_keys`."""
        rows = list(records)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._keys.insert_many(rows)
            self._db.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            self._db.execute("ROLLBACK")
            raise EventStoreError(f"{self.location} already holds one of these keys ({exc})"
                                  ) from None
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._sealer.forget_cache()
        return len(rows)

    # -- appending -----------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically, in their own transaction."""
        (outcome,) = self.append_batch([AppendRequest(stream_id, events,
                                                      expected_version=expected_version)])
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
        if self._disk_was_full:
            self._disk_was_full = not self._checkpoint()
        try:
            return self._append_batch(requests, outcomes, now, recorded)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != _SQLITE_FULL:
                raise
            self._disk_was_full = True
            self._checkpoint()
            raise LogUnavailable(
                f"the disk holding the event log {self.location} is full; nothing of this "
                "append was written (free some space: the bot takes up again by itself)"
            ) from None

    def _append_batch(self, requests: Sequence[AppendRequest],
                      outcomes: list[AppendResult | EventStoreError], now: float,
                      recorded: bool) -> list[AppendResult | EventStoreError]:
        self._db.execute("BEGIN IMMEDIATE")
        sealer = self._sealer
        try:
            # The write lock is held from here to COMMIT, so positions can be handed out
            # here: the inserts then need no lastrowid round trip and can be batched.
            next_position = self._catch_up_projections() + 1
            first_position = next_position
            for request in requests:
                self._db.execute("SAVEPOINT request")
                mark = sealer.mark()
                try:
                    result = self._append_one(request, now, next_position, recorded)
                except Exception as exc:
                    self._db.execute("ROLLBACK TO request")
                    sealer.rolled_back(mark)
                    outcomes.append(as_store_error(request, exc))
                else:
                    outcomes.append(result)
                    if result.positions:
                        next_position = max(next_position, max(result.positions) + 1)
                self._db.execute("RELEASE request")
            if self._projections and next_position > first_position:
                # every registered projection has seen every event: one UPDATE for all
                self._db.execute(
                    "UPDATE projection_positions SET position = ? WHERE name IN "
                    f"({','.join('?' * len(self._projections))})",
                    (next_position - 1, *(p.name for p in self._projections)))
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            sealer.rolled_back()
            raise
        sealer.committed()
        if self._shredded:
            self._shredded = False
            self._wipe_wal()
        return outcomes

    def _wipe_wal(self) -> None:
        """After keys were destroyed, move the WAL into the file and empty it, so no copy
        of a destroyed key stays in the WAL; without waiting for readers (one that reads
        keeps the WAL until the next such attempt or SQLite's own checkpoint)."""
        try:
            self._db.execute("PRAGMA busy_timeout=0")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error:
            pass
        finally:
            self._db.execute("PRAGMA busy_timeout=5000")

    def _checkpoint(self) -> bool:
        """Move the write-ahead log into the database and empty it; False while there is
        still no room for that. A full disk stops the automatic checkpoints (they need
        room too), and the WAL, never reset, then fills any space freed: after a full disk
        each append first tries this, until it works. An append that wrote nothing (a
        duplicate) succeeds on a full disk, so it is no sign that the WAL was emptied."""
        try:
            # from now on often enough that the WAL never grows into the space left (set
            # first: it needs no room, the checkpoint does)
            self._db.execute(f"PRAGMA wal_autocheckpoint={_SMALL_WAL_PAGES}").fetchall()
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error:
            return False  # still no room: the append that follows says so
        return True

    def _append_one(self, request: AppendRequest, now: float, next_position: int,
                    recorded: bool) -> AppendResult:
        stream_id = request.stream_id
        shreds = shreds_of(request)
        if shreds:
            self._sealer.shred(self._keys, shreds, now)
            self._shredded = True
        existing = self._existing_positions([e.event_id for e in request.events])
        current = self.stream_version(stream_id)
        if claimed_already(request, existing):
            return claim_lost(request, existing, current)
        if all(e.event_id in existing for e in request.events):
            known = tuple(existing[e.event_id] for e in request.events)
            return AppendResult(positions=known, stream_version=current, duplicates=len(known))
        expected = request.expected_version
        if expected != ANY and expected != current:
            raise WrongExpectedVersion(stream_id, int(expected), current)
        positions: list[int] = []
        rows: list[tuple] = []
        opened: list[tuple] = []  # the rows as a read opens them, for projections
        version = current
        seal, keys = self._sealer.seal, self._keys
        self._sealer.prepare(keys, [(e.data, e.seals) for e in request.events
                                    if e.seals and e.event_id not in existing], now)
        for event in request.events:
            position = existing.get(event.event_id)
            if position is None:
                position, next_position = next_position, next_position + 1
                version += 1
                existing[event.event_id] = position
                if event.seals:
                    stored = encode_data(seal(keys, event.event_id, event.data, event.seals,
                                              now))
                    opened.append((position, event.event_id, stream_id, version, event.type,
                                   event.schema_version, encode_checked_before(event.data), now,
                                   event.correlation_id, event.causation_id))
                else:
                    stored = encode_data(event.data)
                rows.append((
                    position, event.event_id, stream_id, version, event.type,
                    event.schema_version, stored, now,
                    event.correlation_id, event.causation_id,
                ))
                if not event.seals:
                    opened.append(rows[-1])
            positions.append(position)
        self._insert(rows)
        written: list[RecordedEvent] = []
        if self._projections or recorded:
            # Projections (and followers) see the data as stored (decoded back), exactly
            # as a rebuild from the log will, so they never disagree over tuples or keys.
            written = self._events(opened)
            self._apply_projections(written)
        return AppendResult(positions=tuple(positions), stream_version=version,
                            duplicates=len(request.events) - len(rows),
                            written=tuple(written) if recorded else ())

    def _insert(self, rows: list[tuple]) -> None:
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            part = rows[start : start + _ROWS_PER_INSERT]
            self._db.execute(
                _INSERT + ",".join([_ROW_MARKS] * len(part)),
                [value for row in part for value in row],
            )

    def _existing_positions(self, event_ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self._db.execute(
                f"SELECT event_id, position FROM events WHERE event_id IN ({marks})", chunk
            ).fetchall())
        return found

    def load(self, events: Iterable[RecordedEvent], *,
             reseal: Resealer | None = None) -> tuple[int, int]:
        """See :meth:`~eventstore.protocol.Log.load`."""
        if self.last_position():
            raise EventStoreError(f"{self.location} already holds events; load only into an "
                                  "empty log")
        count = last = 0
        rows: list[tuple] = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for event in in_load_order(events):
                if reseal is not None:
                    event = self._sealer.reseal(self._keys, event, reseal)
                rows.append((event.position, event.event_id, event.stream_id, event.version,
                             event.type, event.schema_version, stored_data(event),
                             event.recorded_at, event.correlation_id, event.causation_id))
                count, last = count + 1, event.position
                if len(rows) >= _READ_CHUNK:
                    self._load_rows(rows)
            self._load_rows(rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._sealer.rolled_back()
            raise
        self._sealer.committed()
        return count, last

    def _load_rows(self, rows: list[tuple]) -> None:
        try:
            self._insert(rows)
        except sqlite3.IntegrityError as exc:
            # positions and versions were checked on the way in: the collision is an id
            raise EventStoreError(f"an event id appears twice ({exc})") from None
        rows.clear()

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
        ).fetchall()
        return self._events(rows)

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

    def read_positions(self, positions: Iterable[int]) -> list[RecordedEvent]:
        """The events at ``positions`` (those that exist), in position order."""
        wanted = sorted(set(positions))
        rows: list[tuple] = []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows += self._db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE position IN "
                f"({','.join('?' * len(chunk))}) ORDER BY position", chunk).fetchall()
        return self._events(rows)

    def get(self, event_id: str) -> RecordedEvent | None:
        """The event with ``event_id``, or None."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM events WHERE event_id = ?", (event_id,)
        ).fetchone()
        return self._events([row])[0] if row else None

    def with_id_prefix(self, prefix: str) -> Iterator[RecordedEvent]:
        """Events whose id starts with ``prefix``, in id order (a range of the id index)."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM events WHERE event_id >= ? AND event_id < ? "
            "ORDER BY event_id", (prefix, _after(prefix))).fetchall()
        return iter(self._events(rows))

    def stream_segments(self, prefix: str) -> list[str]:
        """The distinct next segments after ``prefix`` of stream ids, found by hopping
        along the stream index (one probe per segment, however long the log)."""
        found: list[str] = []
        low, high = prefix, _after(prefix)
        while True:
            row = self._db.execute("SELECT stream_id FROM events WHERE stream_id > ? AND "
                                   "stream_id < ? ORDER BY stream_id LIMIT 1",
                                   (low, high)).fetchone()
            if row is None:
                return found
            segment = row[0][len(prefix):].split(":", 1)[0]
            found.append(segment)
            low = f"{prefix}{segment};"  # ';' sorts right after ':'

    def active_streams(self, since: float, *, types: Iterable[str], prefix: str) -> list[str]:
        """Streams under ``prefix`` with an event of ``types`` recorded since ``since``."""
        kinds = sorted(set(types))
        rows = self._db.execute(
            "SELECT DISTINCT stream_id FROM events WHERE recorded_at >= ? AND type IN "
            f"({','.join('?' * len(kinds))}) AND stream_id >= ? AND stream_id < ?",
            (since, *kinds, prefix, _after(prefix))).fetchall()
        return sorted(row[0] for row in rows)

    def scan(self, selection: EventFilter, *, upcast: bool = True,
             unseal: bool | None = None) -> Iterator[RecordedEvent]:
        """See :meth:`~eventstore.protocol.LogReader.scan`."""
        where, params = _where(selection)
        position = selection.after
        matches = selection.matches
        while True:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE position > ?{where} ORDER BY position "
                "LIMIT ?", (position, *params, _READ_CHUNK)).fetchall()
            for event in self._events(rows, upcast=upcast, unseal=unseal):
                if matches is None or matches(event.type, event.data):
                    yield event
            if len(rows) < _READ_CHUNK:
                return
            position = rows[-1][0]

    def json_lines(self, selection: EventFilter) -> Iterator[bytes]:
        """See :meth:`~eventstore.protocol.LogReader.json_lines`."""
        if self._has_keys():
            # sealed content is opened in Python; the fast path below copies data as stored
            yield from map(json_line, self.scan(selection, upcast=False, unseal=True))
            return
        where, params = _where(selection)
        matches = selection.matches
        inside = ", type, data" if matches is not None else ""
        position = selection.after
        while True:
            rows = self._db.execute(
                f"SELECT position, {_LINE_HEAD}, recorded_at, {_LINE_TAIL}{inside} "
                f"FROM events WHERE position > ?{where} ORDER BY position LIMIT ?",
                (position, *params, _READ_CHUNK)).fetchall()
            for row in rows:
                if matches is None or matches(row[4], orjson.loads(row[5])):
                    yield b"%b%r%b\n" % (row[1], row[2], row[3])
            if len(rows) < _READ_CHUNK:
                return
            position = rows[-1][0]

    def _has_keys(self) -> bool:
        try:
            return self._db.execute("SELECT 1 FROM content_keys LIMIT 1").fetchone() is not None
        except sqlite3.OperationalError:
            return False  # a log of an older schema, opened read-only: nothing is sealed

    def _events(self, rows: Sequence[Sequence[Any]], *, upcast: bool = True,
                unseal: bool | None = None) -> list[RecordedEvent]:
        """Rows as events, with the lookups hoisted: replay's inner loop. Sealed content
        is opened unless ``unseal`` is false (default: as ``upcast``)."""
        loads, event = orjson.loads, build_recorded_event
        upcast_step = self._upcasters.upcast
        upcast_types = self._upcasters.types if upcast else frozenset()
        opening = upcast if unseal is None else unseal
        open_, keys = self._sealer.open, self._keys
        decoded = [loads(row[6]) for row in rows]
        if opening:
            wanted = [box["key"] for data in decoded if SEALED in data for box in data[SEALED]]
            if wanted:
                self._sealer.preload(keys, wanted)  # one query for the chunk's keys
        events = []
        for (position, event_id, stream_id, version, type_, schema_version, _, recorded_at,
             correlation_id, causation_id), data in zip(rows, decoded, strict=True):
            if opening and SEALED in data:
                data = open_(keys, event_id, data)
            if type_ in upcast_types:
                schema_version, data = upcast_step(type_, schema_version, data)
            events.append(event(
                position, event_id, stream_id, version, type_, schema_version, data,
                recorded_at, correlation_id, causation_id,
            ))
        return events

    # -- projections -----------------------------------------------------------------

    def rows(self, table: str, where: Where | None = None, *, order_by: Sequence[str] = (),
             limit: int | None = None) -> list[dict[str, Any]]:
        """See :meth:`~eventstore.projections.TableReader.rows`."""
        return self._tables.rows(table, where, order_by=order_by, limit=limit)

    def projection_state(self, name: str) -> tuple[int, int] | None:
        """``(version, position)`` of the projection ``name``, None if it never ran here."""
        row = self._db.execute(
            "SELECT version, position FROM projection_positions WHERE name = ?", (name,)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def projection_position(self, name: str) -> int:
        """How far the projection ``name`` has read, 0 if it never ran."""
        state = self.projection_state(name)
        return state[1] if state else 0

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction around the block (a WAL snapshot)."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def _prepare_projection(self, projection: Projection) -> None:
        state = self.projection_state(projection.name)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if state is None or state[0] != projection.version:
                self._tables.drop(projection)
                self._tables.create(projection)
                self._db.execute(
                    "INSERT OR REPLACE INTO projection_positions (name, version, position) "
                    "VALUES (?, ?, 0)",
                    (projection.name, projection.version),
                )
            else:
                self._tables.register(projection)
            self._catch_up(projection)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _catch_up_projections(self) -> int:
        """Bring every registered projection up to the log (a tool that did not register
        them may have appended); returns the log's last position. One query when none is
        behind, which is every time the bot is the log's writer."""
        last = self.last_position()
        if self._projections:
            marks = ",".join("?" * len(self._projections))
            reached = dict(self._db.execute(
                f"SELECT name, position FROM projection_positions WHERE name IN ({marks})",
                [p.name for p in self._projections]).fetchall())
            for projection in self._projections:
                if reached.get(projection.name, 0) < last:
                    self._catch_up(projection)
        return last

    def _catch_up(self, projection: Projection) -> None:
        position = self.projection_position(projection.name)
        last = apply_events(projection, self._tables, self.iter_all(position))
        if last > position:
            self._set_projection_position(projection.name, last)

    def _apply_projections(self, events: list[RecordedEvent]) -> None:
        if not events:
            return
        for projection in self._projections:  # positions: once per batch (_append_batch)
            apply_events(projection, self._tables, events, admit=True)

    def _set_projection_position(self, name: str, position: int) -> None:
        self._db.execute(
            "UPDATE projection_positions SET position = ? WHERE name = ?", (position, name)
        )

    def rebuild_and_compare(self, projection: Projection) -> list[ProjectionDifference]:
        """See :meth:`~eventstore.protocol.Log.rebuild_and_compare`."""
        live = SQLiteTables(self._db)
        with self.snapshot():
            until = self.projection_position(projection.name)
            rebuilt = MemoryTables([projection])
            apply_events(projection, rebuilt, self.iter_all(0, until=until))
            return compare_tables(projection, live, rebuilt)

    def check(self) -> list[Violation]:
        """See :func:`~eventstore.sqlite.check.check_log` (run on this file)."""
        from .check import check_log

        return check_log(self.path)


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


def _after(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _version(row: list[Any]) -> int:
    return row[3]

