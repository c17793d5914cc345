"""The circuit breaker: opening after repeated failures, failing fast, one probe deciding."""

from __future__ import annotations

import asyncio

from core.gateway.breaker import CircuitBreaker
from core.gateway.gateway import GatewayPolicy
from tests.fakes.openai_server import FakeOpenAI, Fault

from .conftest import GatewayFactory, ManualClock, ask, provider_for

POLICY = GatewayPolicy(max_attempts=1, breaker_failures=3, breaker_cooldown_s=30)


def test_breaker_states_by_hand() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=10, clock=clock)
    assert breaker.admit() and breaker.state == "closed"
    breaker.record_failure("server_error")
    breaker.record_success()  # a success resets the count: failures must be consecutive
    breaker.record_failure("server_error")
    assert breaker.state == "closed"
    breaker.record_failure("timeout")
    assert breaker.state == "open" and not breaker.admit()
    assert breaker.retry_in() == 10
    clock.now += 10
    assert breaker.state == "half_open"
    assert breaker.admit()          # the one probe
    assert not breaker.admit()      # everyone else still fails fast
    breaker.record_failure("timeout")
    assert breaker.state == "open"  # a failed probe opens it for another cool-down
    clock.now += 10
    assert breaker.admit()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.admit() and breaker.admit()


def test_a_probe_that_says_nothing_lets_the_next_caller_probe() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=1, clock=clock)
    breaker.record_failure("server_error")
    clock.now += 1
    assert breaker.admit()
    breaker.record_neutral()
    assert breaker.state == "half_open" and breaker.admit()


async def test_breaker_opens_fails_fast_then_a_probe_closes_it(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    clock = ManualClock()
    fake.script(*[Fault.server_error(500)] * 3)
    gateway = await make_gateway(provider_for(fake), policy=POLICY, clock=clock,
                                 sleep=clock.sleep)
    for _ in range(3):
        outcome = await gateway.complete(ask())
        assert outcome.error_class == "server_error"
    assert gateway.breaker_state("fake") == "open"

    fast = await gateway.complete(ask())
    assert not fast.ok and fast.error_class == "circuit_open"
    assert fast.attempts == 0 and len(fake.requests) == 3  # nothing was sent
    assert "server_error" in fast.error and "30 s" in fast.error

    clock.now += 30
    assert gateway.breaker_state("fake") == "half_open"
    fake.latency_s = 0.05  # keep the probe in flight while a second request arrives
    probe, other = await asyncio.gather(gateway.complete(ask("probe")),
                                        gateway.complete(ask("other")))
    assert probe.ok and probe.attempts == 1
    assert other.error_class == "circuit_open"
    assert len(fake.requests) == 4
    assert gateway.breaker_state("fake") == "closed"
    assert (await gateway.complete(ask())).ok


async def test_a_failed_probe_opens_the_breaker_again(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    clock = ManualClock()
    fake.script(*[Fault.server_error(503)] * 4)
    gateway = await make_gateway(provider_for(fake), policy=POLICY, clock=clock,
                                 sleep=clock.sleep)
    for _ in range(3):
        await gateway.complete(ask())
    clock.now += 30
    probe = await gateway.complete(ask())
    assert probe.error_class == "server_error" and len(fake.requests) == 4
    assert gateway.breaker_state("fake") == "open"
    assert (await gateway.complete(ask())).error_class == "circuit_open"
    assert len(fake.requests) == 4


async def test_request_specific_errors_do_not_open_the_breaker(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.script(*[Fault.http_error(400, code="invalid_value")] * 5)
    gateway = await make_gateway(provider_for(fake), policy=POLICY)
    for _ in range(5):
        assert (await gateway.complete(ask())).error_class == "bad_request"
    assert gateway.breaker_state("fake") == "closed"


async def test_retries_stop_when_the_breaker_opens_and_report_the_real_cause(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.script(*[Fault.server_error(502)] * 10)
    policy = GatewayPolicy(max_attempts=10, breaker_failures=3, backoff_base_s=0.001)
    gateway = await make_gateway(provider_for(fake), policy=policy)
    outcome = await gateway.complete(ask())
    assert outcome.attempts == 3 and len(fake.requests) == 3
    assert outcome.error_class == "server_error"
