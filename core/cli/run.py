"""``personae run``: the bot on Discord, until SIGINT or SIGTERM.

The token comes from the environment variable config.yaml names
(``discord.token_env``); REST calls go to ``discord.api_base_url``. A missing or
rejected token, or a refused Message Content intent, is one sentence saying what
to do, and exit status 2. See docs/discord.md.

Everything ``personae run`` wires up: the event log, the persona registry with hot
reload, the model gateway, the dispatcher and the Discord adapter (through
:class:`core.app.Runtime`), metrics and health; then a clean shutdown in that order
reversed: intake stops, replies in flight finish (up to ``limits.shutdown_deadline``),
the gateway and the log close.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import click

from .. import eventloop
from .context import EXIT_USER_ERROR, CliContext, pass_context, user_errors

if TYPE_CHECKING:
    from eventstore import EventStore

    from ..config import Config
    from ..credentials import Secrets

log = logging.getLogger(__name__)


@click.command()
@pass_context
@user_errors
def run(ctx: CliContext) -> None:
    """Run the bot on Discord (stop with Ctrl-C or SIGTERM)."""
    # imported here: disnake takes most of a second to import, and other commands need none of it
    from ..adapters.discord.runner import CannotRun

    config = ctx.config
    token = ctx.secrets.require(
        config.discord.token_env,
        "with the bot token (Developer Portal > your application > Bot > Reset Token)")
    try:
        eventloop.run(serve(config, ctx.secrets, token, protect=ctx.protect))
    except CannotRun as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(EXIT_USER_ERROR) from None


async def serve(config: Config, secrets: Secrets, token: str, *,
                protect: Callable[[Iterable[str]], None] | None = None) -> None:
    """Run until SIGINT/SIGTERM (or a fatal gateway error), then shut down cleanly."""
    import disnake.http

    from ..adapters.discord.adapter import DiscordAdapter, DiscordAdapterSettings
    from ..adapters.discord.runner import raise_for
    from ..app import Runtime, missing_key_message, missing_keys, open_log_store
    from ..ops.observability import start_observability
    from ..personas.defaults import defaults_from_config, known_providers_from_config
    from ..personas.model import Persona
    from ..personas.registry import PersonaRegistry, RegistryChange
    from ..personas.versions import record_versions
    from ..personas.warnings import persona_warnings
    from ..personas.watcher import PersonaWatcher
    from ..tools.http import persona_secret_names

    # disnake builds every REST URL from this class attribute; nothing may reset it after
    disnake.http.Route.BASE = config.discord.api_base_url
    store = await open_log_store(config)
    # per-reply log lines; /metrics, /healthz and /readyz when metrics.port is set
    ops = await start_observability(config, store)
    registry = PersonaRegistry()
    changes: set[asyncio.Task[None]] = set()
    started = asyncio.Event()
    runtime: Runtime | None = None

    async def record(personas: Sequence[Persona]) -> None:
        if protect is not None:  # the secrets persona files' tools name, out of every log line
            protect(persona_secret_names(personas))
        await record_versions(store, personas)

    def changed(change: RegistryChange) -> None:
        if runtime is None or not started.is_set() or not (change.changed or change.retired):
            return  # dispatcher.start() reads the first load itself
        # new quota schedules for changed personas; tracked so shutdown can wait for it
        task = asyncio.create_task(runtime.dispatcher.personas_changed())
        changes.add(task)
        task.add_done_callback(changes.discard)

    watcher = PersonaWatcher(
        config.personas_dir, registry, defaults=defaults_from_config(config),
        known_providers=known_providers_from_config(config),
        on_problems=lambda problems: None,  # the watcher logs them; /reload shows them
        on_loaded=record, on_reloaded=changed)
    adapters: list[DiscordAdapter] = []

    def discord(store: EventStore, personas: PersonaRegistry) -> DiscordAdapter:
        adapter = DiscordAdapter(store, personas, DiscordAdapterSettings(
            catch_up_window_s=config.discord.catch_up_window_s,
            attachments=config.attachments))
        adapters.append(adapter)
        return adapter

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    tasks: list[asyncio.Task[None]] = []
    try:
        runtime = await Runtime.open(config, secrets, registry=registry, platforms=[discord],
                                     reload=watcher.reload, model=ops.timed_model, store=store)
        (adapter,) = adapters
        ops.add_check(adapter.intake_problem)
        await watcher.reload()
        if not len(registry):
            log.warning("no personas loaded from %s: the bot will answer nothing",
                        config.personas_dir)
        if problem := missing_key_message(missing_keys(config, secrets, registry.all())):
            log.error("%s", problem)
        for persona in registry.all():
            for warning in persona_warnings(persona, config.providers, secrets,
                                            allow_nsfw_dms=config.dm_allow_nsfw,
                                            moderation=config.moderation):
                log.warning("%s", warning)
        await runtime.dispatcher.start()
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
            raise_for(tasks[0], config)
        log.info("shutting down: finishing replies in flight")
    finally:
        if runtime is not None:
            await runtime.close()
        await asyncio.gather(*changes, return_exceptions=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ops.close()
        await store.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        log.info("stopped")
