"""A reply's tool rounds in the log: recording them as the loop runs, reading them back.

Each round's calls are one atomic append of ToolCalled events (so a round is never
half recorded), its results one of ToolResult events, in the conversation's stream,
with ids that derive from the reply's (``tool:<platform>:<message>:<persona>:...``).
Reading them back gives the loop's :class:`~core.tools.loop.StepCall` values: to
resume a loop a restart cut short, to rebuild its prompts (``explain``), and to
replay its results (``rerun``).
"""

from __future__ import annotations

from collections.abc import Sequence

from eventstore import LogReader

from ..context.history import ConversationHistory
from ..events import PersonaTriggered, ToolCalled, ToolResult, from_recorded
from ..events.ids import (
    tool_called_event_id,
    tool_prefix,
    tool_result_event_id,
    trigger_event_id,
)
from ..gateway.model import ToolCall, Usage
from ..tools.loop import StepCall
from ..tools.toolbox import ToolOutcome
from .recording import record

INTERRUPTED = ("error: the bot restarted while this tool ran; it was not run again (it may "
               "have done its work)")


class StepRecorder:
    """Records the rounds of one reply's tool loop (a :class:`~core.tools.loop.LoopHooks`)."""

    def __init__(self, history: ConversationHistory, stream_id: str,
                 trigger: PersonaTriggered) -> None:
        self._history = history
        self._stream_id = stream_id
        self._trigger = trigger

    async def called(self, calls: Sequence[StepCall]) -> None:
        """One ToolCalled per call, in one append."""
        t = self._trigger
        cause = trigger_event_id(t.platform, t.message_id, t.persona_id)
        await record(self._history, self._stream_id, [
            tool_called(t, item).new_event(
                tool_called_event_id(t.platform, t.message_id, t.persona_id, item.step,
                                     item.index), causation_id=cause)
            for item in calls])

    async def finished(self, calls: Sequence[StepCall]) -> None:
        """One ToolResult per call, in one append."""
        t = self._trigger
        await record(self._history, self._stream_id, [
            tool_result(t, item, item.result or ToolOutcome(ok=False, content=INTERRUPTED,
                                                            error="interrupted")).new_event(
                tool_result_event_id(t.platform, t.message_id, t.persona_id, item.step,
                                     item.index),
                causation_id=tool_called_event_id(t.platform, t.message_id, t.persona_id,
                                                  item.step, item.index))
            for item in calls])


def tool_called(trigger: PersonaTriggered, item: StepCall) -> ToolCalled:
    """The ToolCalled of ``item`` (the round's model call told on its first call only)."""
    first = item.index == 0
    usage = item.usage
    return ToolCalled(
        platform=trigger.platform, message_id=trigger.message_id, persona_id=trigger.persona_id,
        step=item.step, index=item.index, call_id=item.call.id, tool=item.call.name,
        arguments=item.call.arguments, calls=item.calls, text=item.text if first else "",
        reasoning=item.reasoning if first else "", provider=item.provider, model=item.model,
        usage=({"prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens, "estimated": usage.estimated}
               if first else {}),
        latency_s=item.latency_s if first else 0.0, author_id=trigger.author_id)


def tool_result(trigger: PersonaTriggered, item: StepCall, outcome: ToolOutcome) -> ToolResult:
    """The ToolResult of ``item``."""
    return ToolResult(
        platform=trigger.platform, message_id=trigger.message_id, persona_id=trigger.persona_id,
        step=item.step, index=item.index, call_id=item.call.id, tool=item.call.name,
        ok=outcome.ok, content=outcome.content, duration_s=outcome.duration_s,
        error=outcome.error, author_id=trigger.author_id)


def read_steps(log: LogReader, platform: str, message_id: str, persona_id: str
               ) -> tuple[StepCall, ...]:
    """The recorded rounds of one reply, with their results (None: the result was never
    recorded). Runs on a reader."""
    calls: dict[tuple[int, int], ToolCalled] = {}
    results: dict[tuple[int, int], ToolResult] = {}
    for recorded in log.with_id_prefix(tool_prefix(platform, message_id, persona_id)):
        event = from_recorded(recorded)
        if isinstance(event, ToolCalled):
            calls[(event.step, event.index)] = event
        elif isinstance(event, ToolResult):
            results[(event.step, event.index)] = event
    firsts = {step: called for (step, index), called in calls.items() if index == 0}
    steps = []
    for key in sorted(calls):
        called = calls[key]
        first = firsts.get(called.step, called)
        result = results.get(key)
        usage = first.usage or {}
        steps.append(StepCall(
            step=called.step, index=called.index, calls=first.calls,
            call=ToolCall(id=called.call_id, name=called.tool, arguments=called.arguments),
            text=first.text, reasoning=first.reasoning, provider=first.provider,
            model=first.model,
            usage=Usage(prompt_tokens=int(usage.get("prompt_tokens", 0)),
                        completion_tokens=int(usage.get("completion_tokens", 0)),
                        total_tokens=int(usage.get("total_tokens", 0)),
                        estimated=bool(usage.get("estimated", False))),
            latency_s=first.latency_s,
            result=None if result is None else ToolOutcome(
                ok=result.ok, content=result.content, error=result.error,
                duration_s=result.duration_s)))
    return tuple(steps)
