"""The emulator's Discord state and its rules, without any I/O."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from . import permissions as perms
from .cdn import AttachmentLinks
from .mentions import MentionRights, resolve
from .model import (
    DM,
    GUILD_TEXT,
    LOADING,
    PUBLIC_THREAD,
    ApplicationCommand,
    Attachment,
    Channel,
    CommandOption,
    Guild,
    Interaction,
    Member,
    Message,
    MessageEdit,
    Overwrite,
    Pings,
    Role,
    User,
    Webhook,
)
from .snowflakes import SnowflakeFactory


class WorldError(Exception):
    """A request Discord would refuse: carries the HTTP status and Discord's error JSON."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message


def unknown(kind: str, code: int) -> WorldError:
    return WorldError(404, code, f"Unknown {kind}")


def missing_permissions() -> WorldError:
    return WorldError(403, 50013, "Missing Permissions")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class World:
    """Guilds, channels, roles, members, messages, webhooks and commands.

    ``on_change`` is called after every mutation so waiters can re-check.
    """

    def __init__(self, *, bot_name: str, on_change: Callable[[], None]) -> None:
        self.ids = SnowflakeFactory()
        self._on_change = on_change
        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.roles: dict[int, Role] = {}
        self.members: dict[tuple[int, int], Member] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self._nonces: dict[tuple[int, int, str], int] = {}
        self.webhooks: dict[int, Webhook] = {}
        self.commands: dict[int, ApplicationCommand] = {}
        self.interactions: dict[int, Interaction] = {}
        self.typing: list[tuple[int, float]] = []
        self.links = AttachmentLinks(self.attachment)
        self.bot_user = self.add_user(bot_name, bot=True)

    def attachment(self, attachment_id: int) -> Attachment | None:
        """The attachment ``attachment_id`` of any message (for the CDN)."""
        for message in self.messages.values():
            for attachment in message.attachments:
                if attachment.id == attachment_id:
                    return attachment
        return None

    def new_attachment(self, filename: str, content: bytes, content_type: str | None
                       ) -> Attachment:
        """An uploaded file: Discord gives images their pixel size."""
        width = height = None
        if content_type and content_type.startswith("image/"):
            import io

            import imagesize

            try:
                width, height = imagesize.get(io.BytesIO(content))
            except Exception:
                width = height = None
            if width is None or width <= 0:
                width = height = None
        return Attachment(self.ids.next(), filename, len(content), content_type, content,
                          width, height)

    # building ----------------------------------------------------------------

    def add_user(self, username: str, *, bot: bool = False) -> User:
        user = User(id=self.ids.next(), username=username, bot=bot, global_name=username)
        self.users[user.id] = user
        self._on_change()
        return user

    def add_guild(self, name: str, *, owner: User, bot_permissions: int) -> Guild:
        guild = Guild(id=self.ids.next(), name=name, owner_id=owner.id)
        self.guilds[guild.id] = guild
        self.roles[guild.id] = Role(guild.id, guild.id, "@everyone", perms.EVERYONE_DEFAULT)
        bot_role = Role(
            id=self.ids.next(),
            guild_id=guild.id,
            name=self.bot_user.username,
            permissions=bot_permissions,
            position=1,
            managed_by_bot_id=self.bot_user.id,
        )
        self.roles[bot_role.id] = bot_role
        self.add_member(guild, self.bot_user, roles=(bot_role,))
        self.add_member(guild, owner)
        return guild

    def add_role(self, guild: Guild, name: str, *, permissions: int = 0, mentionable: bool = False) -> Role:
        position = 1 + sum(1 for r in self.roles.values() if r.guild_id == guild.id)
        role = Role(self.ids.next(), guild.id, name, permissions, position, mentionable)
        self.roles[role.id] = role
        self._on_change()
        return role

    def update_role(self, role: Role, **changes: Any) -> Role:
        updated = replace(self.roles[role.id], **changes)
        self.roles[role.id] = updated
        self._on_change()
        return updated

    def add_member(self, guild: Guild, user: User, *, roles: Iterable[Role] = ()) -> Member:
        member = Member(user.id, guild.id, tuple(r.id for r in roles), now_iso())
        self.members[(guild.id, user.id)] = member
        self._on_change()
        return member

    def add_text_channel(self, guild: Guild, name: str, *, overwrites: Iterable[Overwrite] = (),
                         nsfw: bool = False) -> Channel:
        position = sum(1 for c in self.channels.values() if c.guild_id == guild.id)
        channel = Channel(
            id=self.ids.next(),
            type=GUILD_TEXT,
            name=name,
            guild_id=guild.id,
            position=position,
            permission_overwrites=tuple(overwrites),
            nsfw=nsfw,
        )
        self.channels[channel.id] = channel
        self._on_change()
        return channel

    def set_nsfw(self, channel: Channel, nsfw: bool) -> Channel:
        updated = replace(self.channel(channel.id), nsfw=nsfw)
        self.channels[channel.id] = updated
        self._on_change()
        return updated

    def set_overwrite(self, channel: Channel, overwrite: Overwrite) -> Channel:
        current = self.channel(channel.id)
        kept = tuple(
            o
            for o in current.permission_overwrites
            if (o.target_id, o.is_member) != (overwrite.target_id, overwrite.is_member)
        )
        updated = replace(current, permission_overwrites=(*kept, overwrite))
        self.channels[channel.id] = updated
        self._on_change()
        return updated

    def dm_channel(self, user_id: int) -> Channel:
        """The DM channel between the bot and a user (made on first use)."""
        for channel in self.channels.values():
            if channel.type == DM and channel.recipient_ids == (user_id,):
                return channel
        if user_id not in self.users:
            raise unknown("User", 10013)
        channel = Channel(id=self.ids.next(), type=DM, name=None, recipient_ids=(user_id,))
        self.channels[channel.id] = channel
        self._on_change()
        return channel

    def add_thread(
        self,
        parent: Channel,
        name: str,
        *,
        owner_id: int,
        thread_id: int | None = None,
        auto_archive_duration: int = 1440,
    ) -> Channel:
        if parent.type != GUILD_TEXT:
            raise WorldError(400, 50024, "Cannot execute action on this channel type")
        thread = Channel(
            id=thread_id if thread_id is not None else self.ids.next(),
            type=PUBLIC_THREAD,
            name=name,
            guild_id=parent.guild_id,
            parent_id=parent.id,
            owner_id=owner_id,
            auto_archive_duration=auto_archive_duration,
        )
        if thread.id in self.channels:
            raise WorldError(400, 160004, "A thread has already been created for this message")
        self.channels[thread.id] = thread
        self._on_change()
        return thread

    # lookups -----------------------------------------------------------------

    def channel(self, channel_id: int) -> Channel:
        try:
            return self.channels[channel_id]
        except KeyError:
            raise unknown("Channel", 10003) from None

    def message(self, message_id: int) -> Message:
        found = self.messages.get(message_id)
        if found is None or found.deleted:
            raise unknown("Message", 10008)
        return found

    def guild_roles(self, guild_id: int) -> list[Role]:
        return [r for r in self.roles.values() if r.guild_id == guild_id]

    def guild_members(self, guild_id: int) -> list[Member]:
        return [m for (g, _), m in self.members.items() if g == guild_id]

    def guild_channels(self, guild_id: int) -> list[Channel]:
        return [c for c in self.channels.values() if c.guild_id == guild_id]

    def bot_role(self, guild_id: int) -> Role:
        return next(r for r in self.guild_roles(guild_id) if r.managed_by_bot_id == self.bot_user.id)

    def messages_in(self, channel_id: int, *, include_deleted: bool = False) -> list[Message]:
        return sorted(
            (
                m
                for m in self.messages.values()
                if m.channel_id == channel_id and (include_deleted or not m.deleted)
            ),
            key=lambda m: m.id,
        )

    def permissions(self, user_id: int, channel: Channel) -> int:
        """What ``user_id`` may do in ``channel``; in a DM, what a DM allows."""
        if channel.guild_id is None:
            return perms.EVERYONE_DEFAULT & ~perms.MENTION_EVERYONE
        member = self.members.get((channel.guild_id, user_id))
        if member is None:
            return 0
        parent = self.channels.get(channel.parent_id) if channel.parent_id else None
        return perms.channel_permissions(
            guild_id=channel.guild_id,
            owner_id=self.guilds[channel.guild_id].owner_id,
            member=member,
            roles=self.guild_roles(channel.guild_id),
            overwrites=perms.overwrites_for(channel, parent),
        )

    def require(self, user_id: int, channel: Channel, needed: int) -> None:
        if self.permissions(user_id, channel) & needed != needed:
            raise missing_permissions()

    # messages ----------------------------------------------------------------

    def create_message(
        self,
        channel: Channel,
        author: User,
        content: str,
        *,
        reference_id: int | None = None,
        allowed_mentions: Mapping[str, Any] | None = None,
        webhook_id: int | None = None,
        webhook_avatar_url: str | None = None,
        application_id: int | None = None,
        interaction_id: int | None = None,
        flags: int = 0,
        tts: bool = False,
        embeds: Iterable[Mapping[str, Any]] = (),
        attachments: Iterable[Attachment] = (),
        nonce: str | None = None,
    ) -> Message:
        embeds = tuple(embeds)
        attachments = tuple(attachments)
        _check_content(content, embeds, attachments, flags)
        referenced = None
        if reference_id is not None:
            referenced = self.messages.get(reference_id)
            if referenced is None or referenced.channel_id != channel.id:
                raise WorldError(400, 50035, "Invalid Form Body: Unknown message")
        resolved, pings = self._mentions(
            channel,
            author,
            content,
            allowed_mentions,
            referenced,
            by_webhook=webhook_id is not None and interaction_id is None,
        )
        message = Message(
            id=self.ids.next(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=author,
            content=content,
            timestamp=now_iso(),
            created_at=time.monotonic(),
            type=19 if referenced is not None else 0,
            reference_id=reference_id,
            webhook_id=webhook_id,
            webhook_avatar_url=webhook_avatar_url,
            application_id=application_id,
            interaction_id=interaction_id,
            flags=flags,
            tts=tts,
            embeds=tuple(embeds),
            attachments=tuple(attachments),
            allowed_mentions=allowed_mentions,
            mention_user_ids=resolved[0],
            mention_role_ids=resolved[1],
            mention_everyone=resolved[2],
            pings=pings,
            nonce=nonce,
        )
        self.messages[message.id] = message
        if nonce is not None:
            self._nonces[(channel.id, author.id, nonce)] = message.id
        self._on_change()
        return message

    def message_with_nonce(
        self, channel_id: int, author_id: int, nonce: str, *, within_s: float
    ) -> Message | None:
        """The message ``author_id`` created in ``channel_id`` with ``nonce`` in the last
        ``within_s`` seconds (what ``enforce_nonce`` returns instead of a new message)."""
        found = self._nonces.get((channel_id, author_id, nonce))
        if found is None:
            return None
        message = self.messages[found]
        if time.monotonic() - message.created_at > within_s:
            return None
        return message

    def edit_message(
        self,
        message_id: int,
        *,
        content: str | None = None,
        embeds: Iterable[Mapping[str, Any]] | None = None,
        allowed_mentions: Mapping[str, Any] | None = None,
        flags: int | None = None,
        attachments: Iterable[Attachment] | None = None,
    ) -> Message:
        """Edits keep the pings of the original send: Discord notifies only on create.
        ``attachments`` is the message's new list of files (a user can remove some)."""
        current = self.message(message_id)
        new_content = current.content if content is None else content
        new_embeds = current.embeds if embeds is None else tuple(embeds)
        new_flags = (current.flags & ~LOADING) if flags is None else flags
        new_files = current.attachments if attachments is None else tuple(attachments)
        _check_content(new_content, new_embeds, new_files, new_flags)
        channel = self.channel(current.channel_id)
        referenced = self.messages.get(current.reference_id) if current.reference_id else None
        mentions_rule = allowed_mentions if allowed_mentions is not None else current.allowed_mentions
        resolved, _ = self._mentions(
            channel,
            current.author,
            new_content,
            mentions_rule,
            referenced,
            by_webhook=current.by_webhook,
        )
        updated = replace(
            current,
            content=new_content,
            embeds=new_embeds,
            attachments=new_files,
            flags=new_flags,
            allowed_mentions=mentions_rule,
            mention_user_ids=resolved[0],
            mention_role_ids=resolved[1],
            mention_everyone=resolved[2],
            edited_timestamp=now_iso(),
            edits=(*current.edits, MessageEdit(current.content, time.monotonic())),
        )
        self.messages[message_id] = updated
        self._on_change()
        return updated

    def delete_message(self, message_id: int) -> Message:
        deleted = replace(self.message(message_id), deleted=True)
        self.messages[message_id] = deleted
        self._on_change()
        return deleted

    def _mentions(
        self,
        channel: Channel,
        author: User,
        content: str,
        allowed_mentions: Mapping[str, Any] | None,
        referenced: Message | None,
        *,
        by_webhook: bool,
    ) -> tuple[tuple[tuple[int, ...], tuple[int, ...], bool], Pings]:
        if channel.guild_id is None:
            rights = MentionRights(mention_everyone=False, mentionable_role_ids=frozenset())
        else:
            may_everyone = by_webhook or bool(self.permissions(author.id, channel) & perms.MENTION_EVERYONE)
            rights = MentionRights(
                mention_everyone=may_everyone,
                mentionable_role_ids=frozenset(
                    r.id for r in self.guild_roles(channel.guild_id) if r.mentionable
                ),
            )
        replied_user_id = None
        if referenced is not None and referenced.webhook_id is None:
            replied_user_id = referenced.author.id
        found = resolve(content, allowed_mentions, rights, replied_user_id=replied_user_id)
        users = tuple(u for u in found.user_ids if u in self.users)
        roles = tuple(r for r in found.role_ids if r in self.roles)
        notified = set(users)
        if channel.guild_id is not None:
            for member in self.guild_members(channel.guild_id):
                if found.everyone or set(member.role_ids) & set(roles):
                    notified.add(member.user_id)
        notified.discard(author.id)
        pings = Pings(frozenset(users), frozenset(roles), found.everyone, frozenset(notified))
        return (users, roles, found.everyone), pings

    # webhooks ----------------------------------------------------------------

    def create_webhook(self, channel: Channel, name: str, creator_id: int) -> Webhook:
        if channel.type != GUILD_TEXT or channel.guild_id is None:
            raise WorldError(400, 50024, "Cannot execute action on this channel type")
        if sum(1 for w in self.webhooks.values() if w.channel_id == channel.id) >= 10:
            raise WorldError(400, 30007, "Maximum number of webhooks reached (10)")
        check_webhook_name(name)
        webhook = Webhook(
            id=self.ids.next(),
            token=secrets.token_urlsafe(48),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            name=name,
            creator_id=creator_id,
        )
        self.webhooks[webhook.id] = webhook
        self._on_change()
        return webhook

    def webhook(self, webhook_id: int, token: str | None = None) -> Webhook:
        found = self.webhooks.get(webhook_id)
        if found is None or (token is not None and not secrets.compare_digest(found.token, token)):
            raise unknown("Webhook", 10015)
        return found

    def webhooks_in(self, channel_id: int) -> list[Webhook]:
        return [w for w in self.webhooks.values() if w.channel_id == channel_id]

    # application commands ----------------------------------------------------

    def put_commands(
        self, guild_id: int | None, payloads: Iterable[Mapping[str, Any]]
    ) -> list[ApplicationCommand]:
        """Bulk overwrite: keeps ids of commands with the same name and type."""
        previous = {(c.name, c.type): c.id for c in self.commands.values() if c.guild_id == guild_id}
        for command_id in list(self.commands):
            if self.commands[command_id].guild_id == guild_id:
                del self.commands[command_id]
        stored = [self.upsert_command(guild_id, p, previous) for p in payloads]
        self._on_change()
        return stored

    def upsert_command(
        self,
        guild_id: int | None,
        payload: Mapping[str, Any],
        previous: Mapping[tuple[str, int], int] | None = None,
    ) -> ApplicationCommand:
        name = str(payload["name"])
        kind = int(payload.get("type", 1))
        existing = next(
            (
                c
                for c in self.commands.values()
                if c.guild_id == guild_id and (c.name, c.type) == (name, kind)
            ),
            None,
        )
        if existing is not None:
            command_id = existing.id
        else:
            command_id = (previous or {}).get((name, kind)) or self.ids.next()
        command = ApplicationCommand(
            id=command_id,
            name=name,
            type=kind,
            guild_id=guild_id,
            payload=dict(payload),
            options=tuple(
                CommandOption(str(o["name"]), int(o["type"])) for o in payload.get("options") or ()
            ),
        )
        self.commands[command.id] = command
        self._on_change()
        return command

    def commands_in(self, guild_id: int | None) -> list[ApplicationCommand]:
        return [c for c in self.commands.values() if c.guild_id == guild_id]

    def find_command(self, name: str, guild_id: int | None) -> ApplicationCommand | None:
        """A guild command shadows a global one with the same name, as in Discord's client."""
        in_guild = [c for c in self.commands_in(guild_id) if c.name == name] if guild_id else []
        global_ = [c for c in self.commands_in(None) if c.name == name]
        found = in_guild or global_
        return found[0] if found else None

    def put_interaction(self, interaction: Interaction) -> Interaction:
        self.interactions[interaction.id] = interaction
        self._on_change()
        return interaction

    def note_typing(self, channel_id: int) -> None:
        self.typing.append((channel_id, time.monotonic()))
        self._on_change()


def _check_content(
    content: str,
    embeds: tuple[Mapping[str, Any], ...],
    attachments: tuple[Attachment, ...],
    flags: int,
) -> None:
    if len(content) > 2000:
        raise WorldError(400, 50035, "Invalid Form Body: content: Must be 2000 or fewer in length.")
    if not content and not embeds and not attachments and not flags & LOADING:
        raise WorldError(400, 50006, "Cannot send an empty message")


def check_webhook_name(name: str) -> None:
    """Discord refuses webhook names that are empty, too long or impersonate Discord."""
    lowered = name.lower()
    if not 1 <= len(name) <= 80 or "clyde" in lowered or "discord" in lowered:
        raise WorldError(400, 50035, f"Invalid Form Body: name: Username {name!r} is not allowed")
