"""Per-provider bounds: concurrent calls, requests per minute, tokens per minute."""

from __future__ import annotations

import asyncio

import pytest

from core.gateway.limits import RateBucket, ThrottleTimeout
from tests.fakes.openai_server import FakeOpenAI

from .conftest import GatewayFactory, ManualClock, ask, provider_for


@pytest.mark.parametrize("bound", [2, 6])
async def test_concurrency_is_bounded_per_provider(
        fake: FakeOpenAI, make_gateway: GatewayFactory, bound: int) -> None:
    fake.latency_s = 0.05
    gateway = await make_gateway(provider_for(fake, max_concurrency=bound),
                                 provider_for(fake, "other", max_concurrency=bound))
    outcomes = await asyncio.gather(
        *[gateway.complete(ask(f"q{n}")) for n in range(6)],
        *[gateway.complete(ask(f"o{n}", provider="other")) for n in range(2)],
    )
    assert all(o.ok for o in outcomes)
    # Each provider has its own bound; the other provider's two calls add to the peak.
    assert fake.max_in_flight == min(6, bound) + 2
    if bound == 2:
        assert max(o.queued_s for o in outcomes[:6]) >= 0.05


async def test_requests_per_minute_waits_within_the_deadline(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    clock = ManualClock()
    gateway = await make_gateway(provider_for(fake, requests_per_minute=2), clock=clock,
                                 sleep=clock.sleep)
    first = [await gateway.complete(ask(f"q{n}")) for n in range(2)]
    assert all(o.ok and o.queued_s == 0 for o in first)
    third = await gateway.complete(ask("q3"))
    assert third.ok and third.queued_s == pytest.approx(30.0)  # one request per 30 s
    assert clock.slept == [pytest.approx(30.0)]
    refused = await gateway.complete(ask("q4", deadline_s=10))
    assert not refused.ok and refused.error_class == "throttled"
    assert refused.attempts == 0 and len(fake.requests) == 3
    assert clock.slept == [pytest.approx(30.0)]  # refused before waiting


async def test_tokens_per_minute_charges_prompt_and_completion(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    clock = ManualClock()
    gateway = await make_gateway(provider_for(fake, tokens_per_minute=60), clock=clock,
                                 sleep=clock.sleep)
    first = await gateway.complete(ask("x" * 80))
    assert first.ok and first.queued_s == 0
    second = await gateway.complete(ask("y" * 80))
    # The first call spent its prompt estimate plus the reported completion tokens,
    # emptying the bucket: the second waits about a second per token it needs.
    assert second.ok and second.queued_s > 10


async def test_rate_bucket_refills_and_refuses_waits_past_the_deadline() -> None:
    clock = ManualClock()
    bucket = RateBucket(6, clock=clock, sleep=clock.sleep)  # one every 10 s, burst 6
    for _ in range(6):
        assert await bucket.take(1, deadline=clock.now) == 0
    with pytest.raises(ThrottleTimeout):
        await bucket.take(1, deadline=clock.now + 5)
    assert await bucket.take(1, deadline=clock.now + 60) == pytest.approx(10)
    assert await bucket.take(100, deadline=clock.now + 100) == pytest.approx(60)
