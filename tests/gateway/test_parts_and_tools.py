"""Messages as parts and tool calls through the real gateway and SDK against the fake
server; image token estimates."""

from __future__ import annotations

import base64
import json

import pytest

from core.config import ProviderSettings
from core.credentials import Secrets
from core.gateway.gateway import ModelGateway
from core.gateway.model import (
    ChatMessage,
    ImagePart,
    ModelRequest,
    TextPart,
    ToolCall,
    ToolDefinition,
)
from core.gateway.tokens import estimate_messages_tokens, image_tokens
from tests.fakes.openai_server import FakeOpenAI, Fault

ROLL = ToolDefinition(name="roll", description="Roll dice.", parameters={
    "type": "object", "properties": {"expression": {"type": "string"}}})
PIXEL = base64.b64encode(b"\x89PNG fake").decode()


def _gateway(fake: FakeOpenAI, **settings: object) -> ModelGateway:
    return ModelGateway({"fake": ProviderSettings("fake", base_url=fake.base_url,
                                                  **settings)},  # type: ignore[arg-type]
                        Secrets({}))


def _request(*messages: ChatMessage, stream: bool = True, **fields: object) -> ModelRequest:
    return ModelRequest(provider="fake", model="m", messages=messages, stream=stream,
                        **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("stream", [True, False])
async def test_tool_calls_are_parsed_streamed_or_whole(fake: FakeOpenAI, stream: bool) -> None:
    fake.script(Fault.tool_calls(("roll", {"expression": "2d6+3"}), ("roll", {"expression": "d4"}),
                                 text="Rolling."))
    gateway = _gateway(fake)
    try:
        outcome = await gateway.complete(_request(ChatMessage("user", "roll"), stream=stream,
                                                  tools=(ROLL,)))
    finally:
        await gateway.aclose()
    assert outcome.ok and outcome.text == "Rolling."
    assert [(c.name, json.loads(c.arguments)) for c in outcome.tool_calls] == [
        ("roll", {"expression": "2d6+3"}), ("roll", {"expression": "d4"})]
    assert len({c.id for c in outcome.tool_calls}) == 2
    assert fake.requests[-1].body["tools"] == [ROLL.to_openai()]


async def test_a_provider_without_tools_is_offered_none(fake: FakeOpenAI) -> None:
    fake.script(Fault.tool_calls(("roll", {"expression": "d6"})))
    gateway = _gateway(fake, tools=("gpt-*",))
    try:
        outcome = await gateway.complete(_request(ChatMessage("user", "roll"), tools=(ROLL,)))
    finally:
        await gateway.aclose()
    assert "tools" not in fake.requests[-1].body
    assert outcome.tool_calls == () and outcome.text.startswith("reply ")
    assert fake.pending_faults() == 1
    assert not gateway.supports_tools("fake", "m") and gateway.supports_tools("fake", "gpt-4o")


async def test_parts_tool_calls_and_results_are_sent_as_the_api_takes_them(
        fake: FakeOpenAI) -> None:
    call = ToolCall(id="c1", name="roll", arguments='{"expression": "d6"}')
    image = ImagePart(media_type="image/png", data=PIXEL, url="https://cdn.example/p.png",
                      filename="p.png", width=10, height=10)
    messages = (ChatMessage("user", (TextPart(text="see"), image), name="grace"),
                ChatMessage("assistant", "", tool_calls=(call,)),
                ChatMessage("tool", "d6: [4] = 4", tool_call_id="c1"))
    for mode, url in (("data_url", f"data:image/png;base64,{PIXEL}"),
                      ("url", "https://cdn.example/p.png")):
        gateway = _gateway(fake, images=mode)
        try:
            await gateway.complete(_request(*messages, tools=(ROLL,)))
        finally:
            await gateway.aclose()
        assert fake.requests[-1].body["messages"] == [
            {"role": "user", "name": "grace", "content": [
                {"type": "text", "text": "see"},
                {"type": "image_url", "image_url": {"url": url, "detail": "auto"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "roll", "arguments": '{"expression": "d6"}'}}]},
            {"role": "tool", "content": "d6: [4] = 4", "tool_call_id": "c1"}]


def test_image_tokens_follow_the_published_tile_formula() -> None:
    assert image_tokens(1024, 1024) == 765          # 768x768: 4 tiles
    assert image_tokens(2048, 4096) == 1105         # 1024x2048 -> 768x1536: 6 tiles
    assert image_tokens(300, 200) == 255            # 1 tile
    assert image_tokens(4000, 3000, "low") == 85
    assert image_tokens(None, None) == 1105         # unknown: costed as a large one
    assert image_tokens(1024, 1024, flat=576) == 576
    text = ChatMessage("user", "hello")
    with_image = ChatMessage("user", (TextPart(text="hello"), ImagePart(
        media_type="image/png", data=PIXEL, width=1024, height=1024)))
    plain = estimate_messages_tokens([text])
    assert estimate_messages_tokens([with_image]) >= plain + 765
    assert estimate_messages_tokens([with_image], image_flat=10) < plain + 20


async def test_the_offline_provider_calls_roll_when_asked_to_roll() -> None:
    gateway = ModelGateway({}, Secrets({}))
    asked = (ChatMessage("system", "You are Ada."), ChatMessage("user", "please roll 3d8+2"),
             ChatMessage("system", "Keep it short."))  # post-history instructions come last
    request = ModelRequest(provider="offline", model="offline", messages=asked, tools=(ROLL,))
    outcome = await gateway.complete(request)
    (call,) = outcome.tool_calls
    assert (call.name, json.loads(call.arguments)) == ("roll", {"expression": "3d8+2"})
    answered = (*asked, ChatMessage("assistant", "", tool_calls=(call,)),
                ChatMessage("tool", "3d8+2: [1, 2, 3] + 2 = 8", tool_call_id=call.id))
    outcome = await gateway.complete(ModelRequest(provider="offline", model="offline",
                                                  messages=answered, tools=(ROLL,)))
    assert outcome.tool_calls == ()
    assert outcome.text.endswith("roll said: 3d8+2: [1, 2, 3] + 2 = 8")
    plain = await gateway.complete(ModelRequest(provider="offline", model="offline",
                                                messages=asked))
    assert plain.tool_calls == () and "You said: please roll 3d8+2" in plain.text
