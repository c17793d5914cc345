"""Finding a recorded model call in the log from a message id, cheaply.

A user names a message as they saw it: the id of a message that triggered a
persona, or the id of a reply the bot posted, with or without its platform
(``discord:123``). Every lookup here is an index probe or a short index range, so
explaining one message costs milliseconds however long the log is.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from eventstore import EventLog, RecordedEvent

from .selection import platforms


class CallNotFound(Exception):
    """The log holds no message (or reply) with the id asked for."""


class EveryProvider(frozenset[str]):
    """Accepts any provider name: a recorded persona is rebuilt as it was, whether or
    not its provider is still in config.yaml."""

    def __contains__(self, item: object) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message that personas were asked to answer: its platform and platform id.
    ``reply_id`` is set when the user named one of the bot's replies instead."""

    platform: str
    message_id: str
    reply_id: str | None = None
    persona_id: str | None = None


def find_message(log: EventLog, asked: str) -> MessageRef:
    """The message ``asked`` names (see the module docstring); raises CallNotFound."""
    db = log.connection
    platform, _, bare = asked.partition(":") if ":" in asked else ("", "", asked)
    known = platforms(db)
    candidates = [platform] if platform in known else known
    if platform not in known:
        bare = asked
    echoes: dict[str, str] = {}
    for candidate in candidates:
        received = log.get(f"msg:{candidate}:{bare}")
        if received is not None and received.data.get("from_persona"):
            echoes[candidate] = received.stream_id  # our own reply, seen coming back
        elif received is not None or _first_with_prefix(
                db, f"trigger:{candidate}:{bare}:") is not None:
            return MessageRef(candidate, bare)
    for candidate in candidates:
        found = _delivered_as(db, candidate, bare, echoes.get(candidate))
        if found is not None:
            return MessageRef(candidate, found[0], bare, found[1])
    where = f" on {platform}" if platform in known else ""
    raise CallNotFound(f"no message or reply with the id {bare!r}{where} in the log "
                       "(give the id of a message that triggered a persona, or of a reply)")


def events_with_prefix(db: sqlite3.Connection, prefix: str) -> Iterator[RecordedEvent]:
    """Events whose id starts with ``prefix`` (a range of the event id index)."""
    rows = db.execute(
        "SELECT position, event_id, stream_id, version, type, schema_version, data, "
        "recorded_at, correlation_id, causation_id FROM events "
        "WHERE event_id >= ? AND event_id < ? ORDER BY event_id", (prefix, _after(prefix)))
    for row in rows:
        yield RecordedEvent(row[0], row[1], row[2], row[3], row[4], row[5],
                            orjson.loads(row[6]), row[7], row[8], row[9])


def _first_with_prefix(db: sqlite3.Connection, prefix: str) -> str | None:
    row = db.execute("SELECT event_id FROM events WHERE event_id >= ? AND event_id < ? LIMIT 1",
                     (prefix, _after(prefix))).fetchone()
    return row[0] if row else None


def _after(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _delivered_as(db: sqlite3.Connection, platform: str, reply_id: str,
                  stream_id: str | None) -> tuple[str, str] | None:
    """(answered message id, persona id) of the reply posted as ``reply_id``.

    Looked for, in turn: in the conversation where the platform echoed the reply back
    (``stream_id``), around the time a Discord id was made, then everywhere."""
    try:
        row = db.execute("SELECT persona_id FROM persona_messages WHERE platform = ? "
                         "AND message_id = ?", (platform, reply_id)).fetchone()
    except sqlite3.OperationalError:  # the dispatcher's projection has never run here
        row = ("",)
    if row is None:
        return None
    needle = orjson.dumps(reply_id).decode()
    narrowed: list[tuple[str, tuple[Any, ...]]] = []
    if stream_id is not None:
        narrowed.append((" AND stream_id = ?", (stream_id,)))
    window = _snowflake_window(reply_id)
    if window is not None:
        narrowed.append((" AND recorded_at BETWEEN ? AND ?", window))
    for where, params in narrowed:
        found = _delivered_in(db, platform, reply_id, row[0], needle, "+type", where, params)
        if found is not None:
            return found
    return _delivered_in(db, platform, reply_id, row[0], needle, "type", "", ())


def _delivered_in(db: sqlite3.Connection, platform: str, reply_id: str, persona: str,
                  needle: str, type_column: str, where: str,
                  params: tuple[Any, ...]) -> tuple[str, str] | None:
    # "+type" steers SQLite to the stream or recorded_at index when narrowed; without
    # one, the (type, position) index walks replies newest first: the replies people ask
    # about are usually recent.
    for data in db.execute(f"SELECT data FROM events WHERE {type_column} = 'ReplyDelivered' "
                           f"AND instr(data, ?) > 0{where} ORDER BY position DESC",
                           (needle, *params)):
        delivered: dict[str, Any] = orjson.loads(data[0])
        if delivered.get("platform") == platform and reply_id in (
                str(i) for i in delivered.get("delivered_ids") or ()):
            return str(delivered["message_id"]), str(delivered.get("persona_id") or persona)
    return None


_DISCORD_EPOCH_MS = 1_420_070_400_000
SNOWFLAKE_WINDOW_S = 600.0
"""How far from a snowflake's own time its ReplyDelivered is looked for first."""


def _snowflake_window(reply_id: str) -> tuple[float, float] | None:
    """The time around which a Discord message id (a snowflake: its top bits are the
    milliseconds since 2015) was created, so its delivery is looked up along the
    ``recorded_at`` index instead of across the whole log."""
    if not reply_id.isdigit() or not 15 <= len(reply_id) <= 20:
        return None
    created = ((int(reply_id) >> 22) + _DISCORD_EPOCH_MS) / 1000
    return created - SNOWFLAKE_WINDOW_S, created + SNOWFLAKE_WINDOW_S
