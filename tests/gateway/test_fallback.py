"""The fallback provider/model takes over while the primary is failing."""

from __future__ import annotations

from core.credentials import Secrets
from core.gateway.gateway import GatewayPolicy
from tests.fakes.openai_server import FakeOpenAI, Fault

from .conftest import GatewayFactory, ManualClock, ask, provider_for

POLICY = GatewayPolicy(max_attempts=2, backoff_base_s=0.001, breaker_failures=2,
                       breaker_cooldown_s=60)


def _with_fallback(text: str = "hello", **fields: object):
    return ask(text, provider="primary", model="big", fallback_provider="backup",
               fallback_model="small", **fields)


async def test_fallback_answers_when_the_primary_keeps_failing(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.script(*[Fault.server_error(503)] * 2, model="big")
    gateway = await make_gateway(provider_for(fake, "primary"), provider_for(fake, "backup"),
                                 policy=POLICY)
    outcome = await gateway.complete(_with_fallback())
    assert outcome.ok and outcome.used_fallback
    assert (outcome.provider, outcome.model) == ("backup", "small")
    assert [r.model for r in fake.requests] == ["big", "big", "small"]
    assert outcome.attempts == 3 and len(outcome.waits_s) == 1
    assert outcome.text == fake.reply_for(fake.requests[-1].messages)


async def test_open_breaker_sends_requests_straight_to_the_fallback(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    clock = ManualClock()
    fake.script(*[Fault.server_error(500)] * 2, model="big")
    gateway = await make_gateway(provider_for(fake, "primary"), provider_for(fake, "backup"),
                                 policy=POLICY, clock=clock, sleep=clock.sleep)
    await gateway.complete(_with_fallback())
    assert gateway.breaker_state("primary") == "open"
    sent = len(fake.requests)
    outcome = await gateway.complete(_with_fallback("again"))
    assert outcome.ok and outcome.used_fallback and outcome.attempts == 1
    assert [r.model for r in fake.requests[sent:]] == ["small"]
    # Once the cool-down is over and the primary answers again, it is used again.
    clock.now += 60
    back = await gateway.complete(_with_fallback("later"))
    assert back.ok and not back.used_fallback and back.model == "big"


async def test_primary_only_gets_its_share_of_the_deadline(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.script(Fault.stall(10), model="big")
    gateway = await make_gateway(provider_for(fake, "primary", timeout_s=60),
                                 provider_for(fake, "backup"), policy=POLICY)
    outcome = await gateway.complete(_with_fallback(deadline_s=1.0))
    assert outcome.ok and outcome.used_fallback
    assert 0.5 <= outcome.latency_s < 1.0


async def test_when_the_fallback_fails_too_both_reasons_are_kept(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.script(*[Fault.server_error(500)] * 2, model="big")
    fake.script(Fault.insufficient_quota(), model="small")
    gateway = await make_gateway(provider_for(fake, "primary"), provider_for(fake, "backup"),
                                 policy=POLICY)
    outcome = await gateway.complete(_with_fallback())
    assert not outcome.ok and outcome.used_fallback
    assert outcome.error_class == "insufficient_quota"
    assert outcome.error == ("primary answered HTTP 500; fallback: backup answered HTTP 429: "
                             "the account has no quota left")


async def test_missing_key_on_the_primary_falls_back_to_offline(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(provider_for(fake, "primary"), secrets=Secrets({}))
    outcome = await gateway.complete(ask("hi", provider="primary", model="big",
                                         fallback_provider="offline"))
    assert outcome.ok and outcome.used_fallback and outcome.provider == "offline"
    assert outcome.text.startswith("[offline]")
    assert fake.requests == []
