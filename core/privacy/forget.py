"""Erasing a person: the event that records it and destroys their keys in one append; and
what to seal of an event written in clear (migrating a log)."""

from __future__ import annotations

from collections.abc import Sequence

from eventstore import NewEvent, RecordedEvent, Seal, Shred

from ..events import CATALOGUE
from ..events.ids import forget_event_id
from ..events.privacy import SCOPE_ALL, SubjectForgotten


def forget_event(subject: str, *, requested_by: str, requested_id: str, at: float,
                 via: str, reason: str = "", made_before: float | None = None) -> NewEvent:
    """The SubjectForgotten of ``subject``, destroying every key of theirs as it is
    appended (``requested_id``: the command's own id, so a retried command is a no-op;
    ``made_before``: only keys made by then, when an erasure is applied again)."""
    event = SubjectForgotten(subject=subject, requested_by=requested_by, at=at,
                             scope=SCOPE_ALL, via=via, reason=reason)
    return event.new_event(forget_event_id(subject, requested_id),
                           shreds=(Shred(subject=subject, made_before=made_before),))


def reseal(recorded: RecordedEvent) -> Sequence[Seal]:
    """What to seal of ``recorded``, an event stored in clear (read as stored): its
    type's personal fields under its subject (nothing for a type this personae does not
    know, or an old shape it cannot read)."""
    cls = CATALOGUE.get(recorded.type)
    if cls is None or not cls.personal:
        return ()
    try:
        return cls.from_data(recorded.data).seals()
    except (TypeError, ValueError):
        return ()
