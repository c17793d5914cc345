"""Errors raised by the event store. Every message is a sentence a user can act on."""

from __future__ import annotations


class EventStoreError(Exception):
    """Base class for every event store error."""


class WrongExpectedVersion(EventStoreError):
    """An append named an expected stream version that is not the current one."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, not the expected {expected}"
        )


class StoreOpenError(EventStoreError):
    """The log file cannot be opened: corrupt, not SQLite, not writable, or too new."""


class StoreClosedError(EventStoreError):
    """The store was used after ``close()``."""


class NoSuchTable(EventStoreError):
    """A projection table that this log does not hold (its projection never ran here)."""


class LogUnavailable(EventStoreError):
    """The log could not commit at all (a full disk, an I/O error, the database gone):
    nothing of the append was written, and the same append may succeed later."""
