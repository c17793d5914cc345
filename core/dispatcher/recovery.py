"""Recovery: finish, exactly once, what a crash left open.

The ``open_replies`` projection lists every trigger without a final outcome and the
stage it reached. At start-up each is re-run (no model outcome yet), delivered (the
reply is recorded, its delivery is not) or, when older than the recovery window,
closed with a failure the user is told about. Platforms without an adapter in this
process are left for a process that has one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from eventstore import EventStore

from ..events import ModelReplied, PersonaTriggered
from .admission import PersonaSource
from .background import Background
from .notices import Notifier
from .pipeline import ReplyJob, ReplyPipeline
from .projection import OpenReply, read_open_replies
from .sink import ReplySink

log = logging.getLogger(__name__)

STALE_NOTICE = "Sorry, I couldn't answer."
"""What the user is told of a reply too old to deliver whose persona is gone."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryReport:
    """What start-up recovery did with the replies a crash left unfinished."""

    rerun: tuple[str, ...] = ()
    redelivered: tuple[str, ...] = ()
    closed: tuple[str, ...] = ()


Rerun = Callable[[ReplyJob], bool]
"""Queues a job again; False when the queue has no room (it stays open for next time)."""


class Recovery:
    """Finds and finishes unfinished replies (see the module docstring)."""

    def __init__(self, *, store: EventStore, personas: PersonaSource,
                 sinks: Mapping[str, ReplySink], pipeline: ReplyPipeline, notifier: Notifier,
                 background: Background, window_s: float, clock: Callable[[], float]) -> None:
        self._store = store
        self._personas = personas
        self._sinks = sinks
        self._pipeline = pipeline
        self._notifier = notifier
        self._background = background
        self._window_s = window_s
        self._clock = clock

    async def recover(self, rerun: Rerun,
                      owns: Callable[[PersonaTriggered], bool] | None = None) -> RecoveryReport:
        """Finish what a crash left open (only what ``owns`` accepts, when given).
        Deliveries run in the background: at start-up an adapter may not be connected yet,
        and they wait until it is."""
        open_replies = await self._store.read(read_open_replies)
        if not open_replies:
            return RecoveryReport()
        wanted = {o.trigger_position for o in open_replies} | {
            o.reply_position for o in open_replies if o.reply_position}
        events = {e.position: e for e in await self._store.read_positions(wanted)}
        cutoff = self._clock() - self._window_s
        reran, redelivered, closed = [], [], []
        for item in open_replies:
            trigger = PersonaTriggered.from_data(events[item.trigger_position].data)
            if trigger.platform not in self._sinks or (owns is not None and not owns(trigger)):
                continue
            job = ReplyJob.of(trigger, item.stream_id)
            if item.recorded_at < cutoff:
                self._background.spawn(self._close_stale(job, item))
                closed.append(item.trigger_id)
            elif item.stage == "model":
                if rerun(job):
                    reran.append(item.trigger_id)
            else:
                assert item.reply_position is not None
                replied = ModelReplied.from_data(events[item.reply_position].data)
                persona = self._personas.get(trigger.persona_id)
                if persona is None:
                    await self._pipeline.close_undelivered(job, "the persona is no longer loaded")
                    closed.append(item.trigger_id)
                    continue
                self._background.spawn(self._pipeline.deliver(job, persona, replied,
                                                              streamed=False, recovered=True))
                redelivered.append(item.trigger_id)
        if reran or redelivered or closed:
            log.info("recovery: %d re-run, %d re-delivered, %d closed", len(reran),
                     len(redelivered), len(closed))
        return RecoveryReport(rerun=tuple(reran), redelivered=tuple(redelivered),
                              closed=tuple(closed))

    async def _close_stale(self, job: ReplyJob, item: OpenReply) -> None:
        persona = self._personas.get(job.trigger.persona_id)
        if item.stage == "model":
            await self._pipeline.fail(job, "abandoned",
                                      "the bot stopped before replying and the message is too "
                                      "old to answer now", persona)
            return
        if await self._pipeline.close_undelivered(
                job, "the bot stopped before delivering and the reply is too old now"):
            text = persona.delivery.failure_notice if persona else STALE_NOTICE
            await self._notifier.send(job.target, persona, "failure", text,
                                      persona_id=job.trigger.persona_id)
