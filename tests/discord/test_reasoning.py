"""Reasoning output: hidden, a spoiler block, or a text file with the reply; recorded in
the log whatever users see."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.personas.loader import load_persona_text
from tests.fakes.discord import DiscordEmulator
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI, Fault

from .conftest import PROVIDERS, running_bot

THINKING = "The user greets me. I should greet back || politely."


@pytest.mark.parametrize("mode", ["hide", "spoiler", "attach"])
async def test_reasoning_is_shown_as_the_persona_says_and_always_recorded(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path,
        mode: str) -> None:
    ada = load_persona_text(
        "id: ada\nname: Ada\nmodel: {provider: fake, name: fake-model}\n"
        f"prompt: {{system: 'You are Ada.'}}\nreasoning: {mode}\n", file="ada.yaml",
        defaults={}, known_providers=PROVIDERS)
    fake_openai.script(Fault.with_reasoning(THINKING, via="field"))
    async with running_bot(emu, tmp_path / "log.db", [ada], fake_openai) as bot:
        asked = await emu.user_says(server.alice, server.general, "hello there",
                                    mentions=[emu.bot_user])
        reply = await bot.reply_to(asked)
        await bot.dispatcher.wait_idle()
        (replied,) = await bot.events("ModelReplied")
        (delivered,) = await bot.events("ReplyDelivered")
        posted = [emu.message(int(i)) for i in delivered.data["delivered_ids"]]

    answer = FakeOpenAI.reply_for(fake_openai.requests[-1].messages)
    assert replied.data["reasoning"] == THINKING, "the log keeps it in every mode"
    assert replied.data["text"] == answer
    if mode == "hide":
        assert reply.content == answer and len(posted) == 1
        assert "greet back" not in reply.content
    elif mode == "spoiler":
        assert reply.content == ("🤔 ||The user greets me. I should greet back |\u200b| "
                                 f"politely.||\n\n{answer}")
        assert len(posted) == 1
    else:
        assert reply.content == answer
        (file_message,) = posted[1:]
        (attached,) = file_message.attachments
        assert attached.filename == "reasoning.txt"
        assert attached.content.decode() == THINKING
        assert file_message.webhook_id == reply.webhook_id, "sent as the persona"
