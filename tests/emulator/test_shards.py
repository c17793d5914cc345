"""Shards: IDENTIFY with ``[shard_id, shard_count]``, dispatches routed as Discord routes
them, ``/gateway/bot``'s session start limit, and IDENTIFYs refused past max_concurrency."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import disnake
from disnake.ext import commands

from tests.fakes.discord import DiscordEmulator, disnake_pointed_at, fast_client_options, running_client
from tests.fakes.discord.gateway import IDENTIFY_WINDOW_S

from .conftest import eventually


def intents() -> disnake.Intents:
    found = disnake.Intents.default()
    found.message_content = True
    return found


async def identify(session: aiohttp.ClientSession, emu: DiscordEmulator,
                   shard: list[int] | None) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    """A raw gateway socket: HELLO, IDENTIFY, and the first answer (READY, op 9 or a close)."""
    ws = await session.ws_connect(emu.gateway_url)
    hello = json.loads((await ws.receive()).data)
    assert hello["op"] == 10
    payload: dict[str, Any] = {"token": emu.token, "intents": int(intents().value),
                               "properties": {}}
    if shard is not None:
        payload["shard"] = shard
    await ws.send_json({"op": 2, "d": payload})
    message = await ws.receive()
    if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
        return ws, {"close": ws.close_code}
    return ws, json.loads(message.data)


async def test_each_guild_on_its_shard_and_dms_on_shard_zero() -> None:
    async with DiscordEmulator(max_concurrency=4) as emu:
        guilds = []
        while {(g.id >> 22) % 3 for g in guilds} != {0, 1, 2}:
            guilds.append(emu.add_guild(f"guild {len(guilds)}"))
        alice = emu.add_user("alice")
        channels = []
        for guild in guilds:
            emu.add_member(guild, alice)
            channels.append(emu.add_text_channel(guild, "general"))
        with disnake_pointed_at(emu.api_base_url):
            bot = commands.AutoShardedInteractionBot(intents=intents(), shard_count=3,
                                                     **fast_client_options())
            async with running_client(bot, emu.token):
                said = [await emu.user_says(alice, channel, "hi") for channel in channels]
                dm = await emu.user_says(alice, emu.dm_channel(alice), "psst")
                await emu.hub.flush()
        connections = {c.shard: c for c in emu.gateway_connections}
        assert set(connections) == {(0, 3), (1, 3), (2, 3)}
        assert not emu.refused_identifies

    def got(shard: tuple[int, int]) -> int:
        return sum(1 for _, event in connections[shard].events if event == "MESSAGE_CREATE")

    expected = {(s, 3): sum(1 for m in said if (m.guild_id >> 22) % 3 == s) + (s == 0)
                for s in range(3)}
    assert {shard: got(shard) for shard in connections} == expected
    assert dm.guild_id is None
    assert all(c.events[0][1] == "READY" for c in connections.values())
    ready_guilds = {
        c.shard: sum(1 for _, event in c.events if event == "GUILD_CREATE")
        for c in connections.values()}
    assert ready_guilds == {(s, 3): sum(1 for g in guilds if (g.id >> 22) % 3 == s) for s in range(3)}


async def test_gateway_bot_reports_concurrency_and_counts_session_starts() -> None:
    async with DiscordEmulator(max_concurrency=16, recommended_shards=4) as emu, \
            aiohttp.ClientSession(headers={"Authorization": f"Bot {emu.token}"}) as http:
        async with http.get(f"{emu.api_base_url}/gateway/bot") as response:
            before = await response.json()
        ws, ready = await identify(http, emu, [0, 4])
        assert ready["t"] == "READY" and ready["d"]["shard"] == [0, 4]
        async with http.get(f"{emu.api_base_url}/gateway/bot") as response:
            after = await response.json()
        await ws.close()
    assert before["shards"] == 4
    assert before["session_start_limit"]["max_concurrency"] == 16
    assert before["session_start_limit"]["total"] == 1000
    assert after["session_start_limit"]["remaining"] == before["session_start_limit"][
        "remaining"] - 1


async def test_second_identify_in_a_bucket_within_five_seconds_is_invalid_session() -> None:
    async with DiscordEmulator(max_concurrency=2) as emu, aiohttp.ClientSession() as http:
        started = time.monotonic()
        first, ready0 = await identify(http, emu, [0, 4])
        second, ready1 = await identify(http, emu, [1, 4])    # bucket 1: its own window
        third, refused = await identify(http, emu, [2, 4])    # bucket 0 again, too soon
        fourth, refused_too = await identify(http, emu, [0, 4])
        elapsed = time.monotonic() - started
        for ws in (first, second, third, fourth):
            await ws.close()
        records = emu.refused_identifies
    assert elapsed < IDENTIFY_WINDOW_S
    assert ready0["t"] == ready1["t"] == "READY"
    assert refused == {"op": 9, "d": False, "s": None, "t": None}
    assert refused_too["op"] == 9
    assert [(r.shard, r.refused) for r in records] == [((2, 4), "rate_limited"),
                                                       ((0, 4), "rate_limited")]
    assert emu.session_starts_remaining == 998


async def test_a_bucket_identifies_again_after_five_seconds() -> None:
    async with DiscordEmulator(max_concurrency=1) as emu, aiohttp.ClientSession() as http:
        first, ready = await identify(http, emu, [0, 2])
        at = time.monotonic()
        await eventually(lambda: time.monotonic() - at >= IDENTIFY_WINDOW_S, timeout=7)
        second, again = await identify(http, emu, [1, 2])
        for ws in (first, second):
            await ws.close()
    assert ready["t"] == again["t"] == "READY"
    assert not emu.refused_identifies


async def test_a_shard_outside_the_count_is_closed_4010() -> None:
    async with DiscordEmulator() as emu, aiohttp.ClientSession() as http:
        ws, answer = await identify(http, emu, [2, 2])
        await ws.close()
        assert answer == {"close": 4010}
        assert [r.refused for r in emu.refused_identifies] == ["invalid_shard"]


async def test_a_bot_started_again_within_the_window_waits_for_it_then_gets_ready(
        emu: DiscordEmulator) -> None:
    guild = emu.add_guild("g")
    with disnake_pointed_at(emu.api_base_url):
        first = commands.InteractionBot(intents=intents(), **fast_client_options())
        async with running_client(first, emu.token, identify_wait=emu.identify_wait):
            pass  # identified and closed at once: nearly all of the window is left
        assert emu.identify_wait() > 2.0
        again = commands.InteractionBot(intents=intents(), **fast_client_options())
        # the bound is the client's own time, not the window it was held back by
        async with running_client(again, emu.token, ready_timeout=2.0,
                                  identify_wait=emu.identify_wait):
            assert again.get_guild(guild.id) is not None
    accepted = [c.identified_at for c in emu.gateway_connections]
    assert None not in accepted and len(accepted) == 2
    assert accepted[1] - accepted[0] >= IDENTIFY_WINDOW_S  # type: ignore[operator]
    assert emu.refused_identifies == [], "it waited for its bucket instead of being refused"
