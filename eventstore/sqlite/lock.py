"""One writer per log file: an exclusive ``flock`` on ``<log>.lock`` beside it.

The process that writes the log (``personae run``, ``personae chat``, an import) holds
the lock for as long as the log is open; a second one is refused with a sentence
naming the first (its pid, host, command, since when), written into the lock file.
The operating system lets go of a ``flock`` when its process dies, so a ``kill -9``
never leaves a stale lock behind (its file may stay, and is taken over). Readers
(``events``, ``replay``, ``db check``...) take no lock. The lock is advisory and
local: a log on a network filesystem shared by several machines is not protected by
it (use the PostgreSQL backend for that).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ..errors import StoreOpenError


class LogLocked(StoreOpenError):
    """Another process writes this log."""


class WriterLock:
    """The writer lock of one log file, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, log_path: Path) -> WriterLock:
        """Take the lock of ``log_path`` or raise :class:`LogLocked` (or
        :class:`StoreOpenError` when the lock file cannot be made at all)."""
        path = lock_path(log_path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreOpenError(
                f"cannot write the event log {log_path}: its directory {log_path.parent} is "
                f"read-only or not ours ({exc.strerror}); make it writable or point "
                "database.path elsewhere") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise StoreOpenError(f"cannot lock the event log {log_path}: {exc.strerror}"
                                     ) from None
            raise LogLocked(f"another personae process is writing the event log {log_path}"
                            f"{holder}; stop it first, or point database.path at another "
                            "file (two writers on one SQLite log are refused)") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
            "command": " ".join(["personae", *sys.argv[1:]])[:200]}).encode())
        return cls(fd, path)

    def release(self) -> None:
        """Let the lock go and remove its file. Removing it while still holding the lock
        is safe: anyone who opened it meanwhile was refused (nobody waits for it), and
        the next writer makes a new one."""
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None


def lock_path(log_path: Path) -> Path:
    """The lock file of ``log_path``: ``<name>.lock`` in the same directory."""
    return log_path.with_name(log_path.name + ".lock")


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        holder = json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        holder = {}
    if not isinstance(holder, dict) or "pid" not in holder:
        return ""
    since = datetime.fromtimestamp(float(holder.get("since") or 0), UTC)
    return (f": pid {holder['pid']} on {holder.get('host', '?')}, running "
            f"{holder.get('command') or 'personae'!r}, since {since:%Y-%m-%d %H:%M:%S} UTC")
