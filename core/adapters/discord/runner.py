"""Running the Discord bot until SIGINT or SIGTERM: everything ``personae run`` wires up.

The event log, the persona registry with hot reload, the model gateway, the
dispatcher and the Discord adapter; then a clean shutdown in that order reversed:
intake stops, replies in flight finish (up to ``limits.shutdown_deadline``), the
gateway and the log close. A start-up failure the user can fix (rejected token,
refused intent...) is raised as :class:`CannotRun` with one sentence saying what to do.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Sequence

import disnake
import disnake.http

from eventstore import EventStore

from ...config import Config
from ...credentials import Secrets
from ...dispatcher.dispatcher import Dispatcher, DispatcherSettings
from ...dispatcher.projection import DispatchProjection
from ...gateway.gateway import ModelGateway
from ...limits.quotas import QuotaProjection
from ...ops.observability import start_observability
from ...personas.defaults import defaults_from_config, known_providers_from_config
from ...personas.model import Persona
from ...personas.registry import PersonaRegistry, RegistryChange
from ...personas.versions import record_versions
from ...personas.watcher import PersonaWatcher
from .adapter import DiscordAdapter, DiscordAdapterSettings
from .inbound import PLATFORM

log = logging.getLogger(__name__)

INTENT_HELP = (
    "Discord refused the Message Content intent: switch it on in the Developer Portal > "
    "your application > Bot > Privileged Gateway Intents > Message Content Intent, "
    "then run `personae run` again."
)


class CannotRun(Exception):
    """The bot could not run; the message is one sentence saying what to do."""


async def serve(config: Config, secrets: Secrets, token: str) -> None:
    """Run until SIGINT/SIGTERM (or a fatal gateway error), then shut down cleanly."""
    # disnake builds every REST URL from this class attribute; nothing may reset it after
    disnake.http.Route.BASE = config.discord.api_base_url
    store = await EventStore.open(config.database.path, synchronous=config.database.synchronous,
                                  projections=[DispatchProjection(), QuotaProjection()])
    # per-reply log lines; /metrics, /healthz and /readyz when metrics.port is set
    ops = await start_observability(config, store)
    registry = PersonaRegistry()
    gateway = ModelGateway(config.providers, secrets)
    adapter = DiscordAdapter(ops.store, registry, DiscordAdapterSettings(
        catch_up_window_s=config.discord.catch_up_window_s, admins=config.admins))
    dispatcher = Dispatcher(ops.store, registry, ops.timed_model(gateway), {PLATFORM: adapter.sink},
                            DispatcherSettings.from_config(config))
    changes: set[asyncio.Task[None]] = set()
    started = asyncio.Event()

    async def record(personas: Sequence[Persona]) -> None:
        await record_versions(store, personas)

    def changed(change: RegistryChange) -> None:
        if not started.is_set() or not (change.changed or change.retired):
            return  # dispatcher.start() reads the first load itself
        # new quota schedules for changed personas; tracked so shutdown can wait for it
        task = asyncio.create_task(dispatcher.personas_changed())
        changes.add(task)
        task.add_done_callback(changes.discard)

    watcher = PersonaWatcher(
        config.personas_dir, registry, defaults=defaults_from_config(config),
        known_providers=known_providers_from_config(config),
        on_problems=lambda problems: None,  # the watcher logs them; /reload shows them
        on_loaded=record, on_reloaded=changed)

    adapter.attach(dispatcher, reload=watcher.reload)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    tasks: list[asyncio.Task[None]] = []
    try:
        await watcher.reload()
        if not len(registry):
            log.warning("no personas loaded from %s: the bot will answer nothing",
                        config.personas_dir)
        await dispatcher.start()
        started.set()
        # What start-up built (modules, personas, clients) lives as long as the process:
        # frozen, it is left out of the collector's full passes, which stall every reply
        # in flight (docs/benchmarks.md, "End to end").
        gc.freeze()
        tasks = [asyncio.create_task(adapter.client.start(token), name="discord"),
                 asyncio.create_task(watcher.run(), name="persona-watcher")]
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([tasks[0], stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if tasks[0] in done:
            _raise_for(tasks[0], config)
        log.info("shutting down: finishing replies in flight")
    finally:
        adapter.stop_intake()
        cut = await dispatcher.shutdown()
        if cut:
            log.warning("%d repl(ies) did not finish before the deadline", cut)
        await adapter.close()
        await asyncio.gather(*changes, return_exceptions=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await gateway.aclose()
        await ops.close()
        await store.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        log.info("stopped")


def _raise_for(task: asyncio.Task[None], config: Config) -> None:
    """Turn how the Discord client stopped into one sentence (or re-raise a bug)."""
    error = task.exception() if not task.cancelled() else None
    if isinstance(error, disnake.LoginFailure):
        raise CannotRun(f"Discord rejected the token in {config.discord.token_env}: copy a "
                        "fresh one from the Developer Portal > your application > Bot > Reset Token.")
    if isinstance(error, disnake.PrivilegedIntentsRequired):
        raise CannotRun(INTENT_HELP)
    if isinstance(error, disnake.ConnectionClosed) and error.code == 4004:
        raise CannotRun(f"Discord closed the connection because the token in "
                        f"{config.discord.token_env} is invalid: copy a fresh one from the "
                        "Developer Portal > your application > Bot > Reset Token.")
    if isinstance(error, disnake.SessionStartLimitReached):
        raise CannotRun("Discord's daily limit of gateway logins is used up; wait for it "
                        "to reset (at most 24 hours) before starting the bot again.")
    if isinstance(error, (disnake.HTTPException, OSError)):
        raise CannotRun(f"could not reach Discord at {config.discord.api_base_url}: {error}")
    if error is not None:
        raise error
    raise CannotRun("the Discord connection closed unexpectedly")
