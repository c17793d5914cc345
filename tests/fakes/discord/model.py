"""The emulator's records: frozen snapshots of users, guilds, channels, messages.

The emulator replaces a record when it changes, so a record a test holds never
changes under it; ask the emulator again (``emu.message(id)``) for the latest one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GUILD_TEXT = 0
DM = 1
PUBLIC_THREAD = 11

APPLICATION_COMMAND = 2
APPLICATION_COMMAND_AUTOCOMPLETE = 4

EPHEMERAL = 1 << 6
LOADING = 1 << 7


@dataclass(frozen=True)
class User:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None
    avatar: str | None = None

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass(frozen=True)
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    mentionable: bool = False
    managed_by_bot_id: int | None = None

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>"

    @property
    def is_everyone(self) -> bool:
        return self.id == self.guild_id


@dataclass(frozen=True)
class Member:
    user_id: int
    guild_id: int
    role_ids: tuple[int, ...]
    joined_at: str


@dataclass(frozen=True)
class Guild:
    id: int
    name: str
    owner_id: int


@dataclass(frozen=True)
class Overwrite:
    """A channel permission overwrite for a role (``is_member`` False) or a member."""

    target_id: int
    is_member: bool
    allow: int = 0
    deny: int = 0


@dataclass(frozen=True)
class Channel:
    id: int
    type: int
    name: str | None
    guild_id: int | None = None
    parent_id: int | None = None
    owner_id: int | None = None
    position: int = 0
    permission_overwrites: tuple[Overwrite, ...] = ()
    recipient_ids: tuple[int, ...] = ()
    auto_archive_duration: int = 1440
    nsfw: bool = False
    """Age-restricted. Discord sends it for guild channels only: a thread has no flag of
    its own and is age-restricted when its parent is (clients read the parent's)."""

    @property
    def is_thread(self) -> bool:
        return self.type == PUBLIC_THREAD

    @property
    def is_dm(self) -> bool:
        return self.type == DM

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"


@dataclass(frozen=True)
class Pings:
    """Who a message notifies, by Discord's rules (content parsed, filtered by the
    sender's allowed_mentions and permissions).

    ``notified_user_ids`` expands role and @everyone pings to the guild's members and
    leaves out the author: the people whose client would light up.
    """

    user_ids: frozenset[int] = frozenset()
    role_ids: frozenset[int] = frozenset()
    everyone: bool = False
    notified_user_ids: frozenset[int] = frozenset()

    @property
    def nobody(self) -> bool:
        return not self.notified_user_ids and not self.role_ids and not self.everyone


@dataclass(frozen=True)
class Attachment:
    id: int
    filename: str
    size: int
    content_type: str | None
    content: bytes = field(default=b"", repr=False)
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class MessageEdit:
    """One earlier version of a message; ``at`` is ``time.monotonic()`` of the edit."""

    previous_content: str
    at: float


@dataclass(frozen=True)
class Message:
    id: int
    channel_id: int
    guild_id: int | None
    author: User
    content: str
    timestamp: str
    created_at: float
    """``time.monotonic()`` when the emulator stored it (for ordering and pacing checks)."""
    type: int = 0
    reference_id: int | None = None
    webhook_id: int | None = None
    webhook_avatar_url: str | None = None
    application_id: int | None = None
    interaction_id: int | None = None
    flags: int = 0
    tts: bool = False
    embeds: tuple[Mapping[str, Any], ...] = ()
    attachments: tuple[Attachment, ...] = ()
    allowed_mentions: Mapping[str, Any] | None = None
    mention_user_ids: tuple[int, ...] = ()
    mention_role_ids: tuple[int, ...] = ()
    mention_everyone: bool = False
    pings: Pings = field(default_factory=Pings)
    edited_timestamp: str | None = None
    edits: tuple[MessageEdit, ...] = ()
    deleted: bool = False
    nonce: str | None = None
    """The ``nonce`` the bot posted it with (Discord echoes it only in the create
    response and the MESSAGE_CREATE dispatch, never in history)."""

    @property
    def is_ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def by_webhook(self) -> bool:
        return self.webhook_id is not None and self.interaction_id is None


@dataclass(frozen=True)
class Webhook:
    id: int
    token: str
    channel_id: int
    guild_id: int
    name: str
    creator_id: int
    avatar: str | None = None

    @property
    def url(self) -> str:
        return f"https://emulator.invalid/api/webhooks/{self.id}/{self.token}"


@dataclass(frozen=True)
class CommandOption:
    name: str
    type: int


@dataclass(frozen=True)
class ApplicationCommand:
    """A command the bot registered (global when ``guild_id`` is None)."""

    id: int
    name: str
    type: int
    guild_id: int | None
    payload: Mapping[str, Any]
    options: tuple[CommandOption, ...] = ()


@dataclass(frozen=True)
class InteractionCallback:
    """One response the bot gave through ``/interactions/{id}/{token}/callback``."""

    type: int
    data: Mapping[str, Any] | None
    at: float


@dataclass(frozen=True)
class Interaction:
    id: int
    token: str
    type: int
    command: ApplicationCommand
    options: Mapping[str, Any]
    channel_id: int
    guild_id: int | None
    user_id: int
    created_at: float
    focused: str | None = None
    callbacks: tuple[InteractionCallback, ...] = ()
    original_message_id: int | None = None
    followup_message_ids: tuple[int, ...] = ()

    @property
    def acknowledged(self) -> bool:
        return bool(self.callbacks)

    @property
    def choices(self) -> tuple[Mapping[str, Any], ...]:
        """Autocomplete choices the bot answered with (type 8 callback)."""
        for callback in self.callbacks:
            if callback.type == 8 and callback.data is not None:
                return tuple(callback.data.get("choices", ()))
        return ()
