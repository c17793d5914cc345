"""The built-in offline provider, missing keys, local servers without keys, provider options."""

from __future__ import annotations

from core.config import ProviderSettings, load_config
from core.credentials import Secrets
from core.gateway.model import ChatMessage, ModelRequest
from core.gateway.offline import offline_reply
from tests.fakes.openai_server import FakeOpenAI

from .conftest import API_KEY, Collector, GatewayFactory, ask, provider_for


async def test_offline_provider_is_always_there_and_labelled(
        make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    seen = Collector()
    request = ask("what is a list?", provider="offline", model="any")
    outcome = await gateway.complete(request, seen)
    assert outcome.ok and outcome.provider == "offline"
    assert outcome.text.startswith("[offline] not a language model")
    assert outcome.text.endswith("You said: what is a list?")
    assert outcome.text == seen.text == offline_reply(request.messages)
    assert len(seen.pieces) >= 3
    assert outcome.usage.estimated and outcome.usage.prompt_tokens > 0
    assert outcome.usage.completion_tokens > 0


async def test_offline_replies_tell_prompts_apart(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    same = [await gateway.complete(ask("hi", provider="offline")) for _ in range(2)]
    other = await gateway.complete(ask("hi", provider="offline",
                                       history=(ChatMessage("user", "earlier"),)))
    assert same[0].text == same[1].text
    assert other.text != same[0].text and other.text.endswith("You said: hi")


async def test_missing_key_names_the_variable_and_sends_nothing(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(provider_for(fake), secrets=Secrets({}))
    outcome = await gateway.complete(ask())
    assert not outcome.ok and outcome.error_class == "missing_credentials"
    assert "set the environment variable FAKE_OPENAI_KEY" in outcome.error
    assert outcome.attempts == 0 and fake.requests == []


async def test_default_openai_provider_needs_openai_api_key(
        make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(ProviderSettings("openai"), secrets=Secrets({}))
    outcome = await gateway.complete(ask(provider="openai"))
    assert outcome.error_class == "missing_credentials" and "OPENAI_API_KEY" in outcome.error


async def test_local_server_without_a_key_variable_gets_a_placeholder(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    local = ProviderSettings("ollama", base_url=fake.base_url)
    gateway = await make_gateway(local, secrets=Secrets({}))
    outcome = await gateway.complete(ask(provider="ollama", model="llama3.2"))
    assert outcome.ok and fake.requests[0].model == "llama3.2"


async def test_unknown_provider_is_a_clear_failure(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    outcome = await gateway.complete(ask(provider="nope"))
    assert outcome.error_class == "unknown_provider" and "'nope'" in outcome.error


async def test_provider_headers_body_query_and_params_are_sent(
        fake: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    settings = provider_for(fake, headers={"HTTP-Referer": "https://example.org"},
                            extra_body={"top_k": 20}, extra_query={"api-version": "x1"})
    gateway = await make_gateway(settings)
    request = ModelRequest(provider="fake", model="m", messages=(ChatMessage("user", "hi", name="ada"),),
                           params={"temperature": 0.3, "max_tokens": 3, "model": "ignored"})
    outcome = await gateway.complete(request)
    sent = fake.requests[0]
    assert sent.headers["http-referer"] == "https://example.org"
    assert sent.query == {"api-version": "x1"}
    assert sent.body["top_k"] == 20 and sent.body["temperature"] == 0.3
    assert sent.body["model"] == "m"
    assert sent.body["messages"] == [{"role": "user", "content": "hi", "name": "ada"}]
    assert outcome.finish_reason == "length" and len(outcome.text.split()) == 3
    assert API_KEY not in str(sent.headers)


async def test_clients_are_reused_and_closed(fake: FakeOpenAI,
                                             make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(provider_for(fake))
    for n in range(3):
        assert (await gateway.complete(ask(f"q{n}"))).ok
    assert fake.connections_opened == 1
    await gateway.aclose()


async def test_providers_from_config_yaml_reach_the_server(
        fake: FakeOpenAI, make_gateway: GatewayFactory, tmp_path) -> None:
    (tmp_path / "config.yaml").write_text(
        "providers:\n"
        "  openai:\n    api_key_env: OPENAI_API_KEY\n"
        f"  ollama:\n    base_url: {fake.base_url}\n    timeout: 2s\n    max_concurrency: 1\n",
        encoding="utf-8")
    config = load_config(tmp_path / "config.yaml")
    gateway = await make_gateway(*config.providers.values(), secrets=Secrets({}))
    local = await gateway.complete(ask(provider="ollama", model="llama3.2"))
    remote = await gateway.complete(ask(provider="openai", model="gpt-4o-mini"))
    assert local.ok and local.text == fake.reply_for(fake.requests[0].messages)
    assert remote.error_class == "missing_credentials" and len(fake.requests) == 1
