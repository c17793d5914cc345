"""A fake OpenAI-compatible server for tests, benchmarks and trying the bot locally.

It speaks Chat Completions over real HTTP (aiohttp on 127.0.0.1) so the real openai
SDK talks to it: JSON replies and SSE streams with usage. Replies are deterministic
and depend on the request (``FakeOpenAI.reply_for``), so a test can tell which
prompt was sent. Faults are scripted: each request takes the next scripted
:class:`Fault` (first from the queue for its model, then from the shared queue).
Tool calls are scripted the same way (``Fault.tool_calls(("roll", {"expression":
"2d6"}))``): the request answers with those calls, streamed as ``tool_calls`` deltas
with the arguments in fragments, as OpenAI does; a request that offers no tools, or
says ``tool_choice: none``, leaves a scripted tool call queued and answers in text.

    async with FakeOpenAI() as fake:
        fake.script(Fault.rate_limit(retry_after=0.05))
        client = AsyncOpenAI(base_url=fake.base_url, api_key="k", max_retries=0)
        ...
        fake.requests[-1].body

Moderation (``/v1/moderations``): every category scores ``MODERATION_FLOOR`` unless a
test says otherwise for inputs containing some text (``fake.moderate("insult",
harassment=0.97)``); faults are scripted on their own queue
(``fake.script_moderation(Fault.server_error(503))``: ``http_error``, ``stall``,
``drop``, ``garbage``), and requests are recorded in ``fake.moderation_requests``.

Standalone: ``python -m tests.fakes.openai_server --port 8000 [--latency-ms 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import re
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

FaultKind = Literal[
    "http_error", "stall", "drop", "stream_error", "reasoning", "garbage", "tool_calls",
]

_PIECE = re.compile(r"\S+\s*|\s+")
MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)
"""The categories of OpenAI's omni-moderation models."""
MODERATION_FLOOR = 0.0001
_HIDDEN_HEADERS = frozenset({"authorization", "api-key", "x-api-key"})


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted behaviour for the next request. Build them with the class methods.

    Reasoning combines with the other faults: ``dataclasses.replace(fault, reasoning=...)``.
    """

    kind: FaultKind
    status: int = 500
    code: str | None = None
    error_type: str = "server_error"
    retry_after: str | None = None
    retry_after_ms: str | None = None
    stall_s: float = 0.0
    after_chunks: int = 0
    reasoning: str = ""
    reasoning_via: Literal["think", "field"] = "think"
    calls: tuple[tuple[str, str], ...] = ()
    text: str = ""

    @classmethod
    def tool_calls(cls, *calls: tuple[str, Any], text: str = "") -> Fault:
        """Answer with these tool calls: ``(name, arguments)``, the arguments a mapping
        (sent as JSON) or raw text (to send broken JSON); ``text`` comes before them."""
        return cls("tool_calls", calls=tuple(
            (name, args if isinstance(args, str) else json.dumps(args)) for name, args in calls),
            text=text)

    @classmethod
    def rate_limit(cls, retry_after: float | None = None,
                   retry_after_ms: float | None = None) -> Fault:
        """429 ``rate_limit_exceeded``, with ``Retry-After`` (seconds) and/or ``retry-after-ms``."""
        return cls(
            "http_error", status=429, code="rate_limit_exceeded", error_type="requests",
            retry_after=None if retry_after is None else f"{retry_after:g}",
            retry_after_ms=None if retry_after_ms is None else f"{retry_after_ms:g}",
        )

    @classmethod
    def insufficient_quota(cls) -> Fault:
        """429 with code ``insufficient_quota``: retrying cannot help."""
        return cls("http_error", status=429, code="insufficient_quota",
                   error_type="insufficient_quota")

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """A 5xx answer (500, 502, 503 ...)."""
        return cls("http_error", status=status, error_type="server_error")

    @classmethod
    def http_error(cls, status: int, code: str | None = None,
                   error_type: str = "invalid_request_error") -> Fault:
        """Any other HTTP error (401, 404, 408, 409 ...)."""
        return cls("http_error", status=status, code=code, error_type=error_type)

    @classmethod
    def context_length_exceeded(cls) -> Fault:
        """400 with code ``context_length_exceeded``."""
        return cls("http_error", status=400, code="context_length_exceeded",
                   error_type="invalid_request_error")

    @classmethod
    def stall(cls, seconds: float = 30.0) -> Fault:
        """Say nothing for ``seconds`` (past the client's timeout), then answer normally."""
        return cls("stall", stall_s=seconds)

    @classmethod
    def drop_connection(cls, after_chunks: int = 0) -> Fault:
        """Close the connection after ``after_chunks`` stream chunks (0: before any)."""
        return cls("drop", after_chunks=after_chunks)

    @classmethod
    def stream_error(cls, after_chunks: int = 0) -> Fault:
        """Send an ``{"error": ...}`` object inside the stream after ``after_chunks`` chunks."""
        return cls("stream_error", after_chunks=after_chunks)

    @classmethod
    def garbage(cls) -> Fault:
        """HTTP 200 whose body is JSON but not a completion object (a chunk, when streaming)."""
        return cls("garbage")

    @classmethod
    def with_reasoning(cls, text: str = "Let me think about this.",
                       via: Literal["think", "field"] = "think") -> Fault:
        """Answer with reasoning: ``<think>`` in the content, or a ``reasoning_content`` field."""
        return cls("reasoning", reasoning=text, reasoning_via=via)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it; auth headers are left out."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    received_at: float

    @property
    def model(self) -> str | None:
        """The requested model."""
        return self.body.get("model")

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The prompt as sent."""
        return list(self.body.get("messages", []))


def text_of(content: Any) -> str:
    """A message's text: its content, or the text parts of a content list."""
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content
                         if isinstance(p, Mapping) and p.get("type") == "text")
    return "" if content is None else str(content)


def image_parts(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``image_url`` parts of a message."""
    content = message.get("content")
    return [p for p in content if isinstance(p, Mapping) and p.get("type") == "image_url"] \
        if isinstance(content, list) else []


def reply_for(messages: Sequence[Mapping[str, Any]]) -> str:
    """The fake's deterministic reply: a digest of the whole prompt plus the last user text."""
    digest = hashlib.sha256(json.dumps(list(messages), sort_keys=True).encode()).hexdigest()[:8]
    last_user = next((text_of(m.get("content", "")) for m in reversed(messages)
                      if m.get("role") == "user"), "")
    return f"reply {digest} to: {last_user}"


def count_tokens(text: str) -> int:
    """The fake's own token count: one per 4 characters, at least one."""
    return max(1, (len(text) + 3) // 4)


class FakeOpenAI:
    """An OpenAI-compatible Chat Completions server on 127.0.0.1 with scripted faults.

    ``latency_s`` delays every answer's first byte; ``tokens_per_second`` paces
    stream pieces (None: as fast as possible); ``cached_tokens`` is reported in
    ``prompt_tokens_details`` when set.
    """

    def __init__(self, *, latency_s: float = 0.0, tokens_per_second: float | None = None,
                 cached_tokens: int | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.latency_s = latency_s
        self.tokens_per_second = tokens_per_second
        self.cached_tokens = cached_tokens
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._peers: set[object] = set()
        self._host = host
        self._port = port
        self._canned: dict[str, str] = {}
        self._moderation_scores: dict[str, dict[str, float]] = {}
        self._moderation_faults: deque[Fault] = deque()
        self.moderation_requests: list[RecordedRequest] = []
        self._shared: deque[Fault] = deque()
        self._per_model: dict[str, deque[Fault]] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give the SDK (ends in ``/v1``)."""
        return f"http://{self._host}:{self._port}/v1"

    @property
    def port(self) -> int:
        """The port actually bound."""
        return self._port

    def script(self, *faults: Fault, model: str | None = None) -> None:
        """Queue ``faults`` for the next requests (for ``model`` only, when given)."""
        queue = self._shared if model is None else self._per_model.setdefault(model, deque())
        queue.extend(faults)

    def answer(self, when_contains: str, text: str) -> None:
        """From now on, answer ``text`` when the last user message contains ``when_contains``
        (for tests that need the model to write something specific)."""
        self._canned[when_contains] = text

    def moderate(self, when_contains: str, **scores: float) -> None:
        """From now on, score inputs containing ``when_contains`` with ``scores``
        (category names with ``_`` for ``/`` and ``-``: ``sexual_minors``, ``self_harm``)."""
        by_name = {c.replace("/", "_").replace("-", "_"): c for c in MODERATION_CATEGORIES}
        unknown = set(scores) - set(by_name)
        if unknown:
            raise ValueError(f"unknown moderation categories: {sorted(unknown)}")
        self._moderation_scores[when_contains] = {by_name[n]: v for n, v in scores.items()}

    def script_moderation(self, *faults: Fault) -> None:
        """Queue ``faults`` for the next moderation requests."""
        self._moderation_faults.extend(faults)

    def _reply(self, messages: Sequence[Mapping[str, Any]]) -> str:
        last_user = next((text_of(m.get("content", "")) for m in reversed(messages)
                          if m.get("role") == "user"), "")
        canned = next((text for key, text in self._canned.items() if key in last_user), None)
        return canned if canned is not None else reply_for(messages)

    def _pieces(self, body: Mapping[str, Any]) -> tuple[list[str], str]:
        """The reply's tokens (whitespace-delimited pieces), cut at the request's
        ``max_tokens``, and the finish reason."""
        pieces = _PIECE.findall(self._reply(body.get("messages", [])))
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(max_tokens, int) and max_tokens < len(pieces):
            return pieces[:max_tokens], "length"
        return pieces, "stop"

    def answer_text(self, request: RecordedRequest) -> str:
        """The text the fake answered ``request`` with when no fault was scripted for it:
        its reply cut at ``max_tokens`` tokens, so its length depends on the words (3,000
        two-character tokens are 6,000 characters; 3,000 of 20 characters, 60,000)."""
        return "".join(self._pieces(request.body)[0])

    @property
    def connections_opened(self) -> int:
        """How many distinct client connections have sent requests."""
        return len(self._peers)

    def pending_faults(self) -> int:
        """How many scripted faults have not been served yet."""
        return len(self._shared) + sum(len(q) for q in self._per_model.values())

    reply_for = staticmethod(reply_for)

    async def start(self) -> FakeOpenAI:
        """Bind and serve; returns self."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/moderations", self._moderations)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        """Stop serving; stalled answers end at once."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _next_fault(self, model: str | None, *, tools_offered: bool = True) -> Fault | None:
        queue = self._per_model.get(model or "") or self._shared
        if not queue:
            return None
        if queue[0].kind == "tool_calls" and not tools_offered:
            return None  # a model offered no tools cannot call one
        return queue.popleft()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"},
        ]})

    async def _moderations(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error_response(400, "the body is not JSON", "invalid_request_error", None)
        self.moderation_requests.append(RecordedRequest(
            method=request.method, path=request.path, query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()
                     if k.lower() not in _HIDDEN_HEADERS},
            body=body, received_at=time.monotonic()))
        fault = self._moderation_faults.popleft() if self._moderation_faults else None
        wait = self.latency_s + (fault.stall_s if fault and fault.kind == "stall" else 0.0)
        if wait > 0 and await self._interrupted(wait):
            return web.Response(status=503)
        if fault is not None and fault.kind == "http_error":
            return _error_response(fault.status, f"scripted HTTP {fault.status}",
                                   fault.error_type, fault.code)
        if fault is not None and fault.kind == "drop":
            _abort(request)
            return web.Response()
        if fault is not None and fault.kind == "garbage":
            return web.json_response({"id": "modr-fake", "results": "not a list"})
        inputs = body.get("input", "")
        texts = inputs if isinstance(inputs, list) else [inputs]
        return web.json_response({
            "id": "modr-fake", "model": body.get("model", "omni-moderation-latest"),
            "results": [self._moderation_result(text_of(t) if isinstance(t, list) else str(t))
                        for t in texts]})

    def _moderation_result(self, text: str) -> dict[str, Any]:
        scores = dict.fromkeys(MODERATION_CATEGORIES, MODERATION_FLOOR)
        for key, scripted in self._moderation_scores.items():
            if key in text:
                for category, value in scripted.items():
                    scores[category] = max(scores[category], value)
        return {
            "flagged": any(v >= 0.5 for v in scores.values()),
            "categories": {c: v >= 0.5 for c, v in scores.items()},
            "category_scores": scores,
            "category_applied_input_types": {c: ["text"] for c in scores},
        }

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error_response(400, "the body is not JSON", "invalid_request_error", None)
        self.requests.append(RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()
                     if k.lower() not in _HIDDEN_HEADERS},
            body=body,
            received_at=time.monotonic(),
        ))
        if request.transport is not None:
            self._peers.add(request.transport.get_extra_info("peername"))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request, body, self._next_fault(
                body.get("model"), tools_offered=bool(body.get("tools"))
                and body.get("tool_choice") != "none"))
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, body: Mapping[str, Any],
                      fault: Fault | None) -> web.StreamResponse:
        wait = self.latency_s + (fault.stall_s if fault and fault.kind == "stall" else 0.0)
        if wait > 0 and await self._interrupted(wait):
            return web.Response(status=503)
        auth = request.headers.get("Authorization", "")
        if fault is not None and fault.kind == "http_error":
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            if fault.retry_after_ms is not None:
                headers["retry-after-ms"] = fault.retry_after_ms
            # Real servers sometimes echo the key they were sent; the gateway must not.
            message = f"scripted HTTP {fault.status} (request had {auth or 'no auth'})"
            return _error_response(fault.status, message, fault.error_type, fault.code, headers)
        if fault is not None and fault.kind == "drop" and not body.get("stream"):
            _abort(request)
            return web.Response()
        if fault is not None and fault.kind == "garbage":
            return await self._garbage(request, stream=bool(body.get("stream")))
        messages = body.get("messages", [])
        if fault is not None and fault.kind == "tool_calls":
            return await self._tool_calls(request, body, fault)
        pieces, finish = self._pieces(body)
        reasoning = fault.reasoning if fault else ""
        via = fault.reasoning_via if fault else "think"
        usage = self._usage(messages, pieces, reasoning)
        if body.get("stream"):
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                                   "Cache-Control": "no-cache"})
            with contextlib.suppress(ConnectionResetError):  # the client gave up meanwhile
                await self._stream(request, response, body, pieces, reasoning, via, finish,
                                   usage, fault)
            return response
        content = "".join(pieces)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reasoning and via == "think":
            message["content"] = f"<think>{reasoning}</think>\n\n{content}"
        elif reasoning:
            message["reasoning_content"] = reasoning
        return web.json_response({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake-model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        })

    async def _stream(self, request: web.Request, response: web.StreamResponse,
                      body: Mapping[str, Any], pieces: list[str], reasoning: str, via: str,
                      finish: str, usage: dict[str, Any], fault: Fault | None
                      ) -> web.StreamResponse:
        await response.prepare(request)
        model = body.get("model", "fake-model")
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        if reasoning and via == "think":
            # Split the tags across chunks on purpose: clients must handle it.
            think = f"<think>{reasoning}</think>\n\n"
            deltas += [{"content": think[i:i + 5]} for i in range(0, len(think), 5)]
        elif reasoning:
            deltas += [{"reasoning_content": p} for p in _PIECE.findall(reasoning)]
        deltas += [{"content": p} for p in pieces]
        delay = 1.0 / self.tokens_per_second if self.tokens_per_second else 0.0
        breaks_at = fault.after_chunks if fault and fault.kind in ("drop", "stream_error") else None
        for index, delta in enumerate(deltas):
            if breaks_at is not None and index == breaks_at + 1:
                return await self._break_stream(request, response, fault)
            if delay and index > 1 and await self._interrupted(delay):
                return response
            await response.write(_sse(_chunk(model, delta, None)))
        if breaks_at is not None:
            return await self._break_stream(request, response, fault)
        await response.write(_sse(_chunk(model, {}, finish)))
        return await _end_stream(response, body, model, usage)

    async def _tool_calls(self, request: web.Request, body: Mapping[str, Any], fault: Fault
                          ) -> web.StreamResponse:
        model = body.get("model", "fake-model")
        serial = len(self.requests)
        calls = [{"id": f"call_{serial}_{i}", "type": "function",
                  "function": {"name": name, "arguments": arguments}}
                 for i, (name, arguments) in enumerate(fault.calls)]
        usage = self._usage(body.get("messages", []), _PIECE.findall(fault.text) + [""] * len(
            calls), "")
        if not body.get("stream"):
            return web.json_response({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "finish_reason": "tool_calls",
                                             "message": {"role": "assistant",
                                                         "content": fault.text or None,
                                                         "tool_calls": calls}}],
                "usage": usage})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        deltas += [{"content": p} for p in _PIECE.findall(fault.text)]
        for i, call in enumerate(calls):
            arguments = call["function"]["arguments"]
            deltas.append({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                           "function": {"name": call["function"]["name"],
                                                        "arguments": ""}}]})
            deltas += [{"tool_calls": [{"index": i, "function": {"arguments": arguments[j:j + 7]}}]}
                       for j in range(0, len(arguments), 7)]
        for delta in deltas:
            await response.write(_sse(_chunk(model, delta, None)))
        await response.write(_sse(_chunk(model, {}, "tool_calls")))
        return await _end_stream(response, body, model, usage)

    async def _garbage(self, request: web.Request, *, stream: bool) -> web.StreamResponse:
        if not stream:
            return web.json_response(["not", "a", "completion"])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: ["not", "a", "chunk"]\n\n')
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _break_stream(self, request: web.Request, response: web.StreamResponse,
                            fault: Fault | None) -> web.StreamResponse:
        if fault is not None and fault.kind == "stream_error":
            await response.write(_sse({"error": {
                "message": "scripted error inside the stream", "type": "server_error",
                "param": None, "code": None,
            }}))
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            return response
        _abort(request)
        return response

    def _usage(self, messages: Sequence[Mapping[str, Any]], pieces: list[str],
               reasoning: str) -> dict[str, Any]:
        prompt = sum(count_tokens(text_of(m.get("content", ""))) + 255 * len(image_parts(m)) + 4
                     for m in messages) + 3
        reasoning_tokens = len(_PIECE.findall(reasoning))
        completion = len(pieces) + reasoning_tokens
        usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                                 "total_tokens": prompt + completion}
        if self.cached_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
        return usage

    async def _interrupted(self, seconds: float) -> bool:
        """Sleep ``seconds``; True when the server closed meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)
            return True
        return False


async def _end_stream(response: web.StreamResponse, body: Mapping[str, Any], model: str,
                      usage: Mapping[str, Any]) -> web.StreamResponse:
    """The usage chunk (when the request asked for it), ``[DONE]`` and the end."""
    if (body.get("stream_options") or {}).get("include_usage"):
        await response.write(_sse({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                                   "created": int(time.time()), "model": model,
                                   "choices": [], "usage": usage}))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def _chunk(model: str, delta: Mapping[str, Any], finish: str | None) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "delta": dict(delta),
                                         "finish_reason": finish}]}


def _sse(data: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


def _error_response(status: int, message: str, error_type: str, code: str | None,
                    headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": error_type, "param": None, "code": code}},
        status=status, headers=dict(headers or {}),
    )


async def _serve(port: int, latency_s: float, tokens_per_second: float | None) -> None:
    fake = await FakeOpenAI(latency_s=latency_s, tokens_per_second=tokens_per_second,
                            port=port).start()
    print(f"fake OpenAI server on {fake.base_url} (Ctrl-C to stop)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the fake until interrupted."""
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible server.")
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before answering")
    parser.add_argument("--tokens-per-second", type=float, default=None,
                        help="pace of streamed pieces (default: unpaced)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port, args.latency_ms / 1000.0, args.tokens_per_second))


if __name__ == "__main__":
    main()
