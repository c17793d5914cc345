"""The reply pipeline: from an accepted trigger to a delivered reply, every step an event.

A job builds the prompt from the conversation's events (and the stored content of
their attachments), calls the model (streaming pieces to the adapter as they
arrive; for a persona with tools, the bounded tool loop of :mod:`core.tools.loop`,
each round recorded as ToolCalled and ToolResult events), records ModelReplied or
ModelFailed, hands the reply to the platform's sink (with the model's reasoning as
the persona's ``reasoning`` setting says), records ReplyDelivered or ReplyFailed, and
then lets the dispatcher offer the delivered reply to personas that answer other
personas (chaining). A failure at any step is recorded and the user told, once.

With moderation on (:mod:`~core.dispatcher.moderation`), the person's message is
checked before the prompt is built, and the reply after ModelReplied is recorded and
before it is handed to the sink (so a checked reply is not streamed): a refusal on
the way in is a ModelFailed ``moderation`` (no model call), on the way out a
ReplyFailed; either way the person gets the short moderation notice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from eventstore import EventStore

from ..context.blobs import AttachmentContent
from ..context.builder import BuiltContext, build_context
from ..context.history import ConversationHistory, context_events
from ..context.rebuild import target_of
from ..events import (
    MessageEdited,
    MessageReceived,
    ModelFailed,
    ModelReplied,
    ModerationDirection,
    PersonaTriggered,
    ReplyDelivered,
    ReplyFailed,
    Typed,
)
from ..events.ids import delivered_event_id, reply_event_id, trigger_event_id
from ..events.moderation import MODERATION_ERROR_CLASS
from ..gateway.model import ModelClient, ModelOutcome
from ..limits.quotas import QuotaLedger
from ..personas.model import Persona
from ..personas.versions import VersionRecorder
from ..tools.loop import StepCall, run_tool_loop
from ..tools.toolbox import Toolbox, ToolOutcome
from .admission import PersonaSource
from .background import Background
from .greetings import Greeter
from .messages import OutboundFile, OutboundReply, ReplyTarget
from .moderation import Checked, ModerationStep
from .notices import FALLBACK_FAILURE_NOTICE, Notifier
from .recording import record
from .requests import model_request
from .sink import DeliveryError, ReplySink
from .toolsteps import StepRecorder, read_steps
from .variables import conversation_variables

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyJob:
    """One accepted trigger to answer, in its conversation's stream."""

    trigger: PersonaTriggered
    stream_id: str
    target: ReplyTarget

    @classmethod
    def of(cls, trigger: PersonaTriggered, stream_id: str) -> ReplyJob:
        """The job of a recorded trigger (recovery: the message itself is not at hand)."""
        return cls(trigger=trigger, stream_id=stream_id, target=ReplyTarget(
            platform=trigger.platform, channel_id=trigger.channel_id,
            message_id=trigger.message_id, author_id=trigger.author_id,
            guild_id=trigger.guild_id, is_dm=trigger.is_dm))


Settle = Callable[[PersonaTriggered, str, str], None]
"""Told how a trigger's reply ended: (trigger, outcome event type, reply text)."""
Chain = Callable[[ReplyJob, Persona, ModelReplied, ReplyDelivered], Awaitable[None]]
"""Offers a delivered reply to the personas that answer other personas."""


class ReplyPipeline:
    """Runs reply jobs (see the module docstring)."""

    def __init__(self, *, store: EventStore, personas: PersonaSource, model: ModelClient,
                 sinks: Mapping[str, ReplySink], history: ConversationHistory,
                 ledger: QuotaLedger, versions: VersionRecorder, notifier: Notifier,
                 background: Background, clock: Callable[[], float], settle: Settle,
                 chain: Chain, attachments: AttachmentContent, toolbox: Toolbox,
                 greeter: Greeter, moderation: ModerationStep | None = None) -> None:
        self._store = store
        self._personas = personas
        self._model = model
        self._sinks = sinks
        self._history = history
        self._ledger = ledger
        self._versions = versions
        self._notifier = notifier
        self._background = background
        self._clock = clock
        self._settle = settle
        self._chain = chain
        self._attachments = attachments
        self._toolbox = toolbox
        self._greeter = greeter
        self._moderation = moderation

    async def run(self, job: ReplyJob) -> None:
        """Answer ``job``'s trigger: prompt, model call, record, deliver."""
        trigger = job.trigger
        persona = self._personas.get(trigger.persona_id)
        if persona is None:
            await self.fail(job, "persona_gone", "the persona is no longer loaded", None)
            return
        await self._versions.record([persona])
        sink = self._sinks.get(trigger.platform)
        await self._greeter.before_reply(trigger, job.stream_id, persona)
        events = await self._history.recent(job.stream_id, turns_wanted(persona))
        if not any(e.event_id == trigger.source_event_id for e in events):
            # answering a message older than the history read (a recovered trigger)
            source = await self._store.get(trigger.source_event_id)
            events = [*events, *context_events([source])] if source is not None else events
        inbound = None
        if self._moderation is not None and trigger.hop == 0:
            inbound = await self._moderation.check(
                trigger, job.stream_id, persona, ModerationDirection.IN,
                _latest_text(events, trigger.source_event_id))
            if inbound is not None:
                await self._moderation.alert(job.target, persona, inbound, trigger.message_id)
                if inbound.refuses:
                    await self.fail(job, MODERATION_ERROR_CLASS, _refused(inbound), persona,
                                    notice=("moderation", self._moderation.inbound_notice))
                    return
        checked_out = self._moderation is not None and self._moderation.active(
            persona, ModerationDirection.OUT)
        variables = self._variables(persona, events, job)
        stored = await self._attachments.for_events(events)
        context = build_context(persona, [*events, *stored], target_of(trigger), variables)
        request = model_request(persona, context.messages,
                                tools=self._toolbox.definitions(persona))
        on_delta = None
        streamed: list[str] = []
        if sink is not None:
            self._background.hint(sink.typing(job.target, persona.id))
        if sink is not None and not checked_out:  # a reply to check is shown once checked

            async def on_delta(text: str) -> None:
                streamed.append(text)
                await sink.stream_delta(job.target, persona.id, text)

        model_calls, tools_called = 1, 0
        try:
            if request.tools:
                loop = await run_tool_loop(
                    self._model, request, execute=self._executor(persona),
                    max_steps=persona.tools.max_steps,
                    call_timeout_s=persona.tools.call_timeout_s,
                    hooks=StepRecorder(self._history, job.stream_id, trigger),
                    resume=await self._resume(job), on_delta=on_delta)
                outcome, model_calls, tools_called = (loop.outcome, loop.model_calls,
                                                      len(loop.steps))
            else:
                outcome = await self._model.complete(request, on_delta)
        except Exception as exc:  # the gateway promises not to raise; a bug must not hang a reply
            log.exception("the model gateway raised")
            outcome = ModelOutcome(
                ok=False,
                text="",
                provider=persona.model.provider,
                model=persona.model.name,
                error_class="internal_error",
                error=f"the model gateway failed: {type(exc).__name__}",
            )
        if not outcome.ok:
            await self.fail(job, outcome.error_class or "model_error",
                            outcome.error or "the model did not answer", persona,
                            outcome=outcome, context=context, variables=variables)
            return
        replied = ModelReplied(
            platform=trigger.platform, message_id=trigger.message_id, persona_id=persona.id,
            persona_version=persona.version, provider=outcome.provider, model=outcome.model,
            text=outcome.text, author_id=trigger.author_id, persona_name=persona.name,
            usage=_usage(outcome), latency_s=round(outcome.latency_s, 6),
            attempts=outcome.attempts, truncated=outcome.truncated,
            used_fallback=outcome.used_fallback, finish_reason=outcome.finish_reason,
            context_positions=context.positions, variables=variables,
            scope_keys=trigger.scope_keys, hop=trigger.hop, reasoning=outcome.reasoning,
            model_calls=model_calls, tools_called=tools_called, lore=context.lore_inserted)
        result = await record(self._history, job.stream_id, replied.new_event(
            reply_event_id(trigger.platform, trigger.message_id, persona.id),
            causation_id=trigger_event_id(trigger.platform, trigger.message_id, persona.id)))
        if result.duplicates:
            self._settle(trigger, ModelReplied.type, outcome.text)
            return
        self._ledger.observe_reply(persona.id, trigger.scope_keys, outcome.usage.total_tokens,
                                   result.positions[0])
        await self.deliver(job, persona, replied, streamed=bool(streamed), inbound=inbound)

    async def deliver(self, job: ReplyJob, persona: Persona, replied: ModelReplied, *,
                      streamed: bool, recovered: bool = False,
                      inbound: Checked | None = None) -> None:
        """Hand ``replied`` to the platform (once moderation let it through) and record
        what came of it. ``inbound``: the check of the message it answers (None: read
        back from the log when moderation is on)."""
        trigger = job.trigger
        sink = self._sinks.get(trigger.platform)
        event_id = delivered_event_id(trigger.platform, trigger.message_id, persona.id)
        delivered: ReplyDelivered | None = None
        outcome: ReplyDelivered | ReplyFailed
        warning, outbound = "", None
        if self._moderation is not None:
            if inbound is None:
                inbound = await self._moderation.recorded(trigger, persona,
                                                          ModerationDirection.IN)
            outbound = await self._moderation.check(trigger, job.stream_id, persona,
                                                    ModerationDirection.OUT, replied.text)
            if outbound is not None and outbound.refuses:
                await self._moderation.alert(job.target, persona, outbound, trigger.message_id)
                await self._refuse_delivery(job, persona, outbound)
                return
            warning = self._moderation.warning(inbound, outbound)
        if sink is None:
            outcome = self._undelivered(trigger, f"no adapter for platform {trigger.platform!r}")
        else:
            reply = OutboundReply(
                target=job.target, persona_id=persona.id, persona_name=persona.name,
                text=f"{warning}\n{replied.text}" if warning else replied.text,
                avatar_url=persona.avatar_url,
                webhook=persona.delivery.webhook,
                allowed_mentions=persona.delivery.allowed_mentions, streamed=streamed,
                truncated=replied.truncated, recovered=recovered,
                spoiler=replied.reasoning if persona.reasoning == "spoiler" else "",
                files=_reasoning_files(persona, replied))
            try:
                receipt = await sink.deliver(reply)
                delivered = ReplyDelivered(
                    platform=trigger.platform, message_id=trigger.message_id,
                    persona_id=persona.id, delivered_ids=receipt.message_ids, hop=trigger.hop)
                outcome = delivered
            except DeliveryError as exc:
                outcome = self._undelivered(trigger, str(exc))
            except Exception as exc:
                log.exception("the %s adapter failed to deliver", trigger.platform)
                outcome = self._undelivered(trigger, f"the adapter failed: {type(exc).__name__}")
        await record(self._history, job.stream_id, outcome.new_event(event_id))
        self._settle(trigger, outcome.type, replied.text)
        if delivered is not None and delivered.delivered_ids:
            if self._moderation is not None:
                await self._moderation.alert(job.target, persona, outbound,
                                             delivered.delivered_ids[0])
            await self._chain(job, persona, replied, delivered)

    async def _refuse_delivery(self, job: ReplyJob, persona: Persona, outbound: Checked) -> None:
        """Moderation refused the reply: record it undelivered and tell the person."""
        trigger = job.trigger
        result = await record(self._history, job.stream_id, self._undelivered(
            trigger, _refused(outbound)).new_event(
                delivered_event_id(trigger.platform, trigger.message_id, persona.id)))
        self._settle(trigger, ReplyFailed.type, "")
        if not result.duplicates and self._moderation is not None:
            await self._notifier.send(job.target, persona, "moderation",
                                      self._moderation.outbound_notice)

    async def fail(self, job: ReplyJob, error_class: str, error: str, persona: Persona | None,
                   *, outcome: ModelOutcome | None = None, context: BuiltContext | None = None,
                   variables: Mapping[str, str] | None = None,
                   notice: tuple[str, str] | None = None) -> None:
        """Record that ``job`` got no reply (and tell the user, once: the persona's
        failure notice, or ``notice``, a (kind, text))."""
        trigger = job.trigger
        sink = self._sinks.get(trigger.platform)
        failed = ModelFailed(
            platform=trigger.platform, message_id=trigger.message_id,
            persona_id=trigger.persona_id, error_class=error_class, error=error,
            persona_version=persona.version if persona else trigger.persona_version,
            provider=outcome.provider if outcome else trigger.provider,
            model=outcome.model if outcome else "",
            latency_s=round(outcome.latency_s, 6) if outcome else 0.0,
            attempts=outcome.attempts if outcome else 0,
            context_positions=context.positions if context else (),
            variables=dict(variables or {}), notice_sent=sink is not None,
            author_id=trigger.author_id)
        result = await record(self._history, job.stream_id, failed.new_event(
            reply_event_id(trigger.platform, trigger.message_id, trigger.persona_id),
            causation_id=trigger_event_id(trigger.platform, trigger.message_id,
                                          trigger.persona_id)))
        self._settle(trigger, ModelFailed.type, "")
        if not result.duplicates and sink is not None:
            text = persona.delivery.failure_notice if persona else FALLBACK_FAILURE_NOTICE
            kind, text = notice or ("failure", text)
            await self._notifier.send(job.target, persona, kind, text,
                                      persona_id=trigger.persona_id)

    async def close_undelivered(self, job: ReplyJob, error: str) -> bool:
        """Record that ``job``'s recorded reply will not be delivered; False when its
        delivery outcome was recorded already."""
        failed = self._undelivered(job.trigger, error)
        trigger = job.trigger
        result = await record(self._history, job.stream_id, failed.new_event(delivered_event_id(
            trigger.platform, trigger.message_id, trigger.persona_id)))
        return not result.duplicates

    async def abandon(self, job: ReplyJob) -> None:
        """Shutdown cut this reply short: record it and tell the user."""
        outcome = await self._store.get(reply_event_id(
            job.trigger.platform, job.trigger.message_id, job.trigger.persona_id))
        if outcome is None:
            await self.fail(job, "shutdown", "the bot shut down before the reply was ready",
                            self._personas.get(job.trigger.persona_id))

    def _executor(self, persona: Persona) -> Callable[[StepCall, float], Awaitable[ToolOutcome]]:
        async def execute(item: StepCall, timeout_s: float) -> ToolOutcome:
            return await self._toolbox.run(persona, item.call, timeout_s)
        return execute

    async def _resume(self, job: ReplyJob) -> tuple[StepCall, ...]:
        """The rounds a restart cut short, to continue from (a call whose result was never
        recorded is not run again: it is recorded as interrupted)."""
        t = job.trigger
        steps = await self._store.read(
            lambda log: read_steps(log, t.platform, t.message_id, t.persona_id))
        open_calls = [s for s in steps if s.result is None]
        if open_calls:
            await StepRecorder(self._history, job.stream_id, t).finished(open_calls)
            steps = await self._store.read(
                lambda log: read_steps(log, t.platform, t.message_id, t.persona_id))
        return steps

    def _undelivered(self, trigger: PersonaTriggered, error: str) -> ReplyFailed:
        return ReplyFailed(platform=trigger.platform, message_id=trigger.message_id,
                           persona_id=trigger.persona_id, error=error)

    def _variables(self, persona: Persona, events: Sequence[Typed],
                   job: ReplyJob) -> dict[str, str]:
        trigger = job.trigger
        source = next((e.event for e in reversed(events)
                       if e.event_id == trigger.source_event_id), None)
        return conversation_variables(
            source=source, events=events, author_id=trigger.author_id,
            channel_id=trigger.channel_id, is_dm=trigger.is_dm, now=self._clock(),
            seed=trigger_event_id(trigger.platform, trigger.message_id, trigger.persona_id))


def turns_wanted(persona: Persona) -> int:
    """Turns of history a prompt may use: the message budget, the lorebook's scan depth
    and how far its sticky and cooldown settings reach, and one more to know the
    budget was the limit."""
    book = persona.lorebook
    depths = [book.scan_depth, *(max(e.scan_depth or 0, e.sticky + e.cooldown + 1)
                                 for e in book.entries)]
    return max(persona.context.max_messages, *depths) + 1


def _latest_text(events: Sequence[Typed], source_event_id: str) -> str:
    """The text of the message being answered, as its latest edit has it."""
    text, message_id = "", None
    for item in events:
        event = item.event
        if item.event_id == source_event_id and isinstance(event, MessageReceived):
            text, message_id = event.text, event.message_id
        elif (message_id is not None and isinstance(event, MessageEdited)
              and event.message_id == message_id):
            text = event.text
    return text


def _refused(checked: Checked) -> str:
    event = checked.event
    if event.failed_closed:
        return (f"refused by moderation ({event.direction}): the provider failed "
                f"({event.error}) and fail is closed")
    found = ", ".join(f"{c} {event.scores.get(c, 0.0):.2f} >= "
                      f"{event.thresholds.get(c, {}).get(event.verdict) or 0.0:g}"
                      for c in event.matched)
    return f"refused by moderation ({event.direction}): {event.verdict} {found}".rstrip()


REASONING_FILE = "reasoning.txt"


def _reasoning_files(persona: Persona, replied: ModelReplied) -> tuple[OutboundFile, ...]:
    if persona.reasoning != "attach" or not replied.reasoning.strip():
        return ()
    return (OutboundFile(filename=REASONING_FILE, content=replied.reasoning.encode("utf-8")),)


def _usage(outcome: ModelOutcome) -> dict[str, object]:
    usage = outcome.usage
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens, "estimated": usage.estimated}
