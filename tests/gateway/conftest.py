"""Fixtures for the gateway tests: a fake OpenAI server and gateways pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from core.config import ProviderSettings
from core.credentials import Secrets
from core.gateway.gateway import GatewayPolicy, ModelGateway
from core.gateway.model import ChatMessage, ModelRequest
from tests.fakes.openai_server import FakeOpenAI

API_KEY = "sk-test-0123456789abcdefSECRET"
KEY_ENV = "FAKE_OPENAI_KEY"

# Short, deterministic backoff: with draw() == 0.5 the waits are 5 ms, 10 ms, 20 ms.
FAST_POLICY = GatewayPolicy(backoff_base_s=0.01, backoff_cap_s=0.1)


class ManualClock:
    """A clock tests move by hand; its sleep advances it instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


def provider_for(fake: FakeOpenAI, name: str = "fake", **overrides: Any) -> ProviderSettings:
    """Provider settings pointing at ``fake`` with the test key."""
    settings: dict[str, Any] = {"base_url": fake.base_url, "api_key_env": KEY_ENV,
                                "timeout_s": 5.0}
    settings.update(overrides)
    return ProviderSettings(name=name, **settings)


GatewayFactory = Callable[..., Awaitable[ModelGateway]]


@pytest.fixture
async def make_gateway() -> AsyncIterator[GatewayFactory]:
    """Builds gateways (closed at the end): ``await make_gateway(*providers, policy=...)``."""
    made: list[ModelGateway] = []

    async def build(*providers: ProviderSettings, policy: GatewayPolicy = FAST_POLICY,
                    secrets: Secrets | None = None, **kwargs: Any) -> ModelGateway:
        gateway = ModelGateway(
            {p.name: p for p in providers},
            secrets or Secrets({KEY_ENV: API_KEY}),
            policy=policy, draw=lambda: 0.5, **kwargs,
        )
        made.append(gateway)
        return gateway

    yield build
    for gateway in made:
        await gateway.aclose()


def ask(text: str = "hello there", *, provider: str = "fake", model: str = "fake-model",
        history: tuple[ChatMessage, ...] = (), **fields: Any) -> ModelRequest:
    """A request with a system prompt, ``history`` and the user's ``text``."""
    messages = (ChatMessage("system", "You are a test."), *history, ChatMessage("user", text))
    return ModelRequest(provider=provider, model=model, messages=messages, **fields)


class Collector:
    """An on_delta callback that keeps what was streamed."""

    def __init__(self) -> None:
        self.pieces: list[str] = []

    async def __call__(self, piece: str) -> None:
        self.pieces.append(piece)

    @property
    def text(self) -> str:
        return "".join(self.pieces)
