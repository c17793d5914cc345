"""The neutral shapes adapters exchange with the dispatcher.

An adapter (Discord, the console) turns what its platform sends into an
:class:`InboundMessage` (or an edit or deletion) and receives
:class:`OutboundReply` and :class:`Notice` objects through a
:class:`~core.dispatcher.sink.ReplySink`. Nothing here knows any platform: ids are
strings, and ``platform`` names where they are unique.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..events import Refusal
from ..events.ids import greeting_delivery_id
from ..media.intake import IncomingAttachment
from ..personas.model import AllowedMentions


class Placed(Protocol):
    """Where something open (a reply's trigger, a greeting) was asked for: what decides
    which process finishes it (a Discord shard's is ``(guild_id >> 22) % shard_count``,
    a DM's shard 0)."""

    @property
    def platform(self) -> str: ...

    @property
    def guild_id(self) -> str | None: ...


Owns = Callable[[Placed], bool]
"""Whether this process finishes what was left open there (recovery's filter)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Author:
    """Who sent a message. ``is_bot`` covers bots and webhooks (the framework's own too).

    ``roles_known`` is False when the platform did not say what roles the author has
    (Discord: history, DMs, slash commands from DMs): ``roles`` is then empty for want
    of knowing, not because they have none, and a rule about roles must look them up or
    refuse (see :mod:`~core.dispatcher.roles`). ``operator`` is the person at this
    process's own terminal (``personae chat``): they pass every permission rule and may
    reload, as an admin does."""

    id: str
    display_name: str
    is_bot: bool = False
    roles: frozenset[str] = frozenset()
    roles_known: bool = True
    operator: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundMessage:
    """A message as the dispatcher sees it.

    ``channel_id`` is where the message was posted (a thread's own id inside a
    thread; ``parent_channel_id`` is then the thread's channel). ``mentions`` holds
    the persona ids the adapter resolved from platform mentions; ``invoked_persona``
    is an explicit invocation (a slash command, the console's current persona) and,
    when set, is the only persona considered. ``attachments`` are its files, already
    fetched within the operator's caps (:mod:`core.media.intake`). ``channel_nsfw``
    is whether the platform marks the channel age-restricted (a thread: its parent);
    None when it does not say (DMs, the terminal): the age gate then refuses.
    """

    platform: str
    message_id: str
    channel_id: str
    author: Author
    text: str
    guild_id: str | None = None
    parent_channel_id: str | None = None
    is_dm: bool = False
    reply_to: str | None = None
    mentions: frozenset[str] = frozenset()
    invoked_persona: str | None = None
    sent_at: float | None = None
    channel_name: str | None = None
    guild_name: str | None = None
    attachments: tuple[IncomingAttachment, ...] = ()
    channel_nsfw: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundEdit:
    """A message's new text. ``edited_at`` (any stable string) tells edits apart;
    ``attachments`` is its new list of files when the edit changed them (None: same)."""

    platform: str
    message_id: str
    channel_id: str
    text: str
    edited_at: str
    attachments: tuple[IncomingAttachment, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundDeletion:
    """A message that was deleted on the platform."""

    platform: str
    message_id: str
    channel_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyTarget:
    """Where a reply or notice goes: the conversation and the message it answers.

    ``greeting`` is true for a persona's greeting, whose ``message_id`` is the message
    that opened the conversation: the greeting and the reply to that message are two
    deliveries, told apart by :attr:`delivery_id`."""

    platform: str
    channel_id: str
    message_id: str
    author_id: str
    guild_id: str | None = None
    is_dm: bool = False
    greeting: bool = False

    @property
    def delivery_id(self) -> str:
        """What identifies this delivery (with the persona): the message answered, or
        for a greeting ``greeting:<message>`` (its records, claims and nonces)."""
        return greeting_delivery_id(self.message_id) if self.greeting else self.message_id


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundFile:
    """A file delivered with a reply (the reasoning of a persona with ``reasoning: attach``)."""

    filename: str
    content: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundReply:
    """A persona's reply for the adapter to deliver (splitting and webhooks are its job).

    ``streamed`` is true when the text already reached the adapter through
    :meth:`~core.dispatcher.sink.ReplySink.stream_delta`. ``recovered`` is true when a
    crash may have come between the platform accepting this reply and the log recording
    it: an adapter that can tell must return what was already posted, not post again.
    ``files`` go with the reply's first message; ``spoiler`` is text to show hidden
    before the reply (a reasoning model's thinking, ``reasoning: spoiler``).
    A greeting (``target.greeting``) opens the conversation where it is (never a
    thread) and is no answer to a slash command.
    """

    target: ReplyTarget
    persona_id: str
    persona_name: str
    text: str
    avatar_url: str | None = None
    webhook: bool = True
    allowed_mentions: AllowedMentions = field(default_factory=AllowedMentions)
    streamed: bool = False
    truncated: bool = False
    recovered: bool = False
    files: tuple[OutboundFile, ...] = ()
    spoiler: str = ""

    @property
    def greeting(self) -> bool:
        """Whether this is a persona's greeting (see :class:`ReplyTarget`)."""
        return self.target.greeting


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryReceipt:
    """What the adapter posted: the platform ids of every message the reply became."""

    message_ids: tuple[str, ...]


NoticeKind = str
"""A refusal's kind (``busy``, ``rate_limited``, ``quota``...) or ``failure``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """A short, polite line to the user, sent as the persona, never as a reply of theirs."""

    target: ReplyTarget
    persona_id: str
    persona_name: str
    kind: NoticeKind
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ModerationAlert:
    """A line for the moderators' channel ``channel_id`` about a moderation decision in
    the conversation of ``target``: ``summary`` says what was found and done (no
    content); the adapter adds a link to ``linked_message_id`` (in ``target``'s channel)."""

    target: ReplyTarget
    channel_id: str
    linked_message_id: str
    persona_id: str
    summary: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestResult:
    """What the dispatcher decided about one inbound message.

    ``replies`` are futures that settle with each triggered reply's
    :class:`ReplyResult` (for callers, like the console, that wait for them).
    """

    duplicate: bool
    position: int
    triggered: tuple[str, ...] = ()
    rejected: tuple[tuple[str, Refusal], ...] = ()
    replies: tuple[Awaitable[ReplyResult], ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyResult:
    """How one triggered reply ended: ``outcome`` is the event type that closed it."""

    persona_id: str
    message_id: str
    outcome: str
    text: str = ""
