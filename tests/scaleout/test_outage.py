"""End to end: a running ``personae run`` loses its PostgreSQL server for a while (a
restart, a network cut) and gets it back. A TCP proxy between the bot and the server
closes every connection and refuses new ones; the bot must stay up and responsive, say
once that the log is unreachable and once that it is back, and answer every message
sent meanwhile exactly once after the server returns."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from eventstore import open_log
from tests.eventstore import pgserver
from tests.fakes.discord import DiscordEmulator
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.tcp_proxy import TcpProxy

from .harness import Bot, free_port, guilds_on_every_shard, replies_to, start_bot, until, write_config

CUT_S = 6.0
"""Longer than a shard's lease (5 s): a sharded process lets go of its shards meanwhile."""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[DiscordEmulator, FakeOpenAI, TcpProxy,
                                                       Path, str]]:
    url = pgserver.new_schema_url()
    async with DiscordEmulator(max_concurrency=16) as emu, FakeOpenAI() as fake, \
            TcpProxy.before(url) as proxy:
        config = write_config(tmp_path, api_base_url=emu.api_base_url, model_url=fake.base_url,
                              database_url=proxy.route(url))
        yield emu, fake, proxy, config, url
    pgserver.drop_test_schemas()


def cpu_seconds(bot: Bot) -> float:
    """User + system CPU time of the bot's process so far."""
    fields = Path(f"/proc/{bot.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def probe(port: int) -> tuple[float, int, str]:
    """How long ``/healthz`` took (the event loop answering), and ``/readyz``."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        started = asyncio.get_running_loop().time()
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            await response.read()
        took = asyncio.get_running_loop().time() - started
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            return took, response.status, await response.text()


def delivered(url: str) -> int:
    log = open_log(url, create=False, read_only=True)
    try:
        return sum(1 for e in log.read_all() if e.type == "ReplyDelivered")
    finally:
        log.close()


@pytest.mark.parametrize("sharded", [False, True], ids=["unsharded", "sharded"])
async def test_a_postgresql_outage_loses_and_doubles_nothing_and_the_bot_stays_up(
        world, sharded: bool) -> None:
    emu, fake, proxy, config, url = world
    alice = emu.add_user("alice")
    (_, channel), = guilds_on_every_shard(emu, 1, alice).values()
    dm = emu.dm_channel(alice)
    port = free_port()
    args = ("--shards", "0-1", "--shard-count", "2") if sharded else ()
    bot = await start_bot(config, "bot", *args, "--metrics-port", str(port), token=emu.token)
    try:
        await until(lambda: emu.shard_connected(0) and emu.shard_connected(1) if sharded
                    else emu.hub.connected, 45, "connected", [bot])
        before = await emu.user_says(alice, channel, "before the cut", mentions=[emu.bot_user])
        await until(lambda: replies_to(emu, before), 20, "a reply before the cut", [bot])
        cpu_before = cpu_seconds(bot)

        await proxy.cut()
        cut_at = asyncio.get_running_loop().time()
        during = []
        for n in range(3):
            during.append(await emu.user_says(alice, channel, f"during the cut {n}",
                                              mentions=[emu.bot_user]))
            during.append(await emu.user_says(alice, dm, f"privately during the cut {n}"))
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        took, ready, reasons = await probe(port)
        await asyncio.sleep(max(0.0, CUT_S - (asyncio.get_running_loop().time() - cut_at)))
        cpu_during = cpu_seconds(bot) - cpu_before
        await proxy.restore()

        await until(lambda: all(replies_to(emu, m) for m in during), 45,
                    "every message of the cut answered", [bot])
        after = await emu.user_says(alice, channel, "after the cut", mentions=[emu.bot_user])
        await until(lambda: replies_to(emu, after), 20, "a reply after the cut", [bot])
        await asyncio.sleep(1.5)  # a second answer would come within this
        answers = [len(replies_to(emu, m)) for m in [before, *during, after]]
        alive = bot.process.returncode is None
        ready_after = (await probe(port))[1]
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{port}/metrics") as response:
            metrics = await response.text()
    finally:
        code = await bot.stop()
    output = bot.output()
    assert alive, output[-3000:]
    assert answers == [1] * len(answers), output[-3000:]
    assert code == 0, output[-3000:]
    assert "Traceback" not in output, output
    assert took < 1.0, took  # the loop answers HTTP during the outage
    assert cpu_during < 2.0, cpu_during  # no busy loop while the server is away
    assert ready == 503 and "event log" in reasons, reasons
    assert ready_after == 200
    assert output.count("the event log is unreachable") == 1, output
    assert output.count("the event log is reachable again") == 1, output
    assert delivered(url) == len(answers)
    # the metrics kept following the log through the outage
    assert f'personae_replies_delivered_total{{persona="ada"}} {float(len(answers))}' \
        in metrics, metrics
    assert len(fake.requests) == len(answers)
