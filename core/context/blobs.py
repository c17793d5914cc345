"""The stored content of the attachments a conversation's recent events name, read
from the log and kept in a small cache bounded by size (an image answered once is
usually in the next prompts too).

It is a cache of the log, never a source: an AttachmentStored event never changes
(its id is its content's hash), so a cached one is always what the log holds.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

from eventstore import EventStore

from ..events import AttachmentStored, MessageEdited, MessageReceived, Typed
from ..events.ids import blob_event_id
from ..events.media import attachments_of

MAX_CACHED_BYTES = 64 * 1024 * 1024


def referenced_hashes(events: Iterable[Typed]) -> list[str]:
    """The hashes of the stored files the messages in ``events`` name, in order."""
    found: dict[str, None] = {}
    for item in events:
        event = item.event
        if isinstance(event, MessageReceived | MessageEdited):
            for attachment in attachments_of(event.attachments):
                if attachment.sha256:
                    found[attachment.sha256] = None
    return list(found)


class AttachmentContent:
    """AttachmentStored events by hash, from the log, cached (see the module docstring)."""

    def __init__(self, store: EventStore, *, max_bytes: int = MAX_CACHED_BYTES) -> None:
        self._store = store
        self._max_bytes = max_bytes
        self._cached: OrderedDict[str, Typed] = OrderedDict()
        self._bytes = 0

    async def for_events(self, events: Sequence[Typed]) -> list[Typed]:
        """The stored content of every file ``events`` name (those the log holds)."""
        wanted = referenced_hashes(events)
        missing = [h for h in wanted if h not in self._cached]
        fetched: dict[str, Typed] = {}
        if missing:
            ids = [blob_event_id(h) for h in missing]
            recorded = await self._store.read(lambda log: [log.get(i) for i in ids])
            for event in recorded:
                if event is not None and event.type == AttachmentStored.type:
                    stored = AttachmentStored.from_data(event.data)
                    fetched[stored.sha256] = Typed.of(event, stored)
                    self._keep(fetched[stored.sha256])
        found = []
        for digest in wanted:
            item = self._cached.get(digest) or fetched.get(digest)
            if item is not None:
                if digest in self._cached:
                    self._cached.move_to_end(digest)
                found.append(item)
        return found

    def clear(self) -> None:
        """Drop every cached file (after an erasure)."""
        self._cached.clear()
        self._bytes = 0

    def _keep(self, item: Typed) -> None:
        stored = item.event
        assert isinstance(stored, AttachmentStored)
        size = len(stored.data) + len(stored.text or "")
        if size > self._max_bytes:
            return
        self._cached[stored.sha256] = item
        self._bytes += size
        while self._bytes > self._max_bytes and self._cached:
            _, oldest = self._cached.popitem(last=False)
            assert isinstance(oldest.event, AttachmentStored)
            self._bytes -= len(oldest.event.data) + len(oldest.event.text or "")
