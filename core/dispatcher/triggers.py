"""Which personas a message triggers, and in which order they answer.

A person's message triggers a persona by explicit invocation, a mention, a reply
to one of the persona's messages, a DM, a keyword or regex, or a channel where the
persona answers everything. Bots (and webhooks, the framework's own included)
never trigger anything, except a persona's message to the personas that list it in
``triggers.from_personas``; the hop limit is checked by the dispatcher.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..personas.model import Persona
from .messages import InboundMessage

REASON_ORDER = ("invoked", "mention", "reply", "dm", "keyword", "pattern", "channel")
"""Reasons from strongest to weakest: personas answer in this order (then by id)."""


@dataclass(frozen=True, slots=True)
class TriggerMatch:
    """One persona a message triggers, why, and its persona-to-persona hop count."""

    persona_id: str
    reason: str
    hop: int = 0


class TriggerEvaluator:
    """Evaluates triggers; keeps the compiled keyword and mention patterns it builds."""

    def __init__(self) -> None:
        self._keyword_patterns: dict[tuple[tuple[str, ...], bool], re.Pattern[str] | None] = {}
        self._mention_patterns: dict[tuple[str, str], re.Pattern[str]] = {}

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
        if message.invoked_persona is not None:
            return "invoked" if message.invoked_persona == persona.id else None
        if triggers.mention and (
            persona.id in message.mentions or self._mentions_by_name(message.text, persona)
        ):
            return "mention"
        if triggers.reply and replied_persona == persona.id:
            return "reply"
        if triggers.dm and message.is_dm and not from_persona:
            return "dm"
        if triggers.keywords and self._keywords(triggers.keywords, triggers.case_sensitive,
                                                message.text):
            return "keyword"
        if any(pattern.search(message.text) for pattern in triggers.patterns):
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
        if persona.id in message.mentions or self._mentions_by_name(message.text, persona):
            return True
        triggers = persona.triggers
        words = (*triggers.keywords, persona.id, persona.name)
        return self._keywords(tuple(w for w in words if w), False, message.text)

    def _keywords(self, keywords: tuple[str, ...], case_sensitive: bool, text: str) -> bool:
        key = (keywords, case_sensitive)
        if key not in self._keyword_patterns:
            alternatives = "|".join(re.escape(k) for k in keywords if k)
            self._keyword_patterns[key] = re.compile(
                # lookarounds rather than \b: keywords may start or end with punctuation
                rf"(?<!\w)(?:{alternatives})(?!\w)", 0 if case_sensitive else re.IGNORECASE
            ) if alternatives else None
        pattern = self._keyword_patterns[key]
        return pattern is not None and pattern.search(text) is not None

    def _mentions_by_name(self, text: str, persona: Persona) -> bool:
        if "@" not in text:
            return False
        key = (persona.id, persona.name)
        if key not in self._mention_patterns:
            names = "|".join(re.escape(n) for n in {persona.id, persona.name} if n)
            self._mention_patterns[key] = re.compile(rf"@(?:{names})(?!\w)", re.IGNORECASE)
        return self._mention_patterns[key].search(text) is not None
