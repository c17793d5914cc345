"""The append-only SQLite event log: personae's source of truth.

Asyncio code opens an :class:`EventStore`; command-line tools and the store's own
writer thread use the synchronous :class:`EventLog`. See ``docs/eventstore.md``.
"""

from .check import Violation, check_log
from .errors import EventStoreError, StoreClosedError, StoreOpenError, WrongExpectedVersion
from .log import AppendRequest, EventLog
from .model import ANY, NO_STREAM, AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from .projections import Projection, ProjectionDifference
from .schema import SCHEMA_VERSION, Synchronous
from .store import EventStore
from .upcasting import Upcasters

__all__ = [
    "ANY",
    "NO_STREAM",
    "SCHEMA_VERSION",
    "AppendRequest",
    "AppendResult",
    "EventLog",
    "EventStore",
    "EventStoreError",
    "ExpectedVersion",
    "NewEvent",
    "Projection",
    "ProjectionDifference",
    "RecordedEvent",
    "StoreClosedError",
    "StoreOpenError",
    "Synchronous",
    "Upcasters",
    "Violation",
    "WrongExpectedVersion",
    "check_log",
]
