"""The dispatcher's read models, kept beside the log by the store.

``open_replies``: triggers whose reply is not finished, with the stage they
reached (``model``: no model outcome yet; ``delivery``: replied, not delivered).
Crash recovery reads this instead of scanning the log.

``persona_messages``: the platform messages each persona posted, greetings included (and
the message each answered; for a greeting ``greeting:<message>``, the message whose
conversation it opened), so a reply to one of them triggers that persona, the
platform's echo of it is known as ours, ``explain`` finds the call behind a reply id,
and a delivery recovered after a crash never takes another reply's (or a greeting's)
message for its own. A message is claimed as soon as it is posted (a part, a preview),
not only once the reply is delivered.

``dm_personas``: in each DM conversation, the persona a person last started a reply
from (the one they are talking with: a DM goes to it unless another is named).
"""

from __future__ import annotations

from dataclasses import dataclass

from eventstore import Column, LogReader, Projection, RecordedEvent, Table, TableWriter

from ..events import (
    DeliveryPartPosted,
    GreetingDelivered,
    ModelFailed,
    ModelReplied,
    PersonaTriggered,
    PreviewPosted,
    ReplyDelivered,
    ReplyFailed,
    from_recorded,
)
from ..events.ids import greeting_delivery_id, trigger_event_id
from ..limits.claims import RateProjection
from ..limits.quotas import QuotaProjection
from .greetings import GreetingProjection


class DispatchProjection(Projection):
    """Open replies and persona-authored messages (see the module docstring)."""

    name = "dispatch"
    version = 4
    types = frozenset({PersonaTriggered.type, ModelReplied.type, ModelFailed.type,
                       ReplyDelivered.type, ReplyFailed.type, DeliveryPartPosted.type,
                       PreviewPosted.type, GreetingDelivered.type})
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
        Table(name="dm_personas", columns=(
            Column(name="platform", type="text"), Column(name="channel_id", type="text"),
            Column(name="persona_id", type="text"), Column(name="position", type="integer"),
        ), key=("platform", "channel_id")),
    )

    def apply(self, tables: TableWriter, event: RecordedEvent) -> None:
        step = from_recorded(event)
        if isinstance(step, DeliveryPartPosted | PreviewPosted):
            posted = step.posted_id
            tables.insert("persona_messages", {
                "platform": step.platform, "message_id": posted, "persona_id": step.persona_id,
                "hop": 0, "answered_message_id": step.message_id}, on_conflict="ignore")
            return
        if isinstance(step, GreetingDelivered):  # a greeting is the persona's message too
            for delivered in step.delivered_ids:
                tables.insert("persona_messages", {
                    "platform": step.platform, "message_id": str(delivered),
                    "persona_id": step.persona_id, "hop": 0,
                    "answered_message_id": greeting_delivery_id(step.greeting_id)},
                    on_conflict="ignore")
            return
        assert isinstance(step, PersonaTriggered | ModelReplied | ModelFailed | ReplyDelivered
                          | ReplyFailed)
        key = trigger_event_id(step.platform, step.message_id, step.persona_id)
        if isinstance(step, PersonaTriggered):
            tables.insert("open_replies", {
                "trigger_id": key, "stage": "model", "trigger_position": event.position,
                "reply_position": None, "stream_id": event.stream_id,
                "recorded_at": event.recorded_at}, on_conflict="ignore")
            if step.is_dm and step.hop == 0:
                tables.insert("dm_personas", {
                    "platform": step.platform, "channel_id": step.channel_id,
                    "persona_id": step.persona_id, "position": event.position},
                    on_conflict="replace")
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
    """Every projection the bot keeps beside the log: the dispatcher's, the greetings',
    the quotas' and the shared rate buckets."""
    return (DispatchProjection(), GreetingProjection(), QuotaProjection(), RateProjection())


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


def read_dm_persona(log: LogReader, platform: str, channel_id: str) -> str | None:
    """The persona last talked with in the DM conversation ``channel_id``, if any."""
    rows = log.rows("dm_personas", {"platform": platform, "channel_id": channel_id})
    return rows[0]["persona_id"] if rows else None
