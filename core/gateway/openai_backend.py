"""Chat Completions through the official openai SDK, for OpenAI and every compatible server.

One ``AsyncOpenAI`` client per provider, so connections are reused, with the SDK's
own retries off (``max_retries=0``): the gateway owns the failure policy. The client
rides on the SDK's aiohttp transport (``DefaultAioHttpClient``): under load httpx2's
connection pool costs the bot's event loop about a fifth of each call.

The request is made with the client's own ``post`` (its authentication, base URL,
headers, timeouts, SSE decoding and mapping of HTTP statuses and transport failures to
``openai`` exceptions), with the body as a plain dict and chunks read as dicts: the
typed ``chat.completions.create`` walks every message through its TypedDict transform
and builds pydantic models per streamed chunk, which cost more than half of the bot's
event loop under load (see docs/benchmarks.md). Sampling parameters travel in the body as
they are, so any server-specific option (``top_k``, ``min_p``, ...) works.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import openai
from openai import AsyncOpenAI, AsyncStream

from core.config import ProviderSettings

from .backend import Offer, Piece, ToolCallDelta
from .failures import AttemptFailed, classify
from .model import ChatMessage, Usage

OPENAI_BASE_URL = "https://api.openai.com/v1"
_RESERVED = frozenset({"model", "messages", "stream", "stream_options", "tools", "tool_choice"})
_REASONING_FIELDS = ("reasoning_content", "reasoning")


class OpenAIBackend:
    """Calls one OpenAI-compatible provider."""

    def __init__(self, settings: ProviderSettings, api_key: str) -> None:
        self._provider = settings.name
        self._key_env = settings.api_key_env
        self._images = settings.images
        # the request's own fields are the gateway's to set, whatever a config adds
        self._extra_body = {k: v for k, v in settings.extra_body.items() if k not in _RESERVED}
        # base_url is always passed so the SDK never picks up $OPENAI_BASE_URL on its own.
        self._client = AsyncOpenAI(
            api_key=api_key,
            base_url=settings.base_url or OPENAI_BASE_URL,
            timeout=settings.timeout_s,
            max_retries=0,
            default_headers=dict(settings.headers) or None,
            default_query=dict(settings.extra_query) or None,
            http_client=openai.DefaultAioHttpClient(),
        )

    async def aclose(self) -> None:
        """Close the client and its aiohttp connection pool."""
        await self._client.close()

    async def pieces(self, model: str, messages: Sequence[ChatMessage],
                     params: Mapping[str, Any], *, stream: bool,
                     timeout_s: float, offer: Offer | None = None) -> AsyncGenerator[Piece, None]:
        """The reply, streamed with usage in the last chunk, or as one piece."""
        body: dict[str, Any] = {
            **self._extra_body,
            **{k: v for k, v in params.items() if k not in _RESERVED},
            "model": model,
            "messages": [m.to_openai(self._images) for m in messages],
        }
        if offer is not None and offer.tools:
            body["tools"] = [t.to_openai() for t in offer.tools]
            if offer.choice is not None:
                body["tool_choice"] = offer.choice
        try:
            if stream:
                body["stream"] = True
                body["stream_options"] = {"include_usage": True}
                chunks = await self._client.post(
                    "/chat/completions", body=body, cast_to=object,
                    options={"timeout": timeout_s}, stream=True,
                    stream_cls=AsyncStream[object],
                )
                async with chunks:
                    async for chunk in chunks:
                        piece = _chunk_piece(chunk)
                        if piece is not None:
                            yield piece
            else:
                completion = await self._client.post(
                    "/chat/completions", body=body, cast_to=object,
                    options={"timeout": timeout_s},
                )
                yield _completion_piece(completion)
        except (openai.OpenAIError, ValueError) as exc:
            # ValueError: a body that is not the JSON it should be. "from None": the SDK's
            # message may quote a raw error body, which can echo the key.
            raise AttemptFailed(classify(exc, provider=self._provider, model=model,
                                         timeout_s=timeout_s, key_env=self._key_env)) from None


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one: servers differ in what they omit."""
    return value if isinstance(value, Mapping) else {}


def _reasoning(message: Mapping[str, Any]) -> str:
    for name in _REASONING_FIELDS:
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _usage(value: Any) -> Usage | None:
    usage = _mapping(value)
    if not usage:
        return None
    return Usage(
        prompt_tokens=_count(usage.get("prompt_tokens")) or 0,
        completion_tokens=_count(usage.get("completion_tokens")) or 0,
        total_tokens=_count(usage.get("total_tokens")) or 0,
        cached_tokens=_count(_mapping(usage.get("prompt_tokens_details")).get("cached_tokens")),
        reasoning_tokens=_count(
            _mapping(usage.get("completion_tokens_details")).get("reasoning_tokens")),
    )


def _first_choice(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    choices = body.get("choices")
    if isinstance(choices, list) and choices:
        return _mapping(choices[0])
    return None


def _finish_reason(choice: Mapping[str, Any]) -> str | None:
    reason = choice.get("finish_reason")
    return reason if isinstance(reason, str) else None


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _object(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ValueError("the reply is not a JSON object")
    return body


def _chunk_piece(chunk: object) -> Piece | None:
    body = _object(chunk)
    usage = _usage(body.get("usage"))
    choice = _first_choice(body)
    if choice is None:
        return Piece(usage=usage) if usage is not None else None
    delta = _mapping(choice.get("delta"))
    content, reasoning, finish = _text(delta), _reasoning(delta), _finish_reason(choice)
    calls = _call_deltas(delta.get("tool_calls"))
    if not (content or reasoning or usage or finish or calls):
        return None
    return Piece(content=content, reasoning=reasoning, usage=usage, finish_reason=finish,
                 tool_calls=calls)


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _call_deltas(value: Any) -> tuple[ToolCallDelta, ...]:
    """Streamed ``tool_calls`` fragments; a server that omits ``index`` sends one call."""
    if not isinstance(value, list):
        return ()
    deltas = []
    for position, item in enumerate(value):
        call = _mapping(item)
        function = _mapping(call.get("function"))
        index = call.get("index")
        deltas.append(ToolCallDelta(
            index=index if isinstance(index, int) else position, id=_string(call.get("id")),
            name=_string(function.get("name")), arguments=_string(function.get("arguments"))))
    return tuple(deltas)


def _completion_piece(completion: object) -> Piece:
    body = _object(completion)
    usage = _usage(body.get("usage"))
    choice = _first_choice(body)
    if choice is None:
        return Piece(usage=usage)
    message = _mapping(choice.get("message"))
    calls = _call_deltas(message.get("tool_calls"))
    return Piece(content=_text(message), reasoning=_reasoning(message), usage=usage,
                 finish_reason=_finish_reason(choice), tool_calls=calls)
