"""A consistent copy of an SQLite event log (``personae db backup``), safe while the bot writes.

SQLite's online backup API copies the database page by page through a read
transaction. The whole copy is taken in one step, so it is one snapshot: in WAL
mode a reader never blocks the writer, so the bot keeps appending while the copy
runs (its new events are simply not in the copy). The copy is written next to its
destination under a temporary name, checked with :func:`~eventstore.check_log`,
and only then renamed into place, so ``PATH`` is either a good backup or absent.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..errors import EventStoreError
from .check import check_log
from .keyfile import key_file_for, strip_keys, write_key_file
from .schema import connect_reader


class BackupError(EventStoreError):
    """The backup could not be made; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    """A finished backup: where it is, what it holds, and its size; ``keys_path`` is the
    file of its keys (carried apart), holding ``keys`` keys."""

    path: Path
    events: int
    last_position: int
    bytes: int
    keys_path: Path | None = None
    keys: int = 0


def backup_log(source: Path, destination: Path, *, overwrite: bool = False) -> BackupResult:
    """Copy the log at ``source`` to ``destination`` and verify the copy.

    Raises :class:`BackupError` when the source is missing, the destination exists
    (unless ``overwrite``) or cannot be written, or the copy fails its check.
    """
    source, destination = Path(source), Path(destination)
    if not source.is_file():
        raise BackupError(f"there is no event log at {source} to back up")
    if destination.resolve() == source.resolve():
        raise BackupError("the backup must go to another file than the log itself")
    partial = partial_backup_path(destination, overwrite=overwrite)
    partial_keys = key_file_for(partial)
    keys_path = key_file_for(destination)
    try:
        _copy(source, partial)
        keys = write_key_file(partial_keys, strip_keys(partial))
        violations = check_log(partial)
        if violations:
            raise BackupError("the copy failed its check: " + "; ".join(map(str, violations)))
        events, last = _count(partial)
        os.replace(partial_keys, keys_path)
        os.replace(partial, destination)
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(f"could not back up {source} to {destination}: {exc}") from None
    finally:
        for leftover in (partial, partial_keys):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return BackupResult(destination, events, last, destination.stat().st_size,
                        keys_path=keys_path, keys=keys)


def partial_backup_path(destination: Path, *, overwrite: bool) -> Path:
    """Where a backup to ``destination`` is written before it is checked and renamed into
    place. Raises :class:`BackupError` when ``destination`` may not be written."""
    if destination.exists() and not overwrite:
        raise BackupError(f"{destination} exists already; choose a new name or pass --overwrite")
    if not destination.parent.is_dir():
        raise BackupError(f"the directory {destination.parent} does not exist")
    return destination.with_name(f".{destination.name}.partial")


def _copy(source: Path, target: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    reader = connect_reader(source)
    try:
        copy = sqlite3.connect(target)
        try:
            reader.backup(copy)  # pages=-1: one step, one consistent snapshot
            # A backup is one self-contained file: no -wal or -shm beside it.
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
    finally:
        reader.close()


def _count(path: Path) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        count, last = conn.execute(
            "SELECT COUNT(*), COALESCE(MAX(position), 0) FROM events").fetchone()
    finally:
        conn.close()
    return int(count), int(last)

