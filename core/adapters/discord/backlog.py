"""Messages the log could not take (a full disk, an I/O error): kept, retried, taken in.

While appends fail with :class:`~eventstore.LogUnavailable`, messages (and edits and
deletions, which must not overtake them) wait here in the order they came (new ones
join the queue, so a conversation keeps its order) and the head is retried with
backoff (``first_s`` doubling up to ``most_s``). Once the log
takes one, the rest follow at once; nothing needs a restart. The queue is bounded
(``limit`` messages, the oldest kept): past it, a message is not kept but its channel
is remembered, and once the log is writable again those channels' recent history is
read back (catch-up, taken in directly, raising LogUnavailable when the log fails
again), so a message is late, never lost. :meth:`Backlog.problem` says
what is wrong, for ``/readyz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from eventstore import LogUnavailable

log = logging.getLogger(__name__)

BACKLOG_LIMIT = 1000
"""Messages kept while the log cannot be written (a few MB at most)."""
OVERFLOW_CHANNELS = 10_000
RETRY_FIRST_S = 0.5
RETRY_MOST_S = 30.0


@dataclass(frozen=True, slots=True)
class _Waiting:
    """Something to take in once the log can be written: a message, an edit, a deletion."""

    channel_id: int
    take: Callable[[], Awaitable[None]]


class Backlog:
    """What waits for the log and the task that retries it (see the module docstring)."""

    def __init__(self, read_back: Callable[[set[int]], Awaitable[object]], *,
                 limit: int = BACKLOG_LIMIT, first_s: float = RETRY_FIRST_S,
                 most_s: float = RETRY_MOST_S) -> None:
        self._read_back = read_back
        self._limit = limit
        self._first_s = first_s
        self._most_s = most_s
        self._queue: deque[_Waiting] = deque()
        self._overflow: set[int] = set()
        self._error: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> bool:
        """True while messages wait for the log (new ones must queue behind them)."""
        return bool(self._queue) or self._task is not None

    def keep(self, channel_id: int, take: Callable[[], Awaitable[None]],
             error: LogUnavailable | None = None) -> None:
        """Keep ``take`` (taking in something of ``channel_id``) until the log takes it
        (``error``: why it could not now). Past the limit only the channel is kept, to
        be read back (an edit or a deletion past it is not: the message stays as first
        recorded)."""
        if error is not None:
            self._error = str(error)
        if len(self._queue) < self._limit:
            self._queue.append(_Waiting(channel_id, take))
        else:
            if not self._overflow:
                log.error("more than %d messages wait for the event log: later ones are "
                          "read back from their channels once it can be written", self._limit)
            if len(self._overflow) < OVERFLOW_CHANNELS:
                self._overflow.add(channel_id)
        if self._task is None:
            log.error("the event log cannot be written (%s): messages wait and are retried",
                      self._error)
            self._task = asyncio.create_task(self._drain(), name="discord-backlog")

    def problem(self) -> str | None:
        """Why messages are not being taken in, for ``/readyz``; None when they are."""
        if not self.waiting:
            return None
        kept = len(self._queue)
        more = f" (and more from {len(self._overflow)} channel(s), to be read back)" \
            if self._overflow else ""
        return (f"{kept} Discord message(s) wait for the event log{more}: "
                f"{self._error or 'it cannot be written'}")

    async def close(self) -> None:
        """Stop retrying (what still waits is read back by the next start's catch-up)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _drain(self) -> None:
        delay = self._first_s
        try:
            while self._queue or self._overflow:
                await asyncio.sleep(delay)
                channels: set[int] = set()
                try:
                    while self._queue:
                        await self._queue[0].take()
                        self._queue.popleft()
                    if self._overflow:
                        channels, self._overflow = self._overflow, set()
                        await self._read_back(channels)
                except LogUnavailable as exc:
                    self._overflow |= channels
                    self._error = str(exc)
                    delay = min(delay * 2, self._most_s)
                    continue
                delay = self._first_s
            log.info("the event log takes messages again; every waiting one is in")
        finally:
            self._task = None
            if not self._queue:
                self._error = None
