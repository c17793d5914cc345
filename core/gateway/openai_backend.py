"""Chat Completions through the official openai SDK, for OpenAI and every compatible server.

One ``AsyncOpenAI`` client per provider, so connections are reused, with the SDK's
own retries off (``max_retries=0``): the gateway owns the failure policy. The client
rides on the SDK's aiohttp transport (``DefaultAioHttpClient``): under load httpx2's
connection pool costs the bot's event loop about a fifth of each call. Sampling
parameters travel in the request body as they are, so any server-specific option
(``top_k``, ``min_p``, ...) works without the SDK knowing it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import openai
from openai import AsyncOpenAI

from core.config import ProviderSettings

from .backend import Piece
from .failures import AttemptFailed, classify
from .model import ChatMessage, Usage

OPENAI_BASE_URL = "https://api.openai.com/v1"
_RESERVED = frozenset({"model", "messages", "stream", "stream_options"})
_REASONING_FIELDS = ("reasoning_content", "reasoning")


class OpenAIBackend:
    """Calls one OpenAI-compatible provider."""

    def __init__(self, settings: ProviderSettings, api_key: str) -> None:
        self._provider = settings.name
        self._key_env = settings.api_key_env
        self._extra_body = dict(settings.extra_body)
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
                     timeout_s: float) -> AsyncIterator[Piece]:
        """The reply, streamed with usage in the last chunk, or as one piece."""
        body = {**self._extra_body, **{k: v for k, v in params.items() if k not in _RESERVED}}
        payload = [m.to_openai() for m in messages]
        try:
            if stream:
                chunks = await self._client.chat.completions.create(
                    model=model, messages=payload, stream=True,
                    stream_options={"include_usage": True},
                    timeout=timeout_s, extra_body=body or None,
                )
                async with chunks:
                    async for chunk in chunks:
                        piece = _chunk_piece(chunk)
                        if piece is not None:
                            yield piece
            else:
                completion = await self._client.chat.completions.create(
                    model=model, messages=payload, timeout=timeout_s, extra_body=body or None,
                )
                yield _completion_piece(completion)
        except (openai.OpenAIError, ValueError) as exc:
            # ValueError: a body that is not the JSON it should be. "from None": the SDK's
            # message may quote a raw error body, which can echo the key.
            raise AttemptFailed(classify(exc, provider=self._provider, model=model,
                                         timeout_s=timeout_s, key_env=self._key_env)) from None


def _reasoning(extra: Mapping[str, Any] | None) -> str:
    if not extra:
        return ""
    for name in _REASONING_FIELDS:
        value = extra.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def _usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    prompt_details = usage.prompt_tokens_details
    completion_details = usage.completion_tokens_details
    return Usage(
        prompt_tokens=usage.prompt_tokens or 0,
        completion_tokens=usage.completion_tokens or 0,
        total_tokens=usage.total_tokens or 0,
        cached_tokens=prompt_details.cached_tokens if prompt_details else None,
        reasoning_tokens=completion_details.reasoning_tokens if completion_details else None,
    )


def _chunk_piece(chunk: Any) -> Piece | None:
    usage = _usage(chunk.usage)
    if not chunk.choices:
        return Piece(usage=usage) if usage is not None else None
    choice = chunk.choices[0]
    delta = choice.delta
    content = (delta.content or "") if delta is not None else ""
    reasoning = _reasoning(delta.model_extra) if delta is not None else ""
    if not (content or reasoning or usage or choice.finish_reason):
        return None
    return Piece(content=content, reasoning=reasoning, usage=usage,
                 finish_reason=choice.finish_reason)


def _completion_piece(completion: Any) -> Piece:
    usage = _usage(completion.usage)
    if not completion.choices:
        return Piece(usage=usage)
    choice = completion.choices[0]
    message = choice.message
    return Piece(content=message.content or "", reasoning=_reasoning(message.model_extra),
                 usage=usage, finish_reason=choice.finish_reason)
