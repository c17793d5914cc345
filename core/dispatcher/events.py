"""The dispatcher's domain events: their types, data shapes, ids and streams.

Every event is a frozen dataclass with ``to_data()`` (the JSON object stored in the
log) and ``from_data()`` (tolerant of fields added later: unknown keys are ignored,
missing ones take their defaults). Ids derive from platform ids so that a second
delivery of the same thing is a no-op; see ``docs/dispatcher.md`` for the meaning
of each event and the streams they live in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from eventstore import NewEvent


class _Event:
    """Shared (de)serialisation for the frozen event dataclasses below."""

    type: ClassVar[str]

    def to_data(self) -> dict[str, Any]:
        """The JSON-ready data stored in the log."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild the event from stored data (lists come back as tuples)."""
        values = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in data:
                value = data[f.name]
                values[f.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)

    def new_event(self, event_id: str, *, causation_id: str | None = None) -> NewEvent:
        """This event as a :class:`~eventstore.NewEvent` with ``event_id``."""
        return NewEvent(self.type, self.to_data(), event_id=event_id, causation_id=causation_id)


_SCALARS = frozenset({str, int, float, bool})


def _plain(value: Any) -> Any:
    if value is None or type(value) in _SCALARS:
        return value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


# -- conversation: what people (and personas) said ----------------------------------


@dataclass(frozen=True, slots=True)
class MessageReceived(_Event):
    """An inbound message, recorded before anything else happens to it.

    ``from_persona`` is set when the message is the platform's echo of one of the
    framework's own replies (its text is already in the log as ModelReplied).
    """

    type: ClassVar[str] = "MessageReceived"
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


@dataclass(frozen=True, slots=True)
class MessageEdited(_Event):
    """A message's new text; context shows the latest."""

    type: ClassVar[str] = "MessageEdited"
    platform: str
    message_id: str
    text: str
    edited_at: str


@dataclass(frozen=True, slots=True)
class MessageDeleted(_Event):
    """A deleted message; context leaves it out from then on."""

    type: ClassVar[str] = "MessageDeleted"
    platform: str
    message_id: str


@dataclass(frozen=True, slots=True)
class ConversationReset(_Event):
    """Everything before this event is left out of the conversation's context."""

    type: ClassVar[str] = "ConversationReset"
    platform: str
    channel_id: str
    by_user: str


# -- decisions: who answers ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonaTriggered(_Event):
    """A persona will answer ``message_id``. ``source_event_id`` is the event holding
    the text being answered (a MessageReceived, or a ModelReplied for persona-to-persona
    turns); ``hop`` counts persona-to-persona replies in a row (0 for a person)."""

    type: ClassVar[str] = "PersonaTriggered"
    platform: str
    message_id: str
    persona_id: str
    persona_version: str
    reason: str
    channel_id: str
    author_id: str
    source_event_id: str
    guild_id: str | None = None
    is_dm: bool = False
    hop: int = 0
    provider: str = ""
    scope_keys: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TriggerRejected(_Event):
    """A persona was triggered but will not answer, and why (``reason`` is stable:
    ``permission:<rule>``, ``rate_limited:<scope>``, ``quota:<kind>``, ``busy``,
    ``hop_limit``)."""

    type: ClassVar[str] = "TriggerRejected"
    platform: str
    message_id: str
    persona_id: str
    reason: str
    author_id: str
    detail: str = ""
    retry_after_s: float | None = None
    notice_sent: bool = False


# -- outcomes: what the model said, what reached the platform --------------------------


@dataclass(frozen=True, slots=True)
class ModelReplied(_Event):
    """The model's reply, with everything needed to rebuild the exact prompt:
    the persona version, the event positions that formed the context and the
    variables the system prompt was rendered with."""

    type: ClassVar[str] = "ModelReplied"
    platform: str
    message_id: str
    persona_id: str
    persona_version: str
    provider: str
    model: str
    text: str
    author_id: str
    persona_name: str = ""
    usage: Mapping[str, Any] = field(default_factory=dict)
    latency_s: float = 0.0
    attempts: int = 1
    truncated: bool = False
    used_fallback: bool = False
    finish_reason: str | None = None
    context_positions: tuple[int, ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict)
    scope_keys: Mapping[str, str] = field(default_factory=dict)
    hop: int = 0


@dataclass(frozen=True, slots=True)
class ModelFailed(_Event):
    """No reply: the model failed, the reply was abandoned at shutdown, or a trigger
    left open by a crash was too old to re-run (``error_class`` says which)."""

    type: ClassVar[str] = "ModelFailed"
    platform: str
    message_id: str
    persona_id: str
    error_class: str
    error: str
    persona_version: str = ""
    provider: str = ""
    model: str = ""
    latency_s: float = 0.0
    attempts: int = 0
    context_positions: tuple[int, ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict)
    notice_sent: bool = False


@dataclass(frozen=True, slots=True)
class ReplyDelivered(_Event):
    """The reply reached the platform as the messages ``delivered_ids``."""

    type: ClassVar[str] = "ReplyDelivered"
    platform: str
    message_id: str
    persona_id: str
    delivered_ids: tuple[str, ...]
    hop: int = 0


@dataclass(frozen=True, slots=True)
class ReplyFailed(_Event):
    """The adapter could not deliver the reply."""

    type: ClassVar[str] = "ReplyFailed"
    platform: str
    message_id: str
    persona_id: str
    error: str


# -- quotas ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuotaReset(_Event):
    """A persona's quota window starts again. ``scheduled_for`` is the cron fire time
    (Unix seconds); ``catch_up`` is true when it fell due while the bot was down."""

    type: ClassVar[str] = "QuotaReset"
    persona_id: str
    scheduled_for: float
    cron: str
    timezone: str = "UTC"
    catch_up: bool = False


EVENT_TYPES: tuple[type[_Event], ...] = (
    MessageReceived, MessageEdited, MessageDeleted, ConversationReset, PersonaTriggered,
    TriggerRejected, ModelReplied, ModelFailed, ReplyDelivered, ReplyFailed, QuotaReset,
)
OUTCOME_TYPES = (ModelReplied.type, ModelFailed.type)


# -- ids and streams ---------------------------------------------------------------------


def conversation_stream(platform: str, channel_id: str) -> str:
    """The stream of one conversation: a channel, a thread or a DM channel."""
    return f"conv:{platform}:{channel_id}"


def message_event_id(platform: str, message_id: str) -> str:
    """The id of a MessageReceived."""
    return f"msg:{platform}:{message_id}"


def edit_event_id(platform: str, message_id: str, edited_at: str) -> str:
    """The id of a MessageEdited (one per distinct edit)."""
    return f"edit:{platform}:{message_id}:{edited_at}"


def delete_event_id(platform: str, message_id: str) -> str:
    """The id of a MessageDeleted."""
    return f"delete:{platform}:{message_id}"


def reset_event_id(platform: str, channel_id: str, reset_id: str) -> str:
    """The id of a ConversationReset; ``reset_id`` is the command's own id."""
    return f"reset:{platform}:{channel_id}:{reset_id}"


def trigger_event_id(platform: str, message_id: str, persona_id: str) -> str:
    """The id of the one decision (PersonaTriggered or TriggerRejected) per message and persona."""
    return f"trigger:{platform}:{message_id}:{persona_id}"


def reply_event_id(platform: str, message_id: str, persona_id: str) -> str:
    """The id of the one model outcome (ModelReplied or ModelFailed)."""
    return f"reply:{platform}:{message_id}:{persona_id}"


def delivered_event_id(platform: str, message_id: str, persona_id: str) -> str:
    """The id of the one delivery outcome (ReplyDelivered or ReplyFailed)."""
    return f"delivered:{platform}:{message_id}:{persona_id}"


def quota_stream(persona_id: str) -> str:
    """The stream of a persona's quota resets."""
    return f"quota:{persona_id}"


def quota_reset_event_id(persona_id: str, scheduled_for: float) -> str:
    """The id of the reset due at ``scheduled_for``: a job run twice records it once."""
    return f"quota-reset:{persona_id}:{int(scheduled_for)}"
