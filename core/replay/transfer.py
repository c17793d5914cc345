"""``export`` / ``import``: the log as JSON lines, and back.

An export line holds every stored column of one event, ``data`` as stored (not
upcast), in position order. Importing an export into an empty log writes the same
rows: same positions, ids, streams, versions, types, schema versions, data,
timestamps and correlation/causation ids, in one transaction (a bad line leaves
the log empty). Projections are not exported: the bot rebuilds them on start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from eventstore import EventLog, EventStoreError
from eventstore.log import encode_data

from .selection import COLUMNS, EVERYTHING, EventFilter, Row, iter_rows

EXPORT_FORMAT = "personae-events"
_INSERT = (f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES "
           f"({', '.join('?' * len(COLUMNS))})")


class ImportRefused(EventStoreError):
    """The import file or the target log is not fit for an import; nothing was written."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    """How many events were imported and the last position written."""

    events: int
    last_position: int


def export_lines(log: EventLog, selection: EventFilter = EVERYTHING,
                 transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None
                 ) -> Iterator[bytes]:
    """Each event as one JSON line (``transform`` may rewrite each record: redaction)."""
    for row in iter_rows(log.connection, selection):
        record = _record(row)
        if transform is not None:
            record = transform(record)
        yield orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def _record(row: Row) -> dict[str, Any]:
    record = dict(zip(COLUMNS, row, strict=True))
    record["data"] = orjson.loads(row[6])
    return record


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


def import_lines(log: EventLog, lines: Iterable[bytes | str], *, source: str = "<input>"
                 ) -> ImportResult:
    """Write the exported ``lines`` into ``log``, which must hold no events."""
    db = log.connection
    if log.last_position():
        raise ImportRefused(f"{log.path} already holds events; import only into an empty log "
                            "(point database.path at a new file)")
    rows: list[tuple[Any, ...]] = []
    versions: dict[str, int] = {}
    last = 0
    db.execute("BEGIN IMMEDIATE")
    try:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            row = _parse(line, f"{source}:{number}")
            position, stream, version = row[0], row[2], row[3]
            if position <= last:
                raise ImportRefused(f"{source}:{number}: position {position} is not after "
                                    f"{last}; an export lists events in position order")
            if version != versions.get(stream, 0) + 1:
                raise ImportRefused(f"{source}:{number}: stream {stream!r} jumps to version "
                                    f"{version} after {versions.get(stream, 0)}")
            versions[stream] = version
            last = position
            rows.append(row)
            if len(rows) >= 5000:
                _insert(db, rows, source)
        _insert(db, rows, source)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return ImportResult(sum(versions.values()), last)


def _insert(db: Any, rows: list[tuple[Any, ...]], source: str) -> None:
    try:
        db.executemany(_INSERT, rows)
    except Exception as exc:  # a duplicate event id, mostly
        raise ImportRefused(f"{source}: the events cannot be written as they are: {exc}") from None
    rows.clear()


_REQUIRED = {"position": int, "event_id": str, "stream_id": str, "version": int, "type": str,
             "schema_version": int, "data": dict, "recorded_at": (int, float)}


def _parse(line: bytes | str, where: str) -> tuple[Any, ...]:
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
    try:
        data = encode_data(record["data"])
    except (TypeError, ValueError) as exc:
        raise ImportRefused(f"{where}: its data cannot be stored ({exc})") from None
    return (record["position"], record["event_id"], record["stream_id"], record["version"],
            record["type"], record["schema_version"], data, float(record["recorded_at"]),
            record.get("correlation_id"), record.get("causation_id"))
