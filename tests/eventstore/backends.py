"""The backends the conformance suite runs on, each able to open the same log again,
to give a second writer, and to change a projection table behind the projection's
back (how the tests make a projection disagree with its log)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eventstore import Log, MemoryLog, SQLiteLog, ThreadedStore
from eventstore.memory import MemoryState


class SQLiteBackend:
    """A real SQLite file in a temporary directory."""

    name = "sqlite"

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "log.db"

    def open_log(self, **options: Any) -> Log:
        return SQLiteLog.open(self.path, **options)

    def tamper(self, log: Log, table: str, row: Mapping[str, Any]) -> None:
        assert isinstance(log, SQLiteLog)
        columns = ", ".join(row)
        log.connection.execute(f"INSERT OR REPLACE INTO {table} ({columns}) VALUES "
                               f"({', '.join('?' * len(row))})", tuple(row.values()))


class MemoryBackend:
    """One in-memory state, shared by every log opened on it."""

    name = "memory"

    def __init__(self, tmp_path: Path) -> None:
        self.state = MemoryState()

    def open_log(self, **options: Any) -> Log:
        options.pop("synchronous", None)
        return MemoryLog(self.state, **options)

    def tamper(self, log: Log, table: str, row: Mapping[str, Any]) -> None:
        self.state.tables.insert(table, row, on_conflict="replace")


BACKENDS = {"sqlite": SQLiteBackend, "memory": MemoryBackend}


async def open_store(backend: SQLiteBackend | MemoryBackend, **options: Any) -> ThreadedStore:
    """A store over a log of ``backend``."""
    return ThreadedStore(backend.open_log(**options))
