"""Rebuild the exact prompt of a recorded model call from the log alone.

A ModelReplied (or ModelFailed) records the persona id and version, the positions
of the events that formed its context and the variables its system prompt was
rendered with; the persona's text for that version is in the log
(PersonaVersionRecorded). Building the context again from exactly those events
gives the messages that were sent, byte for byte (``personae explain`` and
``personae rerun`` build on this).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from eventstore import EventLog

from ..dispatcher.events import ModelFailed, ModelReplied, PersonaTriggered, trigger_event_id
from ..dispatcher.projection import read_positions
from ..gateway.model import ChatMessage
from ..personas.model import Persona
from ..personas.versions import persona_from_version_event, version_event_id
from .builder import ContextTarget, build_context


class RebuildError(Exception):
    """The log does not hold what a rebuild needs; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class RebuiltPrompt:
    """The persona version and the messages of one recorded model call."""

    persona: Persona
    messages: tuple[ChatMessage, ...]
    positions: tuple[int, ...]


def rebuild_prompt(log: EventLog, reply_event_id: str,
                   known_providers: Collection[str]) -> RebuiltPrompt:
    """The prompt behind the ModelReplied or ModelFailed ``reply_event_id``.

    Runs on a reader: ``await store.read(lambda log: rebuild_prompt(log, id, providers))``.
    """
    outcome = log.get(reply_event_id)
    if outcome is None or outcome.type not in (ModelReplied.type, ModelFailed.type):
        raise RebuildError(f"no model call with the id {reply_event_id!r} in the log")
    data = outcome.data
    if not data.get("persona_version") or not data.get("context_positions"):
        raise RebuildError(f"{reply_event_id} ended before its prompt was built")
    trigger_event = log.get(trigger_event_id(data["platform"], data["message_id"],
                                             data["persona_id"]))
    if trigger_event is None or trigger_event.type != PersonaTriggered.type:
        raise RebuildError(f"the trigger of {reply_event_id} is not in the log")
    trigger = PersonaTriggered.from_data(trigger_event.data)
    version = log.get(version_event_id(data["persona_id"], data["persona_version"]))
    if version is None:
        raise RebuildError(f"persona {data['persona_id']} version {data['persona_version']} "
                           "is not in the log")
    persona = persona_from_version_event(version, known_providers)
    positions = tuple(int(p) for p in data["context_positions"])
    events = read_positions(log, list(positions))
    built = build_context(
        persona, events, ContextTarget(trigger.source_event_id, trigger.author_id, trigger.is_dm),
        dict(data.get("variables") or {}))
    return RebuiltPrompt(persona, built.messages, positions)
