"""The Discord adapter end to end: the real disnake client against the Discord emulator,
the real dispatcher and event log, and the real model gateway (openai SDK against the
fake OpenAI server, or the offline provider)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

import eventstore
from core.adapters.discord import PLATFORM, DiscordAdapter, DiscordAdapterSettings
from core.app import build_dispatcher
from core.commands import CommandSet
from core.config import AdminSettings, ProviderSettings
from core.credentials import Secrets
from core.dispatcher.dispatcher import Dispatcher, DispatcherSettings
from core.dispatcher.projection import projections
from core.gateway.gateway import ModelGateway
from core.moderation.moderator import Moderator
from core.personas.loader import load_persona_text
from core.personas.model import Persona
from core.personas.registry import PersonaRegistry
from core.problems import Problem
from core.tools.toolbox import Toolbox
from eventstore import EventStore, RecordedEvent
from tests.fakes.discord import (
    Channel,
    DiscordEmulator,
    Message,
    fast_client_options,
    running_client,
)
from tests.fakes.openai_server import FakeOpenAI

PROVIDERS = ("fake", "offline")


def persona(persona_id: str = "ada", *, provider: str = "fake", extra: str = "") -> Persona:
    """A persona through the real loader; ``extra`` is more top-level YAML."""
    text = (f"id: {persona_id}\nname: {persona_id.capitalize()}\n"
            f"avatar_url: https://example.org/{persona_id}.png\n"
            f"model: {{provider: {provider}, name: fake-model}}\n"
            "prompt:\n  system: 'You are {persona}, talking with {user} in #{channel}.'\n"
            + extra)
    return load_persona_text(text, file=f"{persona_id}.yaml", defaults={},
                             known_providers=PROVIDERS)


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@dataclass
class Bot:
    """A running bot and handles on its parts."""

    emu: DiscordEmulator
    adapter: DiscordAdapter
    dispatcher: Dispatcher
    store: EventStore
    registry: PersonaRegistry
    gateway: ModelGateway

    async def events(self, *types: str) -> list[RecordedEvent]:
        return await self.store.read_all(types=types or None)

    async def reply_to(self, message: Message, *, channel_id: int | None = None,
                       timeout: float = 5.0) -> Message:  # noqa: ASYNC109
        """The first message the bot (or its webhook) posted after ``message`` in its
        channel (or in ``channel_id``)."""
        where = channel_id or message.channel_id
        return await self.emu.wait_for_message(
            lambda m: m.id > message.id and m.channel_id == where and self.is_ours(m),
            timeout=timeout)

    def is_ours(self, message: Message) -> bool:
        return message.author.id == self.emu.bot_user.id or (
            message.webhook_id is not None and message.interaction_id is None)

    def ours_in(self, channel: Channel) -> list[Message]:
        return [m for m in self.emu.messages_in(channel) if self.is_ours(m)]


def providers(fake: FakeOpenAI | None) -> dict[str, ProviderSettings]:
    found = {"offline": ProviderSettings("offline", kind="offline")}
    if fake is not None:
        found["fake"] = ProviderSettings("fake", base_url=fake.base_url, max_concurrency=32)
    return found


async def open_store(path: Path) -> EventStore:
    return await eventstore.open_store(path, synchronous="normal", projections=projections())


@contextlib.asynccontextmanager
async def running_bot(
    emu: DiscordEmulator, db_path: Path, personas: Iterable[Persona],
    fake: FakeOpenAI | None = None, *, settings: DiscordAdapterSettings | None = None,
    dispatcher_settings: DispatcherSettings | None = None,
    registry: PersonaRegistry | None = None,
    reload: Callable[[], Awaitable[Sequence[Problem]]] | None = None,
    admins: AdminSettings | None = None,
    toolbox: Toolbox | None = None,
    moderator: Moderator | None = None,
) -> AsyncIterator[Bot]:
    """Start the whole bot in this process; shut it down like ``personae run`` does."""
    store = await open_store(db_path)
    registry = registry if registry is not None else PersonaRegistry(personas)
    gateway = ModelGateway(providers(fake), Secrets({}))
    adapter = DiscordAdapter(store, registry, settings or DiscordAdapterSettings(),
                             client_options=fast_client_options())
    dispatcher = build_dispatcher(store, registry, gateway, {PLATFORM: adapter.sink},
                                  dispatcher_settings or DispatcherSettings(shutdown_deadline_s=5),
                                  toolbox=toolbox, roles={PLATFORM: adapter.roles},
                                  moderator=moderator)

    async def reload_and_record() -> Sequence[Problem]:
        problems = await reload() if reload is not None else ()
        await dispatcher.personas_changed()
        return problems

    adapter.attach(dispatcher, CommandSet(dispatcher=dispatcher, personas=registry,
                                          admins=admins or AdminSettings(),
                                          reload=reload_and_record))
    await dispatcher.start(schedule_resets=False)
    try:
        # a restarted bot waits for the identify window its previous run opened
        async with running_client(adapter.client, emu.token, identify_wait=emu.identify_wait):
            await adapter.caught_up.wait()
            yield Bot(emu, adapter, dispatcher, store, registry, gateway)
            adapter.stop_intake()
            await dispatcher.shutdown(5)
            await adapter.close()
    finally:
        await gateway.aclose()
        await store.close()


async def triggers_of(bot: Bot, message: Message) -> list[tuple[str, str]]:
    """(persona, reason) of every trigger the message caused, once it is recorded."""
    await until_recorded(bot, message)
    await bot.dispatcher.wait_idle()
    return [(e.data["persona_id"], e.data["reason"]) for e in await bot.events("PersonaTriggered")
            if e.data["message_id"] == str(message.id)]


async def until_recorded(bot: Bot, message: Message, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Wait until the bot has recorded ``message`` (MessageReceived)."""
    event_id = f"msg:{PLATFORM}:{message.id}"
    deadline = asyncio.get_running_loop().time() + timeout
    while await bot.store.get(event_id) is None:
        assert asyncio.get_running_loop().time() < deadline, f"{event_id} never recorded"
        await asyncio.sleep(0.01)
