"""``personae events``: the raw event log, filtered, as text or JSON lines."""

from __future__ import annotations

import json
from collections.abc import Iterator

import click

from eventstore import RecordedEvent

from .context import CliContext, pass_context, user_errors


@click.command()
@click.option("--stream", help="Only this stream (conversation).")
@click.option("--type", "types", multiple=True, help="Only this event type (repeatable).")
@click.option("--after", type=int, default=0, show_default=True,
              help="Start after this position.")
@click.option("--until", type=int, default=None, help="Stop at this position (inclusive).")
@click.option("--limit", type=int, default=None, help="At most this many events.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_context
@user_errors
def events(ctx: CliContext, stream: str | None, types: tuple[str, ...], after: int,
           until: int | None, limit: int | None, as_json: bool) -> None:
    """Print the event log in position order."""
    log = ctx.open_log(read_only=True)
    try:
        selected: Iterator[RecordedEvent]
        if stream is not None:
            selected = (
                e for e in log.read_stream(stream)
                if e.position > after and (until is None or e.position <= until)
                and (not types or e.type in types)
            )
        else:
            selected = log.iter_all(after, types=types or None, until=until)
        for shown, event in enumerate(selected, start=1):
            if as_json:
                click.echo(json.dumps(event_as_json(event), ensure_ascii=False))
            else:
                ctx.out.print(_line(event), markup=False)
            if limit is not None and shown >= limit:
                break
    finally:
        log.close()


def event_as_json(event: RecordedEvent) -> dict:
    """The JSON-lines shape of an event (used by every ``--json`` output)."""
    return {
        "position": event.position, "event_id": event.event_id, "stream_id": event.stream_id,
        "version": event.version, "type": event.type, "schema_version": event.schema_version,
        "data": dict(event.data), "recorded_at": event.recorded_at,
        "correlation_id": event.correlation_id, "causation_id": event.causation_id,
    }


def _line(event: RecordedEvent) -> str:
    when = event.recorded_datetime.strftime("%Y-%m-%d %H:%M:%S")
    data = json.dumps(dict(event.data), ensure_ascii=False)
    if len(data) > 200:
        data = data[:199] + "…"
    return f"{event.position:>8}  {when}  {event.stream_id}@{event.version}  {event.type}  {data}"
