"""Erasure from the command line: forgetting a person in a log, checking that nothing
readable of a forgotten person remains, re-applying the erasure ledger to a copy, and
an access request's export (one person's data, everyone else's redacted)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from eventstore import (
    ERASED,
    EVERYTHING,
    SEALED,
    EventFilter,
    Log,
    LogReader,
    RecordedEvent,
    Violation,
)

from ..events import CATALOGUE, SubjectForgotten
from ..events.ids import PRIVACY_STREAM
from ..privacy import ErasureLedger, LedgerEntry, forget_event

REDACTED = "[redacted]"
MAX_REPORTED = 20
_PEOPLE_FIELDS = ("author_id", "owner_id", "subject", "by_user", "root_author_id")


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgetReport:
    """What a forget did: keys destroyed, events whose content is now erased, and events
    whose content was stored in clear (before encryption was on) and so still reads."""

    subject: str
    keys: int
    erased_events: int
    in_clear: tuple[str, ...]
    recorded: bool


def subject_of(event: RecordedEvent) -> str:
    """Whose personal content ``event`` holds ("" when none, or a type this personae does
    not know)."""
    return subject_of_data(event.type, event.data)


def subject_of_data(type_: str, data: Mapping[str, Any]) -> str:
    """Whose personal content an event of ``type_`` with ``data`` holds."""
    cls = CATALOGUE.get(type_)
    if cls is None:
        return ""
    return str(data.get("quotes") or data.get(cls.subject_field) or "")


def clear_content(event: RecordedEvent) -> list[str]:
    """The personal fields ``event`` (read as stored) holds in clear, not as their
    placeholders: content written before encryption was on (or with it off)."""
    cls = CATALOGUE.get(event.type)
    if cls is None or not cls.personal:
        return []
    erased = set(event.data.get(ERASED, ()))
    return [name for name, placeholder in cls.personal.items()
            if name in event.data and name not in erased
            and _plain(event.data[name]) != _plain(placeholder) and event.data[name]]


def forget_in_log(log: Log, subject: str, *, requested_by: str, requested_id: str,
                  ledger: ErasureLedger | None, via: str = "cli") -> ForgetReport:
    """Forget ``subject`` in ``log`` (its one writer): their keys destroyed as the
    SubjectForgotten is appended, the erasure written to ``ledger``."""
    now = time.time()
    keys = log.key_table().live_of(subject)
    event = forget_event(subject, requested_by=requested_by, requested_id=requested_id,
                         at=now, via=via)
    result = log.append(PRIVACY_STREAM, [event])
    if ledger is not None and not result.duplicates:
        ledger.record(LedgerEntry(subject=subject, requested_by=requested_by, at=now,
                                  event_id=event.event_id))
    erased = 0
    in_clear: list[str] = []
    for stored in log.scan(EVERYTHING, upcast=False):
        if subject in (box["subject"] for box in stored.data.get(SEALED, ())):
            erased += 1
        elif subject_of(stored) == subject and clear_content(stored):
            in_clear.append(stored.event_id)
    return ForgetReport(subject=subject, keys=keys, erased_events=erased,
                        in_clear=tuple(in_clear), recorded=not result.duplicates)


def forgotten(log: LogReader) -> dict[str, float]:
    """Every forgotten subject and the time of their latest erasure."""
    found: dict[str, float] = {}
    for event in log.scan(EventFilter(types=frozenset({SubjectForgotten.type}))):
        data = event.data
        found[str(data["subject"])] = max(found.get(str(data["subject"]), 0.0),
                                          float(data["at"]))
    return found


def erasure_violations(log: LogReader) -> list[Violation]:
    """What ``db check`` finds readable of a forgotten person: a key of theirs made
    before their erasure still live, or content of theirs from before it stored in
    clear."""
    subjects = forgotten(log)
    if not subjects:
        return []
    found: list[Violation] = []
    keys = log.key_table()
    for subject, at in sorted(subjects.items()):
        live = keys.live_of(subject, created_before=at)
        if live:
            found.append(Violation("erasure", f"the forgotten subject {subject} still has "
                                              f"{live} live key(s) made before the erasure"))
    for event in log.scan(EVERYTHING, upcast=False):
        owner = subject_of(event)
        when = subjects.get(owner)
        if when is not None and event.recorded_at <= when and clear_content(event):
            found.append(Violation("erasure", f"event {event.event_id!r} of the forgotten "
                                              f"subject {owner} holds content in clear "
                                              "(written before encryption): seal the log "
                                              "into a new one with `personae db copy`"))
            if len(found) >= MAX_REPORTED:
                break
    return found


def apply_ledger(log: Log, ledger: ErasureLedger) -> list[LedgerEntry]:
    """Forget again, in ``log`` (a restored backup or a copy), everyone the ledger says was
    forgotten and who still has live keys made before their erasure. Returns those."""
    latest: dict[str, LedgerEntry] = {}
    for entry in ledger.entries():
        if entry.subject not in latest or entry.at > latest[entry.subject].at:
            latest[entry.subject] = entry
    applied = []
    for subject, entry in sorted(latest.items()):
        if not log.key_table().live_of(subject, created_before=entry.at):
            continue
        log.append(PRIVACY_STREAM, [forget_event(
            subject, requested_by=entry.requested_by, requested_id=f"ledger:{entry.event_id}",
            at=time.time(), via="restore", made_before=entry.at)])
        applied.append(entry)
    return applied


def access_records(records: Iterable[dict[str, Any]], users: frozenset[str]
                   ) -> Iterator[dict[str, Any]]:
    """Export records (opened) for an access request by ``users``: their own content in
    full; in the events kept, anyone else's personal fields and ids redacted."""
    for record in records:
        data = dict(record["data"])
        cls = CATALOGUE.get(record["type"])
        subject = subject_of_data(record["type"], data)
        if cls is not None and subject not in users:
            for name in cls.personal:
                if name in data:
                    data[name] = REDACTED
        for name in _PEOPLE_FIELDS:
            if isinstance(data.get(name), str) and data[name] and data[name] not in users:
                data[name] = REDACTED
        if isinstance(data.get("mentions"), list):
            data["mentions"] = [m if m in users else REDACTED for m in data["mentions"]]
        yield {**record, "data": data}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value
