"""The basic path: a mention in a channel, answered by the persona through a webhook."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.discord import DiscordEmulator
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI

from .conftest import persona, running_bot


async def test_mention_is_answered_through_a_webhook_as_the_persona(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai) as bot:
        asked = await emu.user_says(server.alice, server.general, "what is a list?",
                                    mentions=[emu.bot_user])
        reply = await bot.reply_to(asked)
        await bot.dispatcher.wait_idle()
        delivered = await bot.events("ReplyDelivered")

    assert reply.webhook_id is not None
    assert reply.author.username == "Ada"
    assert reply.webhook_avatar_url == "https://example.org/ada.png"
    sent = fake_openai.requests[-1].messages
    assert sent[-1]["content"] == "what is a list?"
    assert reply.content == FakeOpenAI.reply_for(sent)
    assert [e.data["delivered_ids"] for e in delivered] == [[str(reply.id)]]
