"""The chaos run of the single-process suite, over PostgreSQL with two processes (one
shard each): every message answered exactly once while the gateway, REST and the model
fail."""

from __future__ import annotations

import time
from pathlib import Path

from tests.chaos.harness import BotSettings, ChaosRig, fault_schedule
from tests.eventstore import pgserver


async def test_two_processes_over_postgresql_answer_every_message_exactly_once(
        tmp_path: Path) -> None:
    url = pgserver.new_schema_url()
    try:
        async with ChaosRig.open(tmp_path, conversations=40, processes=2,
                                 settings=BotSettings(database_url=url)) as rig:
            for bot in rig.bots:
                await bot.start()
            await rig.until_connected(timeout_s=60)
            schedule = fault_schedule(rig, every_s=0.8)
            started = time.monotonic()
            injected = await rig.drive_through(schedule, messages_each=6, most_each=16)
            await rig.settle(30)
            ended = time.monotonic()
            codes = [await bot.stop() for bot in rig.bots]
            verdict = rig.verdict()
            errors = [line for bot in rig.bots for line in bot.unhandled_errors()]
            shards = {c.shard for c in rig.emu.gateway_connections if c.identified_at}
            connected = rig.connected_fraction(started, ended)
    finally:
        pgserver.drop_test_schemas()
    assert codes == [0, 0]
    assert len(injected) == len(schedule)
    assert verdict.sent >= 240
    assert verdict.lost == [] and verdict.duplicated == [] and verdict.unattributed == []
    assert verdict.replied + verdict.noticed == verdict.sent
    assert errors == []
    assert shards == {(0, 2), (1, 2)}
    assert connected > 0.9
