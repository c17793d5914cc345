"""Tailing a running bot's log from another process.

The store's commit wake-ups live inside the bot's process, so a separate process
polls: ``PRAGMA data_version`` changes only when another connection commits, so an
idle log costs one pragma per poll, and a busy one a rowid range read from the last
position shown.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from .selection import EventFilter, Row, iter_rows

DEFAULT_POLL_S = 0.2


def follow_rows(db: sqlite3.Connection, selection: EventFilter, *,
                poll_s: float = DEFAULT_POLL_S,
                stop: Callable[[], bool] = lambda: False,
                sleep: Callable[[float], None] = time.sleep) -> Iterator[Row]:
    """Every matching row, then each new one as other processes commit it, until
    ``stop()`` is true (or the caller stops iterating)."""
    last = selection.after
    seen_version: int | None = None
    while not stop():
        version = db.execute("PRAGMA data_version").fetchone()[0]
        if version != seen_version:
            seen_version = version
            # Everything up to the newest committed position is visible (positions are
            # handed out inside the write lock), so the cursor can move past rows the
            # filter skips without missing a commit that lands meanwhile.
            newest = db.execute("SELECT MAX(position) FROM events").fetchone()[0] or 0
            if selection.upto is not None:
                newest = min(newest, selection.upto)
            if newest > last:
                yield from iter_rows(db, replace(selection, upto=newest), after=last)
                last = newest
            if selection.upto is not None and last >= selection.upto:
                return
        sleep(poll_s)
