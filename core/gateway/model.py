"""What crosses the model gateway's boundary: a request for a reply, and its outcome.

The dispatcher builds a :class:`ModelRequest` from the conversation; the gateway
(``core.gateway.gateway.ModelGateway``) turns it into OpenAI-compatible calls with
its own retry, breaker and fallback policy and returns a :class:`ModelOutcome`,
never an exception, for anything the model server does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of the prompt. ``name`` carries a speaker's name in multi-user chats."""

    role: Role
    content: str
    _: KW_ONLY
    name: str | None = None

    def to_openai(self) -> dict[str, str]:
        """The Chat Completions shape of this message."""
        message = {"role": self.role, "content": self.content}
        if self.name:
            message["name"] = self.name
        return message


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRequest:
    """Everything one reply needs from a model.

    ``params`` are the sampling parameters (temperature, max_tokens, ...).
    ``deadline_s`` bounds the whole reply, retries and waits included.
    """

    provider: str
    model: str
    messages: tuple[ChatMessage, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    deadline_s: float = 60.0
    fallback_provider: str | None = None
    fallback_model: str | None = None
    stream: bool = True
    show_reasoning: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Token counts as the server reported them (estimates when it reported none)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    estimated: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelOutcome:
    """The result of a request: a reply (``ok``) or a failure with its class.

    ``truncated`` means the stream broke after text had been shown: ``text`` is what
    arrived plus a marker. ``error_class`` is a short stable name (``rate_limited``,
    ``server_error``, ``timeout``, ``insufficient_quota``, ``circuit_open``, ...);
    ``error`` is a safe sentence: never a key, a traceback or a raw error body.
    A truncated reply is ``ok`` but also names the ``error_class`` that cut it.
    ``reasoning`` is the model's reasoning kept out of ``text`` (unless the request
    asked to show it); ``queued_s`` is time spent waiting for the provider's
    concurrency and rate limits, ``waits_s`` the pauses between retries.
    """

    ok: bool
    text: str
    provider: str
    model: str
    usage: Usage = Usage()
    latency_s: float = 0.0
    time_to_first_token_s: float | None = None
    attempts: int = 1
    waits_s: tuple[float, ...] = ()
    truncated: bool = False
    used_fallback: bool = False
    finish_reason: str | None = None
    error_class: str | None = None
    error: str | None = None
    reasoning: str = ""
    queued_s: float = 0.0


OnDelta = Callable[[str], Awaitable[None]]
"""Called with each piece of visible text as it streams in."""


class ModelClient(Protocol):
    """What callers need of the model gateway (the gateway itself, or a wrapper of it)."""

    async def complete(self, request: ModelRequest,
                       on_delta: OnDelta | None = None) -> ModelOutcome:
        """A reply (or a failure as a value: it never raises)."""
        ...
