"""Webhooks (create, list, execute as a persona) and threads."""

from __future__ import annotations

import disnake
import pytest

from tests.fakes.discord import DiscordEmulator, permissions, running_client
from tests.fakes.discord.fixtures import Server

from .conftest import collect, eventually, make_bot


async def test_webhook_create_list_and_execute_with_persona_identity(
    emu: DiscordEmulator, server: Server
) -> None:
    bot = make_bot()
    seen = collect(bot, "on_message")
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        created = await channel.create_webhook(name="Personae")
        listed = await channel.webhooks()
        sent = await created.send(
            "Hello, I am Ada.",
            username="Ada",
            avatar_url="https://example.org/ada.png",
            allowed_mentions=disnake.AllowedMentions.none(),
            wait=True,
        )
        await eventually(lambda: seen)

    assert [w.id for w in listed] == [created.id]
    assert [w.id for w in emu.webhooks_in(server.general)] == [created.id]
    stored = emu.message(sent.id)
    assert stored.webhook_id == created.id and stored.by_webhook
    assert stored.author.username == "Ada"
    assert stored.webhook_avatar_url == "https://example.org/ada.png"
    assert sent.author.name == "Ada" and sent.webhook_id == created.id
    [execute] = emu.requests_to("POST /webhooks/{webhook_id}/{token}")
    assert execute.query["wait"] in ("1", "true")
    assert "Authorization" not in execute.headers
    [dispatched] = seen
    assert isinstance(dispatched, disnake.Message)
    assert dispatched.webhook_id == created.id and dispatched.author.name == "Ada"


async def test_webhook_send_without_wait_returns_nothing_but_stores_the_message(
    emu: DiscordEmulator, server: Server
) -> None:
    bot = make_bot()
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        webhook = await channel.create_webhook(name="Personae")
        assert await webhook.send("fire and forget", username="Bo") is None
    [stored] = emu.messages_in(server.general)
    assert (stored.content, stored.author.username) == ("fire and forget", "Bo")


@pytest.mark.parametrize("taken_away_by", ["channel overwrite", "role permissions"])
async def test_webhook_creation_is_forbidden_without_manage_webhooks(
    emu: DiscordEmulator, server: Server, taken_away_by: str
) -> None:
    bot_role = emu.bot_role(server.guild)
    if taken_away_by == "channel overwrite":
        emu.set_overwrite(server.general, bot_role, deny=permissions.MANAGE_WEBHOOKS)
    else:
        emu.set_role_permissions(bot_role, bot_role.permissions & ~permissions.MANAGE_WEBHOOKS)
    bot = make_bot()
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        assert not channel.permissions_for(channel.guild.me).manage_webhooks
        with pytest.raises(disnake.Forbidden) as refused:
            await channel.create_webhook(name="Personae")
        with pytest.raises(disnake.Forbidden):
            await channel.webhooks()
        await channel.send("fallback still works")
    assert refused.value.status == 403
    assert (refused.value.code, refused.value.text) == (50013, "Missing Permissions")
    [failed, _] = emu.requests_to("POST /channels/{channel_id}/webhooks") + emu.requests_to(
        "GET /channels/{channel_id}/webhooks"
    )
    assert failed.status == 403


async def test_webhook_name_with_discord_in_it_is_refused(emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        webhook = await channel.create_webhook(name="Personae")
        with pytest.raises(disnake.HTTPException) as refused:
            await webhook.send("hi", username="Discord Support", wait=True)
    assert refused.value.status == 400


async def test_threads_from_a_message_and_without_one_and_a_webhook_post_into_a_thread(
    emu: DiscordEmulator, server: Server
) -> None:
    bot = make_bot()
    created_threads = collect(bot, "on_thread_create")
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        starter = await emu.user_says(server.alice, server.general, "long topic")
        starter_message = await channel.fetch_message(starter.id)
        from_message = await starter_message.create_thread(name="Long topic")
        standalone = await channel.create_thread(name="Side chat", type=disnake.ChannelType.public_thread)
        webhook = await channel.create_webhook(name="Personae")
        in_thread = await webhook.send("inside", username="Ada", thread=from_message, wait=True)
        await from_message.send("bot inside")
        await eventually(lambda: len(created_threads) == 2)

    assert from_message.id == starter.id and from_message.parent_id == server.general.id
    assert standalone.parent_id == server.general.id
    thread_record = emu.world.channel(from_message.id)
    assert thread_record.is_thread and thread_record.name == "Long topic"
    assert [(m.content, m.author.username) for m in emu.messages_in(thread_record)] == [
        ("inside", "Ada"),
        ("bot inside", "Personae"),
    ]
    assert in_thread.channel.id == from_message.id
    [execute] = emu.requests_to("POST /webhooks/{webhook_id}/{token}")
    assert execute.query["thread_id"] == str(from_message.id)
    assert {getattr(t, "id", None) for t in created_threads} == {from_message.id, standalone.id}


async def test_user_created_thread_reaches_the_bot(emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    created_threads = collect(bot, "on_thread_create")
    seen = collect(bot, "on_message")
    async with running_client(bot, emu.token):
        thread = await emu.user_creates_thread(server.bob, server.general, "Bob's thread")
        await eventually(lambda: created_threads)
        said = await emu.user_says(server.bob, thread, "in bob's thread")
        await eventually(lambda: seen)
    [created] = created_threads
    assert isinstance(created, disnake.Thread) and created.owner_id == server.bob.id
    [message] = seen
    assert isinstance(message, disnake.Message) and isinstance(message.channel, disnake.Thread)
    assert message.channel.id == thread.id and said.channel_id == thread.id
