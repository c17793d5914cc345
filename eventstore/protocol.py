"""The store interface: what every backend offers, and what the rest of personae uses.

Two levels, as in the ``eventsourcing`` library's recorders:

- :class:`Log` (and its read side :class:`LogReader`) is a backend's synchronous
  connection to a log: SQLite (:class:`~eventstore.sqlite.SQLiteLog`), PostgreSQL,
  or memory (:class:`~eventstore.memory.MemoryLog`). Command-line tools use one directly.
- :class:`EventStore` is the asyncio face the running bot uses. Its implementation
  (:class:`~eventstore.store.ThreadedStore`) runs any :class:`Log` on a writer thread
  with group commit and on reader threads, so the event loop never waits on a disk
  or a network.

Every backend passes the same conformance suite (``tests/eventstore/conformance``).
No code outside ``eventstore/`` speaks SQL to the log: what it needs is a method here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, TypeVar

from .errors import EventStoreError
from .filters import EventFilter
from .model import (
    ANY,
    AppendRequest,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    Violation,
)
from .projections import Projection, ProjectionDifference, TableReader
from .sealing import KeyRecord, KeyTable, Resealer

T = TypeVar("T")

AppendObserver = Callable[[float, EventStoreError | None], None]
"""Told of each append's wait for its commit (seconds) and, when it failed, the error:
how the metrics time appends without wrapping the store."""


class CommitSignal(Protocol):
    """Hears of commits made by other connections to a log (other processes, other
    machines), so followers need not poll. It only ever says "look again": a follower
    always re-reads by position, so a signal that is late or lost costs latency, never an
    event."""

    def wait(self, timeout: float) -> int | None:
        """Block up to ``timeout`` seconds for another connection's commit; return the
        log's last position after it (or after reconnecting, when commits may have been
        missed), or None when nothing was heard or :meth:`interrupt` was called."""
        ...

    def interrupt(self) -> None:
        """Make a :meth:`wait` in another thread return now (thread-safe)."""
        ...

    def close(self) -> None:
        """Let go of the connection (after the last :meth:`wait` has returned)."""
        ...


class LogReader(TableReader, Protocol):
    """Reading a log: its events, in several orders, and its projections' tables."""

    location: str
    """Where the log is, for messages (a path, or a URL without its password)."""

    shared: bool
    """True when other processes may append to this log while this connection is open
    (PostgreSQL); then a cache of the log must check it is current before it is used.
    False for SQLite (one writer process, which holds the log's lock) and memory."""

    def read_stream(self, stream_id: str, from_version: int = 1,
                    limit: int | None = None) -> list[RecordedEvent]:
        """Events of ``stream_id`` from ``from_version`` (inclusive), oldest first."""
        ...

    def read_stream_tail(self, stream_id: str, count: int) -> list[RecordedEvent]:
        """The last ``count`` events of ``stream_id``, oldest first."""
        ...

    def read_all(self, after: int = 0, *, types: Iterable[str] | None = None,
                 until: int | None = None, limit: int | None = None) -> list[RecordedEvent]:
        """Events with ``after < position <= until`` in position order, optionally by type."""
        ...

    def iter_all(self, after: int = 0, *, types: Iterable[str] | None = None,
                 until: int | None = None, limit: int | None = None) -> Iterator[RecordedEvent]:
        """Like :meth:`read_all`, streamed in chunks so memory stays flat."""
        ...

    def read_positions(self, positions: Iterable[int]) -> list[RecordedEvent]:
        """The events at ``positions`` (those that exist), in position order."""
        ...

    def get(self, event_id: str) -> RecordedEvent | None:
        """The event with ``event_id``, or None."""
        ...

    def with_id_prefix(self, prefix: str) -> Iterator[RecordedEvent]:
        """Events whose id starts with ``prefix``, in id order (an index range)."""
        ...

    def stream_version(self, stream_id: str) -> int:
        """The stream's current version: 0 for a stream with no events."""
        ...

    def last_position(self) -> int:
        """The position of the newest event, 0 for an empty log."""
        ...

    def stream_segments(self, prefix: str) -> list[str]:
        """The distinct next ``:``-separated segments of stream ids starting with
        ``prefix`` (``"conv:"`` gives the platforms that have conversations), sorted."""
        ...

    def active_streams(self, since: float, *, types: Iterable[str], prefix: str) -> list[str]:
        """Streams starting with ``prefix`` holding an event of ``types`` recorded at or
        after ``since``, sorted."""
        ...

    def scan(self, selection: EventFilter, *, upcast: bool = True,
             unseal: bool | None = None) -> Iterator[RecordedEvent]:
        """The events ``selection`` keeps, in position order, streamed (``upcast=False``:
        data and schema version exactly as stored, sealed parts too, unless ``unseal``)."""
        ...

    def key_table(self) -> KeyTable:
        """The key table of sealed content (:mod:`eventstore.sealing`), on this
        connection."""
        ...

    def json_lines(self, selection: EventFilter) -> Iterator[bytes]:
        """The events ``selection`` keeps as JSON lines (every stored column, ``data`` as
        stored), in position order: the fast path of ``replay --json``."""
        ...

    def projection_state(self, name: str) -> tuple[int, int] | None:
        """``(version, position)`` of the projection ``name``, None if it never ran here."""
        ...

    def projection_position(self, name: str) -> int:
        """How far the projection ``name`` has read, 0 if it never ran."""
        ...

    def snapshot(self) -> AbstractContextManager[None]:
        """Reads inside the ``with`` block see one consistent state of the log."""
        ...

    def rebuild_and_compare(self, projection: Projection) -> list[ProjectionDifference]:
        """Rebuild ``projection`` from position zero in memory and compare it with the
        live tables, up to the position the live tables claim. Empty: they agree."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class Log(LogReader, Protocol):
    """A writable connection to a log: appends, with projections applied in the same
    transaction, and the checks and copies a backend can do."""

    def others_appended_to(self, stream_id: str) -> int:
        """A stamp of ``stream_id`` that changes whenever one of this connection's commits
        finds that another writer appended to the stream since this connection's previous
        commit (or cannot tell which streams others appended to: its first commit on a
        shared log, say). It changes before the append that found out returns: while it
        stays the same, every event of the stream up to this connection's last commit is
        this connection's own. Always 0 on a log that is not ``shared``. Any thread."""
        ...

    def append(self, stream_id: str, events: Sequence[NewEvent],
               expected_version: ExpectedVersion = ANY) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically and durably.

        An event whose id exists already is not written again; its existing position is
        returned. Raises :class:`~eventstore.errors.WrongExpectedVersion` when
        ``expected_version`` is not the stream's version.
        """
        ...

    def append_batch(self, requests: Sequence[AppendRequest], *,
                     recorded: bool = False) -> list[AppendResult | EventStoreError]:
        """Many appends in one transaction (group commit). Each request succeeds or fails
        on its own; a failure is returned in its slot. Only a failure of the transaction
        itself raises. With ``recorded`` each result carries the events it wrote."""
        ...

    def load(self, events: Iterable[RecordedEvent], *,
             reseal: Resealer | None = None) -> tuple[int, int]:
        """Write exported events as they were (positions, ids, versions, times) into this
        empty log, in one transaction; returns ``(events, last position)``. Raises
        :class:`~eventstore.errors.EventStoreError` (nothing written) when the log is not
        empty or the events are not in position order with gap-free stream versions.
        ``reseal``: seal what it names of each event stored in clear (keys of the period
        the event was recorded in)."""
        ...

    def load_keys(self, records: Iterable[KeyRecord]) -> int:
        """Add keys copied from another log's key table (one transaction); returns how
        many. Raises EventStoreError when one is here already."""
        ...

    def check(self) -> list[Violation]:
        """The log's invariants, checked: empty when the log is healthy."""
        ...

    def reader(self) -> LogReader:
        """Another, read-only connection to the same log (for a reader thread)."""
        ...

    def listen(self) -> CommitSignal | None:
        """A signal of other connections' commits (not this one's: its writer knows of
        them), or None when the backend has none: then followers of a store are woken by
        that store's own commits only. Cheap: the signal connects on its first wait."""
        ...

    def problem(self) -> str | None:
        """Why the log cannot be used now (its server does not answer), one sentence for
        ``/readyz``; None when it can, or when the backend cannot tell."""
        ...


class EventStore(Protocol):
    """The asyncio interface to the log. Open one with :func:`eventstore.open_store`."""

    location: str
    shared: bool
    """See :attr:`LogReader.shared`."""

    def others_appended_to(self, stream_id: str) -> int:
        """See :meth:`Log.others_appended_to` (of the store's writer)."""
        ...

    async def append(self, stream_id: str, events: Sequence[NewEvent] | NewEvent,
                     expected_version: ExpectedVersion = ANY, *,
                     claim: bool = False) -> AppendResult:
        """See :meth:`Log.append`; ``claim``: see :attr:`~eventstore.AppendRequest.claim`."""
        ...

    async def read_stream(self, stream_id: str, from_version: int = 1,
                          limit: int | None = None) -> list[RecordedEvent]:
        """See :meth:`LogReader.read_stream`."""
        ...

    async def read_stream_tail(self, stream_id: str, count: int) -> list[RecordedEvent]:
        """See :meth:`LogReader.read_stream_tail`."""
        ...

    async def read_all(self, after: int = 0, *, types: Iterable[str] | None = None,
                       until: int | None = None, limit: int | None = None
                       ) -> list[RecordedEvent]:
        """See :meth:`LogReader.read_all`."""
        ...

    async def read_positions(self, positions: Iterable[int]) -> list[RecordedEvent]:
        """See :meth:`LogReader.read_positions`."""
        ...

    async def get(self, event_id: str) -> RecordedEvent | None:
        """See :meth:`LogReader.get`."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """See :meth:`LogReader.stream_version`."""
        ...

    async def last_position(self) -> int:
        """See :meth:`LogReader.last_position`."""
        ...

    def follow(self, after: int = 0, *, types: Iterable[str] | None = None,
               batch: int = 500, own: bool = False) -> AsyncIterator[RecordedEvent]:
        """Every event after ``after``, then each new one as it commits, until closed;
        with ``own``, only those this store appended (not other processes')."""
        ...

    async def read(self, query: Callable[[LogReader], T]) -> T:
        """Run ``query`` on a reader connection, off the event loop, in one snapshot:
        how the named queries and projection tables of :class:`LogReader` are reached."""
        ...

    async def rebuild_and_compare(self, projection: Projection) -> list[ProjectionDifference]:
        """See :meth:`LogReader.rebuild_and_compare`."""
        ...

    def observe_appends(self, observer: AppendObserver | None) -> None:
        """Tell ``observer`` of every append from now on (None: nobody)."""
        ...

    def problem(self) -> str | None:
        """See :meth:`Log.problem`."""
        ...

    async def close(self) -> None:
        """Finish every append already handed over, then close."""
        ...
