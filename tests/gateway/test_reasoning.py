"""Reasoning stays out of what users see, however it arrives."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.gateway.reasoning import ReasoningFilter
from tests.fakes.openai_server import FakeOpenAI, Fault

from .conftest import Collector, GatewayFactory, ask, provider_for

RAW = "<think>Is 2 < 3? Yes.</think>\n\nThe answer is: 2 < 3, <b>yes</b>."
VISIBLE = "The answer is: 2 < 3, <b>yes</b>."


def _feed(pieces: list[str], show: bool = False) -> tuple[str, str]:
    splitter = ReasoningFilter(show=show)
    visible = "".join(splitter.content(p) for p in pieces) + splitter.finish()
    return visible, splitter.reasoning


def test_think_tags_are_removed_at_every_split_point() -> None:
    for i in range(len(RAW) + 1):
        for j in range(i, len(RAW) + 1):
            visible, reasoning = _feed([RAW[:i], RAW[i:j], RAW[j:]])
            assert (visible, reasoning) == (VISIBLE, "Is 2 < 3? Yes."), (i, j)


def test_unclosed_think_hides_the_rest_and_text_without_tags_passes() -> None:
    assert _feed(["Hi <", "thi", "nk>secret"]) == ("Hi ", "secret")
    assert _feed(["a <t", "able>"]) == ("a <table>", "")
    assert _feed(["ends with <th"]) == ("ends with <th", "")


def test_show_keeps_reasoning_visible_in_both_forms() -> None:
    assert _feed([RAW], show=True)[0] == RAW
    splitter = ReasoningFilter(show=True)
    shown = splitter.reasoning_field("hmm") + splitter.content("Answer") + splitter.finish()
    assert shown == "<think>hmm</think>\n\nAnswer"


@pytest.mark.parametrize("via", ["think", "field"])
@pytest.mark.parametrize("stream", [True, False])
async def test_reasoning_is_hidden_from_users_by_default(
        fake: FakeOpenAI, make_gateway: GatewayFactory, via: str, stream: bool) -> None:
    fake.script(Fault.with_reasoning("Secret plan: say hi.", via=via))
    gateway = await make_gateway(provider_for(fake))
    seen = Collector()
    outcome = await gateway.complete(ask(stream=stream), seen)
    expected = fake.reply_for(fake.requests[0].messages)
    assert outcome.ok and outcome.text == seen.text == expected
    assert "Secret" not in seen.text and "think>" not in seen.text
    assert outcome.reasoning == "Secret plan: say hi."
    assert outcome.usage.reasoning_tokens == 4


async def test_reasoning_is_shown_when_the_request_asks(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake.script(Fault.with_reasoning("Secret plan.", via="field"))
    gateway = await make_gateway(provider_for(fake))
    outcome = await gateway.complete(ask(show_reasoning=True))
    assert outcome.text == ("<think>Secret plan.</think>\n\n"
                            + fake.reply_for(fake.requests[0].messages))


async def test_a_stream_broken_during_hidden_reasoning_is_retried(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    thinking = "Long hidden thoughts that go on."
    fake.script(replace(Fault.drop_connection(after_chunks=3), reasoning=thinking,
                        reasoning_via="field"))
    gateway = await make_gateway(provider_for(fake))
    seen = Collector()
    outcome = await gateway.complete(ask(), seen)
    assert outcome.ok and not outcome.truncated and outcome.attempts == 2
    assert seen.text == outcome.text == fake.reply_for(fake.requests[1].messages)
