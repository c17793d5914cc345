"""The moderation step of a reply: the person's message before the model (``in``), the
persona's reply before delivery (``out``).

Each check is recorded as one ModerationChecked event (id
``moderation:<platform>:<message>:<persona>:<in|out>``) before anything is done about
it; a check already recorded (a reply re-run or re-delivered after a crash) is read
back, not asked again, so a reply is judged once. What the decision does is the
pipeline's: a refusal closes the reply with a short notice; a warning goes before the
delivered text; an alert goes to the moderators' channel through the platform's sink.
A message from someone holding a bypass role is recorded as bypassed, unchecked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from eventstore import EventStore

from ..context.history import ConversationHistory
from ..events import (
    ModerationAction,
    ModerationChecked,
    ModerationDirection,
    ModerationVerdict,
    PersonaTriggered,
    from_recorded,
)
from ..events.ids import moderation_event_id, trigger_event_id
from ..moderation.moderator import Moderator
from ..moderation.policy import judge, policy_for
from ..personas.model import Persona
from .messages import ModerationAlert, ReplyTarget
from .recording import record
from .sink import ReplySink

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Checked:
    """A recorded moderation decision, with what it means for the reply."""

    event: ModerationChecked
    fresh: bool = False
    """Decided now (not read back from an earlier run): only a fresh decision alerts."""

    @property
    def refuses(self) -> bool:
        """The reply does not happen."""
        return ModerationAction.REFUSE in self.event.actions

    @property
    def warns(self) -> bool:
        """The reply goes out with a warning."""
        return ModerationAction.WARN in self.event.actions

    @property
    def alerts(self) -> bool:
        """The moderators hear of it."""
        return ModerationAction.ALERT in self.event.actions


class ModerationStep:
    """Checks, records and alerts for the reply pipeline (see the module docstring)."""

    def __init__(self, *, moderator: Moderator, store: EventStore, history: ConversationHistory,
                 sinks: Mapping[str, ReplySink]) -> None:
        self._moderator = moderator
        self._settings = moderator.settings
        self._store = store
        self._history = history
        self._sinks = sinks

    def active(self, persona: Persona, direction: ModerationDirection) -> bool:
        """Whether ``persona``'s texts going ``direction`` are checked."""
        return policy_for(self._settings, persona, direction) is not None

    @property
    def inbound_notice(self) -> str:
        """What someone whose message is refused is told."""
        return self._settings.inbound_notice

    @property
    def outbound_notice(self) -> str:
        """What someone is told when the reply to them is refused."""
        return self._settings.outbound_notice

    async def check(self, trigger: PersonaTriggered, stream_id: str, persona: Persona,
                    direction: ModerationDirection, text: str) -> Checked | None:
        """The decision about ``text`` (recorded now, or read back if it was already);
        None when moderation is off for this persona and direction."""
        policy = policy_for(self._settings, persona, direction)
        if policy is None:
            return None
        event_id = moderation_event_id(trigger.platform, trigger.message_id, persona.id,
                                       direction.value)
        recorded = await self._store.get(event_id)
        if recorded is not None:
            event = from_recorded(recorded)
            assert isinstance(event, ModerationChecked)
            return Checked(event=event)
        if direction == ModerationDirection.IN and trigger.moderation_bypass:
            event = ModerationChecked(
                platform=trigger.platform, message_id=trigger.message_id,
                persona_id=persona.id, direction=direction.value,
                verdict=ModerationVerdict.PASS.value, bypassed="role")
        else:
            scores = await self._moderator.score(text)
            judgement = judge(policy, scores.scores, failed=scores.error is not None)
            event = ModerationChecked(
                platform=trigger.platform, message_id=trigger.message_id,
                persona_id=persona.id, direction=direction.value,
                verdict=judgement.verdict.value, actions=judgement.actions,
                scores={k: round(v, 6) for k, v in scores.scores.items()},
                thresholds=judgement.thresholds, matched=judgement.matched,
                sources=scores.sources, error=scores.error,
                failed_closed=judgement.failed_closed, latency_s=scores.latency_s)
        result = await record(self._history, stream_id, event.new_event(
            event_id, causation_id=trigger_event_id(trigger.platform, trigger.message_id,
                                                    persona.id)))
        if result.duplicates:  # recorded meanwhile: that decision is the one
            again = await self._store.get(event_id)
            if again is not None:
                typed_again = from_recorded(again)
                assert isinstance(typed_again, ModerationChecked)
                return Checked(event=typed_again)
        return Checked(event=event, fresh=True)

    async def recorded(self, trigger: PersonaTriggered, persona: Persona,
                       direction: ModerationDirection) -> Checked | None:
        """The decision recorded about ``trigger`` in ``direction``, if any."""
        recorded = await self._store.get(moderation_event_id(
            trigger.platform, trigger.message_id, persona.id, direction.value))
        if recorded is None:
            return None
        event = from_recorded(recorded)
        assert isinstance(event, ModerationChecked)
        return Checked(event=event)

    def warning(self, *checks: Checked | None) -> str:
        """The warning line for a reply delivered with a warning ("" for none)."""
        flagged = [c for c in checks if c is not None and c.warns]
        if not flagged:
            return ""
        categories = sorted({m for c in flagged for m in c.event.matched}) or ["unavailable"]
        return self._settings.warning.replace("{categories}", ", ".join(categories))

    async def alert(self, target: ReplyTarget, persona: Persona, checked: Checked | None,
                    linked_message_id: str) -> None:
        """Tell the moderators' channel about ``checked`` if its actions say so (a
        failing sink is logged, never raised)."""
        channel = self._settings.alert_channel
        if checked is None or not checked.fresh or not checked.alerts or channel is None:
            return
        sink = self._sinks.get(target.platform)
        if sink is None:
            return
        event = checked.event
        alert = ModerationAlert(target=target, channel_id=channel,
                                linked_message_id=linked_message_id, persona_id=persona.id,
                                summary=alert_summary(persona.name, event))
        try:
            await sink.alert(alert)
        except Exception:
            log.exception("the %s adapter failed to post a moderation alert", target.platform)


def alert_summary(persona_name: str, event: ModerationChecked) -> str:
    """One line for moderators: what was found, where, and what was done (no content)."""
    what = "a message to" if event.direction == ModerationDirection.IN else "a reply by"
    verdict = {"block": "Blocked", "flag": "Flagged", "pass": "Passed"}[event.verdict]
    found = ", ".join(f"{c} {event.scores.get(c, 0.0):.2f}" for c in event.matched)
    if event.failed_closed:
        found = f"the moderation provider failed ({event.error}); fail: closed"
    actions = ", ".join(event.actions) or "log"
    return f"Moderation: {verdict} {what} {persona_name}: {found or 'no category'} ({actions})."
