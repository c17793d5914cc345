"""``personae chat PERSONA``: talk to a persona in the terminal, through the dispatcher and
the event log, with any configured provider (or the built-in offline one)."""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
from dataclasses import replace

import click

from eventstore import EventStore

from ..adapters.console import PLATFORM, ConsoleChat, ConsoleSink, ConsoleUser, persona_choices
from ..config import Config
from ..credentials import Secrets
from ..dispatcher.dispatcher import Dispatcher, DispatcherSettings
from ..dispatcher.projection import DispatchProjection
from ..gateway.gateway import ModelGateway
from ..gateway.offline import OFFLINE_PROVIDER
from ..limits.quotas import QuotaProjection
from ..personas.defaults import defaults_from_config, known_providers_from_config
from ..personas.loader import load_personas
from ..personas.model import ModelSpec, Persona
from ..personas.registry import PersonaRegistry
from .context import CliContext, pass_context, user_errors


@click.command()
@click.argument("persona")
@click.option("--user", "user_name", default=None,
              help="Your name in the conversation (default: your login name).")
@click.option("--offline", is_flag=True,
              help="Answer with the built-in offline provider (not a language model: it "
                   "echoes), whatever provider the personas name.")
@pass_context
@user_errors
def chat(ctx: CliContext, persona: str, user_name: str | None, offline: bool) -> None:
    """Chat with PERSONA in the terminal (reads stdin line by line; /help for commands)."""
    config = ctx.config
    loaded = load_personas(config.personas_dir, defaults=defaults_from_config(config),
                           known_providers=known_providers_from_config(config))
    for problem in loaded.problems:
        ctx.err.print(f"[yellow]skipped:[/] {problem}", markup=True)
    personas = dict(loaded.personas)
    chosen = next((p for p in personas.values() if persona.lower() in (p.id.lower(),
                                                                      p.name.lower())), None)
    if chosen is None:
        raise click.ClickException(
            f"no persona {persona!r} in {config.personas_dir} (known: "
            f"{persona_choices(list(personas))})")
    if offline:
        personas = {pid: _offline(p) for pid, p in personas.items()}
        chosen = personas[chosen.id]
    else:
        _require_credentials(config, ctx.secrets, chosen)
    name = user_name or _login_name()
    # the scheduler's job bookkeeping would interleave with the conversation
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    asyncio.run(_chat(config, ctx.secrets, PersonaRegistry(personas.values()), chosen.id,
                      ConsoleUser(_user_id(name), name)))


async def _chat(config: Config, secrets: Secrets, registry: PersonaRegistry, persona_id: str,
                user: ConsoleUser) -> None:
    store = await EventStore.open(config.database.path, synchronous=config.database.synchronous,
                                  projections=[DispatchProjection(), QuotaProjection()])
    gateway = ModelGateway(config.providers, secrets)
    sink = ConsoleSink(sys.stdout, registry)
    dispatcher = Dispatcher(store, registry, gateway, {PLATFORM: sink},
                            DispatcherSettings.from_config(config))
    try:
        await dispatcher.start()
        await ConsoleChat(dispatcher, registry, persona_id, user, sys.stdin, sys.stdout,
                          prompt=sys.stdin.isatty()).run()
    finally:
        await dispatcher.shutdown()
        await gateway.aclose()
        await store.close()


def _require_credentials(config: Config, secrets: Secrets, persona: Persona) -> None:
    """Fail with one sentence before starting when the persona's provider has no key."""
    provider = config.providers.get(persona.model.provider)
    if provider is None or provider.kind == "offline":
        return
    key_env = provider.api_key_env or (None if provider.base_url else "OPENAI_API_KEY")
    if key_env:
        secrets.require(key_env, f"to chat with {persona.id} through provider {provider.name} "
                                 f"(or run `personae chat {persona.id} --offline` to try it without a model)")


def _offline(persona: Persona) -> Persona:
    return replace(persona, model=ModelSpec(provider=OFFLINE_PROVIDER, name=OFFLINE_PROVIDER))


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "you"


def _user_id(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name.lower()) or "you"
