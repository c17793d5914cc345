"""Discord messages as the dispatcher's neutral messages.

The author's roles are known only when Discord sent them (a live guild message);
otherwise :class:`~core.dispatcher.messages.Author` says so (``roles_known=False``) and
the dispatcher looks them up where a rule needs them (:mod:`.members`).

A mention of the bot user or of its managed role (written in the message, not the
automatic ping of a reply) addresses the personas the message names, or every
persona when it names none. Other mentions become readable ``@name`` / ``#channel``
text for the model. Replies carry the replied message's id; the dispatcher resolves
through the log which persona, if any, wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import disnake

from ...dispatcher.messages import Author, InboundDeletion, InboundEdit, InboundMessage
from ...dispatcher.triggers import SCANNED_CHARS
from ...patterns import words_regex
from ...personas.model import Persona

PLATFORM = "discord"

_USER_TOKEN = re.compile(r"<@!?(\d+)>")
_ROLE_TOKEN = re.compile(r"<@&(\d+)>")
_CHANNEL_TOKEN = re.compile(r"<#(\d+)>")
_SPACES = re.compile(r"[ \t]{2,}")


@dataclass(frozen=True, slots=True)
class Names:
    """How to show ids as names: users, roles and channels (missing ones stay as written)."""

    users: Mapping[int, str]
    roles: Mapping[int, str]
    channel: Callable[[int], str | None]


def inbound_message(message: disnake.Message, personas: Iterable[Persona], bot_user_id: int
                    ) -> InboundMessage:
    """``message`` as an :class:`InboundMessage` (see the module docstring)."""
    guild = message.guild
    bot_role = _bot_role_id(guild, bot_user_id)
    names = Names(
        users={u.id: u.display_name for u in message.mentions},
        roles={r.id: r.name for r in message.role_mentions},
        channel=lambda cid: _channel_name(guild, cid),
    )
    content = message.content or ""
    addressed = bot_is_addressed(content, bot_user_id, bot_role)
    text = readable_text(content, names, bot_user_id, bot_role)
    channel = message.channel
    parent_id = getattr(channel, "parent_id", None) if isinstance(channel, disnake.Thread) else None
    author = message.author
    roles = member_roles(author, guild)
    reference = message.reference
    return InboundMessage(
        platform=PLATFORM,
        message_id=str(message.id),
        channel_id=str(channel.id),
        author=Author(id=str(author.id), display_name=author.display_name,
                      is_bot=bool(author.bot or message.webhook_id), roles=roles or frozenset(),
                      roles_known=roles is not None),
        text=text,
        guild_id=str(guild.id) if guild else None,
        parent_channel_id=str(parent_id) if parent_id else None,
        is_dm=guild is None,
        reply_to=str(reference.message_id) if reference and reference.message_id else None,
        mentions=frozenset(addressed_personas(text, personas)) if addressed else frozenset(),
        sent_at=message.created_at.timestamp(),
        channel_name=getattr(channel, "name", None),
        guild_name=guild.name if guild else None,
        channel_nsfw=channel_nsfw(channel),
    )


def channel_nsfw(channel: object) -> bool | None:
    """Whether Discord marks ``channel`` age-restricted: a thread is when its parent is
    (Discord sends no flag for threads; a parent not in the cache counts as not). None
    for a channel without the flag (DMs)."""
    is_nsfw = getattr(channel, "is_nsfw", None)
    if isinstance(channel, disnake.DMChannel | disnake.GroupChannel) or not callable(is_nsfw):
        return None
    return bool(is_nsfw())


def member_roles(author: disnake.User | disnake.Member, guild: disnake.Guild | None
                 ) -> frozenset[str] | None:
    """The role ids Discord sent with ``author`` (a Member: a live guild message or a
    guild interaction), without @everyone; None when it sent none (a User: history, a
    DM, a DM's slash command), which is not the same as having none."""
    if guild is None or not isinstance(author, disnake.Member):
        return None
    return frozenset(str(r.id) for r in author.roles if r.id != guild.id)


def inbound_edit(payload: disnake.RawMessageUpdateEvent, guild: disnake.Guild | None,
                 bot_user_id: int) -> InboundEdit | None:
    """A content edit as an :class:`InboundEdit`; None for updates that change no text
    (embeds unfurling, pins)."""
    data = payload.data
    if "content" not in data or not data.get("edited_timestamp"):
        return None
    names = Names(
        users={int(u["id"]): u.get("global_name") or u.get("username", "")
               for u in data.get("mentions", [])},
        roles={r.id: r.name for r in (guild.roles if guild else ())},
        channel=lambda cid: _channel_name(guild, cid),
    )
    text = readable_text(data["content"], names, bot_user_id, _bot_role_id(guild, bot_user_id))
    return InboundEdit(
        platform=PLATFORM,
        message_id=str(payload.message_id),
        channel_id=str(payload.channel_id),
        text=text,
        edited_at=str(data["edited_timestamp"]),
    )


def inbound_deletion(message_id: int, channel_id: int) -> InboundDeletion:
    """A deleted message."""
    return InboundDeletion(platform=PLATFORM, message_id=str(message_id), channel_id=str(channel_id))


def bot_is_addressed(content: str, bot_user_id: int, bot_role_id: int | None) -> bool:
    """True when ``content`` itself mentions the bot user or its managed role."""
    if any(int(m) == bot_user_id for m in _USER_TOKEN.findall(content)):
        return True
    return bot_role_id is not None and any(int(m) == bot_role_id
                                           for m in _ROLE_TOKEN.findall(content))


def addressed_personas(text: str, personas: Iterable[Persona]) -> list[str]:
    """The personas a message to the bot is for: those it names, else every persona."""
    candidates = list(personas)
    named = [p.id for p in candidates if _names(text, p)]
    return named or [p.id for p in candidates]


def readable_text(content: str, names: Names, bot_user_id: int, bot_role_id: int | None) -> str:
    """``content`` with the bot's own mentions removed and other mentions as names."""

    def user(match: re.Match[str]) -> str:
        uid = int(match.group(1))
        if uid == bot_user_id:
            return ""
        return f"@{names.users[uid]}" if uid in names.users else match.group(0)

    def role(match: re.Match[str]) -> str:
        rid = int(match.group(1))
        if rid == bot_role_id:
            return ""
        return f"@{names.roles[rid]}" if rid in names.roles else match.group(0)

    def channel(match: re.Match[str]) -> str:
        name = names.channel(int(match.group(1)))
        return f"#{name}" if name else match.group(0)

    text = _CHANNEL_TOKEN.sub(channel, _ROLE_TOKEN.sub(role, _USER_TOKEN.sub(user, content)))
    return _SPACES.sub(" ", text).strip()


def _names(text: str, persona: Persona) -> bool:
    names = words_regex((persona.id, persona.name))
    return names is not None and names.search(text[:SCANNED_CHARS]) is not None


def _bot_role_id(guild: disnake.Guild | None, bot_user_id: int) -> int | None:
    if guild is None:
        return None
    role = guild.self_role
    if role is not None:
        return role.id
    return next((r.id for r in guild.roles if r.tags and r.tags.bot_id == bot_user_id), None)


def _channel_name(guild: disnake.Guild | None, channel_id: int) -> str | None:
    if guild is None:
        return None
    channel = guild.get_channel_or_thread(channel_id)
    return channel.name if channel is not None else None
