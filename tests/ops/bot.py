"""The whole bot in this process, wired like ``personae run`` wires it with observability:
the real disnake client against the Discord emulator, the real dispatcher and event log,
the real model gateway against the fake OpenAI server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry

import eventstore
from core.adapters.discord import PLATFORM, DiscordAdapter, DiscordAdapterSettings
from core.app import build_dispatcher
from core.commands import CommandSet
from core.config import AdminSettings, Config, DatabaseSettings, MetricsSettings, ProviderSettings
from core.credentials import Secrets
from core.dispatcher.dispatcher import Dispatcher, DispatcherSettings
from core.dispatcher.projection import projections
from core.gateway.gateway import ModelGateway
from core.ops.observability import Observability, start_observability
from core.personas.loader import load_persona_text
from core.personas.model import Persona
from core.personas.registry import PersonaRegistry
from eventstore import EventStore
from tests.fakes.discord import DiscordEmulator, fast_client_options, running_client
from tests.fakes.openai_server import FakeOpenAI


def persona(persona_id: str = "ada", extra: str = "") -> Persona:
    text = (f"id: {persona_id}\nname: {persona_id.capitalize()}\n"
            "model: {provider: fake, name: fake-model}\n"
            "prompt:\n  system: You are a test persona.\n" + extra)
    return load_persona_text(text, file=f"{persona_id}.yaml", defaults={},
                             known_providers=("fake", "offline"))


def ops_config(folder: Path, port: int | None = 0) -> Config:
    """A Config for start_observability: the log in ``folder``, the endpoint on a free port."""
    return Config(source=folder / "config.yaml",
                  database=DatabaseSettings(url=f"sqlite:///{folder / 'log.db'}",
                                            path=folder / "log.db", synchronous="normal"),
                  personas_dir=folder / "personas", metrics=MetricsSettings(port=port))


async def open_store(path: Path) -> EventStore:
    return await eventstore.open_store(path, synchronous="normal", projections=projections())


@dataclass
class ObservedBot:
    emu: DiscordEmulator
    adapter: DiscordAdapter
    dispatcher: Dispatcher
    store: EventStore
    ops: Observability

    async def get(self, path: str) -> tuple[int, str]:
        """GET ``path`` from the ops endpoint: (status, body)."""
        return await http_get(self.ops.server.url + path)


async def http_get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


@contextlib.asynccontextmanager
async def observed_bot(emu: DiscordEmulator, folder: Path, personas: list[Persona],
                       fake: FakeOpenAI) -> AsyncIterator[ObservedBot]:
    """Start everything; yields once the gateway is connected and catch-up is done."""
    store = await open_store(folder / "log.db")
    ops = await start_observability(ops_config(folder), store, registry=CollectorRegistry())
    registry = PersonaRegistry(personas)
    gateway = ModelGateway({"fake": ProviderSettings("fake", base_url=fake.base_url)},
                           Secrets({}))
    adapter = DiscordAdapter(ops.store, registry, DiscordAdapterSettings(),
                             client_options=fast_client_options())
    dispatcher = build_dispatcher(ops.store, registry, ops.timed_model(gateway),
                                  {PLATFORM: adapter.sink}, DispatcherSettings(shutdown_deadline_s=5))
    adapter.attach(dispatcher, CommandSet(dispatcher=dispatcher, personas=registry,
                                          admins=AdminSettings()))
    await dispatcher.start(schedule_resets=False)
    try:
        # a restarted bot waits for the identify window its previous run opened
        async with running_client(adapter.client, emu.token, identify_wait=emu.identify_wait):
            await adapter.caught_up.wait()
            yield ObservedBot(emu, adapter, dispatcher, store, ops)
            adapter.stop_intake()
            await dispatcher.shutdown(5)
            await adapter.close()
    finally:
        await gateway.aclose()
        await ops.close()
        await store.close()
