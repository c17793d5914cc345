"""Shared pieces for the dispatcher tests: personas from real YAML, a real event store,
the real model gateway (against the fake OpenAI server or the offline provider) and
a recording adapter."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import eventstore
from core.app import build_dispatcher
from core.config import ProviderSettings
from core.credentials import Secrets
from core.dispatcher.dispatcher import Dispatcher, DispatcherSettings
from core.dispatcher.messages import (
    Author,
    DeliveryReceipt,
    InboundMessage,
    ModerationAlert,
    Notice,
    OutboundReply,
    ReplyTarget,
)
from core.dispatcher.projection import projections
from core.gateway.gateway import ModelGateway
from core.moderation.moderator import Moderator
from core.personas.loader import load_persona_text
from core.personas.model import Persona
from core.personas.registry import PersonaRegistry
from eventstore import EventStore
from tests.fakes.openai_server import FakeOpenAI

PROVIDERS = ("fake", "offline")


def persona_yaml(persona_id: str = "ada", *, provider: str = "fake", extra: str = "") -> str:
    """A small persona file; ``extra`` is appended YAML (top-level keys)."""
    return (
        f"id: {persona_id}\nname: {persona_id.capitalize()}\n"
        f"model: {{provider: {provider}, name: fake-model}}\n"
        "prompt:\n  system: 'You are {persona}. You talk with {user} in {channel}.'\n"
        + extra
    )


def load_persona(persona_id: str = "ada", *, provider: str = "fake", extra: str = "") -> Persona:
    """A persona through the real loader (so its version can be rebuilt from the log)."""
    return load_persona_text(persona_yaml(persona_id, provider=provider, extra=extra),
                             file=f"{persona_id}.yaml", defaults={}, known_providers=PROVIDERS)


_ids = itertools.count(1)


def human(author: str = "u1", text: str = "hello", *, channel: str = "c1", guild: str | None = "g1",
          message_id: str | None = None, name: str | None = None, **fields: object
          ) -> InboundMessage:
    """An inbound message from a person (unique id unless given)."""
    roles = frozenset(fields.pop("roles", ()))  # type: ignore[arg-type]
    is_bot = bool(fields.pop("is_bot", False))
    return InboundMessage(
        platform="test", message_id=message_id or f"m{next(_ids)}", channel_id=channel,
        author=Author(id=author, display_name=name or author.upper(), is_bot=is_bot, roles=roles),
        text=text, guild_id=guild, **fields)  # type: ignore[arg-type]


@dataclass
class RecordingSink:
    """An adapter that records what it is given, with optional scripted delays."""

    replies: list[OutboundReply] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    alerts: list[ModerationAlert] = field(default_factory=list)
    deltas: list[tuple[str, str]] = field(default_factory=list)
    fail_with: Exception | None = None
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def deliver(self, reply: OutboundReply) -> DeliveryReceipt:
        if self.fail_with is not None:
            raise self.fail_with
        self.replies.append(reply)
        return DeliveryReceipt(message_ids=(f"out{next(self._ids)}",))

    async def notice(self, notice: Notice) -> None:
        self.notices.append(notice)

    async def alert(self, alert: ModerationAlert) -> None:
        self.alerts.append(alert)

    async def typing(self, target: ReplyTarget, persona_id: str) -> None:
        return None

    async def stream_delta(self, target: ReplyTarget, persona_id: str, text: str) -> None:
        self.deltas.append((persona_id, text))


@dataclass
class Harness:
    """A dispatcher wired to real parts, plus handles on them for assertions."""

    store: EventStore
    dispatcher: Dispatcher
    sink: RecordingSink
    registry: PersonaRegistry
    gateway: ModelGateway

    async def events(self, *types: str) -> list:
        return await self.store.read_all(types=types or None)


async def open_store(path: Path) -> EventStore:
    return await eventstore.open_store(path, synchronous="normal", projections=projections())


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


def gateway_for(fake: FakeOpenAI | None) -> ModelGateway:
    providers = {}
    if fake is not None:
        providers["fake"] = ProviderSettings("fake", base_url=fake.base_url, max_concurrency=64)
    return ModelGateway(providers, Secrets({}))


async def make_harness(tmp_path: Path, personas: Iterable[Persona], fake: FakeOpenAI | None, *,
                       settings: DispatcherSettings | None = None,
                       clock=None, start: bool = True, store: EventStore | None = None,
                       moderator: Moderator | None = None) -> Harness:
    store = store or await open_store(tmp_path / "log.db")
    registry = PersonaRegistry(personas)
    gateway = gateway_for(fake)
    sink = RecordingSink()
    kwargs = {"clock": clock} if clock is not None else {}
    dispatcher = build_dispatcher(store, registry, gateway, {"test": sink}, settings,
                                  moderator=moderator, **kwargs)
    if start:
        await dispatcher.start(schedule_resets=False)
    return Harness(store, dispatcher, sink, registry, gateway)


async def close_harness(harness: Harness) -> None:
    await harness.dispatcher.shutdown(5)
    await harness.gateway.aclose()
    await harness.store.close()


async def settle(result) -> list:
    """Wait for every reply an ingest started."""
    return list(await asyncio.gather(*result.replies))
