"""The ``personae`` command line. Each command group lives in its own module here."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import default_config_path
from . import chat, db, doctor, events, personas, replay, run
from .context import CliContext


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


cli.add_command(chat.chat)
cli.add_command(db.db)
cli.add_command(doctor.doctor)
cli.add_command(events.events)
cli.add_command(personas.personas)
cli.add_command(run.run)
for _command in replay.COMMANDS:
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="personae")
