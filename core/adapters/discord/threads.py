"""Moving a long conversation into a thread, when the persona's ``triggers.thread`` says so.

The reply that goes past ``after_turns`` replies in a channel (or is at least
``after_chars`` long) opens a thread on the message it answers and is posted there.
The thread is a conversation of its own, seeded with the visible turns that led to
it (copies in the thread's stream, ``seed:`` ids, no usage), and the persona
answers every message in it. A ``ThreadOpened`` event in the thread's stream
records which persona owns the thread.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, Final

import disnake

from eventstore import EventStore, NewEvent

from ...context.builder import conversation_turns
from ...context.history import context_events
from ...dispatcher.messages import ReplyTarget
from ...events import ConversationReset, DomainEvent, MessageReceived, ModelReplied, ThreadOpened
from ...events.ids import (
    conversation_stream,
    message_event_id,
    seed_event_id,
    thread_opened_event_id,
)
from ...personas.model import Persona
from .inbound import PLATFORM

log = logging.getLogger(__name__)

SEED_EVENTS = 200
"""How many of the channel's latest events are read to seed a thread."""
_ARCHIVE_AFTER_MIN: Final = 1440


class ThreadMover:
    """Decides when a reply moves into a thread, opens and seeds the thread, and knows
    which persona owns each thread it opened."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._owners: dict[str, str | None] = {}

    async def should_move(self, persona: Persona, target: ReplyTarget, text: str) -> bool:
        """True when this reply (already recorded as ModelReplied) should open a thread."""
        spec = persona.triggers.thread
        if spec is None or target.is_dm:
            return False
        if spec.after_chars is not None and len(text) >= spec.after_chars:
            return True
        if spec.after_turns is None:
            return False
        events = await self._store.read_stream_tail(
            conversation_stream(PLATFORM, target.channel_id), SEED_EVENTS)
        replies = 0
        for item in context_events(events):
            if isinstance(item.event, ConversationReset) and item.event.whole:
                replies = 0
            elif isinstance(item.event, ModelReplied) and item.event.persona_id == persona.id:
                replies += 1
        return replies > spec.after_turns

    async def open(self, channel: disnake.TextChannel, target: ReplyTarget,
                   persona: Persona) -> disnake.Thread:
        """Open a thread on the answered message and seed its conversation."""
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
            seed.append(_seed_copy(original.type, original.data, turn.text, thread_id,
                                   seed_event_id(PLATFORM, thread_id, turn.key)))
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
               event_id: str) -> NewEvent:
    copy: DomainEvent
    if kind == MessageReceived.type:
        copy = dataclasses.replace(MessageReceived.from_data(data), text=text,
                                   channel_id=thread_id)
    else:
        # a copy of the words only: its usage was counted where it was said
        copy = dataclasses.replace(ModelReplied.from_data(data), usage={}, scope_keys={})
    return copy.new_event(event_id)
