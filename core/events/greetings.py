"""Greeting events: the first message a persona posts in a new conversation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .base import ERASED_TEXT, DomainEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonaGreeted(DomainEvent):
    """A persona opened a conversation with one of its greetings (rendered: ``text`` is
    what was posted). ``greeting_id`` is the platform id of what opened it (the first
    message to the persona, or the command that asked for the greeting); ``choice``
    numbers the greeting from 1 (``prompt.greeting``, then the alternates) and
    ``chosen_by`` says how it was picked (``random`` or ``command``). Part of the
    conversation's context from then on, like a reply."""

    type: ClassVar[str] = "PersonaGreeted"
    personal: ClassVar[Mapping[str, Any]] = {"text": ERASED_TEXT, "variables": {}}
    platform: str
    greeting_id: str
    channel_id: str
    persona_id: str
    persona_version: str
    persona_name: str
    text: str
    choice: int
    chosen_by: str
    author_id: str
    guild_id: str | None = None
    is_dm: bool = False
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class GreetingDelivered(DomainEvent):
    """What came of posting a greeting: the platform messages it became, or the error
    (then ``delivered_ids`` is empty and the greeting leaves the context)."""

    type: ClassVar[str] = "GreetingDelivered"
    platform: str
    greeting_id: str
    persona_id: str
    delivered_ids: tuple[str, ...] = ()
    error: str = ""
