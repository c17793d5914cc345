"""``personae db``: create and check the event log."""

from __future__ import annotations

from pathlib import Path

import click

from eventstore import sqlite_path
from eventstore.sqlite import backup_log

from ..events import LogCreated
from ..events.ids import LOG_CREATED_ID, LOG_STREAM
from .context import CliContext, pass_context, user_errors


@click.group()
def db() -> None:
    """Create, check and back up the event log."""


@db.command("init")
@pass_context
@user_errors
def init(ctx: CliContext) -> None:
    """Create the event log (or migrate an older one) and record that it exists."""
    log = ctx.open_log(create=True)
    try:
        result = log.append(LOG_STREAM, [LogCreated().new_event(LOG_CREATED_ID)])
    finally:
        log.close()
    state = "already existed" if result.duplicates else "created"
    ctx.out.print(f"event log {state}: {log.location}")


@db.command("check")
@pass_context
@user_errors
def check(ctx: CliContext) -> None:
    """Run SQLite's integrity check and the log's own invariants (append-only triggers as
    defined, gap-free positions and stream versions, every event readable, projections
    equal to a rebuild); exit 1 on any violation. Works on a read-only log."""
    from ..replay.logcheck import personae_violations

    log = ctx.open_log(read_only=True)
    try:
        violations = log.check()
        if not any(v.rule in ("schema", "sqlite", "sqlite integrity", "valid JSON")
                   for v in violations):
            violations = [*violations, *personae_violations(log)]
    finally:
        log.close()
    for violation in violations:
        ctx.err.print(f"[red]violation[/] {violation}")
    if violations:
        raise SystemExit(1)
    ctx.out.print(f"ok: {log.location} passes the integrity check and the log's invariants")


@db.command("backup")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace PATH if it exists.")
@pass_context
@user_errors
def backup(ctx: CliContext, path: Path, overwrite: bool) -> None:
    """Copy the event log to PATH, consistently, even while the bot is running."""
    source = sqlite_path(ctx.config.database.url)
    if source is None:
        raise click.ClickException(f"`db backup` copies SQLite logs; {ctx.config.database.url} "
                                   "is not one")
    result = backup_log(source, path, overwrite=overwrite)
    ctx.out.print(f"backed up {result.events} events (up to position {result.last_position}, "
                  f"{result.bytes} bytes) to {result.path}; the copy passes `db check`")
