"""``explain``: everything the log knows about one message and the replies to it.

For each persona the message triggered: the decision (and the rule that stopped it,
if one did), the greeting it opened the conversation with (if it did), the exact
prompt rebuilt from the persona version and the event positions recorded with the
call (attachments as the parts the model was sent, from their stored content), which
lorebook entries were inserted, which matched but were cut by the budget or blocked,
and why, the tools offered and every tool round (calls, results, durations, errors:
the last prompt holds them as the model saw them), the model parameters, attempts,
usage, latency, the reasoning, the reply and where it was delivered, and what the
moderation step decided on the way in and out (and why it refused, if it did). A
message no persona took up says why.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from eventstore import LogReader, RecordedEvent

from ..context.rebuild import RebuildError, RebuiltPrompt, rebuild_prompt
from ..credentials import Secrets
from ..dispatcher.requests import sampling_params
from ..dispatcher.toolsteps import read_steps
from ..events import (
    MessageReceived,
    ModelFailed,
    ModerationAction,
    ModerationDirection,
    PersonaGreeted,
    ReplyFailed,
    TriggerRejected,
    from_recorded,
)
from ..events.ids import (
    delivered_event_id,
    greeting_event_id,
    message_event_id,
    moderation_event_id,
    reply_event_id,
    trigger_prefix,
)
from ..events.moderation import MODERATION_ERROR_CLASS
from ..gateway.model import ChatMessage, ImageMode, ToolDefinition
from ..problems import ProblemsError
from ..tools.loop import StepCall, step_messages
from ..tools.toolbox import Toolbox
from .calls import EveryProvider, MessageRef, find_message
from .timeline import moderation_sentence


@dataclass(frozen=True, slots=True, kw_only=True)
class CallExplanation:
    """One persona's part in answering the message."""

    persona_id: str
    decision: RecordedEvent
    outcome: RecordedEvent | None
    delivery: RecordedEvent | None
    prompt: RebuiltPrompt | None
    prompt_problem: str | None
    steps: tuple[StepCall, ...] = ()
    tools: tuple[ToolDefinition, ...] = ()
    greeting: RecordedEvent | None = None
    """The PersonaGreeted that opened the conversation (posted before this reply, or
    earlier, when the prompt still holds it)."""
    moderation: tuple[RecordedEvent, ...] = ()
    """The ModerationChecked decisions of this reply: on the way in, then out."""

    @property
    def refused_before_model(self) -> bool:
        """Whether moderation refused the message, so no prompt was built, no model asked."""
        return self.outcome is not None and _refused_by_moderation(self.outcome)

    @property
    def moderated(self) -> tuple[str, ...]:
        """One sentence per moderation decision."""
        return tuple(moderation_sentence(e.data) for e in self.moderation)

    @property
    def messages(self) -> tuple[ChatMessage, ...]:
        """The last prompt of the call: the context, then every tool round."""
        if self.prompt is None:
            return ()
        return (*self.prompt.messages, *step_messages(self.steps))

    @property
    def stopped_by(self) -> str | None:
        """The rule or failure that kept this persona's reply from the user, or None."""
        decision = from_recorded(self.decision)
        if isinstance(decision, TriggerRejected):
            detail = f" ({decision.detail})" if decision.detail else ""
            return f"refused: {decision.reason}{detail}"
        refused = next((e for e in self.moderation
                        if ModerationAction.REFUSE in (e.data.get("actions") or ())), None)
        if refused is not None:
            return f"refused by {moderation_sentence(refused.data)}"
        if self.outcome is None:
            return "no model outcome recorded yet (still running, or the bot stopped)"
        outcome = from_recorded(self.outcome)
        if isinstance(outcome, ModelFailed):
            return f"model call failed: {outcome.error_class}: {outcome.error}"
        if self.delivery is None:
            return "replied, but no delivery recorded yet"
        delivery = from_recorded(self.delivery)
        if isinstance(delivery, ReplyFailed):
            return f"delivery failed: {delivery.error}"
        return None

    @property
    def params(self) -> dict[str, Any]:
        """The sampling parameters sent (from the recorded persona version)."""
        return sampling_params(self.prompt.persona) if self.prompt else {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Explanation:
    """What happened to one message (``ref``), persona by persona."""

    ref: MessageRef
    message: RecordedEvent | None
    calls: tuple[CallExplanation, ...]

    @property
    def unanswered_because(self) -> str | None:
        """Why no persona took the message up at all (None when one did)."""
        if self.calls:
            return None
        message = from_recorded(self.message) if self.message else None
        if isinstance(message, MessageReceived) and message.from_persona:
            return f"it is the platform's echo of {message.from_persona}'s own reply"
        if isinstance(message, MessageReceived) and message.author_is_bot:
            return "its author is a bot, and no persona accepts replies from it"
        return ("no persona's trigger matched it (no mention, reply, DM, keyword, pattern "
                "or answer-everything channel), or the bot was not accepting messages")


def explain(log: LogReader, asked: str,
            known_providers: Collection[str] = EveryProvider()) -> Explanation:
    """Explain the message ``asked`` names (raises CallNotFound when there is none)."""
    ref = find_message(log, asked)
    message = log.get(message_event_id(ref.platform, ref.message_id))
    calls = []
    for decision in log.with_id_prefix(trigger_prefix(ref.platform, ref.message_id)):
        persona_id = from_recorded(decision).persona_id  # type: ignore[attr-defined]
        outcome_id = reply_event_id(ref.platform, ref.message_id, persona_id)
        outcome = log.get(outcome_id)
        prompt, problem = None, None
        tools: tuple[ToolDefinition, ...] = ()
        if outcome is not None and not _refused_by_moderation(outcome):
            try:
                prompt = rebuild_prompt(log, outcome_id, known_providers)
                tools = Toolbox(Secrets({})).definitions(prompt.persona)
            except (RebuildError, ProblemsError) as exc:
                problem = str(exc)
        delivery = log.get(delivered_event_id(ref.platform, ref.message_id, persona_id))
        greeting = log.get(greeting_event_id(ref.platform, ref.message_id, persona_id)) or (
            _greeting_in(log, prompt, persona_id) if prompt is not None else None)
        moderation = tuple(found for direction in ModerationDirection if (
            found := log.get(moderation_event_id(ref.platform, ref.message_id, persona_id,
                                                 direction.value))) is not None)
        calls.append(CallExplanation(
            persona_id=persona_id, decision=decision, outcome=outcome, delivery=delivery,
            prompt=prompt, prompt_problem=problem, tools=tools,
            steps=read_steps(log, ref.platform, ref.message_id, persona_id),
            greeting=greeting, moderation=moderation))
    if ref.persona_id:  # the user asked about one reply: its persona first
        calls.sort(key=lambda c: c.persona_id != ref.persona_id)
    return Explanation(ref=ref, message=message, calls=tuple(calls))


def _refused_by_moderation(outcome: RecordedEvent) -> bool:
    """A reply closed before its prompt was built: moderation refused the message."""
    return (outcome.type == ModelFailed.type
            and outcome.data.get("error_class") == MODERATION_ERROR_CLASS)


def _greeting_in(log: LogReader, prompt: RebuiltPrompt, persona_id: str
                 ) -> RecordedEvent | None:
    """The greeting that opened the conversation, when the prompt holds it."""
    return next((e for e in log.read_positions(prompt.positions)
                 if e.type == PersonaGreeted.type and e.data.get("persona_id") == persona_id),
                None)


def explanation_as_json(explanation: Explanation,
                        image_modes: Mapping[str, ImageMode] | None = None) -> dict[str, Any]:
    """A JSON-ready form of ``explanation`` (``explain --json``); images are shown as each
    call's provider was sent them (``image_modes``, by provider: data URLs by default)."""
    ref = explanation.ref
    return {
        "platform": ref.platform, "message_id": ref.message_id, "asked_reply_id": ref.reply_id,
        "message": dict(explanation.message.data) if explanation.message else None,
        "unanswered_because": explanation.unanswered_because,
        "calls": [_call_json(c, image_modes or {}) for c in explanation.calls],
    }


def step_json(item: StepCall) -> dict[str, Any]:
    """One tool call and its result, JSON-ready."""
    result = item.result
    return {"step": item.step, "index": item.index, "id": item.call.id, "tool": item.call.name,
            "arguments": item.call.arguments, "text": item.text if item.index == 0 else "",
            "ok": result.ok if result else None,
            "result": result.content if result else None,
            "error": result.error if result else "no result recorded",
            "duration_s": result.duration_s if result else None}


def _call_json(call: CallExplanation, image_modes: Mapping[str, ImageMode]) -> dict[str, Any]:
    outcome = dict(call.outcome.data) if call.outcome else None
    if outcome is not None:
        outcome["type"] = call.outcome.type if call.outcome else None
    return {
        "persona_id": call.persona_id,
        "decision": {"type": call.decision.type, **call.decision.data},
        "outcome": outcome,
        "delivery": ({"type": call.delivery.type, **call.delivery.data}
                     if call.delivery else None),
        "stopped_by": call.stopped_by,
        "persona_version": call.prompt.persona.version if call.prompt else None,
        "params": call.params,
        "messages": ([m.to_openai(image_modes.get(str(outcome.get("provider")), "data_url")
                                  if outcome else "data_url") for m in call.messages]
                     if call.prompt else None),
        "prompt_positions": list(call.prompt.positions) if call.prompt else None,
        "prompt_problem": call.prompt_problem,
        "tools": [t.to_openai() for t in call.tools],
        "steps": [step_json(s) for s in call.steps],
        "greeting": dict(call.greeting.data) if call.greeting else None,
        "moderation": [dict(e.data) for e in call.moderation],
        "lore": ({"budget": call.prompt.lore.budget, "spent": call.prompt.lore.spent,
                  "entries": [{"index": o.index, "name": o.label, "status": o.status,
                               "reason": o.reason, "tokens": o.tokens, "step": o.step}
                              for o in call.prompt.lore.outcomes]} if call.prompt else None),
    }

