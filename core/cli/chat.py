"""``personae chat PERSONA``: talk to a persona in the terminal, through the dispatcher and
the event log, with any configured provider (or the built-in offline one).

The persona files are watched as ``personae run`` watches them: a saved change serves
from the next message, and a broken file is reported with its file, line and column
while the last good version keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import click

from .. import eventloop
from ..adapters.console import (
    ConsoleAdapter,
    ConsoleUser,
    LineSource,
    StreamLines,
    TerminalLines,
    persona_choices,
)
from ..app import Runtime
from ..commands import find_persona
from ..config import Config
from ..credentials import Secrets
from ..gateway.offline import OFFLINE_PROVIDER
from ..personas.defaults import defaults_from_config, known_providers_from_config
from ..personas.loader import load_personas
from ..personas.model import ModelSpec, Persona
from ..personas.registry import PersonaRegistry, RegistryChange
from ..personas.versions import record_versions
from ..personas.watcher import PersonaWatcher
from ..problems import Problem
from ..tools.http import persona_secret_names
from .context import CliContext, pass_context, user_errors


@click.command()
@click.argument("persona")
@click.option("--user", "user_name", default=None,
              help="Your name in the conversation (default: your login name).")
@click.option("--channel", default="terminal", show_default=True,
              help="{channel} in the prompts.")
@click.option("--guild", default="terminal", show_default=True, help="{guild} in the prompts.")
@click.option("--offline", is_flag=True,
              help="Answer with the built-in offline provider (not a language model: it "
                   "echoes), whatever provider the personas name.")
@click.option("--require-model", is_flag=True,
              help="Fail when the persona's provider has no API key, instead of falling back "
                   "to the offline provider.")
@pass_context
@user_errors
def chat(ctx: CliContext, persona: str, user_name: str | None, channel: str, guild: str,
         offline: bool, require_model: bool) -> None:
    """Chat with PERSONA (its id or name) in the terminal; /help for commands.

    Without an API key for the persona's provider, the built-in offline provider answers
    (it says so), so personas, limits and the replay tools can be tried on a fresh machine.
    """
    config = ctx.config
    loaded = load_personas(config.personas_dir, defaults=defaults_from_config(config),
                           known_providers=known_providers_from_config(config))
    for problem in loaded.problems:
        ctx.err.print(f"[yellow]skipped:[/] {problem}", markup=True)
    chosen = find_persona(PersonaRegistry(loaded.personas.values()), persona)
    if chosen is None:
        raise click.ClickException(
            f"no persona {persona!r} in {config.personas_dir} (known: "
            f"{persona_choices(list(loaded.personas))})")
    missing = None if offline else _missing_key(config, ctx.secrets, chosen)
    if missing and require_model:
        ctx.secrets.require(missing, f"to chat with {chosen.id} through provider "
                                     f"{chosen.model.provider} (or run `personae chat "
                                     f"{chosen.id} --offline` to try it without a model)")
    if missing:
        ctx.err.print(
            f"{missing} is not set, so {chosen.name} answers with the built-in offline provider "
            f"(not a language model). To talk to a real model, set {missing} (or put it in a .env "
            "file next to config.yaml), or point a provider at a local OpenAI-compatible server "
            "in config.yaml.", markup=False)
    ctx.protect(persona_secret_names(loaded.personas.values()))
    name = user_name or _login_name()
    if ctx.log_level is None:
        # Start-up chatter (quota windows, the scheduler) would interleave with the
        # conversation; --log-level brings it back. The chat shows persona problems
        # itself, so the watcher's log lines would say them twice.
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("core.personas.watcher").setLevel(logging.ERROR)
    user = ConsoleUser(id=_user_id(name), display_name=name, channel=channel, guild=guild)

    def adapt(persona: Persona) -> Persona:
        if offline or _missing_key(config, ctx.secrets, persona):
            return replace(persona, model=ModelSpec(provider=OFFLINE_PROVIDER,
                                                    name=OFFLINE_PROVIDER,
                                                    vision=persona.model.vision))
        return persona

    eventloop.run(_chat(config, ctx.secrets, chosen.id, user, adapt, loaded.problems))


async def _chat(config: Config, secrets: Secrets, persona_id: str, user: ConsoleUser,
                adapt: Callable[[Persona], Persona], shown: Sequence[Problem]) -> None:
    from ..app import open_log_store

    terminal = sys.stdin.isatty() and sys.stdout.isatty()
    with _patched_stdout(terminal):
        lines: LineSource = (TerminalLines(_history_file()) if terminal
                             else StreamLines(sys.stdin))
        registry = PersonaRegistry()
        console = ConsoleAdapter(registry, persona_id, user, lines, sys.stdout,
                                 attachments=config.attachments)
        console.already_shown(shown)
        store = await open_log_store(config, secrets)
        runtime: Runtime | None = None
        changes: set[asyncio.Task[None]] = set()

        async def record(personas: Sequence[Persona]) -> None:
            await record_versions(store, personas)

        def changed(change: RegistryChange) -> None:
            console.changed(change)
            if runtime is not None and (change.changed or change.retired):
                task = asyncio.create_task(runtime.dispatcher.personas_changed())
                changes.add(task)
                task.add_done_callback(changes.discard)

        watcher = PersonaWatcher(
            config.personas_dir, registry, defaults=defaults_from_config(config),
            known_providers=known_providers_from_config(config), on_problems=console.reloaded,
            on_loaded=record, on_reloaded=changed, adapt=adapt)
        watching: asyncio.Task[None] | None = None
        try:
            await watcher.reload()
            runtime = await Runtime.open(config, secrets, registry=registry, store=store,
                                         platforms=[lambda _store, _personas: console],
                                         reload=watcher.reload)
            await runtime.dispatcher.start()
            watching = asyncio.create_task(watcher.run(), name="persona-watcher")
            await console.run()
        finally:
            if watching is not None:
                watching.cancel()
            await asyncio.gather(*(t for t in (watching, *changes) if t is not None),
                                 return_exceptions=True)
            if runtime is not None:
                await runtime.close()
            await store.close()


@contextlib.contextmanager
def _patched_stdout(terminal: bool) -> Iterator[None]:
    """On a terminal, replies printed while a line is being typed go above it."""
    if not terminal:
        yield
        return
    from prompt_toolkit.patch_stdout import patch_stdout

    with patch_stdout(raw=True):
        yield


def _history_file() -> str | None:
    """Where the lines typed are remembered between chats (None: nowhere writable)."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    try:
        (base / "personae").mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return str(base / "personae" / "chat_history")


def _missing_key(config: Config, secrets: Secrets, persona: Persona) -> str | None:
    """The variable that should hold the key of the persona's provider, when it is unset."""
    provider = config.providers.get(persona.model.provider)
    key_env = provider.key_env if provider is not None else None
    return key_env if key_env and secrets.get(key_env) is None else None


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "you"


def _user_id(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name.lower()) or "you"
