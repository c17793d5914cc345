"""The fake server itself: pacing, standalone mode, and the parts of the policy it feeds."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from openai import AsyncOpenAI

from core.gateway.failures import parse_retry_after
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
