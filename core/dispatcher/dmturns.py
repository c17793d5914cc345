"""One persona per DM: the :class:`~core.dispatcher.admission.TurnPolicy` of the bot.

Every persona answers DMs by default (``triggers.dm``), so without a policy one DM
would get a reply from each. In a DM conversation, the personas the message names
(an explicit invocation, a mention, a reply to one of theirs, their id, name or one of
their keywords written as a word) answer; when it names none, one persona does: the
one the person last talked with in that DM (the ``dm_personas`` projection of the
log, so it survives restarts), else the configured default (config.yaml
``dms.default_persona``), else the first by name. Outside DMs every match answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventstore import EventStore

from .admission import PersonaSource
from .messages import InboundMessage
from .projection import read_dm_persona
from .triggers import TriggerEvaluator, TriggerMatch

NAMING_REASONS = frozenset({"invoked", "mention", "reply"})
"""Trigger reasons that name their persona by themselves."""


class OnePersonaPerDm:
    """The DM turn policy (see the module docstring)."""

    def __init__(self, *, personas: PersonaSource, store: EventStore,
                 default_persona: str | None = None,
                 triggers: TriggerEvaluator | None = None) -> None:
        self._personas = personas
        self._store = store
        self._default = default_persona
        self._triggers = triggers or TriggerEvaluator()

    async def turns(self, message: InboundMessage,
                    matches: Sequence[TriggerMatch]) -> Sequence[TriggerMatch]:
        """The named personas, or the one the DM belongs to (see the module docstring)."""
        if not message.is_dm or message.author.is_bot or len(matches) <= 1:
            return matches
        named = [m for m in matches if m.reason in NAMING_REASONS or self._names(message, m)]
        if named:
            return named
        by_id = {m.persona_id: m for m in matches}
        last = await self._store.read(
            lambda log: read_dm_persona(log, message.platform, message.channel_id))
        for choice in (last, self._default):
            if choice is not None and choice in by_id:
                return [by_id[choice]]
        return [min(matches, key=self._name_order)]

    def _names(self, message: InboundMessage, match: TriggerMatch) -> bool:
        persona = self._personas.get(match.persona_id)
        return persona is not None and self._triggers.names(message, persona)

    def _name_order(self, match: TriggerMatch) -> tuple[str, str]:
        persona = self._personas.get(match.persona_id)
        return ((persona.name if persona else match.persona_id).casefold(), match.persona_id)
