"""The event catalogue: every event type the log can hold, and how to read one back.

Writers build an event type and call ``new_event(id)``; readers call
:func:`from_recorded` to get the typed event back (upcast to its newest shape by the
store, see :func:`upcasters`). Nothing writes a type this catalogue does not list.
Adding an event type: docs/architecture.md, "The event catalogue".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from eventstore import RecordedEvent, Upcasters

from .base import DomainEvent
from .conversation import (
    ConversationReset,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    ThreadOpened,
)
from .delivery import DeliveryPartPosted, DeliveryPlanned, PreviewPlanned, PreviewPosted
from .greetings import GreetingDelivered, PersonaGreeted
from .media import Attachment, AttachmentStored, attachments_of
from .moderation import (
    ModerationAction,
    ModerationChecked,
    ModerationDirection,
    ModerationVerdict,
)
from .operations import (
    GatewayConnected,
    GatewayDisconnected,
    GatewayResumed,
    LogCreated,
    PersonaVersionRecorded,
    QuotaReset,
    RerunRecorded,
)
from .privacy import ContentExpired, SubjectForgotten
from .replies import (
    OUTCOME_TYPES,
    ModelFailed,
    ModelReplied,
    PersonaTriggered,
    Refusal,
    RefusalKind,
    ReplyDelivered,
    ReplyFailed,
    TriggerReason,
    TriggerRejected,
)
from .tools import ToolCalled, ToolResult

E = TypeVar("E", bound=DomainEvent)

CATALOGUE: Mapping[str, type[DomainEvent]] = {cls.type: cls for cls in (
    MessageReceived, MessageEdited, MessageDeleted, ConversationReset, ThreadOpened,
    PersonaTriggered, TriggerRejected, ModelReplied, ModelFailed, ReplyDelivered, ReplyFailed,
    DeliveryPlanned, DeliveryPartPosted, PreviewPlanned, PreviewPosted,
    QuotaReset, PersonaVersionRecorded, GatewayConnected, GatewayResumed, GatewayDisconnected,
    LogCreated, RerunRecorded, AttachmentStored, ToolCalled, ToolResult, PersonaGreeted,
    GreetingDelivered, ModerationChecked, SubjectForgotten, ContentExpired,
)}
"""Every event type, by its stored name."""


class UnknownEventType(ValueError):
    """An event whose type the catalogue does not list (written by a newer personae?)."""


def from_recorded(event: RecordedEvent) -> DomainEvent:
    """The typed event a recorded one holds (raises UnknownEventType)."""
    cls = CATALOGUE.get(event.type)
    if cls is None:
        raise UnknownEventType(f"event {event.event_id!r} has the type {event.type!r}, "
                               "which this personae does not know")
    return cls.from_data(event.data)


@dataclass(frozen=True, slots=True)
class Typed:
    """A recorded event with its typed content: where it is in the log, and what it says.
    ``position`` and ``event_id`` are copied out of ``recorded``: prompts sort and match
    on them for every event. Build one with :meth:`of`."""

    recorded: RecordedEvent
    event: DomainEvent
    position: int
    event_id: str

    @classmethod
    def of(cls, recorded: RecordedEvent, event: DomainEvent) -> Typed:
        """``recorded`` with its typed content ``event``."""
        # the slots filled directly: the frozen __init__ is half the cost of typing an
        # event, and every event of a prompt is typed
        typed = _new(cls)
        _set_recorded(typed, recorded)
        _set_event(typed, event)
        _set_position(typed, recorded.position)
        _set_event_id(typed, recorded.event_id)
        return typed

    @property
    def version(self) -> int:
        """Its version in its stream."""
        return self.recorded.version

    @property
    def type(self) -> str:
        """Its type's name."""
        return self.recorded.type

    @property
    def data(self) -> Mapping[str, Any]:
        """Its data as stored (upcast)."""
        return self.recorded.data


_new = object.__new__
_set_recorded, _set_event, _set_position, _set_event_id = (
    Typed.__dict__[name].__set__ for name in ("recorded", "event", "position", "event_id"))


def typed(events: Iterable[RecordedEvent], types: Iterable[type[DomainEvent]] | None = None
          ) -> list[Typed]:
    """``events`` read back typed; with ``types``, only the events of those types."""
    if types is None:
        return [Typed.of(e, from_recorded(e)) for e in events]
    wanted = {cls.type: cls for cls in types}
    return [Typed.of(e, wanted[e.type].from_data(e.data)) for e in events if e.type in wanted]


def upcasters(types: Iterable[type[DomainEvent]] | None = None) -> Upcasters:
    """The upcasting steps of every catalogued type (or of ``types``), for the store to
    apply on read."""
    registry = Upcasters()
    for cls in CATALOGUE.values() if types is None else types:
        for version, step in cls.upcasts.items():
            registry.register(cls.type, version, step)
    return registry


__all__ = [
    "CATALOGUE",
    "OUTCOME_TYPES",
    "Attachment",
    "AttachmentStored",
    "ContentExpired",
    "ConversationReset",
    "DeliveryPartPosted",
    "DeliveryPlanned",
    "DomainEvent",
    "GatewayConnected",
    "GatewayDisconnected",
    "GatewayResumed",
    "GreetingDelivered",
    "LogCreated",
    "MessageDeleted",
    "MessageEdited",
    "MessageReceived",
    "ModelFailed",
    "ModelReplied",
    "ModerationAction",
    "ModerationChecked",
    "ModerationDirection",
    "ModerationVerdict",
    "PersonaGreeted",
    "PersonaTriggered",
    "PersonaVersionRecorded",
    "PreviewPlanned",
    "PreviewPosted",
    "QuotaReset",
    "Refusal",
    "RefusalKind",
    "ReplyDelivered",
    "ReplyFailed",
    "RerunRecorded",
    "SubjectForgotten",
    "ThreadOpened",
    "ToolCalled",
    "ToolResult",
    "TriggerReason",
    "TriggerRejected",
    "Typed",
    "UnknownEventType",
    "attachments_of",
    "from_recorded",
    "typed",
    "upcasters",
]
