"""The application wiring: one place that builds the runtime from config, for
``personae run``, ``personae chat``, the benchmarks and the tests.

:func:`build_dispatcher` assembles the dispatcher from its parts. :class:`Runtime`
opens everything a running bot needs (the event log with its projections, the
persona registry, the model gateway, the dispatcher, the command set), plugs in the
platforms (Discord, the console) through the small :class:`Platform` protocol, and
shuts it all down in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from eventstore import EventStore, open_store
from eventstore.postgres.target import PostgresTarget

from .commands import CommandSet, Reload
from .config import Config
from .context.blobs import AttachmentContent
from .context.history import ConversationHistory
from .coordination import Coordinator, LocalCoordinator, PostgresCoordinator
from .credentials import Secrets
from .dispatcher.admission import Admission, PersonaSource
from .dispatcher.dispatcher import Dispatcher, DispatcherParts, DispatcherSettings
from .dispatcher.dmturns import OnePersonaPerDm
from .dispatcher.projection import projections
from .dispatcher.roles import RoleLookup, RoleResolver
from .dispatcher.sink import ReplySink
from .dispatcher.workqueue import WorkQueue
from .events import upcasters
from .gateway.model import ModelClient
from .limits.quotas import QuotaLedger
from .limits.schedule import QuotaResetScheduler
from .moderation.moderator import Moderator
from .personas.model import Persona
from .personas.registry import PersonaRegistry
from .personas.versions import VersionRecorder
from .tools.toolbox import Toolbox

if TYPE_CHECKING:
    from .gateway.gateway import ModelGateway

log = logging.getLogger(__name__)


def build_dispatcher(store: EventStore, personas: PersonaSource, model: ModelClient,
                     sinks: Mapping[str, ReplySink],
                     settings: DispatcherSettings | None = None, *,
                     clock: Callable[[], float] = time.time,
                     toolbox: Toolbox | None = None,
                     roles: Mapping[str, RoleResolver] | None = None,
                     moderator: Moderator | None = None) -> Dispatcher:
    """A dispatcher over ``store`` answering as ``personas`` through ``model``, delivering
    to ``sinks`` (one per platform name), within ``settings`` (default: the defaults),
    calling personas' tools with ``toolbox`` (default: one that knows no secrets; the
    dispatcher closes it at shutdown); ``roles`` looks up the roles a platform did not
    send (per platform name); ``moderator`` runs the moderation step (None: off; the
    dispatcher closes it at shutdown)."""
    settings = settings or DispatcherSettings()
    queue = WorkQueue(max_pending=settings.queue_size, max_concurrent=settings.max_concurrent)
    ledger = QuotaLedger(store)
    versions = VersionRecorder(store)
    admission = Admission(personas=personas, queue=queue, ledger=ledger, versions=versions,
                          admins=settings.admins, clock=clock,
                          policy=OnePersonaPerDm(personas=personas, store=store,
                                                 default_persona=settings.dm_default_persona),
                          roles=RoleLookup(dict(roles or {}), settings.admins),
                          allow_nsfw_dms=settings.allow_nsfw_dms,
                          bypass_roles=moderator.settings.bypass_roles if moderator else frozenset())
    return Dispatcher(DispatcherParts(
        store=store, personas=personas, model=model, sinks=dict(sinks), queue=queue,
        history=ConversationHistory(store, max_events=settings.history_cache_events),
        ledger=ledger, versions=versions, admission=admission,
        resets=QuotaResetScheduler(store, clock, on_reset=ledger.observe_reset), clock=clock,
        attachments=AttachmentContent(store), toolbox=toolbox or Toolbox(Secrets({})),
        moderator=moderator,
    ), settings)


async def open_log_store(config: Config, secrets: Secrets | None = None) -> EventStore:
    """The event log config.yaml names, with the bot's projections and upcasters, as its
    one writer (a second bot on the same SQLite file is refused, naming the first);
    ``secrets`` (default: the environment over config.yaml's .env) hold its password."""
    secrets = secrets or Secrets.load(config.env_file)
    return await open_store(config.database.url, synchronous=config.database.synchronous,
                            upcasters=upcasters(), projections=projections(),
                            password=config.database.password(secrets), lock=True,
                            seal=config.privacy.encrypt)


async def open_coordinator(config: Config, secrets: Secrets) -> Coordinator:
    """Who runs which shard, agreed through the log's PostgreSQL server (its own tables,
    in the log's schema); for an SQLite log, which one process uses, nobody to agree with."""
    count = config.discord.shard_count or 1
    if config.database.url.split("://", 1)[0] not in ("postgresql", "postgres"):
        return LocalCoordinator(count)
    target = PostgresTarget.parse(config.database.url, password=config.database.password(secrets))
    return await asyncio.to_thread(PostgresCoordinator, target, shard_count=count,
                                   static=config.discord.shards != "auto")


class Platform(Protocol):
    """A transport (Discord, the console) as the runtime sees it."""

    name: str
    """The platform's name in events and streams (``discord``, ``console``)."""

    @property
    def sink(self) -> ReplySink:
        """Where the dispatcher delivers this platform's replies."""
        ...

    @property
    def roles(self) -> RoleResolver | None:
        """How to look up roles the platform's messages do not carry (None: they always
        carry them, or the platform has none)."""
        ...

    def attach(self, dispatcher: Dispatcher, commands: CommandSet) -> None:
        """Take messages to ``dispatcher``; offer ``commands`` to the people here."""
        ...

    def stop_intake(self) -> None:
        """Take no more messages (shutdown has begun; replies in flight still go out)."""
        ...

    async def close(self) -> None:
        """Let go of connections (after the dispatcher has shut down)."""
        ...


def missing_keys(config: Config, secrets: Secrets, personas: Sequence[Persona]
                 ) -> dict[str, list[str]]:
    """The API key variables that are unset for a provider some of ``personas`` use
    (as primary or fallback): variable -> the persona ids that need it."""
    missing: dict[str, list[str]] = {}
    for persona in personas:
        used = [persona.model.provider] + (
            [persona.model.fallback.provider] if persona.model.fallback else [])
        for name in dict.fromkeys(used):
            provider = config.providers.get(name)
            key_env = provider.key_env if provider is not None else None
            if key_env and secrets.get(key_env) is None:
                missing.setdefault(key_env, []).append(persona.id)
    return missing


def missing_key_message(missing: Mapping[str, Sequence[str]]) -> str | None:
    """One sentence per unset key saying who cannot answer and how to fix it (None: all set)."""
    if not missing:
        return None
    lines = [f"{key_env} is not set, so {', '.join(ids)} cannot answer (every reply would be "
             f"a failure notice): set {key_env} in the environment or in a .env file next to "
             "config.yaml, or point the provider at a local OpenAI-compatible server "
             "(providers: in config.yaml)" for key_env, ids in missing.items()]
    return "\n".join(lines)


def moderator_for(config: Config, secrets: Secrets) -> Moderator | None:
    """The moderation step config.yaml describes (None: off). A provider whose key is
    not set fails every check, which ``moderation.fail`` then judges (and the log says)."""
    settings = config.moderation
    if not settings.enabled:
        return None
    provider = None
    if settings.provider is not None:
        # the SDK: imported only when used (see Runtime.open)
        from .gateway.gateway import PLACEHOLDER_API_KEY
        from .moderation.openai_provider import OpenAIModeration

        provider_settings = config.providers[settings.provider]
        key_env = provider_settings.key_env
        key = secrets.get(key_env) if key_env else None
        if key_env and key is None:
            log.error("moderation.provider %s needs %s, which is not set: every check will "
                      "fail (moderation.fail: %s)", settings.provider, key_env, settings.fail)
        provider = OpenAIModeration(provider_settings, key or PLACEHOLDER_API_KEY, settings.model)
    return Moderator(settings, provider)


PlatformFactory = Callable[[EventStore, PersonaRegistry], Platform]
"""Builds a platform once the log and the registry exist."""


@dataclass(kw_only=True)
class Runtime:
    """Everything a running bot holds, opened by :meth:`open`, closed by :meth:`close`."""

    config: Config
    store: EventStore
    registry: PersonaRegistry
    gateway: ModelGateway
    dispatcher: Dispatcher
    commands: CommandSet
    platforms: Sequence[Platform] = field(default_factory=tuple)
    owns_store: bool = True

    @classmethod
    async def open(cls, config: Config, secrets: Secrets, *, registry: PersonaRegistry,
                   platforms: Sequence[PlatformFactory] = (), reload: Reload | None = None,
                   model: Callable[[ModelGateway], ModelClient] | None = None,
                   store: EventStore | None = None) -> Runtime:
        """Open the log (unless given: then closing it is the caller's), build the
        gateway, the platforms and the dispatcher; ``model`` may wrap the gateway
        (metrics time its first tokens)."""
        # imported here: the SDK costs a second and tens of MB, and build_dispatcher
        # (benchmarks, tests with a model of their own) needs none of it
        from .gateway.gateway import ModelGateway

        owns_store = store is None
        store = store or await open_log_store(config, secrets)
        gateway = ModelGateway(config.providers, secrets)
        built = [factory(store, registry) for factory in platforms]
        dispatcher = build_dispatcher(
            store, registry, model(gateway) if model is not None else gateway,
            {p.name: p.sink for p in built}, DispatcherSettings.from_config(config),
            toolbox=Toolbox(secrets),
            roles={p.name: p.roles for p in built if p.roles is not None},
            moderator=moderator_for(config, secrets))
        runtime = cls(config=config, store=store, registry=registry, gateway=gateway,
                      dispatcher=dispatcher,
                      commands=CommandSet(dispatcher=dispatcher, personas=registry,
                                          admins=config.admins, reload=reload),
                      platforms=tuple(built), owns_store=owns_store)
        for platform in built:
            platform.attach(dispatcher, runtime.commands)
        return runtime

    async def close(self) -> None:
        """Stop intake, finish replies up to the shutdown deadline, close everything."""
        for platform in self.platforms:
            platform.stop_intake()
        cut = await self.dispatcher.shutdown()
        if cut:
            log.warning("%d repl(ies) did not finish before the deadline", cut)
        for platform in self.platforms:
            await platform.close()
        await self.gateway.aclose()
        if self.owns_store:
            await self.store.close()
