"""``personae run`` with its event log on a real 2 MB filesystem that fills up: /readyz
says why nothing is answered, and once space is freed every message is answered once,
without a restart."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp

from tests.disks import fill, no_room, small_disk

from .harness import BotSettings, ChaosRig


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def readyz(port: int) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{port}/readyz") as response:
        return response.status, await response.text()


async def test_a_bot_whose_disk_fills_up_says_so_and_answers_everyone_once_space_returns(
        tmp_path: Path) -> None:
    port = free_port()
    with small_disk(tmp_path / "disk") as disk:
        settings = BotSettings(database=str(disk / "log.db"), metrics_port=port)
        async with ChaosRig.open(tmp_path / "bot", conversations=4, settings=settings) as rig:
            await rig.bot.start()
            await rig.until_connected()
            first = [await rig.say(c) for c in rig.conversations]
            await asyncio.wait_for(asyncio.gather(*(s.answered.wait() for s in first)), 20)
            filler = fill(disk)
            assert no_room(disk)
            waiting = [await rig.say(c) for c in rig.conversations for _ in range(2)]
            for _ in range(100):
                status, reasons = await readyz(port)
                if status == 503 and "wait for the event log" in reasons:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            assert not any(s.answers for s in waiting)  # held back, not answered, not lost
            filler.unlink()
            await asyncio.wait_for(asyncio.gather(*(s.answered.wait() for s in waiting)), 40)
            await rig.settle(5)
            ready_after = await readyz(port)
            assert await rig.bot.stop() == 0
            verdict = rig.verdict()

    assert status == 503 and "is full" in reasons, reasons
    assert ready_after == (200, "ready\n")
    assert verdict.sent == 12 and verdict.replied == 12
    assert verdict.lost == [] and verdict.duplicated == [] and verdict.unattributed == []
    assert "Traceback" not in rig.bot.logs()
