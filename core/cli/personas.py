"""``personae personas``: validate, list, show, create and import persona files."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

import click
from rich.table import Table

from ..commands import find_persona
from ..config import Config
from ..personas.cards import (
    MODELINE,
    ImportedLorebook,
    card_to_persona,
    is_world_info,
    lorebook_file,
    read_card,
    world_info_to_lorebook,
)
from ..personas.checks import budget_warnings
from ..personas.defaults import defaults_from_config, known_providers_from_config
from ..personas.document import persona_document
from ..personas.loader import (
    PERSONA_LIMITS,
    SCHEMA_FILE,
    PersonaSet,
    load_lorebook_text,
    load_persona_files,
    load_persona_text,
    load_personas,
    persona_files,
    persona_schema_text,
)
from ..personas.model import Persona
from ..personas.prompt import SEED, message_variables, render_text
from ..personas.registry import PersonaRegistry
from ..personas.warnings import persona_warnings
from ..personas.yamlout import dump_yaml
from ..problems import Problem, ProblemsError
from .context import CliContext, pass_context, user_errors

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@click.group()
def personas() -> None:
    """Check, inspect, create and import persona files."""


@personas.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every problem.")
@pass_context
@user_errors
def validate(ctx: CliContext, paths: tuple[Path, ...], as_json: bool) -> None:
    """Check persona files (default: the personas directory); exit 1 on any problem.
    Warnings (a lorebook entry too big for its budget) do not change the exit status."""
    from ..gateway.tokens import estimate_tokens

    files, missing = _expand(paths or (ctx.config.personas_dir,))
    loaded = _load(ctx, files)
    problems = [*missing, *loaded.problems]
    warnings = [w for pid in sorted(loaded.personas) for w in (
        *budget_warnings(loaded.personas[pid], estimate_tokens),
        *persona_warnings(loaded.personas[pid], ctx.config.providers, ctx.secrets,
                          allow_nsfw_dms=ctx.config.dm_allow_nsfw,
                          moderation=ctx.config.moderation))]
    if as_json:
        click.echo(json.dumps({
            "ok": not problems, "files": len(files), "personas": sorted(loaded.personas),
            "problems": [p.to_dict() for p in problems],
            "warnings": [w.to_dict() for w in warnings],
        }, ensure_ascii=False))
    else:
        for problem in problems:
            ctx.out.print(str(problem), markup=False)
        for warning in warnings:
            ctx.out.print(f"warning: {warning}", markup=False)
        if problems:
            broken = len({p.file for p in problems})
            ctx.err.print(f"[red]{len(problems)} problem(s) in {broken} file(s)[/]")
        else:
            ctx.out.print(f"ok: {len(files)} persona file(s) valid")
    if problems:
        raise SystemExit(1)


@personas.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per persona.")
@pass_context
@user_errors
def list_(ctx: CliContext, as_json: bool) -> None:
    """Every persona at a glance: id, name, model and what triggers it."""
    loaded = _load_directory(ctx)
    rows = [loaded.personas[i] for i in sorted(loaded.personas)]
    if as_json:
        for persona in rows:
            click.echo(json.dumps({
                "id": persona.id, "name": persona.name,
                "model": f"{persona.model.provider}/{persona.model.name}",
                "triggers": _trigger_summary(persona), "version": persona.version,
                "file": str(persona.source_path),
            }, ensure_ascii=False))
    else:
        table = Table("id", "name", "model", "triggers", "description")
        for persona in rows:
            table.add_row(persona.id, persona.name,
                          f"{persona.model.provider}/{persona.model.name}",
                          _trigger_summary(persona), persona.description)
        ctx.out.print(table)
    _warn_problems(ctx, loaded.problems)


@personas.command("show")
@click.argument("persona")
@click.option("--user", default="Sample User", show_default=True, help="{user} in the sample.")
@click.option("--channel", default="general", show_default=True, help="{channel} in the sample.")
@click.option("--guild", default="Sample Server", show_default=True, help="{guild} in the sample.")
@pass_context
@user_errors
def show(ctx: CliContext, persona: str, user: str, channel: str, guild: str) -> None:
    """One persona (its id or name) as a persona file with every default applied, and its
    prompt texts rendered for a sample message."""
    loaded = _load_directory(ctx)
    found = find_persona(PersonaRegistry(loaded.personas.values()), persona)
    if found is None:
        _warn_problems(ctx, loaded.problems)
        known = ", ".join(sorted(loaded.personas)) or "none"
        raise click.ClickException(f"no valid persona {persona!r} in {ctx.config.personas_dir} "
                                   f"(known: {known})")
    variables = message_variables(user=user, channel=channel, guild=guild, now=time.time(),
                                  seed="show")
    ctx.out.print(f"# {found.source_path}  (version {found.version}; every default applied)",
                  markup=False)
    ctx.out.print(dump_yaml(persona_document(found)), markup=False)
    shown = {k: v for k, v in variables.items() if k != SEED}
    ctx.out.print(f"# the prompt texts for {json.dumps(shown, ensure_ascii=False)}:",
                  markup=False)
    texts = [("system", found.prompt.system), ("post_history", found.prompt.post_history or "")]
    texts += [(f"greeting {i + 1}", text) for i, text in enumerate(found.prompt.greetings)]
    for label, text in texts:
        if text:
            ctx.out.print(f"## {label}", markup=False)
            ctx.out.print(render_text(found, text, variables, label), markup=False)


@personas.command("new")
@click.argument("persona_id")
@click.option("--name", help="Display name (default: the id, capitalised).")
@pass_context
@user_errors
def new(ctx: CliContext, persona_id: str, name: str | None) -> None:
    """Create personas/ID.yaml: a commented starter file that validates as is."""
    _check_id(persona_id, "PERSONA_ID")
    config = ctx.config
    target = config.personas_dir / f"{persona_id}.yaml"
    model = _starter_model(config)
    text = _STARTER.format(
        modeline=MODELINE, id=persona_id, name=json.dumps(name or persona_id.capitalize()),
        provider=model["provider"], model=model["name"],
    )
    _check_and_write(ctx, target, text, persona_id)
    ctx.out.print(f"created {target}: edit it, then run `personae personas validate`")


@personas.command("import")
@click.argument("card_file", type=click.Path(path_type=Path))
@click.option("--id", "persona_id",
              help="Persona id to use (required when the name is taken); for a World Info "
                   "file, the lorebook's name.")
@pass_context
@user_errors
def import_(ctx: CliContext, card_file: Path, persona_id: str | None) -> None:
    """Turn a Character Card V2/V3 (JSON or PNG) into a persona file, or a SillyTavern
    World Info file (JSON) into a lorebook file personas can include."""
    if persona_id is not None:
        _check_id(persona_id, "--id")
    document = read_card(card_file)
    if is_world_info(document):
        _import_lorebook(ctx, card_file, world_info_to_lorebook(
            document, name=persona_id, file_stem=card_file.stem))
        return
    from ..gateway.tokens import estimate_tokens

    context = ctx.config.persona_defaults.get("context") or {}
    imported = card_to_persona(document, persona_id=persona_id, source=str(card_file),
                               file_stem=card_file.stem, estimate_tokens=estimate_tokens,
                               context_tokens=int(context.get("max_tokens") or 3000))
    directory = ctx.config.personas_dir
    target = directory / f"{imported.persona_id}.yaml"
    existing = _load_directory(ctx).personas.values()
    if any(p.id == imported.persona_id for p in existing) or target.exists():
        raise ProblemsError([Problem(str(card_file), 1, 1, "id", (
            f"a persona with id '{imported.persona_id}' already exists; pass --id NEW_ID to "
            "import it under another id"))])
    if persona_id is None and any(p.name.casefold() == imported.name.casefold()
                                  for p in existing):
        raise ProblemsError([Problem(str(card_file), 1, 1, "name", (
            f"a persona called '{imported.name}' already exists; pass --id NEW_ID to import "
            "it anyway under another id"))])
    if "model" not in ctx.config.persona_defaults:
        imported = dataclasses.replace(
            imported, data={**imported.data, "model": _starter_model(ctx.config)})
    text = imported.to_yaml(card_file.name)
    _check_size(card_file, text, "persona")
    _check_and_write(ctx, target, text, imported.persona_id, source=card_file)
    _print_warnings(ctx, card_file, imported.warnings)
    ctx.out.print(f"imported '{imported.name}' as {target}", markup=False)


def _import_lorebook(ctx: CliContext, source: Path, imported: ImportedLorebook) -> None:
    target = lorebook_file(ctx.config.personas_dir, imported.name)
    if target.exists():
        raise ProblemsError([Problem(str(source), 1, 1, "", (
            f"a lorebook called '{imported.name}' already exists ({target}); pass --id NAME "
            "to import it under another name"))])
    text = imported.to_yaml(source.name)
    _check_size(source, text, "lorebook")
    try:
        load_lorebook_text(text, file=str(target))
    except ProblemsError as exc:
        raise ProblemsError([
            Problem(str(source), 1, 1, p.field, f"{p.message} (in the lorebook made from this "
                                                "file; nothing was written)")
            for p in exc.problems]) from None
    _write_new(target, text)
    _print_warnings(ctx, source, imported.warnings)
    count = len(imported.data.get("entries", []))
    ctx.out.print(f"imported the lorebook '{imported.name}' ({count} entries) as {target}; "
                  f"a persona uses it with: lorebook: {{include: [{imported.name}]}}",
                  markup=False)


def _check_size(source: Path, text: str, what: str) -> None:
    size = len(text.encode("utf-8"))
    if size > PERSONA_LIMITS.max_bytes:
        raise ProblemsError([Problem(str(source), 1, 1, "", (
            f"the {what} made from this file would be {size / 2**20:.1f} MiB, more than the "
            f"{PERSONA_LIMITS.max_bytes // 2**20} MiB a {what} file may hold"))])


def _print_warnings(ctx: CliContext, source: Path, warnings: Iterable[str]) -> None:
    for warning in warnings:
        ctx.err.print(f"[yellow]warning:[/] {source}: {warning}", markup=True, highlight=False)


# -- helpers ---------------------------------------------------------------------------


def _load(ctx: CliContext, files: Iterable[Path]) -> PersonaSet:
    config = ctx.config
    return load_persona_files(files, defaults=defaults_from_config(config),
                              known_providers=known_providers_from_config(config))


def _load_directory(ctx: CliContext) -> PersonaSet:
    config = ctx.config
    return load_personas(config.personas_dir, defaults=defaults_from_config(config),
                         known_providers=known_providers_from_config(config))


def _expand(paths: Iterable[Path]) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    missing: list[Problem] = []
    for path in paths:
        if path.is_dir():
            files += persona_files(path)
        elif path.exists():
            files.append(path)
        else:
            missing.append(Problem(str(path), 1, 1, "", "no such file or directory"))
    return files, missing


def _starter_model(config: Config) -> dict[str, str]:
    """The default model, else the first provider's (or offline) with a common name."""
    model = dict(config.persona_defaults.get("model") or {})
    provider = model.get("provider") or next(iter(sorted(config.providers)), "offline")
    return {"provider": provider, "name": model.get("name") or "gpt-4o-mini"}


def _check_id(persona_id: str, param: str) -> None:
    if not _ID.match(persona_id):
        raise click.BadParameter(
            f"'{persona_id}' is not a valid id (lowercase letters, digits, - and _, starting "
            "with a letter or digit, at most 64)", param_hint=param)


def _check_and_write(ctx: CliContext, target: Path, text: str, persona_id: str, *,
                     source: Path | None = None) -> None:
    """Validate ``text`` as ``target`` would be read, then create it (never overwrite).
    With ``source`` (the card it was made from), a problem in the text is reported
    against the source: ``target`` is never written then."""
    config = ctx.config
    if target.exists():
        raise ProblemsError([Problem(str(target), 1, 1, "",
                                     f"already exists; choose another id than '{persona_id}'")])
    try:
        load_persona_text(text, file=str(target), defaults=defaults_from_config(config),
                          known_providers=known_providers_from_config(config))
    except ProblemsError as exc:
        if source is None:
            raise
        raise ProblemsError([
            Problem(str(source), 1, 1, p.field, f"{p.message} (in the persona made from this "
                                                "card; nothing was written)")
            if p.file == str(target) else p for p in exc.problems]) from None
    _ensure_schema(target.parent)
    _write_new(target, text)


def _write_new(target: Path, text: str) -> None:
    """Create ``target`` holding ``text``, whole (never overwriting a file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    # The watcher sees the file appear whole. link() refuses to clobber a file that
    # appeared meanwhile; where hard links are not supported, rename (checked above).
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise ProblemsError([Problem(str(target), 1, 1, "", "already exists")]) from None
    except OSError:
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _ensure_schema(directory: Path) -> None:
    """Put the schema next to the personas so the files' modeline finds it."""
    directory.mkdir(parents=True, exist_ok=True)
    schema = directory / SCHEMA_FILE
    if not schema.exists():
        schema.write_text(persona_schema_text(), encoding="utf-8")


def _warn_problems(ctx: CliContext, problems: Iterable[Problem]) -> None:
    problems = list(problems)
    for problem in problems:
        ctx.err.print(f"[yellow]warning:[/] {problem}", markup=True, highlight=False)
    if problems:
        ctx.err.print("files with problems are left out; see `personae personas validate`")


def _trigger_summary(persona: Persona) -> str:
    t = persona.triggers
    parts = [name for name, on in (("mention", t.mention), ("dm", t.dm), ("reply", t.reply),
                                   ("slash", t.slash)) if on]
    if t.keywords:
        parts.append(f"keywords: {', '.join(t.keywords)}")
    if t.patterns:
        parts.append(f"{len(t.patterns)} pattern(s)")
    if t.channels:
        parts.append(f"all messages in {len(t.channels)} channel(s)")
    return "; ".join(parts) or "none"


_STARTER = """\
{modeline}
# A new persona. Every field is explained in docs/personas.md; fields left out come
# from persona_defaults in config.yaml. Check it with: personae personas validate
id: {id}
name: {name}
description: One line about this persona, for people (never sent to the model).
# avatar_url: https://example.org/avatar.png

model:
  provider: {provider}          # a provider from config.yaml, or offline
  name: {model}
  temperature: 0.7
  max_tokens: 400

prompt:
  # Variables: {{persona}} {{user}} {{channel}} {{guild}} {{date}} {{time}};
  # write {{{{ and }}}} for literal braces.
  system: |
    You are {{persona}}, talking with {{user}} in #{{channel}}. Today is {{date}}.
  # examples:
  #   - user: hello
  #     assistant: Hi! What can I do for you?
  # greeting: Hello, I'm {{persona}}.

context:
  scope: channel               # channel, thread, user or dm
  max_messages: 30
  max_tokens: 3000

triggers:
  mention: true
  dm: true
  reply: true
  keywords: []                 # e.g. ["hey {id}"]

limits:
  rate: {{capacity: 5, per: 1m, scope: user}}   # token bucket
  # quota: {{tokens: 20000, scope: user, reset: "0 0 * * *", timezone: UTC}}
  reply_deadline: 60s

# lorebook:
#   - keys: [dragon]
#     content: Dragons in this world are extinct.
"""
