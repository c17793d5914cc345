"""The fake server itself: pacing, standalone mode, and the parts of the policy it feeds."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import httpx2
import openai
import pytest
from openai import AsyncOpenAI

from core.gateway.failures import classify, parse_retry_after
from tests.fakes.openai_server import FakeOpenAI

from .conftest import GatewayFactory, ask, provider_for

ROOT = Path(__file__).resolve().parents[2]


async def test_latency_and_tokens_per_second_shape_the_timings(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.latency_s = 0.1
    fake.tokens_per_second = 50  # 5 content pieces: 4 gaps of 20 ms after the first
    gateway = await make_gateway(provider_for(fake))
    outcome = await gateway.complete(ask("one two"))
    assert outcome.time_to_first_token_s >= 0.1
    assert outcome.latency_s >= outcome.time_to_first_token_s + 0.07  # timers may fire early


async def test_connection_refused_is_retried_then_reported(
        make_gateway: GatewayFactory) -> None:
    async with FakeOpenAI() as gone:
        settings = provider_for(gone)
    gateway = await make_gateway(settings)  # the server is closed now: nothing listens
    outcome = await gateway.complete(ask())
    assert not outcome.ok and outcome.error_class == "connection_error"
    assert outcome.attempts == 4 and len(outcome.waits_s) == 3


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"},
                             now=1445412480.0) == pytest.approx(10.0)
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


async def test_standalone_server_answers_the_sdk() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.openai_server", "--port", "0",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        base_url = line.split(" on ", 1)[1].split()[0]
        client = AsyncOpenAI(base_url=base_url, api_key="local", max_retries=0)
        reply = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}])
        await client.close()
        assert reply.choices[0].message.content.endswith("to: hi")
    finally:
        process.terminate()
        await process.wait()


def _raised(error: BaseException, *causes: BaseException) -> BaseException:
    """``error`` raised from ``causes[0]``, itself raised from ``causes[1]``, and so on."""
    for outer, inner in zip((error, *causes), causes, strict=False):
        outer.__cause__ = inner
    return error


_CONNECTOR = SimpleNamespace(host="127.0.0.1", port=9, ssl=False)
_REQUEST = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")


@pytest.mark.parametrize(("error", "expected"), [
    # What the aiohttp transport raises for a refused connection: a "connect timeout".
    (_raised(openai.APITimeoutError(_REQUEST), httpx2.ConnectTimeout("refused"),
             aiohttp.ClientConnectorError(_CONNECTOR, ConnectionRefusedError(111, "refused")),
             ConnectionRefusedError(111, "refused")), "connection_error"),
    (_raised(openai.APITimeoutError(_REQUEST), httpx2.ConnectTimeout("gone"),
             aiohttp.ServerDisconnectedError()), "connection_error"),
    (_raised(openai.APITimeoutError(_REQUEST), httpx2.ReadTimeout("stalled"),
             aiohttp.SocketTimeoutError("stalled")), "timeout"),
    (_raised(openai.APITimeoutError(_REQUEST), httpx2.ConnectTimeout("slow"),
             aiohttp.ConnectionTimeoutError("slow")), "timeout"),
    (openai.APITimeoutError(_REQUEST), "timeout"),
    (TimeoutError(), "timeout"),
    (_raised(openai.APIConnectionError(request=_REQUEST), httpx2.ConnectError("refused"),
             ConnectionRefusedError(111, "refused")), "connection_error"),
])
def test_timeouts_and_connection_errors_are_told_apart_by_their_causes(
        error: BaseException, expected: str) -> None:
    failure = classify(error, provider="p", model="m", timeout_s=5, key_env=None)
    assert failure.error_class == expected
    assert failure.retryable and failure.provider_fault
