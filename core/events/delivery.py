"""Delivery steps: how a reply reaches the platform, one message at a time, so that a
crash in the middle leaves a record of exactly what was posted.

A reply longer than one platform message records its plan (every part's text, the
route and the channel) before the first part is posted, then each part as it is
posted; a streamed reply records its preview's first text before posting it and the
preview's id before editing it. Recovery after a crash posts only the parts without a
record, in order, and looks for the one that may have been in flight in the channel's
history. The outcome is still one ReplyDelivered (or ReplyFailed); a greeting's is its
GreetingDelivered.

Every step's ``message_id`` is the delivery's: the message answered, or for a
greeting ``greeting:<message>`` (:func:`~core.events.ids.greeting_delivery_id`), so a
greeting and the reply to the message that opened its conversation never share a
record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .base import ERASED_TEXT, DomainEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryPlanned(DomainEvent):
    """A reply will be posted as ``parts``, in this order, by ``route`` (``webhook``,
    ``bot``, or ``stream`` when the first part finishes a preview) into
    ``channel_id`` (a thread's id when the reply moved into one)."""

    type: ClassVar[str] = "DeliveryPlanned"
    personal: ClassVar[Mapping[str, Any]] = {"parts": (ERASED_TEXT,)}
    platform: str
    message_id: str
    persona_id: str
    parts: tuple[str, ...]
    route: str
    channel_id: str
    author_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryPartPosted(DomainEvent):
    """Part ``index`` of a planned reply is on the platform as ``posted_id``."""

    type: ClassVar[str] = "DeliveryPartPosted"
    platform: str
    message_id: str
    persona_id: str
    index: int
    posted_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PreviewPlanned(DomainEvent):
    """A streamed reply's preview is about to be posted with ``text`` (so that after a
    crash before its id was recorded it can be told apart in the channel's history)."""

    type: ClassVar[str] = "PreviewPlanned"
    personal: ClassVar[Mapping[str, Any]] = {"text": ERASED_TEXT}
    platform: str
    message_id: str
    persona_id: str
    text: str
    route: str
    channel_id: str
    author_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PreviewPosted(DomainEvent):
    """A streamed reply's preview is on the platform as ``posted_id``: from now on it is
    edited, never posted again, and finished (or marked cut) after a crash."""

    type: ClassVar[str] = "PreviewPosted"
    platform: str
    message_id: str
    persona_id: str
    posted_id: str
