"""Payloads differ by source, as on Discord: ``member`` only in live guild dispatches,
``user`` only in DM interactions, the ``nonce`` only in a create's answer and dispatch;
``enforce_nonce`` makes a repeated create return the first message; a held request
lets a test put a crash exactly in the middle of a post."""

from __future__ import annotations

import asyncio

import disnake
import pytest
from disnake.http import Route

from tests.fakes.discord import DiscordEmulator, running_client
from tests.fakes.discord.fixtures import Server

from .conftest import collect, make_bot

SEND = "POST /channels/{channel_id}/messages"


async def test_only_live_guild_dispatches_carry_the_members_roles(
        emu: DiscordEmulator, server: Server) -> None:
    banned = emu.add_role(server.guild, "banned")
    carol = emu.add_user("carol")
    emu.add_member(server.guild, carol, roles=[banned])
    bot = make_bot()
    live = collect(bot, "on_message")
    async with running_client(bot, emu.token):
        said = await emu.user_says(carol, server.general, "hello")
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        history = [m async for m in channel.history(limit=5)]
        raw_history = await bot.http.logs_from(server.general.id, 5)
        raw_one = await bot.http.get_message(server.general.id, said.id)
        member = await bot.http.get_member(server.guild.id, carol.id)

    await asyncio.sleep(0)
    (dispatched,) = [m for m in live if isinstance(m, disnake.Message) and m.id == said.id]
    assert isinstance(dispatched.author, disnake.Member)
    assert [r.id for r in dispatched.author.roles if r.id != server.guild.id] == [banned.id]
    assert all("member" not in m for m in raw_history) and "member" not in raw_one
    assert not isinstance(history[0].author, disnake.Member)  # no roles to read there
    assert member["roles"] == [str(banned.id)] and member["user"]["id"] == str(carol.id)


async def test_a_slash_command_from_a_dm_carries_a_user_and_no_roles(
        emu: DiscordEmulator, server: Server) -> None:
    from tests.fakes.discord import payloads

    dm = emu.dm_channel(server.alice)
    bot = make_bot()

    @bot.slash_command(name="ping", description="ping")
    async def ping(inter: disnake.ApplicationCommandInteraction) -> None:
        await inter.response.send_message("pong")

    async with running_client(bot, emu.token):
        await emu.wait_for_command("ping")
        interaction = await emu.user_invokes("ping", {}, dm, server.alice)
        in_guild = await emu.user_invokes("ping", {}, server.general, server.alice)
    data = payloads.interaction(emu.world, interaction, emu.application_id)
    assert "member" not in data and data["user"]["id"] == str(server.alice.id)
    guild_data = payloads.interaction(emu.world, in_guild, emu.application_id)
    assert "user" not in guild_data and "roles" in guild_data["member"]


async def test_enforce_nonce_returns_the_first_message_instead_of_posting_again(
        emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    async with running_client(bot, emu.token):
        route = Route("POST", "/channels/{channel_id}/messages", channel_id=server.general.id)
        first = await bot.http.request(route, json={"content": "once", "nonce": "n-1",
                                                    "enforce_nonce": True})
        again = await bot.http.request(route, json={"content": "once", "nonce": "n-1",
                                                    "enforce_nonce": True})
        loose = await bot.http.request(route, json={"content": "once", "nonce": "n-1"})
        with pytest.raises(disnake.HTTPException):
            await bot.http.request(route, json={"content": "x", "nonce": "n" * 26})
        emu.nonce_window_s = 0.0
        later = await bot.http.request(route, json={"content": "once", "nonce": "n-1",
                                                    "enforce_nonce": True})
        fetched = await bot.http.get_message(server.general.id, int(first["id"]))

    assert again["id"] == first["id"] and first["nonce"] == "n-1"
    assert loose["id"] != first["id"] and later["id"] not in (first["id"], loose["id"])
    assert "nonce" not in fetched
    assert [m.content for m in emu.messages_in(server.general)] == ["once"] * 3


async def test_a_stalled_request_is_held_before_or_after_its_effect(
        emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        before = emu.stall(SEND)
        sending = asyncio.create_task(channel.send("never"))
        await asyncio.wait_for(before.arrived.wait(), 5)
        assert emu.messages_in(server.general) == []
        before.release(effect=False)
        with pytest.raises(disnake.HTTPException):
            await sending
        after = emu.stall(SEND, after_effect=True)
        sending = asyncio.create_task(channel.send("posted"))
        await asyncio.wait_for(after.arrived.wait(), 5)
        assert [m.content for m in emu.messages_in(server.general)] == ["posted"]
        assert not sending.done()
        after.release()
        assert (await sending).content == "posted"
