"""A reply delivered again after a crash finds what Discord already has of it only by
what the bot controls: a slash command's answer carries the command's id."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from core.adapters.discord import PLATFORM
from core.dispatcher.messages import OutboundFile, OutboundReply, ReplyTarget
from tests.fakes.discord import DiscordEmulator
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI

from .conftest import persona, running_bot
from .test_commands import answer_of


async def test_a_recovered_slash_command_reply_is_found_by_the_command_not_posted_again(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai) as bot:
        await emu.wait_for_command("ask")
        asked = await emu.user_invokes("ask", {"persona": "ada", "prompt": "hello"},
                                       server.general, server.alice)
        answer = await answer_of(emu, asked)
        await bot.dispatcher.wait_idle()
        (replied,) = await bot.events("ModelReplied")
        before = len(emu.messages_in(server.general))
        receipt = await bot.adapter.sink.deliver(OutboundReply(
            target=ReplyTarget(platform=PLATFORM, channel_id=str(server.general.id),
                               message_id=str(asked.id), author_id=str(server.alice.id),
                               guild_id=str(server.guild.id)),
            persona_id="ada", persona_name="Ada", text=replied.data["text"], recovered=True))

    assert receipt.message_ids == (str(answer.id),)
    assert len(emu.messages_in(server.general)) == before


async def test_a_recovered_reply_with_a_file_finds_its_file_message_not_posting_it_again(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    async with running_bot(emu, tmp_path / "log.db", [persona("ada")], fake_openai) as bot:
        asked = await emu.user_says(server.alice, server.general, "hello")
        await bot.dispatcher.wait_idle()
        reply = OutboundReply(
            target=ReplyTarget(platform=PLATFORM, channel_id=str(server.general.id),
                               message_id=str(asked.id), author_id=str(server.alice.id),
                               guild_id=str(server.guild.id)),
            persona_id="ada", persona_name="Ada", text="Here is my thinking.",
            files=(OutboundFile(filename="reasoning.txt", content=b"step one"),))
        first = await bot.adapter.sink.deliver(reply)
        before = len(emu.messages_in(server.general))
        again = await bot.adapter.sink.deliver(dataclasses.replace(reply, recovered=True))

    assert len(first.message_ids) == 2
    posted = emu.world.messages[int(first.message_ids[1])]
    assert [a.filename for a in posted.attachments] == ["reasoning.txt"]
    assert again.message_ids == first.message_ids
    assert len(emu.messages_in(server.general)) == before
