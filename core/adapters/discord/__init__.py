"""The Discord adapter (disnake): gateway events in, persona replies out.

See docs/discord.md for setting up the application and how the bot behaves.
"""

from .adapter import (
    BOT_PERMISSIONS,
    DiscordAdapter,
    DiscordAdapterSettings,
    bot_intents,
    invite_url,
)
from .chunking import split_message
from .inbound import PLATFORM

__all__ = [
    "BOT_PERMISSIONS",
    "PLATFORM",
    "DiscordAdapter",
    "DiscordAdapterSettings",
    "bot_intents",
    "invite_url",
    "split_message",
]
