"""One persona per DM: the one the person talks with (from the log, across restarts),
else the configured default, else the first by name; others only when named."""

from __future__ import annotations

from pathlib import Path

from core.config import load_config
from core.dispatcher.dispatcher import DispatcherSettings
from tests.fakes.discord import DiscordEmulator
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI

from .conftest import Bot, persona, running_bot, until_recorded


async def answered_by(bot: Bot, message) -> list[str]:
    await until_recorded(bot, message)
    await bot.dispatcher.wait_idle()
    return sorted(e.data["persona_id"] for e in await bot.events("PersonaTriggered")
                  if e.data["message_id"] == str(message.id))


async def test_a_dm_is_answered_by_one_persona_the_one_talked_with_unless_another_is_named(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    personas = [persona("cy"), persona("bob"), persona("ada")]
    db = tmp_path / "log.db"
    alice, grace = server.alice, emu.add_user("grace")
    to_alice, to_grace = emu.dm_channel(alice), emu.dm_channel(grace)
    async with running_bot(emu, db, personas, fake_openai) as bot:
        first = await answered_by(bot, await emu.user_says(alice, to_alice, "hello"))
        named = await answer_all(bot, emu, alice, "bob, your turn")
        after = await answered_by(bot, await emu.user_says(alice, to_alice, "and now?"))
        both = await answered_by(bot, await emu.user_says(alice, to_alice, "ada and cy?"))
        back = await answer_all(bot, emu, alice, "back to you, Bob")
    assert first == ["ada"]  # nobody talked with yet, no default: the first by name
    assert named == ["bob"] and after == ["bob"]
    assert both == ["ada", "cy"] and back == ["bob"]
    settings = DispatcherSettings(shutdown_deadline_s=5, dm_default_persona="cy")
    async with running_bot(emu, db, personas, fake_openai,
                           dispatcher_settings=settings) as bot:
        restarted = await answered_by(bot, await emu.user_says(alice, to_alice, "still you?"))
        newcomer = await answered_by(bot, await emu.user_says(grace, to_grace, "hi"))
        replies = bot.ours_in(to_alice)

    # the one talked with there comes from the log, not from memory, and wins the default
    assert restarted == ["bob"]
    assert newcomer == ["cy"]  # the configured default
    assert len(replies) == 7  # one per persona that took a turn, never one per persona


async def answer_all(bot: Bot, emu: DiscordEmulator, user, text: str) -> list[str]:
    return await answered_by(bot, await emu.user_says(user, emu.dm_channel(user), text))


def test_the_default_dm_persona_is_a_config_setting(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("dms: {default_persona: cy}\n")
    config = load_config(tmp_path / "config.yaml")
    assert config.dm_default_persona == "cy"
    assert DispatcherSettings.from_config(config).dm_default_persona == "cy"
