"""What a running bot is waiting on: ``kill -USR1 <pid>`` writes every thread's stack and
every asyncio task's chain of awaits to stderr, for a process that has stopped making
progress. The process goes on running.

Threads are written by :mod:`faulthandler` from the signal itself, so they show even when
the event loop is stuck in a blocking call; tasks are written by the loop, when it next
runs. Stacks name code lines only, never values (no secret can reach them).
"""

from __future__ import annotations

import asyncio
import faulthandler
import signal
import sys
import traceback
from collections.abc import Iterator
from types import FrameType
from typing import IO

DUMP_SIGNAL = signal.SIGUSR1


def dump_on_signal(loop: asyncio.AbstractEventLoop, out: IO[str] | None = None) -> None:
    """On :data:`DUMP_SIGNAL`, write every thread's stack and every task's awaits to ``out``
    (stderr by default)."""
    stream = out or sys.stderr
    loop.add_signal_handler(DUMP_SIGNAL, _write_tasks, stream)
    # chained after the loop's handler, so the loop still hears the signal
    faulthandler.register(DUMP_SIGNAL, file=stream, all_threads=True, chain=True)


def _write_tasks(out: IO[str]) -> None:
    tasks = sorted(asyncio.all_tasks(), key=lambda task: task.get_name())
    lines = [f"{len(tasks)} asyncio task(s), each with what it awaits (innermost last):\n"]
    for task in tasks:
        frames = list(_awaits(task.get_coro()))
        lines.append(f"task {task.get_name()!r}:\n")
        lines.extend(traceback.format_list(
            traceback.StackSummary.extract((f, f.f_lineno) for f in frames)))
    out.write("".join(lines))
    out.flush()


def _awaits(awaitable: object) -> Iterator[FrameType]:
    """The frames of a suspended coroutine and of each coroutine it awaits in turn
    (a task's own stack holds the outermost one only)."""
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            return
        yield frame
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom",
                                                                    None)
