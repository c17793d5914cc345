"""``export`` / ``import``: the log as JSON lines, and back.

An export line holds every stored column of one event, ``data`` as stored (not
upcast) but with sealed content opened (erased content as its placeholders, the fields
listed under ``_erased``), in position order; an import seals it again. Importing an
export into an empty log writes the same events: same positions, ids, streams,
versions, types, schema versions, data (sealed under the new log's keys), timestamps
and correlation/causation ids, in one transaction (a bad line leaves the log empty).
Each event is checked against its catalogue type first: an import never writes what
this personae cannot read back. Projections are not exported: the bot rebuilds them
on start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from eventstore import Log, LogReader, RecordedEvent
from eventstore.errors import EventStoreError

from ..events import CATALOGUE
from ..events.validation import EventChecker
from ..privacy import reseal
from .selection import EVERYTHING, Selection

EXPORT_FORMAT = "personae-events"
COLUMNS = ("position", "event_id", "stream_id", "version", "type", "schema_version", "data",
           "recorded_at", "correlation_id", "causation_id")
"""The fields of an export line: every stored column of an event."""


class ImportRefused(EventStoreError):
    """The import file or the target log is not fit for an import; nothing was written."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportResult:
    """How many events were imported and the last position written."""

    events: int
    last_position: int


def export_lines(log: LogReader, selection: Selection = EVERYTHING,
                 transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None
                 ) -> Iterator[bytes]:
    """Each event as one JSON line (``transform`` may rewrite each record: redaction)."""
    for event in log.scan(selection.as_filter(), upcast=False, unseal=True):
        record = {name: getattr(event, name) for name in COLUMNS}
        record["data"] = dict(event.data)
        if transform is not None:
            record = transform(record)
        yield orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def write_export(lines: Iterable[bytes], out: BinaryIO) -> int:
    """Write ``lines`` to ``out`` in large blocks; returns how many."""
    count = 0
    block: list[bytes] = []
    for line in lines:
        block.append(line)
        count += 1
        if len(block) >= 5000:
            out.write(b"".join(block))
            block.clear()
    out.write(b"".join(block))
    out.flush()
    return count


def import_lines(log: Log, lines: Iterable[bytes | str], *, source: str = "<input>",
                 partial: bool = False) -> ImportResult:
    """Write the exported ``lines`` into ``log``, which must hold no events.

    Every event is checked before it is written (in one transaction: a refusal writes
    nothing): its columns, its data against its catalogue type and schema version, its
    time, and its position: from 1 with no gap, as a whole log's export is (``partial``:
    a filtered export, whose positions may skip, is accepted too), and never past
    :data:`MAX_POSITION`.
    """
    where = source
    checker = EventChecker(CATALOGUE)

    def events() -> Iterator[RecordedEvent]:
        nonlocal where
        previous = 0
        for number, line in enumerate(lines, start=1):
            if line.strip():
                where = f"{source}:{number}"
                event = _parse(line, where)
                _check_position(event.position, previous, where, partial)
                problem = checker.problem(event.type, event.schema_version, event.data)
                if problem is not None:
                    raise ImportRefused(f"{where}: event {event.event_id!r}: {problem}")
                previous = event.position
                yield event

    if log.last_position():
        raise ImportRefused(f"{log.location} already holds events; import only into an "
                            "empty log (point database.path at a new file)")
    try:
        count, last = log.load(events(), reseal=reseal)
    except ImportRefused:
        raise
    except EventStoreError as exc:
        raise ImportRefused(f"{where}: {exc}") from None
    return ImportResult(events=count, last_position=last)


MAX_POSITION = 2**53
"""No imported position past this: far below where SQLite's 64-bit positions end (an
import at 2^63-1 would make every later append fail) and exact in any JSON reader."""
LATEST_TIME = 253_402_300_799.0
"""9999-12-31T23:59:59Z: a recorded time past it cannot be shown as a date."""


def _check_position(position: int, previous: int, where: str, partial: bool) -> None:
    if position > MAX_POSITION:
        raise ImportRefused(f"{where}: position {position} is past the most an import takes "
                            f"({MAX_POSITION}); this is not a personae export")
    if not partial and position != previous + 1:
        raise ImportRefused(
            f"{where}: position {position} follows {previous}: a whole log's export has no "
            "gap (a filtered export? import it with --partial)")


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "position": int, "event_id": str, "stream_id": str, "version": int, "type": str,
    "schema_version": int, "data": dict, "recorded_at": (int, float)}


def _parse(line: bytes | str, where: str) -> RecordedEvent:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ImportRefused(f"{where}: not a JSON line ({exc})") from None
    if not isinstance(record, dict):
        raise ImportRefused(f"{where}: expected a JSON object, one event per line")
    for name, kind in _REQUIRED.items():
        value = record.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ImportRefused(f"{where}: field {name!r} is missing or not a "
                                f"{getattr(kind, '__name__', 'number')}")
    for name in ("correlation_id", "causation_id"):
        if record.get(name) is not None and not isinstance(record[name], str):
            raise ImportRefused(f"{where}: field {name!r} must be a string or null")
    for name in ("event_id", "stream_id", "type"):
        if not record[name]:
            raise ImportRefused(f"{where}: field {name!r} is empty")
    for name in ("position", "version"):
        if record[name] < 1:
            raise ImportRefused(f"{where}: field {name!r} is {record[name]}; it starts at 1")
    if not 0 <= record["recorded_at"] <= LATEST_TIME:
        raise ImportRefused(f"{where}: recorded_at {record['recorded_at']} is not a time "
                            "(seconds since 1970, before the year 10000)")
    return RecordedEvent(
        position=record["position"], event_id=record["event_id"], stream_id=record["stream_id"],
        version=record["version"], type=record["type"], schema_version=record["schema_version"],
        data=record["data"], recorded_at=float(record["recorded_at"]),
        correlation_id=record.get("correlation_id"), causation_id=record.get("causation_id"))
