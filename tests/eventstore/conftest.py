"""Fixtures for the event store tests: real SQLite files in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
