"""Token estimates: safe margins, scripts that take more tokens, correction from usage."""

from __future__ import annotations

from core.gateway.model import ChatMessage
from core.gateway.tokens import TokenCalibration, estimate_messages_tokens, estimate_tokens
from tests.fakes.openai_server import FakeOpenAI

from .conftest import GatewayFactory, ask, provider_for


def test_estimates_have_a_margin_and_count_non_ascii_heavier() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a" * 400) == 110          # 100 tokens + 10 %
    assert estimate_tokens("日本語のテキスト") >= 8     # about a token per CJK character
    assert estimate_tokens("🙂" * 10) >= 20
    one = estimate_messages_tokens([ChatMessage("user", "a" * 400)])
    assert one == 118                                  # (100 + 4 per message + 3) * 1.1


def test_calibration_follows_reported_usage() -> None:
    calibration = TokenCalibration()
    messages = [ChatMessage("user", "a" * 400)]
    base = calibration.estimate("p", "m", messages)
    calibration.observe("p", "m", messages, 214)       # this model counts twice as many
    assert calibration.ratio("p", "m") == 2.0
    assert calibration.estimate("p", "m", messages) == 236  # 214 * 1.1, rounded up
    assert base == 118
    assert calibration.ratio("p", "other") == 1.0
    calibration.observe("p", "m", messages, 107)
    assert 1.7 < calibration.ratio("p", "m") < 2.0      # moves, but smoothly
    calibration.observe("p", "m", messages, 10**9)
    assert calibration.ratio("p", "m") <= 4.0          # one odd report cannot wreck budgets


async def test_gateway_corrects_estimates_from_server_usage(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(provider_for(fake))
    request = ask("é" * 2000)  # the fake counts characters; the estimate counts bytes too
    before = gateway.estimate_prompt_tokens("fake", "fake-model", request.messages)
    outcome = await gateway.complete(request)
    after = gateway.estimate_prompt_tokens("fake", "fake-model", request.messages)
    reported = outcome.usage.prompt_tokens
    assert before != after
    assert after < before / 2
    assert abs(after - reported * 1.1) <= 1  # now the server's count plus the margin
