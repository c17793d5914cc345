"""Greetings on Discord: the persona's first message in a new conversation (a channel, a DM,
a slash command), posted as the persona before its reply; /greet picks one."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.discord import EPHEMERAL, DiscordEmulator
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI

from .conftest import persona, running_bot, triggers_of
from .test_commands import answer_of

GREETINGS = ("  greeting: 'Welcome to {guild}, {user}! Ask me anything in #{channel}.'\n"
             "  alternate_greetings: ['Oh, hello {user}.']\n")


async def test_a_new_conversation_opens_with_the_greeting_posted_as_the_persona(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    ada = persona("ada", extra="  greeting: 'Welcome to {guild}, {user}! Ask me anything in "
                               "#{channel}.'\n")
    async with running_bot(emu, tmp_path / "log.db", [ada], fake_openai) as bot:
        asked = await emu.user_says(server.alice, server.general, "hi there",
                                    mentions=[emu.bot_user])
        greeting = await bot.reply_to(asked)
        reply = await emu.wait_for_message(lambda m: m.id > greeting.id and bot.is_ours(m))
        again = await emu.user_says(server.alice, server.general, "and now?",
                                    mentions=[emu.bot_user])
        second = await bot.reply_to(again)
        # a Discord reply to the greeting is a reply to Ada
        answering = await emu.user_says(server.bob, server.general, "nice greeting",
                                        reply_to=greeting)
        assert await triggers_of(bot, answering) == [("ada", "reply")]
        await bot.dispatcher.wait_idle()
        greeted = await bot.events("PersonaGreeted")

    assert greeting.content == "Welcome to Test Guild, alice! Ask me anything in #general."
    assert greeting.author.username == "Ada" and greeting.webhook_id is not None
    assert reply.content.endswith("hi there") and second.content.endswith("and now?")
    assert len(greeted) == 1
    first_prompt = [(m["role"], m["content"]) for m in fake_openai.requests[0].messages[1:]]
    assert first_prompt == [("assistant", greeting.content), ("user", "hi there")]


async def test_a_dm_opens_with_the_greeting_headed_by_the_persona(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    ada = persona("ada", extra="  greeting: Hello {user}, this is {channel} on {guild}.\n")
    dm = emu.dm_channel(server.alice)
    async with running_bot(emu, tmp_path / "log.db", [ada], fake_openai) as bot:
        said = await emu.user_says(server.alice, dm, "psst")
        greeting = await bot.reply_to(said)
        reply = await emu.wait_for_message(lambda m: m.id > greeting.id and bot.is_ours(m))

    assert greeting.content == "**Ada**\nHello alice, this is DM on Direct Messages."
    assert reply.content.startswith("**Ada**\n") and reply.content.endswith("psst")


async def test_greet_posts_the_chosen_greeting_and_answers_privately(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    async with running_bot(emu, tmp_path / "log.db", [persona("ada", extra=GREETINGS)],
                           fake_openai) as bot:
        await emu.wait_for_command("greet")
        asked = await emu.user_invokes("greet", {"persona": "ada", "which": 2}, server.general,
                                       server.bob)
        answer = await answer_of(emu, asked)
        posted = [m for m in bot.ours_in(server.general) if m.content == "Oh, hello bob."]
        wrong = await answer_of(emu, await emu.user_invokes(
            "greet", {"persona": "ada", "which": 5}, server.general, server.bob))
        # Ada spoke here now: the next message is answered without another greeting
        later = await emu.user_says(server.alice, server.general, "hello",
                                    mentions=[emu.bot_user])
        reply = await bot.reply_to(later)

    assert answer.flags & EPHEMERAL and answer.content == "Ada greeted with greeting 2 of 2."
    assert len(posted) == 1 and posted[0].author.username == "Ada"
    assert wrong.content == "Ada has 2 greetings: choose a number from 1 to 2."
    assert reply.content.endswith("hello")


async def test_a_slash_command_in_a_new_conversation_greets_in_the_channel_and_answers(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    ada = persona("ada", extra="  greeting: Hi {user}!\n")
    async with running_bot(emu, tmp_path / "log.db", [ada], fake_openai) as bot:
        await emu.wait_for_command("ask")
        asked = await emu.user_invokes("ask", {"persona": "ada", "prompt": "2+2?"},
                                       server.general, server.alice)
        answer = await answer_of(emu, asked)
        greeting = await emu.wait_until(lambda: next(
            (m for m in bot.ours_in(server.general) if m.content == "Hi alice!"), None))

    assert answer.content.startswith("**Ada**\n") and answer.content.endswith("2+2?")
    assert greeting.webhook_id is not None and greeting.interaction_id is None


async def test_a_thread_people_open_is_a_new_conversation_that_opens_with_the_greeting(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    ada = persona("ada", extra="  greeting: Hello in here, {user}.\n")
    async with running_bot(emu, tmp_path / "log.db", [ada], fake_openai) as bot:
        said = await emu.user_says(server.alice, server.general, "hi", mentions=[emu.bot_user])
        in_channel = await bot.reply_to(said)
        thread = await emu.user_creates_thread(server.alice, server.general, "side topic")
        asked = await emu.user_says(server.alice, thread, "here too?", mentions=[emu.bot_user])
        greeting = await bot.reply_to(asked)
        # the answer to "hi" in the channel may still be on its way: wait for this one's
        reply = await emu.wait_for_message(lambda m: m.id > greeting.id and bot.is_ours(m)
                                           and m.content.endswith("here too?"))

    assert in_channel.content == "Hello in here, alice."
    assert greeting.channel_id == thread.id and greeting.content == "Hello in here, alice."
    assert reply.channel_id == thread.id and reply.content.endswith("here too?")
