"""The dispatcher's own latency, in process, over a large event log.

    python bench/dispatch.py [--events 1000000] [--conversations 1000] [--json]
    python bench/dispatch.py --url postgresql://postgres@127.0.0.1:5432/test --events 100000 \
                             [--rate 100,200,400]

Builds (once, then reuses) a log of ``--events`` events: conversations with
history, including the ``--conversations`` that the run talks in. Then
``--messages`` messages arrive at ``--rate`` per second spread over those
conversations (open loop: arrivals do not wait for replies), each answered by an
in-process model with zero latency. Measured per message:

- inbound -> model request: ``ingest`` called until the model is asked (the
  atomic append of message + trigger, queueing, reading the conversation's tail,
  building the context);
- model reply -> outbound reply: the model returned until the adapter's
  ``deliver`` is called (recording ModelReplied first).

It runs on the event loop ``personae run`` uses (``core.eventloop``: uvloop where
installed). Prints p50/p99/max of both, where that time went (the event store's appends and
conversation reads, building the context), CPU time per message (the figure least
disturbed by a busy machine), throughput and peak RSS.

``--url`` puts the log on PostgreSQL (in a schema of its own, built for the run and
dropped after) and adds the server's CPU time per message (every PostgreSQL process on
this machine): with no gateway and no model in the way, one process offers the server
far more replies per second than a bot on this machine can, so the figure at each of
several ``--rate`` values shows what a server core carries as the load grows (group
commits grow with it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import core.dispatcher.pipeline as pipeline_module
from bench._logs import reusable_log
from bench._postgres import drop_schema, postgres_cpu_s, schema_url
from core import eventloop
from core.app import build_dispatcher
from core.config import CONTEXT_CACHE_EVENTS
from core.dispatcher.dispatcher import DispatcherSettings
from core.dispatcher.messages import (
    Author,
    DeliveryReceipt,
    InboundMessage,
    Notice,
    OutboundReply,
    ReplyTarget,
)
from core.dispatcher.projection import projections
from core.events import MessageReceived, ModelReplied, PersonaTriggered, ReplyDelivered
from core.events.ids import (
    conversation_stream,
    delivered_event_id,
    message_event_id,
    reply_event_id,
    trigger_event_id,
)
from core.gateway.model import ModelOutcome, ModelRequest, OnDelta, Usage
from core.personas.loader import load_persona_text
from core.personas.registry import PersonaRegistry
from eventstore import AppendRequest, EventStore, open_log, open_store

PERSONA = """\
id: ada
name: Ada
model: {provider: bench, name: instant}
prompt:
  system: "You are {persona}, talking with {user} in #{channel} on {date}."
  examples: [{user: "what is a list?", assistant: "An ordered, mutable sequence."}]
context: {scope: channel, max_messages: 40, max_tokens: 3000}
triggers: {keywords: ["ada"]}
limits:
  rate: {capacity: 1000, per: 60s, scope: user}
  quota: {tokens: 100000000, scope: user, reset: "0 0 * * *"}
lorebook:
  - keys: [decorator]
    content: Ada explains decorators with the timing example first.
"""
TEXT = ("ada, could you explain how a decorator keeps the wrapped function's name and "
        "docstring, and when I would reach for functools.wraps?")


def _exchange(stream_id: str, channel: str, n: int) -> list:
    mid = f"{channel}-h{n}"
    author = f"user{n % 7}"
    keys = {"user": author, "channel": channel, "guild": "g", "persona": "ada",
            "provider": "bench"}
    return [
        MessageReceived(
            platform="bench",
            message_id=mid,
            channel_id=channel,
            author_id=author,
            author_name=author.title(),
            text=TEXT,
            guild_id="g",
        ).new_event(message_event_id("bench", mid)),
        PersonaTriggered(
            platform="bench",
            message_id=mid,
            persona_id="ada",
            persona_version="v0",
            reason="keyword",
            channel_id=channel,
            author_id=author,
            source_event_id=message_event_id("bench", mid),
            guild_id="g",
            provider="bench",
            scope_keys=keys,
        ).new_event(trigger_event_id("bench", mid, "ada")),
        ModelReplied(
            platform="bench",
            message_id=mid,
            persona_id="ada",
            persona_version="v0",
            provider="bench",
            model="instant",
            text="A decorator " * 20,
            author_id=author,
            persona_name="Ada",
            usage={"total_tokens": 120},
            context_positions=(1, 2, 3),
            scope_keys=keys,
        ).new_event(reply_event_id("bench", mid, "ada")),
        ReplyDelivered(
            platform="bench", message_id=mid, persona_id="ada", delivered_ids=(f"{mid}-out",)
        ).new_event(delivered_event_id("bench", mid, "ada")),
    ]


def build_log(target: Path | str, events: int, conversations: int, seal: bool = True) -> float:
    """Fill ``target`` (a file, reused when it holds enough, or a PostgreSQL URL) with about
    ``events`` events (personal content sealed, or in clear); returns seconds taken (0 when
    reused)."""
    if isinstance(target, Path) and reusable_log(target, events):
        return 0.0
    started = time.perf_counter()
    log = open_log(target, synchronous="normal", projections=projections(), seal=seal)
    try:
        exchanges = events // 4
        per_bench = 10
        filler_streams = max(1, (exchanges - per_bench * conversations) // 10)
        batch: list[AppendRequest] = []
        for n in range(exchanges):
            if n < per_bench * conversations:
                channel = f"bench{n % conversations}"
            else:
                channel = f"fill{n % filler_streams}"
            batch.append(AppendRequest(conversation_stream("bench", channel),
                                       _exchange("", channel, n)))
            if len(batch) == 2000:
                log.append_batch(batch)
                batch = []
        if batch:
            log.append_batch(batch)
    finally:
        log.close()
    return time.perf_counter() - started


class _Timings:
    def __init__(self) -> None:
        self.ingest: dict[str, float] = {}
        self.request: dict[str, float] = {}
        self.replied: dict[str, float] = {}
        self.delivered: dict[str, float] = {}
        self.done: dict[str, asyncio.Future[None]] = {}


class _TimedStore:
    """The event store, timing the calls on the dispatcher's path."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self.times: dict[str, list[float]] = {"append": [], "read_stream_tail": []}

    def __getattr__(self, name: str):
        attribute = getattr(self._store, name)
        if name not in self.times:
            return attribute
        times = self.times[name]

        async def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return await attribute(*args, **kwargs)
            finally:
                times.append(time.perf_counter() - started)

        return timed


class _InstantModel:
    """The fake model at zero latency: answers at once, streaming one piece."""

    def __init__(self, timings: _Timings) -> None:
        self._timings = timings

    async def complete(self, request: ModelRequest, on_delta: OnDelta | None = None
                       ) -> ModelOutcome:
        key = request.messages[-1].content.rsplit(" ", 1)[-1]
        self._timings.request[key] = time.perf_counter()
        text = f"An answer to {key}."
        if on_delta is not None:
            await on_delta(text)
        self._timings.replied[key] = time.perf_counter()
        return ModelOutcome(ok=True, text=text, provider=request.provider, model=request.model,
                            usage=Usage(prompt_tokens=100, completion_tokens=20, total_tokens=120))


class _Sink:
    def __init__(self, timings: _Timings) -> None:
        self._timings = timings

    async def deliver(self, reply: OutboundReply) -> DeliveryReceipt:
        key = reply.target.message_id
        self._timings.delivered[key] = time.perf_counter()
        self._timings.done[key].set_result(None)
        return DeliveryReceipt(message_ids=(f"{key}-out",))

    async def notice(self, notice: Notice) -> None:
        return None

    async def typing(self, target: ReplyTarget, persona_id: str) -> None:
        return None

    async def stream_delta(self, target: ReplyTarget, persona_id: str, text: str) -> None:
        return None


def _cpu_seconds() -> float:
    """CPU time of the whole process (loop, writer and reader threads): unlike latency,
    hardly disturbed by other processes on a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_ms": round(statistics.median(ordered) * 1000, 3),
            "p99_ms": round(pick(0.99) * 1000, 3), "max_ms": round(ordered[-1] * 1000, 3)}


async def run(path: Path | str, conversations: int, messages: int, rate: float,
              synchronous: str, history_cache: int = CONTEXT_CACHE_EVENTS,
              seal: bool = True) -> dict:
    store = await open_store(path, synchronous=synchronous,  # type: ignore[arg-type]
                             projections=projections(), seal=seal)
    timings = _Timings()
    persona = load_persona_text(PERSONA, file="ada.yaml", defaults={},
                                known_providers={"bench"})
    timed = _TimedStore(store)
    builds: list[float] = []
    build = pipeline_module.build_context

    def timed_build(*args, **kwargs):
        started = time.perf_counter()
        try:
            return build(*args, **kwargs)
        finally:
            builds.append(time.perf_counter() - started)

    pipeline_module.build_context = timed_build
    dispatcher = build_dispatcher(timed, PersonaRegistry([persona]), _InstantModel(timings),  # type: ignore[arg-type]
                            {"bench": _Sink(timings)},
                            DispatcherSettings(max_concurrent=64, queue_size=10_000,
                                               history_cache_events=history_cache))
    await dispatcher.start(schedule_resets=False)
    rng = random.Random(7)
    loop = asyncio.get_running_loop()
    run_id = time.time_ns()
    pending = []

    async def send(n: int) -> None:
        channel = f"bench{rng.randrange(conversations)}"
        key = f"r{run_id}-{n}"
        message = InboundMessage(
            platform="bench",
            message_id=key,
            channel_id=channel,
            author=Author(id=f"user{n % 50}", display_name="Someone"),
            text=f"{TEXT} {key}",
            guild_id="g",
        )
        timings.done[key] = loop.create_future()
        timings.ingest[key] = time.perf_counter()
        result = await dispatcher.ingest(message)
        assert result.triggered == ("ada",), result

    on_postgres = isinstance(path, str)
    cpu_before, server_before = _cpu_seconds(), postgres_cpu_s() if on_postgres else 0.0
    started = time.perf_counter()
    for n in range(messages):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.ensure_future(send(n)))
    await asyncio.gather(*pending)
    await asyncio.gather(*timings.done.values())
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    server = postgres_cpu_s() - server_before if on_postgres else 0.0
    await dispatcher.shutdown(5)
    await store.close()
    pipeline_module.build_context = build
    keys = list(timings.done)
    return {
        "where_the_time_went": {
            "event_store_append": _percentiles(timed.times["append"]),
            "read_conversation_tail": _percentiles(timed.times["read_stream_tail"]),
            "build_context": _percentiles(builds),
        },
        "inbound_to_model_request": _percentiles(
            [timings.request[k] - timings.ingest[k] for k in keys]),
        "model_reply_to_outbound": _percentiles(
            [timings.delivered[k] - timings.replied[k] for k in keys]),
        "cpu_ms_per_message": round(cpu * 1000 / messages, 3),
        **({"postgres_cpu_ms_per_message": round(server * 1000 / messages, 3)}
           if on_postgres else {}),
        "messages": messages,
        "offered_rate_per_s": rate,
        "achieved_rate_per_s": round(messages / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rate", default="500",
                        help="messages per second (comma-separated: a run at each)")
    parser.add_argument("--url", default=None,
                        help="the log on this PostgreSQL server (default an SQLite file)")
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
    parser.add_argument("--history-cache", type=int, default=CONTEXT_CACHE_EVENTS,
                        help="conversation events cached in memory (0: read the log each time)")
    parser.add_argument("--db", type=Path, default=None,
                        help="log file to build once and reuse (default: in the temp dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--encryption", choices=["on", "off", "both"], default="on",
                        help="seal personal content (privacy.encrypt); both: measure off and "
                             "on in turn, --rounds times, on logs of their own, and give the "
                             "medians and their ratios")
    parser.add_argument("--rounds", type=int, default=3, help="rounds with --encryption both")
    args = parser.parse_args()
    if args.encryption == "both":
        _compare(args)
        return
    path: Path | str = args.db or Path(tempfile.gettempdir()) / \
        f"personae-bench-dispatch-{args.events}.db"
    if args.url:
        path = schema_url(args.url, f"personae_bench_dispatch_{os.getpid()}")
    try:
        build_s = build_log(path, args.events, args.conversations, args.encryption == "on")
        for rate in (float(r) for r in args.rate.split(",")):
            _report(args, path, rate, build_s)
    finally:
        if args.url:
            drop_schema(args.url, str(path))


def _report(args: argparse.Namespace, path: Path | str, rate: float, build_s: float) -> None:
    figures = eventloop.run(run(path, args.conversations, args.messages, rate,
                              args.synchronous, args.history_cache, args.encryption == "on"))
    log = open_log(path, create=False)
    try:
        total = log.last_position()
    finally:
        log.close()
    figures.update({
        "log_events": total, "conversations": args.conversations,
        "synchronous": args.synchronous, "history_cache_events": args.history_cache,
        "log_build_s": round(build_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    })
    if args.json:
        print(json.dumps(figures))
        return
    for name, value in figures.items():
        print(f"{name:28} {value}")
    print()


def _compare(args: argparse.Namespace) -> None:
    """Encryption off and on, in turn, in one process: the medians and on/off."""
    base = args.db or Path(tempfile.gettempdir()) / f"personae-bench-dispatch-{args.events}.db"
    paths = {mode: base.with_name(f"{base.stem}-{mode}{base.suffix}") for mode in ("off", "on")}
    for mode, path in paths.items():
        build_log(path, args.events, args.conversations, mode == "on")
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for mode in ("off", "on"):
            runs[mode].append(eventloop.run(run(
                paths[mode], args.conversations, args.messages, float(args.rate), args.synchronous,
                args.history_cache, mode == "on")))

    def median(mode: str, *keys: str) -> float:
        values = []
        for figures in runs[mode]:
            value = figures
            for key in keys:
                value = value[key]
            values.append(value)
        return statistics.median(values)

    picks = {"cpu_ms_per_message": ("cpu_ms_per_message",),
             "inbound_to_model_request_p50_ms": ("inbound_to_model_request", "p50_ms"),
             "inbound_to_model_request_p99_ms": ("inbound_to_model_request", "p99_ms"),
             "model_reply_to_outbound_p50_ms": ("model_reply_to_outbound", "p50_ms"),
             "model_reply_to_outbound_p99_ms": ("model_reply_to_outbound", "p99_ms"),
             "append_p50_ms": ("where_the_time_went", "event_store_append", "p50_ms"),
             "read_tail_p50_ms": ("where_the_time_went", "read_conversation_tail", "p50_ms")}
    table = {name: {"off": median("off", *keys), "on": median("on", *keys)}
             for name, keys in picks.items()}
    for row in table.values():
        row["on/off"] = round(row["on"] / row["off"], 3) if row["off"] else 0.0
    if args.json:
        print(json.dumps({"rounds": args.rounds, "figures": table}))
        return
    for name, row in table.items():
        print(f"{name:34} off {row['off']:8.3f}  on {row['on']:8.3f}  on/off {row['on/off']:.3f}")


if __name__ == "__main__":
    main()
