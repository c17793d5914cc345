"""Quota windows reset on the personas' cron schedules, run by APScheduler.

Each reset is a QuotaReset event whose id is the persona and the fire time, so a
job that runs twice records it once. At start-up, a reset that fell due while the
bot was down is recorded once (coalesced: only the latest due fire time counts),
before any message is judged against the quota. Cron lines have five fields
(minute hour day month weekday), or six with seconds first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from eventstore import EventStore

from ..events import QuotaReset
from ..events.ids import quota_reset_event_id, quota_stream
from ..personas.model import Persona, QuotaSpec
from .quotas import read_window_start

log = logging.getLogger(__name__)

_LOOKBACKS = (timedelta(minutes=1), timedelta(hours=1), timedelta(days=1), timedelta(days=8),
              timedelta(days=32), timedelta(days=367), timedelta(days=3000))


def cron_trigger(expression: str, timezone: str = "UTC") -> CronTrigger:
    """The trigger for a five-field cron line (or six, seconds first)."""
    fields = expression.split()
    if len(fields) == 6:
        second, minute, hour, day, month, day_of_week = fields
        return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month,
                           day_of_week=day_of_week, timezone=ZoneInfo(timezone))
    return CronTrigger.from_crontab(expression, timezone=ZoneInfo(timezone))


def next_fire_time(quota: QuotaSpec, now: datetime) -> datetime | None:
    """When ``quota``'s window next resets after ``now``."""
    return cron_trigger(quota.reset, quota.timezone).get_next_fire_time(None, now)


def latest_fire_time(trigger: CronTrigger, now: datetime,
                     after: datetime | None = None) -> datetime | None:
    """The latest fire time ``t`` with ``after < t <= now``, or None."""
    for lookback in _LOOKBACKS:
        start = now - lookback
        if after is not None and start <= after:
            start = after + timedelta(microseconds=1)
        latest = None
        fire = trigger.get_next_fire_time(None, start)
        while fire is not None and fire <= now:
            latest = fire
            fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
        if latest is not None or (after is not None and now - lookback <= after):
            return latest
    return None


class QuotaResetScheduler:
    """Records due quota resets: once at start-up, then on each persona's schedule."""

    def __init__(self, store: EventStore, clock: Callable[[], float], *,
                 on_reset: Callable[[str], None] | None = None) -> None:
        self._store = store
        self._clock = clock
        self._on_reset = on_reset
        self._scheduler: AsyncIOScheduler | None = None
        self._quotas: dict[str, QuotaSpec] = {}

    async def catch_up(self, personas: Iterable[Persona]) -> list[QuotaReset]:
        """Record the reset each persona missed while the bot was down (at most one each)."""
        recorded = []
        for persona in personas:
            if persona.limits.quota is not None:
                reset = await self.record_due(persona.id, persona.limits.quota, catch_up=True)
                if reset is not None:
                    recorded.append(reset)
        return recorded

    async def record_due(self, persona_id: str, quota: QuotaSpec, *,
                         catch_up: bool = False) -> QuotaReset | None:
        """Record the latest fire time not yet recorded (None when there is none)."""
        started = await self._store.read(lambda log: read_window_start(log, persona_id))
        now = datetime.fromtimestamp(self._clock(), UTC)
        after = None if started is None else datetime.fromtimestamp(started, UTC)
        due = latest_fire_time(cron_trigger(quota.reset, quota.timezone), now, after)
        if due is None:
            return None
        reset = QuotaReset(persona_id=persona_id, scheduled_for=due.timestamp(), cron=quota.reset,
                           timezone=quota.timezone, catch_up=catch_up)
        result = await self._store.append(
            quota_stream(persona_id), reset.new_event(quota_reset_event_id(persona_id,
                                                                          reset.scheduled_for)))
        if result.duplicates:
            return None
        if self._on_reset is not None:
            self._on_reset(persona_id)
        if after is None:
            log.info("quota window of %s starts at %s", persona_id, due.isoformat())
        else:
            log.info("quota window of %s reset (due %s%s)", persona_id, due.isoformat(),
                     ", missed while down" if catch_up else "")
        return reset

    def start(self, personas: Iterable[Persona]) -> None:
        """Start APScheduler on the running loop with one job per persona quota."""
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.start()
        self.reschedule(personas)

    def reschedule(self, personas: Iterable[Persona]) -> None:
        """Replace the jobs with the schedules of ``personas`` (after a reload)."""
        if self._scheduler is None:
            return
        quotas = {p.id: p.limits.quota for p in personas if p.limits.quota is not None}
        for persona_id in set(self._quotas) - set(quotas):
            self._scheduler.remove_job(persona_id)
        for persona_id, quota in quotas.items():
            if self._quotas.get(persona_id) == quota:
                continue
            self._scheduler.add_job(
                self.record_due, cron_trigger(quota.reset, quota.timezone),
                args=(persona_id, quota), id=persona_id, replace_existing=True,
                coalesce=True, misfire_grace_time=None, max_instances=1,
            )
        self._quotas = quotas

    def shutdown(self) -> None:
        """Stop the jobs (a reset that falls due later is caught up at the next start)."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None
        self._quotas = {}
