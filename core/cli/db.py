"""``personae db``: create, check, back up and copy the event log, on every backend."""

from __future__ import annotations

from pathlib import Path

import click

from eventstore import EventStoreError, backup_to_sqlite, copy_log, open_log, sqlite_path
from eventstore.sqlite import backup_log

from ..events import LogCreated
from ..events.ids import LOG_CREATED_ID, LOG_STREAM
from .context import CliContext, pass_context, user_errors


@click.group()
def db() -> None:
    """Create, check, back up and copy the event log."""


@db.command("init")
@pass_context
@user_errors
def init(ctx: CliContext) -> None:
    """Create the event log (or migrate an older one) and record that it exists. A log
    that exists already is left as it is."""
    try:
        existing = ctx.open_log()
    except EventStoreError:
        existing = None  # not there yet, or an older one to migrate
    if existing is not None:
        try:
            events = existing.last_position()
        finally:
            existing.close()
        ctx.out.print(f"event log already existed: {existing.location} ({events:,} "
                      f"event{'s' if events != 1 else ''}); nothing written")
        return
    log = ctx.open_log(create=True)
    try:
        result = log.append(LOG_STREAM, [LogCreated().new_event(LOG_CREATED_ID)])
    finally:
        log.close()
    state = "migrated" if result.duplicates else "created"
    ctx.out.print(f"event log {state}: {log.location}")


@db.command("check")
@click.option("--projections/--no-projections", default=True, show_default=True,
              help="Also rebuild the bot's projections from the events and compare them with "
                   "the live tables (reads the whole log).")
@pass_context
@user_errors
def check(ctx: CliContext, projections: bool) -> None:
    """Check the log: the backend's own integrity (SQLite's integrity check; PostgreSQL's
    triggers as defined), the log's invariants (gap-free positions and stream versions,
    every event readable as its type) and, unless told not to, that its projections equal
    a rebuild. Exit 1 on any violation. Works on a read-only log."""
    from ..replay.logcheck import personae_violations

    log = ctx.open_log(read_only=True)
    try:
        violations = log.check()
        if not any(v.rule in ("schema", "sqlite", "sqlite integrity", "valid JSON")
                   for v in violations):
            violations = [*violations, *personae_violations(log, projections=projections)]
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
    """Copy the event log to the SQLite file PATH, consistently, even while the bot is
    running (a PostgreSQL log is copied event by event from one snapshot, as `db copy`
    does; restore it with `db copy PATH postgresql://...`)."""
    source = sqlite_path(ctx.config.database.url)
    if source is not None:
        result = backup_log(source, path, overwrite=overwrite)
    else:
        log = ctx.open_log()
        try:
            result = backup_to_sqlite(log, path, overwrite=overwrite)
        finally:
            log.close()
    ctx.out.print(f"backed up {result.events} events (up to position {result.last_position}, "
                  f"{result.bytes} bytes) to {result.path}; the copy passes `db check`")


@db.command("copy")
@click.argument("source")
@click.argument("target")
@pass_context
@user_errors
def copy(ctx: CliContext, source: str, target: str) -> None:
    """Copy the log SOURCE into the empty log TARGET and verify the copy.

    SOURCE and TARGET are database URLs (sqlite:///..., postgresql://...) or SQLite file
    paths. The copy holds every event exactly as stored, in one transaction; it is then
    read back and its number of events, last position and SHA-256 of every event compared
    with the source's. A TARGET that holds events is refused. A PostgreSQL URL's password
    is database.password_env's when the URL is config.yaml's database.url, else libpq's
    (PGPASSWORD, ~/.pgpass).
    """
    reader = open_log(source, create=False, password=_password(ctx, source))
    try:
        writer = open_log(target, create=True, password=_password(ctx, target))
        try:
            copied = copy_log(reader, writer)
        finally:
            writer.close()
    finally:
        reader.close()
    ctx.out.print(f"copied {copied.events} events (up to position {copied.last_position}, "
                  f"sha256 {copied.sha256}) from {reader.location} to {writer.location}; "
                  "counts, positions and content verified")


def _password(ctx: CliContext, url: str) -> str | None:
    if not ctx.config_path.is_file():
        return None
    database = ctx.config.database
    return database.password(ctx.secrets) if database.url == url else None
