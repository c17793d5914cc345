"""The seam between the gateway's policy and one kind of model server.

A backend turns one attempt into a stream of :class:`Piece` values and raises
:class:`~core.gateway.failures.AttemptFailed` for anything that went wrong. It
knows nothing of retries, breakers, limits or what users see.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .model import ChatMessage, Usage


@dataclass(frozen=True, slots=True)
class Piece:
    """A part of a reply as it arrives: content, reasoning, and at the end usage/finish."""

    content: str = ""
    reasoning: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None


class Backend(Protocol):
    """One provider's way of producing a reply."""

    def pieces(self, model: str, messages: Sequence[ChatMessage], params: Mapping[str, Any],
               *, stream: bool, timeout_s: float) -> AsyncGenerator[Piece, None]:
        """The reply to ``messages``, piece by piece (one piece when not streaming)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
