"""Moderation decisions: what the moderation step found in a message going to a persona
(``in``) or in a persona's reply going out (``out``), and what it did about it.

One :class:`ModerationChecked` per reply and direction, recorded before its action
takes effect: the scores each source gave (the provider's categories, the local list's
matches as 1.0), the thresholds they were held to, the verdict and the actions taken.
It holds no text of the message, so it is no personal content: ``personae explain``
shows why a reply was refused, flagged or let through from it alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from .base import DomainEvent

MODERATION_ERROR_CLASS = "moderation"
"""The ``error_class`` of the ModelFailed that closes a reply whose message the
moderation step refused (the model was never asked)."""


class ModerationDirection(StrEnum):
    """Which way the moderated text was going."""

    IN = "in"
    """A person's message, before the model sees it."""
    OUT = "out"
    """A persona's reply, before it is delivered."""


class ModerationVerdict(StrEnum):
    """What the scores came to, weakest first."""

    PASS = "pass"
    FLAG = "flag"
    BLOCK = "block"


class ModerationAction(StrEnum):
    """What the moderation step does about a verdict (config ``moderation.actions``)."""

    REFUSE = "refuse"
    """No reply: the person gets a short notice instead."""
    WARN = "warn"
    """The reply is delivered with a warning line before it."""
    ALERT = "alert"
    """The moderators' channel gets a message with a link to the message."""
    LOG = "log"
    """Nothing visible: this event is the record."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModerationChecked(DomainEvent):
    """The moderation step's decision about one reply's text in one direction.

    ``scores``: the highest score per category over every source that answered;
    ``sources``: which answered (``local``, ``<provider>:<model>``); ``matched``: the
    categories at or over their flag threshold, with ``thresholds`` the ``{flag, block}``
    each was held to (None: never). ``error`` names a provider failure (``timeout``,
    ``http_503``, ``garbage``...) and ``failed_closed`` says the ``fail: closed`` policy
    made it a block. ``bypassed`` names why nothing was checked (``role``) and then
    ``verdict`` is ``pass``. ``actions`` are those taken (``refuse`` only for a block).
    """

    type: ClassVar[str] = "ModerationChecked"
    platform: str
    message_id: str
    persona_id: str
    direction: str
    """A :class:`ModerationDirection` value."""
    verdict: str
    """A :class:`ModerationVerdict` value."""
    actions: tuple[str, ...] = ()
    """:class:`ModerationAction` values."""
    scores: Mapping[str, float] = field(default_factory=dict)
    thresholds: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    matched: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    error: str | None = None
    failed_closed: bool = False
    bypassed: str | None = None
    latency_s: float = 0.0
