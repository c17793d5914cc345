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
@click.option("--shards", metavar="IDS",
              help="The Discord shards this process runs: 0-3, 0,2,5-7, or auto (a standby "
                   "that takes over the shards of processes that stop; needs PostgreSQL). "
                   "Default: discord.shards in config.yaml, else one unsharded connection.")
@click.option("--shard-count", type=click.IntRange(1, 100_000), metavar="N",
              help="How many shards the bot has in all (every process the same). Default: "
                   "discord.shard_count.")
@click.option("--metrics-port", type=click.IntRange(1, 65_535), metavar="PORT",
              help="Serve /metrics, /healthz and /readyz on this port (default: "
                   "metrics.port); each process on one machine needs its own.")
@pass_context
@user_errors
def run(ctx: CliContext, shards: str | None, shard_count: int | None,
        metrics_port: int | None) -> None:
    """Run the bot on Discord (stop with Ctrl-C or SIGTERM).

    Several processes sharing one PostgreSQL log each run a range of shards
    (docs/scale-out.md)."""
    # imported here: disnake takes most of a second to import, and other commands need none of it
    from ..adapters.discord.runner import CannotRun

    config = _with_shards(ctx.config, shards, shard_count)
    if metrics_port is not None:
        from dataclasses import replace

        config = replace(config, metrics=replace(config.metrics, port=metrics_port))
    token = ctx.secrets.require(
        config.discord.token_env,
        "with the bot token (Developer Portal > your application > Bot > Reset Token)")
    try:
        eventloop.run(serve(config, ctx.secrets, token, protect=ctx.protect))
    except CannotRun as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(EXIT_USER_ERROR) from None


def _with_shards(config: Config, shards: str | None, shard_count: int | None) -> Config:
    """``config`` with the command line's shards (checked as config.yaml's are)."""
    from dataclasses import replace

    from ..config import parse_shards, shard_plan_problem

    if shards is None and shard_count is None:
        return config
    try:
        chosen = parse_shards(shards) if shards is not None else config.discord.shards
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--shards") from None
    count = shard_count if shard_count is not None else config.discord.shard_count
    if problem := shard_plan_problem(chosen, count, config.database.url):
        raise click.UsageError(problem)
    return replace(config, discord=replace(config.discord, shards=chosen, shard_count=count))


async def serve(config: Config, secrets: Secrets, token: str, *,
                protect: Callable[[Iterable[str]], None] | None = None) -> None:
    """Run until SIGINT/SIGTERM (or a fatal gateway error), then shut down cleanly."""
    import disnake.http

    from ..adapters.discord.adapter import DiscordAdapter, DiscordAdapterSettings
    from ..adapters.discord.runner import CannotRun, raise_for
    from ..adapters.discord.shards import ShardSetup
    from ..app import (
        Runtime,
        missing_key_message,
        missing_keys,
        open_coordinator,
        open_log_store,
    )
    from ..coordination import CoordinationError, Coordinator, PostgresCoordinator
    from ..coordination.sole import SoleLease
    from ..ops.observability import start_observability
    from ..ops.stacks import dump_on_signal
    from ..personas.defaults import defaults_from_config, known_providers_from_config
    from ..personas.model import Persona
    from ..personas.registry import PersonaRegistry, RegistryChange
    from ..personas.versions import record_versions
    from ..personas.warnings import persona_warnings
    from ..personas.watcher import PersonaWatcher
    from ..tools.http import persona_secret_names

    # disnake builds every REST URL from this class attribute; nothing may reset it after
    disnake.http.Route.BASE = config.discord.api_base_url
    dump_on_signal(asyncio.get_running_loop())  # kill -USR1: what each thread and task awaits
    store = await open_log_store(config)
    shards = None
    if config.discord.shards is not None and config.discord.shard_count is not None:
        try:
            coordinator = await open_coordinator(config, secrets)
        except CoordinationError as exc:
            await store.close()
            raise CannotRun(str(exc)) from None
        shards = ShardSetup(shards=config.discord.shards, shard_count=config.discord.shard_count,
                            coordinator=coordinator)
        log.info("shards: %s (this process: %s)", shards.label, shards.coordinator.owner)
    sole: SoleLease | None = None
    if shards is None and store.shared:
        # unsharded over a shared log: the one process answering it (module sole)
        bot_lease: Coordinator | None = None
        try:
            bot_lease = await open_coordinator(config, secrets)
            assert isinstance(bot_lease, PostgresCoordinator)  # a shared log is PostgreSQL
            sole = SoleLease(bot_lease, location=store.location)
            await sole.take()
        except CoordinationError as exc:
            if bot_lease is not None:
                await asyncio.to_thread(bot_lease.close)
            await store.close()
            raise CannotRun(str(exc)) from None
        log.info("running unsharded (this process: %s)", bot_lease.owner)
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
            attachments=config.attachments), shards=shards)
        adapters.append(adapter)
        return adapter

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    tasks: list[asyncio.Task[None]] = []
    lost: asyncio.Task[str] | None = None  # the bot's lease (unsharded over PostgreSQL)
    try:
        if sole is not None:  # renewed from now on: recovery may take longer than a lease
            lost = asyncio.create_task(sole.keep(), name="bot-lease")
        runtime = await Runtime.open(config, secrets, registry=registry, platforms=[discord],
                                     reload=watcher.reload, model=ops.timed_model, store=store)
        (adapter,) = adapters
        ops.add_check(adapter.intake_problem)
        if shards is not None and adapter.keeper is not None:
            ops.run_shards(shards.label, shards.coordinator.owner,
                           lambda: adapter.keeper.held if adapter.keeper else [])
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
        # a sharded process finishes a conversation's open replies when it takes the
        # conversation's shard (another process may be answering them now)
        await runtime.dispatcher.start(
            owns=None if shards is None else (lambda trigger: trigger.platform != "discord"))
        started.set()
        # What start-up built (modules, personas, clients) lives as long as the process:
        # frozen, it is left out of the collector's full passes, which stall every reply
        # in flight (docs/benchmarks.md, "End to end").
        gc.freeze()
        tasks = [asyncio.create_task(adapter.start(token), name="discord"),
                 asyncio.create_task(watcher.run(), name="persona-watcher")]
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([tasks[0], stopped, *([lost] if lost else [])],
                                     return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if tasks[0] in done:
            raise_for(tasks[0], config)
        if lost is not None and lost in done:
            raise CannotRun(lost.result())
        log.info("shutting down: finishing replies in flight")
    finally:
        if runtime is not None:
            await runtime.close()
        await asyncio.gather(*changes, return_exceptions=True)
        for task in [*tasks, *([lost] if lost else [])]:
            task.cancel()
        await asyncio.gather(*tasks, *([lost] if lost else []), return_exceptions=True)
        await ops.close()
        if shards is not None:
            await asyncio.to_thread(shards.coordinator.close)
        if sole is not None:
            await sole.release()
            await asyncio.to_thread(sole.close)
        await store.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        log.info("stopped")
