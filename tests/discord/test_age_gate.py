"""Personas marked ``nsfw: true`` speak only in age-restricted channels (Discord's channel
``nsfw`` flag; a thread has none of its own and counts as its parent), and in DMs only
when the operator allows it: the real disnake client against the emulator."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.config import load_config
from core.dispatcher.dispatcher import DispatcherSettings
from core.personas.loader import load_persona_text
from tests.fakes.discord import EPHEMERAL, DiscordEmulator, Message
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI

from .conftest import Bot, persona, running_bot, until_recorded
from .test_commands import answer_of

LILITH = persona("lilith", extra="nsfw: true\ntriggers: {keywords: [lilith]}\n"
                                 "delivery: {age_restricted_notice: 'Adults-only channels, please.'}\n")
ADA = persona("ada", extra="triggers: {keywords: [ada]}\n")


async def decision(bot: Bot, message: Message, persona_id: str = "lilith") -> tuple[str, str]:
    await until_recorded(bot, message)
    await bot.dispatcher.wait_idle()
    (found,) = [(e.type, e.data["reason"]) for e in await bot.events("PersonaTriggered",
                                                                     "TriggerRejected")
                if e.data["message_id"] == str(message.id) and e.data["persona_id"] == persona_id]
    return found


async def test_an_nsfw_persona_answers_only_in_age_restricted_channels_and_their_threads(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    after_dark = emu.add_text_channel(server.guild, "after-dark", nsfw=True)
    async with running_bot(emu, tmp_path / "log.db", [LILITH, ADA], fake_openai) as bot:
        plain = await emu.user_says(server.alice, server.general, "lilith, ada, hello")
        plain_decisions = (await decision(bot, plain), await decision(bot, plain, "ada"))
        adult = await emu.user_says(server.alice, after_dark, "lilith, hello")
        adult_decision = await decision(bot, adult)
        adult_reply = await bot.reply_to(adult)
        dark_thread = await emu.user_creates_thread(server.alice, after_dark, "late")
        in_dark_thread = await emu.user_says(server.alice, dark_thread, "lilith, in here?")
        dark_thread_decision = await decision(bot, in_dark_thread)
        plain_thread = await emu.user_creates_thread(server.alice, server.general, "daytime")
        in_plain_thread = await emu.user_says(server.alice, plain_thread, "lilith, here?")
        plain_thread_decision = await decision(bot, in_plain_thread)
        in_general = [m.content for m in bot.ours_in(server.general)]
        received = {e.data["message_id"]: e.data["channel_nsfw"]
                    for e in await bot.events("MessageReceived")}

    assert plain_decisions == (("TriggerRejected", "age_restricted:channel"),
                               ("PersonaTriggered", "keyword"))
    assert all("Lilith" not in text for text in in_general)
    assert adult_decision == ("PersonaTriggered", "keyword")
    assert adult_reply.content.endswith("to: lilith, hello")
    assert dark_thread_decision == ("PersonaTriggered", "keyword")  # the parent's flag
    assert plain_thread_decision == ("TriggerRejected", "age_restricted:channel")
    assert received[str(adult.id)] is True and received[str(plain.id)] is False
    assert received[str(in_dark_thread.id)] is True


async def test_asking_an_nsfw_persona_outside_gets_one_notice_a_keyword_none(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    async with running_bot(emu, tmp_path / "log.db", [LILITH], fake_openai) as bot:
        overheard = await emu.user_says(server.alice, server.general, "lilith is a name")
        await decision(bot, overheard)
        asked = await emu.user_says(server.alice, server.general, "hi lilith",
                                    mentions=[emu.bot_user])
        asked_decision = await decision(bot, asked)
        again = await emu.user_says(server.alice, server.general, "hi again lilith",
                                    mentions=[emu.bot_user])
        await decision(bot, again)
        said = [m.content for m in bot.ours_in(server.general)]
    assert asked_decision == ("TriggerRejected", "age_restricted:channel")
    assert said == ["Adults-only channels, please."]  # once an hour, never for a keyword


async def test_an_nsfw_persona_refuses_dms_unless_the_operator_allows_them(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    dm = emu.dm_channel(server.alice)
    db = tmp_path / "log.db"
    async with running_bot(emu, db, [LILITH], fake_openai) as bot:
        refused = await emu.user_says(server.alice, dm, "hello lilith")
        refused_decision = await decision(bot, refused)
        notice = await bot.reply_to(refused)
    allowed_settings = DispatcherSettings(shutdown_deadline_s=5, allow_nsfw_dms=True)
    async with running_bot(emu, db, [LILITH], fake_openai,
                           dispatcher_settings=allowed_settings) as bot:
        allowed = await emu.user_says(server.alice, dm, "hello again lilith")
        allowed_decision = await decision(bot, allowed)
        reply = await bot.reply_to(allowed)

    assert refused_decision == ("TriggerRejected", "age_restricted:dm")
    assert notice.content.endswith("Adults-only channels, please.")  # headed with the name
    assert allowed_decision == ("PersonaTriggered", "dm")
    assert reply.content.endswith("to: hello again lilith")


def test_allowing_nsfw_personas_in_dms_is_a_config_setting(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("dms: {allow_nsfw: true}\n")
    config = load_config(tmp_path / "config.yaml")
    assert config.dm_allow_nsfw is True
    assert DispatcherSettings.from_config(config).allow_nsfw_dms is True
    (tmp_path / "config.yaml").write_text("dms: {}\n")
    assert DispatcherSettings.from_config(load_config(tmp_path / "config.yaml")).allow_nsfw_dms \
        is False


async def test_an_nsfw_persona_set_to_answer_in_a_channel_that_is_not_age_restricted_is_reported(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    after_dark = emu.add_text_channel(server.guild, "after-dark", nsfw=True)
    both = persona("lilith", extra=f"nsfw: true\ntriggers: {{channels: ['{server.general.id}', "
                                   f"'{after_dark.id}']}}\n")
    with caplog.at_level(logging.WARNING, logger="core.adapters.discord.adapter"):
        async with running_bot(emu, tmp_path / "log.db", [both], fake_openai) as bot:
            ignored = await emu.user_says(server.alice, server.general, "anyone?")
            general_decision = await decision(bot, ignored)
    warnings = [r.getMessage() for r in caplog.records if "is nsfw" in r.getMessage()]
    assert warnings == [f"persona lilith is nsfw, but channel {server.general.id} (#general) "
                        "is not age-restricted: it will not answer there (mark the channel "
                        "age-restricted in Discord, or take it out of the persona's channels)"]
    assert general_decision == ("TriggerRejected", "age_restricted:channel")


async def test_ask_for_an_nsfw_persona_is_gated_by_the_channel_it_is_used_in(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    after_dark = emu.add_text_channel(server.guild, "after-dark", nsfw=True)
    async with running_bot(emu, tmp_path / "log.db", [LILITH], fake_openai) as bot:
        await emu.wait_for_command("ask")
        refused = await emu.user_invokes("ask", {"persona": "lilith", "prompt": "hi"},
                                         server.general, server.alice)
        refusal = await answer_of(emu, refused)
        asked = await emu.user_invokes("ask", {"persona": "lilith", "prompt": "hi there"},
                                       after_dark, server.alice)
        answer = await answer_of(emu, asked)
        await bot.dispatcher.wait_idle()
        decisions = [(e.type, e.data["reason"]) for e in await bot.events(
            "PersonaTriggered", "TriggerRejected")]
    assert decisions == [("TriggerRejected", "age_restricted:channel"),
                         ("PersonaTriggered", "invoked")]
    assert refusal.flags & EPHEMERAL and refusal.content == "Adults-only channels, please."
    assert answer.content.endswith("to: hi there")


async def test_in_an_age_restricted_channel_an_nsfw_persona_may_answer_another_persona(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    after_dark = emu.add_text_channel(server.guild, "after-dark", nsfw=True)
    follower = persona("lilith", extra="nsfw: true\n"
                                       "triggers: {from_personas: [ada], keywords: [once]}\n")
    fake_openai.answer("start a story", "once upon a time")
    fake_openai.answer("start one here", "once more")
    async with running_bot(emu, tmp_path / "log.db", [ADA, follower], fake_openai) as bot:
        there = await emu.user_says(server.alice, after_dark, "ada, start a story")
        await until_recorded(bot, there)
        await bot.dispatcher.wait_idle()
        here = await emu.user_says(server.alice, server.general, "ada, start one here")
        await until_recorded(bot, here)
        await bot.dispatcher.wait_idle()
        lilith = [(e.type, e.data["reason"]) for e in await bot.events(
            "PersonaTriggered", "TriggerRejected") if e.data["persona_id"] == "lilith"]
    # the chain carries the channel's flag from the message that started it
    assert lilith == [("PersonaTriggered", "keyword"),
                      ("TriggerRejected", "age_restricted:channel")]


async def test_greet_and_the_persona_list_keep_an_nsfw_persona_out_of_other_channels(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    greeter = load_persona_text(
        "id: lilith\nname: Lilith\nnsfw: true\nmodel: {provider: fake, name: fake-model}\n"
        "prompt: {system: hi, greeting: Welcome.}\n", file="lilith.yaml", defaults={},
        known_providers=("fake",))
    async with running_bot(emu, tmp_path / "log.db", [greeter, ADA], fake_openai) as bot:
        await emu.wait_for_command("greet")
        asked = await emu.user_invokes("greet", {"persona": "lilith"}, server.general,
                                       server.alice)
        refusal = await answer_of(emu, asked)
        listed = await answer_of(emu, await emu.user_invokes("personas", {}, server.general,
                                                             server.alice))
        posted = [m.content for m in bot.ours_in(server.general)]
    assert refusal.content == "I only talk in age-restricted channels."
    assert "Welcome." not in posted
    assert "Lilith" not in listed.content and "Ada" in listed.content


async def test_the_gate_follows_the_channel_setting_as_moderators_change_it(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    async with running_bot(emu, tmp_path / "log.db", [LILITH], fake_openai) as bot:
        before = await decision(bot, await emu.user_says(server.alice, server.general,
                                                         "lilith, hi"))
        emu.set_nsfw(server.general, True)
        await emu.hub.flush()
        during = await decision(bot, await emu.user_says(server.alice, server.general,
                                                         "lilith, hi again"))
        emu.set_nsfw(server.general, False)
        await emu.hub.flush()
        after = await decision(bot, await emu.user_says(server.alice, server.general,
                                                        "lilith, still there?"))
    assert [before[1], during[1], after[1]] == [
        "age_restricted:channel", "keyword", "age_restricted:channel"]
