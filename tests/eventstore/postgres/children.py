"""Processes that share one PostgreSQL log with a test, as the bot's processes do.

    python -m tests.eventstore.postgres.children writer URL NAME BATCHES [--slow S]
    python -m tests.eventstore.postgres.children follower URL

Each prints ``ready`` and waits for a line on standard input before it starts.

``writer`` appends BATCHES single-event transactions to stream NAME and prints, for each,
``<position> <time.time() it started> <time.time() it was acknowledged>``. With
``--slow S`` each of its events is a ``Slow`` one, which the ``Dawdle`` projection takes
S seconds to apply: the transaction
holds its positions (its rows are inserted) and sleeps before COMMIT, while the other
writers try to commit theirs.

``follower`` follows the log through a :class:`~eventstore.ThreadedStore` and prints
``<position> <event id> <time.time() on receipt>`` for each event. It never appends, so
only other processes' commits (LISTEN/NOTIFY) can wake it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import ClassVar

from eventstore import NewEvent, Projection, RecordedEvent, TableWriter, open_store
from eventstore.postgres import PostgresLog


class Dawdle(Projection):
    """Sleeps in the append transaction, after the insert, before the commit."""

    name = "dawdle"
    types: ClassVar[frozenset[str] | None] = frozenset({"Slow"})

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def apply(self, tables: TableWriter, event: RecordedEvent) -> None:
        time.sleep(self.seconds)


def writer(url: str, name: str, batches: int, slow: float | None) -> None:
    log = PostgresLog.open(url, projections=[Dawdle(slow)] if slow else [])
    print("ready", flush=True)
    sys.stdin.readline()
    kind = "Slow" if slow else "Fast"
    try:
        for i in range(batches):
            started = time.time()
            result = log.append(name, [NewEvent(kind, {"i": i}, event_id=f"{name}:{i}")])
            print(result.positions[0], f"{started:.6f}", f"{time.time():.6f}", flush=True)
    finally:
        log.close()


async def follower(url: str) -> None:
    store = await open_store(url)
    print("ready", flush=True)
    try:
        async for event in store.follow(0):
            print(event.position, event.event_id, f"{time.time():.6f}", flush=True)
    finally:
        await store.close()


def main(argv: list[str]) -> None:
    if argv[0] == "writer":
        slow = float(argv[5]) if len(argv) > 5 and argv[4] == "--slow" else None
        writer(argv[1], argv[2], int(argv[3]), slow)
    elif argv[0] == "follower":
        asyncio.run(follower(argv[1]))
    else:
        raise SystemExit(f"unknown role {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
