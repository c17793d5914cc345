"""Threads open on time in every delivery mode: where a reply goes is decided before its
first byte is posted, so a streamed reply's preview never stays behind in the channel."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.adapters.discord import DiscordAdapterSettings
from tests.fakes.discord import DiscordEmulator
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI

from .conftest import persona, running_bot

WORDS = " ".join(f"word{i}" for i in range(24))


@pytest.mark.parametrize("stream_edits", [True, False])
async def test_the_reply_past_after_turns_moves_into_a_thread_streamed_or_not(
        emu: DiscordEmulator, server: Server, tmp_path: Path, stream_edits: bool) -> None:
    ada = persona("ada", extra=f"triggers: {{thread: {{after_turns: 1}}}}\n"
                               f"delivery: {{stream_edits: {str(stream_edits).lower()}}}\n")
    settings = DiscordAdapterSettings(stream_interval_s=0.05)
    async with FakeOpenAI(tokens_per_second=96) as paced, running_bot(
            emu, tmp_path / "log.db", [ada], paced, settings=settings) as bot:
        paced.answer("first question", WORDS)
        paced.answer("second question", WORDS + " again")
        first = await emu.user_says(server.alice, server.general, "first question",
                                    mentions=[emu.bot_user])
        in_channel = await emu.wait_for_message(
            lambda m: m.id > first.id and bot.is_ours(m) and m.content == WORDS)
        second = await emu.user_says(server.alice, server.general, "second question",
                                     mentions=[emu.bot_user])
        in_thread = await emu.wait_for_message(
            lambda m: m.channel_id == second.id and bot.is_ours(m)
            and m.content == WORDS + " again")
        await bot.dispatcher.wait_idle()
        delivered = [e.data["delivered_ids"] for e in await bot.events("ReplyDelivered")]

    thread = emu.world.channels[second.id]
    assert thread.parent_id == server.general.id and in_channel.channel_id == server.general.id
    # nothing of the second reply was ever posted in the channel, not even a preview
    assert [m.id for m in bot.ours_in(server.general)] == [in_channel.id]
    assert [m.id for m in bot.ours_in(thread)] == [in_thread.id]
    assert delivered == [[str(in_channel.id)], [str(in_thread.id)]]
    if stream_edits:  # it was shown as it arrived, in the thread
        assert in_thread.edits and in_thread.edits[0].previous_content != in_thread.content


async def test_a_streamed_reply_long_enough_for_after_chars_streams_in_its_thread(
        emu: DiscordEmulator, server: Server, tmp_path: Path) -> None:
    ada = persona("ada", extra="triggers: {thread: {after_chars: 60}}\n"
                               "delivery: {stream_edits: true}\n")
    settings = DiscordAdapterSettings(stream_interval_s=0.05)
    async with FakeOpenAI(tokens_per_second=96) as paced, running_bot(
            emu, tmp_path / "log.db", [ada], paced, settings=settings) as bot:
        paced.answer("short one", "a short reply")
        paced.answer("long one", WORDS)
        short = await emu.user_says(server.alice, server.general, "short one",
                                    mentions=[emu.bot_user])
        brief = await bot.reply_to(short)
        long = await emu.user_says(server.alice, server.general, "long one",
                                   mentions=[emu.bot_user])
        streamed = await emu.wait_for_message(
            lambda m: m.channel_id == long.id and bot.is_ours(m) and m.content == WORDS)
        await bot.dispatcher.wait_idle()

    # the short reply could only be placed once it was whole: posted once, in the channel
    assert brief.channel_id == server.general.id and brief.content == "a short reply"
    assert not brief.edits
    # the long one moved as soon as it was long enough, before its preview was posted
    assert [m.id for m in bot.ours_in(server.general)] == [brief.id]
    assert streamed.edits and len(streamed.edits[0].previous_content) >= 60


async def test_a_greeted_conversation_moves_into_a_thread_with_its_greeting_posted_once(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    ada = persona("ada", extra="  greeting: Hello {user}.\ntriggers: {thread: {after_turns: 1}}\n")
    async with running_bot(emu, tmp_path / "log.db", [ada], fake_openai) as bot:
        first = await emu.user_says(server.alice, server.general, "first", mentions=[emu.bot_user])
        greeting = await bot.reply_to(first)
        await emu.wait_for_message(lambda m: m.id > greeting.id and bot.is_ours(m))
        second = await emu.user_says(server.alice, server.general, "second",
                                     mentions=[emu.bot_user])
        await bot.reply_to(second, channel_id=second.id)
        await bot.dispatcher.wait_idle()
        thread_events = await bot.store.read_stream(f"conv:discord:{second.id}")
        open_greetings = await bot.store.read(lambda log: log.rows("open_greetings"))
    assert greeting.content == "Hello alice."
    # the greeting opens the thread's copy of the conversation too, posted already
    assert [e.type for e in thread_events][:4] == ["ThreadOpened", "PersonaGreeted",
                                                   "GreetingDelivered", "MessageReceived"]
    assert open_greetings == []
    # the model saw the greeting in the thread too, as Ada's first turn
    history = [(m["role"], m["content"]) for m in fake_openai.requests[-1].messages[1:]]
    assert history[0] == ("assistant", "Hello alice.")
