"""Retention: content older than ``privacy.retention`` is shredded on a schedule.

Every ``privacy.shred_every`` (APScheduler, as the quota resets), and once at start-up, a
ContentExpired event is appended that destroys the keys of every day before the cutoff,
and the keys of deleted messages whose grace period has passed. Its id is the cutoff
day, so a run that happens twice on one day records it once (the shreds still apply:
they are idempotent). Metadata, ids and usage stay; only content goes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from eventstore import EventStore, NewEvent, Shred, period_of

from ..config import PrivacySettings
from ..events.ids import PRIVACY_STREAM, retention_event_id
from ..events.privacy import ContentExpired

log = logging.getLogger(__name__)


def retention_event(settings: PrivacySettings, now: float) -> NewEvent:
    """The ContentExpired of a run at ``now``: the days wholly older than the retention
    shredded (none without one) and the deletions that fell due."""
    if settings.retention_s is None:
        cutoff = 0
        shreds = (Shred(due=True, due_by=now),)
    else:
        cutoff = period_of(now - settings.retention_s)
        shreds = (Shred(before_period=cutoff, due=True, due_by=now),)
    event = ContentExpired(before_period=cutoff, at=now, retention=settings.retention or "")
    return event.new_event(retention_event_id(cutoff or period_of(now), due_only=not cutoff),
                           shreds=shreds)


class RetentionScheduler:
    """Runs :func:`retention_event` at start-up and every ``shred_every``."""

    def __init__(self, store: EventStore, settings: PrivacySettings,
                 clock: Callable[[], float], *, on_shred: Callable[[], None] | None = None
                 ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._on_shred = on_shred
        self._scheduler: AsyncIOScheduler | None = None

    @property
    def needed(self) -> bool:
        """Whether anything can fall due: a retention, or a grace period for deletions."""
        return self._settings.retention_s is not None or self._settings.deleted_grace_s > 0

    async def run(self) -> None:
        """Shred what is due now."""
        event = retention_event(self._settings, self._clock())
        result = await self._store.append(PRIVACY_STREAM, event)
        if self._on_shred is not None:
            self._on_shred()
        if not result.duplicates:
            log.info("retention: content before day %s and deletions due shredded",
                     event.data["before_period"])

    def start(self) -> None:
        """Start the schedule on the running loop (nothing when nothing can fall due)."""
        if not self.needed:
            return
        self._scheduler = AsyncIOScheduler()
        self._scheduler.add_job(self.run, IntervalTrigger(seconds=self._settings.shred_every_s),
                                id="retention", coalesce=True, max_instances=1,
                                misfire_grace_time=None)
        self._scheduler.start()

    def shutdown(self) -> None:
        """Stop the schedule (what falls due meanwhile is shredded at the next start)."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None
