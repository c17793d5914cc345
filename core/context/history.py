"""The latest events of each active conversation: read from the log once, then kept in
step with the dispatcher's own appends, so building a prompt rarely reads the disk.

This is a cache of the log, never a source: an entry is extended only when an
append lands exactly on the version it knows (otherwise it is dropped and the next
prompt reads the log again), a read that raced an append is used but not kept, and
only the event types a prompt is built from are held, already typed (each event is
read back from its stored data once, not at every prompt). ``recorded_at`` of events
added from appends is this process's clock, not the writer's.

On SQLite the log has one writer process (the bot holds its lock), and that keeps the
cache exact. On a log several processes append to (``store.shared``: PostgreSQL),
another process may append to a cached stream. Each of the store's commits finds out
which streams anyone else appended to since its previous one, and stamps them
(:meth:`~eventstore.protocol.Log.others_appended_to`); an entry remembers its stream's
stamp as it was when the entry was last read from the log, and a hit is used as it is
only while the stamp is the same: then every event of the stream up to the store's last
commit is this process's own, and the entry has them all. Otherwise one index probe
reads the stream after the version the entry knows (usually nothing) and the entry is
brought up to date with what it finds. What a prompt is given therefore holds every
event of its stream committed before this process's last commit ahead of it (the
trigger's, for a reply), by any process; no notification is involved, so none can be
missed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from eventstore import AppendResult, EventStore, NewEvent, RecordedEvent

from ..config import CONTEXT_CACHE_EVENTS
from ..events import (
    AttachmentStored,
    ConversationReset,
    DomainEvent,
    GreetingDelivered,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    ModelReplied,
    PersonaGreeted,
    ReplyDelivered,
    ReplyFailed,
    Typed,
)

CONTEXT_TYPES: dict[str, type[DomainEvent]] = {cls.type: cls for cls in (
    MessageReceived, MessageEdited, MessageDeleted, ConversationReset, ModelReplied,
    ReplyFailed, ReplyDelivered, PersonaGreeted, GreetingDelivered, AttachmentStored)}
"""The event types a prompt is built from, by name (AttachmentStored lives in its own
stream: it reaches a prompt through :class:`~core.context.blobs.AttachmentContent`)."""
_TURN_TYPES = frozenset({MessageReceived.type, ModelReplied.type, PersonaGreeted.type})

EVENTS_PER_TURN = 2
"""Events read first per turn wanted: an exchange is two turns in four events (message,
trigger, reply, delivery); busier streams are read further back."""
MAX_READ_EVENTS = 4000


def context_events(events: Sequence[RecordedEvent]) -> list[Typed]:
    """The events of ``events`` a prompt is built from, typed."""
    of, kinds = Typed.of, CONTEXT_TYPES
    return [of(e, kinds[e.type].from_data(e.data)) for e in events if e.type in kinds]


def _whole_reset(event: RecordedEvent) -> bool:
    """A reset that ends the history a prompt needs (not one person's)."""
    return ConversationReset.from_data(event.data).whole


@dataclass(slots=True)
class _Entry:
    events: list[Typed]
    version: int
    from_start: bool
    turns: int
    wanted: int
    seen: int
    """The stream's ``others_appended_to`` stamp as it was before this entry was last
    read from the log."""

    def has(self, turns: int) -> bool:
        return self.from_start or self.turns >= turns or any(
            isinstance(e.event, ConversationReset) and e.event.whole for e in self.events)


class ConversationHistory:
    """Recent context events per conversation stream, cached (see the module docstring)."""

    def __init__(self, store: EventStore, *, max_events: int = CONTEXT_CACHE_EVENTS) -> None:
        self._store = store
        self._max_events = max_events  # 0: no cache, every prompt reads the log
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._cached = 0
        self._reading: dict[str, int] = {}
        self._raced: set[str] = set()

    async def recent(self, stream_id: str, turns: int) -> list[Typed]:
        """The stream's latest context events: at least ``turns`` turns when the stream has
        them (or back to its start, or to its last reset), oldest first."""
        if not self._max_events:
            return context_events((await self._read(stream_id, turns))[0])
        entry = self._entries.get(stream_id)
        if entry is not None and entry.has(turns) and (
                not self._store.shared or entry.seen == self._store.others_appended_to(stream_id)
                or await self._current(stream_id, entry)):
            entry.wanted = max(entry.wanted, turns)
            self._entries.move_to_end(stream_id)
            return list(entry.events)
        seen = self._store.others_appended_to(stream_id)
        self._reading[stream_id] = self._reading.get(stream_id, 0) + 1
        try:
            events, from_start = await self._read(stream_id, turns)
        finally:
            self._reading[stream_id] -= 1
            if not self._reading[stream_id]:
                del self._reading[stream_id]
        kept = context_events(events)
        if stream_id in self._raced:
            # an append overlapped the read: its snapshot may miss an event, so it is used
            # for this prompt (which follows no such append) but not kept
            if stream_id not in self._reading:
                self._raced.discard(stream_id)
        else:
            self._keep(stream_id, events, kept, from_start, turns, seen)
        return kept

    async def append(self, stream_id: str, events: Sequence[NewEvent] | NewEvent, *,
                     claim: bool = False) -> AppendResult:
        """Append ``events`` to the conversation and keep its entry in step (``claim``: see
        :attr:`eventstore.AppendRequest.claim`)."""
        if isinstance(events, NewEvent):
            events = (events,)
        self._mark_race(stream_id)
        try:
            result = await self._store.append(stream_id, events, claim=claim)
        except BaseException:
            self._forget(stream_id)
            raise
        finally:
            self._mark_race(stream_id)
        entry = self._entries.get(stream_id)
        if entry is None:
            return result
        written = len(events) - result.duplicates
        if result.duplicates and written:
            self._forget(stream_id)
        elif result.stream_version != entry.version + written:
            self._forget(stream_id)  # someone else wrote to it: read the log next time
        elif written:
            now = time.time()
            for offset, (event, position) in enumerate(zip(events, result.positions,
                                                           strict=True)):
                kind = CONTEXT_TYPES.get(event.type)
                if kind is not None:
                    recorded = RecordedEvent(
                        position=position, event_id=event.event_id, stream_id=stream_id,
                        version=entry.version + offset + 1, type=event.type,
                        schema_version=event.schema_version, data=event.data, recorded_at=now,
                        correlation_id=event.correlation_id, causation_id=event.causation_id)
                    entry.events.append(Typed.of(recorded, kind.from_data(event.data)))
                    entry.turns += event.type in _TURN_TYPES
                    self._cached += 1
            entry.version = result.stream_version
            self._shrink(entry)
            self._trim()
        return result

    def __len__(self) -> int:
        return self._cached

    async def _current(self, stream_id: str, entry: _Entry) -> bool:
        """Bring ``entry`` up to what the log holds now (another process may have appended
        to the stream); False when it cannot be (it is then dropped, and read afresh)."""
        seen = self._store.others_appended_to(stream_id)
        self._reading[stream_id] = self._reading.get(stream_id, 0) + 1
        try:
            newer = await self._store.read_stream(stream_id, entry.version + 1,
                                                  MAX_READ_EVENTS)
        finally:
            self._reading[stream_id] -= 1
            if not self._reading[stream_id]:
                del self._reading[stream_id]
        if self._entries.get(stream_id) is not entry:
            return False  # dropped or replaced while the probe ran
        if stream_id in self._raced:
            if stream_id not in self._reading:
                self._raced.discard(stream_id)
            self._forget(stream_id)  # an append of ours overlapped the probe
            return False
        entry.seen = seen
        if not newer:
            return True
        if newer[0].version != entry.version + 1 or len(newer) >= MAX_READ_EVENTS:
            self._forget(stream_id)
            return False
        added = context_events(newer)
        entry.events.extend(added)
        entry.turns += sum(e.recorded.type in _TURN_TYPES for e in added)
        entry.version = newer[-1].version
        self._cached += len(added)
        self._shrink(entry)
        self._trim()
        return stream_id in self._entries

    def clear(self) -> None:
        """Drop every cached event (after an erasure: the cache holds opened content)."""
        self._entries.clear()
        self._cached = 0
        self._raced.update(self._reading)  # a read under way must not be kept either

    async def _read(self, stream_id: str, turns: int) -> tuple[list[RecordedEvent], bool]:
        count = min(MAX_READ_EVENTS, turns * EVENTS_PER_TURN + 16)
        while True:
            events = await self._store.read_stream_tail(stream_id, count)
            from_start = len(events) < count
            if from_start or count >= MAX_READ_EVENTS or any(
                    e.type == ConversationReset.type and _whole_reset(e) for e in events):
                return events, from_start
            if sum(e.type in _TURN_TYPES for e in events) >= turns:
                return events, False
            count = min(MAX_READ_EVENTS, count * 2)

    def _keep(self, stream_id: str, events: list[RecordedEvent], kept: list[Typed],
              from_start: bool, turns: int, seen: int) -> None:
        self._forget(stream_id)
        version = events[-1].version if events else 0
        entry = _Entry(kept, version, from_start or version == 0 or events[0].version == 1,
                       sum(e.recorded.type in _TURN_TYPES for e in kept), turns, seen)
        if not entry.has(turns) and len(events) >= MAX_READ_EVENTS:
            return  # a stream too busy to cache usefully
        self._entries[stream_id] = entry
        self._cached += len(kept)
        self._trim()

    def _mark_race(self, stream_id: str) -> None:
        if stream_id in self._reading:
            self._raced.add(stream_id)

    def _shrink(self, entry: _Entry) -> None:
        """Drop the oldest events of a long-lived entry, keeping the turns prompts want."""
        if entry.turns <= 2 * entry.wanted + 8:
            return
        keep_turns, start = entry.wanted + 4, len(entry.events)
        while keep_turns and start:
            start -= 1
            keep_turns -= entry.events[start].recorded.type in _TURN_TYPES
        dropped = entry.events[:start]
        entry.events = entry.events[start:]
        entry.turns -= sum(e.recorded.type in _TURN_TYPES for e in dropped)
        entry.from_start = False
        self._cached -= len(dropped)

    def _forget(self, stream_id: str) -> None:
        entry = self._entries.pop(stream_id, None)
        if entry is not None:
            self._cached -= len(entry.events)

    def _trim(self) -> None:
        while self._cached > self._max_events and self._entries:
            _, oldest = self._entries.popitem(last=False)
            self._cached -= len(oldest.events)
