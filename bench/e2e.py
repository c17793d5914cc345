"""End to end: the real bot process (``personae run``) under load, and under chaos.

    python bench/e2e.py [--conversations 50,500,2000] [--latency-ms 500] [--think-s 10]
                        [--duration-s 30] [--warmup-s 15] [--json]
    python bench/e2e.py --url postgresql://postgres@127.0.0.1:5432/test [--processes 2] ...
    python bench/e2e.py --conversations 2000 --warmup-s 60 --in-flight 256 [--context-cache 5000] ...
    python bench/e2e.py --chaos [--chaos-conversations 200] [--chaos-messages 2000] [--json]

The Discord emulator, the fake OpenAI server (fixed latency) and the simulated people
run in this process; the bot is a child process pointed at them by its config. Each
conversation is a person in a channel of their own: a message, wait for the answer,
think ``--think-s`` (drawn uniformly between half and one and a half of it), the next
message. For each number of conversations it prints:

- the bot's overhead: time from the message to the first answer message (both stamped
  by the emulator's clock) minus the model's latency, p50/p95/p99;
- replies per second over the measured window;
- the bot's CPU milliseconds per reply (``/proc/<pid>/stat`` of the bot processes), its
  RSS (``/proc/<pid>/status``), and this process's own CPU share (emulator + fake model
  + the simulated people: they share the machine's 2 cores with the bot), per reply too,
  and over PostgreSQL the server's processes' CPU per reply.

``--url`` puts the log on PostgreSQL; ``--processes N`` runs N bot processes over it,
one shard each of N (``personae run --shards i --shard-count N``), the conversations'
guilds spread over the shards. ``--in-flight`` sets how many replies a bot works on at
once (``limits.max_concurrent_replies`` and the provider's ``max_concurrency``; 1,024 by
default, far past what one process serves, so that the bot's CPU, not a limit, bounds it).
``--context-cache`` sets ``limits.context_cache``, the conversation events a bot keeps
in memory (each conversation holds about 16 by the measured window).

It also prints the bots' REST requests per reply by route: in the first seconds every
channel's first reply looks its webhook up and makes it (and every person's first message
makes their content key), so past capacity a short ``--warmup-s`` measures first contacts;
no webhook route in the figures means the window held none.

``--chaos`` runs the fault schedule of ``tests/chaos`` (gateway closes, op 7, op 9,
replays, REST 429 per route and global, 5xx, model 429 storms, 5xx bursts, stalls
and an outage past the reply deadline) over ``--chaos-messages`` messages in
``--chaos-conversations`` conversations, then reports the verdict from the emulator's
record (lost, duplicated, failure notices), unhandled errors in the bot's log, and
the share of the time the bot was connected to the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._postgres import cpu_s, drop_schema, postgres_cpu_s, schema_url
from tests.chaos.harness import (
    BotSettings,
    ChaosRig,
    Exchange,
    fault_schedule,
    personae_db_check,
    reconnect_gaps_s,
    run_schedule,
)


@dataclass(frozen=True, slots=True)
class LoadResult:
    conversations: int
    replies: int
    unanswered: int
    replies_per_s: float
    overhead_p50_ms: float
    overhead_p95_ms: float
    overhead_p99_ms: float
    overhead_max_ms: float
    bot_cpu_ms_per_reply: float
    bot_cpu_share: float
    bot_rss_mb: float
    bot_peak_rss_mb: float
    harness_cpu_share: float
    processes: int = 1
    backend: str = "sqlite"
    postgres_cpu_ms_per_reply: float = 0.0
    """The PostgreSQL server's processes (0 over SQLite)."""
    harness_cpu_ms_per_reply: float = 0.0
    """This process: the emulator, the fake model and the simulated people."""
    model_requests_per_reply: float = 0.0
    """Requests the fake model received per reply (more than 1: retries, e.g. of streams
    that outlasted the provider's timeout)."""
    rest_per_reply: dict[str, float] = field(default_factory=dict)
    """The bots' REST requests per reply, by route (typing is refreshed while a reply is
    on its way, so a slower reply costs more of them)."""


@dataclass(frozen=True, slots=True)
class ChaosResult:
    conversations: int
    sent: int
    replied: int
    failure_notices: int
    lost: int
    duplicated: int
    unattributed: int
    pinged: int
    unhandled_errors: int
    connected_fraction: float
    reconnect_gap_p50_ms: float
    reconnect_gap_max_ms: float
    resumes: int
    identifies: int
    rest_429: int
    rest_5xx: int
    duration_s: float
    db_check_ok: bool


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["VmHWM"]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def measure_load(folder: Path, conversations: int, *, latency_s: float, think_s: float,
                       warmup_s: float, duration_s: float, profile: Path | None = None,
                       database_url: str | None = None, processes: int = 1,
                       in_flight: int = 1024, context_cache: int | None = None
                       ) -> LoadResult:
    """One load level: warm up, then measure ``duration_s`` seconds."""
    settings = BotSettings(webhook=True, max_concurrency=in_flight,
                           max_concurrent_replies=in_flight,
                           reply_deadline_s=60, provider_timeout_s=30,
                           database_url=database_url, context_cache=context_cache)
    draw = random.Random(conversations)
    async with ChaosRig.open(folder, conversations=conversations, latency_s=latency_s,
                             settings=settings, processes=processes) as rig:
        for bot in rig.bots:
            await bot.start()
        await rig.until_connected(timeout_s=120)
        gc.freeze()  # the rig's own full collections would be counted as the bot's overhead
        exchanges: list[Exchange] = []
        recording = False
        stopping = False

        def note(exchange: Exchange) -> None:
            if recording:
                exchanges.append(exchange)

        async def person(index: int) -> None:
            await asyncio.sleep(draw.uniform(0, think_s))  # people do not all start at once
            conversation = rig.conversations[index]
            await rig.converse(conversation, until=lambda: stopping, answer_timeout_s=60,
                               think_s=0.0, on_exchange=note)

        async def thinking_person(index: int) -> None:
            await asyncio.sleep(draw.uniform(0, think_s))
            conversation = rig.conversations[index]
            while not stopping:
                sent = await rig.say(conversation)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sent.answered.wait(), 60)
                first = sent.answers[0].created_at if sent.answers else None
                note(Exchange(index, None if first is None else first - sent.message.created_at))
                await asyncio.sleep(draw.uniform(0.5 * think_s, 1.5 * think_s))

        people = [asyncio.create_task(thinking_person(i) if think_s else person(i))
                  for i in range(conversations)]
        await asyncio.sleep(warmup_s)
        pid = rig.bot.pid
        pids = [bot.pid for bot in rig.bots]
        pg_cpu0 = postgres_cpu_s() if database_url else 0.0
        bot_cpu0, own_cpu0, started = (sum(cpu_s(p) for p in pids), cpu_s("self"),
                                       time.monotonic())
        recording = True
        requests0, asked0 = len(rig.emu.requests), len(rig.fake.requests)
        profiler = None
        if profile is not None:
            profiler = await asyncio.create_subprocess_exec(
                "py-spy", "record", "--nonblocking", "--gil", "--pid", str(pid),
                "--duration", str(int(duration_s)),
                "--format", "raw", "--rate", "250", "--output", str(profile),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await asyncio.sleep(duration_s)
        if profiler is not None:
            await profiler.wait()
        recording = False
        routes = Counter(r.route for r in rig.emu.requests[requests0:])
        asked = len(rig.fake.requests) - asked0
        bot_cpu1, own_cpu1, ended = (sum(cpu_s(p) for p in pids), cpu_s("self"),
                                     time.monotonic())
        pg_cpu1 = postgres_cpu_s() if database_url else 0.0
        rss, peak = rss_mb(pid)
        stopping = True
        for task in people:
            task.cancel()
        await asyncio.gather(*people, return_exceptions=True)
        for bot in rig.bots:
            await bot.stop()

    elapsed = ended - started
    answered = [e.reply_s - latency_s for e in exchanges if e.reply_s is not None]
    replies = len(answered)
    return LoadResult(
        conversations=conversations, replies=replies,
        unanswered=sum(1 for e in exchanges if e.reply_s is None),
        replies_per_s=round(replies / elapsed, 1),
        overhead_p50_ms=round(1000 * _percentile(answered, 0.50), 1),
        overhead_p95_ms=round(1000 * _percentile(answered, 0.95), 1),
        overhead_p99_ms=round(1000 * _percentile(answered, 0.99), 1),
        overhead_max_ms=round(1000 * max(answered, default=float("nan")), 1),
        bot_cpu_ms_per_reply=round(1000 * (bot_cpu1 - bot_cpu0) / max(replies, 1), 2),
        bot_cpu_share=round((bot_cpu1 - bot_cpu0) / elapsed, 3),
        bot_rss_mb=round(rss, 1), bot_peak_rss_mb=round(peak, 1),
        harness_cpu_share=round((own_cpu1 - own_cpu0) / elapsed, 3),
        processes=processes, backend="postgresql" if database_url else "sqlite",
        postgres_cpu_ms_per_reply=round(1000 * (pg_cpu1 - pg_cpu0) / max(replies, 1), 2),
        harness_cpu_ms_per_reply=round(1000 * (own_cpu1 - own_cpu0) / max(replies, 1), 2),
        rest_per_reply={route: round(n / max(replies, 1), 2)
                        for route, n in routes.most_common()},
        model_requests_per_reply=round(asked / max(replies, 1), 2))


async def run_chaos(folder: Path, conversations: int, messages: int) -> ChaosResult:
    """The full chaos run (see the module docstring)."""
    settings = BotSettings(webhook=False, reply_deadline_s=15, provider_timeout_s=4)
    async with ChaosRig.open(folder, conversations=conversations, latency_s=0.05,
                             settings=settings) as rig:
        await rig.bot.start()
        await rig.until_connected(timeout_s=60)
        gc.freeze()  # as in measure_load: the rig's own pauses are not the bot's
        started = time.monotonic()
        each = -(-messages // conversations)
        schedule = fault_schedule(rig, every_s=2.0, model_storm=6, model_outage=40)
        # the schedule twice over, so the bot meets each fault in a different state
        await asyncio.gather(run_schedule(schedule + schedule),
                             rig.drive(messages_each=each, answer_timeout_s=60, think_s=2.0))
        await rig.settle(60)
        ended = time.monotonic()
        await rig.bot.stop()
        verdict = rig.verdict()
        statuses = [r.status for r in rig.emu.requests]
        code, _ = await personae_db_check(rig.config)
        gaps = reconnect_gaps_s(rig.emu)
        return ChaosResult(
            conversations=conversations, sent=verdict.sent, replied=verdict.replied,
            failure_notices=verdict.noticed, lost=len(verdict.lost),
            duplicated=len(verdict.duplicated), unattributed=len(verdict.unattributed),
            pinged=len(verdict.pinged), unhandled_errors=len(rig.bot.unhandled_errors()),
            connected_fraction=round(rig.connected_fraction(started, ended), 5),
            reconnect_gap_p50_ms=round(1000 * _percentile(gaps, 0.5), 1),
            reconnect_gap_max_ms=round(1000 * max(gaps, default=0.0), 1),
            resumes=rig.emu.resume_count, identifies=rig.emu.identify_count,
            rest_429=statuses.count(429), rest_5xx=sum(1 for s in statuses if s >= 500),
            duration_s=round(ended - started, 1), db_check_ok=code == 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", default="50,500,2000",
                        help="comma-separated numbers of concurrent conversations")
    parser.add_argument("--latency-ms", type=float, default=500.0)
    parser.add_argument("--think-s", type=float, default=10.0,
                        help="mean pause after each answer (0: none at all)")
    parser.add_argument("--warmup-s", type=float, default=15.0)
    parser.add_argument("--duration-s", type=float, default=30.0)
    parser.add_argument("--chaos", action="store_true", help="run the full chaos run instead")
    parser.add_argument("--chaos-conversations", type=int, default=200)
    parser.add_argument("--chaos-messages", type=int, default=2000)
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy the bot during the measured window (collapsed stacks "
                             "of the thread holding the GIL, where its CPU goes, to this "
                             "file; with several levels, the last one's)")
    parser.add_argument("--url", default=None,
                        help="the bots' log: a PostgreSQL server URL (each level in a schema "
                             "of its own, dropped after); default an SQLite file")
    parser.add_argument("--processes", type=int, default=1,
                        help="bot processes, one shard each (needs --url)")
    parser.add_argument("--in-flight", type=int, default=1024,
                        help="the bots' limits.max_concurrent_replies and the provider's "
                             "max_concurrency")
    parser.add_argument("--context-cache", type=int, default=None, metavar="EVENTS",
                        help="the bots' limits.context_cache (default: its default)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    async def run() -> list[LoadResult] | ChaosResult:
        with tempfile.TemporaryDirectory() as tmp:
            if args.chaos:
                return await run_chaos(Path(tmp), args.chaos_conversations, args.chaos_messages)
            found = []
            for level in (int(n) for n in args.conversations.split(",")):
                folder = Path(tmp) / f"level-{level}"
                folder.mkdir()
                url = None
                if args.url:
                    url = schema_url(args.url, f"personae_bench_e2e_{os.getpid()}_{level}")
                try:
                    found.append(await measure_load(
                        folder, level, latency_s=args.latency_ms / 1000, think_s=args.think_s,
                        warmup_s=args.warmup_s, duration_s=args.duration_s,
                        profile=args.profile, database_url=url, processes=args.processes,
                        in_flight=args.in_flight, context_cache=args.context_cache))
                finally:
                    if url is not None:
                        drop_schema(args.url, url)
                if not args.json:
                    print(json.dumps(asdict(found[-1])), flush=True)
            return found

    result = asyncio.run(run())
    if args.json:
        print(json.dumps([asdict(r) for r in result] if isinstance(result, list)
                         else asdict(result), indent=2))
    elif isinstance(result, ChaosResult):
        for key, value in asdict(result).items():
            print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
