"""Privacy events: a person's content erased on request, old content expired.

Neither holds erased content: only who asked, whose, when and what scope. The keys are
destroyed in the same append (the store's shreds), so the erasure and its record
commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import DomainEvent

SCOPE_ALL = "all"
"""A forget's scope: everything the person wrote or that quotes them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectForgotten(DomainEvent):
    """``subject``'s personal content was erased (their keys destroyed) at
    ``requested_by``'s request (an admin's id, or ``cli:<user>``), at ``at`` (Unix time),
    through ``via`` (``cli``, ``command``, ``restore``: re-applied to a restored
    backup)."""

    type: ClassVar[str] = "SubjectForgotten"
    subject: str
    requested_by: str
    at: float
    scope: str = SCOPE_ALL
    via: str = "cli"
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentExpired(DomainEvent):
    """Retention: content of the days before ``before_period`` (UTC day numbers) was
    shredded at ``at``, and deleted messages whose grace period had passed; metadata and
    usage stay."""

    type: ClassVar[str] = "ContentExpired"
    before_period: int
    at: float
    retention: str = ""
