"""Scheduling replies: in order within a conversation, concurrently across them, bounded.

Each conversation has a FIFO of jobs and at most one worker task draining it, so
replies in one conversation happen in the order their triggers were recorded.
Workers run concurrently, bounded by one global semaphore and by named lanes (one
per provider, one per persona with ``limits.max_concurrent``).
The number of jobs waiting or running is bounded: :meth:`WorkQueue.reserve` says
no when it is full, so memory cannot grow without bound under a flood.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


Lanes = tuple[tuple[str, int], ...]
"""Named concurrency bounds a job runs within: (name, how many jobs at once)."""


@dataclass(slots=True)
class _Conversation:
    jobs: deque[tuple[Lanes, Job, Callable[[], Awaitable[None]]]] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None


class WorkQueue:
    """Per-conversation FIFO with bounded global and per-provider concurrency."""

    def __init__(self, *, max_pending: int, max_concurrent: int) -> None:
        self._max_pending = max_pending
        self._global = asyncio.Semaphore(max_concurrent)
        self._lanes: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._conversations: dict[str, _Conversation] = {}
        self._reserved = 0
        self._pending = 0
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def pending(self) -> int:
        """Jobs waiting or running, plus slots reserved for jobs about to be submitted."""
        return self._pending + self._reserved

    @property
    def accepting(self) -> bool:
        """False once :meth:`close` was called."""
        return not self._closed

    def reserve(self, count: int = 1) -> bool:
        """Reserve room for ``count`` jobs; False (nothing reserved) when there is none."""
        if self._closed or self.pending + count > self._max_pending:
            return False
        self._reserved += count
        self._idle.clear()
        return True

    def release(self, count: int = 1) -> None:
        """Give back reserved room that will not be used."""
        self._reserved -= count
        self._set_idle()

    def submit(self, conversation: str, lanes: Lanes, job: Job,
               on_cancel: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` after the conversation's earlier jobs, within ``lanes``, using one
        reserved slot.

        ``on_cancel`` runs instead of (or after an interrupted) ``job`` when the queue
        is cancelled at shutdown.
        """
        self._reserved -= 1
        self._pending += 1
        state = self._conversations.setdefault(conversation, _Conversation())
        state.jobs.append((lanes, job, on_cancel))
        if state.worker is None:
            state.worker = asyncio.create_task(self._drain(conversation, state),
                                               name=f"conversation {conversation}")

    async def _drain(self, conversation: str, state: _Conversation) -> None:
        try:
            while state.jobs:
                lanes, job, _ = state.jobs[0]
                try:
                    async with contextlib.AsyncExitStack() as stack:
                        await stack.enter_async_context(self._global)
                        for lane in lanes:
                            await stack.enter_async_context(self._lane(lane))
                        await job()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("a reply job failed in %s", conversation)
                state.jobs.popleft()
                self._pending -= 1
        finally:
            if self._conversations.get(conversation) is state:
                del self._conversations[conversation]
            self._set_idle()

    def _lane(self, lane: tuple[str, int]) -> asyncio.Semaphore:
        # keyed by name and size: a changed limit (persona reload) gets a fresh semaphore
        semaphore = self._lanes.get(lane)
        if semaphore is None:
            semaphore = self._lanes[lane] = asyncio.Semaphore(lane[1])
        return semaphore

    def _set_idle(self) -> None:
        if self._pending == 0 and self._reserved == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Until no job is waiting or running."""
        await self._idle.wait()

    def close(self) -> None:
        """Refuse new work from now on."""
        self._closed = True

    async def finish(self, deadline_s: float) -> int:
        """Let running and waiting jobs finish for up to ``deadline_s``, then cancel the
        rest, running each unfinished job's ``on_cancel``. Returns how many were cancelled."""
        self.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), deadline_s)
        unfinished = [(state, list(state.jobs)) for state in self._conversations.values()]
        workers = [state.worker for state, _ in unfinished if state.worker is not None]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        cancelled = 0
        for _state, jobs in unfinished:
            for _lanes, _job, on_cancel in jobs:
                cancelled += 1
                self._pending -= 1
                try:
                    await on_cancel()
                except Exception:
                    log.exception("recording an abandoned reply failed")
        self._conversations.clear()
        self._set_idle()
        return cancelled
