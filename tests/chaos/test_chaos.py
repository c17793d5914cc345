"""The short chaos run: every message answered exactly once while everything fails."""

from __future__ import annotations

import asyncio
import time

from .harness import (
    TYPING_ROUTE,
    ChaosRig,
    fault_schedule,
    personae_db_check,
)


async def test_every_message_is_answered_exactly_once_through_gateway_rest_and_model_faults(
        rig: ChaosRig) -> None:
    await rig.bot.start()
    await rig.until_connected()
    started = time.monotonic()
    schedule = fault_schedule(rig, every_s=0.8)
    injected = await rig.drive_through(schedule, messages_each=8, most_each=20)
    await rig.settle(30)
    ended = time.monotonic()
    assert await rig.bot.stop() == 0

    verdict = rig.verdict()
    assert len(injected) == len(schedule)
    assert verdict.sent >= 320
    assert verdict.lost == [] and verdict.duplicated == [] and verdict.unattributed == []
    assert verdict.replied + verdict.noticed == verdict.sent
    assert verdict.pinged == []
    # the faults really happened: resumes (with replayed dispatches), 429s, 5xx, model faults
    emu = rig.emu
    assert emu.resume_count >= 5
    replayed = sum(len(c.events) for c in emu.gateway_connections)
    assert replayed > len({seq for c in emu.gateway_connections for seq, _ in c.events})
    statuses = [r.status for r in emu.requests]
    assert statuses.count(429) >= 8 and 502 in statuses
    assert rig.fake.pending_faults() == 0
    assert rig.bot.unhandled_errors() == []
    assert rig.connected_fraction(started, ended) > 0.95
    code, out = await personae_db_check(rig.config)
    assert code == 0, out


async def test_a_global_rate_limit_hit_by_a_typing_indicator_stalls_no_reply(
        rig: ChaosRig) -> None:
    """disnake pauses every request during a global 429 until the request that hit it
    wakes up; the typing indicator is cancelled when the reply arrives, and used to take
    that wake-up with it: the bot never sent anything again."""
    rig.fake.latency_s = 0.3
    await rig.bot.start()
    await rig.until_connected()
    rig.emu.rate_limit(TYPING_ROUTE, times=1, retry_after=1.0, is_global=True)
    first = await rig.say(rig.conversations[0])
    await asyncio.wait_for(first.answered.wait(), 10)
    later = [await rig.say(c) for c in rig.conversations[1:6]]
    await asyncio.wait_for(asyncio.gather(*(s.answered.wait() for s in later)), 10)
    assert await rig.bot.stop() == 0
    assert rig.emu.requests_to(TYPING_ROUTE)[0].status == 429
    assert rig.verdict().exactly_once
