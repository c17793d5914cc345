"""Moving a long conversation into a thread, when the persona's ``triggers.thread`` says so.

The reply that goes past ``after_turns`` replies in a channel (or is at least
``after_chars`` long) opens a thread on the message it answers and is posted there.
Where a reply goes is decided before its first byte is posted, whatever the delivery
mode: a streamed reply's preview waits until the decision can be made (at once for
``after_turns``; for ``after_chars``, once the text is that long or the reply is
complete), so a preview is never left in the channel while the reply moves on.
The thread is a conversation of its own, seeded with the visible turns that led to
it (copies in the thread's stream, ``seed:`` ids, no usage), and the persona
answers every message in it. A ``ThreadOpened`` event in the thread's stream
records which persona owns the thread.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

import disnake

from eventstore import EventStore, NewEvent

from ...context.builder import conversation_turns
from ...context.history import context_events
from ...dispatcher.messages import ReplyTarget
from ...events import (
    ConversationReset,
    DomainEvent,
    GreetingDelivered,
    MessageReceived,
    ModelReplied,
    PersonaGreeted,
    ThreadOpened,
)
from ...events.ids import (
    conversation_stream,
    greeting_delivered_event_id,
    message_event_id,
    reply_event_id,
    seed_event_id,
    thread_opened_event_id,
)
from ...personas.model import Persona
from .inbound import PLATFORM

log = logging.getLogger(__name__)

SEED_EVENTS = 200
"""How many of the channel's latest events are read to seed a thread."""
DECISIONS_KEPT = 2000
"""Thread decisions remembered (a reply's, from its first streamed piece to its delivery)."""
_ARCHIVE_AFTER_MIN: Final = 1440


class ThreadMover:
    """Decides when a reply moves into a thread, opens and seeds the thread, and knows
    which persona owns each thread it opened."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._owners: dict[str, str | None] = {}
        self._decided: OrderedDict[tuple[str, str], bool] = OrderedDict()

    async def decide(self, persona: Persona, target: ReplyTarget, text: str, *,
                     final: bool = True) -> bool | None:
        """Whether the reply to ``target`` opens a thread: True or False, or None while
        it cannot tell yet (``final`` false: ``text`` is what has arrived of a reply
        still streaming, and only its length could still decide). A decision, once
        made, holds for the rest of that reply (whether or not it is recorded yet)."""
        key = (target.message_id, persona.id)
        if key in self._decided:
            return self._decided[key]
        decision = await self._decide(persona, target, text, final)
        if decision is not None:
            self._decided[key] = decision
            while len(self._decided) > DECISIONS_KEPT:
                self._decided.popitem(last=False)
        return decision

    async def _decide(self, persona: Persona, target: ReplyTarget, text: str, final: bool
                      ) -> bool | None:
        spec = persona.triggers.thread
        if spec is None or target.is_dm:
            return False
        if spec.after_turns is not None:
            this_reply = reply_event_id(PLATFORM, target.message_id, persona.id)
            events = await self._store.read_stream_tail(
                conversation_stream(PLATFORM, target.channel_id), SEED_EVENTS)
            earlier = 0
            for item in context_events(events):
                if isinstance(item.event, ConversationReset) and item.event.whole:
                    earlier = 0
                elif (isinstance(item.event, ModelReplied) and item.event.persona_id == persona.id
                      and item.event_id != this_reply):
                    earlier += 1
            if earlier + 1 > spec.after_turns:  # this reply is one more
                return True
        if spec.after_chars is not None:
            if len(text) >= spec.after_chars:
                return True
            if not final:
                return None
        return False

    async def open(self, channel: disnake.TextChannel, target: ReplyTarget,
                   persona: Persona) -> disnake.Thread:
        """Open a thread on the answered message and seed its conversation (the thread
        opened before a restart, when there is one: a thread on a message has its id)."""
        if target.message_id.isdigit() and await self._store.get(
                thread_opened_event_id(PLATFORM, target.message_id)) is not None:
            opened = channel.guild.get_thread(int(target.message_id))
            if opened is None:
                fetched = await channel.guild.fetch_channel(int(target.message_id))
                opened = fetched if isinstance(fetched, disnake.Thread) else None
            if opened is not None:
                return opened
        events = await self._store.read_stream_tail(
            conversation_stream(PLATFORM, target.channel_id), SEED_EVENTS)
        source = message_event_id(PLATFORM, target.message_id)
        turns = conversation_turns(context_events(events), source)
        asked = next((t.text for t in turns if t.key == source), "")
        name = f"{persona.name}: {asked}" if asked else f"{persona.name}"
        thread = await channel.create_thread(
            name=name[:100], message=disnake.Object(int(target.message_id)),
            auto_archive_duration=_ARCHIVE_AFTER_MIN)
        thread_id = str(thread.id)
        by_key = {e.event_id: e for e in events}
        seed: list[NewEvent] = [ThreadOpened(
            platform=PLATFORM, thread_id=thread_id, parent_channel_id=target.channel_id,
            persona_id=persona.id, from_message_id=target.message_id,
        ).new_event(thread_opened_event_id(PLATFORM, thread_id))]
        for turn in sorted(turns, key=lambda t: t.position):
            original = by_key.get(turn.key)
            if original is None:
                continue
            seed += _seed_copy(original.type, original.data, turn.text, thread_id,
                               seed_event_id(PLATFORM, thread_id, turn.key), by_key)
        await self._store.append(conversation_stream(PLATFORM, thread_id), seed)
        self._owners[thread_id] = persona.id
        return thread

    async def owner(self, thread_id: str) -> str | None:
        """The persona that opened ``thread_id``, or None for other threads."""
        if thread_id not in self._owners:
            event = await self._store.get(thread_opened_event_id(PLATFORM, thread_id))
            self._owners[thread_id] = (ThreadOpened.from_data(event.data).persona_id
                                       if event else None)
        return self._owners[thread_id]


def _seed_copy(kind: str, data: Mapping[str, Any], text: str, thread_id: str,
               event_id: str, by_key: Mapping[str, Any]) -> list[NewEvent]:
    copy: DomainEvent
    if kind == MessageReceived.type:
        copy = dataclasses.replace(MessageReceived.from_data(data), text=text,
                                   channel_id=thread_id)
    elif kind == PersonaGreeted.type:
        # the greeting was posted where it was said: its copy is posted already
        greeted = dataclasses.replace(PersonaGreeted.from_data(data), channel_id=thread_id)
        original = by_key.get(greeting_delivered_event_id(
            greeted.platform, greeted.greeting_id, greeted.persona_id))
        posted = GreetingDelivered.from_data(original.data) if original is not None else \
            GreetingDelivered(platform=greeted.platform, greeting_id=greeted.greeting_id,
                              persona_id=greeted.persona_id)
        return [greeted.new_event(event_id), posted.new_event(f"{event_id}:posted")]
    else:
        # a copy of the words only: its usage was counted where it was said
        copy = dataclasses.replace(ModelReplied.from_data(data), usage={}, scope_keys={})
    return [copy.new_event(event_id)]
