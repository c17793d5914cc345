"""Replay and explain over a large event log.

    python bench/replay.py [--events 1000000] [--dir DIR] [--repeat 3] [--json]

Builds (once per ``--dir``, then reuses) a log of ``--events`` events shaped like the
dispatcher's: persona versions, conversations of MessageReceived, PersonaTriggered,
ModelReplied (usage, latency, context positions of the recent turns),
ReplyDelivered and the platform's echo of the reply, with some refusals and model failures, written through
``SQLiteLog.append_batch``. Then measures:

- ``replay --json`` of the whole log, in process (rows -> JSON lines into
  /dev/null): events per second (goal >= 100,000);
- ``explain`` of a trigger message id and of a reply id (the bot's message) near the
  end of the log, in process: median and max milliseconds (goal <= 100 ms);
- the same two as the command a user runs (``python -m core.cli ...``), once each,
  which adds the interpreter's and the CLI's start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._logs import reusable_log
from core.dispatcher.projection import projections
from core.events import (
    MessageReceived,
    ModelFailed,
    ModelReplied,
    PersonaTriggered,
    ReplyDelivered,
    TriggerRejected,
)
from core.events.ids import (
    conversation_stream,
    delivered_event_id,
    message_event_id,
    reply_event_id,
    trigger_event_id,
    version_stream,
)
from core.personas.loader import load_persona_text
from core.personas.versions import version_event
from core.replay.explain import explain
from core.replay.selection import EVERYTHING
from core.replay.timeline import write_json
from eventstore import AppendRequest, NewEvent, SQLiteLog

ROOT = Path(__file__).resolve().parents[1]
PERSONA = """\
id: {id}
name: {name}
model: {{provider: openai, name: gpt-4o-mini, temperature: 0.6, max_tokens: 500}}
prompt:
  system: "You are {name}, talking with {{user}} in #{{channel}} on {{date}}."
context: {{scope: channel, max_messages: 40, max_tokens: 3000}}
triggers: {{keywords: ["{id}"]}}
"""
TEXTS = ("could you explain how a decorator keeps the wrapped function's name?",
         "what is the difference between a list and a tuple, really?",
         "why does my generator stop after the first loop over it?")
REPLY = ("A decorator replaces the function with a wrapper; functools.wraps copies the "
         "name, docstring and signature over so tools still see the original. ") * 2
CONVERSATIONS = 2000
CONTEXT_TURNS = 20


def _personas() -> list:
    return [load_persona_text(PERSONA.format(id=pid, name=pid.title()), file=f"{pid}.yaml",
                              defaults={}, known_providers={"openai"})
            for pid in ("ada", "bob", "cyd")]


def build_log(path: Path, events: int) -> float:
    """Fill ``path`` with about ``events`` events; returns seconds taken (0 when reused)."""
    if reusable_log(path, events):
        return 0.0
    started = time.perf_counter()
    personas = _personas()
    log = SQLiteLog.open(path, synchronous="normal",
                        projections=projections())
    try:
        log.append_batch([AppendRequest(version_stream(p.id), [version_event(p)])
                          for p in personas])
        position = len(personas)
        turns: dict[str, list[int]] = {}
        batch: list[AppendRequest] = []
        n = 0
        while position < events:
            channel = f"{100000000000000000 + n % CONVERSATIONS}"
            persona = personas[n % len(personas)]
            new = _exchange(n, channel, persona, position, turns.setdefault(channel, []))
            position += len(new)
            batch.append(AppendRequest(conversation_stream("discord", channel), new))
            n += 1
            if len(batch) == 2000:
                log.append_batch(batch)
                batch = []
        if batch:
            log.append_batch(batch)
    finally:
        log.close()
    return time.perf_counter() - started


def _snowflake(n: int) -> str:
    """A Discord id made now (its top bits are milliseconds since 2015), unique by ``n``."""
    return str(((int(time.time() * 1000) - 1_420_070_400_000) << 22) | (n & 0x3FFFFF))


def _exchange(n: int, channel: str, persona, position: int, turns: list[int]) -> list[NewEvent]:
    mid = _snowflake(2 * n)
    author = f"{200000000000000000 + n % 5000}"
    keys = {"user": author, "channel": channel, "guild": "123456789012345678",
            "persona": persona.id, "provider": "openai"}
    source = message_event_id("discord", mid)
    received = MessageReceived(
        platform="discord",
        message_id=mid,
        channel_id=channel,
        author_id=author,
        author_name=f"user{n % 5000}",
        text=f"{persona.id}, {TEXTS[n % 3]}",
        guild_id="123456789012345678",
        sent_at=1.7e9 + n,
        channel_name="python",
        guild_name="Python Help",
    )
    events = [received.new_event(source)]
    turns.append(position + 1)
    if n % 50 == 7:
        events.append(
            TriggerRejected(
                platform="discord",
                message_id=mid,
                persona_id=persona.id,
                reason="rate_limited:user",
                author_id=author,
                detail="6 per 60s",
                retry_after_s=12.5,
                notice_sent=True,
            ).new_event(trigger_event_id("discord", mid, persona.id))
        )
        return events
    events.append(
        PersonaTriggered(
            platform="discord",
            message_id=mid,
            persona_id=persona.id,
            persona_version=persona.version,
            reason="keyword",
            channel_id=channel,
            author_id=author,
            source_event_id=source,
            guild_id="123456789012345678",
            provider="openai",
            scope_keys=keys,
        ).new_event(trigger_event_id("discord", mid, persona.id))
    )
    context = tuple(turns[-CONTEXT_TURNS:])
    variables = {"user": f"user{n % 5000}", "channel": "python", "guild": "Python Help",
                 "date": "2026-05-01", "time": "12:00 UTC"}
    if n % 100 == 42:
        events.append(
            ModelFailed(
                platform="discord",
                message_id=mid,
                persona_id=persona.id,
                error_class="rate_limited",
                error="the provider is rate limiting",
                persona_version=persona.version,
                provider="openai",
                model="gpt-4o-mini",
                latency_s=3.2,
                attempts=4,
                context_positions=context,
                variables=variables,
                notice_sent=True,
            ).new_event(reply_event_id("discord", mid, persona.id))
        )
        return events
    events.append(
        ModelReplied(
            platform="discord",
            message_id=mid,
            persona_id=persona.id,
            persona_version=persona.version,
            provider="openai",
            model="gpt-4o-mini",
            text=REPLY,
            author_id=author,
            persona_name=persona.name,
            usage={
                "prompt_tokens": 900 + n % 300,
                "completion_tokens": 60,
                "total_tokens": 960 + n % 300,
                "estimated": False,
            },
            latency_s=0.8 + (n % 17) / 10,
            attempts=1,
            finish_reason="stop",
            context_positions=context,
            variables=variables,
            scope_keys=keys,
        ).new_event(reply_event_id("discord", mid, persona.id))
    )
    turns.append(position + 3)
    del turns[:-CONTEXT_TURNS]
    reply_id = _snowflake(2 * n + 1)
    events.append(
        ReplyDelivered(
            platform="discord", message_id=mid, persona_id=persona.id, delivered_ids=(reply_id,)
        ).new_event(delivered_event_id("discord", mid, persona.id))
    )
    # Discord sends the bot's own message back; it is recorded as an echo
    events.append(
        MessageReceived(
            platform="discord",
            message_id=reply_id,
            channel_id=channel,
            author_id="100000000000000001",
            author_name=persona.name,
            text=REPLY,
            author_is_bot=True,
            guild_id="123456789012345678",
            from_persona=persona.id,
        ).new_event(message_event_id("discord", reply_id))
    )
    return events


def _replay_json(path: Path) -> tuple[int, float]:
    log = SQLiteLog.open(path, create=False)
    try:
        with open(os.devnull, "w") as sink:
            started = time.perf_counter()
            count = write_json(log.json_lines(EVERYTHING.as_filter()), sink)
            return count, time.perf_counter() - started
    finally:
        log.close()


def _recent_ids(path: Path) -> tuple[str, str]:
    """A trigger message id and a reply (delivered) id near the end of the log."""
    log = SQLiteLog.open(path, create=False)
    try:
        (delivered,) = log.read_all(log.last_position() - 40, types=["ReplyDelivered"],
                                    limit=1)
        early = log.read_all(log.last_position() // 2, types=["ReplyDelivered"], limit=1)[0]
        return str(delivered.data["message_id"]), str(early.data["delivered_ids"][0])
    finally:
        log.close()


def _explain_ms(path: Path, asked: str, repeat: int) -> list[float]:
    log = SQLiteLog.open(path, create=False)
    try:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            explanation = explain(log, asked)
            times.append((time.perf_counter() - started) * 1000)
            assert explanation.calls and explanation.calls[0].prompt is not None
        return times
    finally:
        log.close()


def _command_s(config: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core.cli", "--config", str(config), *args],
                   stdout=subprocess.DEVNULL, check=True, cwd=ROOT)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="events in the log (default 1,000,000)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="keep the log here and reuse it on the next run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="personae-replay-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"replay-{args.events}.db"
    config = directory / "config.yaml"
    config.write_text(f"database: {{path: {path.name}}}\n")
    build_s = build_log(path, args.events)

    replays = [_replay_json(path) for _ in range(args.repeat)]
    count = replays[0][0]
    rates = [c / s for c, s in replays]
    message_id, reply_id = _recent_ids(path)
    by_message = _explain_ms(path, message_id, max(5, args.repeat))
    by_reply = _explain_ms(path, reply_id, max(5, args.repeat))
    command_replay = _command_s(config, "replay", "--json")
    command_explain = _command_s(config, "explain", message_id)
    command_help = _command_s(config, "--help")
    figures = {
        "events": count,
        "build_s": round(build_s, 1),
        "replay_json_events_per_s_median": round(statistics.median(rates)),
        "replay_json_s_median": round(statistics.median(s for _, s in replays), 2),
        "explain_message_ms_median": round(statistics.median(by_message), 2),
        "explain_message_ms_max": round(max(by_message), 2),
        "explain_reply_id_ms_median": round(statistics.median(by_reply), 2),
        "explain_reply_id_ms_max": round(max(by_reply), 2),
        "command_replay_json_s": round(command_replay, 2),
        "command_explain_s": round(command_explain, 2),
        "command_startup_s": round(command_help, 2),
        "log_bytes": path.stat().st_size,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:>34}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
