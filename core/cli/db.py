"""``personae db``: create, check, back up and copy the event log, on every backend."""

from __future__ import annotations

from pathlib import Path

import click

from eventstore import EventStoreError, Log, backup_to_sqlite, copy_log, open_log, sqlite_path
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
    every event readable as its type), that nothing of a forgotten person is readable (no
    key of theirs from before the erasure left, no content of theirs in clear) and, unless
    told not to, that its projections equal a rebuild. Exit 1 on any violation. Works on a
    read-only log."""
    from ..replay.erasure import erasure_violations
    from ..replay.logcheck import personae_violations

    log = ctx.open_log(read_only=True)
    try:
        violations = log.check()
        if not any(v.rule in ("schema", "sqlite", "sqlite integrity", "valid JSON")
                   for v in violations):
            violations = [*violations, *personae_violations(log, projections=projections),
                          *erasure_violations(log)]
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
    does). The keys of its sealed content go apart, into PATH.keys: keep the two files
    in different places. Restore with `db restore PATH`, which forgets again everyone
    erased since."""
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
                  f"{result.bytes} bytes) to {result.path}; the copy passes `db check`; the "
                  f"{result.keys} key(s) of its sealed content are apart in {result.keys_path} "
                  "(keep them apart; `db restore` needs both)")


@db.command("copy")
@click.argument("source")
@click.argument("target")
@pass_context
@user_errors
def copy(ctx: CliContext, source: str, target: str) -> None:
    """Copy the log SOURCE into the empty log TARGET and verify the copy.

    SOURCE and TARGET are database URLs (sqlite:///..., postgresql://...) or SQLite file
    paths. The copy holds every event, in one transaction; it is then read back and its
    number of events, last position and SHA-256 of every event compared with the
    source's. The keys of sealed content are copied apart, into TARGET's key table.
    Content the source holds in clear (a log from before encryption) is sealed in the
    copy (then the SHA-256 is of the content as read): how an old log is migrated, never
    rewritten in place. Everyone the erasure ledger lists is forgotten again in the copy
    when keys of theirs came along. A TARGET that holds events is refused. A PostgreSQL
    URL's password is database.password_env's when the URL is config.yaml's
    database.url, else libpq's (PGPASSWORD, ~/.pgpass).
    """
    from ..privacy import reseal

    sealing = not ctx.config_path.is_file() or ctx.config.privacy.encrypt
    reader = open_log(source, create=False, password=_password(ctx, source))
    try:
        writer = open_log(target, create=True, password=_password(ctx, target), seal=sealing)
        try:
            copied = copy_log(reader, writer, reseal=reseal if sealing else None)
            reapplied = _apply_ledger(ctx, writer)
        finally:
            writer.close()
    finally:
        reader.close()
    ctx.out.print(f"copied {copied.events} events (up to position {copied.last_position}, "
                  f"sha256 {copied.sha256}) from {reader.location} to {writer.location}; "
                  "counts, positions and content verified; the keys of its sealed content "
                  f"copied apart into the target's key table ({copied.keys} key(s))"
                  + (f"; {reapplied}" if reapplied else ""))


@db.command("restore")
@click.argument("backup", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--keys", "keys_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="The backup's key file (default: BACKUP.keys).")
@click.option("--without-keys", is_flag=True,
              help="Restore without the key file: every sealed content then reads as erased.")
@click.option("--without-ledger", is_flag=True,
              help="Restore although the erasure ledger (privacy.ledger) is missing.")
@pass_context
@user_errors
def restore(ctx: CliContext, backup: Path, keys_path: Path | None, without_keys: bool,
            without_ledger: bool) -> None:
    """Restore the backup BACKUP (made by `db backup`) into the empty log config.yaml
    names, with its keys from BACKUP.keys; then forget again everyone the erasure ledger
    (privacy.ledger) lists, so nobody erased since the backup was taken comes back. The
    result is checked as `db check` does; a ledger that is missing is refused (unless
    --without-ledger), since the erasures since the backup could not be applied."""
    from eventstore.sqlite import key_file_for, read_key_file

    from ..replay.erasure import erasure_violations

    ledger = ctx.config.privacy.ledger
    if not without_ledger and (ledger is None or not ledger.is_file()):
        raise click.UsageError(
            f"there is no erasure ledger at {ledger}: without it, people forgotten since "
            "the backup would come back; point privacy.ledger at it, or pass "
            "--without-ledger (then forget them again by hand)")
    records = [] if without_keys else read_key_file(keys_path or key_file_for(backup))
    source = open_log(backup, read_only=True)
    try:
        target = ctx.open_log(create=True)
        try:
            copied = copy_log(source, target, keys=False)
            target.load_keys(records)
            reapplied = _apply_ledger(ctx, target)
            violations = erasure_violations(target)
        finally:
            target.close()
    finally:
        source.close()
    if violations:
        for violation in violations:
            ctx.err.print(f"[red]violation[/] {violation}")
        raise SystemExit(1)
    ctx.out.print(f"restored {copied.events} events (up to position {copied.last_position}) "
                  f"and {len(records)} key(s) from {backup} into {target.location}"
                  + (f"; {reapplied}" if reapplied else "; nobody in the erasure ledger "
                     "had content in it"))


def _apply_ledger(ctx: CliContext, log: Log) -> str:
    """Forget again in ``log`` whoever the ledger lists; a sentence saying who."""
    from ..privacy import ErasureLedger
    from ..replay.erasure import apply_ledger

    if not ctx.config_path.is_file() or ctx.config.privacy.ledger is None:
        return ""
    applied = apply_ledger(log, ErasureLedger(ctx.config.privacy.ledger))
    if not applied:
        return ""
    return (f"forgot again {len(applied)} person(s) the erasure ledger lists: "
            + ", ".join(entry.subject for entry in applied))


def _password(ctx: CliContext, url: str) -> str | None:
    if not ctx.config_path.is_file():
        return None
    database = ctx.config.database
    return database.password(ctx.secrets) if database.url == url else None
