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

Role = Literal["system", "user", "assistant", "tool"]
ImageMode = Literal["data_url", "url"]
"""How images travel to a provider: inline as ``data:`` URLs, or as their source URL."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TextPart:
    """Text inside a message made of parts."""

    text: str

    def to_openai(self, images: ImageMode = "data_url") -> dict[str, Any]:
        """The Chat Completions content part."""
        return {"type": "text", "text": self.text}


@dataclass(frozen=True, slots=True, kw_only=True)
class ImagePart:
    """An image inside a message: its stored bytes (base64) and where it came from.

    ``data`` is what is sent by default (a ``data:`` URL), so a prompt is the same
    whenever it is rebuilt; ``url`` (the source link, which may expire) is sent instead
    only to providers set to ``images: url``. ``width``/``height`` feed token estimates.
    """

    media_type: str
    data: str
    url: str | None = None
    filename: str = ""
    sha256: str = ""
    width: int | None = None
    height: int | None = None
    detail: Literal["auto", "low", "high"] = "auto"

    def data_url(self) -> str:
        """The image as a ``data:`` URL."""
        return f"data:{self.media_type};base64,{self.data}"

    def to_openai(self, images: ImageMode = "data_url") -> dict[str, Any]:
        """The Chat Completions content part (the source URL only in ``url`` mode and
        when there is one)."""
        url = self.url if images == "url" and self.url else self.data_url()
        return {"type": "image_url", "image_url": {"url": url, "detail": self.detail}}


Part = TextPart | ImagePart


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """A tool call the model asked for; ``arguments`` is the JSON text exactly as it
    was written (it may be invalid: the tool runner says so to the model)."""

    id: str
    name: str
    arguments: str

    def to_openai(self) -> dict[str, Any]:
        """The Chat Completions ``tool_calls`` item."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolDefinition:
    """A tool offered to the model: its name, what it does and its arguments' JSON Schema."""

    name: str
    description: str
    parameters: Mapping[str, Any]

    def to_openai(self) -> dict[str, Any]:
        """The Chat Completions ``tools`` item."""
        return {"type": "function", "function": {
            "name": self.name, "description": self.description,
            "parameters": dict(self.parameters)}}


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of the prompt. ``name`` carries a speaker's name in multi-user chats.

    ``content`` is text, or a tuple of parts (text and images) when the message holds
    images. An assistant message may carry ``tool_calls``; a ``tool`` message answers
    the call ``tool_call_id``.
    """

    role: Role
    content: str | tuple[Part, ...]
    _: KW_ONLY
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        """The message's text (of every text part, for a message made of parts)."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        """The images in the message."""
        if isinstance(self.content, str):
            return ()
        return tuple(p for p in self.content if isinstance(p, ImagePart))

    def to_openai(self, images: ImageMode = "data_url") -> dict[str, Any]:
        """The Chat Completions shape of this message."""
        content: Any = (self.content if isinstance(self.content, str)
                        else [p.to_openai(images) for p in self.content])
        if self.tool_calls and content == "":
            content = None  # what the API documents for a message that only calls tools
        message: dict[str, Any] = {"role": self.role, "content": content}
        if self.name:
            message["name"] = self.name
        if self.tool_calls:
            message["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
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
    tools: tuple[ToolDefinition, ...] = ()
    """Tools the model may call (none: the request offers no tools)."""
    tool_choice: Literal["auto", "none"] | None = None
    """``none``: tools are listed (the conversation holds earlier calls) but the model
    must answer in text."""


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
    tool_calls: tuple[ToolCall, ...] = ()
    """The tools the model asked to call (``finish_reason`` is then ``tool_calls``)."""


OnDelta = Callable[[str], Awaitable[None]]
"""Called with each piece of visible text as it streams in."""


class ModelClient(Protocol):
    """What callers need of the model gateway (the gateway itself, or a wrapper of it)."""

    async def complete(self, request: ModelRequest,
                       on_delta: OnDelta | None = None) -> ModelOutcome:
        """A reply (or a failure as a value: it never raises)."""
        ...
