"""How replies look on Discord: webhook identity, the fallback, chunking, and pings."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from core.adapters.discord import DiscordAdapterSettings
from core.adapters.discord.chunking import DISCORD_MESSAGE_LIMIT
from tests.fakes.discord import DiscordEmulator, permissions
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI, Fault

from .conftest import persona, running_bot, triggers_of

FENCE = re.compile(r"^```", re.MULTILINE)


def long_reply_with_code() -> str:
    intro = "Here is the whole program, explained step by step. " * 30
    code = "```python\n" + "\n".join(
        f"def step_{i}(value):\n    return value * {i} + {i}  # step {i}" for i in range(75)
    ) + "\n```"
    outro = "That is all. Run it with python3 and it prints the table. " * 12
    return f"{intro}\n\n{code}\n\n{outro}"


async def test_personas_share_one_webhook_per_channel_each_with_its_own_identity(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    personas = [persona("ada"), persona("max")]
    async with running_bot(emu, tmp_path / "log.db", personas, fake_openai) as bot:
        to_ada = await emu.user_says(server.alice, server.general, "ada, hi",
                                     mentions=[emu.bot_user])
        from_ada = await bot.reply_to(to_ada)
        to_max = await emu.user_says(server.alice, server.general, "max, hi",
                                     mentions=[emu.bot_user])
        from_max = await bot.reply_to(to_max)

    assert (from_ada.author.username, from_ada.webhook_avatar_url) == (
        "Ada", "https://example.org/ada.png")
    assert (from_max.author.username, from_max.webhook_avatar_url) == (
        "Max", "https://example.org/max.png")
    assert from_ada.webhook_id == from_max.webhook_id
    assert len(emu.webhooks_in(server.general)) == 1
    assert len(emu.requests_to("POST /channels/{channel_id}/webhooks")) == 1


async def test_without_manage_webhooks_a_bot_reply_headed_by_the_persona(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    emu.set_overwrite(server.general, emu.bot_role(server.guild),
                      deny=permissions.MANAGE_WEBHOOKS)
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai) as bot:
        asked = await emu.user_says(server.alice, server.general, "hello there",
                                    mentions=[emu.bot_user])
        reply = await bot.reply_to(asked)

    assert reply.webhook_id is None and reply.author.id == emu.bot_user.id
    assert reply.reference_id == asked.id
    assert reply.content.startswith("**Ada**\n") and reply.content.endswith("to: hello there")
    assert emu.webhooks_in(server.general) == []
    assert emu.requests_to("POST /channels/{channel_id}/webhooks") == []


async def test_a_5000_character_reply_with_code_is_split_with_balanced_fences(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    text = long_reply_with_code()
    assert len(text) > 5000
    fake_openai.answer("the whole program", text)
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai) as bot:
        asked = await emu.user_says(server.alice, server.general, "show me the whole program",
                                    mentions=[emu.bot_user])
        await bot.reply_to(asked)
        await bot.dispatcher.wait_idle()
        delivered = (await bot.events("ReplyDelivered"))[0].data["delivered_ids"]

    parts = [emu.message(int(i)).content for i in delivered]
    assert len(parts) >= 3
    assert [m.id for m in bot.ours_in(server.general)] == [int(i) for i in delivered]
    for part in parts:
        assert len(part) <= DISCORD_MESSAGE_LIMIT
        assert len(FENCE.findall(part)) % 2 == 0, part
    code_parts = [p for p in parts if "def step_" in p]
    assert len(code_parts) >= 2
    assert all(p.count("```python") == 1 for p in code_parts)
    joined = "".join(parts)
    for i in range(75):
        assert f"return value * {i} + {i}  # step {i}" in joined
    assert joined.count("Here is the whole program") == 30


async def test_model_written_mass_mentions_ping_nobody_but_the_person_answered(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    helpers = emu.add_role(server.guild, "helpers", mentionable=True)
    emu.add_member(server.guild, server.bob, roles=[helpers])
    fake_openai.answer("ping them", f"@everyone @here <@&{helpers.id}> <@{server.bob.id}> "
                                    f"and you, <@{server.alice.id}>")
    fake_openai.answer("quietly", f"@everyone <@&{helpers.id}> <@{server.bob.id}> done")
    bare = emu.add_text_channel(server.guild, "no-webhooks")
    emu.set_overwrite(bare, emu.bot_role(server.guild), deny=permissions.MANAGE_WEBHOOKS)
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai) as bot:
        loud = await emu.user_says(server.alice, server.general, "ping them",
                                   mentions=[emu.bot_user])
        via_webhook = await bot.reply_to(loud)
        quiet = await emu.user_says(server.alice, server.general, "quietly",
                                    mentions=[emu.bot_user])
        quiet_reply = await bot.reply_to(quiet)
        plain = await emu.user_says(server.alice, bare, "ping them", mentions=[emu.bot_user])
        as_bot = await bot.reply_to(plain)
        assert await triggers_of(bot, plain) == [("ada", "mention")]

    assert via_webhook.webhook_id is not None and "@everyone" in via_webhook.content
    assert emu.pings(via_webhook).notified_user_ids == {server.alice.id}
    assert not emu.pings(via_webhook).everyone and not emu.pings(via_webhook).role_ids
    assert emu.pings(quiet_reply).nobody
    assert as_bot.webhook_id is None and as_bot.reference_id == plain.id
    assert emu.pings(as_bot).notified_user_ids == {server.alice.id}
    assert not emu.pings(as_bot).everyone and not emu.pings(as_bot).role_ids


async def test_typing_shows_while_the_model_works(
        emu: DiscordEmulator, server: Server, tmp_path: Path) -> None:
    async with FakeOpenAI(latency_s=0.4) as slow, running_bot(
            emu, tmp_path / "log.db", [persona("ada")], slow) as bot:
        asked = await emu.user_says(server.alice, server.general, "think first",
                                    mentions=[emu.bot_user])
        reply = await bot.reply_to(asked)

    typing = emu.typing_in(server.general)
    assert typing and typing[0] < reply.created_at
    assert reply.created_at - typing[0] >= 0.3


async def test_streamed_replies_are_edited_at_most_once_per_interval(
        emu: DiscordEmulator, server: Server, tmp_path: Path) -> None:
    words = " ".join(f"word{i}" for i in range(24))
    streaming = persona("ada", extra="delivery: {stream_edits: true}\n")
    settings = DiscordAdapterSettings(stream_interval_s=0.25)
    async with FakeOpenAI(tokens_per_second=24) as paced, running_bot(
            emu, tmp_path / "log.db", [streaming], paced, settings=settings) as bot:
        paced.answer("stream it", words)
        asked = await emu.user_says(server.alice, server.general, "stream it",
                                    mentions=[emu.bot_user])
        assert await triggers_of(bot, asked) == [("ada", "mention")]
        delivered = (await bot.events("ReplyDelivered"))[0].data["delivered_ids"]

    message = emu.message(int(delivered[0]))
    assert len(delivered) == 1 and message.webhook_id is not None
    assert message.content == words
    assert len(message.edits) >= 2
    assert message.edits[0].previous_content != words
    times = [message.created_at] + [e.at for e in message.edits]
    assert all(b - a >= 0.24 for a, b in itertools.pairwise(times))
    assert bot.ours_in(server.general) == [message] and asked.id < message.id


async def test_a_model_failure_is_a_short_notice_as_the_persona(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script(Fault.http_error(400, code="invalid_request"))
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai) as bot:
        asked = await emu.user_says(server.alice, server.general, "fail please",
                                    mentions=[emu.bot_user])
        notice = await bot.reply_to(asked)
        await bot.dispatcher.wait_idle()
        failed = await bot.events("ModelFailed")

    assert len(failed) == 1
    assert notice.author.username == "Ada"
    assert notice.content == "Sorry, I can't answer right now. Please try again in a moment."
    assert emu.pings(notice).nobody
