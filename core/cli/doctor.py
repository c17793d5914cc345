"""``personae doctor``: check a set-up before the first run."""

from __future__ import annotations

import json

import click
from rich.markup import escape
from rich.table import Table

from ..ops.doctor import DoctorReport, run_diagnosis
from .context import CliContext, pass_context

_STYLES = {"ok": "green", "note": "cyan", "warn": "yellow", "fail": "bold red"}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every finding.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=5.0,
              show_default=True, help="Seconds to wait for each network check.")
@pass_context
def doctor(ctx: CliContext, as_json: bool, timeout_s: float) -> None:
    """Check config.yaml, personas, the event log, the Discord token and intents, every
    provider and the clock; say what to do. Exit 1 when something blocks a run."""
    report = run_diagnosis(ctx.config_path, timeout_s=timeout_s)
    if as_json:
        click.echo(json.dumps({"ok": not report.blocking,
                               "findings": [f.to_dict() for f in report.findings]},
                              ensure_ascii=False))
    else:
        ctx.out.print(_table(report))
        verdict = ("[bold red]something blocks a run: fix the failures above[/]"
                   if report.blocking else "[green]ready to run[/]")
        ctx.out.print(verdict)
    if report.blocking:
        raise SystemExit(1)


def _table(report: DoctorReport) -> Table:
    table = Table(show_header=True, header_style="bold")
    table.add_column("check")
    table.add_column("status")
    table.add_column("details / what to do", overflow="fold")
    for finding in report.findings:
        style = _STYLES[finding.status]
        table.add_row(finding.check, f"[{style}]{finding.status}[/]", escape(finding.message))
    return table
