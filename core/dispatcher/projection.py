"""The dispatcher's read models, kept beside the log by the store.

``open_replies``: triggers whose reply is not finished, with the stage they
reached (``model``: no model outcome yet; ``delivery``: replied, not delivered).
Crash recovery reads this instead of scanning the log.

``persona_messages``: the platform messages each persona posted, greetings included (and
the message each answered, or the message whose conversation a greeting opened), so a
reply to one of them triggers that persona, the platform's echo of it is known as ours,
and ``explain`` finds the call behind a reply id.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventstore import Column, LogReader, Projection, RecordedEvent, Table, TableWriter

from ..events import (
    GreetingDelivered,
    ModelFailed,
    ModelReplied,
    PersonaTriggered,
    ReplyDelivered,
    ReplyFailed,
    from_recorded,
)
from ..events.ids import trigger_event_id
from ..limits.quotas import QuotaProjection
from .greetings import GreetingProjection


class DispatchProjection(Projection):
    """Open replies and persona-authored messages (see the module docstring)."""

    name = "dispatch"
    version = 3
    types = frozenset({PersonaTriggered.type, ModelReplied.type, ModelFailed.type,
                       ReplyDelivered.type, ReplyFailed.type, GreetingDelivered.type})
    tables = (
        Table(name="open_replies", columns=(
            Column(name="trigger_id", type="text"), Column(name="stage", type="text"),
            Column(name="trigger_position", type="integer"),
            Column(name="reply_position", type="integer", nullable=True),
            Column(name="stream_id", type="text"), Column(name="recorded_at", type="real"),
        ), key=("trigger_id",)),
        Table(name="persona_messages", columns=(
            Column(name="platform", type="text"), Column(name="message_id", type="text"),
            Column(name="persona_id", type="text"), Column(name="hop", type="integer"),
            Column(name="answered_message_id", type="text"),
        ), key=("platform", "message_id")),
    )

    def apply(self, tables: TableWriter, event: RecordedEvent) -> None:
        step = from_recorded(event)
        if isinstance(step, GreetingDelivered):  # a greeting is the persona's message too
            for delivered in step.delivered_ids:
                tables.insert("persona_messages", {
                    "platform": step.platform, "message_id": str(delivered),
                    "persona_id": step.persona_id, "hop": 0,
                    "answered_message_id": step.greeting_id}, on_conflict="replace")
            return
        assert isinstance(step, PersonaTriggered | ModelReplied | ModelFailed | ReplyDelivered
                          | ReplyFailed)
        key = trigger_event_id(step.platform, step.message_id, step.persona_id)
        if isinstance(step, PersonaTriggered):
            tables.insert("open_replies", {
                "trigger_id": key, "stage": "model", "trigger_position": event.position,
                "reply_position": None, "stream_id": event.stream_id,
                "recorded_at": event.recorded_at}, on_conflict="ignore")
        elif isinstance(step, ModelReplied):
            tables.update("open_replies", {"trigger_id": key},
                          {"stage": "delivery", "reply_position": event.position})
        else:
            tables.delete("open_replies", {"trigger_id": key})
            if isinstance(step, ReplyDelivered):
                for delivered in step.delivered_ids:
                    tables.insert("persona_messages", {
                        "platform": step.platform, "message_id": str(delivered),
                        "persona_id": step.persona_id, "hop": step.hop,
                        "answered_message_id": step.message_id}, on_conflict="replace")


def projections() -> tuple[Projection, ...]:
    """Every projection the bot keeps beside the log: the dispatcher's, the greetings'
    and the quotas'."""
    return (DispatchProjection(), GreetingProjection(), QuotaProjection())


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonaMessage:
    """A platform message a persona posted, the hop of the reply it belonged to, and the
    message that reply answered."""

    persona_id: str
    hop: int
    answered_message_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenReply:
    """A reply left unfinished: its trigger, how far it got, and when it was triggered."""

    trigger_id: str
    stage: str
    trigger_position: int
    reply_position: int | None
    stream_id: str
    recorded_at: float


def read_persona_messages(log: LogReader, platform: str,
                          message_ids: list[str]) -> dict[str, PersonaMessage]:
    """Which of ``message_ids`` personas posted (run on a reader thread)."""
    if not message_ids:
        return {}
    rows = log.rows("persona_messages", {"platform": platform, "message_id": tuple(message_ids)})
    return {row["message_id"]: PersonaMessage(persona_id=row["persona_id"], hop=int(row["hop"]),
                                              answered_message_id=row["answered_message_id"])
            for row in rows}


def read_open_replies(log: LogReader) -> list[OpenReply]:
    """Every unfinished reply, oldest trigger first."""
    return [OpenReply(**row) for row in log.rows("open_replies", order_by=("trigger_position",))]
