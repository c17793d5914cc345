"""Pointing a real disnake client at the emulator, with the test-speed settings."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
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


IdentifyWait = Callable[[int | None], float]
"""Seconds until the emulator takes an IDENTIFY of a shard (None: unsharded), as
:meth:`DiscordEmulator.identify_wait <tests.fakes.discord.emulator.DiscordEmulator.identify_wait>`."""


class IdentifyGate:
    """A client's ``before_identify_hook`` for the emulator.

    disnake sleeps 5 s before every IDENTIFY but the first, which an emulator needs not
    make a test wait. But the emulator takes one IDENTIFY per bucket per 5 s, as Discord
    does: a bot restarted less than 5 s after it last identified is answered op 9, and
    without a pause it would reconnect and be refused as fast as it can, a thousand
    times a window (CPU the test itself then lacks). With ``identify_wait``, the client
    waits for its bucket instead, as the product's coordinated shards do; ``held_s`` is
    how long it was held back, which is not the client being slow."""

    def __init__(self, identify_wait: IdentifyWait | None = None) -> None:
        self._identify_wait = identify_wait
        self.held_s = 0.0

    async def __call__(self, shard_id: int | None, *, initial: bool = False) -> None:
        if self._identify_wait is None:
            return
        while (wait := self._identify_wait(shard_id)) > 0:
            self.held_s += wait  # counted before the sleep: a deadline sees it at once
            await asyncio.sleep(wait)


def skip_identify_delay(client: disnake.Client, identify_wait: IdentifyWait | None = None
                        ) -> IdentifyGate:
    """No 5 s pause before a re-IDENTIFY; with ``identify_wait``, the wait for the
    emulator's identify window instead (see :class:`IdentifyGate`)."""
    gate = IdentifyGate(identify_wait)
    client.before_identify_hook = gate  # type: ignore[method-assign]
    return gate


@contextlib.asynccontextmanager
async def running_client(
    client: disnake.Client, token: str, *, ready_timeout: float = 5.0,
    identify_wait: IdentifyWait | None = None,
) -> AsyncIterator[asyncio.Task[None]]:
    """Start ``client`` (already pointed at the emulator), wait for on_ready, close after.

    Yields the task running ``client.start``; if it ends early (LoginFailure,
    PrivilegedIntentsRequired...) its exception is raised here instead of a timeout.
    ``ready_timeout`` is the client's own time: with ``identify_wait`` (the emulator's,
    for a bot started again within 5 s of its last IDENTIFY) the time it waits for its
    identify window comes on top.
    """
    gate = skip_identify_delay(client, identify_wait)
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.create_task(client.start(token))
    ready = asyncio.create_task(client.wait_until_ready())
    try:
        while True:
            deadline = started + ready_timeout + gate.held_s
            done, _ = await asyncio.wait({task, ready}, timeout=max(0.0, deadline - loop.time()),
                                         return_when="FIRST_COMPLETED")
            if done or loop.time() >= started + ready_timeout + gate.held_s:
                break
        if task in done:
            task.result()
            raise RuntimeError("the client stopped before it was ready")
        if ready not in done:
            raise TimeoutError(f"the client was not ready within {ready_timeout} s"
                               + (f" (after {gate.held_s:.1f} s waiting to identify)"
                                  if gate.held_s else ""))
        yield task
    finally:
        ready.cancel()
        await client.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, timeout=5.0)
