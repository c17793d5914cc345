"""The shapes that cross the event store's boundary: events to append and events read back."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Final, Literal

from .sealing import Seal, Shred

ANY: Final = "any"
"""Expected version meaning "append whatever the stream's current version is"."""

NO_STREAM: Final = 0
"""Expected version meaning "the stream must not exist yet"."""

ExpectedVersion = int | Literal["any"]


def _new_event_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append.

    ``event_id`` is what makes appends idempotent: derive it from something stable
    (``msg:<discord message id>``) and a second append of the same id is a no-op.
    ``seals`` name the fields to store encrypted (:class:`~eventstore.sealing.Seal`);
    ``shreds`` the keys to destroy in the same transaction
    (:class:`~eventstore.sealing.Shred`: applied even when the event is a duplicate).
    """

    type: str
    data: Mapping[str, Any]
    _: KW_ONLY
    event_id: str = field(default_factory=_new_event_id)
    schema_version: int = 1
    correlation_id: str | None = None
    causation_id: str | None = None
    seals: tuple[Seal, ...] = ()
    shreds: tuple[Shred, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedEvent:
    """An event as stored: its global position, its place in its stream, and its payload.

    ``data`` is already upcast to the newest shape registered for ``type``;
    ``schema_version`` says which shape that is.
    """

    position: int
    event_id: str
    stream_id: str
    version: int
    type: str
    schema_version: int
    data: Mapping[str, Any]
    recorded_at: float
    correlation_id: str | None = None
    causation_id: str | None = None

    @property
    def recorded_datetime(self) -> datetime:
        """``recorded_at`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.recorded_at, tz=UTC)


(
    _set_position, _set_event_id, _set_stream_id, _set_version, _set_type,
    _set_schema_version, _set_data, _set_recorded_at, _set_correlation_id, _set_causation_id,
) = (RecordedEvent.__dict__[f.name].__set__ for f in fields(RecordedEvent))


def build_recorded_event(
    position: int, event_id: str, stream_id: str, version: int, type_: str,
    schema_version: int, data: Mapping[str, Any], recorded_at: float,
    correlation_id: str | None, causation_id: str | None,
) -> RecordedEvent:
    """``RecordedEvent(...)`` for the store's read loop, filling the slots directly.

    The frozen dataclass ``__init__`` makes an ``object.__setattr__`` call per field,
    which is a sixth of a replay's time; the slot setters do the same work for less.
    """
    event = object.__new__(RecordedEvent)
    _set_position(event, position)
    _set_event_id(event, event_id)
    _set_stream_id(event, stream_id)
    _set_version(event, version)
    _set_type(event, type_)
    _set_schema_version(event, schema_version)
    _set_data(event, data)
    _set_recorded_at(event, recorded_at)
    _set_correlation_id(event, correlation_id)
    _set_causation_id(event, causation_id)
    return event


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendResult:
    """Where an append landed. ``positions`` has one entry per event, in order;
    ``duplicates`` counts the events whose id already existed (their existing
    position is returned and nothing was written for them). ``written`` holds the
    events this append wrote, exactly as a read returns them, when the append was
    asked for them (``Log.append_batch(..., recorded=True)``)."""

    positions: tuple[int, ...]
    stream_version: int
    duplicates: int = 0
    written: tuple[RecordedEvent, ...] = ()

    def wrote(self) -> tuple[bool, ...]:
        """For each event, in order, whether this append wrote it (False: its id existed,
        written by an earlier append, perhaps another process's). What an append writes is
        numbered after everything already in the log, so the new events are the ones whose
        positions are above every duplicate's. The writer of an event id holds its claim:
        of several processes appending the same id, exactly one sees True."""
        if not self.duplicates:
            return (True,) * len(self.positions)
        if self.duplicates >= len(self.positions):
            return (False,) * len(self.positions)
        first_new = sorted(set(self.positions))[-(len(self.positions) - self.duplicates)]
        return tuple(p >= first_new for p in self.positions)


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One atomic append: all of ``events`` land in ``stream_id`` or none do."""

    stream_id: str
    events: Sequence[NewEvent]
    _: KW_ONLY
    expected_version: ExpectedVersion = ANY
    claim: bool = False
    """The first event is the request's claim: when its id is in the log already (another
    append, perhaps another process's, wrote it), nothing of the request is written,
    even events whose ids are new; every event counts as a duplicate, at its existing
    position or 0. How "record this message and the decisions about it, unless the
    message was recorded before" is one atomic step."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule of a log, said in a sentence."""

    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"
