"""The bot's own messages: send, reply, edit, delete, typing, history, mentions."""

from __future__ import annotations

import io

import disnake
import pytest

from tests.fakes.discord import DiscordEmulator, permissions, running_client
from tests.fakes.discord.fixtures import Server

from .conftest import collect, eventually, make_bot


async def test_send_reply_edit_delete_and_typing(emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        asked = await emu.user_says(server.alice, server.general, "question?")

        async with channel.typing():
            sent = await channel.send("plain answer")
        cached = await channel.fetch_message(asked.id)
        reply = await cached.reply("a reply")
        await reply.edit(content="an edited reply")
        await sent.delete()

    typing_at = emu.typing_in(server.general)[0]
    stored = emu.messages_in(server.general, include_deleted=True)
    assert [m.id for m in stored] == [asked.id, sent.id, reply.id]
    assert emu.message(sent.id).deleted and emu.message(sent.id).created_at > typing_at
    assert [m.id for m in emu.messages_in(server.general)] == [asked.id, reply.id]
    replied = emu.message(reply.id)
    assert replied.reference_id == asked.id and replied.type == 19
    assert replied.content == "an edited reply"
    assert [e.previous_content for e in replied.edits] == ["a reply"]
    assert replied.author.id == emu.bot_user.id
    assert emu.pings(replied).notified_user_ids == {server.alice.id}
    [post] = [
        r for r in emu.requests_to("POST /channels/{channel_id}/messages") if r.json["content"] == "a reply"
    ]
    assert post.json["message_reference"]["message_id"] == asked.id
    assert post.headers["Content-Type"] == "application/json"


async def test_allowed_mentions_decide_who_is_pinged(emu: DiscordEmulator, server: Server) -> None:
    everyone_allowed = emu.add_role(
        server.guild, "mods", permissions=permissions.MENTION_EVERYONE, mentionable=True
    )
    bot_member_role = emu.bot_role(server.guild)
    emu.set_role_permissions(bot_member_role, bot_member_role.permissions | permissions.MENTION_EVERYONE)
    bot = make_bot()
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        text = f"@everyone <@&{everyone_allowed.id}> <@{server.alice.id}> <@{server.bob.id}>"
        silent = await channel.send(text, allowed_mentions=disnake.AllowedMentions.none())
        only_bob = await channel.send(
            text,
            allowed_mentions=disnake.AllowedMentions(
                everyone=False, roles=False, users=[disnake.Object(server.bob.id)]
            ),
        )
        loud = await channel.send(text)

    assert emu.pings(emu.message(silent.id)).nobody
    assert emu.message(silent.id).allowed_mentions == {"parse": []}
    assert emu.pings(emu.message(only_bob.id)).notified_user_ids == {server.bob.id}
    loud_pings = emu.pings(emu.message(loud.id))
    assert loud_pings.everyone and loud_pings.role_ids == {everyone_allowed.id}
    assert loud_pings.notified_user_ids == {
        server.alice.id,
        server.bob.id,
        server.guild.owner_id,
    }


async def test_everyone_written_by_a_bot_without_the_permission_pings_nobody(
    emu: DiscordEmulator, server: Server
) -> None:
    bot = make_bot()
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        sent = await channel.send("@everyone look")
    assert not emu.pings(emu.message(sent.id)).everyone


async def test_user_reply_edit_delete_reach_the_bot(emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    created = collect(bot, "on_message")
    edited = collect(bot, "on_raw_message_edit")
    deleted = collect(bot, "on_raw_message_delete")
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        bot_message = await channel.send("I am the bot")
        reply = await emu.user_says(
            server.alice, server.general, "replying", reply_to=emu.message(bot_message.id)
        )
        await emu.user_edits(reply, "replying, edited")
        await emu.user_deletes(reply)
        await eventually(lambda: len(created) == 2 and edited and deleted)

    user_reply = created[1]
    assert isinstance(user_reply, disnake.Message)
    assert user_reply.reference is not None and user_reply.reference.message_id == bot_message.id
    assert isinstance(user_reply.reference.resolved, disnake.Message)
    assert user_reply.reference.resolved.content == "I am the bot"
    assert bot.user in user_reply.mentions
    [edit] = edited
    assert isinstance(edit, disnake.RawMessageUpdateEvent) and edit.data["content"] == "replying, edited"
    [delete] = deleted
    assert isinstance(delete, disnake.RawMessageDeleteEvent) and delete.message_id == reply.id


async def test_history_lists_messages_newest_first_and_respects_after(
    emu: DiscordEmulator, server: Server
) -> None:
    first = await emu.user_says(server.alice, server.general, "one")
    await emu.user_says(server.alice, server.general, "two")
    await emu.user_says(server.bob, server.general, "three")
    bot = make_bot()
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        newest_first = [m.content async for m in channel.history(limit=10)]
        after_first = [m.content async for m in channel.history(after=disnake.Object(first.id))]
    assert newest_first == ["three", "two", "one"]
    assert after_first == ["two", "three"]


async def test_over_long_and_forbidden_sends_are_refused_like_discord(
    emu: DiscordEmulator, server: Server
) -> None:
    emu.set_overwrite(server.general, emu.bot_user, deny=permissions.SEND_MESSAGES)
    quiet = emu.add_text_channel(server.guild, "quiet")
    bot = make_bot()
    async with running_client(bot, emu.token):
        general = bot.get_channel(server.general.id)
        other = bot.get_channel(quiet.id)
        assert isinstance(general, disnake.TextChannel) and isinstance(other, disnake.TextChannel)
        with pytest.raises(disnake.Forbidden) as forbidden:
            await general.send("hello")
        with pytest.raises(disnake.HTTPException) as too_long:
            await other.send("x" * 2001)
        await other.send("x" * 2000)
    assert forbidden.value.code == 50013
    assert too_long.value.status == 400 and too_long.value.code == 50035


async def test_reply_without_mention_author_does_not_ping_the_replied_user(
    emu: DiscordEmulator, server: Server
) -> None:
    bot = make_bot()
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        asked = await emu.user_says(server.alice, server.general, "ping me not")
        original = await channel.fetch_message(asked.id)
        quiet = await original.reply("quiet reply", mention_author=False)
        loud = await original.reply("loud reply")
    assert emu.pings(emu.message(quiet.id)).nobody
    assert emu.message(quiet.id).allowed_mentions["replied_user"] is False
    assert emu.pings(emu.message(loud.id)).notified_user_ids == {server.alice.id}


async def test_file_uploads_are_accepted_as_multipart(emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()
    async with running_client(bot, emu.token):
        channel = bot.get_channel(server.general.id)
        assert isinstance(channel, disnake.TextChannel)
        sent = await channel.send("see file", file=disnake.File(io.BytesIO(b"hello"), "note.txt"))
        webhook = await channel.create_webhook(name="Personae")
        hooked = await webhook.send(
            "hook file", file=disnake.File(io.BytesIO(b"abc"), "h.txt"), username="Ada", wait=True
        )
    [attachment] = emu.message(sent.id).attachments
    assert (attachment.filename, attachment.size) == ("note.txt", 5)
    assert emu.message(sent.id).content == "see file"
    assert [a.filename for a in emu.message(hooked.id).attachments] == ["h.txt"]
    assert sent.attachments[0].filename == "note.txt"
    upload = emu.requests_to("POST /channels/{channel_id}/messages")[-1]
    assert upload.files == ("note.txt",) and upload.json["content"] == "see file"


async def test_a_bot_answering_users_in_a_channel_and_in_dms(emu: DiscordEmulator, server: Server) -> None:
    bot = make_bot()

    async def answer(message: disnake.Message) -> None:
        if message.author.id != emu.bot_user.id:
            await message.channel.send(f"you said {message.content}")

    bot.add_listener(answer, "on_message")
    async with running_client(bot, emu.token):
        await emu.user_says(server.alice, server.general, "hi")
        in_channel = await emu.wait_for_message(lambda m: m.author.id == emu.bot_user.id)
        dm = emu.dm_channel(server.bob)
        await emu.user_says(server.bob, dm, "psst")
        in_dm = await emu.wait_for_message(lambda m: m.channel_id == dm.id and m.author.bot)
        user = await bot.fetch_user(server.alice.id)
        opened = await user.send("a DM the bot starts")
    assert (in_channel.channel_id, in_channel.content) == (server.general.id, "you said hi")
    assert in_dm.content == "you said psst" and in_dm.guild_id is None
    [dm_open] = emu.requests_to("POST /users/@me/channels")
    assert dm_open.json == {"recipient_id": server.alice.id}
    assert emu.message(opened.id).channel_id == emu.dm_channel(server.alice).id
