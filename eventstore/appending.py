"""Rules of appending and loading that every backend applies the same way."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from .encoding import encode_data
from .errors import EventStoreError
from .model import AppendRequest, AppendResult, RecordedEvent
from .sealing import Shred


def as_store_error(request: AppendRequest, exc: Exception) -> EventStoreError:
    """The refusal of one append request, as the sentence its caller receives."""
    if isinstance(exc, EventStoreError):
        return exc
    if isinstance(exc, TypeError | ValueError):
        error = EventStoreError(
            f"append to {request.stream_id!r} refused: its data cannot be stored as JSON ({exc})"
        )
    else:
        error = EventStoreError(f"append to {request.stream_id!r} refused: {exc}")
    error.__cause__ = exc
    return error


def claimed_already(request: AppendRequest, existing: Mapping[str, int]) -> bool:
    """Whether ``request`` is a claim (``AppendRequest.claim``) whose first event's id
    is in the log already: then nothing of it is written."""
    return request.claim and bool(request.events) and request.events[0].event_id in existing


def claim_lost(request: AppendRequest, existing: Mapping[str, int],
               stream_version: int) -> AppendResult:
    """The result of a claim already taken: every event a duplicate, at its existing
    position (0 for those that were never written)."""
    return AppendResult(positions=tuple(existing.get(e.event_id, 0) for e in request.events),
                        stream_version=stream_version, duplicates=len(request.events))


def in_load_order(events: Iterable[RecordedEvent]) -> Iterator[RecordedEvent]:
    """``events``, checked as a load needs them: positions rising, each stream's versions
    gap-free from 1 (the backend refuses a repeated event id). Raises EventStoreError at
    the first that is not."""
    versions: dict[str, int] = {}
    last = 0
    for event in events:
        if event.position <= last:
            raise EventStoreError(f"position {event.position} is not after {last}; events "
                                  "load in position order")
        expected = versions.get(event.stream_id, 0) + 1
        if event.version != expected:
            raise EventStoreError(f"stream {event.stream_id!r} jumps to version {event.version} "
                                  f"after {expected - 1}")
        versions[event.stream_id] = event.version
        last = event.position
        yield event


def stored_data(event: RecordedEvent) -> str:
    """The JSON text a loaded event's data is stored as (EventStoreError if it has none)."""
    try:
        return encode_data(event.data)
    except (TypeError, ValueError) as exc:
        raise EventStoreError(f"event {event.event_id!r}: its data cannot be stored as JSON "
                              f"({exc})") from None


def shreds_of(request: AppendRequest) -> list[Shred]:
    """The key shreds a request's events carry (applied whether or not they are new)."""
    return [shred for event in request.events for shred in event.shreds]
