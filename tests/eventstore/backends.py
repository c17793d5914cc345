"""The backends the conformance suite runs on, each able to open the same log again,
to give a second writer, and to change a projection table behind the projection's
back (how the tests make a projection disagree with its log)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from eventstore import EventStoreError, Log, MemoryLog, SQLiteLog, ThreadedStore
from eventstore.memory import MemoryState
from eventstore.postgres import PostgresLog

from . import pgserver


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


class PostgresBackend:
    """A schema of its own on the test server (skipped, or failed in CI, without one).
    Every log it opened is closed and its schema dropped after the test
    (:meth:`clean_up`), also when the test forgot to close one."""

    name = "postgres"
    opened: ClassVar[list[Log]] = []

    def __init__(self, tmp_path: Path) -> None:
        self.url = pgserver.new_schema_url()

    def open_log(self, **options: Any) -> Log:
        options.pop("synchronous", None)
        log = PostgresLog.open(self.url, **options)
        PostgresBackend.opened.append(log)
        return log

    def tamper(self, log: Log, table: str, row: Mapping[str, Any]) -> None:
        assert isinstance(log, PostgresLog)
        schema = log.target.schema
        with pgserver.admin() as conn:
            key = [name for (name,) in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) "
                "AND i.indisprimary", (f'"{schema}"."{table}"',))]
            conn.execute(f'DELETE FROM "{schema}"."{table}" WHERE '
                         + " AND ".join(f'"{k}" = %s' for k in key), [row[k] for k in key])
            conn.execute(f'INSERT INTO "{schema}"."{table}" ({", ".join(row)}) VALUES '
                         f"({', '.join(['%s'] * len(row))})", list(row.values()))

    @classmethod
    def clean_up(cls) -> None:
        while cls.opened:
            with contextlib.suppress(EventStoreError):
                cls.opened.pop().close()
        pgserver.drop_test_schemas()


BACKENDS = {"sqlite": SQLiteBackend, "memory": MemoryBackend, "postgres": PostgresBackend}

Backend = SQLiteBackend | MemoryBackend | PostgresBackend


async def open_store(backend: Backend, **options: Any) -> ThreadedStore:
    """A store over a log of ``backend``."""
    return ThreadedStore(backend.open_log(**options))
