"""The append-only event log: personae's source of truth.

The interface is in :mod:`eventstore.protocol`: asyncio code uses an
:class:`EventStore` (open one with :func:`open_store`); command-line tools use a
backend's synchronous :class:`Log` (:func:`open_log`). Backends: SQLite
(:mod:`eventstore.sqlite`, the embedded default), PostgreSQL (:mod:`eventstore.postgres`,
one log for several processes) and memory (:mod:`eventstore.memory`); :func:`copy_log`
copies a log from one to another. Fields a writer marks personal are sealed at rest
(:mod:`eventstore.sealing`) and erased by destroying their keys.
See ``docs/eventstore.md``.
"""

from .copying import CopyError, LogDigest, backup_to_sqlite, copy_log, digest_log
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
from .postgres.log import PostgresLog
from .projections import Column, Projection, ProjectionDifference, Table, TableReader, TableWriter
from .protocol import CommitSignal, EventStore, Log, LogReader
from .sealing import (
    ERASED,
    SEALED,
    KeyCounts,
    KeyRecord,
    KeyTable,
    Resealer,
    Seal,
    Shred,
    period_of,
    sealed_subjects,
)
from .sqlite.lock import LogLocked
from .sqlite.log import SQLiteLog
from .sqlite.schema import SCHEMA_VERSION, Synchronous
from .store import ThreadedStore
from .upcasting import Upcasters
from .urls import open_log, open_store, sqlite_path

__all__ = [
    "ANY",
    "ERASED",
    "EVERYTHING",
    "NO_STREAM",
    "SCHEMA_VERSION",
    "SEALED",
    "AppendRequest",
    "AppendResult",
    "Column",
    "CommitSignal",
    "CopyError",
    "EventFilter",
    "EventStore",
    "EventStoreError",
    "ExpectedVersion",
    "KeyCounts",
    "KeyRecord",
    "KeyTable",
    "Log",
    "LogDigest",
    "LogLocked",
    "LogReader",
    "LogUnavailable",
    "MemoryLog",
    "NewEvent",
    "NoSuchTable",
    "PostgresLog",
    "Projection",
    "ProjectionDifference",
    "RecordedEvent",
    "Resealer",
    "SQLiteLog",
    "Seal",
    "Shred",
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
    "backup_to_sqlite",
    "copy_log",
    "digest_log",
    "open_log",
    "open_store",
    "period_of",
    "sealed_subjects",
    "sqlite_path",
]
