"""Which personas a message triggers, and in which order they answer.

A person's message triggers a persona by explicit invocation, a mention, a reply
to one of the persona's messages, a DM, a keyword or regex, or a channel where the
persona answers everything. Bots (and webhooks, the framework's own included)
never trigger anything, except a persona's message to the personas that list it in
``triggers.from_personas``; the hop limit is checked by the dispatcher.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..patterns import words_regex
from ..personas.model import Persona
from .messages import InboundMessage

REASON_ORDER = ("invoked", "mention", "reply", "dm", "keyword", "pattern", "channel")
"""Reasons from strongest to weakest: personas answer in this order (then by id)."""

SCANNED_CHARS = 4_096
"""How much of a message keywords, patterns and @names are looked for in: all of any
Discord message (at most 4,000 characters), a bound on what one costs."""


@dataclass(frozen=True, slots=True)
class TriggerMatch:
    """One persona a message triggers, why, and its persona-to-persona hop count."""

    persona_id: str
    reason: str
    hop: int = 0


class TriggerEvaluator:
    """Evaluates triggers. Every pattern runs on RE2 (linear time) over at most the first
    :data:`SCANNED_CHARS` characters of a message."""

    def evaluate(
        self,
        message: InboundMessage,
        personas: Iterable[Persona],
        *,
        replied_persona: str | None = None,
        from_persona: str | None = None,
        hop: int = 0,
    ) -> tuple[TriggerMatch, ...]:
        """The personas ``message`` triggers, strongest reason first.

        ``replied_persona`` is the persona whose message ``message`` replies to;
        ``from_persona`` is the persona that wrote ``message`` (with the ``hop`` of
        that persona's own trigger), None for people and other bots.
        """
        if message.author.is_bot and from_persona is None:
            return ()
        matches = []
        for persona in personas:
            if from_persona is not None and (
                persona.id == from_persona or from_persona not in persona.triggers.from_personas
            ):
                continue
            reason = self._reason(message, persona, replied_persona, from_persona is not None)
            if reason is not None:
                matches.append(TriggerMatch(
                    persona.id, reason, hop + 1 if from_persona is not None else 0
                ))
        matches.sort(key=lambda m: (REASON_ORDER.index(m.reason), m.persona_id))
        return tuple(matches)

    def _reason(
        self, message: InboundMessage, persona: Persona, replied_persona: str | None,
        from_persona: bool,
    ) -> str | None:
        triggers = persona.triggers
        text = message.text[:SCANNED_CHARS]
        if message.invoked_persona is not None:
            return "invoked" if message.invoked_persona == persona.id else None
        if triggers.mention and (
            persona.id in message.mentions or _mentions_by_name(text, persona)
        ):
            return "mention"
        if triggers.reply and replied_persona == persona.id:
            return "reply"
        if triggers.dm and message.is_dm and not from_persona:
            return "dm"
        keywords = words_regex(triggers.keywords, case_sensitive=triggers.case_sensitive)
        if keywords is not None and keywords.search(text):
            return "keyword"
        if any(pattern.search(text) for pattern in triggers.patterns):
            return "pattern"
        if triggers.channels and not message.is_dm and (
            message.channel_id in triggers.channels
            or (message.parent_channel_id or "") in triggers.channels
        ):
            return "channel"
        return None

    def names(self, message: InboundMessage, persona: Persona) -> bool:
        """Whether ``message`` names ``persona``: mentions it, or writes its id, its name
        or one of its keywords as a word (how a person picks one persona among several)."""
        text = message.text[:SCANNED_CHARS]
        if persona.id in message.mentions or _mentions_by_name(text, persona):
            return True
        words = tuple(w for w in (*persona.triggers.keywords, persona.id, persona.name) if w)
        found = words_regex(words, case_sensitive=False)
        return found is not None and found.search(text) is not None

def _mentions_by_name(text: str, persona: Persona) -> bool:
    if "@" not in text:
        return False
    names = words_regex((persona.id, persona.name), prefix="@")
    return names is not None and names.search(text) is not None
