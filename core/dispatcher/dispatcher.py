"""The dispatcher: from an inbound message to delivered replies, every step an event.

Flow (see ``docs/dispatcher.md``): the message and every trigger decision about it
are appended in ONE atomic append to the conversation's stream, so a second
delivery of the message is a no-op all the way down. Accepted triggers go to the
:class:`~core.dispatcher.workqueue.WorkQueue`; each reply job builds the context
from the log, calls the model, records ModelReplied or ModelFailed, hands the
reply to the platform's :class:`~core.dispatcher.sink.ReplySink`, and records
ReplyDelivered or ReplyFailed. The dispatcher knows no platform.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from eventstore import EventStore, NewEvent, RecordedEvent

from ..config import AdminSettings, Config
from ..context.builder import BuiltContext, ContextTarget, build_context
from ..context.history import MAX_CACHED_EVENTS, ConversationHistory
from ..gateway.model import ModelOutcome, ModelRequest, OnDelta
from ..limits.buckets import BucketKey, NoticeGate, RateLimiter
from ..limits.quotas import QuotaLedger, QuotaStatus, QuotaUsage, quota_status, read_usage
from ..limits.schedule import QuotaResetScheduler, next_fire_time
from ..personas.model import Persona
from ..personas.versions import record_versions
from .events import (
    ConversationReset,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    ModelFailed,
    ModelReplied,
    PersonaTriggered,
    ReplyDelivered,
    ReplyFailed,
    TriggerRejected,
    conversation_stream,
    delete_event_id,
    delivered_event_id,
    edit_event_id,
    message_event_id,
    reply_event_id,
    reset_event_id,
    trigger_event_id,
)
from .messages import (
    Author,
    InboundDeletion,
    InboundEdit,
    InboundMessage,
    IngestResult,
    Notice,
    OutboundReply,
    ReplyResult,
    ReplyTarget,
)
from .permissions import permission_refusal
from .projection import (
    OpenReply,
    PersonaMessage,
    read_open_replies,
    read_persona_messages,
)
from .requests import model_request
from .sink import DeliveryError, ReplySink
from .triggers import TriggerEvaluator, TriggerMatch
from .workqueue import WorkQueue

log = logging.getLogger(__name__)

BUSY_NOTICE_WINDOW_S = 30.0
QUOTA_NOTICE_WINDOW_S = 3600.0


class ModelClient(Protocol):
    """What the dispatcher needs of the model gateway."""

    async def complete(self, request: ModelRequest,
                       on_delta: OnDelta | None = None) -> ModelOutcome:
        """A reply (or a failure as a value: it never raises)."""
        ...


class PersonaSource(Protocol):
    """What the dispatcher needs of the persona registry."""

    def get(self, persona_id: str) -> Persona | None:
        """The serving version of ``persona_id``."""
        ...

    def all(self) -> Sequence[Persona]:
        """Every serving persona."""
        ...


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    """The framework-wide bounds (config.yaml ``limits``, ``admins`` and providers)."""

    max_concurrent: int = 64
    queue_size: int = 10_000
    recovery_window_s: float = 600.0
    shutdown_deadline_s: float = 20.0
    provider_concurrency: Mapping[str, int] = field(default_factory=dict)
    admins: AdminSettings = field(default_factory=AdminSettings)
    history_cache_events: int = MAX_CACHED_EVENTS
    """Recent conversation events kept in memory for prompts (0: read the log each time)."""

    @classmethod
    def from_config(cls, config: Config) -> DispatcherSettings:
        """The settings config.yaml describes."""
        return cls(
            max_concurrent=config.limits.max_concurrent_replies,
            queue_size=config.limits.queue_size,
            recovery_window_s=config.limits.recovery_window_s,
            shutdown_deadline_s=config.limits.shutdown_deadline_s,
            provider_concurrency={n: p.max_concurrency for n, p in config.providers.items()},
            admins=config.admins,
        )


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What start-up recovery did with the replies a crash left unfinished."""

    rerun: tuple[str, ...] = ()
    redelivered: tuple[str, ...] = ()
    closed: tuple[str, ...] = ()


@dataclass(slots=True)
class _Decision:
    """One persona's fate for one message, before it is appended."""

    persona: Persona
    match: TriggerMatch
    event: PersonaTriggered | TriggerRejected
    bucket: BucketKey | None = None
    notice: str | None = None


@dataclass(frozen=True, slots=True)
class _Job:
    trigger: PersonaTriggered
    stream_id: str
    target: ReplyTarget


class Dispatcher:
    """Routes inbound messages to personas and their replies back to the adapters."""

    def __init__(
        self,
        store: EventStore,
        personas: PersonaSource,
        model: ModelClient,
        sinks: Mapping[str, ReplySink],
        settings: DispatcherSettings = DispatcherSettings(),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._personas = personas
        self._model = model
        self._sinks = dict(sinks)
        self._settings = settings
        self._clock = clock
        self._triggers = TriggerEvaluator()
        self._rates = RateLimiter(clock)
        self._notices = NoticeGate(clock)
        self._queue = WorkQueue(max_pending=settings.queue_size,
                                max_concurrent=settings.max_concurrent)
        self._history = ConversationHistory(store, max_events=settings.history_cache_events)
        self._ledger = QuotaLedger(store)
        self._resets = QuotaResetScheduler(store, clock, on_reset=self._ledger.observe_reset)
        self._recorded_versions: set[tuple[str, str]] = set()
        self._waiters: dict[str, asyncio.Future[ReplyResult]] = {}
        self._background: set[asyncio.Task[None]] = set()

    # -- life cycle --------------------------------------------------------------------

    async def start(self, *, schedule_resets: bool = True) -> RecoveryReport:
        """Record persona versions, catch up missed quota resets, start the reset
        schedule, and recover replies a crash left unfinished."""
        await self._record_versions(self._personas.all())
        await self._resets.catch_up(self._personas.all())
        if schedule_resets:
            self._resets.start(self._personas.all())
        return await self.recover()

    async def personas_changed(self) -> None:
        """Call after a persona reload: new versions are recorded, schedules replaced."""
        await self._record_versions(self._personas.all())
        await self._resets.catch_up(self._personas.all())
        self._resets.reschedule(self._personas.all())

    async def wait_idle(self) -> None:
        """Until every accepted reply has finished."""
        await self._queue.wait_idle()
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def shutdown(self, deadline_s: float | None = None) -> int:
        """Stop intake, let replies finish up to the deadline, record those that did not
        (ModelFailed ``shutdown``). Returns how many were cut short."""
        self._resets.shutdown()
        deadline = self._settings.shutdown_deadline_s if deadline_s is None else deadline_s
        started = time.monotonic()
        cut = await self._queue.finish(deadline)
        if self._background:
            left = max(0.0, deadline - (time.monotonic() - started))
            _, pending = await asyncio.wait(list(self._background), timeout=left)
            for task in pending:  # e.g. a recovered delivery still waiting for its adapter
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            cut += len(pending)
        return cut

    # -- intake ------------------------------------------------------------------------

    async def ingest(self, message: InboundMessage) -> IngestResult:
        """Record ``message`` and every persona's trigger decision about it, atomically,
        then queue the accepted replies. A message already recorded is a no-op."""
        stream = conversation_stream(message.platform, message.channel_id)
        ours: dict[str, PersonaMessage] = {}
        lookups = [m for m in (message.reply_to, message.message_id if message.author.is_bot
                               else None) if m]
        if lookups:
            ours = await self._store.read(
                lambda log: read_persona_messages(log, message.platform, lookups))
        echo = ours.get(message.message_id) if message.author.is_bot else None
        received = _received(message, echo.persona_id if echo else None)
        decisions: list[_Decision] = []
        if echo is None and self._queue.accepting:
            replied = ours.get(message.reply_to or "")
            matches = self._triggers.evaluate(
                message, self._personas.all(),
                replied_persona=replied.persona_id if replied else None)
            decisions = await self._decide(message, matches, message_event_id(
                message.platform, message.message_id))
        events = [received.new_event(message_event_id(message.platform, message.message_id))]
        events += [d.event.new_event(trigger_event_id(message.platform, message.message_id,
                                                      d.persona.id)) for d in decisions]
        return await self._commit(stream, events, decisions, message)

    async def edit(self, edit: InboundEdit) -> bool:
        """Record an edit (context shows the latest text; edits trigger nothing).
        Returns False when it was already recorded."""
        event = MessageEdited(edit.platform, edit.message_id, edit.text, edit.edited_at)
        result = await self._history.append(
            conversation_stream(edit.platform, edit.channel_id),
            event.new_event(edit_event_id(edit.platform, edit.message_id, edit.edited_at)))
        return not result.duplicates

    async def delete(self, deletion: InboundDeletion) -> bool:
        """Record a deletion (the message leaves the context). False when already recorded."""
        event = MessageDeleted(deletion.platform, deletion.message_id)
        result = await self._history.append(
            conversation_stream(deletion.platform, deletion.channel_id),
            event.new_event(delete_event_id(deletion.platform, deletion.message_id)))
        return not result.duplicates

    async def reset_conversation(self, platform: str, channel_id: str, by_user: str,
                                 reset_id: str) -> bool:
        """Start the conversation afresh: earlier messages leave every persona's context."""
        event = ConversationReset(platform, channel_id, by_user)
        result = await self._history.append(conversation_stream(platform, channel_id),
                                          event.new_event(reset_event_id(platform, channel_id,
                                                                         reset_id)))
        return not result.duplicates

    async def quota_status(self, persona_id: str, message: InboundMessage) -> QuotaStatus | None:
        """What ``message``'s author has left of the persona's quota there, and when it
        resets (None: the persona has no quota)."""
        persona = self._personas.get(persona_id)
        if persona is None or persona.limits.quota is None:
            return None
        quota = persona.limits.quota
        key = _scope_keys(message, persona)[quota.scope]
        used = await self._store.read(lambda log: read_usage(log, persona.id, quota.scope, key))
        now = datetime.fromtimestamp(self._clock(), UTC)
        return quota_status(persona.id, quota, key, used, next_fire_time(quota, now))

    def rate_tokens(self, persona_id: str, message: InboundMessage) -> float | None:
        """Messages left in the persona's rate-limit bucket for ``message``'s author
        (None: no rate limit, or a full bucket that was never used)."""
        persona = self._personas.get(persona_id)
        if persona is None or persona.limits.rate is None:
            return None
        rate = persona.limits.rate
        return self._rates.tokens(BucketKey(persona.id, rate.scope,
                                            _scope_keys(message, persona)[rate.scope]))

    # -- deciding ----------------------------------------------------------------------

    async def _decide(self, message: InboundMessage, matches: Sequence[TriggerMatch],
                      source_event_id: str) -> list[_Decision]:
        personas = [(m, self._personas.get(m.persona_id)) for m in matches]
        personas = [(m, p) for m, p in personas if p is not None]
        await self._record_versions(p for _, p in personas)
        usage = await self._quota_usage(message, [p for _, p in personas])
        decisions = []
        for match, persona in personas:
            decisions.append(self._decide_one(message, match, persona, source_event_id,
                                              usage.get(persona.id)))
        return decisions

    def _decide_one(self, message: InboundMessage, match: TriggerMatch, persona: Persona,
                    source_event_id: str, used: QuotaUsage | None) -> _Decision:
        keys = _scope_keys(message, persona)

        def reject(reason: str, detail: str = "", *, retry_after: float | None = None,
                   notice: str | None = None, window_s: float = 0.0) -> _Decision:
            send = notice is not None and match.hop == 0 and self._notices.allow(
                (message.platform, message.author.id, persona.id, reason.split(":")[0]),
                window_s)
            event = TriggerRejected(message.platform, message.message_id, persona.id, reason,
                                    message.author.id, detail, retry_after, send)
            return _Decision(persona, match, event, notice=notice if send else None)

        if match.hop > persona.triggers.max_hops:
            return reject("hop_limit", f"hop {match.hop} > max_hops {persona.triggers.max_hops}")
        if match.hop == 0:
            refusal = permission_refusal(message, persona.permissions, self._settings.admins)
            if refusal is not None:
                return reject(f"permission:{refusal}")
        bucket = None
        rate = persona.limits.rate
        if rate is not None:
            bucket = BucketKey(persona.id, rate.scope, keys[rate.scope])
            decision = self._rates.take(bucket, rate.capacity, rate.per_s)
            if not decision.allowed:
                return reject(f"rate_limited:{rate.scope}",
                              f"{rate.capacity} per {rate.per_s:g}s",
                              retry_after=round(decision.retry_after_s, 3),
                              notice=persona.delivery.rate_limited_notice, window_s=rate.per_s)
        quota = persona.limits.quota
        if quota is not None and used is not None:
            status = quota_status(persona.id, quota, keys[quota.scope], used, None)
            if status.exhausted:
                self._give_back(bucket)
                when = next_fire_time(quota, datetime.fromtimestamp(self._clock(), UTC))
                reset = when.strftime("%Y-%m-%d %H:%M %Z") if when else "never"
                return reject(f"quota:{status.exhausted}", f"resets {reset}",
                              notice=persona.delivery.quota_notice.replace("{reset}", reset),
                              window_s=QUOTA_NOTICE_WINDOW_S)
        if not self._queue.reserve():
            self._give_back(bucket)
            return reject("busy", f"{self._queue.pending} replies waiting",
                          notice=persona.delivery.busy_notice, window_s=BUSY_NOTICE_WINDOW_S)
        event = PersonaTriggered(
            message.platform, message.message_id, persona.id, persona.version, match.reason,
            message.channel_id, message.author.id, source_event_id, message.guild_id,
            message.is_dm, match.hop, persona.model.provider, keys)
        return _Decision(persona, match, event, bucket)

    async def _quota_usage(self, message: InboundMessage,
                           personas: Iterable[Persona]) -> dict[str, QuotaUsage]:
        wanted = [(p.id, p.limits.quota.scope, _scope_keys(message, p)[p.limits.quota.scope])
                  for p in personas if p.limits.quota is not None]
        if not wanted:
            return {}
        usage = await self._ledger.usage(wanted)
        return {key[0]: used for key, used in usage.items()}

    def _give_back(self, bucket: BucketKey | None) -> None:
        if bucket is not None:
            self._rates.give_back(bucket)

    async def _commit(self, stream: str, events: list[NewEvent], decisions: list[_Decision],
                      message: InboundMessage) -> IngestResult:
        accepted = [d for d in decisions if isinstance(d.event, PersonaTriggered)]
        try:
            result = await self._history.append(stream, events)
        except BaseException:
            self._undo(accepted)
            raise
        if result.duplicates:
            self._undo(accepted)
            return IngestResult(True, result.positions[0])
        target = _target(message)
        replies = []
        for decision in accepted:
            job = _Job(decision.event, stream, target)  # type: ignore[arg-type]
            replies.append(self._submit(job))
        for decision in decisions:
            if decision.notice is not None:
                self._spawn(self._notice(target, decision.persona, _notice_kind(decision),
                                         decision.notice))
        rejected = tuple((d.persona.id, d.event.reason) for d in decisions
                         if isinstance(d.event, TriggerRejected))
        return IngestResult(False, result.positions[0],
                            tuple(d.persona.id for d in accepted), rejected, tuple(replies))

    def _undo(self, accepted: list[_Decision]) -> None:
        for decision in accepted:
            self._queue.release()
            self._give_back(decision.bucket)

    def _submit(self, job: _Job) -> asyncio.Future[ReplyResult]:
        key = trigger_event_id(job.trigger.platform, job.trigger.message_id,
                               job.trigger.persona_id)
        future: asyncio.Future[ReplyResult] = asyncio.get_running_loop().create_future()
        self._waiters[key] = future
        self._queue.submit(job.stream_id, self._lanes(job.trigger),
                           lambda: self._reply(job), lambda: self._abandon(job))
        return future

    def _lanes(self, trigger: PersonaTriggered) -> tuple[tuple[str, int], ...]:
        lanes = []
        provider_limit = self._settings.provider_concurrency.get(trigger.provider)
        if provider_limit:
            lanes.append((f"provider:{trigger.provider}", provider_limit))
        persona = self._personas.get(trigger.persona_id)
        if persona is not None and persona.limits.max_concurrent:
            lanes.append((f"persona:{persona.id}", persona.limits.max_concurrent))
        return tuple(lanes)

    # -- replying ----------------------------------------------------------------------

    async def _reply(self, job: _Job) -> None:
        trigger = job.trigger
        persona = self._personas.get(trigger.persona_id)
        if persona is None:
            await self._fail(job, "persona_gone", "the persona is no longer loaded", None)
            return
        await self._record_versions([persona])
        sink = self._sinks.get(trigger.platform)
        events = await self._history.recent(job.stream_id, _turns_wanted(persona))
        if not any(e.event_id == trigger.source_event_id for e in events):
            # answering a message older than the history read (a recovered trigger)
            source = await self._store.get(trigger.source_event_id)
            events = [*events, source] if source is not None else events
        variables = self._variables(persona, events, job)
        context = build_context(
            persona, events,
            ContextTarget(trigger.source_event_id, trigger.author_id, trigger.is_dm), variables)
        request = model_request(persona, context.messages)
        on_delta = None
        streamed: list[str] = []
        if sink is not None:
            self._spawn(_quietly(sink.typing(job.target, persona.id)))

            async def on_delta(text: str) -> None:
                streamed.append(text)
                await sink.stream_delta(job.target, persona.id, text)

        try:
            outcome = await self._model.complete(request, on_delta)
        except Exception as exc:  # the gateway promises not to raise; a bug must not hang a reply
            log.exception("the model gateway raised")
            outcome = ModelOutcome(False, "", persona.model.provider, persona.model.name,
                                   error_class="internal_error",
                                   error=f"the model gateway failed: {type(exc).__name__}")
        if not outcome.ok:
            await self._fail(job, outcome.error_class or "model_error",
                             outcome.error or "the model did not answer", persona,
                             outcome=outcome, context=context, variables=variables)
            return
        replied = ModelReplied(
            trigger.platform, trigger.message_id, persona.id, persona.version, outcome.provider,
            outcome.model, outcome.text, trigger.author_id, persona.name,
            _usage(outcome), round(outcome.latency_s, 6), outcome.attempts, outcome.truncated,
            outcome.used_fallback, outcome.finish_reason, context.positions, variables,
            trigger.scope_keys, trigger.hop)
        result = await self._history.append(job.stream_id, replied.new_event(
            reply_event_id(trigger.platform, trigger.message_id, persona.id),
            causation_id=trigger_event_id(trigger.platform, trigger.message_id, persona.id)))
        if result.duplicates:
            self._settle(trigger, ModelReplied.type, outcome.text)
            return
        self._ledger.observe_reply(persona.id, trigger.scope_keys, outcome.usage.total_tokens,
                                   result.positions[0])
        await self._deliver(job, persona, replied, streamed=bool(streamed))

    async def _deliver(self, job: _Job, persona: Persona, replied: ModelReplied, *,
                       streamed: bool, recovered: bool = False) -> None:
        trigger = job.trigger
        sink = self._sinks.get(trigger.platform)
        event_id = delivered_event_id(trigger.platform, trigger.message_id, persona.id)
        delivered: ReplyDelivered | None = None
        if sink is None:
            outcome: ReplyDelivered | ReplyFailed = ReplyFailed(
                trigger.platform, trigger.message_id, persona.id,
                f"no adapter for platform {trigger.platform!r}")
        else:
            reply = OutboundReply(job.target, persona.id, persona.name, replied.text,
                                  persona.avatar_url, persona.delivery.webhook,
                                  persona.delivery.allowed_mentions, streamed, replied.truncated,
                                  recovered)
            try:
                receipt = await sink.deliver(reply)
                delivered = ReplyDelivered(trigger.platform, trigger.message_id, persona.id,
                                           receipt.message_ids, trigger.hop)
                outcome = delivered
            except DeliveryError as exc:
                outcome = ReplyFailed(trigger.platform, trigger.message_id, persona.id, str(exc))
            except Exception as exc:
                log.exception("the %s adapter failed to deliver", trigger.platform)
                outcome = ReplyFailed(trigger.platform, trigger.message_id, persona.id,
                                      f"the adapter failed: {type(exc).__name__}")
        await self._history.append(job.stream_id, outcome.new_event(event_id))
        self._settle(trigger, outcome.type, replied.text)
        if delivered is not None and delivered.delivered_ids:
            await self._chain(job, persona, replied, delivered)

    async def _chain(self, job: _Job, persona: Persona, replied: ModelReplied,
                     delivered: ReplyDelivered) -> None:
        """Persona-to-persona: other personas that allow this one may answer its reply."""
        if not any(persona.id in p.triggers.from_personas for p in self._personas.all()):
            return
        target = job.target
        message = InboundMessage(
            platform=target.platform, message_id=delivered.delivered_ids[0],
            channel_id=target.channel_id, author=Author(f"persona:{persona.id}", persona.name,
                                                        is_bot=True),
            text=replied.text, guild_id=target.guild_id, is_dm=target.is_dm)
        matches = self._triggers.evaluate(message, self._personas.all(), from_persona=persona.id,
                                          hop=replied.hop)
        if not matches:
            return
        decisions = await self._decide(message, matches, reply_event_id(
            replied.platform, replied.message_id, persona.id))
        events = [d.event.new_event(trigger_event_id(message.platform, message.message_id,
                                                     d.persona.id)) for d in decisions]
        if events:
            await self._commit(job.stream_id, events, decisions, message)

    async def _fail(self, job: _Job, error_class: str, error: str, persona: Persona | None, *,
                    outcome: ModelOutcome | None = None, context: BuiltContext | None = None,
                    variables: Mapping[str, str] | None = None) -> None:
        trigger = job.trigger
        sink = self._sinks.get(trigger.platform)
        failed = ModelFailed(
            trigger.platform, trigger.message_id, trigger.persona_id, error_class, error,
            persona.version if persona else trigger.persona_version,
            outcome.provider if outcome else trigger.provider, outcome.model if outcome else "",
            round(outcome.latency_s, 6) if outcome else 0.0, outcome.attempts if outcome else 0,
            context.positions if context else (), dict(variables or {}), sink is not None)
        result = await self._history.append(job.stream_id, failed.new_event(
            reply_event_id(trigger.platform, trigger.message_id, trigger.persona_id),
            causation_id=trigger_event_id(trigger.platform, trigger.message_id,
                                          trigger.persona_id)))
        self._settle(trigger, ModelFailed.type)
        if not result.duplicates and sink is not None:
            text = (persona.delivery.failure_notice if persona else
                    "Sorry, I can't answer right now. Please try again in a moment.")
            await self._notice(job.target, persona, "failure", text,
                               persona_id=trigger.persona_id)

    async def _abandon(self, job: _Job) -> None:
        """Shutdown cut this reply short: record it and tell the user."""
        outcome = await self._store.get(reply_event_id(
            job.trigger.platform, job.trigger.message_id, job.trigger.persona_id))
        if outcome is None:
            await self._fail(job, "shutdown", "the bot shut down before the reply was ready",
                             self._personas.get(job.trigger.persona_id))

    def _settle(self, trigger: PersonaTriggered, outcome: str, text: str = "") -> None:
        key = trigger_event_id(trigger.platform, trigger.message_id, trigger.persona_id)
        future = self._waiters.pop(key, None)
        if future is not None and not future.done():
            future.set_result(ReplyResult(trigger.persona_id, trigger.message_id, outcome, text))

    async def _notice(self, target: ReplyTarget, persona: Persona | None, kind: str, text: str,
                      *, persona_id: str | None = None) -> None:
        sink = self._sinks.get(target.platform)
        if sink is None:
            return
        pid = persona.id if persona else (persona_id or "")
        name = persona.name if persona else pid
        try:
            await sink.notice(Notice(target, pid, name, kind, text))
        except Exception:
            log.exception("the %s adapter failed to show a notice", target.platform)

    def _variables(self, persona: Persona, events: Sequence[RecordedEvent],
                   job: _Job) -> dict[str, str]:
        now = datetime.fromtimestamp(self._clock(), UTC)
        source = next((e for e in reversed(events)
                       if e.event_id == job.trigger.source_event_id), None)
        data = source.data if source is not None else {}
        speaker = data.get("author_name") or data.get("persona_name") or job.trigger.author_id
        return {
            "user": str(speaker),
            "channel": str(data.get("channel_name") or ("DM" if job.trigger.is_dm else
                                                       job.trigger.channel_id)),
            "guild": str(data.get("guild_name") or ""),
            "date": now.strftime("%Y-%m-%d"),
            "time": now.strftime("%H:%M UTC"),
        }

    # -- recovery ----------------------------------------------------------------------

    async def recover(self) -> RecoveryReport:
        """Finish what a crash left open, exactly once: recent triggers are re-run,
        recent undelivered replies delivered, older ones closed with a failure notice.
        Platforms without an adapter in this process are left for one that has it.

        The work runs in the background (``wait_idle`` waits for it): at start-up an
        adapter may not be connected yet, and its deliveries wait until it is."""
        open_replies = await self._store.read(read_open_replies)
        if not open_replies:
            return RecoveryReport()
        events = await self._store.read(lambda log: {
            p: e for p in {o.trigger_position for o in open_replies}
            | {o.reply_position for o in open_replies if o.reply_position}
            for e in log.read_all(p - 1, until=p, limit=1)})
        cutoff = self._clock() - self._settings.recovery_window_s
        rerun, redelivered, closed = [], [], []
        for item in open_replies:
            trigger = PersonaTriggered.from_data(events[item.trigger_position].data)
            if trigger.platform not in self._sinks:
                continue
            job = _Job(trigger, item.stream_id, _trigger_target(trigger))
            if item.recorded_at < cutoff:
                self._spawn(self._close_stale(job, item, events))
                closed.append(item.trigger_id)
            elif item.stage == "model":
                if not self._queue.reserve():
                    continue  # still open: the next start-up picks it up
                self._submit(job)
                rerun.append(item.trigger_id)
            else:
                replied = ModelReplied.from_data(events[item.reply_position].data)  # type: ignore[index]
                persona = self._personas.get(trigger.persona_id)
                if persona is None:
                    await self._history.append(item.stream_id, ReplyFailed(
                        trigger.platform, trigger.message_id, trigger.persona_id,
                        "the persona is no longer loaded").new_event(delivered_event_id(
                            trigger.platform, trigger.message_id, trigger.persona_id)))
                    closed.append(item.trigger_id)
                    continue
                self._spawn(self._deliver(job, persona, replied, streamed=False,
                                          recovered=True))
                redelivered.append(item.trigger_id)
        if rerun or redelivered or closed:
            log.info("recovery: %d re-run, %d re-delivered, %d closed", len(rerun),
                     len(redelivered), len(closed))
        return RecoveryReport(tuple(rerun), tuple(redelivered), tuple(closed))

    async def _close_stale(self, job: _Job, item: OpenReply,
                           events: Mapping[int, RecordedEvent]) -> None:
        trigger = job.trigger
        persona = self._personas.get(trigger.persona_id)
        if item.stage == "model":
            await self._fail(job, "abandoned",
                             "the bot stopped before replying and the message is too old "
                             "to answer now", persona)
            return
        failed = ReplyFailed(trigger.platform, trigger.message_id, trigger.persona_id,
                             "the bot stopped before delivering and the reply is too old now")
        result = await self._history.append(item.stream_id, failed.new_event(delivered_event_id(
            trigger.platform, trigger.message_id, trigger.persona_id)))
        if not result.duplicates:
            text = persona.delivery.failure_notice if persona else "Sorry, I couldn't answer."
            await self._notice(job.target, persona, "failure", text,
                               persona_id=trigger.persona_id)

    # -- helpers -----------------------------------------------------------------------

    async def _record_versions(self, personas: Iterable[Persona]) -> None:
        fresh = [p for p in personas if (p.id, p.version) not in self._recorded_versions]
        if fresh:
            await record_versions(self._store, fresh)
            self._recorded_versions.update((p.id, p.version) for p in fresh)

    def _spawn(self, coroutine: object) -> None:
        task = asyncio.ensure_future(coroutine)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _quietly(coroutine: object) -> None:
    try:
        await coroutine  # type: ignore[misc]
    except Exception:
        log.debug("an adapter hint failed", exc_info=True)


def _received(message: InboundMessage, from_persona: str | None) -> MessageReceived:
    author = message.author
    return MessageReceived(
        message.platform, message.message_id, message.channel_id, author.id,
        author.display_name, message.text, author.is_bot, tuple(sorted(author.roles)),
        message.guild_id, message.parent_channel_id, message.is_dm, message.reply_to,
        tuple(sorted(message.mentions)), message.invoked_persona, message.sent_at,
        message.channel_name, message.guild_name, from_persona)


def _turns_wanted(persona: Persona) -> int:
    """Turns of history a prompt may use: the message budget, the lorebook's scan depth,
    and one more to know the budget was the limit."""
    book = persona.lorebook
    depths = [book.scan_depth, *(e.scan_depth or 0 for e in book.entries)]
    return max(persona.context.max_messages, *depths) + 1


def _scope_keys(message: InboundMessage, persona: Persona) -> dict[str, str]:
    return {
        "user": message.author.id,
        "channel": message.channel_id,
        "guild": message.guild_id or f"dm:{message.author.id}",
        "persona": persona.id,
        "provider": persona.model.provider,
    }


def _target(message: InboundMessage) -> ReplyTarget:
    return ReplyTarget(message.platform, message.channel_id, message.message_id,
                       message.author.id, message.guild_id, message.is_dm)


def _trigger_target(trigger: PersonaTriggered) -> ReplyTarget:
    return ReplyTarget(trigger.platform, trigger.channel_id, trigger.message_id,
                       trigger.author_id, trigger.guild_id, trigger.is_dm)


def _notice_kind(decision: _Decision) -> str:
    reason = getattr(decision.event, "reason", "")
    return reason.split(":")[0]


def _usage(outcome: ModelOutcome) -> dict[str, object]:
    usage = outcome.usage
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens, "estimated": usage.estimated}
