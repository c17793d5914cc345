"""The PostgreSQL backend's :class:`~eventstore.protocol.Log`: one schema of a database,
shared by every process of a bot.

A :class:`PostgresLog` and the readers it hands out share one psycopg connection pool:
each call borrows a connection for as long as it needs one, so a connection lost to a
server restart costs the call that found it broken, not the store. A log object is used
from one thread at a time (a :class:`~eventstore.store.ThreadedStore` gives each thread
its own); :meth:`PostgresLog.snapshot` keeps one connection for the whole block.

Appends take the log's append lock first (see :mod:`eventstore.postgres.schema`): writers
in every process commit one transaction at a time, positions are handed out as last + 1
under that lock, and so they are gap-free and in commit order.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from psycopg.adapt import AdaptersMap, Loader
from psycopg.types.numeric import Int8
from psycopg_pool import ConnectionPool, PoolTimeout

from ..appending import (
    as_store_error,
    claim_lost,
    claimed_already,
    in_load_order,
    shreds_of,
    stored_data,
)
from ..encoding import encode_data, json_line
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
from ..others import OtherWriters
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
from . import arrays, schema
from .keys import PostgresKeyTable
from .notify import PostgresCommitSignal
from .overlay import Unsupported, WriteBehind
from .reachability import Reachability, quiet_pool_attempts
from .reachability import first_line as _first_line
from .tables import PostgresTables, Statement, TableCatalog
from .target import PostgresTarget

_COLUMNS = ("position, event_id, stream_id, version, type, schema_version, data, recorded_at, "
            "correlation_id, causation_id")
_SELECT = f"SELECT {_COLUMNS} FROM events"
# Arrays go in binary (%b): as text, psycopg escapes every element with a regular
# expression, which for a batch's JSON costs more than the whole round trip.
_INSERT_TYPES = ("bigint", "text", "text", "bigint", "text", "integer", "text",
                 "double precision", "text", "text")
_INSERT = (f"INSERT INTO events ({_COLUMNS}) SELECT p, e, s, v, t, sv, d::json, r, c, ca FROM "
           f"unnest({arrays.placeholders(_INSERT_TYPES)}) AS u(p, e, s, v, t, sv, d, r, c, ca)")
_COPY = f"COPY events ({_COLUMNS}) FROM STDIN"
_LOCK = "SELECT pg_advisory_xact_lock(%s, %s)"
# An append transaction's statements are lookups by key and inserts: generic plans, made
# once per connection and statement, spare the server a planning per statement (a third
# of its work in an append). A generic plan is made for the table's size when it is made,
# so the planner is also told to go by index wherever one serves (no sequential scan, no
# hash or merge join): the plan a large table needs, and cheap on a small one, so a plan
# made on a new log does not scan the log it has grown into.
_APPEND_LOCK = ("SELECT pg_advisory_xact_lock(%s, %s), "
                "set_config('plan_cache_mode', 'force_generic_plan', true), "
                "set_config('enable_seqscan', 'off', true), "
                "set_config('enable_hashjoin', 'off', true), "
                "set_config('enable_mergejoin', 'off', true)")
_READ_CHUNK = 5000
_OTHERS_LISTED = 1000
"""Others' events an append lists the streams of; past this, all streams count as
appended to (see :class:`~eventstore.others.OtherWriters`)."""
_MAX_HELD = 50_000
"""Rows an overlay kept between appends may hold (a few MB) before it starts afresh."""
_POOL_SIZE = 8
"""Connections a log and its readers may hold at once (a store uses one per thread)."""
_POOL_WAIT_S = 30.0
"""How long a call waits for a connection before it fails."""
_CONNECT_TIMEOUT_S = 10
"""A connection attempt that gets no answer (a network cut) fails after this."""
_DOWN_WAIT_S = 1.0
"""How long a call waits for a connection while the pool's attempts to connect fail."""
_RECONNECT_S = 30.0
"""How long the pool retries a lost connection with backoff (1, 2, 4... s) before the
next call starts a new attempt: bounds how late it notices the server is back."""
_LOCK_TIMEOUT = "60s"
"""How long an append waits for another process's transaction before it fails."""
_IDLE_IN_TRANSACTION_TIMEOUT = "5s"
"""A process stopped inside a transaction (SIGSTOP, a frozen machine, a network
partition) lets go of the append lock after this, so it stalls every other writer for
this long at most (an append's own pauses between its round trips are milliseconds).
No longer than a shard's lease: a standby taking over a frozen process's shards must
be able to append by then."""


_INT4_MIN, _INT4_MAX = -(2**31), 2**31 - 1


@dataclasses.dataclass(frozen=True, slots=True)
class _Planned:
    """A request checked and numbered: its result, its rows, the ids it writes."""

    result: AppendResult
    rows: tuple[tuple[Any, ...], ...]
    fresh: dict[str, int]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Start:
    """Where an append transaction found the log, once it held the append lock: the next
    position, the versions of the streams it appends to, the positions of the ids it
    appends that exist, the projections' versions, and whether it had to bring a
    projection up to the log."""

    next_position: int
    versions: dict[str, int]
    existing: dict[str, int]
    tables: tuple[int, ...]
    caught_up: bool


@dataclasses.dataclass(frozen=True, slots=True)
class _Guess:
    """Where a pass of :meth:`PostgresLog._write_behind` first guessed a row: the request,
    the overlay's mark, and the append's state before it."""

    index: int
    mark: int
    outcomes: int
    rows: int
    next_position: int
    versions: dict[str, int]
    existing: dict[str, int]
    reached: dict[str, int]


class _SavepointsNeeded(Exception):
    """The written-behind append was refused and rolled back: append the batch again with
    a savepoint per request."""


def _storable(text: str) -> bool:
    """Whether PostgreSQL text can hold ``text``: no NUL, and a UTF-8 form."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _storable_text(text: str | None, stream_id: str) -> None:
    """Refuse text PostgreSQL cannot store: with a NUL character, or with no UTF-8 form."""
    if text is None:
        return
    try:
        text.encode()
    except UnicodeEncodeError:
        raise EventStoreError(f"append to {stream_id!r} refused: {text!r} is not valid "
                              "Unicode text") from None
    if "\x00" in text:
        raise EventStoreError(f"append to {stream_id!r} refused: {text!r} contains a NUL "
                              "character, which PostgreSQL text cannot hold")


class _JsonText(Loader):
    """``json`` values decoded with orjson straight from the wire (no str in between)."""

    def load(self, data: Any) -> Any:
        return orjson.loads(data)


def _adapters() -> AdaptersMap:
    adapters = AdaptersMap(psycopg.adapters)
    adapters.register_loader("json", _JsonText)
    arrays.register(adapters)
    return adapters


class PostgresLog:
    """An open PostgreSQL event log. See the module docstring for threading rules."""

    def __init__(self, target: PostgresTarget, pool: ConnectionPool, *, events_oid: int,
                 writer: str, upcasters: Upcasters | None = None,
                 projections: Sequence[Projection] = (), owns_pool: bool = True,
                 catalog: TableCatalog | None = None, sealer: Sealer | None = None,
                 reachability: Reachability | None = None) -> None:
        check_tables(projections)
        self._sealer = sealer or Sealer()
        self._keys = PostgresKeyTable(self._fetch_any)
        self.target = target
        self.location = target.location
        self.shared = True
        self._pool = pool
        self._owns_pool = owns_pool
        self._events_oid = events_oid
        self._writer = writer
        self._upcasters = upcasters or Upcasters()
        self._projections = tuple(projections)
        self._catalog = catalog or TableCatalog(target.schema)
        self._pinned: psycopg.Connection | None = None
        self._kept: tuple[WriteBehind, tuple[int, tuple[int, ...]]] | None = None
        """The overlay of this log's last append, and where the log's end and the
        projections' versions were when it committed: while they are still there, no one
        else has changed the projection tables, and the overlay's rows hold."""
        self.reachability = reachability or Reachability(self.location)
        """Whether the server answers, shared by the log, its readers and its listener."""
        self._others = OtherWriters()
        self._own_end: int | None = None
        """The log's last position as this log's last commit left it (None: none yet)."""
        for projection in self._projections:
            self._prepare_projection(projection)

    @classmethod
    def open(cls, url: str | PostgresTarget, *, password: str | None = None,
             upcasters: Upcasters | None = None, projections: Sequence[Projection] = (),
             create: bool = True, seal: bool = True) -> PostgresLog:
        """Open (creating or migrating, when ``create``) the log ``url`` names.

        Raises :class:`~eventstore.errors.StoreOpenError` with one sentence (and never the
        password) when no server answers, the login or database is refused, or the schema
        is not a log this personae can use.
        """
        target = url if isinstance(url, PostgresTarget) else PostgresTarget.parse(
            url, password=password)
        writer = uuid.uuid4().hex
        options = _session_options(target.schema, writer)
        try:
            with psycopg.connect(**target.connect_kwargs(autocommit=True,
                                                         options=options)) as conn:
                schema.prepare(conn, target.schema, target.location, create=create)
                events_oid = _events_oid(conn, target.schema)
        except psycopg.Error as exc:
            raise _open_error(target, exc) from None
        quiet_pool_attempts()
        pool = ConnectionPool(
            kwargs=target.connect_kwargs(autocommit=True, options=options,
                                         context=_adapters(), application_name="personae",
                                         **({} if "connect_timeout" in target.params else
                                            {"connect_timeout": _CONNECT_TIMEOUT_S})),
            min_size=1, max_size=_POOL_SIZE, timeout=_POOL_WAIT_S, open=False,
            reconnect_timeout=_RECONNECT_S, name=f"personae {target.location}")
        pool.open(wait=False)
        try:
            return cls(target, pool, events_oid=events_oid, writer=writer,
                       upcasters=upcasters, projections=projections,
                       sealer=Sealer(enabled=seal))
        except BaseException:
            pool.close()
            raise

    def others_appended_to(self, stream_id: str) -> int:
        """See :meth:`~eventstore.protocol.Log.others_appended_to`."""
        return self._others.stamp(stream_id)

    def reader(self) -> PostgresLog:
        """Another log object on the same pool, for another thread."""
        return PostgresLog(self.target, self._pool, events_oid=self._events_oid,
                           writer=self._writer, upcasters=self._upcasters, owns_pool=False,
                           catalog=self._catalog, sealer=self._sealer,
                           reachability=self.reachability)

    def listen(self) -> PostgresCommitSignal:
        """A signal of other connections' commits (LISTEN on the log's channel); it
        connects on its first wait."""
        target, writer = self.target, self._writer

        def connect() -> psycopg.Connection:
            return psycopg.connect(**target.connect_kwargs(
                autocommit=True, options=_session_options(target.schema, writer),
                application_name=f"personae listener {target.schema}"[:63]))

        return PostgresCommitSignal(connect, f"{schema.CHANNEL_PREFIX}{self._events_oid}",
                                    own_writer=writer, location=self.location,
                                    reachability=self.reachability)

    def problem(self) -> str | None:
        """See :meth:`~eventstore.protocol.Log.problem`: the server unreachable, as the
        log's connections last found it."""
        return self.reachability.problem()

    def close(self) -> None:
        """Close the pool (the log's own object only; a reader's close lets go of
        nothing the log still needs)."""
        if self._owns_pool:
            self._pool.close()

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """A connection for one call. What befalls the connection (the server gone, a
        lock or statement timeout) is :class:`~eventstore.errors.LogUnavailable`: the
        same call may succeed later; a lost server is told to :attr:`reachability`."""
        if self._pinned is not None:
            try:
                yield self._pinned
            except psycopg.OperationalError as exc:
                raise self._unavailable(exc, self._pinned) from None
            return
        try:
            conn = self._borrow()
            try:
                with conn:  # as the pool's connection(): a transaction left open ends
                    try:
                        yield conn
                    except psycopg.OperationalError as exc:
                        raise self._unavailable(exc, conn) from None
            finally:
                self._pool.putconn(conn)
        except psycopg.OperationalError as exc:  # ending the transaction found it broken
            raise self._unavailable(exc, None) from None
        self.reachability.answered()

    def _borrow(self) -> psycopg.Connection:
        """A connection from the pool: waited for up to :data:`_POOL_WAIT_S` while the
        pool is busy, but not while its attempts to connect fail (the server is away:
        the call fails at once, and the pool keeps trying in the background)."""
        deadline = time.monotonic() + _POOL_WAIT_S
        while True:
            errors = self._pool.get_stats().get("connections_errors", 0)
            left = deadline - time.monotonic()
            try:
                return self._pool.getconn(timeout=max(0.01, min(_DOWN_WAIT_S, left)))
            except PoolTimeout:
                failing = (self._pool.get_stats().get("connections_errors", 0) > errors
                           or self.reachability.problem() is not None)
                if not failing and left > _DOWN_WAIT_S:
                    continue  # busy: every connection is in use
                if failing:
                    self.reachability.failed("connecting to the server fails")
                raise LogUnavailable(
                    f"no connection to the event log {self.location}: " + (
                        "connecting to the server fails; is it up?" if failing else
                        f"none free within {_POOL_WAIT_S:.0f} s")) from None

    def _unavailable(self, exc: psycopg.OperationalError, conn: psycopg.Connection | None
                     ) -> LogUnavailable:
        """``exc`` as the error of a call that may succeed later; a connection it broke
        (or none at all) means the server is unreachable."""
        reason = self.target.redact(_first_line(exc))
        if conn is None or conn.broken or conn.closed:
            self.reachability.failed(reason)
        return LogUnavailable(f"the event log {self.location} failed: {reason}")

    def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            return conn.execute(query, params).fetchall()

    def _fetch_any(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            return _rows_of(conn, query, params)

    def key_table(self) -> SqlKeyTable:
        """The key table of sealed content (each call on a pooled connection, or the
        snapshot's)."""
        return self._keys

    def load_keys(self, records: Iterable[KeyRecord]) -> int:
        """See :meth:`~eventstore.protocol.Log.load_keys`."""
        rows = list(records)
        try:
            with self._connection() as conn, conn.transaction():
                PostgresKeyTable(lambda q, p: _rows_of(conn, q, p)).insert_many(rows)
        except psycopg.errors.UniqueViolation:
            raise EventStoreError(f"{self.location} already holds one of these keys") from None
        self._sealer.forget_cache()
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

    def append_batch(self, requests: Sequence[AppendRequest], *, recorded: bool = False
                     ) -> list[AppendResult | EventStoreError]:
        """See :meth:`~eventstore.protocol.Log.append_batch`: one transaction under the
        append lock, one COMMIT, a few round trips whatever the number of requests.

        One round trip takes the lock and reads where the log and its projections are,
        every requested stream's version and every requested id that exists; each request
        is checked and numbered in Python; the projections change their tables in a
        :class:`~eventstore.postgres.overlay.WriteBehind` (one round trip per pass that
        finds rows it has not read); the rows, the projections' changes and positions and
        the COMMIT go in one pipeline. A request whose projection fails is undone in Python
        alone. Should the database refuse any of it (or a projection ask for what the
        overlay cannot do exactly), the batch is appended again with a savepoint per
        request (:meth:`_append_with_savepoints`), which gives each request its outcome.
        """
        now = time.time()
        try:
            try:
                outcomes = self._append_written_behind(requests, now, recorded)
            except _SavepointsNeeded:
                self._sealer.rolled_back()
                outcomes = []
                with self._connection() as conn, _committing(self, conn):
                    end = self._append_with_savepoints(conn, requests, outcomes, now,
                                                       recorded)
                self._own_end = end
        except BaseException:
            self._sealer.rolled_back()
            raise
        self._sealer.committed()
        return outcomes

    def _append_written_behind(self, requests: Sequence[AppendRequest], now: float,
                               recorded: bool) -> list[AppendResult | EventStoreError]:
        """The batch in one pipelined transaction, projections written behind (see
        :meth:`append_batch`); _SavepointsNeeded if the database refused any of it."""
        outcomes: list[AppendResult | EventStoreError] = []
        with self._connection() as conn:
            try:
                # BEGIN and COMMIT go with the statements next to them (a transaction block
                # would wait for the server at each end); the pipeline's end waits for
                # the rows, the projections' changes and the COMMIT at once
                with conn.pipeline() as pipeline:
                    def fetch(query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                        cursor = conn.execute(query, params)
                        pipeline.sync()  # for the description
                        return cursor.fetchall() if cursor.description is not None else []

                    conn.execute("BEGIN")
                    overlay, settled = self._write_behind(
                        conn, PostgresKeyTable(fetch, conn.execute), requests, outcomes, now,
                        recorded)
                    conn.execute("COMMIT")
                overlay.committed()
                self._kept = overlay, settled
                self._own_end = settled[0]
            except (Unsupported, psycopg.Error) as exc:
                _roll_back(conn)
                if isinstance(exc, psycopg.OperationalError):
                    raise  # the connection's: _connection says what happened
                raise _SavepointsNeeded from exc
            except BaseException:
                _roll_back(conn)
                raise
        return outcomes

    def _write_behind(self, conn: psycopg.Connection, keys: SqlKeyTable,
                      requests: Sequence[AppendRequest],
                      outcomes: list[AppendResult | EventStoreError], now: float,
                      recorded: bool) -> tuple[WriteBehind, tuple[int, tuple[int, ...]]]:
        """Plan and project the requests in passes: a pass runs on past a projection's
        read of a row not loaded yet (see :mod:`eventstore.postgres.overlay`), then the
        rows missed are loaded; when the database has none of them the pass stands, else
        what followed the first is undone and the next pass starts at that request.
        Returns the overlay and where the log will be once this commits."""
        start = self._begin(conn, requests)
        next_position, versions, existing = start.next_position, start.versions, start.existing
        self._sealer.prepare(keys, [(e.data, e.seals) for r in requests for e in r.events
                                    if e.seals and e.event_id not in existing], now)
        kept, self._kept = self._kept, None  # kept again once this commits
        if kept is not None and kept[1] == (next_position - 1, start.tables) and \
                not start.caught_up and kept[0].held <= _MAX_HELD:
            overlay = kept[0]
        else:
            overlay = WriteBehind()  # another writer may have changed what it held
        overlay.begin(PostgresTables(conn, self._catalog))
        rows: list[tuple[Any, ...]] = []
        reached: dict[str, int] = {}  # projection -> position, as requests succeed
        shredded: set[int] = set()
        plans: dict[int, tuple[tuple[Any, ...], _Planned, list[Projection],
                               list[RecordedEvent]]] = {}
        done = 0
        while True:
            guess: _Guess | None = None
            unsure = False  # a request refused for what the overlay cannot do, after a miss
            stopped = len(requests)
            for index in range(done, len(requests)):
                request = requests[index]
                shreds = shreds_of(request)
                if shreds and guess is not None:
                    stopped = index
                    break  # keys are destroyed in order, never after a guess
                # a pass plans a request again only if what its plan depends on changed
                # (sealing and numbering cost more than the projections)
                inputs = (next_position, versions.get(request.stream_id, 0),
                          tuple(existing.get(e.event_id) for e in request.events))
                try:
                    if shreds and index not in shredded:
                        shredded.add(index)
                        self._sealer.shred(keys, shreds, now)
                    cached = plans.get(index)
                    if cached is None or cached[0] != inputs:
                        planned = self._plan(request, now, next_position, versions, existing,
                                             keys)
                        projections = self._readers_of(planned.rows) if planned.rows else []
                        written = self._written(planned.rows, keys) \
                            if projections or recorded else []
                        cached = plans[index] = (inputs, planned, projections, written)
                    _, planned, projections, written = cached
                except psycopg.Error:
                    raise  # the transaction's, not the request's: no savepoint undoes it
                except Exception as exc:
                    outcomes.append(as_store_error(request, exc))
                    continue
                failure: Exception | None = None
                mark = overlay.mark()
                try:
                    for projection in projections:
                        apply_events(projection, overlay, written, admit=True)
                except Exception as exc:
                    overlay.rollback(mark)
                    if isinstance(exc, psycopg.Error) or (isinstance(exc, Unsupported)
                                                          and not overlay.missed):
                        raise
                    unsure = unsure or isinstance(exc, Unsupported)
                    failure = exc
                if overlay.missed and guess is None:
                    guess = _Guess(index, mark, len(outcomes), len(rows), next_position,
                                   dict(versions), dict(existing), dict(reached))
                if failure is not None:
                    outcomes.append(as_store_error(request, failure))
                    continue
                rows += planned.rows
                next_position = self._accepted(request, planned, written, recorded, outcomes,
                                               versions, existing, reached) or next_position
            if guess is None:
                break
            missed = overlay.read_missed()
            if not unsure and overlay.guessed_right(missed):
                overlay.hold(missed)
                if stopped == len(requests):
                    break
                done = stopped
                continue
            overlay.rollback(guess.mark)
            del outcomes[guess.outcomes:]
            del rows[guess.rows:]
            done, next_position = guess.index, guess.next_position
            versions, existing, reached = guess.versions, guess.existing, guess.reached
            overlay.hold(missed)
        # one statement: each write a data-modifying WITH query of it (on their own tables,
        # disjoint rows), so the server gets one message, not one per table
        writes = [*([_insert_statement(rows)] if rows else []), *overlay.flush(),
                  *([_positions_statement(reached)] if reached else [])]
        if writes:
            conn.execute("WITH " + ", ".join(f"w{i} AS ({text})" for i, (text, _) in
                                             enumerate(writes)) + " SELECT 1",
                         [param for _, params in writes for param in params])
        return overlay, (next_position - 1, start.tables)

    def _accepted(self, request: AppendRequest, planned: _Planned,
                  written: Sequence[RecordedEvent], recorded: bool,
                  outcomes: list[AppendResult | EventStoreError], versions: dict[str, int],
                  existing: dict[str, int], reached: dict[str, int]) -> int | None:
        """Book ``request`` as done in this transaction (its outcome, its stream's
        version, its new ids, the projections' positions); the next free position, None
        when it wrote no rows."""
        outcomes.append(dataclasses.replace(planned.result, written=tuple(written))
                        if recorded else planned.result)
        versions[request.stream_id] = planned.result.stream_version
        existing.update(planned.fresh)
        if not planned.rows:
            return None
        last = int(planned.rows[-1][0])
        for projection in self._projections:
            reached[projection.name] = last
        return last + 1

    def _append_with_savepoints(self, conn: psycopg.Connection,
                                requests: Sequence[AppendRequest],
                                outcomes: list[AppendResult | EventStoreError], now: float,
                                recorded: bool) -> int:
        """The batch as :meth:`append_batch` appends it when the database refused the
        written-behind way: the rows of requests no projection reads go in one INSERT at
        the end; a request that a projection reads gets a savepoint around its rows and
        the projection's statements, so whatever fails fails its request alone. Returns
        the log's last position once this commits."""
        keys = PostgresKeyTable(lambda q, p: _rows_of(conn, q, p))
        with conn.pipeline():
            start = self._begin(conn, requests)
        next_position, versions, existing = start.next_position, start.versions, start.existing
        pending: list[tuple[Any, ...]] = []  # rows of requests without a savepoint
        reached: dict[str, int] = {}  # projection -> position, as requests succeed
        for request in requests:
            try:
                shreds = shreds_of(request)
                if shreds:
                    self._sealer.shred(keys, shreds, now)
                planned = self._plan(request, now, next_position, versions, existing, keys)
            except Exception as exc:
                outcomes.append(as_store_error(request, exc))
                continue
            projections = self._readers_of(planned.rows) if planned.rows else []
            if not projections:
                pending += planned.rows
                written = self._written(planned.rows, keys) if recorded else []
            else:
                self._insert(conn, pending)  # a failure here is the transaction's own
                try:
                    with conn.transaction():
                        self._insert(conn, list(planned.rows))
                        written = self._written(planned.rows, keys)
                        tables = PostgresTables(conn, self._catalog)
                        for projection in projections:
                            apply_events(projection, tables, written, admit=True)
                except Exception as exc:
                    if conn.broken:
                        raise
                    outcomes.append(as_store_error(request, exc))
                    continue
            next_position = self._accepted(request, planned, written, recorded, outcomes,
                                           versions, existing, reached) or next_position
        self._insert(conn, pending)
        self._set_positions(conn, reached)
        return next_position - 1

    @staticmethod
    def _set_positions(conn: psycopg.Connection, reached: dict[str, int]) -> None:
        if reached:
            conn.execute(*_positions_statement(reached))

    def _begin(self, conn: psycopg.Connection, requests: Sequence[AppendRequest]) -> _Start:
        """Take the append lock and read, in one round trip in a pipeline, where the log
        and its projections are, every requested stream's version and every requested id that
        exists (one index probe each); bring the projections up to the log if another
        process or a tool appended without them."""
        # text PostgreSQL cannot hold is refused with its request later, not sent
        streams = sorted({r.stream_id for r in requests if _storable(r.stream_id)})
        ids = sorted({e.event_id for r in requests for e in r.events if _storable(e.event_id)})
        # in a pipeline, one round trip; each statement still sees what committed before
        # the lock was granted (a statement takes its snapshot when it starts)
        conn.execute(_APPEND_LOCK, (schema.APPEND_LOCK, self._events_oid))
        # one statement, a row per fact: the last position (0), each projection's position
        # and version (1), each stream's version (2), each id that exists and its position
        # (3), the stream of each event after this log's last commit: others' (4)
        found = conn.execute(
            "SELECT 0, NULL, (SELECT coalesce(max(position), 0) FROM events), NULL::bigint "
            "UNION ALL SELECT 1, name, position, version FROM projection_positions "
            "WHERE name = ANY(%b::text[]) UNION ALL SELECT 2, s, NULL, (SELECT "
            "coalesce(max(version), 0) FROM events WHERE stream_id = s) FROM "
            "unnest(%b::text[]) AS s UNION ALL SELECT 3, event_id, position, NULL FROM events "
            "WHERE event_id = ANY(%b::text[]) UNION ALL SELECT 4, stream_id, NULL, NULL FROM "
            "(SELECT stream_id FROM events WHERE position > %b ORDER BY position LIMIT %b) AS o",
            (arrays.array("text", (p.name for p in self._projections)),
             arrays.array("text", streams), arrays.array("text", ids),
             Int8(2**63 - 1 if self._own_end is None else self._own_end),
             Int8(_OTHERS_LISTED + 1))
        ).fetchall()
        last = next(position for fact, _, position, _ in found if fact == 0)
        if last != self._own_end:  # someone else committed since this log's last commit
            others = [stream for fact, stream, _, _ in found if fact == 4]
            listed = self._own_end is not None and 0 < len(others) <= _OTHERS_LISTED
            self._others.found(set(others) if listed else None)
        states = {name: (position, version) for fact, name, position, version in found
                  if fact == 1}
        behind = {name for name, (position, _) in states.items() if position < last}
        for projection in self._projections:
            if projection.name in behind:
                self._catch_up(conn, projection)
        versions = {stream: int(version) for fact, stream, _, version in found if fact == 2}
        existing = {event_id: int(position) for fact, event_id, position, _ in found
                    if fact == 3}
        return _Start(next_position=int(last) + 1, versions=versions, existing=existing,
                      tables=tuple(int(states.get(p.name, (0, 0))[1])
                                   for p in self._projections),
                      caught_up=bool(behind))

    def _plan(self, request: AppendRequest, now: float, next_position: int,
              versions: dict[str, int], known: dict[str, int], keys: SqlKeyTable) -> _Planned:
        """Check ``request`` against the log as this transaction has it, and number its
        new events from ``next_position``. Raises what refuses the request."""
        stream_id = request.stream_id
        current = versions.get(stream_id, 0)
        existing = {e.event_id: known[e.event_id] for e in request.events
                    if e.event_id in known}
        if claimed_already(request, existing):
            return _Planned(claim_lost(request, existing, current), (), {})
        if all(e.event_id in existing for e in request.events):
            known_positions = tuple(existing[e.event_id] for e in request.events)
            return _Planned(AppendResult(positions=known_positions, stream_version=current,
                                         duplicates=len(known_positions)), (), {})
        expected = request.expected_version
        if expected != ANY and expected != current:
            raise WrongExpectedVersion(stream_id, int(expected), current)
        positions: list[int] = []
        rows: list[tuple[Any, ...]] = []
        fresh: dict[str, int] = {}
        version = current
        _storable_text(stream_id, stream_id)
        self._sealer.prepare(keys, [(e.data, e.seals) for e in request.events
                                    if e.seals and e.event_id not in existing], now)
        for event in request.events:
            position = existing.get(event.event_id)
            if position is None:
                for text in (event.event_id, event.type, event.correlation_id,
                             event.causation_id):
                    _storable_text(text, stream_id)
                if not _INT4_MIN <= event.schema_version <= _INT4_MAX:
                    raise EventStoreError(f"append to {stream_id!r} refused: schema_version "
                                          f"{event.schema_version} is out of range")
                position, next_position = next_position, next_position + 1
                version += 1
                existing[event.event_id] = fresh[event.event_id] = position
                data = self._sealer.seal(keys, event.event_id, event.data, event.seals, now) \
                    if event.seals else event.data
                rows.append((position, event.event_id, stream_id, version, event.type,
                             event.schema_version, encode_data(data), now,
                             event.correlation_id, event.causation_id))
            positions.append(position)
        return _Planned(AppendResult(positions=tuple(positions), stream_version=version,
                                     duplicates=len(request.events) - len(rows)),
                        tuple(rows), fresh)

    def _readers_of(self, rows: Sequence[tuple[Any, ...]]) -> list[Projection]:
        """The registered projections that read any of ``rows``' event types."""
        kinds = {row[4] for row in rows}
        return [p for p in self._projections if p.types is None or not p.types.isdisjoint(kinds)]

    def _written(self, rows: Sequence[tuple[Any, ...]], keys: SqlKeyTable
                 ) -> list[RecordedEvent]:
        """``rows`` as a read returns them: data decoded from the text as stored (opened
        with the transaction's own keys, which no other connection sees yet)."""
        return self._events([(*row[:6], orjson.loads(row[6]), *row[7:]) for row in rows],
                            keys=keys)

    @staticmethod
    def _insert(conn: psycopg.Connection, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            conn.execute(*_insert_statement(rows))
            rows.clear()

    def load(self, events: Iterable[RecordedEvent], *,
             reseal: Resealer | None = None) -> tuple[int, int]:
        """See :meth:`~eventstore.protocol.Log.load`: one transaction, rows streamed in
        with COPY, one COPY per chunk (the triggers still take the lock and check the
        positions; the keys of a chunk's resealed events go in before its COPY, which
        holds the connection while it runs)."""
        count = last = 0
        try:
            with self._connection() as conn, conn.transaction():
                conn.execute(_LOCK, (schema.APPEND_LOCK, self._events_oid))
                if self._last_position(conn):
                    raise EventStoreError(f"{self.location} already holds events; load only "
                                          "into an empty log")
                keys = PostgresKeyTable(lambda q, p: _rows_of(conn, q, p))
                chunk: list[RecordedEvent] = []
                for event in in_load_order(events):
                    chunk.append(event)
                    count, last = count + 1, event.position
                    if len(chunk) >= _READ_CHUNK:
                        self._copy(conn, chunk, keys, reseal)
                self._copy(conn, chunk, keys, reseal)
        except psycopg.errors.UniqueViolation as exc:
            self._sealer.rolled_back()
            # positions and versions were checked on the way in: the collision is an id
            detail = exc.diag.message_detail or _first_line(exc)
            raise EventStoreError(f"an event id appears twice ({detail})") from None
        except psycopg.Error as exc:
            self._sealer.rolled_back()
            raise EventStoreError(self.target.redact(
                f"could not load into {self.location}: {_first_line(exc)}")) from None
        except BaseException:
            self._sealer.rolled_back()
            raise
        self._sealer.committed()
        return count, last

    def _copy(self, conn: psycopg.Connection, chunk: list[RecordedEvent], keys: SqlKeyTable,
              reseal: Resealer | None) -> None:
        if not chunk:
            return
        if reseal is not None:
            chunk[:] = [self._sealer.reseal(keys, event, reseal) for event in chunk]
        with conn.cursor() as cursor, cursor.copy(_COPY) as copy:
            for event in chunk:
                copy.write_row((event.position, event.event_id, event.stream_id,
                                event.version, event.type, event.schema_version,
                                stored_data(event), event.recorded_at,
                                event.correlation_id, event.causation_id))
        chunk.clear()

    # -- reading -------------------------------------------------------------------

    def stream_version(self, stream_id: str) -> int:
        """See :meth:`~eventstore.protocol.LogReader.stream_version`."""
        rows = self._fetch("SELECT coalesce(max(version), 0) FROM events WHERE stream_id = %s",
                           (stream_id,))
        return int(rows[0][0])

    def last_position(self) -> int:
        """See :meth:`~eventstore.protocol.LogReader.last_position`."""
        with self._connection() as conn:
            return self._last_position(conn)

    @staticmethod
    def _last_position(conn: psycopg.Connection) -> int:
        row = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
        return int(row[0]) if row else 0

    def read_stream(self, stream_id: str, from_version: int = 1,
                    limit: int | None = None) -> list[RecordedEvent]:
        """See :meth:`~eventstore.protocol.LogReader.read_stream`."""
        return self._events(self._fetch(
            f"{_SELECT} WHERE stream_id = %s AND version >= %s ORDER BY version LIMIT %s",
            (stream_id, from_version, limit)))

    def read_stream_tail(self, stream_id: str, count: int) -> list[RecordedEvent]:
        """See :meth:`~eventstore.protocol.LogReader.read_stream_tail`: the stream index
        read backwards."""
        rows = self._fetch(f"{_SELECT} WHERE stream_id = %s ORDER BY version DESC LIMIT %s",
                           (stream_id, max(count, 0)))
        rows.reverse()
        return self._events(rows)

    def read_all(self, after: int = 0, *, types: Iterable[str] | None = None,
                 until: int | None = None, limit: int | None = None) -> list[RecordedEvent]:
        """See :meth:`~eventstore.protocol.LogReader.read_all`."""
        return list(self.iter_all(after, types=types, until=until, limit=limit))

    def iter_all(self, after: int = 0, *, types: Iterable[str] | None = None,
                 until: int | None = None, limit: int | None = None) -> Iterator[RecordedEvent]:
        """See :meth:`~eventstore.protocol.LogReader.iter_all`: chunks by position, each
        on a connection borrowed for that chunk alone."""
        selection = EventFilter(types=frozenset(types) if types is not None else frozenset(),
                                upto=until, after=after)
        if types is not None and not selection.types:
            return
        where, params = _where(selection)
        for rows in self._chunks(f"{_SELECT} WHERE position > %s{where} ORDER BY position "
                                 "LIMIT %s", after, params, limit):
            yield from self._events(rows)

    def read_positions(self, positions: Iterable[int]) -> list[RecordedEvent]:
        """See :meth:`~eventstore.protocol.LogReader.read_positions`."""
        wanted = sorted(set(positions))
        if not wanted:
            return []
        return self._events(self._fetch(
            f"{_SELECT} WHERE position = ANY(%s::bigint[]) ORDER BY position", (wanted,)))

    def get(self, event_id: str) -> RecordedEvent | None:
        """See :meth:`~eventstore.protocol.LogReader.get`."""
        rows = self._fetch(f"{_SELECT} WHERE event_id = %s", (event_id,))
        return self._events(rows)[0] if rows else None

    def with_id_prefix(self, prefix: str) -> Iterator[RecordedEvent]:
        """See :meth:`~eventstore.protocol.LogReader.with_id_prefix`: a range of the id index
        (ids sort in code point order)."""
        return iter(self._events(self._fetch(
            f"{_SELECT} WHERE event_id >= %s AND event_id < %s ORDER BY event_id",
            (prefix, _after(prefix)))))

    def stream_segments(self, prefix: str) -> list[str]:
        """See :meth:`~eventstore.protocol.LogReader.stream_segments`: one probe of the stream
        index per segment, however long the log."""
        found: list[str] = []
        low, high = prefix, _after(prefix)
        with self._connection() as conn:
            while True:
                row = conn.execute("SELECT stream_id FROM events WHERE stream_id > %s AND "
                                   "stream_id < %s ORDER BY stream_id LIMIT 1",
                                   (low, high)).fetchone()
                if row is None:
                    return found
                segment = row[0][len(prefix):].split(":", 1)[0]
                found.append(segment)
                low = f"{prefix}{segment};"  # ';' sorts right after ':'

    def active_streams(self, since: float, *, types: Iterable[str], prefix: str) -> list[str]:
        """See :meth:`~eventstore.protocol.LogReader.active_streams`."""
        rows = self._fetch(
            "SELECT DISTINCT stream_id FROM events WHERE recorded_at >= %s AND "
            "type = ANY(%s::text[]) AND stream_id >= %s AND stream_id < %s",
            (since, sorted(set(types)), prefix, _after(prefix)))
        return sorted(row[0] for row in rows)

    def scan(self, selection: EventFilter, *, upcast: bool = True,
             unseal: bool | None = None) -> Iterator[RecordedEvent]:
        """See :meth:`~eventstore.protocol.LogReader.scan`."""
        where, params = _where(selection)
        matches = selection.matches
        for rows in self._chunks(f"{_SELECT} WHERE position > %s{where} ORDER BY position "
                                 "LIMIT %s", selection.after, params):
            for event in self._events(rows, upcast=upcast, unseal=unseal):
                if matches is None or matches(event.type, event.data):
                    yield event

    def json_lines(self, selection: EventFilter) -> Iterator[bytes]:
        """See :meth:`~eventstore.protocol.LogReader.json_lines`: ``data`` spliced in as
        the text stored (opened in Python once the log has sealed content)."""
        if self._fetch("SELECT 1 FROM content_keys LIMIT 1"):
            yield from map(json_line, self.scan(selection, upcast=False, unseal=True))
            return
        where, params = _where(selection)
        matches = selection.matches
        dumps, fragment = orjson.dumps, orjson.Fragment
        option = orjson.OPT_APPEND_NEWLINE
        query = ("SELECT position, event_id, stream_id, version, type, schema_version, "
                 "data::text, recorded_at, correlation_id, causation_id FROM events "
                 f"WHERE position > %s{where} ORDER BY position LIMIT %s")
        for rows in self._chunks(query, selection.after, params):
            for (position, event_id, stream_id, version, type_, schema_version, data,
                 recorded_at, correlation_id, causation_id) in rows:
                if matches is not None and not matches(type_, orjson.loads(data)):
                    continue
                yield dumps({"position": position, "event_id": event_id,
                             "stream_id": stream_id, "version": version, "type": type_,
                             "schema_version": schema_version, "data": fragment(data),
                             "recorded_at": recorded_at, "correlation_id": correlation_id,
                             "causation_id": causation_id}, option=option)

    def _chunks(self, query: str, after: int, params: list[Any], limit: int | None = None
                ) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of ``query`` (``position > %s ... LIMIT %s``) chunk by chunk, each on
        a connection borrowed for that chunk alone; ``limit`` rows at most."""
        remaining = limit
        while remaining is None or remaining > 0:
            size = _READ_CHUNK if remaining is None else min(_READ_CHUNK, remaining)
            rows = self._fetch(query, (after, *params, size))
            if rows:
                yield rows
            if len(rows) < size:
                return
            after = rows[-1][0]
            if remaining is not None:
                remaining -= len(rows)

    def _events(self, rows: Sequence[Sequence[Any]], *, upcast: bool = True,
                unseal: bool | None = None, keys: SqlKeyTable | None = None
                ) -> list[RecordedEvent]:
        """Rows (``data`` decoded already) as events, sealed content opened unless
        ``unseal`` is false (default: as ``upcast``)."""
        event = build_recorded_event
        upcast_step = self._upcasters.upcast
        upcast_types = self._upcasters.types if upcast else frozenset()
        opening = upcast if unseal is None else unseal
        open_, keys = self._sealer.open, keys or self._keys
        if opening:
            wanted = [box["key"] for row in rows if SEALED in row[6] for box in row[6][SEALED]]
            if wanted:
                self._sealer.preload(keys, wanted)  # one query for the chunk's keys
        events = []
        for (position, event_id, stream_id, version, type_, schema_version, data, recorded_at,
             correlation_id, causation_id) in rows:
            if opening and SEALED in data:
                data = open_(keys, event_id, data)
            if type_ in upcast_types:
                schema_version, data = upcast_step(type_, schema_version, data)
            events.append(event(position, event_id, stream_id, version, type_, schema_version,
                                data, recorded_at, correlation_id, causation_id))
        return events

    # -- projections -----------------------------------------------------------------

    def rows(self, table: str, where: Where | None = None, *, order_by: Sequence[str] = (),
             limit: int | None = None) -> list[dict[str, Any]]:
        """See :meth:`~eventstore.projections.TableReader.rows`."""
        with self._connection() as conn:
            return PostgresTables(conn, self._catalog).rows(table, where, order_by=order_by,
                                                            limit=limit)

    def projection_state(self, name: str) -> tuple[int, int] | None:
        """See :meth:`~eventstore.protocol.LogReader.projection_state`."""
        rows = self._fetch("SELECT version, position FROM projection_positions WHERE name = %s",
                           (name,))
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def projection_position(self, name: str) -> int:
        """See :meth:`~eventstore.protocol.LogReader.projection_position`."""
        state = self.projection_state(name)
        return state[1] if state else 0

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One REPEATABLE READ transaction on one connection around the block: every
        read inside sees the same committed prefix of the log."""
        if self._pinned is not None:
            yield
            return
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            self._pinned = conn
            try:
                yield
            finally:
                self._pinned = None

    def _prepare_projection(self, projection: Projection) -> None:
        with self._connection() as conn, conn.transaction():
            conn.execute(_LOCK, (schema.APPEND_LOCK, self._events_oid))
            row = conn.execute("SELECT version FROM projection_positions WHERE name = %s",
                               (projection.name,)).fetchone()
            if row is None or row[0] != projection.version:
                self._catalog.drop(conn, projection)
                self._catalog.create(conn, projection)
                conn.execute(
                    "INSERT INTO projection_positions (name, version, position) "
                    "VALUES (%s, %s, 0) ON CONFLICT (name) DO UPDATE SET version = "
                    "EXCLUDED.version, position = 0", (projection.name, projection.version))
            else:
                self._catalog.register(projection)
            self._catch_up(conn, projection)

    def _catch_up(self, conn: psycopg.Connection, projection: Projection) -> None:
        row = conn.execute("SELECT position FROM projection_positions WHERE name = %s",
                           (projection.name,)).fetchone()
        position = int(row[0]) if row else 0
        pinned, self._pinned = self._pinned, conn
        try:
            last = apply_events(projection, PostgresTables(conn, self._catalog),
                                self.iter_all(position))
        finally:
            self._pinned = pinned
        if last > position:
            self._set_projection_position(conn, projection.name, last)

    @staticmethod
    def _set_projection_position(conn: psycopg.Connection, name: str, position: int) -> None:
        conn.execute("UPDATE projection_positions SET position = %s WHERE name = %s",
                     (position, name))

    def rebuild_and_compare(self, projection: Projection) -> list[ProjectionDifference]:
        """See :meth:`~eventstore.protocol.LogReader.rebuild_and_compare`: in one snapshot."""
        with self.snapshot(), self._connection() as conn:
            until = self.projection_position(projection.name)
            rebuilt = MemoryTables([projection])
            apply_events(projection, rebuilt, self.iter_all(0, until=until))
            return compare_tables(projection, PostgresTables(conn, self._catalog), rebuilt)

    def check(self) -> list[Violation]:
        """See :func:`~eventstore.postgres.check.check_log` (run on this log)."""
        from .check import check_log

        with self._connection() as conn:
            return check_log(conn, self.target.schema)


def _insert_statement(rows: Sequence[tuple[Any, ...]]) -> Statement:
    """The INSERT of ``rows`` into ``events``."""
    return _INSERT, arrays.columns(_INSERT_TYPES, rows)


def _positions_statement(reached: dict[str, int]) -> Statement:
    """The UPDATE of the projections' positions."""
    return ("UPDATE projection_positions SET position = u.position FROM "
            "unnest(%b::text[], %b::bigint[]) AS u(name, position) "
            "WHERE projection_positions.name = u.name",
            [arrays.array("text", reached), arrays.array("bigint", reached.values())])


def _session_options(schema_name: str, writer: str) -> str:
    """libpq ``options``: every setting a log's sessions need, at no extra round trip."""
    # Custom plans, but in an append (_APPEND_LOCK): a generic plan made while a table was
    # small (a new log) would keep scanning it sequentially as it grows.
    return (f"-c search_path={schema_name} -c lock_timeout={_LOCK_TIMEOUT} "
            "-c plan_cache_mode=force_custom_plan "
            f"-c idle_in_transaction_session_timeout={_IDLE_IN_TRANSACTION_TIMEOUT} "
            f"-c {schema.WRITER_SETTING}={writer}")


def _events_oid(conn: psycopg.Connection, schema_name: str) -> int:
    row = conn.execute("SELECT %s::regclass::oid::bigint", (f'"{schema_name}".events',)
                       ).fetchone()
    return int(row[0]) if row else 0


@contextmanager
def _committing(log: PostgresLog, conn: psycopg.Connection) -> Iterator[None]:
    """A transaction whose own failure (not a request's) is an EventStoreError."""
    try:
        with conn.transaction():
            yield
    except psycopg.Error as exc:
        if isinstance(exc, psycopg.OperationalError):
            raise  # _connection says what happened to the connection
        raise EventStoreError(log.target.redact(
            f"the event log {log.location} could not commit: {_first_line(exc)}")) from None


def _roll_back(conn: psycopg.Connection) -> None:
    """End the transaction a failure left open (or aborted) on ``conn``."""
    if not conn.broken and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.execute("ROLLBACK")


def _open_error(target: PostgresTarget, exc: psycopg.Error) -> StoreOpenError:
    """One sentence for a failure to open: the first line of libpq's reason, no password."""
    reason = _first_line(exc).removeprefix("connection failed: ")
    return StoreOpenError(target.redact(f"cannot open the event log {target.location}: "
                                        f"{reason}"))


def _where(selection: EventFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if selection.upto is not None:
        clauses.append("position <= %s")
        params.append(selection.upto)
    if selection.streams:
        clauses.append("stream_id = ANY(%s::text[])")
        params.append(sorted(selection.streams))
    if selection.types:
        clauses.append("type = ANY(%s::text[])")
        params.append(sorted(selection.types))
    if selection.since is not None:
        clauses.append("recorded_at >= %s")
        params.append(selection.since)
    if selection.until is not None:
        clauses.append("recorded_at <= %s")
        params.append(selection.until)
    return "".join(f" AND {c}" for c in clauses), params


def _after(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _rows_of(conn: psycopg.Connection, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of ``query`` on ``conn`` ([] for a statement that returns none)."""
    cursor = conn.execute(query, params)
    return cursor.fetchall() if cursor.description is not None else []
