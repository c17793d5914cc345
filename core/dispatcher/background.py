"""Work the dispatcher starts and does not await at once (notices, typing hints,
recovered deliveries), kept so that shutdown can wait for it or cancel it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Background:
    """A set of tasks: started with :meth:`spawn`, finished with :meth:`wait` or :meth:`stop`."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run ``coroutine`` in the background."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def hint(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run an adapter hint (typing...) in the background; its failure is only logged."""
        self.spawn(_quietly(coroutine))

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self) -> None:
        """Until every task (including those they start) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self, timeout: float) -> int:  # noqa: ASYNC109
        """Let the tasks finish for up to ``timeout`` seconds, then cancel the rest;
        returns how many were cancelled."""
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(list(self._tasks), timeout=max(0.0, timeout))
        for task in pending:  # e.g. a recovered delivery still waiting for its adapter
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)


async def _quietly(coroutine: Coroutine[Any, Any, Any]) -> None:
    try:
        await coroutine
    except Exception:
        log.debug("an adapter hint failed", exc_info=True)
