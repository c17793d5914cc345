"""One unsharded process over a shared (PostgreSQL) log: the lease of the bot's one shard.

Without ``--shards`` a process holds every guild's gateway connection, so a second one
on the same log would receive every message too, and its start-up recovery would finish
the first one's replies in flight. It holds the lease of shard 0 of 1 instead, renewed
as a sharded process renews its own: a second unsharded process finds it held by a live
owner and is refused, naming that owner. A lease left by a process that died expires
within one lease time, so a restart right after a crash waits that long, not forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .leases import LEASE_TTL_S, RENEW_INTERVAL_S, CoordinationError, PostgresCoordinator

log = logging.getLogger(__name__)

SHARD = 0


class SoleLease:
    """Takes, keeps and lets go of the lease of an unsharded bot (module docstring)."""

    def __init__(self, coordinator: PostgresCoordinator, *, location: str,
                 interval_s: float = RENEW_INTERVAL_S, ttl_s: float = LEASE_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._coordinator = coordinator
        self._location = location
        self._interval_s = interval_s
        self._ttl_s = ttl_s
        self._clock = clock

    async def take(self) -> None:
        """Hold the lease, waiting out one left by a process that is gone; raises
        :class:`CoordinationError` (one sentence naming the owner) when a live process
        holds it."""
        deadline = self._clock() + self._ttl_s + self._interval_s
        told = False
        while True:
            if SHARD in await asyncio.to_thread(self._coordinator.claim, [SHARD]):
                return
            owner = await asyncio.to_thread(self._owner)
            if self._clock() >= deadline:
                raise CoordinationError(
                    f"{owner} already runs this bot on the event log {self._location}, "
                    "without shards (it keeps renewing its lease, so it is alive): a second "
                    "unsharded process would answer every message again. Stop it first, or "
                    "give each process its shards (--shards, docs/scale-out.md)")
            if not told:
                told = True
                log.warning("the event log is held by %s; waiting up to %.0f s in case it "
                            "is gone", owner, self._ttl_s + self._interval_s)
            await asyncio.sleep(self._interval_s)

    async def keep(self) -> str:
        """Renew the lease until it is lost to another process; returns why (one
        sentence). A log that cannot be reached is said once and waited out: nobody
        else can take the lease through it meanwhile, and once it answers the lapsed
        lease is taken again unless another process has it."""
        failing = False
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                held = await asyncio.to_thread(self._coordinator.renew)
                if SHARD not in held:
                    held = await asyncio.to_thread(self._coordinator.claim, [SHARD])
                if SHARD not in held:
                    owner = await asyncio.to_thread(self._owner)
                    return (f"{owner} took this bot's lease on the event log {self._location} "
                            "while this process could not renew it: stopping, so that "
                            "messages are not answered twice")
            except CoordinationError as exc:
                if not failing:
                    log.error("%s; the lease is renewed again once it answers", exc)
                failing = True
                continue
            if failing:
                failing = False
                log.info("the bot's lease is renewed again")

    async def release(self) -> None:
        """Let go of the lease (a process starting next need not wait for it)."""
        try:
            await asyncio.to_thread(self._coordinator.release, [SHARD])
        except CoordinationError as exc:
            log.warning("%s; the lease expires by itself within %.0f s", exc, self._ttl_s)

    def close(self) -> None:
        """Let go of the coordinator's connection (blocking)."""
        self._coordinator.close()

    def _owner(self) -> str:
        held = [lease for lease in self._coordinator.leases()
                if lease.shard_id == SHARD and lease.remaining_s > 0]
        return held[0].owner if held else "another process"
