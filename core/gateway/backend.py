"""The seam between the gateway's policy and one kind of model server.

A backend turns one attempt into a stream of :class:`Piece` values and raises
:class:`~core.gateway.failures.AttemptFailed` for anything that went wrong. It
knows nothing of retries, breakers, limits or what users see.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .model import ChatMessage, ToolCall, ToolDefinition, Usage


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call as it streams: the call at ``index`` gets its id and name
    once and its arguments' JSON text in fragments."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Piece:
    """A part of a reply as it arrives: content, reasoning, tool call fragments, and at
    the end usage/finish."""

    content: str = ""
    reasoning: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    """The tools a request offers, and whether the model may call them now."""

    tools: tuple[ToolDefinition, ...] = ()
    choice: str | None = None


class Backend(Protocol):
    """One provider's way of producing a reply."""

    def pieces(self, model: str, messages: Sequence[ChatMessage], params: Mapping[str, Any],
               *, stream: bool, timeout_s: float, offer: Offer | None = None
               ) -> AsyncGenerator[Piece, None]:
        """The reply to ``messages``, piece by piece (one piece when not streaming)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def complete_calls(deltas: Sequence[ToolCallDelta]) -> tuple[ToolCall, ...]:
    """Whole tool calls from their streamed fragments, in the order of their index (the
    first id and name given for an index win; argument fragments are joined)."""
    calls: dict[int, dict[str, str]] = {}
    for delta in deltas:
        call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
        call["id"] = call["id"] or delta.id
        call["name"] = call["name"] or delta.name
        call["arguments"] += delta.arguments
    return tuple(ToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments=c["arguments"])
                 for i, c in sorted(calls.items()))
