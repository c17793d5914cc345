"""Tailing a running bot's log from another process.

The store's commit wake-ups live inside the bot's process, so a separate process
polls: an idle log costs one read of the newest position per poll, a busy one a read
of the events after the last position shown.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from eventstore import LogReader, RecordedEvent

from .selection import Selection

DEFAULT_POLL_S = 0.2


def follow_events(log: LogReader, selection: Selection, *,
                  poll_s: float = DEFAULT_POLL_S,
                  stop: Callable[[], bool] = lambda: False,
                  sleep: Callable[[float], None] = time.sleep,
                  upcast: bool = True) -> Iterator[RecordedEvent]:
    """Every matching event, then each new one as other processes commit it, until
    ``stop()`` is true (or the caller stops iterating); ``upcast=False``: as stored, but
    with sealed content opened (or erased)."""
    last = selection.after
    while not stop():
        # Everything up to the newest committed position is visible (positions are handed
        # out in commit order), so the cursor can move past events the selection skips
        # without missing a commit that lands meanwhile.
        newest = log.last_position()
        if selection.upto is not None:
            newest = min(newest, selection.upto)
        if newest > last:
            yield from log.scan(replace(selection, after=last, upto=newest).as_filter(),
                                upcast=upcast, unseal=True)
            last = newest
        if selection.upto is not None and last >= selection.upto:
            return
        sleep(poll_s)
