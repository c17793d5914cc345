"""Fixtures for the event store tests: real SQLite files in a temporary directory, schemas
on the PostgreSQL test server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .backends import PostgresBackend
from .directories import ReadOnlyDirectory


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "log.db"


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[ReadOnlyDirectory]:
    directory = ReadOnlyDirectory(tmp_path)
    try:
        yield directory
    finally:
        directory.release()


@pytest.fixture(autouse=True)
def _close_postgres_logs() -> Iterator[None]:
    """Close what a test opened on PostgreSQL and drop its schemas."""
    yield
    PostgresBackend.clean_up()
