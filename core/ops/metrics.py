"""Prometheus series for a running bot, read from the event log as it grows.

:class:`MetricsRecorder` follows the :class:`~eventstore.EventStore` from its end
at start-up and turns each domain event into counters and histograms, and writes
one log line per finished reply. Nothing in the dispatcher or the adapters knows
about metrics: the log already says everything that happened. Two things the log
cannot say are measured at the edges instead: how long appends take (the store tells
:meth:`MetricsRecorder.observe_append` of each) and how soon the first token of a
reply arrived (:class:`TimedModel`, a model client around the gateway).

Every series lives in the :class:`~prometheus_client.CollectorRegistry` passed in
(never the global one). Labels are bounded: persona id, provider, model, refusal
reason, error class, trigger reason; never a user, channel or message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from eventstore import EventStore, EventStoreError, LogUnavailable, RecordedEvent

from ..events import (
    GatewayConnected,
    GatewayDisconnected,
    GatewayResumed,
    MessageReceived,
    ModelFailed,
    ModelReplied,
    ModerationChecked,
    PersonaTriggered,
    ReplyDelivered,
    ReplyFailed,
    TriggerRejected,
    from_recorded,
)
from ..events.moderation import MODERATION_ERROR_CLASS
from ..gateway.model import ModelClient, ModelOutcome, ModelRequest, OnDelta

log = logging.getLogger(__name__)
reply_log = logging.getLogger("personae.replies")
"""One line per finished reply (delivered, undelivered or failed), with its figures."""

# Model replies take from well under a second (local servers) to minutes (reasoning models).
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0)
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
# A group commit with fsync is about a millisecond on an SSD, tens on a busy disk.
APPEND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

class Metrics:
    """The series, registered in ``registry``. One instance per process (or per test)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.messages = Counter(
            "personae_messages_received", "Inbound messages recorded (people and bots).",
            ["platform"], registry=registry)
        self.triggers = Counter(
            "personae_triggers", "Personas triggered to answer, by trigger reason.",
            ["persona", "reason"], registry=registry)
        self.refusals = Counter(
            "personae_trigger_refusals", "Triggers refused, by stable reason "
            "(permission:*, rate_limited:*, quota:*, busy, hop_limit, age_restricted:*).",
            ["persona", "reason"], registry=registry)
        self.replies = Counter(
            "personae_model_replies", "Replies the model produced.",
            ["persona", "provider"], registry=registry)
        self.failures = Counter(
            "personae_model_failures", "Replies the model did not produce, by error class.",
            ["persona", "provider", "error_class"], registry=registry)
        self.delivered = Counter(
            "personae_replies_delivered", "Replies that reached the platform.",
            ["persona"], registry=registry)
        self.delivery_failures = Counter(
            "personae_reply_delivery_failures", "Replies the adapter could not deliver.",
            ["persona"], registry=registry)
        self.moderation = Counter(
            "personae_moderation_decisions", "Moderation decisions, by direction (in: "
            "messages, out: replies) and verdict (pass, flag, block).",
            ["persona", "direction", "verdict"], registry=registry)
        self.moderation_failures = Counter(
            "personae_moderation_provider_failures", "Moderation checks the provider did "
            "not answer, by error (timeout, http_503, connection, garbage...).",
            ["error"], registry=registry)
        self.latency = Histogram(
            "personae_model_latency_seconds", "Time from request to complete reply, retries "
            "included.", ["persona", "provider"], buckets=LATENCY_BUCKETS, registry=registry)
        self.first_token = Histogram(
            "personae_model_time_to_first_token_seconds", "Time from request to the first "
            "visible text of a reply.", ["provider", "model"], buckets=FIRST_TOKEN_BUCKETS,
            registry=registry)
        self.tokens = Counter(
            "personae_model_tokens", "Tokens used by replies (direction: prompt or completion).",
            ["persona", "provider", "direction"], registry=registry)
        self.retries = Counter(
            "personae_model_retries", "Extra attempts the gateway made (attempts - 1).",
            ["persona", "provider"], registry=registry)
        self.pending = Gauge(
            "personae_reply_queue_depth", "Accepted replies waiting or running.",
            registry=registry)
        self.in_flight = Gauge(
            "personae_replies_in_flight", "Accepted replies still waiting for the model.",
            registry=registry)
        self.gateway_connected = Gauge(
            "personae_gateway_connected", "1 while the Discord gateway is connected.",
            registry=registry)
        self.shard_connected = Gauge(
            "personae_shard_connected", "1 while this process's connection of the Discord "
            "shard is up (sharded processes).", ["shard"], registry=registry)
        self.process = Gauge(
            "personae_process", "This process (1): the shards it is configured for "
            "(0-3/8, auto/8) and how other processes name it.", ["shards", "process"],
            registry=registry)
        self.gateway_reconnects = Counter(
            "personae_gateway_reconnects", "Gateway sessions resumed or re-identified after "
            "a lost connection.", ["kind"], registry=registry)
        self.append_latency = Histogram(
            "personae_eventlog_append_seconds", "Time an append waits for its group commit.",
            buckets=APPEND_BUCKETS, registry=registry)
        self.append_errors = Counter(
            "personae_eventlog_append_errors", "Appends the event log refused or could not "
            "commit.", registry=registry)


@dataclass
class LiveState:
    """What the recorder knows about the present, for readiness and the gauges."""

    gateway_connected: bool = False
    shards: dict[int, bool] = field(default_factory=dict)
    """Sharded processes: each shard's connection, up or not (from its gateway events)."""
    last_append_error: str | None = None
    awaiting_model: set[str] = field(default_factory=set)
    unfinished: set[str] = field(default_factory=set)


class MetricsRecorder:
    """Follows the log and keeps :class:`Metrics` and :class:`LiveState` up to date.

    Start it with :meth:`start` (it reads from the log's current end: a restart does not
    count history twice), stop it with :meth:`close`.
    """

    def __init__(self, store: EventStore, metrics: Metrics, state: LiveState | None = None,
                 *, queue_depth: Callable[[], int] | None = None, own: bool = False) -> None:
        self._store = store
        self._own = own  # count only this process's appends (a log several processes share)
        self._metrics = metrics
        self.state = state or LiveState()
        self._task: asyncio.Task[None] | None = None
        self._position = 0
        self._seen_disconnect = False
        self._replies: dict[str, dict[str, Any]] = {}
        self.caught_up = asyncio.Event()
        """Set each time the recorder has handled an event (see :meth:`wait_for`)."""
        metrics.in_flight.set_function(lambda: len(self.state.awaiting_model))
        if queue_depth is not None:
            metrics.pending.set_function(queue_depth)
        else:
            metrics.pending.set_function(lambda: len(self.state.unfinished))

    @property
    def position(self) -> int:
        """The position of the last event handled."""
        return self._position

    async def start(self) -> None:
        """Begin following from the log's current end."""
        self._position = await self._store.last_position()
        self._task = asyncio.create_task(self._follow(), name="metrics-recorder")

    async def close(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_for(self, position: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Until the event at ``position`` has been handled (tests and scrapes use it)."""
        async with asyncio.timeout(timeout):
            while self._position < position:
                self.caught_up.clear()
                await self.caught_up.wait()

    async def _follow(self) -> None:
        try:
            async for event in self._store.follow(self._position, own=self._own):
                try:
                    self.observe(event)
                except Exception:  # a malformed event must not stop the metrics
                    log.exception("metrics could not read event %s", event.position)
                self._position = event.position
                self.caught_up.set()
        except EventStoreError:
            return  # the store closed under us: the process is shutting down
        except Exception:
            log.exception("metrics stopped following the event log")

    def observe_append(self, seconds: float, error: EventStoreError | None) -> None:
        """An append waited ``seconds`` for its commit (and failed with ``error``): the
        store's append observer. A refused request (a version conflict, data that is not
        JSON) says nothing about the log; a failed commit makes the bot unready."""
        if error is None:
            self._metrics.append_latency.observe(seconds)
            self.state.last_append_error = None
        elif _is_write_failure(error):
            self._metrics.append_errors.inc()
            self.state.last_append_error = str(error)

    def observe(self, event: RecordedEvent) -> None:
        """Account for one event (a malformed one raises; :meth:`_follow` logs it)."""
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, from_recorded(event), event)

    # -- per event type --------------------------------------------------------------

    def _message(self, event: MessageReceived, _: RecordedEvent) -> None:
        self._metrics.messages.labels(event.platform).inc()

    def _triggered(self, event: PersonaTriggered, _: RecordedEvent) -> None:
        self._metrics.triggers.labels(event.persona_id, event.reason.value).inc()
        key = _reply_key(event.platform, event.message_id, event.persona_id)
        self.state.awaiting_model.add(key)
        self.state.unfinished.add(key)

    def _rejected(self, event: TriggerRejected, _: RecordedEvent) -> None:
        self._metrics.refusals.labels(event.persona_id, str(event.reason)).inc()

    def _moderated(self, event: ModerationChecked, _: RecordedEvent) -> None:
        self._metrics.moderation.labels(event.persona_id, event.direction, event.verdict).inc()
        if event.error:
            self._metrics.moderation_failures.labels(event.error).inc()

    def _replied(self, event: ModelReplied, _: RecordedEvent) -> None:
        m, persona, provider = self._metrics, event.persona_id, event.provider
        usage = event.usage
        m.replies.labels(persona, provider).inc()
        m.latency.labels(persona, provider).observe(float(event.latency_s or 0.0))
        m.tokens.labels(persona, provider, "prompt").inc(int(usage.get("prompt_tokens") or 0))
        m.tokens.labels(persona, provider, "completion").inc(
            int(usage.get("completion_tokens") or 0))
        m.retries.labels(persona, provider).inc(max(0, int(event.attempts or 1) - 1))
        key = _reply_key(event.platform, event.message_id, event.persona_id)
        self.state.awaiting_model.discard(key)
        self._replies[key] = {
            "provider": provider, "model": event.model, "latency_s": event.latency_s,
            "attempts": event.attempts, "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"), "truncated": event.truncated,
        }

    def _failed(self, event: ModelFailed, recorded: RecordedEvent) -> None:
        m, persona, provider = self._metrics, event.persona_id, event.provider
        if event.error_class != MODERATION_ERROR_CLASS:  # no model failed: moderation counts it
            m.failures.labels(persona, provider, event.error_class).inc()
        m.retries.labels(persona, provider).inc(max(0, int(event.attempts or 0) - 1))
        key = _reply_key(event.platform, event.message_id, event.persona_id)
        self.state.awaiting_model.discard(key)
        self.state.unfinished.discard(key)
        _log_reply(recorded, persona, "failed", {
            "provider": provider, "error_class": event.error_class,
            "latency_s": event.latency_s, "attempts": event.attempts})

    def _delivered(self, event: ReplyDelivered, recorded: RecordedEvent) -> None:
        self._finished(event, recorded, "delivered")
        self._metrics.delivered.labels(event.persona_id).inc()

    def _delivery_failed(self, event: ReplyFailed, recorded: RecordedEvent) -> None:
        self._finished(event, recorded, "undelivered")
        self._metrics.delivery_failures.labels(event.persona_id).inc()

    def _finished(self, event: ReplyDelivered | ReplyFailed, recorded: RecordedEvent,
                  outcome: str) -> None:
        key = _reply_key(event.platform, event.message_id, event.persona_id)
        self.state.unfinished.discard(key)
        _log_reply(recorded, event.persona_id, outcome, self._replies.pop(key, {}))

    def _gateway_up(self, kind: str, event: GatewayConnected | GatewayResumed) -> None:
        if self._seen_disconnect:
            self._metrics.gateway_reconnects.labels(kind).inc()
        if event.shard_id is not None:
            self.state.shards[event.shard_id] = True
            self._metrics.shard_connected.labels(str(event.shard_id)).set(1)
        self.state.gateway_connected = True
        self._metrics.gateway_connected.set(1)

    def _gateway_down(self, event: GatewayDisconnected, _: RecordedEvent) -> None:
        self._seen_disconnect = True
        if event.shard_id is not None:
            self.state.shards[event.shard_id] = False
            self._metrics.shard_connected.labels(str(event.shard_id)).set(0)
        # a sharded process is connected while any of its shards is
        self.state.gateway_connected = any(self.state.shards.values())
        self._metrics.gateway_connected.set(int(self.state.gateway_connected))


_Handler = Callable[[MetricsRecorder, Any, RecordedEvent], None]
_HANDLERS: dict[str, _Handler] = {
    MessageReceived.type: MetricsRecorder._message,
    PersonaTriggered.type: MetricsRecorder._triggered,
    TriggerRejected.type: MetricsRecorder._rejected,
    ModerationChecked.type: MetricsRecorder._moderated,
    ModelReplied.type: MetricsRecorder._replied,
    ModelFailed.type: MetricsRecorder._failed,
    ReplyDelivered.type: MetricsRecorder._delivered,
    ReplyFailed.type: MetricsRecorder._delivery_failed,
    GatewayConnected.type: lambda recorder, event, _: recorder._gateway_up("identify", event),
    GatewayResumed.type: lambda recorder, event, _: recorder._gateway_up("resume", event),
    GatewayDisconnected.type: MetricsRecorder._gateway_down,
}


def _reply_key(platform: str, message_id: str, persona_id: str) -> str:
    return f"{platform}:{message_id}:{persona_id}"


def _log_reply(event: RecordedEvent, persona_id: str, outcome: str,
               details: Mapping[str, Any]) -> None:
    """The one log line per reply: persona, conversation (the stream), outcome, figures."""
    reply_log.info("reply %s", outcome, extra={"fields": {
        "persona": persona_id, "conversation": event.stream_id, "outcome": outcome, **details}})


def _is_write_failure(exc: EventStoreError) -> bool:
    """A failure of the disk or the commit, as opposed to a refused request (a version
    conflict, data that is not JSON, a closed store)."""
    return isinstance(exc, LogUnavailable) or (
        type(exc) is EventStoreError and not isinstance(exc.__cause__, TypeError | ValueError))


class TimedModel:
    """A model client (the :class:`~core.gateway.gateway.ModelGateway`) whose replies'
    time to first token is observed; everything else passes straight through."""

    def __init__(self, model: ModelClient, metrics: Metrics) -> None:
        self._model = model
        self._metrics = metrics

    async def complete(self, request: ModelRequest, on_delta: OnDelta | None = None
                       ) -> ModelOutcome:
        """The wrapped client's ``complete``, with its time to first token recorded."""
        outcome: ModelOutcome = await self._model.complete(request, on_delta)
        if outcome.ok and outcome.time_to_first_token_s is not None:
            self._metrics.first_token.labels(outcome.provider, outcome.model).observe(
                outcome.time_to_first_token_s)
        return outcome
