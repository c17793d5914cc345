"""``personae db``: create and check the event log."""

from __future__ import annotations

import click

from eventstore import EventLog, NewEvent, check_log

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
