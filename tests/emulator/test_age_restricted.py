"""Age-restricted channels as Discord serves them: guild channels carry ``nsfw``, threads
carry none (disnake takes the parent's), for channels made before and after connecting."""

from __future__ import annotations

import disnake

from tests.fakes.discord import DiscordEmulator, payloads, running_client
from tests.fakes.discord.fixtures import Server

from .conftest import collect, eventually, make_bot


async def test_channels_carry_nsfw_and_threads_take_their_parents(
    emu: DiscordEmulator, server: Server
) -> None:
    before = emu.add_text_channel(server.guild, "after-dark", nsfw=True)
    bot = make_bot()
    created = collect(bot, "on_thread_create")
    async with running_client(bot, emu.token):
        after = emu.add_text_channel(server.guild, "late-night", nsfw=True)
        await eventually(lambda: bot.get_channel(after.id))
        thread = await emu.user_creates_thread(server.alice, before, "whispers")
        plain_thread = await emu.user_creates_thread(server.alice, server.general, "daylight")
        await eventually(lambda: len(created) == 2)
        seen = {c.id: bot.get_channel(c.id) or bot.get_guild(server.guild.id).get_thread(c.id)
                for c in (before, after, server.general, thread, plain_thread)}
    assert all(isinstance(c, disnake.TextChannel | disnake.Thread) for c in seen.values())
    assert [seen[c.id].is_nsfw() for c in (before, after, server.general)] == [True, True, False]
    assert seen[thread.id].is_nsfw() is True and seen[plain_thread.id].is_nsfw() is False
    assert payloads.channel(emu.world, before)["nsfw"] is True
    assert "nsfw" not in payloads.channel(emu.world, emu.world.channel(thread.id))
