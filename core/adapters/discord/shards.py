"""Running some of a bot's Discord shards in this process, as coordination decides.

:class:`ShardedBot` is disnake's sharded bot made to run the shards it is handed, when
it is handed them (disnake's own launches a fixed list once). :class:`ShardKeeper`
drives it: it claims the shards' leases (``--shards 0-3``: those; ``--shards auto``: any
no live process runs), renews them every second, launches a shard once its lease is
held, closes one whose lease was lost or asked back, and gates each IDENTIFY through
the coordinator (at most ``max_concurrency`` per 5 s across every process, in buckets
``shard_id % max_concurrency``). The coordinator is in :mod:`core.coordination`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import disnake
from disnake.ext import commands

from ...coordination import CoordinationError, Coordinator, bucket_of, describe_shards, shard_of
from ...coordination.leases import IDENTIFY_INTERVAL_S, LEASE_TTL_S, RENEW_INTERVAL_S

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardSetup:
    """Which shards this process runs (``"auto"``: a standby), out of how many, and who
    it agrees that with."""

    shards: tuple[int, ...] | Literal["auto"]
    shard_count: int
    coordinator: Coordinator
    interval_s: float = RENEW_INTERVAL_S
    ttl_s: float = LEASE_TTL_S

    @property
    def label(self) -> str:
        """``0-3/8`` or ``auto/8``, for logs and metrics."""
        if self.shards == "auto":
            return f"auto/{self.shard_count}"
        return f"{describe_shards(self.shards)}/{self.shard_count}"


class ShardedBot(commands.AutoShardedInteractionBot):
    """disnake's sharded bot running the shards handed to :meth:`add_shard` (and, without
    its owner prefetch, as the unsharded ``_Bot``: personae's admins come from config)."""

    def __init__(self, *, shard_count: int, **options: Any) -> None:
        super().__init__(shard_ids=[], shard_count=shard_count, **options)
        self.first_shards: Callable[[], Awaitable[list[int]]] | None = None
        """Awaited once the gateway is known: the shards to launch first."""
        self._gateway_url: str | None = None
        self._gateway_known = asyncio.Event()
        self.tenures: dict[int, int] = {}
        """How many times each shard was taken (launched after its lease was claimed):
        a READY of a new tenure is a shard this process did not run a moment ago."""

    async def _fill_owners(self) -> None:
        return None

    @property
    def running_shards(self) -> list[int]:
        """The shards this process runs now (launched, or being launched)."""
        return list(self.shard_ids or ())

    def owns_guild(self, guild_id: int | None) -> bool:
        """Whether Discord sends ``guild_id``'s events (None: DMs) to a shard of ours."""
        assert self.shard_count is not None
        return shard_of(guild_id, self.shard_count) in (self.shard_ids or ())

    async def launch_shards(self, *, ignore_session_start_limit: bool = False) -> None:
        await self._read_gateway(initial=True)
        self._connection.shard_count = self.shard_count
        # the same list object: shards added later are seen by disnake's state
        assert isinstance(self.shard_ids, list)
        self._connection.shard_ids = self.shard_ids
        self._gateway_known.set()
        first = list(await self.first_shards()) if self.first_shards else []
        self._check_session_starts(len(first))
        for shard_id in first:
            await self._launch(shard_id, initial=shard_id == first[0])
        self._connection.shards_launched.set()

    async def add_shard(self, shard_id: int) -> bool:
        """Connect ``shard_id`` (its lease is held); False when Discord's daily session
        starts are used up (the shard is then left to another process or tomorrow)."""
        await self._gateway_known.wait()
        await self._read_gateway(initial=False)
        try:
            self._check_session_starts(1)
        except disnake.SessionStartLimitReached as exc:
            log.error("shard %s not started: %s", shard_id, exc)
            return False
        await self._launch(shard_id, initial=False)
        return True

    async def remove_shard(self, shard_id: int) -> None:
        """Disconnect ``shard_id``: its events now go to whoever takes its lease."""
        if shard_id in (self.shard_ids or ()):
            assert isinstance(self.shard_ids, list)
            self.shard_ids.remove(shard_id)
        shards: dict[int, Any] = self._AutoShardedClient__shards  # type: ignore[attr-defined]
        shard = shards.pop(shard_id, None)
        if shard is not None:
            await shard.disconnect()  # closes it and tells on_shard_disconnect

    async def _launch(self, shard_id: int, *, initial: bool) -> None:
        assert isinstance(self.shard_ids, list) and self._gateway_url is not None
        if shard_id not in self.shard_ids:
            self.shard_ids.append(shard_id)
            self.shard_ids.sort()
        self.tenures[shard_id] = self.tenures.get(shard_id, 0) + 1
        await self.launch_shard(self._gateway_url, shard_id, initial=initial)
        if shard_id not in self.shard_ids:  # let go of while it was connecting
            await self.remove_shard(shard_id)

    async def _read_gateway(self, *, initial: bool) -> None:
        _, gateway, limit = await self.http.get_bot_gateway(
            encoding=self.gateway_params.encoding, zlib=self.gateway_params.zlib)
        self._gateway_url = gateway
        self.session_start_limit = disnake.SessionStartLimit(limit)
        starts = self.session_start_limit
        log.log(logging.INFO if initial else logging.DEBUG,
                "Discord session starts: %d of %d left (reset in %.1f h); up to %d "
                "shard(s) identify per 5 s", starts.remaining, starts.total,
                starts.reset_after / 3_600_000, starts.max_concurrency)

    def _check_session_starts(self, wanted: int) -> None:
        starts = self.session_start_limit
        if starts is not None and wanted and starts.remaining < wanted:
            raise disnake.SessionStartLimitReached(starts, requested=wanted)


class ShardKeeper:
    """Claims, renews, launches and lets go of this process's shards (module docstring)."""

    def __init__(self, bot: ShardedBot, setup: ShardSetup, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._bot = bot
        self._setup = setup
        self._coordinator = setup.coordinator
        self._clock = clock
        self._wanted = None if setup.shards == "auto" else list(setup.shards)
        self._last_renewed = clock()
        self._launching: asyncio.Queue[int] = asyncio.Queue()
        self._pending: set[int] = set()
        bot.first_shards = self._first_shards
        if getattr(self._coordinator, "uses_identify_gate", False):
            bot.before_identify_hook = self._before_identify  # type: ignore[method-assign]

    @property
    def held(self) -> list[int]:
        """The shards this process runs now."""
        return self._bot.running_shards

    async def run(self, token: str) -> None:
        """Log in, run the shards as their leases come and go, until the client stops."""
        await self._bot.login(token)
        tasks = [asyncio.create_task(self._bot.connect(), name="discord-shards"),
                 asyncio.create_task(self._keep(), name="shard-leases"),
                 asyncio.create_task(self._launcher(), name="shard-launcher")]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def release(self) -> None:
        """Let go of every lease (the client is closed): another process may take the
        shards at once instead of waiting for the leases to expire."""
        held = self.held
        with contextlib.suppress(CoordinationError):
            await asyncio.to_thread(self._coordinator.release, None)
            log.info("let go of the leases of shard(s) %s", describe_shards(held))

    async def _first_shards(self) -> list[int]:
        if self._wanted is None:
            # a standby starting beside the others leaves them a lease time to claim
            # theirs first, so a whole fleet starting at once needs no handovers
            return []
        got = await asyncio.to_thread(self._coordinator.claim, self._wanted)
        self._last_renewed = self._clock()
        missing = [s for s in self._wanted if s not in got]
        if missing:
            log.warning("shard(s) %s are run by another process; waiting for their leases",
                        describe_shards(missing))
        log.info("running shard(s) %s of %d", describe_shards(got),
                 self._setup.shard_count)
        return got

    async def _keep(self) -> None:
        started = self._clock()
        failing = False
        while True:
            await asyncio.sleep(self._setup.interval_s)
            try:
                await self._step(claim=self._wanted is not None
                                 or self._clock() - started >= self._setup.ttl_s)
            except CoordinationError as exc:
                if not failing:  # once, not every second of an outage
                    log.error("%s; the leases are renewed again once it answers", exc)
                failing = True
                if self._clock() - self._last_renewed > self._setup.ttl_s and self.held:
                    # the leases may be someone else's by now: stop rather than double
                    log.error("leases not renewed for %.0f s: disconnecting shard(s) %s",
                              self._setup.ttl_s, describe_shards(self.held))
                    for shard_id in self.held:
                        await self._bot.remove_shard(shard_id)
                continue
            if failing:
                failing = False
                log.info("shard leases renewed again")

    async def _step(self, *, claim: bool) -> None:
        coordinator = self._coordinator
        held = set(await asyncio.to_thread(coordinator.renew))
        self._last_renewed = self._clock()
        for shard_id in [s for s in self.held if s not in held]:
            log.warning("lost the lease of shard %s to another process: disconnecting it",
                        shard_id)
            await self._bot.remove_shard(shard_id)
        asked = await asyncio.to_thread(coordinator.handback)
        for shard_id in asked:
            log.info("handing shard %s back to the process configured for it", shard_id)
            await self._bot.remove_shard(shard_id)
            held.discard(shard_id)
        if asked:
            await asyncio.to_thread(coordinator.release, asked)
        if claim:
            held = set(await asyncio.to_thread(coordinator.claim, self._wanted))
        for shard_id in sorted(held):
            if shard_id not in self.held and shard_id not in self._pending:
                log.info("took the lease of shard %s: connecting it", shard_id)
                self._pending.add(shard_id)
                self._launching.put_nowait(shard_id)

    async def _launcher(self) -> None:
        """Shards connect one after another (each IDENTIFY waits for its bucket), apart
        from the lease loop, which must keep renewing meanwhile."""
        while True:
            shard_id = await self._launching.get()
            try:
                if not await self._bot.add_shard(shard_id):
                    await asyncio.to_thread(self._coordinator.release, [shard_id])
            finally:
                self._pending.discard(shard_id)

    async def _before_identify(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Wait for the shard's IDENTIFY bucket, across every process of the bot."""
        assert shard_id is not None
        limit = self._bot.session_start_limit
        concurrency = limit.max_concurrency if limit is not None else 1
        waited = 0.0
        while True:
            try:
                wait = await asyncio.to_thread(self._coordinator.identify_wait, shard_id,
                                               concurrency)
            except CoordinationError as exc:
                log.warning("%s; shard %s identifies after %.1f s instead", exc, shard_id,
                            IDENTIFY_INTERVAL_S)
                await asyncio.sleep(IDENTIFY_INTERVAL_S)
                return
            if wait <= 0:
                break
            waited += wait
            await asyncio.sleep(wait)
        log.info("shard %s identifies (bucket %d of %d%s)", shard_id,
                 bucket_of(shard_id, concurrency), concurrency,
                 f", after waiting {waited:.1f} s" if waited else "")

