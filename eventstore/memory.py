"""The in-memory backend: a :class:`~eventstore.protocol.Log` in Python containers.

For tests and trials (``database.url: memory://``): nothing survives the process.
It keeps every promise the other backends keep (idempotent appends, gap-free stream
versions, all-or-nothing requests, projections in the same transaction, upcasting on
read) and passes the same conformance suite. Data is stored as the same JSON text
the databases store, so it reads back exactly as it would from them.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from .appending import (
    as_store_error,
    claim_lost,
    claimed_already,
    in_load_order,
    shreds_of,
    stored_data,
)
from .encoding import encode_data, json_line
from .errors import EventStoreError, WrongExpectedVersion
from .filters import EventFilter
from .keys import MemoryKeyTable
from .model import (
    ANY,
    AppendRequest,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    Violation,
    build_recorded_event,
)
from .projections import (
    Projection,
    ProjectionDifference,
    Where,
    apply_events,
    check_tables,
    compare_tables,
)
from .sealing import SEALED, KeyRecord, Resealer, Sealer
from .tables import MemoryTables
from .upcasting import Upcasters

_Row = tuple[int, str, str, int, str, int, str, float, str | None, str | None]
"""A stored event: the columns of the databases' events table, ``data`` as JSON text."""


@dataclass(slots=True)
class MemoryState:
    """One in-memory log, shared by every connection to it."""

    rows: list[_Row] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    """the position of each row, for bisecting"""
    by_id: dict[str, int] = field(default_factory=dict)
    """event id -> index in ``rows``"""
    streams: dict[str, list[int]] = field(default_factory=dict)
    """stream id -> indexes in ``rows``, by version"""
    tables: MemoryTables = field(default_factory=MemoryTables)
    projections: dict[str, tuple[int, int]] = field(default_factory=dict)
    """projection name -> (version, position)"""
    lock: threading.RLock = field(default_factory=threading.RLock)
    keys: dict[str, KeyRecord] = field(default_factory=dict)
    """the key table of sealed content"""
    sealer: Sealer = field(default_factory=Sealer)


class MemoryLog:
    """A connection to a :class:`MemoryState` (a fresh one unless given)."""

    def __init__(self, state: MemoryState | None = None, *, upcasters: Upcasters | None = None,
                 projections: Sequence[Projection] = (), location: str = "memory://",
                 seal: bool = True) -> None:
        check_tables(projections)
        self.state = state or MemoryState(sealer=Sealer(enabled=seal))
        self.location = location
        self.shared = False
        self._upcasters = upcasters or Upcasters()
        self._projections = tuple(projections)
        self._keys = MemoryKeyTable(self.state.keys)
        with self.state.lock:
            for projection in self._projections:
                self._prepare_projection(projection)

    @staticmethod
    def others_appended_to(stream_id: str) -> int:
        """See :meth:`~eventstore.protocol.Log.others_appended_to`: no other writer."""
        return 0

    def reader(self) -> MemoryLog:
        """Another connection to the same state."""
        return MemoryLog(self.state, upcasters=self._upcasters, location=self.location)

    def listen(self) -> None:
        """None: every connection to the state lives in this process."""
        return None

    def problem(self) -> None:
        """None: memory is always there."""
        return None

    def close(self) -> None:
        """Nothing to release: the state lives as long as someone holds it."""

    def key_table(self) -> MemoryKeyTable:
        """The key table of sealed content."""
        return self._keys

    def load_keys(self, records: Iterable[KeyRecord]) -> int:
        """See :meth:`~eventstore.protocol.Log.load_keys`."""
        rows = list(records)
        with self.state.lock:
            clash = [r.key_id for r in rows if r.key_id in self.state.keys]
            if clash:
                raise EventStoreError(f"{self.location} already holds the key {clash[0]!r}")
            self._keys.insert_many(rows)
        self.state.sealer.forget_cache()
        return len(rows)

    # -- appending -----------------------------------------------------------------

    def append(self, stream_id: str, events: Sequence[NewEvent],
               expected_version: ExpectedVersion = ANY) -> AppendResult:
        """See :meth:`~eventstore.protocol.Log.append`."""
        (outcome,) = self.append_batch([AppendRequest(stream_id, events,
                                                      expected_version=expected_version)])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def append_batch(self, requests: Sequence[AppendRequest], *,
                     recorded: bool = False) -> list[AppendResult | EventStoreError]:
        """See :meth:`~eventstore.protocol.Log.append_batch`."""
        state = self.state
        outcomes: list[AppendResult | EventStoreError] = []
        now = time.time()
        with state.lock:
            self._catch_up_projections()
            for request in requests:
                mark = state.tables.begin()
                positions_before = dict(state.projections)
                keys_before = dict(state.keys)
                sealed = state.sealer.mark()
                try:
                    outcomes.append(self._append_one(request, now, recorded))
                except Exception as exc:
                    state.tables.rollback(mark)
                    state.projections = positions_before
                    state.keys.clear()
                    state.keys.update(keys_before)
                    state.sealer.rolled_back(sealed)
                    outcomes.append(as_store_error(request, exc))
            state.tables.commit()
            state.sealer.committed()
        return outcomes

    def _append_one(self, request: AppendRequest, now: float, recorded: bool) -> AppendResult:
        state = self.state
        stream_id = request.stream_id
        shreds = shreds_of(request)
        if shreds:
            state.sealer.shred(self._keys, shreds, now)
        existing = {e.event_id: state.rows[state.by_id[e.event_id]][0]
                    for e in request.events if e.event_id in state.by_id}
        current = len(state.streams.get(stream_id, ()))
        if claimed_already(request, existing):
            return claim_lost(request, existing, current)
        if all(e.event_id in existing for e in request.events):
            known = tuple(existing[e.event_id] for e in request.events)
            return AppendResult(positions=known, stream_version=current, duplicates=len(known))
        expected = request.expected_version
        if expected != ANY and expected != current:
            raise WrongExpectedVersion(stream_id, int(expected), current)
        next_position = self.last_position() + 1
        state.sealer.prepare(self._keys, [(e.data, e.seals) for e in request.events
                                          if e.seals and e.event_id not in existing], now)
        rows: list[_Row] = []
        positions: list[int] = []
        version = current
        for event in request.events:
            position = existing.get(event.event_id)
            if position is None:
                position, next_position = next_position, next_position + 1
                version += 1
                existing[event.event_id] = position
                data = state.sealer.seal(self._keys, event.event_id, event.data, event.seals,
                                         now) if event.seals else event.data
                rows.append((position, event.event_id, stream_id, version, event.type,
                             event.schema_version, encode_data(data), now,
                             event.correlation_id, event.causation_id))
            positions.append(position)
        written = self._events(rows)
        self._apply_projections(written)  # before storing: a failing projection stores nothing
        self._store(rows)
        return AppendResult(positions=tuple(positions), stream_version=version,
                            duplicates=len(request.events) - len(rows),
                            written=tuple(written) if recorded else ())

    def _store(self, rows: Iterable[_Row]) -> None:
        state = self.state
        for row in rows:
            index = len(state.rows)
            state.rows.append(row)
            state.positions.append(row[0])
            state.by_id[row[1]] = index
            state.streams.setdefault(row[2], []).append(index)

    def load(self, events: Iterable[RecordedEvent], *,
             reseal: Resealer | None = None) -> tuple[int, int]:
        """See :meth:`~eventstore.protocol.Log.load`."""
        with self.state.lock:
            keys_before = dict(self.state.keys)
            try:
                return self._load(events, reseal)
            except BaseException:
                self.state.keys.clear()
                self.state.keys.update(keys_before)
                self.state.sealer.rolled_back()
                raise
            finally:
                self.state.sealer.committed()

    def _load(self, events: Iterable[RecordedEvent], reseal: Resealer | None
              ) -> tuple[int, int]:
        if self.state.rows:
            raise EventStoreError(f"{self.location} already holds events; load only into "
                                  "an empty log")
        rows: list[_Row] = []
        ids: set[str] = set()
        for event in in_load_order(events):
            if reseal is not None:
                event = self.state.sealer.reseal(self._keys, event, reseal)
            if event.event_id in ids:
                raise EventStoreError(f"an event id appears twice ({event.event_id!r})")
            ids.add(event.event_id)
            rows.append((event.position, event.event_id, event.stream_id, event.version,
                         event.type, event.schema_version, stored_data(event),
                         event.recorded_at, event.correlation_id, event.causation_id))
        self._store(rows)
        return len(rows), rows[-1][0] if rows else 0

    # -- reading -------------------------------------------------------------------

    def stream_version(self, stream_id: str) -> int:
        """See :meth:`~eventstore.protocol.LogReader.stream_version`."""
        return len(self.state.streams.get(stream_id, ()))

    def last_position(self) -> int:
        """See :meth:`~eventstore.protocol.LogReader.last_position`."""
        rows = self.state.rows
        return rows[-1][0] if rows else 0

    def read_stream(self, stream_id: str, from_version: int = 1,
                    limit: int | None = None) -> list[RecordedEvent]:
        """See :meth:`~eventstore.protocol.LogReader.read_stream`."""
        with self.state.lock:
            indexes = self.state.streams.get(stream_id, [])[max(0, from_version - 1):]
            if limit is not None:
                indexes = indexes[:limit]
            return self._events([self.state.rows[i] for i in indexes])

    def read_stream_tail(self, stream_id: str, count: int) -> list[RecordedEvent]:
        """See :meth:`~eventstore.protocol.LogReader.read_stream_tail`."""
        with self.state.lock:
            indexes = self.state.streams.get(stream_id, [])
            return self._events([self.state.rows[i] for i in indexes[max(0, len(indexes) - count):]]
                                if count > 0 else [])

    def read_all(self, after: int = 0, *, types: Iterable[str] | None = None,
                 until: int | None = None, limit: int | None = None) -> list[RecordedEvent]:
        """See :meth:`~eventstore.protocol.LogReader.read_all`."""
        return list(self.iter_all(after, types=types, until=until, limit=limit))

    def iter_all(self, after: int = 0, *, types: Iterable[str] | None = None,
                 until: int | None = None, limit: int | None = None) -> Iterator[RecordedEvent]:
        """See :meth:`~eventstore.protocol.LogReader.iter_all`."""
        wanted = frozenset(types) if types is not None else None
        with self.state.lock:
            rows = self._after(after)
            found = (r for r in rows if (until is None or r[0] <= until)
                     and (wanted is None or r[4] in wanted))
            chosen = list(itertools.islice(found, limit))
        return iter(self._events(chosen))

    def read_positions(self, positions: Iterable[int]) -> list[RecordedEvent]:
        """See :meth:`~eventstore.protocol.LogReader.read_positions`."""
        with self.state.lock:
            rows, keys = self.state.rows, self.state.positions
            chosen = []
            for position in sorted(set(positions)):
                index = bisect.bisect_left(keys, position)
                if index < len(rows) and rows[index][0] == position:
                    chosen.append(rows[index])
            return self._events(chosen)

    def get(self, event_id: str) -> RecordedEvent | None:
        """See :meth:`~eventstore.protocol.LogReader.get`."""
        with self.state.lock:
            index = self.state.by_id.get(event_id)
            return None if index is None else self._events([self.state.rows[index]])[0]

    def with_id_prefix(self, prefix: str) -> Iterator[RecordedEvent]:
        """See :meth:`~eventstore.protocol.LogReader.with_id_prefix`."""
        with self.state.lock:
            ids = sorted(i for i in self.state.by_id if i.startswith(prefix))
            return iter(self._events([self.state.rows[self.state.by_id[i]] for i in ids]))

    def stream_segments(self, prefix: str) -> list[str]:
        """See :meth:`~eventstore.protocol.LogReader.stream_segments`."""
        with self.state.lock:
            return sorted({s[len(prefix):].split(":", 1)[0] for s in self.state.streams
                           if s.startswith(prefix) and len(s) > len(prefix)})

    def active_streams(self, since: float, *, types: Iterable[str], prefix: str) -> list[str]:
        """See :meth:`~eventstore.protocol.LogReader.active_streams`."""
        kinds = frozenset(types)
        with self.state.lock:
            return sorted({r[2] for r in self.state.rows if r[7] >= since and r[4] in kinds
                           and r[2].startswith(prefix)})

    def scan(self, selection: EventFilter, *, upcast: bool = True,
             unseal: bool | None = None) -> Iterator[RecordedEvent]:
        """See :meth:`~eventstore.protocol.LogReader.scan`."""
        with self.state.lock:
            rows = [r for r in self._after(selection.after)
                    if selection.keeps(r[4], r[2], r[7], r[0])]
        matches = selection.matches
        for event in self._events(rows, upcast=upcast, unseal=unseal):
            if matches is None or matches(event.type, event.data):
                yield event

    def json_lines(self, selection: EventFilter) -> Iterator[bytes]:
        """See :meth:`~eventstore.protocol.LogReader.json_lines`."""
        yield from map(json_line, self.scan(selection, upcast=False, unseal=True))

    def _after(self, position: int) -> list[_Row]:
        return self.state.rows[bisect.bisect_right(self.state.positions, position):]

    def _events(self, rows: Sequence[_Row], *, upcast: bool = True,
                unseal: bool | None = None) -> list[RecordedEvent]:
        upcast_types = self._upcasters.types if upcast else frozenset()
        opening = upcast if unseal is None else unseal
        decoded = [orjson.loads(row[6]) for row in rows]
        if opening:
            wanted = [box["key"] for data in decoded if SEALED in data for box in data[SEALED]]
            if wanted:
                self.state.sealer.preload(self._keys, wanted)
        events = []
        for (position, event_id, stream_id, version, type_, schema_version, _, recorded_at,
             correlation_id, causation_id), data in zip(rows, decoded, strict=True):
            if opening and SEALED in data:
                data = self.state.sealer.open(self._keys, event_id, data)
            if type_ in upcast_types:
                schema_version, data = self._upcasters.upcast(type_, schema_version, data)
            events.append(build_recorded_event(
                position, event_id, stream_id, version, type_, schema_version, data,
                recorded_at, correlation_id, causation_id))
        return events

    # -- projections -----------------------------------------------------------------

    def rows(self, table: str, where: Where | None = None, *, order_by: Sequence[str] = (),
             limit: int | None = None) -> list[dict[str, Any]]:
        """See :meth:`~eventstore.projections.TableReader.rows`."""
        with self.state.lock:
            return self.state.tables.rows(table, where, order_by=order_by, limit=limit)

    def projection_state(self, name: str) -> tuple[int, int] | None:
        """See :meth:`~eventstore.protocol.LogReader.projection_state`."""
        return self.state.projections.get(name)

    def projection_position(self, name: str) -> int:
        """See :meth:`~eventstore.protocol.LogReader.projection_position`."""
        state = self.state.projections.get(name)
        return state[1] if state else 0

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Holds the state's lock: nothing commits while the block reads."""
        with self.state.lock:
            yield

    def _prepare_projection(self, projection: Projection) -> None:
        state = self.state
        known = state.projections.get(projection.name)
        if known is None or known[0] != projection.version:
            state.tables.drop(projection)
            state.tables.create(projection)
            state.projections[projection.name] = (projection.version, 0)
        self._catch_up(projection)

    def _catch_up_projections(self) -> None:
        for projection in self._projections:
            self._catch_up(projection)

    def _catch_up(self, projection: Projection) -> None:
        version, position = self.state.projections[projection.name]
        last = apply_events(projection, self.state.tables, self.iter_all(position))
        if last > position:
            self.state.projections[projection.name] = (version, last)

    def _apply_projections(self, events: list[RecordedEvent]) -> None:
        if not events:
            return
        for projection in self._projections:
            apply_events(projection, self.state.tables, events, admit=True)
            version, _ = self.state.projections[projection.name]
            self.state.projections[projection.name] = (version, events[-1].position)

    def rebuild_and_compare(self, projection: Projection) -> list[ProjectionDifference]:
        """See :meth:`~eventstore.protocol.Log.rebuild_and_compare`."""
        with self.state.lock:
            until = self.projection_position(projection.name)
            rebuilt = MemoryTables([projection])
            apply_events(projection, rebuilt, self.iter_all(0, until=until))
            return compare_tables(projection, self.state.tables, rebuilt)

    def check(self) -> list[Violation]:
        """The invariants the containers could break: versions and positions."""
        violations = []
        with self.state.lock:
            positions = [r[0] for r in self.state.rows]
            if positions != sorted(set(positions)):
                violations.append(Violation("ordered positions", "positions repeat or go back"))
            for stream_id, indexes in self.state.streams.items():
                versions = [self.state.rows[i][3] for i in indexes]
                if versions != list(range(1, len(versions) + 1)):
                    violations.append(Violation(
                        "gap-free versions", f"stream {stream_id!r} has versions {versions[:5]}..."))
        return violations

