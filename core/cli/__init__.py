"""The ``personae`` command line. Each command group lives in its own module here.

Commands are imported only when they run: the model SDK and disnake take over a
second to import, and ``personae personas validate`` or ``personae events`` should
not pay for them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from ..config import default_config_path
from .context import CliContext

# command name -> (module in this package, attribute), in the order `--help` lists them.
_COMMANDS: dict[str, tuple[str, str]] = {
    "chat": ("chat", "chat"),
    "run": ("run", "run"),
    "personas": ("personas", "personas"),
    "replay": ("replay", "replay"),
    "explain": ("replay", "explain_command"),
    "rerun": ("replay", "rerun"),
    "rebuild": ("replay", "rebuild"),
    "stats": ("replay", "stats"),
    "export": ("replay", "export"),
    "import": ("replay", "import_command"),
    "forget": ("privacy", "forget"),
    "events": ("events", "events"),
    "db": ("db", "db"),
    "doctor": ("doctor", "doctor"),
}


_GLOBAL_OPTIONS = ("--config", "--log-format", "--log-level")
"""The options every command takes, before or after the command's name."""


def hoist_global_options(args: list[str]) -> list[str]:
    """``args`` with the global options written after the command moved before it
    (``personae chat ada --config x.yaml`` is ``personae --config x.yaml chat ada``);
    nothing after ``--`` is touched."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest += args[index:]
            break
        name = arg.partition("=")[0]
        if name in _GLOBAL_OPTIONS:
            if "=" in arg or index + 1 == len(args):
                front.append(arg)
            else:
                front += [arg, args[index + 1]]
                index += 1
        else:
            rest.append(arg)
        index += 1
    return front + rest


class _LazyGroup(click.Group):
    """A click group that imports a command's module the first time it is needed, and
    takes the global options anywhere on the line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module, attribute = _COMMANDS[cmd_name]
        command = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module}.{attribute} is not a click command")
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default=None,
    help="config.yaml to use (default: $PERSONAE_CONFIG or ./config.yaml).",
)
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              help="Log lines for people (text) or machines (json).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default=None)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, log_format: str | None,
        log_level: str | None) -> None:
    """personae: LLM characters in Discord, with every message in an event log."""
    ctx.obj = CliContext(config_path or default_config_path(), log_format, log_level)  # type: ignore[arg-type]


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="personae")
