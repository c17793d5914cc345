"""Copying a log between backends (``personae db copy``), and verifying the copy.

:func:`copy_log` streams every event of one consistent snapshot of the source, exactly
as stored (``scan(upcast=False)``), into an empty target with
:meth:`~eventstore.protocol.Log.load` (one transaction: a failed copy leaves the target
empty), then reads the target back and compares the number of events, the last position
and a SHA-256 of every event's content. Memory stays flat: events pass through in the
backends' read chunks. Projections are not copied; they are rebuilt from the events when
the bot opens the copy.

:func:`backup_to_sqlite` is the same copy into a new SQLite file, checked and renamed into
place: ``personae db backup`` for logs that are not SQLite files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from .errors import EventStoreError
from .filters import EVERYTHING
from .model import RecordedEvent
from .protocol import Log, LogReader
from .sealing import Resealer
from .sqlite.backup import BackupError, BackupResult, partial_backup_path
from .sqlite.check import check_log
from .sqlite.keyfile import key_file_for, write_key_file
from .sqlite.log import SQLiteLog


class CopyError(EventStoreError):
    """The copy was refused or does not match its source; the message says which."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogDigest:
    """What a log holds, in three figures two copies must share (``keys``: how many keys
    of sealed content were copied beside the events)."""

    events: int
    last_position: int
    sha256: str
    keys: int = 0


class _Digester:
    """Hashes events as they stream past (every stored field, data with sorted keys)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.events = 0
        self.last_position = 0

    def passing(self, events: Iterable[RecordedEvent]) -> Iterator[RecordedEvent]:
        update, dumps, option = self._hash.update, orjson.dumps, orjson.OPT_SORT_KEYS
        for event in events:
            update(dumps([event.position, event.event_id, event.stream_id, event.version,
                          event.type, event.schema_version, event.data, event.recorded_at,
                          event.correlation_id, event.causation_id], option=option))
            update(b"\n")
            self.events += 1
            self.last_position = event.position
            yield event

    def digest(self) -> LogDigest:
        return LogDigest(events=self.events, last_position=self.last_position,
                         sha256=self._hash.hexdigest())


def digest_log(log: LogReader, *, opened: bool = False) -> LogDigest:
    """The digest of every event in ``log`` as stored (``opened``: with sealed content
    opened, or erased), read in one snapshot."""
    digester = _Digester()
    with log.snapshot():
        for _ in digester.passing(log.scan(EVERYTHING, upcast=False, unseal=opened)):
            pass
    return digester.digest()


def copy_log(source: LogReader, target: Log, *, keys: bool = True,
             reseal: Resealer | None = None) -> LogDigest:
    """Copy every event of ``source`` into the empty ``target`` and verify the copy.

    ``keys``: copy the key table too (live and destroyed keys), after the events;
    ``reseal``: seal what it names of events the source holds in clear (migrating a log
    into a sealed one: the copy then holds different bytes, so it is verified on the
    content as read, opened, rather than as stored). Raises :class:`CopyError` when the
    target holds events (nothing is written) or the copy read back differs from what was
    read from the source.
    """
    if target.last_position():
        raise CopyError(f"{target.location} already holds events; copy only into an empty log")
    digester = _Digester()
    opened = reseal is not None
    with source.snapshot():
        try:
            if reseal is None:
                target.load(digester.passing(source.scan(EVERYTHING, upcast=False)))
            else:
                target.load(source.scan(EVERYTHING, upcast=False), reseal=reseal)
            copied = target.load_keys(source.key_table().records()) if keys else 0
            if opened:  # what was sealed on the way differs as stored: compare it as read
                for _ in digester.passing(source.scan(EVERYTHING, upcast=False, unseal=True)):
                    pass
        except CopyError:
            raise
        except EventStoreError as exc:
            raise CopyError(f"could not copy {source.location} to {target.location}: {exc}"
                            ) from None
    read = digester.digest()
    written = digest_log(target, opened=opened)
    if written != read:
        raise CopyError(
            f"the copy at {target.location} does not match {source.location}: "
            f"{written.events} events up to position {written.last_position} (sha256 "
            f"{written.sha256[:12]}), not {read.events} up to {read.last_position} (sha256 "
            f"{read.sha256[:12]}); do not use it")
    return LogDigest(events=read.events, last_position=read.last_position, sha256=read.sha256,
                     keys=copied)


def backup_to_sqlite(source: LogReader, destination: Path, *, overwrite: bool = False
                     ) -> BackupResult:
    """A consistent copy of ``source`` (any backend) as a new SQLite log at ``destination``,
    verified by :func:`copy_log` and ``db check``, then renamed into place: ``destination``
    is either a good backup or absent; its keys go apart, into ``destination.keys``.
    Raises :class:`BackupError`."""
    destination = Path(destination)
    partial = partial_backup_path(destination, overwrite=overwrite)
    partial_keys = key_file_for(partial)
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    try:
        target = SQLiteLog.open(partial, synchronous="normal")
        try:
            copied = copy_log(source, target, keys=False)
            with source.snapshot():
                keys = write_key_file(partial_keys, source.key_table().records())
            # a backup is one self-contained file: no -wal or -shm beside it
            target.connection.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
        violations = check_log(partial)
        if violations:
            raise BackupError("the copy failed its check: " + "; ".join(map(str, violations)))
        os.replace(partial_keys, key_file_for(destination))
        os.replace(partial, destination)
    except (OSError, EventStoreError) as exc:
        if isinstance(exc, BackupError):
            raise
        raise BackupError(f"could not back up {source.location} to {destination}: {exc}"
                          ) from None
    finally:
        for leftover in (partial, partial_keys, *partial.parent.glob(partial.name + "-*")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return BackupResult(destination, copied.events, copied.last_position,
                        destination.stat().st_size, keys_path=key_file_for(destination),
                        keys=keys)
