"""Conversations over time: edits and deletions, threads, resumes and restarts."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from core.adapters.discord import PLATFORM, DiscordAdapter, DiscordAdapterSettings
from core.adapters.discord.gateway_log import GATEWAY_STREAM, uptime_s
from core.dispatcher.messages import OutboundReply, ReplyTarget
from core.personas.registry import PersonaRegistry
from eventstore import RecordedEvent
from tests.fakes.discord import DiscordEmulator, fast_client_options, running_client
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI

from .conftest import Bot, open_store, persona, running_bot, triggers_of, until_recorded


async def until_events(bot: Bot, kind: str, count: int) -> list[RecordedEvent]:
    for _ in range(500):
        found = await bot.events(kind)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} {kind} events")


async def test_edits_and_deletions_change_what_the_model_reads(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai) as bot:
        named = await emu.user_says(server.alice, server.general, "my name is Bbo")
        typo = await emu.user_says(server.bob, server.general, "I like turtles")
        await until_recorded(bot, typo)
        await emu.user_edits(named, "my name is Bob")
        await emu.user_deletes(typo)
        await until_events(bot, "MessageEdited", 1)
        await until_events(bot, "MessageDeleted", 1)
        asked = await emu.user_says(server.alice, server.general, "what is my name?",
                                    mentions=[emu.bot_user])
        await bot.reply_to(asked)

    history = fake_openai.requests[-1].messages[1:]
    assert [m["content"] for m in history] == ["my name is Bob", "what is my name?"]


async def test_a_long_conversation_moves_into_a_seeded_thread(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    ada = persona("ada", extra="triggers: {thread: {after_turns: 1}}\n")
    async with running_bot(emu, tmp_path / "log.db", [ada], fake_openai) as bot:
        first = await emu.user_says(server.alice, server.general, "first question",
                                    mentions=[emu.bot_user])
        in_channel = await bot.reply_to(first)
        second = await emu.user_says(server.alice, server.general, "second question",
                                     mentions=[emu.bot_user])
        # a thread opened on a message has that message's id
        in_thread = await bot.reply_to(second, channel_id=second.id)
        thread = emu.world.channels[second.id]
        go_on = await emu.user_says(server.alice, thread, "go on")
        continued = await bot.reply_to(go_on)
        assert await triggers_of(bot, go_on) == [("ada", "mention")]

    assert in_channel.channel_id == server.general.id
    assert thread.parent_id == server.general.id and thread.name.startswith("Ada: second")
    assert in_thread.webhook_id == in_channel.webhook_id
    assert in_thread.author.username == "Ada" and continued.author.username == "Ada"
    assert len(emu.webhooks_in(server.general)) == 1
    history = [(m["role"], m["content"]) for m in fake_openai.requests[-1].messages[1:]]
    assert history == [("user", "first question"), ("assistant", in_channel.content),
                       ("user", "second question"), ("assistant", in_thread.content),
                       ("user", "go on")]
    assert [m.author.username for m in bot.ours_in(server.general)] == ["Ada"]


async def test_a_thread_people_open_is_answered_through_the_parent_webhook(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai) as bot:
        thread = await emu.user_creates_thread(server.alice, server.general, "side topic")
        asked = await emu.user_says(server.alice, thread, "here too?", mentions=[emu.bot_user])
        reply = await bot.reply_to(asked)
        assert await triggers_of(bot, asked) == [("ada", "mention")]

    assert reply.channel_id == thread.id and reply.author.username == "Ada"
    joined = emu.requests_to("PUT /channels/{channel_id}/thread-members/@me")
    assert [r.path.split("/")[-3] for r in joined] == [str(thread.id)]
    assert [h.channel_id for h in emu.webhooks_in(server.general)] == [server.general.id]
    assert reply.webhook_id == emu.webhooks_in(server.general)[0].id


async def test_a_message_replayed_after_resume_is_answered_once(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai) as bot:
        asked = await emu.user_says(server.alice, server.general, "once please",
                                    mentions=[emu.bot_user])
        await bot.reply_to(asked)
        await bot.dispatcher.wait_idle()
        sent = emu.gateway_connections[-1].events
        since_asked = len(sent) - [name for _, name in sent].index("MESSAGE_CREATE")
        emu.replay_on_next_resume(since_asked)
        await emu.close_gateway(4000)
        await emu.wait_until(lambda: emu.resume_count == 1 and emu.hub.connected)
        await until_events(bot, "GatewayResumed", 1)
        resumed = emu.gateway_connections[-1]
        later = await emu.user_says(server.bob, server.general, "and me", mentions=[emu.bot_user])
        await bot.reply_to(later)
        await bot.dispatcher.wait_idle()
        gateway = await bot.store.read_stream(GATEWAY_STREAM)
        triggered = await bot.events("PersonaTriggered")

    assert resumed.resumed
    assert "READY" not in [name for _, name in resumed.events]
    assert "MESSAGE_CREATE" in [name for _, name in resumed.events[:since_asked]]
    assert [e.data["message_id"] for e in triggered] == [str(asked.id), str(later.id)]
    replies = bot.ours_in(server.general)
    assert len(replies) == 2 and replies[0].content.endswith("to: once please")
    assert [e.type for e in gateway] == ["GatewayConnected", "GatewayDisconnected",
                                        "GatewayResumed"]
    connected, lost, back = (e.data["at"] for e in gateway)
    assert connected < lost <= back
    assert uptime_s(gateway, back + 1.0) == (lost - connected) + 1.0


async def test_after_a_restart_messages_sent_while_offline_are_answered_once(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    quiet = emu.add_text_channel(server.guild, "quiet")
    async with running_bot(emu, db, [persona("ada")], fake_openai) as bot:
        before = await emu.user_says(server.alice, server.general, "before the restart",
                                     mentions=[emu.bot_user])
        await bot.reply_to(before)
    await emu.wait_until(lambda: not emu.hub.connected)
    missed = await emu.user_says(server.bob, server.general, "while you were away",
                                 mentions=[emu.bot_user])
    chatter = await emu.user_says(server.bob, server.general, "no one asked ada")
    elsewhere = await emu.user_says(server.bob, quiet, "a channel ada never spoke in",
                                    mentions=[emu.bot_user])
    for _ in range(2):  # a second restart must not answer anything again
        async with running_bot(emu, db, [persona("ada")], fake_openai) as bot:
            await bot.dispatcher.wait_idle()
            triggered = [e.data["message_id"] for e in await bot.events("PersonaTriggered")]
            received = {e.data["message_id"] for e in await bot.events("MessageReceived")}

    assert triggered == [str(before.id), str(missed.id)]
    assert str(chatter.id) in received and str(elsewhere.id) not in received
    replies = bot.ours_in(server.general)
    assert [r.content.rsplit("to: ", 1)[1] for r in replies] == [
        "before the restart", "while you were away"]
    assert bot.ours_in(quiet) == []


async def test_catch_up_leaves_messages_older_than_the_window(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    settings = DiscordAdapterSettings(catch_up_window_s=0.5)
    async with running_bot(emu, db, [persona("ada")], fake_openai, settings=settings) as bot:
        await bot.reply_to(await emu.user_says(server.alice, server.general, "hi",
                                               mentions=[emu.bot_user]))
    await emu.user_says(server.bob, server.general, "long ago", mentions=[emu.bot_user])
    await asyncio.sleep(0.7)
    async with running_bot(emu, db, [persona("ada")], fake_openai, settings=settings) as bot:
        await bot.dispatcher.wait_idle()
        triggered = await bot.events("PersonaTriggered")

    assert len(triggered) == 1
    assert len(bot.ours_in(server.general)) == 1


async def test_the_log_keeps_the_order_people_wrote_in(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai) as bot:
        first = await emu.user_says(server.alice, server.general, "line 0")
        # all at once; replies make the dispatcher look the replied message up first
        await asyncio.gather(*(
            emu.user_says(server.bob if i % 2 else server.alice, server.general, f"line {i}",
                          reply_to=first if i % 2 else None) for i in range(1, 12)))
        asked = await emu.user_says(server.alice, server.general, "count them",
                                    mentions=[emu.bot_user])
        await bot.reply_to(asked)

    history = [m["content"] for m in fake_openai.requests[-1].messages[1:]]
    assert history == [f"line {i}" for i in range(12)] + ["count them"]


async def test_a_reply_recovered_before_the_gateway_connects_waits_for_it(
        emu: DiscordEmulator, server: Server, tmp_path: Path) -> None:
    # At start-up the dispatcher re-runs unanswered triggers before disnake has logged
    # in; such a delivery must wait for the client, not fail (found by the kill -9 test).
    store = await open_store(tmp_path / "log.db")
    adapter = DiscordAdapter(store, PersonaRegistry([persona("ada")]), DiscordAdapterSettings(),
                             client_options=fast_client_options())
    target = ReplyTarget(
        platform=PLATFORM,
        channel_id=str(server.general.id),
        message_id="42",
        author_id=str(server.alice.id),
        guild_id=str(server.guild.id),
    )
    delivering = asyncio.create_task(adapter.sink.deliver(
        OutboundReply(target=target, persona_id="ada", persona_name="Ada", text="back after the restart")))
    try:
        await asyncio.sleep(0.2)
        assert not delivering.done()
        async with running_client(adapter.client, emu.token):
            receipt = await asyncio.wait_for(delivering, 5)
            await adapter.close()
    finally:
        await store.close()
    (posted,) = [emu.message(int(i)) for i in receipt.message_ids]
    assert posted.content == "back after the restart" and posted.author.username == "Ada"


async def test_a_recovered_reply_that_discord_already_has_is_not_posted_again(
        emu: DiscordEmulator, server: Server, tmp_path: Path) -> None:
    # kill -9 between Discord accepting a reply and the log recording it: on restart the
    # dispatcher delivers it again, marked recovered; the adapter finds the earlier post.
    asked = await emu.user_says(server.alice, server.general, "hello?")
    target = ReplyTarget(
        platform=PLATFORM,
        channel_id=str(server.general.id),
        message_id=str(asked.id),
        author_id=str(server.alice.id),
        guild_id=str(server.guild.id),
    )
    reply = OutboundReply(
        target=target, persona_id="ada", persona_name="Ada", text="posted once, before the crash"
    )
    store = await open_store(tmp_path / "log.db")
    try:
        adapter = DiscordAdapter(store, PersonaRegistry([persona("ada")]),
                                 DiscordAdapterSettings(), client_options=fast_client_options())
        async with running_client(adapter.client, emu.token):
            first = await adapter.sink.deliver(reply)
            again = await adapter.sink.deliver(replace(reply, recovered=True))
            other = await adapter.sink.deliver(replace(reply, text="a different reply",
                                                       recovered=True))
            await adapter.close()
    finally:
        await store.close()
    assert again == first
    assert other != first
    posted = [m.content for m in emu.messages_in(server.general) if m.id > asked.id]
    assert posted == ["posted once, before the crash", "a different reply"]
