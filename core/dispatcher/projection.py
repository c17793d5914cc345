"""The dispatcher's read models, kept in the log's file by the store.

``open_replies``: triggers whose reply is not finished, with the stage they
reached (``model``: no model outcome yet; ``delivery``: replied, not delivered).
Crash recovery reads this instead of scanning the log.

``persona_messages``: the platform messages each persona posted, so a reply to one
of them triggers that persona and the platform's echo of it is known as ours.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from eventstore import EventLog, Projection, RecordedEvent

from .events import (
    ModelFailed,
    ModelReplied,
    PersonaTriggered,
    ReplyDelivered,
    ReplyFailed,
    trigger_event_id,
)


class DispatchProjection(Projection):
    """Open replies and persona-authored messages (see the module docstring)."""

    name = "dispatch"
    version = 1
    tables = ("open_replies", "persona_messages")

    def create(self, db: sqlite3.Connection, schema: str) -> None:
        db.execute(
            f"CREATE TABLE {schema}.open_replies (trigger_id TEXT PRIMARY KEY, "
            "stage TEXT NOT NULL, trigger_position INTEGER NOT NULL, "
            "reply_position INTEGER, stream_id TEXT NOT NULL, recorded_at REAL NOT NULL)"
        )
        db.execute(
            f"CREATE TABLE {schema}.persona_messages (platform TEXT NOT NULL, "
            "message_id TEXT NOT NULL, persona_id TEXT NOT NULL, hop INTEGER NOT NULL, "
            "PRIMARY KEY (platform, message_id)) WITHOUT ROWID"
        )

    def apply(self, db: sqlite3.Connection, schema: str, event: RecordedEvent) -> None:
        kind = event.type
        if kind not in _TYPES:
            return
        data = event.data
        key = trigger_event_id(data["platform"], data["message_id"], data["persona_id"])
        if kind == PersonaTriggered.type:
            db.execute(
                f"INSERT OR IGNORE INTO {schema}.open_replies VALUES (?, 'model', ?, NULL, ?, ?)",
                (key, event.position, event.stream_id, event.recorded_at),
            )
        elif kind == ModelReplied.type:
            db.execute(
                f"UPDATE {schema}.open_replies SET stage = 'delivery', reply_position = ? "
                "WHERE trigger_id = ?", (event.position, key),
            )
        else:
            db.execute(f"DELETE FROM {schema}.open_replies WHERE trigger_id = ?", (key,))
            if kind == ReplyDelivered.type:
                db.executemany(
                    f"INSERT OR REPLACE INTO {schema}.persona_messages VALUES (?, ?, ?, ?)",
                    [(data["platform"], str(mid), data["persona_id"], int(data.get("hop", 0)))
                     for mid in data.get("delivered_ids", ())],
                )


_TYPES = frozenset({PersonaTriggered.type, ModelReplied.type, ModelFailed.type,
                    ReplyDelivered.type, ReplyFailed.type})


@dataclass(frozen=True, slots=True)
class PersonaMessage:
    """A platform message a persona posted, and the hop of the reply it belonged to."""

    persona_id: str
    hop: int


@dataclass(frozen=True, slots=True)
class OpenReply:
    """A reply left unfinished: its trigger, how far it got, and when it was triggered."""

    trigger_id: str
    stage: str
    trigger_position: int
    reply_position: int | None
    stream_id: str
    recorded_at: float


def read_persona_messages(log: EventLog, platform: str,
                          message_ids: list[str]) -> dict[str, PersonaMessage]:
    """Which of ``message_ids`` personas posted (run on a reader thread)."""
    if not message_ids:
        return {}
    marks = ",".join("?" * len(message_ids))
    rows = log.connection.execute(
        f"SELECT message_id, persona_id, hop FROM persona_messages WHERE platform = ? "
        f"AND message_id IN ({marks})", (platform, *message_ids),
    ).fetchall()
    return {row[0]: PersonaMessage(row[1], int(row[2])) for row in rows}


def read_open_replies(log: EventLog) -> list[OpenReply]:
    """Every unfinished reply, oldest trigger first."""
    rows = log.connection.execute(
        "SELECT trigger_id, stage, trigger_position, reply_position, stream_id, recorded_at "
        "FROM open_replies ORDER BY trigger_position"
    ).fetchall()
    return [OpenReply(*row) for row in rows]


def read_positions(log: EventLog, positions: list[int]) -> list[RecordedEvent]:
    """The events at ``positions``, in position order."""
    events = []
    for position in sorted(set(positions)):
        events.extend(log.read_all(position - 1, until=position, limit=1))
    return events
