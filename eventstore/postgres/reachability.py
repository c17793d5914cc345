"""Whether a PostgreSQL log's server answers, as its connections find out.

While the server is away (a restart, a network cut, a failover) every call that needs a
connection fails, and psycopg's pool retries its connections in the background, logging
each attempt. :class:`Reachability` turns that into two log lines an operator can act
on, one when the server stops answering and one when it answers again (with how long
it was away), and a sentence for ``/readyz`` meanwhile. The pool's own warnings about
attempts are left out of the log (:func:`quiet_pool_attempts`): this says it once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

_POOL_LOGGER = "psycopg.pool"
_POOL_ATTEMPTS = ("error connecting in ", "discarding closed connection",
                  "discarding broken connection", "reconnection attempt in pool ")


def first_line(exc: BaseException) -> str:
    """The first line of an error's text (libpq's reason), or its type's name."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()),
                type(exc).__name__)


class Reachability:
    """The server's state as last seen by any of a log's connections (thread-safe)."""

    def __init__(self, location: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._location = location
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None  # when it stopped answering (None: it answers)
        self._reason = ""

    def failed(self, reason: str) -> None:
        """A connection to the server failed or broke (``reason``: one line, no secret)."""
        with self._lock:
            if self._since is not None:
                return
            self._since, self._reason = self._clock(), reason
        log.error("the event log is unreachable: %s (%s); messages wait and replies are "
                  "recorded once it answers again", self._location, reason)

    def answered(self) -> None:
        """A call on a connection to the server succeeded."""
        with self._lock:
            if self._since is None:
                return
            away, self._since = self._clock() - self._since, None
        log.warning("the event log is reachable again: %s (after %.1f s)", self._location, away)

    def problem(self) -> str | None:
        """Why the log cannot be used now, for ``/readyz``; None while it answers."""
        with self._lock:
            if self._since is None:
                return None
            away = self._clock() - self._since
            return f"the event log {self._location} is unreachable for {away:.0f} s: {self._reason}"


class _PoolAttempts(logging.Filter):
    """Drops the pool's line per failed connection attempt (Reachability says it once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.WARNING
                    and str(record.msg).startswith(_POOL_ATTEMPTS))


def quiet_pool_attempts() -> None:
    """Leave psycopg's pool's per-attempt warnings out of the log (once per process)."""
    pool_log = logging.getLogger(_POOL_LOGGER)
    if not any(isinstance(f, _PoolAttempts) for f in pool_log.filters):
        pool_log.addFilter(_PoolAttempts())
