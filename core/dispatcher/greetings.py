"""Greetings: a persona's first message in a new conversation.

A conversation (a channel, a thread, a DM; the terminal's) is new for a persona when
the persona has not spoken in it since it began or was last reset: the ``greeted``
table of :class:`GreetingProjection` knows. There, the persona's first reply is
preceded by its greeting, one of ``prompt.greeting`` and ``alternate_greetings``
chosen at random (from a seed recorded with it), and ``/greet`` posts one on request
(chosen by number). Like a reply, a greeting is recorded (PersonaGreeted) before it
is posted and its outcome after (GreetingDelivered), it is part of the conversation's
context, and one left unposted by a crash is posted at start-up, once
(``open_greetings``), or closed when it is too old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from eventstore import Column, EventStore, LogReader, Projection, RecordedEvent, Table, TableWriter

from ..context.history import ConversationHistory
from ..events import (
    ConversationReset,
    GreetingDelivered,
    MessageReceived,
    ModelReplied,
    PersonaGreeted,
    PersonaTriggered,
    from_recorded,
)
from ..events.ids import conversation_stream, greeting_delivered_event_id, greeting_event_id
from ..personas.model import DeliverySpec, Persona
from ..personas.prompt import render_text
from .admission import PersonaSource
from .background import Background
from .messages import OutboundReply, Owns, ReplyTarget
from .recording import record
from .sink import DeliveryError, ReplySink
from .variables import place_variables

log = logging.getLogger(__name__)


class GreetingProjection(Projection):
    """Who has spoken in which conversation since its last reset, and the greetings not
    yet posted."""

    name = "greetings"
    version = 1
    types = frozenset({PersonaGreeted.type, GreetingDelivered.type, ModelReplied.type,
                       ConversationReset.type})
    tables = (
        Table(name="greeted", columns=(
            Column(name="stream_id", type="text"), Column(name="persona_id", type="text"),
            Column(name="position", type="integer"),
        ), key=("stream_id", "persona_id")),
        Table(name="open_greetings", columns=(
            Column(name="event_id", type="text"), Column(name="stream_id", type="text"),
            Column(name="position", type="integer"), Column(name="recorded_at", type="real"),
        ), key=("event_id",)),
    )

    def apply(self, tables: TableWriter, event: RecordedEvent) -> None:
        if event.type == ConversationReset.type:
            tables.delete("greeted", {"stream_id": event.stream_id})
            return
        step = from_recorded(event)
        if isinstance(step, GreetingDelivered):
            tables.delete("open_greetings", {"event_id": greeting_event_id(
                step.platform, step.greeting_id, step.persona_id)})
            return
        assert isinstance(step, PersonaGreeted | ModelReplied)
        tables.insert("greeted", {"stream_id": event.stream_id, "persona_id": step.persona_id,
                                  "position": event.position}, on_conflict="ignore")
        if isinstance(step, PersonaGreeted):  # a copy seeding a thread has the same key
            tables.insert("open_greetings", {
                "event_id": greeting_event_id(step.platform, step.greeting_id, step.persona_id),
                "stream_id": event.stream_id,
                "position": event.position, "recorded_at": event.recorded_at},
                on_conflict="ignore")


def has_spoken(log: LogReader, stream_id: str, persona_id: str) -> bool:
    """Whether ``persona_id`` has greeted or replied in ``stream_id`` since its last reset."""
    return bool(log.rows("greeted", {"stream_id": stream_id, "persona_id": persona_id},
                         limit=1))


def read_open_greetings(log: LogReader) -> list[dict[str, object]]:
    """Every greeting recorded but not posted, oldest first."""
    return log.rows("open_greetings", order_by=("position",))


@dataclass(frozen=True, slots=True, kw_only=True)
class GreetingRequest:
    """Where a greeting goes and what opened the conversation: ``greeting_id`` is the
    platform id of the first message to the persona, or of the command asking."""

    platform: str
    channel_id: str
    greeting_id: str
    author_id: str
    author_name: str = ""
    channel_name: str | None = None
    guild_name: str | None = None
    guild_id: str | None = None
    is_dm: bool = False

    @property
    def stream_id(self) -> str:
        """The conversation's stream."""
        return conversation_stream(self.platform, self.channel_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class GreetingOutcome:
    """What came of asking for a greeting: posted (``text``, greeting ``choice`` of
    ``count``) or not, and why not."""

    posted: bool
    text: str = ""
    choice: int = 0
    count: int = 0
    reason: str = ""


class Greeter:
    """Records, posts and recovers greetings (see the module docstring)."""

    def __init__(self, *, store: EventStore, history: ConversationHistory,
                 personas: PersonaSource, sinks: Mapping[str, ReplySink],
                 background: Background, clock: Callable[[], float],
                 window_s: float) -> None:
        self._store = store
        self._history = history
        self._personas = personas
        self._sinks = sinks
        self._background = background
        self._clock = clock
        self._window_s = window_s
        self._locks = _KeyedLocks()

    async def before_reply(self, trigger: PersonaTriggered, stream_id: str,
                           persona: Persona) -> None:
        """Greet first when ``trigger`` is the first message to ``persona`` in its
        conversation (a greeting a crash left unposted is posted now)."""
        if not persona.prompt.greetings or trigger.hop:
            return
        event_id = greeting_event_id(trigger.platform, trigger.message_id, persona.id)
        recorded = await self._store.get(event_id)
        if recorded is not None:
            await self._post(stream_id, PersonaGreeted.from_data(recorded.data), recovered=True)
            return
        if await self._store.read(lambda log: has_spoken(log, stream_id, persona.id)):
            return
        source = await self._store.get(trigger.source_event_id)
        message = from_recorded(source) if source is not None else None
        named = message if isinstance(message, MessageReceived) else None
        request = GreetingRequest(
            platform=trigger.platform, channel_id=trigger.channel_id,
            greeting_id=trigger.message_id, author_id=trigger.author_id,
            author_name=named.author_name if named else "",
            channel_name=named.channel_name if named else None,
            guild_name=named.guild_name if named else None,
            guild_id=trigger.guild_id, is_dm=trigger.is_dm)
        await self.greet(request, persona, choice=None, only_if_new=False)

    async def greet(self, request: GreetingRequest, persona: Persona, *, choice: int | None,
                    only_if_new: bool) -> GreetingOutcome:
        """Post ``persona``'s greeting number ``choice`` (None: one at random) where
        ``request`` says; with ``only_if_new``, only in a conversation new to it."""
        greetings = persona.prompt.greetings
        count = len(greetings)
        if not greetings:
            return GreetingOutcome(posted=False, reason=f"{persona.name} has no greeting.")
        if choice is not None and not 1 <= choice <= count:
            return GreetingOutcome(posted=False, count=count, reason=(
                f"{persona.name} has {count} greeting{'s' if count != 1 else ''}: choose a "
                f"number from 1 to {count}."))
        stream_id = request.stream_id
        if only_if_new and await self._store.read(
                lambda log: has_spoken(log, stream_id, persona.id)):
            return GreetingOutcome(posted=False, count=count,
                                   reason=f"{persona.name} is already in this conversation.")
        event_id = greeting_event_id(request.platform, request.greeting_id, persona.id)
        chosen_by = "random" if choice is None else "command"
        if choice is None:
            choice = random.Random(event_id).randrange(count) + 1
        variables = place_variables(
            user=request.author_name or request.author_id, channel=request.channel_name,
            guild=request.guild_name, channel_id=request.channel_id, is_dm=request.is_dm,
            now=self._clock(), seed=event_id)
        where = ("greeting" if choice == 1 and persona.prompt.greeting
                 else f"alternate_greetings[{choice - 1 - bool(persona.prompt.greeting)}]")
        greeted = PersonaGreeted(
            platform=request.platform, greeting_id=request.greeting_id,
            channel_id=request.channel_id, persona_id=persona.id,
            persona_version=persona.version, persona_name=persona.name,
            text=render_text(persona, greetings[choice - 1], variables, where), choice=choice,
            chosen_by=chosen_by, author_id=request.author_id, guild_id=request.guild_id,
            is_dm=request.is_dm, variables=variables)
        result = await record(self._history, stream_id, greeted.new_event(event_id))
        if result.duplicates:  # asked twice: the first greeting stands
            recorded = await self._store.get(event_id)
            if recorded is not None:
                greeted = PersonaGreeted.from_data(recorded.data)
        posted = await self._post(stream_id, greeted, recovered=bool(result.duplicates))
        return GreetingOutcome(posted=posted, text=greeted.text, choice=greeted.choice,
                               count=count, reason="" if posted else "it could not be posted")

    async def recover(self, owns: Owns | None = None) -> int:
        """Post the greetings a crash left recorded but unposted (in the background: the
        platform may not be connected yet); those older than the recovery window are
        closed instead. ``owns``: only those asked for where it accepts (a shard this
        process runs). Returns how many were found."""
        rows = await self._store.read(read_open_greetings)
        cutoff = self._clock() - self._window_s
        found = 0
        for row in rows:
            recorded = await self._store.get(str(row["event_id"]))
            if recorded is None:
                continue
            greeted = PersonaGreeted.from_data(recorded.data)
            if greeted.platform not in self._sinks or (owns is not None and not owns(greeted)):
                continue  # left for a process that has this platform, or this shard
            found += 1
            stream_id = str(row["stream_id"])
            if float(row["recorded_at"]) < cutoff:  # type: ignore[arg-type]
                self._background.spawn(self._close(stream_id, greeted, "too old to post now"))
            else:
                self._background.spawn(self._post(stream_id, greeted, recovered=True))
        return found

    async def _post(self, stream_id: str, greeted: PersonaGreeted, *, recovered: bool) -> bool:
        """Post ``greeted`` unless its outcome is recorded; True when it reached the platform."""
        event_id = greeting_event_id(greeted.platform, greeted.greeting_id, greeted.persona_id)
        delivered_id = greeting_delivered_event_id(greeted.platform, greeted.greeting_id,
                                                   greeted.persona_id)
        async with self._locks.holding(event_id):
            done = await self._store.get(delivered_id)
            if done is not None:
                return bool(GreetingDelivered.from_data(done.data).delivered_ids)
            sink = self._sinks.get(greeted.platform)
            if sink is None:
                return False
            try:
                receipt = await sink.deliver(self._reply(greeted, recovered=recovered))
                outcome = GreetingDelivered(platform=greeted.platform,
                                            greeting_id=greeted.greeting_id,
                                            persona_id=greeted.persona_id,
                                            delivered_ids=receipt.message_ids)
            except DeliveryError as exc:
                outcome = self._failed(greeted, str(exc))
            except Exception as exc:
                log.exception("the %s adapter failed to post a greeting", greeted.platform)
                outcome = self._failed(greeted, f"the adapter failed: {type(exc).__name__}")
            await record(self._history, stream_id, outcome.new_event(delivered_id))
            return bool(outcome.delivered_ids)

    def _reply(self, greeted: PersonaGreeted, *, recovered: bool) -> OutboundReply:
        persona = self._personas.get(greeted.persona_id)
        delivery = persona.delivery if persona else DeliverySpec()
        return OutboundReply(
            target=ReplyTarget(platform=greeted.platform, channel_id=greeted.channel_id,
                               message_id=greeted.greeting_id, author_id=greeted.author_id,
                               guild_id=greeted.guild_id, is_dm=greeted.is_dm,
                               greeting=True),
            persona_id=greeted.persona_id, persona_name=greeted.persona_name, text=greeted.text,
            avatar_url=persona.avatar_url if persona else None, webhook=delivery.webhook,
            allowed_mentions=delivery.allowed_mentions, recovered=recovered)

    async def _close(self, stream_id: str, greeted: PersonaGreeted, error: str) -> None:
        delivered_id = greeting_delivered_event_id(greeted.platform, greeted.greeting_id,
                                                   greeted.persona_id)
        await record(self._history, stream_id, self._failed(greeted, error).new_event(delivered_id))

    @staticmethod
    def _failed(greeted: PersonaGreeted, error: str) -> GreetingDelivered:
        return GreetingDelivered(platform=greeted.platform, greeting_id=greeted.greeting_id,
                                 persona_id=greeted.persona_id, error=error[:300])


class _KeyedLocks:
    """One lock per key, held only while someone uses it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def holding(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
