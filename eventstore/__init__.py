"""The append-only event log: personae's source of truth.

The interface is in :mod:`eventstore.protocol`: asyncio code uses an
:class:`EventStore` (open one with :func:`open_store`); command-line tools use a
backend's synchronous :class:`Log` (:func:`open_log`). Backends: SQLite
(:mod:`eventstore.sqlite`, the embedded default) and memory (:mod:`eventstore.memory`).
See ``docs/eventstore.md``.
"""

from .errors import (
    EventStoreError,
    LogUnavailable,
    NoSuchTable,
    StoreClosedError,
    StoreOpenError,
    WrongExpectedVersion,
)
from .filters import EVERYTHING, EventFilter
from .memory import MemoryLog
from .model import (
    ANY,
    NO_STREAM,
    AppendRequest,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    Violation,
)
from .projections import Column, Projection, ProjectionDifference, Table, TableReader, TableWriter
from .protocol import EventStore, Log, LogReader
from .sqlite.lock import LogLocked
from .sqlite.log import SQLiteLog
from .sqlite.schema import SCHEMA_VERSION, Synchronous
from .store import ThreadedStore
from .upcasting import Upcasters
from .urls import open_log, open_store, sqlite_path

__all__ = [
    "ANY",
    "EVERYTHING",
    "NO_STREAM",
    "SCHEMA_VERSION",
    "AppendRequest",
    "AppendResult",
    "Column",
    "EventFilter",
    "EventStore",
    "EventStoreError",
    "ExpectedVersion",
    "Log",
    "LogLocked",
    "LogReader",
    "LogUnavailable",
    "MemoryLog",
    "NewEvent",
    "NoSuchTable",
    "Projection",
    "ProjectionDifference",
    "RecordedEvent",
    "SQLiteLog",
    "StoreClosedError",
    "StoreOpenError",
    "Synchronous",
    "Table",
    "TableReader",
    "TableWriter",
    "ThreadedStore",
    "Upcasters",
    "Violation",
    "WrongExpectedVersion",
    "open_log",
    "open_store",
    "sqlite_path",
]
