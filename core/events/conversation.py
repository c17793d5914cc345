"""Conversation events: what people (and personas) said, edited, deleted, reset; threads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from eventstore import Seal

from .base import ERASED_TEXT, DomainEvent
from .ids import files_scope, text_scope


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReceived(DomainEvent):
    """An inbound message, recorded before anything else happens to it.

    ``from_persona`` is set when the message is the platform's echo of one of the
    framework's own replies (its text is already in the log as ModelReplied).
    ``attachments`` lists its files (:class:`~core.events.media.Attachment` data); the
    content of each stored one is an AttachmentStored event. ``channel_nsfw`` is the
    platform's age restriction of the channel (a thread's: its parent's); None when it
    did not say (DMs, the terminal).
    """

    type: ClassVar[str] = "MessageReceived"
    personal: ClassVar[Mapping[str, Any]] = {
        "author_name": ERASED_TEXT, "text": ERASED_TEXT, "attachments": ()}
    platform: str
    message_id: str
    channel_id: str
    author_id: str
    author_name: str
    text: str
    author_is_bot: bool = False
    author_roles: tuple[str, ...] = ()
    guild_id: str | None = None
    parent_channel_id: str | None = None
    is_dm: bool = False
    reply_to: str | None = None
    mentions: tuple[str, ...] = ()
    invoked_persona: str | None = None
    sent_at: float | None = None
    channel_name: str | None = None
    guild_name: str | None = None
    from_persona: str | None = None
    attachments: tuple[Mapping[str, Any], ...] = ()
    channel_nsfw: bool | None = None
    quotes: str | None = None
    """For an echo of a reply: the person the reply answered (whose content it is)."""

    @property
    def subject(self) -> str:
        """The author, or for an echo of a reply, the person it answered."""
        return self.quotes or self.author_id

    def seals(self) -> tuple[Seal, ...]:
        """The name under the author's key of the day; the text and the files under keys
        of this message, so deleting it (or editing it) shreds them alone."""
        subject = self.subject
        return (Seal(subject=subject, fields={"author_name": ERASED_TEXT}),
                Seal(subject=subject, fields={"text": ERASED_TEXT},
                     scope=text_scope(self.platform, self.message_id)),
                Seal(subject=subject, fields={"attachments": ()},
                     scope=files_scope(self.platform, self.message_id)))


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEdited(DomainEvent):
    """A message's new text; context shows the latest. ``attachments`` is its new list
    of files when the edit changed them (None: unchanged). ``author_id`` is the message's
    author (whose content the text is)."""

    type: ClassVar[str] = "MessageEdited"
    personal: ClassVar[Mapping[str, Any]] = {"text": ERASED_TEXT, "attachments": ()}
    platform: str
    message_id: str
    text: str
    edited_at: str
    attachments: tuple[Mapping[str, Any], ...] | None = None
    author_id: str = ""

    def seals(self) -> tuple[Seal, ...]:
        """The text under a key of this revision (so a later edit shreds it), the files
        under the message's."""
        return (Seal(subject=self.subject, fields={"text": ERASED_TEXT},
                     scope=text_scope(self.platform, self.message_id, self.edited_at)),
                Seal(subject=self.subject, fields={"attachments": ()},
                     scope=files_scope(self.platform, self.message_id)))


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageDeleted(DomainEvent):
    """A deleted message; context leaves it out from then on."""

    type: ClassVar[str] = "MessageDeleted"
    platform: str
    message_id: str


RESET_CHANNEL = "channel"
RESET_USER = "user"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationReset(DomainEvent):
    """A fresh start: with ``scope`` ``channel`` (an admin's, or a conversation of one
    person) everything before this event is left out of the conversation's context;
    with ``user``, only ``by_user``'s earlier messages and the replies to them."""

    type: ClassVar[str] = "ConversationReset"
    platform: str
    channel_id: str
    by_user: str
    scope: str = RESET_CHANNEL

    @property
    def whole(self) -> bool:
        """True when the reset clears everyone's turns."""
        return self.scope != RESET_USER


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadOpened(DomainEvent):
    """A persona moved a conversation into a thread it owns (first event of the
    thread's stream, before the seeded copies of the turns that led to it)."""

    type: ClassVar[str] = "ThreadOpened"
    platform: str
    thread_id: str
    parent_channel_id: str
    persona_id: str
    from_message_id: str
