"""The tool loop of one reply: ask the model, run the tools it calls, give it the
results, ask again, until it answers in text; bounded in rounds, per call and in total.

- at most ``max_steps`` rounds of tool calls; the call after the last round lists the
  tools with ``tool_choice: none``, so the model must answer with what it has;
- each tool call within ``call_timeout_s`` (and what is left of the deadline), the
  calls of one round run together, at most :data:`MAX_CALLS_PER_STEP` of them;
- the whole loop within the request's ``deadline_s``: each model call gets what is left.

A failing tool is an error result the model reads, never a failed reply. The caller
records each round (``hooks``) and chooses how calls run (``execute``): live for a
reply, from the recorded results for a rerun. ``resume`` continues a loop a restart
cut short from its recorded rounds, without calling the model or the tools again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from ..gateway.model import (
    ChatMessage,
    ModelClient,
    ModelOutcome,
    ModelRequest,
    OnDelta,
    ToolCall,
    Usage,
)
from .toolbox import ToolOutcome

MAX_CALLS_PER_STEP = 8
STEP_SEPARATOR = "\n\n"
"""Between the visible texts of two model calls of one reply."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StepCall:
    """One tool call of a round and its result (None until it has one).

    The round's model call (its text, reasoning, usage, latency, how many calls it
    made) is told on every call of the round; recorders keep it once.
    """

    step: int
    index: int
    calls: int
    call: ToolCall
    text: str = ""
    reasoning: str = ""
    provider: str = ""
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    result: ToolOutcome | None = None


class LoopHooks(Protocol):
    """Told about each round, to record it."""

    async def called(self, calls: Sequence[StepCall]) -> None:
        """The model asked for ``calls`` (one round, before any runs)."""
        ...

    async def finished(self, calls: Sequence[StepCall]) -> None:
        """The round's calls have their results."""
        ...


Execute = Callable[[StepCall, float], Awaitable[ToolOutcome]]
"""Runs one call within the seconds given (never raises)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopResult:
    """How the loop ended: the last model call's ``outcome`` with ``text`` the visible
    text of every call, ``usage``, ``attempts`` and ``latency_s`` summed, and
    ``reasoning`` of every call joined; the final prompt; every round's calls."""

    outcome: ModelOutcome
    messages: tuple[ChatMessage, ...]
    steps: tuple[StepCall, ...]
    model_calls: int


def step_messages(steps: Sequence[StepCall]) -> list[ChatMessage]:
    """The prompt messages of recorded rounds: per round, the assistant message with its
    calls, then one tool message per call (in call order)."""
    messages: list[ChatMessage] = []
    for _, calls in _rounds(steps):
        messages.append(ChatMessage("assistant", calls[0].text,
                                    tool_calls=tuple(c.call for c in calls)))
        for item in calls:
            content = item.result.content if item.result is not None else \
                "error: no result was recorded for this call"
            messages.append(ChatMessage("tool", content, tool_call_id=item.call.id))
    return messages


def _rounds(steps: Sequence[StepCall]) -> list[tuple[int, list[StepCall]]]:
    rounds: dict[int, list[StepCall]] = {}
    for item in sorted(steps, key=lambda s: (s.step, s.index)):
        rounds.setdefault(item.step, []).append(item)
    return sorted(rounds.items())


async def run_tool_loop(model: ModelClient, request: ModelRequest, *, execute: Execute,
                        max_steps: int, call_timeout_s: float,
                        hooks: LoopHooks | None = None, resume: Sequence[StepCall] = (),
                        on_delta: OnDelta | None = None,
                        clock: Callable[[], float] = time.monotonic) -> LoopResult:
    """Run the loop (see the module docstring)."""
    started = clock()
    deadline = started + request.deadline_s
    steps = list(resume)
    messages = [*request.messages, *step_messages(steps)]
    rounds = _rounds(steps)
    step = rounds[-1][0] if rounds else 0
    texts = [calls[0].text for _, calls in rounds if calls[0].text]
    reasoning = [calls[0].reasoning for _, calls in rounds if calls[0].reasoning]
    totals = _Totals([calls[0].usage for _, calls in rounds])
    shown = {"any": bool(texts), "now": False}

    async def separated(text: str) -> None:
        if not shown["now"]:
            shown["now"] = True
            if shown["any"] and on_delta is not None:
                await on_delta(STEP_SEPARATOR)
        shown["any"] = True
        if on_delta is not None:
            await on_delta(text)

    calls_made = len(rounds)  # the resumed rounds' model calls were made before
    while True:
        last_round = step >= max_steps
        asked = replace(request, messages=tuple(messages),
                        deadline_s=max(deadline - clock(), 0.001),
                        tool_choice="none" if last_round and request.tools
                        else request.tool_choice)
        shown["now"] = False
        outcome = await model.complete(asked, separated)
        calls_made += 1
        totals.add(outcome)
        if outcome.reasoning:
            reasoning.append(outcome.reasoning)
        if not outcome.ok or not outcome.tool_calls or last_round or outcome.truncated:
            if outcome.text:
                texts.append(outcome.text)
            final = totals.applied(replace(outcome, text=STEP_SEPARATOR.join(texts),
                                           reasoning=STEP_SEPARATOR.join(reasoning)),
                                   clock() - started)
            if outcome.ok and not final.text and steps and last_round:
                final = replace(final, ok=False, error_class="tool_step_limit",
                                error=f"the model kept calling tools after {max_steps} "
                                      "round(s) and gave no answer")
            return LoopResult(outcome=final, messages=tuple(messages), steps=tuple(steps),
                              model_calls=calls_made)
        step += 1
        wanted = outcome.tool_calls
        calls = [StepCall(step=step, index=i, calls=len(wanted), call=call, text=outcome.text,
                          reasoning=outcome.reasoning, provider=outcome.provider,
                          model=outcome.model, usage=outcome.usage,
                          latency_s=round(outcome.latency_s, 6))
                 for i, call in enumerate(wanted)]
        if hooks is not None:
            await hooks.called(calls)
        timeout = min(call_timeout_s, max(deadline - clock(), 0.0))
        results = await asyncio.gather(*(
            execute(item, timeout) if item.index < MAX_CALLS_PER_STEP
            else _refuse(f"at most {MAX_CALLS_PER_STEP} tool calls per round")
            for item in calls))
        calls = [replace(item, result=result) for item, result in zip(calls, results,
                                                                       strict=True)]
        if hooks is not None:
            await hooks.finished(calls)
        steps += calls
        messages += step_messages(calls)
        if outcome.text:
            texts.append(outcome.text)


async def _refuse(sentence: str) -> ToolOutcome:
    return ToolOutcome(ok=False, content=f"error: {sentence}", error="too_many_calls")


class _Totals:
    """Usage, attempts and waits summed over a loop's model calls."""

    def __init__(self, earlier: Sequence[Usage]) -> None:
        self.prompt = sum(u.prompt_tokens for u in earlier)
        self.completion = sum(u.completion_tokens for u in earlier)
        self.estimated = any(u.estimated for u in earlier)
        self.attempts = 0
        self.waits: list[float] = []
        self.queued = 0.0

    def add(self, outcome: ModelOutcome) -> None:
        self.prompt += outcome.usage.prompt_tokens
        self.completion += outcome.usage.completion_tokens
        self.estimated = self.estimated or outcome.usage.estimated
        self.attempts += outcome.attempts
        self.waits += outcome.waits_s
        self.queued += outcome.queued_s

    def applied(self, outcome: ModelOutcome, elapsed: float) -> ModelOutcome:
        return replace(outcome, usage=Usage(
            prompt_tokens=self.prompt, completion_tokens=self.completion,
            total_tokens=self.prompt + self.completion, estimated=self.estimated),
            attempts=self.attempts, waits_s=tuple(self.waits), queued_s=self.queued,
            latency_s=elapsed)
