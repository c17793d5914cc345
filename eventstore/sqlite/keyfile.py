"""Key files: the keys of a log's sealed content, carried apart from its events.

A backup is two files: the events (``PATH``, with an empty key table) and their keys
(``PATH.keys``, an SQLite file holding only the key table). Kept apart (another disk,
another person), a stolen backup of events holds no readable personal content, and a
key file can be destroyed on its own.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from ..errors import EventStoreError
from ..keys import SqlKeyTable
from ..sealing import KeyRecord
from .schema import KEY_TABLE


def key_file_for(path: Path) -> Path:
    """Where the keys of the backup ``path`` go: ``path`` + ``.keys``."""
    return path.with_name(path.name + ".keys")


def write_key_file(path: Path, records: Iterable[KeyRecord]) -> int:
    """Write ``records`` into a new key file at ``path``; returns how many."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("BEGIN")
        conn.execute(KEY_TABLE)
        table = SqlKeyTable(lambda q, p: conn.execute(q, p).fetchall())
        count = 0
        for record in records:
            table.insert(record)
            count += 1
        conn.execute("COMMIT")
    finally:
        conn.close()
    return count


def read_key_file(path: Path) -> list[KeyRecord]:
    """The keys in the key file at ``path``."""
    if not path.is_file():
        raise EventStoreError(f"there is no key file at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(SqlKeyTable(lambda q, p: conn.execute(q, p).fetchall()).records())
    except sqlite3.Error as exc:
        raise EventStoreError(f"{path} is not a key file ({exc})") from None
    finally:
        conn.close()


def strip_keys(path: Path) -> list[KeyRecord]:
    """Take every key out of the SQLite log file ``path`` (not in use): returns them; the
    file is then vacuumed, so no page of it still holds one."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA secure_delete=ON")
        try:
            records = list(SqlKeyTable(lambda q, p: conn.execute(q, p).fetchall()).records())
        except sqlite3.OperationalError:
            return []  # a log of an older schema: no key table, nothing sealed
        conn.execute("DELETE FROM content_keys")
        conn.execute("VACUUM")
    finally:
        conn.close()
    return records
