"""The asyncio face of any backend's log: group-commit appends and off-loop reads.

The event loop never waits on the disk (or the network). Appends are handed to one writer thread,
which takes every request waiting at that moment and commits them in a single
transaction (one fsync for the lot); each caller awaits its own outcome. Reads run
on a small pool of reader threads, each with its own connection to the log
(:meth:`~eventstore.protocol.Log.reader`). Live followers are woken after each commit and
handed what it wrote from memory (the last :data:`RECENT_EVENTS` events, as the writer
recorded them), so following the log does not read back every event just written.
When the backend can hear other connections' commits (:meth:`~eventstore.protocol.Log.listen`:
PostgreSQL's LISTEN/NOTIFY), a listener thread wakes followers for those too; they then
read the log by position, so a late or lost notification costs latency, never an event.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import EventStoreError, LogUnavailable, StoreClosedError
from .model import ANY, AppendRequest, AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from .projections import Projection, ProjectionDifference
from .protocol import AppendObserver, CommitSignal, Log, LogReader

T = TypeVar("T")

MAX_BATCH_REQUESTS = 1000
"""How many waiting appends one transaction may take: bounds a commit's latency."""

RECENT_EVENTS = 1024
"""Events committed through this store kept in memory for followers."""

OWN_POSITIONS = 100_000
"""How many positions it appended a store remembers for ``follow(own=True)``."""

LISTEN_WAIT_S = 5.0
"""How long the listener thread blocks in one wait for other connections' commits."""

READ_RETRY_FIRST_S = 0.2
READ_RETRY_MOST_S = 5.0
"""A read the log could not serve (:class:`~eventstore.errors.LogUnavailable`: its server
away) is tried again after 0.2 s, doubling up to 5 s, off the reader threads..."""
READ_PATIENCE_S = 30.0
"""...for up to this long before the caller hears of it (a follower keeps trying)."""


@dataclass(slots=True)
class _Pending:
    request: AppendRequest
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[AppendResult] = field(repr=False)


class ThreadedStore:
    """An :class:`~eventstore.protocol.EventStore` over a backend's
    :class:`~eventstore.protocol.Log`. Open one with :func:`eventstore.open_store`; end it
    with :meth:`close` (or ``async with``)."""

    def __init__(self, log: Log, *, readers: int = 2) -> None:
        self._log = log
        self.location = log.location
        self.shared = log.shared
        self._observer: AppendObserver | None = None
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._closed = False
        self._commit_event = asyncio.Event()
        # Contiguous positions, oldest first; filled only while someone follows.
        self._recent: deque[RecordedEvent] = deque(maxlen=RECENT_EVENTS)
        self._followers = 0
        # Positions this store appended lately (for followers of its own events only);
        # filled on the writer thread before anyone hears of the commit.
        self._own: set[int] = set()
        self._own_order: deque[int] = deque()
        # The events this store appended lately, oldest first, for those followers: every
        # one after _own_floor is here, so they need not read other processes' commits.
        self._own_recent: deque[RecordedEvent] = deque()
        self._own_floor = 0
        # The last position known to be committed, by this store or (heard of) another.
        self._log_end = 0
        self._loop = asyncio.get_running_loop()
        self._local = threading.local()
        self._reader_logs: list[LogReader] = []
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="eventstore-reader")
        self._writer = threading.Thread(
            target=self._write_forever, name="eventstore-writer", daemon=True
        )
        self._writer.start()
        self._signal = log.listen()
        self._listener: threading.Thread | None = None
        if self._signal is not None:
            self._listener = threading.Thread(
                target=self._listen_forever, args=(self._signal,),
                name="eventstore-listener", daemon=True)
            self._listener.start()

    def others_appended_to(self, stream_id: str) -> int:
        """See :meth:`~eventstore.protocol.Log.others_appended_to`."""
        return self._log.others_appended_to(stream_id)

    def observe_appends(self, observer: AppendObserver | None) -> None:
        """Tell ``observer`` of every append from now on (None: nobody)."""
        self._observer = observer

    def problem(self) -> str | None:
        """See :meth:`~eventstore.protocol.Log.problem`."""
        return self._log.problem()

    async def __aenter__(self) -> ThreadedStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Finish every append already handed over, then close all connections."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        if self._signal is not None and self._listener is not None:
            self._signal.interrupt()
            await asyncio.to_thread(self._listener.join)
        await asyncio.to_thread(self._writer.join)
        self._readers.shutdown(wait=True)
        for reader in self._reader_logs:
            reader.close()
        self._log.close()
        self._commit_event.set()

    # -- appending -----------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent] | NewEvent,
        expected_version: ExpectedVersion = ANY,
        *,
        claim: bool = False,
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically and durably.

        An event whose id exists already is not written again; its existing position
        is returned. Raises :class:`~eventstore.errors.WrongExpectedVersion` when
        ``expected_version`` is not the stream's version. With ``claim``, nothing is
        written when the first event's id exists (:attr:`AppendRequest.claim`).
        """
        if self._closed:
            raise StoreClosedError("the event store is closed")
        if isinstance(events, NewEvent):
            events = (events,)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AppendResult] = loop.create_future()
        self._queue.put(_Pending(AppendRequest(stream_id, tuple(events),
                                               expected_version=expected_version, claim=claim),
                                 loop, future))
        observer = self._observer  # it may be replaced while this append waits
        if observer is None:
            return await future
        started = time.perf_counter()
        try:
            result = await future
        except EventStoreError as exc:
            observer(time.perf_counter() - started, exc)
            raise
        observer(time.perf_counter() - started, None)
        return result

    def _write_forever(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH_REQUESTS:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            outcomes: list = self._log.append_batch([p.request for p in batch],
                                                    recorded=self._followers > 0)
        except Exception as exc:  # the commit itself failed: every caller hears of it
            error = exc if isinstance(exc, LogUnavailable) else LogUnavailable(
                f"the event log could not commit: {exc}")
            outcomes = [error] * len(batch)
        self._note_own(outcomes)
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for pending, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(pending.loop, []).append((pending.future, outcome))
        for loop, results in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._settle, results)
            except RuntimeError:
                continue  # that loop is closed: nobody is waiting any more

    def _note_own(self, outcomes: list) -> None:
        for outcome in outcomes:
            if isinstance(outcome, AppendResult):
                for event in outcome.written:
                    self._own.add(event.position)
                    self._own_order.append(event.position)
        while len(self._own_order) > OWN_POSITIONS:
            self._own.discard(self._own_order.popleft())

    def _settle(self, results: list) -> None:
        for future, outcome in results:
            if isinstance(outcome, AppendResult):
                self._remember(outcome)
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        self._wake_followers()

    def _wake_followers(self) -> None:
        self._commit_event.set()
        self._commit_event = asyncio.Event()

    def _listen_forever(self, signal: CommitSignal) -> None:
        try:
            while not self._closed:
                last = signal.wait(LISTEN_WAIT_S)
                if last is None or self._closed:
                    continue
                try:
                    self._loop.call_soon_threadsafe(self._heard, last)
                except RuntimeError:
                    return  # the loop is closed: nobody follows any more
        finally:
            signal.close()

    def _heard(self, last: int) -> None:
        """Another connection committed up to ``last``: followers must read the log, the
        in-memory window does not hold those events."""
        if last > self._log_end:
            self._log_end = last
        self._wake_followers()

    def _remember(self, result: AppendResult) -> None:
        """Keep what ``result`` wrote for followers; forget everything on a gap (a batch
        committed while nobody followed, another process's appends)."""
        wrote = len(result.positions) - result.duplicates
        if len(result.written) != wrote:
            self._recent.clear()
            self._own_floor = max([self._own_floor, *result.positions])
            self._own_recent.clear()
            return
        own = self._own_recent
        own.extend(result.written)
        while len(own) > RECENT_EVENTS:
            self._own_floor = own.popleft().position
        recent = self._recent
        for event in result.written:
            if recent and event.position != recent[-1].position + 1:
                recent.clear()
            recent.append(event)
        if recent and recent[-1].position > self._log_end:
            self._log_end = recent[-1].position

    def _own_after(self, after: int, types: tuple[str, ...] | None,
                   limit: int) -> list[RecordedEvent] | None:
        """Up to ``limit`` of this store's own events after ``after`` from memory; None
        when memory cannot say (``after`` is older than what is kept)."""
        if after < self._own_floor:
            return None
        newer: list[RecordedEvent] = []
        for event in reversed(self._own_recent):  # the newest first: followers keep up
            if event.position <= after:
                break
            newer.append(event)
        newer.reverse()
        if types is not None:
            newer = [event for event in newer if event.type in types]
        return newer[:limit]

    def _recent_after(self, after: int, types: tuple[str, ...] | None,
                      limit: int) -> list[RecordedEvent] | None:
        """Up to ``limit`` events after ``after`` from memory; None when memory cannot
        say (``after`` is older than what is kept, or ahead of it, or another connection
        has committed past it)."""
        recent = self._recent
        if not recent or not recent[0].position - 1 <= after <= recent[-1].position:
            return None
        if recent[-1].position < self._log_end:
            return None
        found: Iterator[RecordedEvent] = itertools.islice(recent, after + 1 - recent[0].position,
                                                          None)
        if types is not None:
            found = (event for event in found if event.type in types)
        return list(itertools.islice(found, limit))

    # -- reading -------------------------------------------------------------------

    async def read(self, query: Callable[[LogReader], T]) -> T:
        """Run ``query`` on a reader connection, off the loop, in one snapshot."""

        def in_snapshot(reader: LogReader) -> T:
            with reader.snapshot():
                return query(reader)

        return await self._on_reader(in_snapshot)

    async def _on_reader(self, query: Callable[[LogReader], T]) -> T:
        """``query`` on a reader thread; again, after a pause, while the log cannot serve
        it, for up to :data:`READ_PATIENCE_S` (a server restarting: the caller waits
        rather than fails, and no reader thread is held meanwhile)."""
        if self._closed:
            raise StoreClosedError("the event store is closed")
        deadline = self._loop.time() + READ_PATIENCE_S
        delay = READ_RETRY_FIRST_S
        while True:
            try:
                return await self._loop.run_in_executor(self._readers, self._run_read, query)
            except LogUnavailable:
                if self._closed or self._loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, READ_RETRY_MOST_S)

    def _run_read(self, query: Callable[[LogReader], T]) -> T:
        reader: LogReader | None = getattr(self._local, "log", None)
        if reader is None:
            reader = self._log.reader()
            self._reader_logs.append(reader)
            self._local.log = reader
        return query(reader)

    async def read_stream(
        self, stream_id: str, from_version: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        """Events of ``stream_id`` from ``from_version`` (inclusive), oldest first."""
        return await self._on_reader(lambda log: log.read_stream(stream_id, from_version, limit))

    async def read_stream_tail(self, stream_id: str, count: int) -> list[RecordedEvent]:
        """The last ``count`` events of ``stream_id``, oldest first."""
        return await self._on_reader(lambda log: log.read_stream_tail(stream_id, count))

    async def read_all(
        self,
        after: int = 0,
        *,
        types: Iterable[str] | None = None,
        until: int | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Events with ``after < position <= until`` in position order, optionally by type."""
        type_list = None if types is None else tuple(types)
        return await self._on_reader(
            lambda log: log.read_all(after, types=type_list, until=until, limit=limit)
        )

    async def read_positions(self, positions: Iterable[int]) -> list[RecordedEvent]:
        """The events at ``positions`` (those that exist), in position order."""
        wanted = tuple(positions)
        return await self._on_reader(lambda log: log.read_positions(wanted))

    async def get(self, event_id: str) -> RecordedEvent | None:
        """The event with ``event_id``, or None."""
        return await self._on_reader(lambda log: log.get(event_id))

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when it has no events)."""
        return await self._on_reader(lambda log: log.stream_version(stream_id))

    async def last_position(self) -> int:
        """The position of the newest event, 0 for an empty log."""
        return await self._on_reader(lambda log: log.last_position())

    async def follow(
        self, after: int = 0, *, types: Iterable[str] | None = None, batch: int = 500,
        own: bool = False,
    ) -> AsyncIterator[RecordedEvent]:
        """Every event after ``after``, then each new one as it commits, forever.

        Followers are woken by the writer's commits and, when the backend can hear
        them, by other connections' commits; never by polling. With ``own``, only the
        events this store appended are yielded (a process's metrics, over a log other
        processes write too), from memory while it has them (other connections' commits
        cost such a follower no read); it remembers the last :data:`OWN_POSITIONS` of
        their positions. A read
        the log cannot serve now (:class:`~eventstore.errors.LogUnavailable`: its server
        is away) is tried again with backoff: a follower outlives an outage.
        """
        type_list = None if types is None else tuple(types)
        self._followers += 1
        delay = READ_RETRY_FIRST_S
        try:
            while not self._closed:
                waiter = self._commit_event
                events = self._own_after(after, type_list, batch) if own else \
                    self._recent_after(after, type_list, batch)
                if events is None:
                    try:
                        events = await self.read_all(after, types=type_list, limit=batch)
                    except LogUnavailable:
                        if self._closed:
                            return
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, READ_RETRY_MOST_S)
                        continue
                    delay = READ_RETRY_FIRST_S
                for event in events:
                    if not own or event.position in self._own:
                        yield event
                    after = event.position
                if len(events) < batch:
                    await waiter.wait()
        finally:
            self._followers -= 1

    async def rebuild_and_compare(self, projection: Projection) -> list[ProjectionDifference]:
        """Rebuild ``projection`` from zero and diff it with the live tables, off the loop."""
        return await self._on_reader(lambda log: log.rebuild_and_compare(projection))
