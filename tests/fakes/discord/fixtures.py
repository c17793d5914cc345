"""pytest fixtures for tests that talk to the emulator: loaded for every test through
``pytest_plugins`` in ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from .disnake_setup import disnake_pointed_at
from .emulator import DiscordEmulator
from .model import Channel, Guild, User


@dataclass(frozen=True)
class Server:
    """The emulated world most tests use: one guild, #general, alice and bob."""

    guild: Guild
    general: Channel
    alice: User
    bob: User

    @classmethod
    def build(cls, emu: DiscordEmulator) -> Server:
        """A guild with #general and two members, alice and bob."""
        guild = emu.add_guild("Test Guild")
        alice = emu.add_user("alice")
        bob = emu.add_user("bob")
        emu.add_member(guild, alice)
        emu.add_member(guild, bob)
        general = emu.add_text_channel(guild, "general")
        return cls(guild, general, alice, bob)


@pytest.fixture
async def emu() -> AsyncIterator[DiscordEmulator]:
    """A running emulator, with disnake's REST base pointed at it for the test."""
    async with DiscordEmulator(bot_name="Personae") as emulator:
        with disnake_pointed_at(emulator.api_base_url):
            yield emulator


@pytest.fixture
def server(emu: DiscordEmulator) -> Server:
    """A guild with #general and two members, alice and bob."""
    return Server.build(emu)
