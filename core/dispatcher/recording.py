"""Recording a reply's steps through a log that cannot be written for a while.

Ingestion has its backlog (a message waits outside); a reply in flight has already
been paid for (the model answered, a message may be on the platform), so its steps
wait in place instead: the append is retried with backoff while the log is
unavailable (a full disk), for up to ``patience_s``. Past that the error goes up, and
the trigger stays open for the next start's recovery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from eventstore import AppendResult, LogUnavailable, NewEvent

from ..context.history import ConversationHistory

log = logging.getLogger(__name__)

RECORD_PATIENCE_S = 300.0
RETRY_FIRST_S = 0.5
RETRY_MOST_S = 10.0


async def record(history: ConversationHistory, stream_id: str,
                 events: Sequence[NewEvent] | NewEvent, *,
                 patience_s: float = RECORD_PATIENCE_S) -> AppendResult:
    """Append ``events`` to the conversation, waiting out an unavailable log."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience_s
    delay = RETRY_FIRST_S
    while True:
        try:
            return await history.append(stream_id, events)
        except LogUnavailable as exc:
            if loop.time() + delay > deadline:
                raise
            # once per reply: an outage of the log is said by the log itself
            log.log(logging.WARNING if delay == RETRY_FIRST_S else logging.DEBUG,
                    "could not record a reply's step (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MOST_S)
