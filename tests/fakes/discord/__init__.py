"""A Discord emulator (REST + gateway on 127.0.0.1) for running the real disnake client.

See docs/emulator.md for how tests use it.
"""

from . import permissions
from .disnake_setup import (
    GUILD_READY_TIMEOUT,
    disnake_pointed_at,
    fast_client_options,
    running_client,
    skip_identify_delay,
)
from .emulator import DiscordEmulator, File
from .gateway import (
    DIRECT_MESSAGES,
    GUILD_MEMBERS,
    GUILD_MESSAGES,
    GUILDS,
    MESSAGE_CONTENT,
    PRIVILEGED_INTENTS,
    GatewayConnectionRecord,
)
from .model import (
    EPHEMERAL,
    LOADING,
    ApplicationCommand,
    Attachment,
    Channel,
    Guild,
    Interaction,
    InteractionCallback,
    Member,
    Message,
    MessageEdit,
    Overwrite,
    Pings,
    Role,
    User,
    Webhook,
)
from .recording import RestRequest

__all__ = [
    "DIRECT_MESSAGES",
    "EPHEMERAL",
    "GUILDS",
    "GUILD_MEMBERS",
    "GUILD_MESSAGES",
    "GUILD_READY_TIMEOUT",
    "LOADING",
    "MESSAGE_CONTENT",
    "PRIVILEGED_INTENTS",
    "ApplicationCommand",
    "Attachment",
    "Channel",
    "DiscordEmulator",
    "File",
    "GatewayConnectionRecord",
    "Guild",
    "Interaction",
    "InteractionCallback",
    "Member",
    "Message",
    "MessageEdit",
    "Overwrite",
    "Pings",
    "RestRequest",
    "Role",
    "User",
    "Webhook",
    "disnake_pointed_at",
    "fast_client_options",
    "permissions",
    "running_client",
    "skip_identify_delay",
]
