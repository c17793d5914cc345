"""The built-in ``offline`` provider: a deterministic stand-in, not a language model.

It needs no network and no key, so the first run, the console and tests work
anywhere. Every reply starts with ``[offline]`` and echoes the last user message
with a short digest of the whole prompt, so it is plain what was sent. It streams
in a few pieces and reports estimated usage, like a real provider would.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from .backend import Piece
from .model import ChatMessage, Usage
from .tokens import estimate_messages_tokens, estimate_tokens

OFFLINE_PROVIDER = "offline"
_PIECES = 4


def offline_reply(messages: Sequence[ChatMessage]) -> str:
    """The offline provider's reply to ``messages``."""
    digest = hashlib.sha256(
        "\x1e".join(f"{m.role}\x1f{m.name or ''}\x1f{m.content}" for m in messages).encode()
    ).hexdigest()[:8]
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    return (f"[offline] not a language model (prompt {digest}, {len(messages)} messages). "
            f"You said: {last_user.strip()}")


class OfflineBackend:
    """Answers with :func:`offline_reply`, in a few streamed pieces."""

    async def aclose(self) -> None:
        """Nothing to release."""

    async def pieces(self, model: str, messages: Sequence[ChatMessage],
                     params: Mapping[str, Any], *, stream: bool,
                     timeout_s: float) -> AsyncGenerator[Piece, None]:
        """The reply, cut into a few pieces when streaming."""
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
