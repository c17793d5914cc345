"""The dispatcher: intake, the reply queue and the life cycle around its three parts.

Flow (see ``docs/dispatcher.md``): an inbound message and every trigger decision about
it (:mod:`~core.dispatcher.admission`) are appended in ONE atomic append to the
conversation's stream, so a second delivery of the message is a no-op all the way
down. Accepted triggers go to the :class:`~core.dispatcher.workqueue.WorkQueue`, whose
jobs run the :mod:`~core.dispatcher.pipeline`; at start-up
:mod:`~core.dispatcher.recovery` finishes what a crash left open. The dispatcher knows
no platform: adapters speak :mod:`~core.dispatcher.messages` and implement
:class:`~core.dispatcher.sink.ReplySink`. It is built by :func:`core.app.build_dispatcher`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from eventstore import EventStore, NewEvent, Shred

from ..config import CONTEXT_CACHE_EVENTS, AdminSettings, Config, PrivacySettings
from ..context.blobs import AttachmentContent
from ..context.history import ConversationHistory
from ..events import (
    ConversationReset,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    ModelReplied,
    PersonaTriggered,
    Refusal,
    ReplyDelivered,
    TriggerRejected,
)
from ..events.conversation import RESET_CHANNEL
from ..events.ids import (
    PRIVACY_STREAM,
    blob_event_id,
    blob_stream,
    conversation_stream,
    delete_event_id,
    edit_event_id,
    message_event_id,
    message_scope,
    reply_event_id,
    reset_event_id,
    text_scope,
    text_scopes,
    trigger_event_id,
)
from ..gateway.model import ModelClient
from ..limits.claims import LimitExceeded, bucket_tokens
from ..limits.quotas import QuotaLedger, QuotaStatus
from ..limits.schedule import QuotaResetScheduler
from ..media.intake import IncomingAttachment
from ..moderation.moderator import Moderator
from ..personas.model import Persona
from ..personas.versions import VersionRecorder
from ..privacy import ErasureLedger, LedgerEntry, RetentionScheduler, forget_event
from ..tools.toolbox import Toolbox
from .admission import PERSONA_AUTHOR, Admission, Decision, PersonaSource, scope_keys
from .background import Background
from .deliveries import DeliveryLog
from .greetings import Greeter, GreetingOutcome, GreetingRequest
from .messages import (
    Author,
    InboundDeletion,
    InboundEdit,
    InboundMessage,
    IngestResult,
    Owns,
    ReplyResult,
    ReplyTarget,
)
from .moderation import ModerationStep
from .notices import Notifier
from .pipeline import ReplyJob, ReplyPipeline
from .projection import read_persona_messages
from .recovery import Recovery, RecoveryReport
from .sink import ReplySink
from .workqueue import WorkQueue


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatcherSettings:
    """The framework-wide bounds (config.yaml ``limits``, ``admins`` and providers)."""

    max_concurrent: int = 64
    queue_size: int = 10_000
    recovery_window_s: float = 600.0
    shutdown_deadline_s: float = 20.0
    provider_concurrency: Mapping[str, int] = field(default_factory=dict)
    admins: AdminSettings = field(default_factory=AdminSettings)
    history_cache_events: int = CONTEXT_CACHE_EVENTS
    """Recent conversation events kept in memory for prompts (0: read the log each time)."""
    dm_default_persona: str | None = None
    """Who answers a DM when nobody was talked with there yet (config ``dms``)."""
    allow_nsfw_dms: bool = False
    """Whether ``nsfw`` personas may answer in DMs (config ``dms.allow_nsfw``)."""
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    """Grace of deleted messages, edit history, retention, the erasure ledger."""

    @classmethod
    def from_config(cls, config: Config) -> DispatcherSettings:
        """The settings config.yaml describes."""
        return cls(
            max_concurrent=config.limits.max_concurrent_replies,
            queue_size=config.limits.queue_size,
            history_cache_events=config.limits.context_cache_events,
            recovery_window_s=config.limits.recovery_window_s,
            shutdown_deadline_s=config.limits.shutdown_deadline_s,
            provider_concurrency={n: p.max_concurrency for n, p in config.providers.items()},
            admins=config.admins,
            dm_default_persona=config.dm_default_persona,
            allow_nsfw_dms=config.dm_allow_nsfw,
            privacy=config.privacy,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatcherParts:
    """What the dispatcher coordinates, built by :func:`core.app.build_dispatcher`."""

    store: EventStore
    personas: PersonaSource
    model: ModelClient
    sinks: Mapping[str, ReplySink]
    queue: WorkQueue
    history: ConversationHistory
    ledger: QuotaLedger
    versions: VersionRecorder
    admission: Admission
    resets: QuotaResetScheduler
    clock: Callable[[], float]
    attachments: AttachmentContent
    toolbox: Toolbox
    moderator: Moderator | None = None


class Dispatcher:
    """Routes inbound messages to personas and their replies back to the adapters.

    It owns what ties its parts together: the futures callers wait on, the background
    work, and the pipeline and recovery, which report back to it (``settle``, ``chain``).
    """

    def __init__(self, parts: DispatcherParts, settings: DispatcherSettings) -> None:
        self._store = parts.store
        self._personas = parts.personas
        self._queue = parts.queue
        self._history = parts.history
        self._versions = parts.versions
        self._admission = parts.admission
        self._resets = parts.resets
        self._settings = settings
        self._toolbox = parts.toolbox
        self._ledger = parts.ledger
        self._clock = parts.clock
        self._ledger_follower: asyncio.Task[None] | None = None
        self._background = Background()
        self._notifier = Notifier(parts.sinks)
        self._waiters: dict[str, asyncio.Future[ReplyResult]] = {}
        self._running: set[str] = set()
        """Triggers whose reply job this process has queued or runs (recovery leaves them:
        a shard taken back after an outage still has its own replies in flight)."""
        self._greeter = Greeter(store=parts.store, history=parts.history,
                                personas=parts.personas, sinks=parts.sinks,
                                background=self._background, clock=parts.clock,
                                window_s=settings.recovery_window_s)
        self._pipeline = ReplyPipeline(
            store=parts.store, personas=parts.personas, model=parts.model, sinks=parts.sinks,
            history=parts.history, ledger=parts.ledger, versions=parts.versions,
            notifier=self._notifier, background=self._background, clock=parts.clock,
            settle=self.settle, chain=self.chain, attachments=parts.attachments,
            toolbox=parts.toolbox, greeter=self._greeter,
            moderation=ModerationStep(moderator=parts.moderator, store=parts.store,
                                      history=parts.history, sinks=parts.sinks)
            if parts.moderator is not None else None)
        self._moderator = parts.moderator
        self.deliveries = DeliveryLog(parts.store, parts.history)
        """Where platforms record the steps of a delivery (:mod:`~core.dispatcher.deliveries`)."""
        self._retention = RetentionScheduler(parts.store, settings.privacy, parts.clock,
                                             on_shred=self.forget_cached_content)
        self._attachments = parts.attachments
        self._clock = parts.clock
        ledger = settings.privacy.ledger
        self._erasures = ErasureLedger(ledger) if ledger is not None else None
        self._recovery = Recovery(
            store=parts.store, personas=parts.personas, sinks=parts.sinks,
            pipeline=self._pipeline, notifier=self._notifier, background=self._background,
            window_s=settings.recovery_window_s, clock=parts.clock)

    # -- life cycle --------------------------------------------------------------------

    async def start(self, *, schedule_resets: bool = True,
                    owns: Owns | None = None) -> RecoveryReport:
        """Record persona versions, catch up missed quota resets, start the reset
        schedule, and recover replies and greetings a crash left unfinished (with
        ``owns``: only those asked for where it accepts)."""
        await self._versions.record(self._personas.all())
        if self._store.shared and self._ledger_follower is None:
            # other processes' replies change quotas this process caches
            self._ledger_follower = asyncio.ensure_future(self._ledger.follow())
        await self._resets.catch_up(self._personas.all())
        if self._retention.needed:
            await self._retention.run()
        if schedule_resets:
            self._resets.start(self._personas.all())
            self._retention.start()
        return await self.recover(owns)

    async def personas_changed(self) -> None:
        """Call after a persona reload: new versions are recorded, schedules replaced."""
        await self._versions.record(self._personas.all())
        await self._resets.catch_up(self._personas.all())
        self._resets.reschedule(self._personas.all())

    async def recover(self, owns: Owns | None = None) -> RecoveryReport:
        """Finish what a crash left open, exactly once (see :mod:`~core.dispatcher.recovery`);
        ``wait_idle`` waits for the work it starts. ``owns`` limits it to the replies and
        greetings asked for where it accepts: a process running some Discord shards
        recovers a shard's conversations when it takes the shard, at start-up or from a
        process that died."""
        await self._greeter.recover(owns)

        def open_here(trigger: PersonaTriggered) -> bool:
            return (owns is None or owns(trigger)) and trigger_event_id(
                trigger.platform, trigger.message_id, trigger.persona_id) not in self._running
        return await self._recovery.recover(self._rerun, open_here)

    async def wait_idle(self) -> None:
        """Until every accepted reply has finished."""
        await self._queue.wait_idle()
        await self._background.wait()

    async def shutdown(self, deadline_s: float | None = None) -> int:
        """Stop intake, let replies finish up to the deadline, record those that did not
        (ModelFailed ``shutdown``). Returns how many were cut short."""
        self._resets.shutdown()
        self._retention.shutdown()
        deadline = self._settings.shutdown_deadline_s if deadline_s is None else deadline_s
        started = time.monotonic()
        cut = await self._queue.finish(deadline)
        cut += await self._background.stop(deadline - (time.monotonic() - started))
        await self._toolbox.aclose()
        if self._moderator is not None:
            await self._moderator.aclose()
        if self._ledger_follower is not None:
            self._ledger_follower.cancel()
            await asyncio.gather(self._ledger_follower, return_exceptions=True)
            self._ledger_follower = None
        return cut

    # -- intake ------------------------------------------------------------------------

    async def ingest(self, message: InboundMessage) -> IngestResult:
        """Record ``message`` and every persona's trigger decision about it, atomically,
        then queue the accepted replies. A message already recorded is a no-op."""
        stream = conversation_stream(message.platform, message.channel_id)
        event_id = message_event_id(message.platform, message.message_id)
        lookups = [m for m in (message.reply_to, message.message_id if message.author.is_bot
                               else None) if m]
        ours = await self._store.read(
            lambda log: read_persona_messages(log, message.platform, lookups)) if lookups else {}
        echo = ours.get(message.message_id) if message.author.is_bot else None
        await self._store_content(message.attachments, message.author.id, message.platform,
                                  message.message_id)
        decisions: list[Decision] = []
        if echo is None and self._queue.accepting:
            replied = ours.get(message.reply_to or "")
            matches = await self._admission.matches(
                message, replied_persona=replied.persona_id if replied else None)
            message = await self._admission.with_roles(message, matches)
            decisions = await self._admission.decide(message, matches, event_id)
        quotes = None
        if echo is not None:  # a copy of our reply: its content is the answered person's
            answered = await self._store.get(message_event_id(message.platform,
                                                              echo.answered_message_id))
            quotes = str(answered.data.get("author_id", "")) if answered is not None else None
        received = _received(message, echo.persona_id if echo else None, quotes)
        return await self._commit(stream, received.new_event(event_id), decisions, message)

    async def edit(self, edit: InboundEdit) -> bool:
        """Record an edit (context shows the latest text; edits trigger nothing).
        Returns False when it was already recorded."""
        original = await self._store.get(message_event_id(edit.platform, edit.message_id))
        author = str(original.data.get("author_id", "")) if original is not None else ""
        files = None
        if edit.attachments is not None:
            await self._store_content(edit.attachments, author, edit.platform, edit.message_id)
            files = tuple(a.attachment.to_data() for a in edit.attachments)
        event = MessageEdited(platform=edit.platform, message_id=edit.message_id, text=edit.text,
                              edited_at=edit.edited_at, attachments=files, author_id=author)
        shreds: tuple[Shred, ...] = ()
        if not self._settings.privacy.keep_edit_history:
            # only the latest text is kept: the earlier revisions' keys go with this edit
            shreds = (Shred(scope_prefix=text_scopes(edit.platform, edit.message_id),
                            keep_scope=text_scope(edit.platform, edit.message_id,
                                                  edit.edited_at)),)
        result = await self._history.append(
            conversation_stream(edit.platform, edit.channel_id),
            event.new_event(edit_event_id(edit.platform, edit.message_id, edit.edited_at),
                            shreds=shreds))
        return not result.duplicates

    async def delete(self, deletion: InboundDeletion) -> bool:
        """Record a deletion (the message leaves the context). False when already recorded."""
        event = MessageDeleted(platform=deletion.platform, message_id=deletion.message_id)
        # its content (every revision, its files) is shredded with the deletion, or once
        # the grace period is over
        shred = Shred(scope_prefix=message_scope(deletion.platform, deletion.message_id),
                      delay_s=self._settings.privacy.deleted_grace_s)
        result = await self._history.append(
            conversation_stream(deletion.platform, deletion.channel_id),
            event.new_event(delete_event_id(deletion.platform, deletion.message_id),
                            shreds=(shred,)))
        return not result.duplicates

    async def forget(self, subject: str, *, requested_by: str, requested_id: str,
                     via: str = "command") -> bool:
        """Erase ``subject``'s personal content: their keys are destroyed as the erasure
        is recorded (SubjectForgotten), the erasure goes in the ledger kept apart from the
        log, and this process's caches of opened content are dropped. False when this
        request was recorded already."""
        now = self._clock()
        event = forget_event(subject, requested_by=requested_by, requested_id=requested_id,
                             at=now, via=via)
        result = await self._store.append(PRIVACY_STREAM, event)
        self.forget_cached_content()
        if not result.duplicates and self._erasures is not None:
            entry = LedgerEntry(subject=subject, requested_by=requested_by, at=now,
                                event_id=event.event_id)
            await asyncio.to_thread(self._erasures.record, entry)
        return not result.duplicates

    def forget_cached_content(self) -> None:
        """Drop the caches of opened content (conversations, files): after keys were
        destroyed, the next prompt reads what the log still holds."""
        self._history.clear()
        self._attachments.clear()

    async def reset_conversation(self, platform: str, channel_id: str, by_user: str,
                                 reset_id: str, *, scope: str = RESET_CHANNEL) -> bool:
        """Start the conversation afresh: earlier messages leave every persona's context
        (``scope`` ``user``: only ``by_user``'s and the replies to them)."""
        event = ConversationReset(platform=platform, channel_id=channel_id, by_user=by_user,
                                  scope=scope)
        result = await self._history.append(conversation_stream(platform, channel_id),
                                            event.new_event(reset_event_id(platform, channel_id,
                                                                           reset_id)))
        return not result.duplicates

    async def allowed(self, message: InboundMessage, personas: Sequence[Persona]
                      ) -> list[tuple[Persona, Refusal | None]]:
        """Each of ``personas`` with the permission rule that refuses ``message``'s author
        there (None: they may talk to it); roles are looked up when needed."""
        return await self._admission.allowed(message, personas)

    async def look_up_roles(self, message: InboundMessage,
                            wanted: frozenset[str]) -> InboundMessage:
        """``message`` with its author's roles looked up, if the platform did not send
        them, where ``wanted`` roles count (still unknown if the lookup fails)."""
        return await self._admission.look_up_roles(message, wanted)
    async def greet(self, request: GreetingRequest, persona_id: str, *, choice: int | None = None,
                    only_if_new: bool = False) -> GreetingOutcome:
        """Post ``persona_id``'s greeting ``choice`` (None: one at random) in the
        conversation ``request`` names, in order with the replies there; with
        ``only_if_new``, only if the persona has not spoken there since its last reset."""
        persona = self._personas.get(persona_id)
        if persona is None:
            return GreetingOutcome(posted=False, reason=f"no persona {persona_id!r} is loaded.")
        if not self._queue.reserve():
            return GreetingOutcome(posted=False, reason=persona.delivery.busy_notice)
        done: asyncio.Future[GreetingOutcome] = asyncio.get_running_loop().create_future()

        async def job() -> None:
            try:
                done.set_result(await self._greeter.greet(request, persona, choice=choice,
                                                          only_if_new=only_if_new))
            except BaseException as exc:
                done.set_exception(exc)
                raise

        async def cut_short() -> None:
            if not done.done():
                done.set_result(GreetingOutcome(posted=False, reason="the bot is shutting down"))

        self._queue.submit(request.stream_id, (), job, cut_short)
        return await done

    async def quota_status(self, persona_id: str, message: InboundMessage) -> QuotaStatus | None:
        """What ``message``'s author has left of the persona's quota there, and when it
        resets (None: the persona has no quota)."""
        return await self._admission.quota_status(persona_id, message)

    async def rate_tokens(self, persona_id: str, message: InboundMessage) -> float | None:
        """Messages left in the persona's rate-limit bucket for ``message``'s author, as
        the log holds it (every process's messages count; None: no rate limit, or a
        full bucket that was never used)."""
        persona = self._personas.get(persona_id)
        if persona is None or persona.limits.rate is None:
            return None
        rate = persona.limits.rate
        key, now = scope_keys(message, persona)[rate.scope], self._clock()
        return await self._store.read(lambda log: bucket_tokens(
            log, persona.id, rate.scope, key, capacity=rate.capacity, per_s=rate.per_s,
            now=now))

    async def _store_content(self, attachments: tuple[IncomingAttachment, ...], owner: str,
                             platform: str, message_id: str) -> None:
        """Store each file's content once, before the message that names it (an append
        of the same bytes again is a no-op: the id is their hash), sealed as ``owner``'s
        and the message's."""
        for item in attachments:
            if item.content is not None:
                digest = item.content.sha256
                content = dataclasses.replace(item.content, owner_id=owner, platform=platform,
                                              message_id=message_id)
                await self._store.append(blob_stream(digest),
                                         content.new_event(blob_event_id(digest)))

    # -- committing and queueing -------------------------------------------------------

    async def _commit(self, stream: str, received: NewEvent | None, decisions: list[Decision],
                      message: InboundMessage) -> IngestResult:
        """Append ``received`` (the message, if it is to be recorded) and the decisions in
        one append, then start the replies of the triggers this append wrote.

        The trigger's event id is the claim: when several processes ingest the same message
        (a shard handover, a RESUME replay), each decision is written by exactly one of
        them, and only that one runs its reply; a decision already in the log is undone
        here. A trigger the log refuses (:class:`~core.limits.claims.LimitExceeded`: another
        process used the limit up) is made a rejection and the append made again."""
        while True:
            events = [received] if received is not None else []
            events += [d.event.new_event(trigger_event_id(message.platform, message.message_id,
                                                          d.persona.id)) for d in decisions]
            try:
                # the message is the claim: if it was recorded before (a RESUME replay, a
                # catch-up, another process's shard), none of these decisions is written,
                # even where a turn policy would now choose otherwise
                result = await self._history.append(stream, events, claim=received is not None)
            except LimitExceeded as refused:
                overruled = self._admission.overrule(decisions, refused, message)
                if overruled is None:
                    self._admission.undo(decisions)
                    raise
                decisions = overruled
                continue
            except BaseException:
                self._admission.undo(decisions)
                raise
            break
        wrote = result.wrote()
        claimed = wrote[len(events) - len(decisions):]
        self._admission.undo(d for d, new in zip(decisions, claimed, strict=True) if not new)
        decisions = [d for d, new in zip(decisions, claimed, strict=True) if new]
        if received is not None and not wrote[0]:
            return IngestResult(duplicate=True, position=result.positions[0])  # nothing written
        replies = self._start(stream, message, decisions)
        target = _target(message)
        for decision in decisions:
            if decision.notice is not None and isinstance(decision.event, TriggerRejected):
                self._background.spawn(self._notifier.send(
                    target, decision.persona, decision.event.reason.kind.value, decision.notice))
        accepted = tuple(d.persona.id for d in decisions if isinstance(d.event, PersonaTriggered))
        rejected = tuple((d.persona.id, d.event.reason) for d in decisions
                         if isinstance(d.event, TriggerRejected))
        return IngestResult(duplicate=False, position=result.positions[0], triggered=accepted,
                            rejected=rejected, replies=tuple(replies))

    def _start(self, stream: str, message: InboundMessage,
               decisions: Sequence[Decision]) -> list[asyncio.Future[ReplyResult]]:
        target = _target(message)
        return [self._submit(ReplyJob(trigger=d.event, stream_id=stream, target=target))
                for d in decisions if isinstance(d.event, PersonaTriggered)]

    async def chain(self, job: ReplyJob, persona: Persona, replied: ModelReplied,
                    delivered: ReplyDelivered) -> None:
        """Persona-to-persona: other personas that allow this one may answer its reply."""
        if not any(persona.id in p.triggers.from_personas for p in self._personas.all()):
            return
        target = job.target
        message = InboundMessage(
            platform=target.platform, message_id=delivered.delivered_ids[0],
            channel_id=target.channel_id,
            author=Author(id=f"{PERSONA_AUTHOR}{persona.id}", display_name=persona.name,
                          is_bot=True),
            text=replied.text, guild_id=target.guild_id, is_dm=target.is_dm,
            channel_nsfw=job.trigger.channel_nsfw)
        matches = await self._admission.matches(message, from_persona=persona.id,
                                                hop=replied.hop)
        if not matches:
            return
        decisions = await self._admission.decide(message, matches, reply_event_id(
            replied.platform, replied.message_id, persona.id),
            root_author=job.trigger.root_author_id or job.trigger.author_id)
        if decisions:
            await self._commit(job.stream_id, None, decisions, message)

    def settle(self, trigger: PersonaTriggered, outcome: str, text: str) -> None:
        """A reply ended as ``outcome``: tell whoever waits for it (the console)."""
        key = trigger_event_id(trigger.platform, trigger.message_id, trigger.persona_id)
        future = self._waiters.pop(key, None)
        if future is not None and not future.done():
            future.set_result(ReplyResult(persona_id=trigger.persona_id,
                                          message_id=trigger.message_id, outcome=outcome,
                                          text=text))

    def _submit(self, job: ReplyJob) -> asyncio.Future[ReplyResult]:
        key = trigger_event_id(job.trigger.platform, job.trigger.message_id,
                               job.trigger.persona_id)
        future: asyncio.Future[ReplyResult] = asyncio.get_running_loop().create_future()
        self._waiters[key] = future
        self._running.add(key)

        async def run() -> None:
            try:
                await self._pipeline.run(job)
            finally:
                self._running.discard(key)

        async def abandon() -> None:
            try:
                await self._pipeline.abandon(job)
            finally:
                self._running.discard(key)

        self._queue.submit(job.stream_id, self._lanes(job.trigger), run, abandon)
        return future

    def _rerun(self, job: ReplyJob) -> bool:
        if not self._queue.reserve():
            return False  # still open: the next start-up picks it up
        self._submit(job)
        return True

    def _lanes(self, trigger: PersonaTriggered) -> tuple[tuple[str, int], ...]:
        lanes = []
        provider_limit = self._settings.provider_concurrency.get(trigger.provider)
        if provider_limit:
            lanes.append((f"provider:{trigger.provider}", provider_limit))
        persona = self._personas.get(trigger.persona_id)
        if persona is not None and persona.limits.max_concurrent:
            lanes.append((f"persona:{persona.id}", persona.limits.max_concurrent))
        return tuple(lanes)


def _received(message: InboundMessage, from_persona: str | None,
              quotes: str | None = None) -> MessageReceived:
    author = message.author
    return MessageReceived(
        platform=message.platform, message_id=message.message_id,
        channel_id=message.channel_id, author_id=author.id, author_name=author.display_name,
        text=message.text, author_is_bot=author.is_bot, author_roles=tuple(sorted(author.roles)),
        guild_id=message.guild_id, parent_channel_id=message.parent_channel_id,
        is_dm=message.is_dm, reply_to=message.reply_to, mentions=tuple(sorted(message.mentions)),
        invoked_persona=message.invoked_persona, sent_at=message.sent_at,
        channel_name=message.channel_name, guild_name=message.guild_name,
        from_persona=from_persona, quotes=quotes,
        attachments=tuple(a.attachment.to_data() for a in message.attachments),
        channel_nsfw=message.channel_nsfw)


def _target(message: InboundMessage) -> ReplyTarget:
    return ReplyTarget(platform=message.platform, channel_id=message.channel_id,
                       message_id=message.message_id, author_id=message.author.id,
                       guild_id=message.guild_id, is_dm=message.is_dm)
