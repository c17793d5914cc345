"""``personae db``: create and check the event log."""

from __future__ import annotations

from pathlib import Path

import click

from eventstore import EventLog, NewEvent, check_log

from ..ops.backup import backup_log
from .context import CliContext, pass_context, user_errors


@click.group()
def db() -> None:
    """Create, check and back up the event log."""


@db.command("init")
@pass_context
@user_errors
def init(ctx: CliContext) -> None:
    """Create the event log (or migrate an older one) and record that it exists."""
    config = ctx.config
    log = EventLog.open(config.database.path, synchronous=config.database.synchronous)
    try:
        result = log.append(
            "personae", [NewEvent("LogCreated", {"schema": "personae"}, event_id="log:created")]
        )
    finally:
        log.close()
    state = "already existed" if result.duplicates else "created"
    ctx.out.print(f"event log {state}: {config.database.path}")


@db.command("check")
@pass_context
@user_errors
def check(ctx: CliContext) -> None:
    """Run SQLite's integrity check and the log's own invariants; exit 1 on any violation."""
    path = ctx.config.database.path
    violations = check_log(path)
    for violation in violations:
        ctx.err.print(f"[red]violation[/] {violation}")
    if violations:
        raise SystemExit(1)
    ctx.out.print(f"ok: {path} passes the integrity check and the log's invariants")


@db.command("backup")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace PATH if it exists.")
@pass_context
@user_errors
def backup(ctx: CliContext, path: Path, overwrite: bool) -> None:
    """Copy the event log to PATH, consistently, even while the bot is running."""
    result = backup_log(ctx.config.database.path, path, overwrite=overwrite)
    ctx.out.print(f"backed up {result.events} events (up to position {result.last_position}, "
                  f"{result.bytes} bytes) to {result.path}; the copy passes `db check`")
