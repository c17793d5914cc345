"""The timeline: one readable line per event, or one JSON object per line.

Each event kind gets a sentence saying what happened (who said what, which persona
triggered and why, refusals and their reason, model calls with tokens, latency and
attempts, deliveries with their platform message ids, quota resets, persona
versions, gateway connects and resumes); unknown kinds show their data. Lines are
coloured with rich on a terminal and plain when piped; ``--json`` lines have the
shape of ``personae events --json``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from rich.console import Console
from rich.text import Text

from eventstore import RecordedEvent

from ..events import (
    AttachmentStored,
    ContentExpired,
    ConversationReset,
    DeliveryPartPosted,
    DeliveryPlanned,
    GatewayConnected,
    GatewayDisconnected,
    GatewayResumed,
    GreetingDelivered,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    ModelFailed,
    ModelReplied,
    ModerationChecked,
    PersonaGreeted,
    PersonaTriggered,
    PersonaVersionRecorded,
    PreviewPlanned,
    PreviewPosted,
    QuotaReset,
    ReplyDelivered,
    ReplyFailed,
    RerunRecorded,
    SubjectForgotten,
    ToolCalled,
    ToolResult,
    TriggerRejected,
)

MAX_TEXT = 160


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineLine:
    """One event as the timeline shows it: when, where, what kind, and a sentence."""

    position: int
    when: str
    stream_id: str
    type: str
    summary: str
    style: str


def _quote(text: Any) -> str:
    flat = " ".join(str(text or "").split())
    if len(flat) > MAX_TEXT:
        flat = flat[:MAX_TEXT - 1] + "…"
    return f'"{flat}"'


def _persona(d: Mapping[str, Any]) -> str:
    return str(d.get("persona_name") or d.get("persona_id") or "?")


def _tokens(d: Mapping[str, Any]) -> str:
    usage = d.get("usage") or {}
    estimated = " est." if usage.get("estimated") else ""
    return (f"{usage.get('total_tokens', 0)} tokens ({usage.get('prompt_tokens', 0)} prompt + "
            f"{usage.get('completion_tokens', 0)} completion{estimated})")


def _received(d: Mapping[str, Any]) -> str:
    who = f"{d.get('author_name') or '?'} ({d.get('author_id')})"
    if d.get("from_persona"):
        return f"echo of {d['from_persona']}'s reply, message {d.get('message_id')}"
    extra = []
    if d.get("reply_to"):
        extra.append(f"replying to {d['reply_to']}")
    if d.get("invoked_persona"):
        extra.append(f"to {d['invoked_persona']}")
    files = d.get("attachments") or ()
    if files:
        extra.append("with " + ", ".join(
            f"{a.get('filename')}" + (f" (refused: {a['refused']})" if a.get("refused") else "")
            for a in files))
    suffix = f" [{', '.join(extra)}]" if extra else ""
    bot = " bot" if d.get("author_is_bot") else ""
    return f"{who}{bot} said {_quote(d.get('text'))}{suffix} (message {d.get('message_id')})"


def _stored(d: Mapping[str, Any]) -> str:
    extra = f", {d['width']}x{d['height']}" if d.get("width") and d.get("height") else ""
    pages = f", {d['pages']} pages" if d.get("pages") else ""
    note = f" ({d['note']})" if d.get("note") else ""
    return (f"stored a file ({d.get('kind')}, {d.get('media_type')}, {d.get('size')} bytes"
            f"{extra}{pages}){note}, sha256 {str(d.get('sha256'))[:12]}")


def _tool_called(d: Mapping[str, Any]) -> str:
    return (f"{d.get('persona_id')} called {d.get('tool')}({d.get('arguments')}) in round "
            f"{d.get('step')} for message {d.get('message_id')}")


def _tool_result(d: Mapping[str, Any]) -> str:
    how = "returned" if d.get("ok") else f"failed ({d.get('error')})"
    return (f"{d.get('tool')} {how} in {float(d.get('duration_s') or 0):.3f}s: "
            f"{_quote(d.get('content'))}")


def _replied(d: Mapping[str, Any]) -> str:
    flags = [f for f, on in (("fallback", d.get("used_fallback")),
                             ("truncated", d.get("truncated"))) if on]
    attempts = d.get("attempts", 1)
    return (f"{_persona(d)} replied via {d.get('provider')}/{d.get('model')}: {_tokens(d)}, "
            f"{float(d.get('latency_s') or 0):.2f}s, {attempts} attempt{'s' * (attempts != 1)}"
            f"{''.join(', ' + f for f in flags)}: {_quote(d.get('text'))}")


def _failed(d: Mapping[str, Any]) -> str:
    attempts = d.get("attempts", 0)
    return (f"{d.get('persona_id')} failed on message {d.get('message_id')}: "
            f"{d.get('error_class')}: {d.get('error')} ({attempts} attempt"
            f"{'s' * (attempts != 1)}{', notice sent' if d.get('notice_sent') else ''})")


def _triggered(d: Mapping[str, Any]) -> str:
    hop = f" (hop {d['hop']})" if d.get("hop") else ""
    return (f"{d.get('persona_id')} triggered by {d.get('reason')} on message "
            f"{d.get('message_id')} from {d.get('author_id')}{hop}")


def _rejected(d: Mapping[str, Any]) -> str:
    detail = f" ({d['detail']})" if d.get("detail") else ""
    notice = ", notice sent" if d.get("notice_sent") else ""
    return (f"{d.get('persona_id')} refused message {d.get('message_id')} from "
            f"{d.get('author_id')}: {d.get('reason')}{detail}{notice}")


def moderation_sentence(d: Mapping[str, Any]) -> str:
    """What a ModerationChecked says: the verdict, the scores over their thresholds and
    where they came from, a provider failure and what the policy made of it, the actions."""
    way = "message to" if d.get("direction") == "in" else "reply by"
    head = f"moderation of the {way} {d.get('persona_id')} on message {d.get('message_id')}"
    if d.get("bypassed"):
        return f"{head}: not checked (bypass: {d['bypassed']})"
    thresholds = d.get("thresholds") or {}
    scores = d.get("scores") or {}
    found = []
    for category in d.get("matched") or ():
        pair = thresholds.get(category) or {}
        score = float(scores.get(category, 0.0))
        block = pair.get("block")
        over = "block" if block is not None and score >= float(block) else "flag"
        found.append(f"{category} {score:.3f} >= {over} {float(pair.get(over) or 0.0):g}")
    if not found and scores:
        top = max(scores, key=lambda c: float(scores[c]))
        found.append(f"highest {top} {float(scores[top]):.3f}")
    parts = [f"{head}: {d.get('verdict')}"]
    if found:
        parts.append(", ".join(found))
    if d.get("error"):
        parts.append(f"provider failed ({d['error']}), "
                     + ("fail closed: refused" if d.get("failed_closed") else "fail open"))
    sources = ", ".join(d.get("sources") or ()) or "no source"
    actions = ", ".join(d.get("actions") or ()) or "none"
    return f"{'; '.join(parts)} (from {sources}; actions: {actions})"


def _reset(d: Mapping[str, Any]) -> str:
    when = datetime.fromtimestamp(float(d.get("scheduled_for") or 0), UTC)
    catch_up = ", caught up after downtime" if d.get("catch_up") else ""
    return (f"{d.get('persona_id')}'s quota window starts again "
            f"({when:%Y-%m-%d %H:%M} UTC, cron {d.get('cron')!r}{catch_up})")


def _gateway(verb: str) -> Callable[[Mapping[str, Any]], str]:
    def describe(d: Mapping[str, Any]) -> str:
        shard = f", shard {d['shard_id']}" if d.get("shard_id") is not None else ""
        return f"{d.get('platform', 'gateway')} gateway {verb} (session {d.get('session_id')}{shard})"
    return describe


def _rerun(d: Mapping[str, Any]) -> str:
    outcome = (f"replied {_quote(d.get('text'))}" if d.get("ok")
               else f"failed: {d.get('error_class')}: {d.get('error')}")
    return (f"rerun of {d.get('source_event_id')} with {d.get('persona_id')}@"
            f"{str(d.get('persona_version'))[:12]} via {d.get('provider')}/{d.get('model')}: "
            f"{outcome}")


_DESCRIBE: dict[str, tuple[str, Callable[[Mapping[str, Any]], str]]] = {
    MessageReceived.type: ("cyan", _received),
    MessageEdited.type: ("cyan", lambda d: f"message {d.get('message_id')} edited to "
                                        f"{_quote(d.get('text'))}"
                                        + ("" if d.get("attachments") is None else
                                           f", now with {len(d['attachments'])} file(s)")),
    MessageDeleted.type: ("cyan", lambda d: f"message {d.get('message_id')} deleted"),
    ConversationReset.type: ("magenta", lambda d: (
        f"{d.get('by_user')} reset their own turns" if d.get("scope") == "user"
        else f"conversation reset by {d.get('by_user')}")),
    PersonaTriggered.type: ("green", _triggered),
    TriggerRejected.type: ("yellow", _rejected),
    ModerationChecked.type: ("magenta", moderation_sentence),
    ModelReplied.type: ("bold green", _replied),
    ModelFailed.type: ("bold red", _failed),
    ReplyDelivered.type: ("green", lambda d: (
        f"{d.get('persona_id')}'s reply to {d.get('message_id')} delivered as "
        f"{', '.join(str(i) for i in d.get('delivered_ids') or ()) or 'nothing'}")),
    ReplyFailed.type: ("red", lambda d: f"{d.get('persona_id')}'s reply to {d.get('message_id')} "
                                     f"not delivered: {d.get('error')}"),
    DeliveryPlanned.type: ("dim", lambda d: (
        f"{d.get('persona_id')}'s reply to {d.get('message_id')} will be "
        f"{len(d.get('parts') or ())} messages ({d.get('route')}, in {d.get('channel_id')})")),
    DeliveryPartPosted.type: ("dim", lambda d: (
        f"{d.get('persona_id')}'s reply to {d.get('message_id')}: part "
        f"{int(d.get('index') or 0) + 1} posted as {d.get('posted_id')}")),
    PreviewPlanned.type: ("dim", lambda d: (
        f"{d.get('persona_id')}'s reply to {d.get('message_id')}: preview about to be "
        f"posted ({d.get('route')})")),
    PreviewPosted.type: ("dim", lambda d: (
        f"{d.get('persona_id')}'s reply to {d.get('message_id')}: preview posted as "
        f"{d.get('posted_id')}")),
    QuotaReset.type: ("blue", _reset),
    PersonaVersionRecorded.type: ("blue", lambda d: (
        f"persona {d.get('persona_id')} version {str(d.get('version'))[:12]} loaded"
        f"{' from ' + str(d['path']) if d.get('path') else ''}")),
    GatewayConnected.type: ("blue", _gateway("connected")),
    GatewayResumed.type: ("blue", _gateway("resumed")),
    GatewayDisconnected.type: ("yellow", _gateway("disconnected")),
    RerunRecorded.type: ("magenta", _rerun),
    AttachmentStored.type: ("blue", _stored),
    ToolCalled.type: ("green", _tool_called),
    ToolResult.type: ("green", _tool_result),
    PersonaGreeted.type: ("bold green", lambda d: (
        f"{d.get('persona_name') or d.get('persona_id')} greeted with greeting "
        f"{d.get('choice')} ({d.get('chosen_by')}): {_quote(d.get('text'))}")),
    GreetingDelivered.type: ("green", lambda d: (
        f"{d.get('persona_id')}'s greeting delivered as "
        f"{', '.join(str(i) for i in d.get('delivered_ids') or ())}" if d.get("delivered_ids")
        else f"{d.get('persona_id')}'s greeting not delivered: {d.get('error')}")),
    SubjectForgotten.type: ("magenta", lambda d: (
        f"{d.get('subject')} forgotten at {d.get('requested_by')}'s request ({d.get('via')}): "
        "their content is erased")),
    ContentExpired.type: ("magenta", lambda d: (
        f"retention{' ' + str(d['retention']) if d.get('retention') else ''}: content before "
        f"day {d.get('before_period')} and deletions due shredded")),
}


def describe(event: RecordedEvent) -> TimelineLine:
    """The timeline line of one event. Its data is read as stored, not as the catalogue
    types it: a timeline must show an event it cannot type too."""
    data = event.data
    when = datetime.fromtimestamp(event.recorded_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
    style, sentence = _DESCRIBE.get(event.type, ("white", None))
    if sentence is None:
        text = orjson.dumps(dict(data)).decode()
        summary = text if len(text) <= 2 * MAX_TEXT else text[:2 * MAX_TEXT - 1] + "…"
    else:
        summary = sentence(data)
    return TimelineLine(position=event.position, when=when, stream_id=event.stream_id,
                        type=event.type, summary=summary, style=style)


def json_line(event: RecordedEvent) -> bytes:
    """The ``--json`` line of an event: every stored column."""
    return orjson.dumps({
        "position": event.position, "event_id": event.event_id, "stream_id": event.stream_id,
        "version": event.version, "type": event.type, "schema_version": event.schema_version,
        "data": dict(event.data), "recorded_at": event.recorded_at,
        "correlation_id": event.correlation_id, "causation_id": event.causation_id,
    }, option=orjson.OPT_APPEND_NEWLINE)


def write_json(lines: Iterable[bytes], out: TextIO, *, block: int = 2000) -> int:
    """Write JSON ``lines`` to ``out``, flushed every ``block`` lines (1 when following,
    so each event shows as it comes); returns how many."""
    buffer = getattr(out, "buffer", None)
    count = 0
    chunk: list[bytes] = []
    for line in lines:
        chunk.append(line)
        count += 1
        if len(chunk) >= block:
            _flush(out, buffer, chunk)
    _flush(out, buffer, chunk)
    return count


def _flush(out: TextIO, buffer: Any, chunk: list[bytes]) -> None:
    if not chunk:
        return
    data = b"".join(chunk)
    chunk.clear()
    if buffer is not None:
        out.flush()
        buffer.write(data)
        buffer.flush()
    else:
        out.write(data.decode())
        out.flush()


def write_timeline(events: Iterable[RecordedEvent], console: Console, *,
                   flush_each: bool = False) -> int:
    """Write ``events`` as timeline lines: coloured on a terminal, plain when piped
    (``flush_each`` when following, so each event shows as it comes)."""
    count = 0
    plain = not console.is_terminal
    for event in events:
        line = describe(event)
        count += 1
        if plain:
            console.file.write(f"{line.position:>8}  {line.when}  {line.stream_id}  "
                               f"{line.type}  {line.summary}\n")
            if flush_each:
                console.file.flush()
            continue
        text = Text()
        text.append(f"{line.position:>8} ", style="dim")
        text.append(f"{line.when} ", style="dim")
        text.append(f"{line.stream_id} ", style="dim cyan")
        text.append(f"{line.type:<20}", style=line.style)
        text.append(line.summary)
        console.print(text, soft_wrap=True)
    if plain:
        console.file.flush()
    return count
