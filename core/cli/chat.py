"""``personae chat PERSONA``: talk to a persona in the terminal, through the dispatcher and
the event log, with any configured provider (or the built-in offline one)."""

from __future__ import annotations

import getpass
import logging
import sys
from dataclasses import replace

import click

from .. import eventloop
from ..adapters.console import ConsoleAdapter, ConsoleUser, persona_choices
from ..app import Runtime
from ..commands import find_persona
from ..config import Config
from ..credentials import Secrets
from ..gateway.offline import OFFLINE_PROVIDER
from ..personas.defaults import defaults_from_config, known_providers_from_config
from ..personas.loader import load_personas
from ..personas.model import ModelSpec, Persona
from ..personas.registry import PersonaRegistry
from ..tools.http import persona_secret_names
from .context import CliContext, pass_context, user_errors


@click.command()
@click.argument("persona")
@click.option("--user", "user_name", default=None,
              help="Your name in the conversation (default: your login name).")
@click.option("--offline", is_flag=True,
              help="Answer with the built-in offline provider (not a language model: it "
                   "echoes), whatever provider the personas name.")
@click.option("--require-model", is_flag=True,
              help="Fail when the persona's provider has no API key, instead of falling back "
                   "to the offline provider.")
@pass_context
@user_errors
def chat(ctx: CliContext, persona: str, user_name: str | None, offline: bool,
         require_model: bool) -> None:
    """Chat with PERSONA in the terminal (reads stdin line by line; /help for commands).

    Without an API key for the persona's provider, the built-in offline provider answers
    (it says so), so personas, limits and the replay tools can be tried on a fresh machine.
    """
    config = ctx.config
    loaded = load_personas(config.personas_dir, defaults=defaults_from_config(config),
                           known_providers=known_providers_from_config(config))
    for problem in loaded.problems:
        ctx.err.print(f"[yellow]skipped:[/] {problem}", markup=True)
    personas = dict(loaded.personas)
    chosen = find_persona(PersonaRegistry(personas.values()), persona)
    if chosen is None:
        raise click.ClickException(
            f"no persona {persona!r} in {config.personas_dir} (known: "
            f"{persona_choices(list(personas))})")
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
    if offline or missing:
        personas = {pid: _offline(p) for pid, p in personas.items()}
        chosen = personas[chosen.id]
    ctx.protect(persona_secret_names(personas.values()))
    name = user_name or _login_name()
    if ctx.log_level is None:
        # Start-up chatter (quota windows, the scheduler) would interleave with the
        # conversation; --log-level brings it back.
        logging.getLogger().setLevel(logging.WARNING)
    eventloop.run(_chat(config, ctx.secrets, PersonaRegistry(personas.values()), chosen.id,
                        ConsoleUser(id=_user_id(name), display_name=name)))


async def _chat(config: Config, secrets: Secrets, registry: PersonaRegistry, persona_id: str,
                user: ConsoleUser) -> None:
    console = ConsoleAdapter(registry, persona_id, user, sys.stdin, sys.stdout,
                             prompt=sys.stdin.isatty(), attachments=config.attachments)
    runtime = await Runtime.open(config, secrets, registry=registry,
                                 platforms=[lambda store, personas: console])
    try:
        await runtime.dispatcher.start()
        await console.run()
    finally:
        await runtime.close()


def _missing_key(config: Config, secrets: Secrets, persona: Persona) -> str | None:
    """The variable that should hold the key of the persona's provider, when it is unset."""
    provider = config.providers.get(persona.model.provider)
    key_env = provider.key_env if provider is not None else None
    return key_env if key_env and secrets.get(key_env) is None else None


def _offline(persona: Persona) -> Persona:
    return replace(persona, model=ModelSpec(provider=OFFLINE_PROVIDER, name=OFFLINE_PROVIDER,
                                            vision=persona.model.vision))


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "you"


def _user_id(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name.lower()) or "you"
