"""Login, READY, GUILD_CREATE and message delivery with the real disnake client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import disnake
import pytest
from disnake.ext import commands

from tests.fakes.discord import DiscordEmulator, disnake_pointed_at, fast_client_options, running_client
from tests.fakes.discord.fixtures import Server

from .conftest import collect, eventually, make_bot


async def test_bot_logs_in_sees_guild_and_receives_a_user_message(
    emu: DiscordEmulator, server: Server
) -> None:
    bot = make_bot()
    seen = collect(bot, "on_message")

    async with running_client(bot, emu.token):
        assert bot.user.id == emu.bot_user.id
        guild = bot.get_guild(server.guild.id)
        assert guild is not None and guild.name == "Test Guild"
        assert {c.name for c in guild.text_channels} == {"general"}
        assert guild.member_count == 4
        assert guild.get_member(server.alice.id) is None, "members sent without GUILD_MEMBERS"
        await eventually(lambda: bot.latency != float("inf"))
        assert guild.me.guild_permissions.manage_webhooks

        sent = await emu.user_says(server.alice, server.general, "hello there")
        await eventually(lambda: seen)

    [message] = seen
    assert isinstance(message, disnake.Message)
    assert (message.id, message.content) == (sent.id, "hello there")
    assert message.author.id == server.alice.id
    assert message.channel.id == server.general.id
    assert emu.identify_count == 1
    assert [r.route for r in emu.requests[:2]] == ["GET /users/@me", "GET /gateway/bot"]


async def test_without_message_content_intent_guild_messages_arrive_empty_unless_mentioning_bot(
    emu: DiscordEmulator, server: Server
) -> None:
    bot = make_bot(message_content=False)
    seen = collect(bot, "on_message")
    async with running_client(bot, emu.token):
        await emu.user_says(server.alice, server.general, "secret words")
        await emu.user_says(server.alice, server.general, "hi bot", mentions=[emu.bot_user])
        dm = await emu.user_says(server.alice, emu.dm_channel(server.alice), "private words")
        await eventually(lambda: len(seen) == 3)

    contents = [m.content for m in seen if isinstance(m, disnake.Message)]
    assert contents == ["", f"<@{emu.bot_user.id}> hi bot", "private words"]
    assert isinstance(seen[2], disnake.Message) and seen[2].guild is None
    assert emu.message(dm.id).content == "private words"


async def test_with_message_content_intent_content_arrives_and_gateway_is_zlib_compressed(
    emu: DiscordEmulator, server: Server
) -> None:
    bot = make_bot(message_content=True)
    seen = collect(bot, "on_message")
    async with running_client(bot, emu.token):
        await emu.user_says(server.bob, server.general, "visible words")
        await eventually(lambda: seen)
    assert [m.content for m in seen if isinstance(m, disnake.Message)] == ["visible words"]
    first = emu.gateway_connections[0]
    assert first.compressed and first.start == "identify"
    assert [event for _, event in first.events[:2]] == ["READY", "GUILD_CREATE"]
    assert [seq for seq, _ in first.events] == list(range(1, len(first.events) + 1))


async def test_wrong_token_is_a_login_failure(emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    with pytest.raises(disnake.LoginFailure):
        async with running_client(bot, "not-the-token"):
            pass
    [request] = emu.requests
    assert (request.route, request.status) == ("GET /users/@me", 401)
    assert "Authorization" not in request.headers


async def test_refused_privileged_intent_closes_4014_and_disnake_raises() -> None:
    async with DiscordEmulator(enabled_privileged_intents=0) as emulator:
        with disnake_pointed_at(emulator.api_base_url):
            bot = make_bot(message_content=True)
            with pytest.raises(disnake.PrivilegedIntentsRequired):
                async with running_client(bot, emulator.token):
                    pass
        [connection] = emulator.gateway_connections
        assert (connection.close_code, connection.closed_by) == (4014, "server")


async def test_same_bot_without_privileged_intents_connects_fine() -> None:
    async with DiscordEmulator(enabled_privileged_intents=0) as emulator:
        emulator.add_guild("g")
        with disnake_pointed_at(emulator.api_base_url):
            bot = make_bot(message_content=False)
            async with running_client(bot, emulator.token):
                assert len(bot.guilds) == 1


async def test_members_intent_gets_all_members_and_chunk_requests_are_answered(
    emu: DiscordEmulator, server: Server
) -> None:
    intents = disnake.Intents.default()
    intents.members = True
    bot = commands.InteractionBot(intents=intents, **fast_client_options())
    async with running_client(bot, emu.token):
        guild = bot.get_guild(server.guild.id)
        assert guild is not None
        assert guild.get_member(server.alice.id) is not None
        members = await asyncio.wait_for(guild.chunk(), timeout=2)
    assert {m.id for m in members or ()} >= {server.alice.id, server.bob.id, emu.bot_user.id}


async def test_sharded_bot_gets_each_guild_on_its_own_shard() -> None:
    # both shards identify at once (the test skips disnake's 5 s pause): two buckets
    async with DiscordEmulator(max_concurrency=2) as emu, _pointed(emu):
        server = Server.build(emu)
        await _sharded_bot_gets_each_guild_on_its_own_shard(emu, server)


@contextlib.asynccontextmanager
async def _pointed(emu: DiscordEmulator) -> AsyncIterator[None]:
    with disnake_pointed_at(emu.api_base_url):
        yield


async def _sharded_bot_gets_each_guild_on_its_own_shard(emu: DiscordEmulator, server: Server
                                                        ) -> None:
    other = emu.add_guild("Other Guild")
    while (other.id >> 22) % 2 == (server.guild.id >> 22) % 2:
        other = emu.add_guild("Other Guild")
    intents = disnake.Intents.default()
    intents.message_content = True
    bot = commands.AutoShardedInteractionBot(intents=intents, shard_count=2, **fast_client_options())
    async with running_client(bot, emu.token):
        assert server.guild.id in {g.id for g in bot.guilds} and other.id in {g.id for g in bot.guilds}
    sessions = {c.session_id for c in emu.gateway_connections}
    assert len(sessions) == 2 and emu.identify_count == 2
    guilds_per_connection = [
        sum(1 for _, event in c.events if event == "GUILD_CREATE") for c in emu.gateway_connections
    ]
    assert sum(guilds_per_connection) == len(emu.world.guilds)
    assert all(count >= 1 for count in guilds_per_connection)
