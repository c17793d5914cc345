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
from dataclasses import dataclass, field

from eventstore import LogReader

from ..events import ModelFailed, ModelReplied, PersonaTriggered, from_recorded
from ..events.ids import trigger_event_id, version_event_id
from ..gateway.model import ChatMessage
from ..personas.lorebook import LoreScan
from ..personas.model import Persona
from ..personas.versions import persona_from_version_event
from .builder import ContextTarget, build_context
from .history import context_events


class RebuildError(Exception):
    """The log does not hold what a rebuild needs; the message says what is missing."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RebuiltPrompt:
    """The persona version and the messages of one recorded model call."""

    persona: Persona
    messages: tuple[ChatMessage, ...]
    positions: tuple[int, ...]
    lore: LoreScan = field(default_factory=LoreScan)
    """What the lorebook did in that prompt: every entry that activated, and why."""


def rebuild_prompt(log: LogReader, reply_event_id: str,
                   known_providers: Collection[str]) -> RebuiltPrompt:
    """The prompt behind the ModelReplied or ModelFailed ``reply_event_id``.

    Runs on a reader: ``await store.read(lambda log: rebuild_prompt(log, id, providers))``.
    """
    recorded = log.get(reply_event_id)
    if recorded is None or recorded.type not in (ModelReplied.type, ModelFailed.type):
        raise RebuildError(f"no model call with the id {reply_event_id!r} in the log")
    outcome = from_recorded(recorded)
    assert isinstance(outcome, ModelReplied | ModelFailed)
    if not outcome.persona_version or not outcome.context_positions:
        raise RebuildError(f"{reply_event_id} ended before its prompt was built")
    trigger = trigger_of(log, outcome)
    if trigger is None:
        raise RebuildError(f"the trigger of {reply_event_id} is not in the log")
    version = log.get(version_event_id(outcome.persona_id, outcome.persona_version))
    if version is None:
        raise RebuildError(f"persona {outcome.persona_id} version {outcome.persona_version} "
                           "is not in the log")
    persona = persona_from_version_event(version, known_providers)
    positions = tuple(int(p) for p in outcome.context_positions)
    built = build_context(persona, context_events(log.read_positions(positions)),
                          target_of(trigger), dict(outcome.variables))
    return RebuiltPrompt(persona=persona, messages=built.messages, positions=positions,
                         lore=built.lore)


def trigger_of(log: LogReader, outcome: ModelReplied | ModelFailed) -> PersonaTriggered | None:
    """The trigger a model call answered, or None when the log lacks it."""
    recorded = log.get(trigger_event_id(outcome.platform, outcome.message_id, outcome.persona_id))
    if recorded is None or recorded.type != PersonaTriggered.type:
        return None
    return PersonaTriggered.from_data(recorded.data)


def target_of(trigger: PersonaTriggered) -> ContextTarget:
    """What a trigger's reply answers, as the context builder needs it."""
    return ContextTarget(source_event_id=trigger.source_event_id, author_id=trigger.author_id,
                         is_dm=trigger.is_dm)
