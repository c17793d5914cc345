"""kill -9 during load, and messages sent while the bot is down: still exactly once."""

from __future__ import annotations

import asyncio
import random

from .harness import ChaosRig, personae_db_check


async def test_kill_9_at_random_moments_during_load_loses_and_doubles_nothing(
        rig: ChaosRig) -> None:
    draw = random.Random(7)
    rig.fake.latency_s = 0.2
    await rig.bot.start()
    await rig.until_connected()
    load = asyncio.create_task(rig.drive(messages_each=6, answer_timeout_s=30, think_s=0.3))
    for _ in range(3):
        await asyncio.sleep(draw.uniform(0.5, 2.0))
        await rig.bot.kill()
        await asyncio.sleep(draw.uniform(0.0, 1.0))  # people keep talking meanwhile
        await rig.bot.start()
        await rig.until_connected()
    await load
    await rig.settle(30)
    assert await rig.bot.stop() == 0

    verdict = rig.verdict()
    assert rig.bot.exit_codes[:3] == [-9, -9, -9]
    assert verdict.sent == 240
    # late answers are fine (the catch-up window is 10 minutes); lost or doubled are not
    assert verdict.lost == [] and verdict.duplicated == [] and verdict.unattributed == []
    assert verdict.replied + verdict.noticed == verdict.sent
    assert rig.bot.unhandled_errors() == []
    code, out = await personae_db_check(rig.config)
    assert code == 0, out


async def test_messages_sent_while_the_bot_is_stopped_are_answered_once_after_it_starts(
        rig: ChaosRig) -> None:
    talkers = rig.conversations[:10]
    await rig.bot.start()
    await rig.until_connected()
    before = [await rig.say(c) for c in talkers]
    await asyncio.wait_for(asyncio.gather(*(s.answered.wait() for s in before)), 15)
    assert await rig.bot.stop() == 0

    while_down = [await rig.say(c) for c in talkers for _ in range(2)]
    await asyncio.sleep(0.5)
    assert not any(s.answers for s in while_down)
    await rig.bot.start()
    await rig.until_connected()
    await asyncio.wait_for(asyncio.gather(*(s.answered.wait() for s in while_down)), 20)
    await rig.settle(5)
    assert await rig.bot.stop() == 0

    verdict = rig.verdict()
    assert verdict.sent == 30 and verdict.replied == 30
    assert verdict.lost == [] and verdict.duplicated == [] and verdict.unattributed == []
    assert rig.bot.unhandled_errors() == []
