"""Event store benchmark: appends, tail reads, replay and opening a large log.

    python bench/eventstore.py            # the 1,000,000-event log the issue asks for
    python bench/eventstore.py --json     # one JSON object on stdout
    python bench/eventstore.py --events 100000   # a smaller log, for a quick look

Appends go through :class:`eventstore.EventStore` (the asyncio face, with its writer
thread and group commit). The large log is built with :meth:`eventstore.SQLiteLog.append_batch`
(the same code path the writer thread runs), 100 requests of 100 events per transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and this file's name
# would shadow the eventstore package it measures.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from eventstore import AppendRequest, NewEvent, SQLiteLog, open_store  # noqa: E402

_TEXT = "a message of ordinary length, about as long as a line of chat in a busy channel"


def _event(stream: int, n: int) -> NewEvent:
    return NewEvent(
        "MessageReceived",
        {"channel": stream, "author": n % 97, "text": _TEXT, "n": n},
        event_id=f"msg:{stream}:{n}",
    )


async def _append_batched(path: Path, batches: int, synchronous: str) -> tuple[float, float]:
    """One caller appending 100 events at a time, each append awaited (one commit each).

    Returns events per second of wall time and per second of this process's CPU time
    (the loop and the writer thread), the latter being less disturbed by neighbours.
    """
    work = [[_event(b, i) for i in range(100)] for b in range(batches)]
    async with await open_store(path, synchronous=synchronous) as store:  # type: ignore[arg-type]
        start, cpu = time.perf_counter(), time.process_time()
        for b, events in enumerate(work):
            await store.append(f"batched-{b % 50}", events)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return batches * 100 / elapsed, batches * 100 / cpu


async def _append_concurrent(
    path: Path, per_task: int, synchronous: str
) -> tuple[float, float]:
    """100 tasks, each awaiting one single-event append after another: group commit's case."""
    work = [[_event(100_000 + t, i) for i in range(per_task)] for t in range(100)]
    async with await open_store(path, synchronous=synchronous) as store:  # type: ignore[arg-type]

        async def task(t: int) -> None:
            for event in work[t]:
                await store.append(f"concurrent-{t}", event)

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(task(t) for t in range(100)))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return 100 * per_task / elapsed, 100 * per_task / cpu


async def _append_latency_ms(path: Path, appends: int, synchronous: str) -> float:
    """Median time one lone caller waits for one single-event append (one commit)."""
    work = [_event(200_000, i) for i in range(appends)]
    latencies = []
    async with await open_store(path, synchronous=synchronous) as store:  # type: ignore[arg-type]
        for event in work:
            start = time.perf_counter()
            await store.append("lone", event)
            latencies.append(time.perf_counter() - start)
    return statistics.median(latencies) * 1000


def _build_large_log(path: Path, events: int, streams: int) -> float:
    """Append ``events`` spread round-robin over ``streams``; return events per second."""
    log = SQLiteLog.open(path, synchronous="normal")
    per_stream = -(-events // streams)
    start = time.perf_counter()
    written = 0
    try:
        for round_start in range(0, per_stream, 100):
            # One transaction: 100 streams x up to 100 events each.
            count = min(100, per_stream - round_start)
            for first_stream in range(0, streams, 100):
                requests = []
                for s in range(first_stream, min(first_stream + 100, streams)):
                    n = min(count, events - written)
                    if n <= 0:
                        break
                    requests.append(AppendRequest(
                        f"channel-{s}", [_event(s, round_start + i) for i in range(n)]
                    ))
                    written += n
                if requests:
                    log.append_batch(requests)
        return written / (time.perf_counter() - start)
    finally:
        log.close()


async def _open_seconds(path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        store = await open_store(path)
        times.append(time.perf_counter() - start)
        await store.close()
    return statistics.median(times)


async def _tail_p99_ms(path: Path, streams: int, reads: int) -> float:
    rng = random.Random(7)
    latencies = []
    async with await open_store(path) as store:
        for _ in range(reads):
            stream = f"channel-{rng.randrange(streams)}"
            start = time.perf_counter()
            tail = await store.read_stream_tail(stream, 40)
            latencies.append(time.perf_counter() - start)
            assert len(tail) == 40, (stream, len(tail))
    latencies.sort()
    return latencies[int(len(latencies) * 0.99) - 1] * 1000


async def _replay_eps(path: Path, expected: int) -> tuple[float, float]:
    """(events per second of wall time, per second of the reader thread's CPU time)."""

    def replay(log: SQLiteLog) -> tuple[int, float]:
        cpu = time.thread_time()
        count = sum(1 for _ in log.iter_all(0))
        return count, time.thread_time() - cpu

    async with await open_store(path) as store:
        start = time.perf_counter()
        count, cpu = await store.read(replay)
        elapsed = time.perf_counter() - start
    assert count == expected, (count, expected)
    return count / elapsed, count / cpu


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def run(
    events: int, streams: int, synchronous: str, work: Path, repeat: int
) -> dict[str, float]:
    """Every figure is the median of ``repeat`` runs."""
    runs: dict[str, list[float]] = {}

    def note(name: str, value: float) -> None:
        runs.setdefault(name, []).append(value)

    for r in range(repeat):
        wall, cpu = await _append_batched(work / f"batched-{r}.db", 300, synchronous)
        note("append_batched_eps", wall)
        note("append_batched_cpu_eps", cpu)
        wall, cpu = await _append_concurrent(work / f"concurrent-{r}.db", 50, synchronous)
        note("append_concurrent_eps", wall)
        note("append_concurrent_cpu_eps", cpu)
        note("append_latency_p50_ms",
             await _append_latency_ms(work / f"latency-{r}.db", 300, synchronous))
    large = work / "large.db"
    note("build_eps", await asyncio.to_thread(_build_large_log, large, events, streams))
    for _ in range(repeat):
        note("open_s", await _open_seconds(large, 5))
        note("tail40_p99_ms", await _tail_p99_ms(large, streams, 2000))
        wall, cpu = await _replay_eps(large, events)
        note("replay_eps", wall)
        note("replay_cpu_eps", cpu)
    figures = {name: statistics.median(values) for name, values in runs.items()}
    figures["bytes_per_event"] = _file_bytes(large) / events
    figures["events"] = events
    figures["streams"] = streams
    figures["repeat"] = repeat
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="events in the large log (default 1,000,000)")
    parser.add_argument("--streams", type=int, default=10_000,
                        help="streams in the large log (default 10,000)")
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full",
                        help="durability of the append benchmarks (default full)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to put the scratch logs (default: a temporary directory)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per figure; the median is reported (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.events < args.streams * 40:
        parser.error("--events must give every stream at least 40 events (events >= 40 x streams)")
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-eventstore-") as tmp:
        figures = asyncio.run(
            run(args.events, args.streams, args.synchronous, Path(tmp), args.repeat)
        )
    if args.json:
        print(json.dumps({k: round(v, 4) for k, v in figures.items()}))
    else:
        for name, value in figures.items():
            print(f"{name:>24}  {value:,.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
