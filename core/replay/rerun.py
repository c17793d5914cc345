"""``rerun``: ask the model again what a recorded call asked, with today's persona.

The events the recorded prompt was built from (its ``context_positions``) and the
variables its texts were rendered with are reused; the persona is the one given (a
file, the current directory's version, or the recorded one). The call goes to the
provider it was recorded with (the terminal's offline stand-in, a fallback...) unless
another is named. The new reply is recorded as a ``RerunRecorded`` event in
the stream ``rerun:<platform>:<message id>``: never in the conversation, never
delivered, and of a type no projection counts (quotas and open replies ignore it).

A persona with tools runs its tool loop again; the tools' results are the recorded
ones (a call the recorded reply did not make, or made with other arguments, gets an
error saying so), so a rerun is deterministic and has no side effects, unless the
tools are called live (``--live-tools``). Attachments come from their stored content:
a rerun sends the bytes the model was first sent, even after the links expired.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace

from eventstore import Log, LogReader, NewEvent

from ..context.builder import build_context
from ..context.history import context_events
from ..context.rebuild import RebuildError, RebuiltPrompt, rebuild_prompt, target_of, trigger_of
from ..credentials import Secrets
from ..dispatcher.requests import model_request
from ..dispatcher.toolsteps import read_steps
from ..events import ModelFailed, ModelReplied, RerunRecorded, from_recorded
from ..events.ids import reply_prefix, rerun_event_id, rerun_stream
from ..gateway.model import ChatMessage, ModelClient, ModelOutcome
from ..personas.model import Persona
from ..tools.loop import StepCall, run_tool_loop
from ..tools.toolbox import Toolbox, ToolOutcome
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
    recorded_steps: tuple[StepCall, ...] = ()
    author_id: str = ""
    """Whose message the recorded call answered (the rerun quotes them too)."""

    def prompt_diff(self) -> list[str]:
        """A unified diff of the recorded prompt and the new one."""
        return list(difflib.unified_diff(
            prompt_lines(self.old_prompt.messages), prompt_lines(self.messages),
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
    steps = read_steps(log, outcome.platform, outcome.message_id, outcome.persona_id)
    model = None
    if provider is None and outcome.provider and outcome.provider != chosen.model.provider:
        provider, model = outcome.provider, outcome.model or None  # as it was recorded
    return RerunPlan(ref=ref, source_event_id=recorded.event_id, old_text=old_text,
                     old_prompt=old, persona=chosen, messages=built.messages, provider=provider,
                     model=model, recorded_steps=steps, author_id=trigger.author_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class RerunResult:
    """What a rerun got: the outcome, the last prompt sent, and its tool rounds (each
    result recorded or live)."""

    outcome: ModelOutcome
    messages: tuple[ChatMessage, ...]
    steps: tuple[StepCall, ...] = ()
    live_tools: bool = False

    @property
    def ok(self) -> bool:
        """Whether the model answered."""
        return self.outcome.ok


async def run_rerun(plan: RerunPlan, model: ModelClient, *,
                    live_tools: Toolbox | None = None) -> RerunResult:
    """Send the planned prompt to the model (no streaming: nobody is watching it type);
    a persona with tools runs its loop, with the recorded results unless ``live_tools``
    is given to call them."""
    toolbox = live_tools or Toolbox(Secrets({}))
    tools = toolbox.definitions(plan.persona)
    request = replace(model_request(plan.persona, plan.messages, plan.provider, tools=tools),
                      stream=False)
    if plan.model:
        request = replace(request, model=plan.model)
    if not tools:
        outcome = await model.complete(request)
        return RerunResult(outcome=outcome, messages=plan.messages)
    execute: Callable[[StepCall, float], Awaitable[ToolOutcome]]
    if live_tools is not None:
        async def live(item: StepCall, timeout_s: float) -> ToolOutcome:
            return await live_tools.run(plan.persona, item.call, timeout_s)
        execute = live
    else:
        execute = _replayer(plan.recorded_steps)
    loop = await run_tool_loop(model, request, execute=execute,
                               max_steps=plan.persona.tools.max_steps,
                               call_timeout_s=plan.persona.tools.call_timeout_s)
    return RerunResult(outcome=loop.outcome, messages=loop.messages, steps=loop.steps,
                       live_tools=live_tools is not None)


def _replayer(recorded: Sequence[StepCall]) -> Callable[[StepCall, float],
                                                       Awaitable[ToolOutcome]]:
    """Answers each call with the recorded result of the same call (same tool, same
    arguments: at the same place in the loop first, else anywhere not used yet)."""
    unused = [s for s in recorded if s.result is not None]

    def same(a: StepCall, b: StepCall) -> bool:
        return a.call.name == b.call.name and _arguments(a) == _arguments(b)

    async def execute(item: StepCall, timeout_s: float) -> ToolOutcome:
        match = next((s for s in unused if (s.step, s.index) == (item.step, item.index)
                      and same(s, item)), None) or next((s for s in unused if same(s, item)),
                                                        None)
        if match is None or match.result is None:
            return ToolOutcome(ok=False, error="not_recorded", content=(
                f"error: the recorded reply has no result for {item.call.name}"
                f"({item.call.arguments}); rerun with --live-tools to call it"))
        unused.remove(match)
        return match.result

    return execute


def _arguments(item: StepCall) -> object:
    try:
        return json.loads(item.call.arguments or "{}")
    except ValueError:
        return item.call.arguments


def rerun_event(plan: RerunPlan, result: RerunResult) -> NewEvent:
    """The event recording a rerun's result (with the last prompt and the tool rounds, so
    it can be inspected)."""
    outcome = result.outcome
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
        prompt=tuple(m.to_openai() for m in result.messages),
        tool_steps=tuple({"step": s.step, "tool": s.call.name, "arguments": s.call.arguments,
                          "ok": bool(s.result and s.result.ok),
                          "result": s.result.content if s.result else "",
                          "live": result.live_tools} for s in result.steps),
        author_id=plan.author_id,
    ).new_event(rerun_event_id(), causation_id=plan.source_event_id)


def record_rerun(log: Log, plan: RerunPlan, result: RerunResult) -> int:
    """Append the rerun to its own stream; returns its position."""
    appended = log.append(rerun_stream(plan.ref.platform, plan.ref.message_id),
                          [rerun_event(plan, result)])
    return appended.positions[0]


def prompt_lines(messages: Sequence[ChatMessage]) -> list[str]:
    """A prompt as lines for people: roles, text, attachments named, tool calls."""
    lines: list[str] = []
    for message in messages:
        name = f" ({message.name})" if message.name else ""
        answers = f" answering {message.tool_call_id}" if message.tool_call_id else ""
        lines.append(f"[{message.role}{name}{answers}]")
        lines.extend(message.text.splitlines() or [""])
        for image in message.images:
            size = f", {image.width}x{image.height}" if image.width and image.height else ""
            lines.append(f"[image {image.filename or '(unnamed)'} ({image.media_type}{size}, "
                         f"{len(image.data) * 3 // 4} bytes, sha256 {image.sha256[:12]})]")
        lines.extend(f"[calls {c.name}({c.arguments}) as {c.id}]" for c in message.tool_calls)
    return lines

