"""REST faults: 429 with Via (per route and global) waited out, 429 without Via, 5xx."""

from __future__ import annotations

import asyncio
import time

import disnake
import pytest

from tests.fakes.discord import DiscordEmulator, running_client
from tests.fakes.discord.fixtures import Server

from .conftest import make_bot

SEND = "POST /channels/{channel_id}/messages"
GET_USER = "GET /users/{user_id}"


async def test_route_429_with_via_is_waited_out_and_retried(emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        emu.rate_limit(SEND, retry_after=0.3)
        started = time.monotonic()
        await channel.send("patient")
        waited = time.monotonic() - started
    limited, retried = emu.requests_to(SEND)
    assert (limited.status, retried.status) == (429, 200)
    assert retried.at - limited.at >= 0.3 and waited >= 0.3
    assert [m.content for m in emu.messages_in(server.general)] == ["patient"]


async def test_global_429_pauses_other_routes_too(emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        emu.rate_limit(SEND, retry_after=0.4, is_global=True)
        send = asyncio.create_task(channel.send("first"))
        await emu.wait_until(lambda: emu.requests_to(SEND))
        await asyncio.sleep(0.1)  # let disnake read the 429 and close its global gate
        await bot.fetch_user(server.bob.id)
        await send
    [limited, _] = emu.requests_to(SEND)
    [other] = emu.requests_to(GET_USER)
    assert limited.status == 429
    assert other.at - limited.at >= 0.35, "the other route did not wait for the global limit"


async def test_429_without_via_is_raised_at_once(emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        emu.rate_limit(SEND, retry_after=5.0, via=False)
        with pytest.raises(disnake.HTTPException) as banned:
            await channel.send("blocked")
    assert banned.value.status == 429
    assert [r.status for r in emu.requests_to(SEND)] == [429]


async def test_server_error_is_retried(emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        emu.server_error(SEND, times=1, status=502)
        await channel.send("eventually")
    assert [r.status for r in emu.requests_to(SEND)] == [502, 200]
    assert len(emu.messages_in(server.general)) == 1


async def test_faults_only_hit_their_route(emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    async with running_client(bot, emu.token):
        emu.rate_limit(SEND, times=2, retry_after=0.05)
        await bot.fetch_user(server.bob.id)
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        await channel.send("third time lucky")
    assert [r.status for r in emu.requests_to(GET_USER)] == [200]
    assert [r.status for r in emu.requests_to(SEND)] == [429, 429, 200]
