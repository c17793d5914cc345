"""The built-in ``offline`` provider: a deterministic stand-in, not a language model.

It needs no network and no key, so the first run, the console and tests work
anywhere. Every reply starts with ``[offline]`` and echoes the last user message
with a short digest of the whole prompt, so it is plain what was sent (and names
the images it was shown). It streams in a few pieces and reports estimated usage,
like a real provider would.

It exercises tools deterministically: offered ``roll`` and asked to roll (``roll
2d6``, "roll the dice"), it calls ``roll`` with the dice it was asked for; offered
``now`` and asked what time it is, it calls ``now``; given a tool's result, it says
what the tool answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from .backend import Offer, Piece, ToolCallDelta
from .model import ChatMessage, ToolCall, Usage
from .tokens import estimate_messages_tokens, estimate_tokens

OFFLINE_PROVIDER = "offline"
_PIECES = 4
_ROLL = re.compile(r"\b(?:roll|dice)\b", re.IGNORECASE)
_DICE = re.compile(r"\b(\d{0,3}d\d{1,4}(?:\s*[+-]\s*\d{1,4})?)\b", re.IGNORECASE)
_TIME = re.compile(r"\bwhat time\b|\btime is it\b", re.IGNORECASE)


def _digest(messages: Sequence[ChatMessage]) -> str:
    return hashlib.sha256("\x1e".join(
        f"{m.role}\x1f{m.name or ''}\x1f"
        + (m.content if isinstance(m.content, str)
           else json.dumps(m.to_openai()["content"], sort_keys=True))
        + "".join(f"\x1f{c.name}{c.arguments}" for c in m.tool_calls)
        for m in messages).encode()).hexdigest()[:8]


def offline_reply(messages: Sequence[ChatMessage]) -> str:
    """The offline provider's reply to ``messages``."""
    head = f"[offline] not a language model (prompt {_digest(messages)}, {len(messages)} messages)."
    if messages and messages[-1].role == "tool":
        called = {c.id: c.name for m in messages for c in m.tool_calls}
        results = []
        for message in reversed(messages):
            if message.role != "tool":
                break
            results.append(f"{called.get(message.tool_call_id or '', 'a tool')} said: "
                           f"{message.text.strip()}")
        return f"{head} {'; '.join(reversed(results))}"
    last = next((m for m in reversed(messages) if m.role == "user"), None)
    said = last.text.strip() if last is not None else ""
    images = [p.filename or "an image" for p in last.images] if last is not None else []
    shown = f" (and {len(images)} image(s): {', '.join(images)})" if images else ""
    return f"{head} You said: {said}{shown}"


def offline_tool_calls(messages: Sequence[ChatMessage], offer: Offer) -> tuple[ToolCall, ...]:
    """The tools the offline provider calls for ``messages`` (see the module docstring)."""
    spoken = [m for m in messages if m.role != "system"]  # post-history instructions follow
    if not offer.tools or offer.choice == "none" or not spoken or spoken[-1].role != "user":
        return ()
    offered = {tool.name for tool in offer.tools}
    text = spoken[-1].text
    if "roll" in offered and _ROLL.search(text):
        dice = _DICE.search(text)
        expression = re.sub(r"\s+", "", dice.group(1)) if dice else "1d6"
        return (ToolCall(id="call_offline_1", name="roll",
                         arguments=json.dumps({"expression": expression})),)
    if "now" in offered and _TIME.search(text):
        return (ToolCall(id="call_offline_1", name="now", arguments=json.dumps({})),)
    return ()


class OfflineBackend:
    """Answers with :func:`offline_reply`, in a few streamed pieces."""

    async def aclose(self) -> None:
        """Nothing to release."""

    async def pieces(self, model: str, messages: Sequence[ChatMessage],
                     params: Mapping[str, Any], *, stream: bool,
                     timeout_s: float, offer: Offer | None = None) -> AsyncGenerator[Piece, None]:
        """The reply, cut into a few pieces when streaming (a tool call's arguments too)."""
        calls = offline_tool_calls(messages, offer or Offer())
        if calls:
            usage = _usage(messages, "".join(c.name + c.arguments for c in calls))
            for index, call in enumerate(calls):
                half = len(call.arguments) // 2 if stream else len(call.arguments)
                yield Piece(tool_calls=(ToolCallDelta(index, call.id, call.name,
                                                      call.arguments[:half]),))
                if half < len(call.arguments):
                    await asyncio.sleep(0)
                    yield Piece(tool_calls=(ToolCallDelta(index, arguments=call.arguments[half:]),))
            yield Piece(usage=usage, finish_reason="tool_calls")
            return
        text = offline_reply(messages)
        usage = _usage(messages, text)
        if not stream:
            yield Piece(content=text, usage=usage, finish_reason="stop")
            return
        size = -(-len(text) // _PIECES)
        for start in range(0, len(text), size):
            yield Piece(content=text[start:start + size])
            await asyncio.sleep(0)  # let other tasks run, like a real stream would
        yield Piece(usage=usage, finish_reason="stop")


def _usage(messages: Sequence[ChatMessage], text: str) -> Usage:
    prompt = estimate_messages_tokens(messages)
    completion = estimate_tokens(text)
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 total_tokens=prompt + completion, estimated=True)
