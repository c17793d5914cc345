"""Bad files at the log's path: one clear StoreOpenError each, and nothing written."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from eventstore import SCHEMA_VERSION, NewEvent, SQLiteLog, StoreOpenError, open_store
from eventstore.sqlite import check_log

from ..directories import ReadOnlyDirectory, directory_state


def _real_log_bytes(tmp_path: Path) -> bytes:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    log = SQLiteLog.open(scratch / "real.db")
    log.append("chan", [NewEvent("M", {"i": i, "text": "x" * 200}) for i in range(300)])
    log.close()
    return (scratch / "real.db").read_bytes()


def _not_sqlite(_: bytes) -> bytes:
    return b"name,value\npersonae,1\n" * 100


def _header_then_garbage(_: bytes) -> bytes:
    return b"SQLite format 3\x00" + os.urandom(8192)


def _real_header_then_garbage(real: bytes) -> bytes:
    return real[:100] + os.urandom(len(real) - 100)


def _real_first_page_then_garbage(real: bytes) -> bytes:
    return real[:4096] + os.urandom(len(real) - 4096)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_not_sqlite, "is not an SQLite database"),
        (_header_then_garbage, "is damaged"),
        (_real_header_then_garbage, "is damaged"),
        (_real_first_page_then_garbage, "is damaged"),
    ],
)
async def test_a_foreign_or_damaged_file_is_refused_untouched(
    tmp_path: Path, make: Callable[[bytes], bytes], message: str
) -> None:
    content = make(_real_log_bytes(tmp_path))
    home = tmp_path / "home"
    home.mkdir()
    path = home / "personae.db"
    path.write_bytes(content)
    before = directory_state(home)

    with pytest.raises(StoreOpenError, match=message) as caught:
        SQLiteLog.open(path)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)
    with pytest.raises(StoreOpenError, match=message):
        await open_store(path)

    assert directory_state(home) == before  # same bytes, no -wal or -shm left behind


def test_a_log_from_a_newer_personae_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = SQLiteLog.open(path)
    log.append("chan", [NewEvent("M", {})])
    log.close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    before = directory_state(tmp_path)

    with pytest.raises(StoreOpenError, match="newer personae") as caught:
        SQLiteLog.open(path)
    assert f"log schema {SCHEMA_VERSION + 1}" in str(caught.value)
    assert directory_state(tmp_path) == before
    assert [v.rule for v in check_log(path)] == ["schema"]
    assert directory_state(tmp_path) == before


def test_a_read_only_directory_is_refused_and_nothing_is_created(
    read_only_dir: ReadOnlyDirectory,
) -> None:
    log = SQLiteLog.open(read_only_dir.writable / "existing.db")
    log.append("chan", [NewEvent("M", {})])
    log.close()
    sealed = read_only_dir.seal()
    before = directory_state(sealed)

    for name in ("new.db", "existing.db"):
        with pytest.raises(StoreOpenError, match="read-only") as caught:
            SQLiteLog.open(sealed / name)
        assert str(sealed) in str(caught.value)
    with pytest.raises(StoreOpenError, match="cannot create the directory"):
        SQLiteLog.open(sealed / "sub" / "new.db")

    assert directory_state(sealed) == before
    assert not (sealed / "sub").exists()


def test_a_directory_at_the_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreOpenError, match="is a directory"):
        SQLiteLog.open(tmp_path)


def test_opening_a_missing_log_without_create_says_so(tmp_path: Path) -> None:
    with pytest.raises(StoreOpenError, match="no event log"):
        SQLiteLog.open(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_an_older_log_is_migrated_on_open(tmp_path: Path) -> None:
    """A log at schema 1 (before the replace guard) gains it, keeping its events."""
    from eventstore.sqlite import schema

    path = tmp_path / "old.db"
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    schema._migrate_to_1(schema.sqlite_utils.Database(raw))
    raw.execute("PRAGMA user_version = 1")
    raw.execute(
        "INSERT INTO events (event_id, stream_id, version, type, schema_version, data, "
        "recorded_at) VALUES ('old', 'chan', 1, 'M', 1, '{}', 0)"
    )
    raw.close()

    log = SQLiteLog.open(path)
    try:
        assert log.connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert [e.event_id for e in log.read_all()] == ["old"]
        with pytest.raises(sqlite3.IntegrityError, match="cannot be replaced"):
            log.connection.execute(
                "INSERT OR REPLACE INTO events (position, event_id, stream_id, version, type, "
                "schema_version, data, recorded_at) VALUES (1, 'forged', 'chan', 1, 'M', 1, "
                "'{}', 0)"
            )
    finally:
        log.close()
    assert check_log(path) == []
