"""Every trigger kind, from a real Discord message to the persona's answer."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.discord import DiscordEmulator, permissions
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI

from .conftest import persona, running_bot, triggers_of


async def test_mentions_of_the_bot_user_and_of_its_managed_role(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    personas = [persona("ada"), persona("max")]
    async with running_bot(emu, tmp_path / "log.db", personas, fake_openai) as bot:
        by_user = await emu.user_says(server.alice, server.general, "ada, hello",
                                      mentions=[emu.bot_user])
        assert await triggers_of(bot, by_user) == [("ada", "mention")]
        by_role = await emu.user_says(server.bob, server.general, "max: and you?",
                                      mentions=[emu.bot_role(server.guild)])
        assert await triggers_of(bot, by_role) == [("max", "mention")]
        everyone = await emu.user_says(server.bob, server.general, "who is here?",
                                       mentions=[emu.bot_user])
        assert sorted(await triggers_of(bot, everyone)) == [("ada", "mention"),
                                                            ("max", "mention")]
        unaddressed = await emu.user_says(server.alice, server.general, "just chatting")
        assert await triggers_of(bot, unaddressed) == []
        other_role = emu.add_role(server.guild, "helpers", mentionable=True)
        to_role = await emu.user_says(server.alice, server.general, "ada?",
                                      mentions=[other_role])
        assert await triggers_of(bot, to_role) == []
        reply = await bot.reply_to(by_role)

    assert reply.author.username == "Max"
    # the bot's own mention is not part of what the model reads
    assert fake_openai.requests[1].messages[-1]["content"] == "max: and you?"


async def test_direct_messages_are_answered_by_a_bot_message_headed_by_the_persona(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai) as bot:
        dm = emu.dm_channel(server.alice)
        asked = await emu.user_says(server.alice, dm, "a private question")
        reply = await bot.reply_to(asked)
        assert await triggers_of(bot, asked) == [("ada", "dm")]

    assert reply.channel_id == dm.id
    assert reply.webhook_id is None and reply.author.id == emu.bot_user.id
    assert reply.content.startswith("**Ada**\nreply ")
    assert reply.content.endswith("to: a private question")
    assert emu.webhooks_in(dm) == []


async def test_a_reply_to_a_persona_webhook_message_goes_to_that_persona_with_context(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    personas = [persona("ada"), persona("max")]
    async with running_bot(emu, tmp_path / "log.db", personas, fake_openai) as bot:
        first = await emu.user_says(server.alice, server.general, "max, name a prime",
                                    mentions=[emu.bot_user])
        answer = await bot.reply_to(first)
        assert answer.webhook_id is not None and answer.author.username == "Max"
        follow_up = await emu.user_says(server.alice, server.general, "and the next one?",
                                        reply_to=answer)
        second = await bot.reply_to(follow_up)
        assert await triggers_of(bot, follow_up) == [("max", "reply")]

    assert second.author.username == "Max"
    sent = fake_openai.requests[-1].messages
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "max, name a prime"), ("assistant", answer.content),
        ("user", "and the next one?")]


async def test_keywords_and_channels_that_answer_everything(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    lounge = emu.add_text_channel(server.guild, "lounge")
    personas = [persona("ada", extra="triggers: {keywords: ['hey ada']}\n"),
                persona("max", extra=f"triggers: {{channels: ['{lounge.id}']}}\n")]
    async with running_bot(emu, tmp_path / "log.db", personas, fake_openai) as bot:
        keyword = await emu.user_says(server.alice, server.general, "Hey Ada, what's up")
        not_keyword = await emu.user_says(server.alice, server.general, "heya dad")
        in_lounge = await emu.user_says(server.bob, lounge, "anyone around")
        assert await triggers_of(bot, keyword) == [("ada", "keyword")]
        assert await triggers_of(bot, not_keyword) == []
        assert await triggers_of(bot, in_lounge) == [("max", "channel")]
        answered = await bot.reply_to(in_lounge)

    assert answered.channel_id == lounge.id and answered.author.username == "Max"
    assert [m.author.username for m in bot.ours_in(server.general)] == ["Ada"]


async def test_a_reply_to_a_persona_bot_message_pings_the_bot_but_goes_to_that_persona(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    emu.set_overwrite(server.general, emu.bot_role(server.guild),
                      deny=permissions.MANAGE_WEBHOOKS)
    personas = [persona("ada"), persona("max")]
    async with running_bot(emu, tmp_path / "log.db", personas, fake_openai) as bot:
        first = await emu.user_says(server.alice, server.general, "max, hello",
                                    mentions=[emu.bot_user])
        answer = await bot.reply_to(first)
        assert answer.webhook_id is None and answer.content.startswith("**Max**\n")
        follow_up = await emu.user_says(server.alice, server.general, "go on", reply_to=answer)
        assert emu.bot_user.id in emu.pings(follow_up).user_ids
        assert await triggers_of(bot, follow_up) == [("max", "reply")]
        second = await bot.reply_to(follow_up)

    assert second.content.startswith("**Max**\n") and second.reference_id == follow_up.id
