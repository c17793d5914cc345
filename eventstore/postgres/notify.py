"""Hearing other processes' commits: LISTEN on the log's channel.

Every INSERT into ``events`` sends a NOTIFY from the database's own trigger (see
:mod:`eventstore.postgres.schema`), delivered when its transaction commits, with the
writer's name as payload. :class:`PostgresCommitSignal` holds one connection that
LISTENs, ignores the notifications of its own store's writer, and answers a wait with the
log's last position. A notification only says "look again": followers re-read by
position, so one that is late, or lost while the connection was down (after reconnecting
the signal reports the last position anyway), costs latency, never an event.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import time
from collections.abc import Callable

import psycopg

from .reachability import Reachability, first_line

log = logging.getLogger(__name__)

_RETRY_S = (0.1, 0.5, 1.0, 2.0, 5.0)
"""Waits between attempts to reconnect, the last repeated."""


class PostgresCommitSignal:
    """A :class:`~eventstore.protocol.CommitSignal` over LISTEN/NOTIFY. One thread waits;
    any thread may :meth:`interrupt`."""

    def __init__(self, connect: Callable[[], psycopg.Connection], channel: str, *,
                 own_writer: str, location: str, reachability: Reachability) -> None:
        self._connect = connect
        self._reachability = reachability
        self._channel = channel
        self._own_writer = own_writer
        self._location = location
        self._conn: psycopg.Connection | None = None
        self._heard = False
        self._failures = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    def wait(self, timeout: float) -> int | None:
        """See :meth:`~eventstore.protocol.CommitSignal.wait`."""
        deadline = time.monotonic() + timeout
        if self._conn is None:
            return self._reconnect(deadline)
        conn = self._conn
        try:
            readable, _, _ = select.select([conn.fileno(), self._wake_r], [], [],
                                           max(0.0, deadline - time.monotonic()))
            if self._wake_r in readable:
                os.read(self._wake_r, 4096)
                return None
            if not readable:
                return None
            conn.pgconn.consume_input()
            while (notify := conn.pgconn.notifies()) is not None:
                self._note(notify.extra.decode())
            if not self._heard:
                return None
            self._heard = False
            return self._last_position(conn)
        except (psycopg.Error, OSError) as exc:
            # a server that is gone is said once, by whichever connection finds out
            log.debug("lost the connection that listens for commits to %s (%s); "
                      "reconnecting", self._location, type(exc).__name__)
            self._drop()
            return None

    def interrupt(self) -> None:
        """See :meth:`~eventstore.protocol.CommitSignal.interrupt`."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"!")

    def close(self) -> None:
        """See :meth:`~eventstore.protocol.CommitSignal.close`."""
        self._drop()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _reconnect(self, deadline: float) -> int | None:
        """Connect and LISTEN; then report the last position, since commits made while
        there was no connection were not heard of."""
        if self._failures:
            pause = _RETRY_S[min(self._failures - 1, len(_RETRY_S) - 1)]
            readable, _, _ = select.select([self._wake_r], [], [],
                                           min(pause, max(0.0, deadline - time.monotonic())))
            if readable:
                os.read(self._wake_r, 4096)
                return None
        try:
            conn = self._connect()
            conn.add_notify_handler(lambda notify: self._note(notify.payload))
            conn.execute(f'LISTEN "{self._channel}"')
            last = self._last_position(conn)
        except (psycopg.Error, OSError) as exc:
            self._failures += 1
            self._reachability.failed(first_line(exc))
            return None
        self._reachability.answered()
        if self._failures:
            log.debug("listening for commits to %s again", self._location)
        self._conn, self._failures, self._heard = conn, 0, False
        return last

    def _note(self, writer: str) -> None:
        if writer != self._own_writer:
            self._heard = True

    def _last_position(self, conn: psycopg.Connection) -> int:
        row = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
        return int(row[0]) if row else 0

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()
        self._failures = max(self._failures, 1)

