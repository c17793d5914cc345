"""``personae forget``: erase a person's content (a deletion request)."""

from __future__ import annotations

import getpass
import uuid

import click

from .context import CliContext, pass_context, user_errors


@click.command()
@click.argument("user_id")
@click.option("--by", "requested_by", default=None,
              help="Who asked for it, for the record (default: cli:<your login>).")
@pass_context
@user_errors
def forget(ctx: CliContext, user_id: str, requested_by: str | None) -> None:
    """Erase everything USER_ID wrote or that quotes them: their keys are destroyed, so
    their messages, names, files and the replies to them read back as [erased] in every
    command; ids, counts and usage stay. The erasure is recorded as an event (who asked,
    when, whom) and in the erasure ledger (privacy.ledger), which `db restore` applies
    to any backup restored later. Runs as the log's one writer: while the bot runs on an
    SQLite log, an admin uses /forget instead."""
    from ..privacy import ErasureLedger
    from ..replay.erasure import forget_in_log

    ledger = ctx.config.privacy.ledger
    log = ctx.open_log(projections=True)
    try:
        report = forget_in_log(log, user_id, requested_by=requested_by or
                               f"cli:{getpass.getuser()}", requested_id=uuid.uuid4().hex,
                               ledger=ErasureLedger(ledger) if ledger is not None else None)
    finally:
        log.close()
    ctx.out.print(f"forgot {user_id}: {report.keys} key(s) destroyed; the content of "
                  f"{report.erased_events} event(s) now reads back as \\[erased]; recorded in "
                  f"the log and in the erasure ledger {ledger}")
    if report.in_clear:
        ctx.err.print(f"[yellow]warning[/] {len(report.in_clear)} event(s) of {user_id} were "
                      "written before encryption and hold their content in clear (first: "
                      f"{report.in_clear[0]}); seal the log into a new one with `personae db "
                      "copy` to erase them")
        raise SystemExit(1)
