"""One test per fault class: the real SDK over HTTP against the fake, with the gateway's policy."""

from __future__ import annotations

import itertools

import pytest

from core.gateway.gateway import GatewayPolicy
from core.gateway.model import ChatMessage
from tests.fakes.openai_server import FakeOpenAI, Fault

from .conftest import API_KEY, Collector, GatewayFactory, ask, provider_for


def _gaps(fake: FakeOpenAI) -> list[float]:
    times = [r.received_at for r in fake.requests]
    return [b - a for a, b in itertools.pairwise(times)]


async def test_plain_streamed_reply_carries_text_usage_and_timings(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.cached_tokens = 7
    gateway = await make_gateway(provider_for(fake))
    seen = Collector()
    outcome = await gateway.complete(ask("what is a list?"), seen)
    sent = fake.requests[0]
    assert outcome.ok and outcome.error_class is None
    assert outcome.text == fake.reply_for(sent.messages) == seen.text
    assert len(seen.pieces) > 3
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert outcome.usage.prompt_tokens > 0 and not outcome.usage.estimated
    assert outcome.usage.cached_tokens == 7
    assert outcome.usage.total_tokens == (outcome.usage.prompt_tokens
                                          + outcome.usage.completion_tokens)
    assert outcome.attempts == 1 and outcome.waits_s == ()
    assert outcome.finish_reason == "stop"
    assert 0 < outcome.time_to_first_token_s <= outcome.latency_s


@pytest.mark.parametrize(("fault", "expected_wait"), [
    (Fault.rate_limit(retry_after=0.05), 0.05),
    (Fault.rate_limit(retry_after_ms=30), 0.03),
])
async def test_rate_limit_is_retried_after_exactly_retry_after(
        fake: FakeOpenAI, make_gateway: GatewayFactory, fault: Fault,
        expected_wait: float) -> None:
    fake.script(fault)
    gateway = await make_gateway(provider_for(fake))
    outcome = await gateway.complete(ask())
    assert outcome.ok
    assert outcome.attempts == 2 and len(fake.requests) == 2
    assert outcome.waits_s == (pytest.approx(expected_wait),)
    assert _gaps(fake)[0] >= expected_wait
    assert outcome.text == fake.reply_for(fake.requests[1].messages)
    # The SDK's own retries are off: every request is its first try.
    assert {r.headers["x-stainless-retry-count"] for r in fake.requests} == {"0"}


async def test_retry_after_beyond_the_deadline_fails_fast(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.script(Fault.rate_limit(retry_after=30))
    gateway = await make_gateway(provider_for(fake))
    outcome = await gateway.complete(ask(deadline_s=5))
    assert not outcome.ok and outcome.text == ""
    assert outcome.error_class == "rate_limited"
    assert outcome.attempts == 1 and outcome.waits_s == ()
    assert outcome.latency_s < 1.0
    assert "deadline" in outcome.error


async def test_insufficient_quota_is_not_retried(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.script(Fault.insufficient_quota(), Fault.insufficient_quota())
    gateway = await make_gateway(provider_for(fake))
    seen = Collector()
    outcome = await gateway.complete(ask(), seen)
    assert not outcome.ok and outcome.text == "" and seen.pieces == []
    assert outcome.error_class == "insufficient_quota"
    assert outcome.attempts == 1 and len(fake.requests) == 1 and outcome.waits_s == ()
    assert "quota" in outcome.error


@pytest.mark.parametrize("status", [500, 502, 503, 408, 409])
async def test_transient_status_is_retried_with_backoff(
        fake: FakeOpenAI, make_gateway: GatewayFactory, status: int) -> None:
    fake.script(Fault.server_error(status) if status >= 500 else Fault.http_error(status))
    gateway = await make_gateway(provider_for(fake))
    outcome = await gateway.complete(ask())
    assert outcome.ok and outcome.text == fake.reply_for(fake.requests[1].messages)
    assert outcome.attempts == 2
    assert outcome.waits_s == (pytest.approx(0.005),)  # full jitter: draw 0.5 * base 10 ms


async def test_persistent_server_errors_give_up_after_max_attempts_with_growing_waits(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.script(*[Fault.server_error(503)] * 4)
    gateway = await make_gateway(provider_for(fake))
    seen = Collector()
    outcome = await gateway.complete(ask(), seen)
    assert not outcome.ok and outcome.text == "" and seen.pieces == []
    assert outcome.error_class == "server_error"
    assert outcome.error == "fake answered HTTP 503"
    assert outcome.attempts == 4 and len(fake.requests) == 4
    assert outcome.waits_s == pytest.approx((0.005, 0.01, 0.02))


async def test_backoff_waits_are_capped() -> None:
    policy = GatewayPolicy(backoff_base_s=0.5, backoff_cap_s=8.0)
    assert [policy.backoff(n, 1.0) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 8, 8]
    assert policy.backoff(3, 0.0) == 0.0


async def test_stall_past_the_timeout_is_retried(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.script(Fault.stall(10))
    gateway = await make_gateway(provider_for(fake, timeout_s=0.2))
    outcome = await gateway.complete(ask())
    assert outcome.ok and outcome.text == fake.reply_for(fake.requests[1].messages)
    assert outcome.attempts == 2 and len(outcome.waits_s) == 1
    assert 0.2 <= outcome.latency_s < 2.0


async def test_stall_past_the_deadline_fails_with_a_timeout(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.script(Fault.stall(10))
    gateway = await make_gateway(provider_for(fake, timeout_s=60))
    outcome = await gateway.complete(ask(deadline_s=0.3))
    assert not outcome.ok and outcome.error_class == "timeout"
    assert outcome.attempts == 1
    assert 0.3 <= outcome.latency_s < 1.5
    assert "0.3 s deadline" in outcome.error


@pytest.mark.parametrize("fault", [Fault.drop_connection(0), Fault.stream_error(0)])
async def test_stream_broken_before_any_text_is_retried(
        fake: FakeOpenAI, make_gateway: GatewayFactory, fault: Fault) -> None:
    fake.script(fault)
    gateway = await make_gateway(provider_for(fake))
    seen = Collector()
    outcome = await gateway.complete(ask(), seen)
    assert outcome.ok and not outcome.truncated
    assert outcome.attempts == 2
    assert outcome.text == seen.text == fake.reply_for(fake.requests[1].messages)


@pytest.mark.parametrize(("fault", "error_class"), [
    (Fault.drop_connection(after_chunks=2), "connection_error"),
    (Fault.stream_error(after_chunks=2), "stream_error"),
])
async def test_stream_broken_after_text_ends_with_a_marker(
        fake: FakeOpenAI, make_gateway: GatewayFactory, fault: Fault, error_class: str) -> None:
    fake.script(fault)
    gateway = await make_gateway(provider_for(fake))
    seen = Collector()
    outcome = await gateway.complete(ask(), seen)
    full = fake.reply_for(fake.requests[0].messages)
    assert outcome.ok and outcome.truncated
    assert outcome.attempts == 1 and len(fake.requests) == 1
    assert outcome.text == " ".join(full.split()[:2]) + " " + " […]"
    assert seen.text == outcome.text  # the user saw exactly what the outcome records
    assert outcome.error_class == error_class
    assert outcome.finish_reason == "truncated"


def _long_history(turns: int) -> tuple[ChatMessage, ...]:
    history: list[ChatMessage] = []
    for n in range(turns):
        history += [ChatMessage("user", f"question {n}"), ChatMessage("assistant", f"answer {n}")]
    return tuple(history)


async def test_context_length_exceeded_shrinks_and_tries_once_more(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.script(Fault.context_length_exceeded())
    gateway = await make_gateway(provider_for(fake))
    outcome = await gateway.complete(ask("latest", history=_long_history(4)))
    first, second = (r.messages for r in fake.requests)
    assert outcome.ok and outcome.attempts == 2 and outcome.waits_s == ()
    assert len(first) == 10
    assert second[0] == {"role": "system", "content": "You are a test."}
    assert second[-1] == {"role": "user", "content": "latest"}
    # The oldest half of the 9 history messages (4 of them) is gone; the newest stay.
    assert [m["content"] for m in second[1:-1]] == [
        "question 2", "answer 2", "question 3", "answer 3"]
    assert outcome.text == fake.reply_for(second)


async def test_context_length_exceeded_twice_fails_without_more_tries(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.script(Fault.context_length_exceeded(), Fault.context_length_exceeded())
    gateway = await make_gateway(provider_for(fake))
    outcome = await gateway.complete(ask("latest", history=_long_history(4)))
    assert not outcome.ok and outcome.error_class == "context_length_exceeded"
    assert outcome.attempts == 2 and len(fake.requests) == 2
    assert "too long" in outcome.error


async def test_authentication_failure_is_not_retried_and_names_the_variable(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.script(Fault.http_error(401, code="invalid_api_key"))
    gateway = await make_gateway(provider_for(fake))
    outcome = await gateway.complete(ask())
    assert not outcome.ok and outcome.error_class == "authentication"
    assert outcome.attempts == 1
    assert "FAKE_OPENAI_KEY" in outcome.error


async def test_non_streaming_requests_follow_the_same_policy(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.script(Fault.server_error(502), Fault.drop_connection())
    gateway = await make_gateway(provider_for(fake))
    seen = Collector()
    outcome = await gateway.complete(ask(stream=False), seen)
    assert outcome.ok and outcome.attempts == 3
    assert "stream" not in fake.requests[-1].body
    assert outcome.text == seen.text == fake.reply_for(fake.requests[-1].messages)
    assert not outcome.usage.estimated


@pytest.mark.parametrize("stream", [True, False])
async def test_a_reply_that_is_not_a_completion_is_a_bad_response_and_not_retried(
        fake: FakeOpenAI, make_gateway: GatewayFactory, stream: bool) -> None:
    fake.script(Fault.garbage())
    gateway = await make_gateway(provider_for(fake))
    outcome = await gateway.complete(ask(stream=stream))
    assert not outcome.ok and outcome.error_class == "bad_response"
    assert outcome.attempts == 1 and len(fake.requests) == 1


async def test_server_specific_parameters_reach_the_server_as_they_are(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    # the request's own fields stay the gateway's, whatever the config or persona adds
    gateway = await make_gateway(provider_for(fake, extra_body={
        "top_k": 40, "model": "from-config", "stream": True, "stream_options": {}}))
    request = ask(params={"min_p": 0.05, "model": "from-params"}, stream=False)
    outcome = await gateway.complete(request)
    sent = fake.requests[0].body
    assert outcome.ok and outcome.text == fake.reply_for(sent["messages"])
    assert sent["top_k"] == 40 and sent["min_p"] == 0.05
    assert sent["model"] == request.model
    assert "stream" not in sent and "stream_options" not in sent


ALL_FAULTS = [
    Fault.rate_limit(retry_after=30), Fault.insufficient_quota(), Fault.server_error(500),
    Fault.http_error(401), Fault.http_error(404), Fault.http_error(400, code="bad"),
    Fault.context_length_exceeded(), Fault.stall(10), Fault.drop_connection(2),
    Fault.stream_error(2), Fault.garbage(),
]


@pytest.mark.parametrize("fault", ALL_FAULTS, ids=lambda f: f"{f.kind}-{f.status}-{f.code}")
async def test_no_secret_or_raw_body_ever_reaches_the_outcome(
        fake: FakeOpenAI, make_gateway: GatewayFactory, fault: Fault,
        caplog: pytest.LogCaptureFixture) -> None:
    # The fake echoes the Authorization header in its error bodies, as some servers do.
    fake.script(*[fault] * 4)
    gateway = await make_gateway(provider_for(fake, timeout_s=0.2),
                                 policy=GatewayPolicy(max_attempts=2, backoff_base_s=0.001))
    with caplog.at_level("DEBUG", logger="core.gateway"):
        outcome = await gateway.complete(ask(deadline_s=3))
    assert outcome.error
    for text in (outcome.error, outcome.text, caplog.text):
        assert API_KEY not in text
        assert "Bearer" not in text and "scripted" not in text
        assert "Traceback" not in text
