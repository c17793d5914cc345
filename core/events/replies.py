"""Reply events: who answers (decisions), what the model said and what reached the
platform (outcomes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from .base import ERASED_TEXT, DomainEvent


class TriggerReason(StrEnum):
    """Why a persona was triggered, strongest first (personas answer in this order)."""

    INVOKED = "invoked"
    MENTION = "mention"
    REPLY = "reply"
    DM = "dm"
    KEYWORD = "keyword"
    PATTERN = "pattern"
    CHANNEL = "channel"


class RefusalKind(StrEnum):
    """The kinds of reasons a triggered persona does not answer."""

    PERMISSION = "permission"
    RATE_LIMITED = "rate_limited"
    QUOTA = "quota"
    BUSY = "busy"
    HOP_LIMIT = "hop_limit"
    AGE_RESTRICTED = "age_restricted"
    """An ``nsfw: true`` persona outside an age-restricted channel: detail ``dm`` (DMs
    are not allowed for it), ``channel`` (the channel is not age-restricted) or
    ``unknown`` (the platform did not say)."""


class Refusal(str):
    """Why a persona will not answer: a :class:`RefusalKind` and its detail (the
    permission rule, the rate-limit scope, the exhausted quota: ``tokens`` or
    ``messages``). It is its stored text, ``kind:detail`` (``permission:role_denied``,
    ``busy``), and reads back as its parts."""

    __slots__ = ()

    def __new__(cls, text: str) -> Refusal:
        RefusalKind(text.partition(":")[0])  # refuses a kind the catalogue does not know
        return super().__new__(cls, text)

    @classmethod
    def of(cls, kind: RefusalKind, detail: str = "") -> Refusal:
        """The refusal of ``kind`` with ``detail``."""
        return cls(f"{kind.value}:{detail}" if detail else kind.value)

    @property
    def kind(self) -> RefusalKind:
        """What kind of refusal it is."""
        return RefusalKind(self.partition(":")[0])

    @property
    def detail(self) -> str:
        """The rule, scope or quota behind it ("" for kinds without one)."""
        return self.partition(":")[2]


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonaTriggered(DomainEvent):
    """A persona will answer ``message_id``. ``source_event_id`` is the event holding
    the text being answered (a MessageReceived, or a ModelReplied for persona-to-persona
    turns); ``hop`` counts persona-to-persona replies in a row (0 for a person), and
    ``root_author_id`` is then the person whose message started the chain. ``limits`` is
    what admission charged the trigger to, for the log to check in the append itself
    (:mod:`core.limits.claims`): ``at`` (the admitting clock), ``rate`` (scope, key,
    capacity, per_s) and ``quota`` (scope, key, tokens, messages, hold); empty in logs
    written before limits were shared.
    ``moderation_bypass`` is true when the author holds one of the roles that skip the
    moderation step on the way in (known roles only: unknown roles never bypass).
    ``channel_nsfw`` is the channel's age restriction as the message said it."""

    type: ClassVar[str] = "PersonaTriggered"
    decoders: ClassVar[Mapping[str, Any]] = {"reason": TriggerReason}
    platform: str
    message_id: str
    persona_id: str
    persona_version: str
    reason: TriggerReason
    channel_id: str
    author_id: str
    source_event_id: str
    guild_id: str | None = None
    is_dm: bool = False
    hop: int = 0
    provider: str = ""
    scope_keys: Mapping[str, str] = field(default_factory=dict)
    root_author_id: str | None = None
    limits: Mapping[str, Any] = field(default_factory=dict)
    moderation_bypass: bool = False
    channel_nsfw: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerRejected(DomainEvent):
    """A persona was triggered but will not answer, and why (see :class:`Refusal`)."""

    type: ClassVar[str] = "TriggerRejected"
    decoders: ClassVar[Mapping[str, Any]] = {"reason": Refusal}
    platform: str
    message_id: str
    persona_id: str
    reason: Refusal
    author_id: str
    detail: str = ""
    retry_after_s: float | None = None
    notice_sent: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelReplied(DomainEvent):
    """The model's reply, with everything needed to rebuild the exact prompt:
    the persona version, the event positions that formed the context and the
    variables the system prompt was rendered with. ``reasoning`` is the model's
    reasoning (kept whatever the persona shows of it); a reply that used tools made
    ``model_calls`` calls and ``tools_called`` tool calls (ToolCalled events), and its
    ``usage`` is the sum of every model call."""

    type: ClassVar[str] = "ModelReplied"
    personal: ClassVar[Mapping[str, Any]] = {"text": ERASED_TEXT, "reasoning": "",
                                             "variables": {}}
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
    reasoning: str = ""
    model_calls: int = 1
    tools_called: int = 0
    lore: tuple[str, ...] = ()
    """The lorebook entries the conversation activated into the prompt (their content
    digests; not those there only because they are sticky): what keeps an entry
    sticky, or cooling down, in the replies after."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelFailed(DomainEvent):
    """No reply: the model failed, the reply was abandoned at shutdown, or a trigger
    left open by a crash was too old to re-run (``error_class`` says which)."""

    type: ClassVar[str] = "ModelFailed"
    personal: ClassVar[Mapping[str, Any]] = {"variables": {}}
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
    author_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyDelivered(DomainEvent):
    """The reply reached the platform as the messages ``delivered_ids``."""

    type: ClassVar[str] = "ReplyDelivered"
    platform: str
    message_id: str
    persona_id: str
    delivered_ids: tuple[str, ...]
    hop: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyFailed(DomainEvent):
    """The adapter could not deliver the reply."""

    type: ClassVar[str] = "ReplyFailed"
    platform: str
    message_id: str
    persona_id: str
    error: str


OUTCOME_TYPES = (ModelReplied.type, ModelFailed.type)
"""The events that close a trigger's model call."""
