"""``personae replay | explain | rerun | rebuild | stats | export | import``: debugging
from the event log alone (see docs/debugging.md)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
from rich import box
from rich.columns import Columns
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from eventstore import Log, LogReader

from ..context.rebuild import RebuildError
from ..durations import parse_duration
from ..personas.defaults import defaults_from_config, known_providers_from_config
from ..personas.loader import load_persona_file, load_personas
from ..personas.model import Persona
from ..replay.calls import CallNotFound
from ..replay.explain import CallExplanation, Explanation, explain, explanation_as_json
from ..replay.follow import follow_events
from ..replay.rebuild import check_projections
from ..replay.redaction import redactor_for
from ..replay.rerun import RerunPlan, RerunResult, plan_rerun, prompt_lines, record_rerun, run_rerun
from ..replay.selection import Selection, conversation_streams
from ..replay.stats import DIMENSIONS, compute_stats, stats_rows, tokens_chart, write_csv
from ..replay.timeline import json_line, write_json, write_timeline
from ..replay.transfer import export_lines, import_lines, write_export
from .context import CliContext, pass_context, user_errors

REDACT_KEY_ENV = "PERSONAE_REDACT_KEY"


def _reader_went_away() -> None:
    """`personae replay | head`: the reader left. Point stdout at /dev/null so that the
    interpreter's final flush does not complain (the Python docs' recipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _when(text: str | None, option: str) -> float | None:
    """A time bound: ISO date/time (UTC unless it says otherwise) or a duration ago."""
    if text is None:
        return None
    try:
        return time.time() - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither a date/time (2026-05-01, "
                                 "2026-05-01T12:00) nor a duration ago (30m, 2h, 7d)",
                                 param_hint=option) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _filter_options(command: Any) -> Any:
    options = [
        click.option("--conversation", "-c", "conversations", multiple=True,
                     help="A conversation: its stream id or its channel id (repeatable)."),
        click.option("--persona", "-p", "personas", multiple=True,
                     help="Only events about this persona (repeatable)."),
        click.option("--user", "-u", "users", multiple=True,
                     help="Only events by or for this user id or display name (repeatable)."),
        click.option("--type", "-t", "types", multiple=True,
                     help="Only this event type (repeatable)."),
        click.option("--since", help="From this time: 2026-05-01T12:00 or a duration ago (2h)."),
        click.option("--until", help="Up to this time (same forms as --since)."),
        click.option("--from-position", type=click.IntRange(min=1), default=None,
                     help="From this position (inclusive)."),
        click.option("--to-position", type=click.IntRange(min=1), default=None,
                     help="Up to this position (inclusive)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _selection(log: LogReader, conversations: tuple[str, ...], personas: tuple[str, ...],
               users: tuple[str, ...], types: tuple[str, ...], since: str | None,
               until: str | None, from_position: int | None,
               to_position: int | None) -> Selection:
    streams: set[str] = set()
    for conversation in conversations:
        found = conversation_streams(log, conversation)
        if not found:
            raise click.BadParameter(f"no conversation {conversation!r} in the log",
                                     param_hint="--conversation")
        streams |= found
    return Selection(streams=frozenset(streams), personas=frozenset(personas),
                     users=frozenset(users), types=frozenset(types),
                     since=_when(since, "--since"), until=_when(until, "--until"),
                     after=(from_position or 1) - 1, upto=to_position)


# -- replay ---------------------------------------------------------------------------


@click.command()
@_filter_options
@click.option("--follow", "-f", is_flag=True,
              help="Keep running and show new events as the bot records them.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_context
@user_errors
def replay(ctx: CliContext, follow: bool, as_json: bool, **filters: Any) -> None:
    """A readable timeline of the log (or of the events the filters keep)."""
    log = ctx.open_log(read_only=True)
    try:
        selection = _selection(log, **filters)
        try:
            if as_json and follow:
                write_json((json_line(e) for e in follow_events(log, selection, upcast=False)),
                           sys.stdout, block=1)
            elif as_json:
                write_json(log.json_lines(selection.as_filter()), sys.stdout)
            else:
                events: Iterator[Any] = (follow_events(log, selection) if follow
                                         else log.scan(selection.as_filter()))
                write_timeline(events, ctx.out, flush_each=follow)
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:
            _reader_went_away()
    finally:
        log.close()


# -- explain --------------------------------------------------------------------------


@click.command("explain")
@click.argument("message_id")
@click.option("--json", "as_json", is_flag=True, help="The explanation as one JSON object.")
@pass_context
@user_errors
def explain_command(ctx: CliContext, message_id: str, as_json: bool) -> None:
    """Why a persona said what it said: MESSAGE_ID is a message that triggered a persona or
    one of the bot's replies (a Discord id, or a terminal chat id; `platform:id` also works)."""
    log = ctx.open_log(read_only=True)
    try:
        try:
            explanation = explain(log, message_id)
        except CallNotFound as exc:
            raise click.ClickException(str(exc)) from None
    finally:
        log.close()
    if as_json:
        modes = {name: p.images for name, p in ctx.config.providers.items()}
        click.echo(orjson.dumps(explanation_as_json(explanation, modes),
                                option=orjson.OPT_INDENT_2))
        return
    _print_explanation(ctx.out, explanation)


def _print_explanation(out: Console, explanation: Explanation) -> None:
    ref = explanation.ref
    if ref.reply_id:
        out.print(f"[dim]{ref.reply_id} is {ref.persona_id}'s reply to message "
                  f"{ref.message_id}[/]")
    data = explanation.message.data if explanation.message else {}
    title = f"message {ref.platform}:{ref.message_id}"
    if explanation.message:
        body = Text(f"{data.get('author_name')} ({data.get('author_id')}) in "
                    f"{explanation.message.stream_id}, position {explanation.message.position}\n")
        body.append(str(data.get("text", "")))
        out.print(Panel(body, title=title, title_align="left"))
    else:
        out.print(f"[bold]{title}[/] (a persona's reply, answered by another persona)")
    if explanation.unanswered_because:
        out.print(f"[yellow]no persona answered:[/] {explanation.unanswered_because}")
    for call in explanation.calls:
        _print_call(out, call)


def _print_call(out: Console, call: CallExplanation) -> None:
    decision = call.decision.data
    out.rule(f"[bold]{call.persona_id}[/]", align="left")
    if call.decision.type == "PersonaTriggered":
        out.print(f"triggered by [green]{decision.get('reason')}[/] (persona version "
                  f"{str(decision.get('persona_version'))[:12]}, hop {decision.get('hop', 0)})")
    stopped = call.stopped_by
    if stopped:
        out.print(Text("stopped: ", style="bold red") + Text(stopped))
    for sentence in call.moderated:
        out.print(Text("moderation: ", style="bold magenta") + Text(sentence))
    if call.greeting is not None:
        g = call.greeting.data
        how = "chosen at random" if g.get("chosen_by") == "random" else "asked for"
        out.print(Text(f"the conversation opened with greeting {g.get('choice')} ({how}), at "
                       f"position {call.greeting.position}: ", style="bold")
                  + Text(str(g.get("text"))))
    if call.outcome is not None and not call.refused_before_model:
        o = call.outcome.data
        usage = o.get("usage") or {}
        table = Table.grid(padding=(0, 2))
        for label, value in (
            ("provider / model", f"{o.get('provider')} / {o.get('model')}"),
            ("parameters", orjson.dumps(call.params).decode() if call.prompt else "?"),
            ("attempts", str(o.get("attempts"))),
            ("latency", f"{float(o.get('latency_s') or 0):.3f} s"),
            ("usage", f"{usage.get('prompt_tokens', '?')} prompt + "
                      f"{usage.get('completion_tokens', '?')} completion = "
                      f"{usage.get('total_tokens', '?')} tokens"
                      f"{' (estimated)' if usage.get('estimated') else ''}"),
            ("finish", f"{o.get('finish_reason')}"
                       f"{', fallback used' if o.get('used_fallback') else ''}"
                       f"{', truncated' if o.get('truncated') else ''}"),
        ):
            table.add_row(Text(label, style="dim"), Text(value))
        out.print(table)
    if call.prompt is not None:
        if call.tools:
            out.print(f"[bold]tools offered[/]: {', '.join(t.name for t in call.tools)}")
        messages = call.messages
        out.print(f"[bold]prompt[/] ({len(messages)} messages, from positions "
                  f"{', '.join(map(str, call.prompt.positions))}"
                  f"{', then the tool rounds' if call.steps else ''}):")
        for line in prompt_lines(messages):
            style = "bold cyan" if line.startswith("[") and line.endswith("]") else ""
            out.print(Text(line, style=style))
        _print_lore(out, call)
    elif call.prompt_problem:
        out.print(f"[yellow]prompt not rebuilt:[/] {call.prompt_problem}")
    if call.steps:
        out.print(f"[bold]tool steps[/] ({len(call.steps)} call(s)):")
        for item in call.steps:
            result = item.result
            status = ("no result recorded" if result is None else
                      f"ok in {result.duration_s:.3f} s" if result.ok else
                      f"{result.error} in {result.duration_s:.3f} s")
            out.print(Text(f"  round {item.step}.{item.index}: {item.call.name}"
                           f"({item.call.arguments}) -> {status}"))
            if result is not None:
                out.print(Text(f"    {' '.join(result.content.split())[:300]}", style="dim"))
    if call.outcome is not None and call.outcome.data.get("reasoning"):
        out.print(Panel(Text(str(call.outcome.data["reasoning"])), title="reasoning",
                        title_align="left", style="dim"))
    if call.outcome is not None and call.outcome.type == "ModelReplied":
        out.print(Panel(Text(str(call.outcome.data.get("text", ""))), title="reply",
                        title_align="left"))
    if call.delivery is not None and call.delivery.type == "ReplyDelivered":
        ids = ", ".join(str(i) for i in call.delivery.data.get("delivered_ids") or ())
        out.print(f"delivered as {ids}")


def _print_lore(out: Console, call: CallExplanation) -> None:
    assert call.prompt is not None
    lore = call.prompt.lore
    if not lore.outcomes:
        if call.prompt.persona.lorebook.entries:
            out.print("[bold]lorebook[/]: no entry activated")
        return
    out.print(f"[bold]lorebook[/] ({lore.spent:,} of {lore.budget:,} tokens):")
    marks = {"inserted": ("inserted", "green"), "cut": ("cut", "yellow"),
             "blocked": ("blocked", "dim")}
    for outcome in lore.outcomes:
        word, style = marks[outcome.status]
        size = f", {outcome.tokens:,} tokens" if outcome.tokens else ""
        out.print(Text(f"  {word:<8} ", style=style) + Text(f"{outcome.label}{size}: ")
                  + Text(outcome.reason, style="dim"))


# -- rerun ----------------------------------------------------------------------------


@click.command()
@click.argument("message_id")
@click.option("--persona-file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Use this persona file instead of the personas directory's version.")
@click.option("--recorded", is_flag=True,
              help="Use the persona version that was recorded with the call.")
@click.option("--persona", "persona_id", help="Which persona's call, when several answered.")
@click.option("--provider", help="Send the prompt to this provider (default: the provider the "
                                 "call was recorded with).")
@click.option("--live-tools", is_flag=True,
              help="Call the persona's tools for real (default: replay the recorded results).")
@pass_context
@user_errors
def rerun(ctx: CliContext, message_id: str, persona_file: Path | None, recorded: bool,
          persona_id: str | None, provider: str | None, live_tools: bool) -> None:
    """Ask the model again what a recorded call asked, with the current (or given) persona,
    on the provider it was recorded with (unless --provider), and show both replies and
    the prompt diff. Never delivered, never counted in quotas; exit 1 when the call fails.
    Tool calls get the recorded results unless --live-tools."""
    config = ctx.config
    known = known_providers_from_config(config)
    if provider is not None and provider not in known:
        raise click.BadParameter(f"unknown provider {provider!r} (known: "
                                 f"{', '.join(sorted(known))})", param_hint="--provider")
    log = ctx.open_log()
    try:
        try:
            plan = plan_rerun(log, message_id, persona_id=persona_id, provider=provider)
            persona = None if recorded else _current_persona(ctx, plan, persona_file)
            if persona is not None:
                plan = plan_rerun(log, message_id, persona, persona_id=plan.old_prompt.persona.id,
                                  provider=provider)
        except (CallNotFound, RebuildError) as exc:
            raise click.ClickException(str(exc)) from None
        from ..gateway.gateway import ModelGateway  # the SDK takes ~1 s to import: only here
        from ..tools.toolbox import Toolbox

        gateway = ModelGateway(config.providers, ctx.secrets)
        toolbox = Toolbox(ctx.secrets) if live_tools else None

        async def call() -> Any:
            try:
                return await run_rerun(plan, gateway, live_tools=toolbox)
            finally:
                await gateway.aclose()
                if toolbox is not None:
                    await toolbox.aclose()

        result = asyncio.run(call())
        position = record_rerun(log, plan, result)
    finally:
        log.close()
    _print_rerun(ctx.out, plan, result, position)
    if not result.ok:
        raise SystemExit(1)


def _current_persona(ctx: CliContext, plan: RerunPlan, persona_file: Path | None
                     ) -> Persona | None:
    config = ctx.config
    defaults = defaults_from_config(config)
    known = known_providers_from_config(config)
    if persona_file is not None:
        return load_persona_file(persona_file, defaults=defaults, known_providers=known)
    loaded = load_personas(config.personas_dir, defaults=defaults, known_providers=known)
    current = loaded.personas.get(plan.old_prompt.persona.id)
    if current is None:
        ctx.err.print(f"[yellow]{plan.old_prompt.persona.id} is not in "
                      f"{config.personas_dir} now; using the recorded version[/]")
    return current


def _print_rerun(out: Console, plan: RerunPlan, result: RerunResult, position: int) -> None:
    outcome = result.outcome
    old = Panel(Text(plan.old_text if plan.old_text is not None else "(no reply was recorded)"),
                title=f"recorded ({plan.old_prompt.persona.version[:12]})", title_align="left")
    new_text = outcome.text if outcome.ok else f"failed: {outcome.error_class}: {outcome.error}"
    new = Panel(Text(new_text), title=f"now ({plan.persona.version[:12]}, {outcome.provider}/"
                                      f"{outcome.model})", title_align="left")
    out.print(Columns([old, new], equal=True, expand=True))
    diff = plan.prompt_diff()
    if diff:
        out.print("[bold]prompt diff[/]")
        for line in diff:
            style = ("green" if line.startswith("+") else "red" if line.startswith("-")
                     else "cyan" if line.startswith("@@") else "")
            out.print(Text(line, style=style))
    else:
        out.print("[dim]the prompt is the same as recorded[/]")
    if result.steps:
        how = "called live" if result.live_tools else "replayed from the log"
        out.print(f"[bold]tool steps[/] ({len(result.steps)} call(s), {how}):")
        for item in result.steps:
            content = " ".join((item.result.content if item.result else "").split())[:300]
            out.print(Text(f"  {item.call.name}({item.call.arguments}) -> {content}"))
    usage = outcome.usage
    out.print(f"[dim]{usage.total_tokens} tokens, {outcome.latency_s:.2f} s, "
              f"{outcome.attempts} attempt(s); recorded at position {position} in "
              f"rerun:{plan.ref.platform}:{plan.ref.message_id} (not delivered, not counted "
              "in any quota)[/]")


# -- rebuild --------------------------------------------------------------------------


@click.command()
@pass_context
@user_errors
def rebuild(ctx: CliContext) -> None:
    """Rebuild every projection from position zero and compare it with the live tables;
    exit 1 when any differs. Projections that never ran on this log (an imported one)
    or were built by an older personae are built first, saying so."""
    log = ctx.open_log(read_only=True)
    try:
        before = {c.name: c for c in check_projections(log) if c.skipped}
    finally:
        log.close()
    # opening with the projections builds them (as the log's writer); else only read
    log = ctx.open_log(projections=True) if before else ctx.open_log(read_only=True)
    try:
        checks = check_projections(log)
    finally:
        log.close()
    failed = False
    for check in checks:
        if check.name in before and not check.skipped:
            ctx.out.print(f"[cyan]built[/] {check.name} from the log up to position "
                          f"{check.position} ({before[check.name].skipped})")
        if check.skipped:
            ctx.out.print(f"[dim]skipped[/] {check.name}: {check.skipped}")
        elif check.ok:
            ctx.out.print(f"[green]ok[/] {check.name}: matches the log up to position "
                          f"{check.position}")
        else:
            failed = True
            ctx.out.print(f"[bold red]DIFFERS[/] {check.name} (up to position {check.position})")
            for difference in check.differences:
                ctx.out.print(f"  {difference}")
                for row in difference.only_live[:20]:
                    ctx.out.print(Text(f"    live only:    {row}", style="red"))
                for row in difference.only_rebuilt[:20]:
                    ctx.out.print(Text(f"    rebuild only: {row}", style="green"))
    if failed:
        raise SystemExit(1)


# -- stats ----------------------------------------------------------------------------

_STATS_COLUMNS = (("key", "key"), ("messages", "msgs"), ("replies", "replies"),
                  ("refusals", "refused"), ("failures", "failed"), ("total_tokens", "tokens"),
                  ("latency_p50_s", "p50"), ("latency_p90_s", "p90"), ("latency_p99_s", "p99"),
                  ("error_rate", "err"), ("refusal_rate", "ref"))
"""The columns of ``stats`` (readable at 80 columns): counts, tokens, latency
percentiles and error and refusal rates."""
_KEY_WIDTH = 16


def _stats_cell(column: str, value: Any) -> str:
    if value in ("", None):
        return "-"
    if column.startswith("latency"):
        seconds = float(value)
        return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"
    if column.endswith("_rate"):
        return f"{float(value):.0%}"
    if column == "total_tokens":
        return f"{int(value):,}"
    if column == "key":
        text = str(value)
        return text if len(text) <= _KEY_WIDTH else text[:_KEY_WIDTH - 1] + "…"
    return str(value)


@click.command()
@_filter_options
@click.option("--csv", "as_csv", is_flag=True, help="CSV for spreadsheets, one row per group.")
@pass_context
@user_errors
def stats(ctx: CliContext, as_csv: bool, **filters: Any) -> None:
    """Usage by persona, user, guild and day: messages, tokens, latency percentiles,
    error and refusal rates, quota use, and tokens per day as a chart."""
    log = ctx.open_log(read_only=True)
    try:
        figures = compute_stats(log, _selection(log, **filters))
    finally:
        log.close()
    if as_csv:
        write_csv(figures, sys.stdout)
        return
    rows = stats_rows(figures)
    for dimension in DIMENSIONS:
        table = Table(title=f"by {dimension}", title_justify="left", box=box.SIMPLE_HEAD,
                      pad_edge=False, padding=(0, 0), show_edge=False)
        for name, header in _STATS_COLUMNS:
            table.add_column(header, justify="left" if name == "key" else "right",
                             no_wrap=True)
        for row in rows:
            if row["dimension"] == dimension:
                table.add_row(*(_stats_cell(name, row[name]) for name, _ in _STATS_COLUMNS))
        ctx.out.print(table)
    ctx.out.print("[dim]p50/p90/p99: reply latency; err: replies failed; ref: triggers "
                  "refused[/]")
    if figures.quotas:
        table = Table(title="quota use (current window)", title_justify="left",
                      box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("persona", "scope", "key", "tokens", "replies"):
            table.add_column(column, justify="right" if column in ("tokens", "replies")
                             else "left")
        for use in figures.quotas:
            table.add_row(use.persona_id, use.scope, _stats_cell("key", use.scope_key),
                          f"{use.tokens:,}", str(use.messages))
        ctx.out.print(table)
    chart = tokens_chart(figures.tokens_per_day())
    if chart:
        ctx.out.print("[bold]tokens per day[/]")
        for line in chart:
            ctx.out.print(line, markup=False)


# -- export / import ------------------------------------------------------------------


@click.command()
@_filter_options
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              help="Write to this file (default: standard output).")
@click.option("--redact", is_flag=True,
              help=f"Replace user ids and names with pseudonyms and drop message text "
                   f"(set {REDACT_KEY_ENV} to keep pseudonyms stable across exports).")
@pass_context
@user_errors
def export(ctx: CliContext, output: Path | None, redact: bool, **filters: Any) -> None:
    """The log (or the events the filters keep) as JSON lines, sealed content opened.
    With --user USER_ID (and no --redact): a data-access request's answer, that person's
    events with their own content in full and anyone else's content and ids redacted."""
    from ..replay.erasure import access_records

    log = ctx.open_log(read_only=True)
    try:
        selection = _selection(log, **filters)
        transform = None
        if redact:
            key = ctx.secrets.get(REDACT_KEY_ENV)
            transform = redactor_for(log, key.encode() if key else os.urandom(32),
                                     selection).record
        elif filters.get("users"):
            people = frozenset(filters["users"])

            def transform(record: dict[str, Any]) -> dict[str, Any]:
                return next(access_records([record], people))
        lines = export_lines(log, selection, transform)
        if output is None:
            try:
                count = write_export(lines, sys.stdout.buffer)
            except BrokenPipeError:
                _reader_went_away()
                return
        else:
            with output.open("wb") as f:
                count = write_export(lines, f)
    finally:
        log.close()
    if output is not None:
        ctx.err.print(f"exported {count} events to {output}")


@click.command("import")
@click.argument("source", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--partial", is_flag=True,
              help="Accept a filtered export, whose positions skip those left out.")
@pass_context
@user_errors
def import_command(ctx: CliContext, source: Path, partial: bool) -> None:
    """Load an export (JSON lines) into an empty log (database in config.yaml); every
    event is checked first, and a refusal (with its line) writes nothing."""
    log: Log = ctx.open_log(create=True)
    try:
        with source.open("rb") as f:
            result = import_lines(log, f, source=str(source), partial=partial)
    finally:
        log.close()
    ctx.out.print(f"imported {result.events} events (last position {result.last_position}) "
                  f"into {log.location}")
    log = ctx.open_log(projections=True)  # the bot's read models, built from the events
    try:
        built = [c.name for c in check_projections(log) if not c.skipped]
    finally:
        log.close()
    ctx.out.print(f"built the projections {', '.join(built)} from them; `personae rebuild` "
                  "checks them against the events")


