"""Discord permission bits and the channel permission computation Discord applies."""

from __future__ import annotations

from collections.abc import Iterable

from .model import Channel, Member, Overwrite, Role

CREATE_INSTANT_INVITE = 1 << 0
KICK_MEMBERS = 1 << 1
BAN_MEMBERS = 1 << 2
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
USE_EXTERNAL_EMOJIS = 1 << 18
MANAGE_ROLES = 1 << 28
MANAGE_WEBHOOKS = 1 << 29
USE_APPLICATION_COMMANDS = 1 << 31
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
CREATE_PRIVATE_THREADS = 1 << 36
SEND_MESSAGES_IN_THREADS = 1 << 38

ALL = (1 << 51) - 1

EVERYONE_DEFAULT = (
    CREATE_INSTANT_INVITE
    | ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | USE_APPLICATION_COMMANDS
    | CREATE_PUBLIC_THREADS
    | SEND_MESSAGES_IN_THREADS
)
"""What a new guild's @everyone role allows."""

BOT_DEFAULT = (
    EVERYONE_DEFAULT
    | MANAGE_MESSAGES
    | MANAGE_WEBHOOKS
    | MANAGE_THREADS
    | CREATE_PUBLIC_THREADS
    | SEND_MESSAGES_IN_THREADS
)
"""What the emulator's bot role allows unless a test says otherwise."""


def channel_permissions(
    *,
    guild_id: int,
    owner_id: int,
    member: Member,
    roles: Iterable[Role],
    overwrites: Iterable[Overwrite],
) -> int:
    """The member's permissions in a channel with ``overwrites`` (Discord's algorithm).

    ``roles`` are all the guild's roles; the @everyone role has the guild's id.
    """
    if member.user_id == owner_id:
        return ALL
    by_id = {role.id: role for role in roles}
    base = by_id[guild_id].permissions if guild_id in by_id else 0
    for role_id in member.role_ids:
        if role_id in by_id:
            base |= by_id[role_id].permissions
    if base & ADMINISTRATOR:
        return ALL
    listed = list(overwrites)
    everyone = [o for o in listed if o.target_id == guild_id and not o.is_member]
    for overwrite in everyone:
        base = (base & ~overwrite.deny) | overwrite.allow
    allow = deny = 0
    for overwrite in listed:
        if not overwrite.is_member and overwrite.target_id in member.role_ids:
            allow |= overwrite.allow
            deny |= overwrite.deny
    base = (base & ~deny) | allow
    for overwrite in listed:
        if overwrite.is_member and overwrite.target_id == member.user_id:
            base = (base & ~overwrite.deny) | overwrite.allow
    return base


def overwrites_for(channel: Channel, parent: Channel | None) -> tuple[Overwrite, ...]:
    """Threads take their parent channel's overwrites."""
    return parent.permission_overwrites if parent is not None else channel.permission_overwrites
