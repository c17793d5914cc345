"""``rerun``: ask the model again what a recorded call asked, with today's persona.

The events the recorded prompt was built from (its ``context_positions``) and the
variables its texts were rendered with are reused; the persona is the one given (a
file, the current directory's version, or the recorded one). The call goes to the
provider it was recorded with (the terminal's offline stand-in, a fallback...) unless
another is named. The new reply is recorded as a ``RerunRecorded`` event in
the stream ``rerun:<platform>:<message id>``: never in the conversation, never
delivered, and of a type no projection counts (quotas and open replies ignore it).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from eventstore import Log, LogReader, NewEvent

from ..context.builder import build_context
from ..context.history import context_events
from ..context.rebuild import RebuildError, RebuiltPrompt, rebuild_prompt, target_of, trigger_of
from ..dispatcher.requests import model_request
from ..events import ModelFailed, ModelReplied, RerunRecorded, from_recorded
from ..events.ids import reply_prefix, rerun_event_id, rerun_stream
from ..gateway.model import ChatMessage, ModelClient, ModelOutcome
from ..personas.model import Persona
from .calls import EveryProvider, MessageRef, find_message


@dataclass(frozen=True, slots=True, kw_only=True)
class RerunPlan:
    """A recorded call and the prompt it would get now."""

    ref: MessageRef
    source_event_id: str
    old_text: str | None
    old_prompt: RebuiltPrompt
    persona: Persona
    messages: tuple[ChatMessage, ...]
    provider: str | None
    """Where the call goes instead of the persona's own provider (None: the persona's)."""
    model: str | None = None
    """The model asked there instead of the persona's (the recorded call's)."""

    def prompt_diff(self) -> list[str]:
        """A unified diff of the recorded prompt and the new one."""
        return list(difflib.unified_diff(
            _prompt_lines(self.old_prompt.messages), _prompt_lines(self.messages),
            fromfile=f"recorded ({self.old_prompt.persona.version[:12]})",
            tofile=f"now ({self.persona.version[:12]})", lineterm=""))


def plan_rerun(log: LogReader, asked: str, persona: Persona | None = None, *,
               persona_id: str | None = None, provider: str | None = None,
               known_providers: Collection[str] = EveryProvider()) -> RerunPlan:
    """The rerun of the call behind ``asked`` (a message or reply id): ``persona``
    replaces the recorded version when given. Raises RebuildError when the log cannot
    say what was sent."""
    ref = find_message(log, asked)
    wanted = persona_id or ref.persona_id or (persona.id if persona else None)
    recorded = next((e for e in log.with_id_prefix(reply_prefix(ref.platform, ref.message_id))
                     if wanted is None or from_recorded(e).persona_id == wanted),  # type: ignore[attr-defined]
                    None)
    if recorded is None:
        who = f" by {wanted}" if wanted else ""
        raise RebuildError(f"message {ref.message_id} has no recorded model call{who} to rerun")
    old = rebuild_prompt(log, recorded.event_id, known_providers)
    outcome = from_recorded(recorded)
    assert isinstance(outcome, ModelReplied | ModelFailed)
    trigger = trigger_of(log, outcome)
    if trigger is None:
        raise RebuildError(f"the trigger of {recorded.event_id} is not in the log")
    chosen = persona or old.persona
    built = build_context(chosen, context_events(log.read_positions(old.positions)),
                          target_of(trigger), dict(outcome.variables))
    old_text = outcome.text if isinstance(outcome, ModelReplied) else None
    model = None
    if provider is None and outcome.provider and outcome.provider != chosen.model.provider:
        provider, model = outcome.provider, outcome.model or None  # as it was recorded
    return RerunPlan(ref=ref, source_event_id=recorded.event_id, old_text=old_text,
                     old_prompt=old, persona=chosen, messages=built.messages, provider=provider,
                     model=model)


async def run_rerun(plan: RerunPlan, model: ModelClient) -> ModelOutcome:
    """Send the planned prompt to the model (no streaming: nobody is watching it type)."""
    request = replace(model_request(plan.persona, plan.messages, plan.provider), stream=False)
    if plan.model:
        request = replace(request, model=plan.model)
    return await model.complete(request)


def rerun_event(plan: RerunPlan, outcome: ModelOutcome) -> NewEvent:
    """The event recording a rerun's result (with the prompt, so it can be inspected)."""
    usage = outcome.usage
    return RerunRecorded(
        platform=plan.ref.platform, message_id=plan.ref.message_id,
        source_event_id=plan.source_event_id, persona_id=plan.persona.id,
        persona_version=plan.persona.version, recorded_version=plan.old_prompt.persona.version,
        persona_path=str(plan.persona.source_path) if plan.persona.source_path else None,
        provider=outcome.provider, model=outcome.model, ok=outcome.ok, text=outcome.text,
        error_class=outcome.error_class, error=outcome.error,
        usage={"prompt_tokens": usage.prompt_tokens,
               "completion_tokens": usage.completion_tokens,
               "total_tokens": usage.total_tokens, "estimated": usage.estimated},
        latency_s=round(outcome.latency_s, 6), attempts=outcome.attempts,
        prompt=tuple(m.to_openai() for m in plan.messages),
    ).new_event(rerun_event_id(), causation_id=plan.source_event_id)


def record_rerun(log: Log, plan: RerunPlan, outcome: ModelOutcome) -> int:
    """Append the rerun to its own stream; returns its position."""
    result = log.append(rerun_stream(plan.ref.platform, plan.ref.message_id),
                        [rerun_event(plan, outcome)])
    return result.positions[0]


def _prompt_lines(messages: Sequence[ChatMessage]) -> list[str]:
    lines: list[str] = []
    for message in messages:
        name = f" ({message.name})" if message.name else ""
        lines.append(f"[{message.role}{name}]")
        lines.extend(message.content.splitlines() or [""])
    return lines
