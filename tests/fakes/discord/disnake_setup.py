"""Pointing a real disnake client at the emulator, with the test-speed settings."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import disnake
import disnake.http

GUILD_READY_TIMEOUT = 0.05
"""disnake waits this long after the last GUILD_CREATE before on_ready (default 2 s)."""


@contextlib.contextmanager
def disnake_pointed_at(api_base_url: str) -> Iterator[None]:
    """Route every disnake REST call (webhooks and interactions too) to ``api_base_url``.

    ``Route.BASE`` is a class attribute, so this is process-wide while the block runs;
    the previous value is restored after.
    """
    previous = disnake.http.Route.BASE
    disnake.http.Route.BASE = api_base_url
    try:
        yield
    finally:
        disnake.http.Route.BASE = previous


def fast_client_options() -> dict[str, Any]:
    """Constructor keyword arguments that keep a test bot from idling."""
    return {"guild_ready_timeout": GUILD_READY_TIMEOUT}


def skip_identify_delay(client: disnake.Client) -> None:
    """disnake sleeps 5 s before every re-IDENTIFY; an emulator needs no such pause."""

    async def no_delay(shard_id: int | None, *, initial: bool = False) -> None:
        return None

    client.before_identify_hook = no_delay  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def running_client(
    client: disnake.Client, token: str, *, ready_timeout: float = 5.0
) -> AsyncIterator[asyncio.Task[None]]:
    """Start ``client`` (already pointed at the emulator), wait for on_ready, close after.

    Yields the task running ``client.start``; if it ends early (LoginFailure,
    PrivilegedIntentsRequired...) its exception is raised here instead of a timeout.
    """
    skip_identify_delay(client)
    task = asyncio.create_task(client.start(token))
    ready = asyncio.create_task(client.wait_until_ready())
    try:
        done, _ = await asyncio.wait({task, ready}, timeout=ready_timeout, return_when="FIRST_COMPLETED")
        if task in done:
            task.result()
            raise RuntimeError("the client stopped before it was ready")
        if ready not in done:
            raise TimeoutError(f"the client was not ready within {ready_timeout} s")
        yield task
    finally:
        ready.cancel()
        await client.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, timeout=5.0)
