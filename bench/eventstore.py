"""Event store benchmark: appends, tail reads, replay and opening a large log.

    python bench/eventstore.py            # the 1,000,000-event log the issue asks for
    python bench/eventstore.py --json     # one JSON object on stdout
    python bench/eventstore.py --events 100000   # a smaller log, for a quick look
    python bench/eventstore.py --url sqlite --url postgresql://postgres@127.0.0.1/test
                                          # the same workload on both, ratios to the first

Appends go through :class:`eventstore.EventStore` (the asyncio face, with its writer
thread and group commit). The large log is built with ``Log.append_batch`` (the same code
path the writer thread runs), 100 requests of 100 events per transaction.

``--url sqlite`` (the default) puts SQLite files in a temporary directory;
``--url postgresql://...`` puts each log in a schema of its own in that database
(``bench_<pid>_<name>``), dropped at the end. With several ``--url`` the backends take
turns within each repeat, so they share the machine's noise, and every figure is also
given as a ratio to the first backend's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and this file's name
# would shadow the eventstore package it measures.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from eventstore import AppendRequest, LogReader, NewEvent, open_log, open_store  # noqa: E402
from eventstore.postgres import PostgresTarget  # noqa: E402

_TEXT = "a message of ordinary length, about as long as a line of chat in a busy channel"


class Scratch:
    """Where a backend's scratch logs go: files in a directory, or schemas of a database."""

    def __init__(self, url: str, work: Path) -> None:
        self.url = url
        self.name = "sqlite" if url == "sqlite" else url.split("://", 1)[0]
        self._work = work / self.name
        self._work.mkdir(exist_ok=True)
        self._schemas: list[str] = []
        self._numbers = itertools.count()

    def log(self, name: str) -> str:
        """The target of a new, empty log called ``name``."""
        if self.url == "sqlite":
            return str(self._work / f"{name}.db")
        schema = f"bench_{os.getpid()}_{next(self._numbers)}_{name.replace('-', '_')}"
        self._schemas.append(schema)
        return f"{self.url}{'&' if '?' in self.url else '?'}schema={schema}"

    def bytes(self, target: str) -> int:
        """The size of the log ``target``, indexes included."""
        if self.url == "sqlite":
            path = Path(target)
            return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        import psycopg

        parsed = PostgresTarget.parse(target)
        with psycopg.connect(**parsed.connect_kwargs()) as conn:
            row = conn.execute("SELECT pg_total_relation_size(%s)",
                               (f'"{parsed.schema}".events',)).fetchone()
        return int(row[0]) if row else 0

    def clean_up(self) -> None:
        if not self._schemas:
            return
        import psycopg

        with psycopg.connect(**PostgresTarget.parse(self.url).connect_kwargs(autocommit=True)
                             ) as conn:
            for schema in self._schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _event(stream: int, n: int) -> NewEvent:
    return NewEvent(
        "MessageReceived",
        {"channel": stream, "author": n % 97, "text": _TEXT, "n": n},
        event_id=f"msg:{stream}:{n}",
    )


async def _append_batched(path: str, batches: int, synchronous: str) -> tuple[float, float]:
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
    path: str, per_task: int, synchronous: str
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


async def _append_latency_ms(path: str, appends: int, synchronous: str) -> float:
    """Median time one lone caller waits for one single-event append (one commit)."""
    work = [_event(200_000, i) for i in range(appends)]
    latencies = []
    async with await open_store(path, synchronous=synchronous) as store:  # type: ignore[arg-type]
        for event in work:
            start = time.perf_counter()
            await store.append("lone", event)
            latencies.append(time.perf_counter() - start)
    return statistics.median(latencies) * 1000


def _build_large_log(path: str, events: int, streams: int) -> float:
    """Append ``events`` spread round-robin over ``streams``; return events per second."""
    log = open_log(path, synchronous="normal")
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


async def _open_seconds(path: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        store = await open_store(path)
        times.append(time.perf_counter() - start)
        await store.close()
    return statistics.median(times)


async def _tail_p99_ms(path: str, streams: int, reads: int) -> float:
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


async def _replay_eps(path: str, expected: int) -> tuple[float, float]:
    """(events per second of wall time, per second of the reader thread's CPU time)."""

    def replay(log: LogReader) -> tuple[int, float]:
        cpu = time.thread_time()
        count = sum(1 for _ in log.iter_all(0))
        return count, time.thread_time() - cpu

    async with await open_store(path) as store:
        start = time.perf_counter()
        count, cpu = await store.read(replay)
        elapsed = time.perf_counter() - start
    assert count == expected, (count, expected)
    return count / elapsed, count / cpu


async def run(events: int, streams: int, synchronous: str, scratches: list[Scratch],
              repeat: int) -> dict[str, dict[str, float]]:
    """Every figure of every backend, each the median of ``repeat`` runs; the backends
    take turns within each repeat."""
    runs: dict[str, dict[str, list[float]]] = {s.name: {} for s in scratches}

    def note(scratch: Scratch, name: str, value: float) -> None:
        runs[scratch.name].setdefault(name, []).append(value)

    for r in range(repeat):
        for scratch in scratches:
            wall, cpu = await _append_batched(scratch.log(f"batched-{r}"), 300, synchronous)
            note(scratch, "append_batched_eps", wall)
            note(scratch, "append_batched_cpu_eps", cpu)
            wall, cpu = await _append_concurrent(scratch.log(f"concurrent-{r}"), 50,
                                                 synchronous)
            note(scratch, "append_concurrent_eps", wall)
            note(scratch, "append_concurrent_cpu_eps", cpu)
            note(scratch, "append_latency_p50_ms",
                 await _append_latency_ms(scratch.log(f"latency-{r}"), 300, synchronous))
    large = {scratch.name: scratch.log("large") for scratch in scratches}
    for scratch in scratches:
        note(scratch, "build_eps", await asyncio.to_thread(
            _build_large_log, large[scratch.name], events, streams))
    for _ in range(repeat):
        for scratch in scratches:
            target = large[scratch.name]
            note(scratch, "open_s", await _open_seconds(target, 5))
            note(scratch, "tail40_p99_ms", await _tail_p99_ms(target, streams, 2000))
            wall, cpu = await _replay_eps(target, events)
            note(scratch, "replay_eps", wall)
            note(scratch, "replay_cpu_eps", cpu)
    figures: dict[str, dict[str, float]] = {}
    for scratch in scratches:
        mine = {name: statistics.median(values) for name, values in runs[scratch.name].items()}
        mine["bytes_per_event"] = scratch.bytes(large[scratch.name]) / events
        mine.update(events=events, streams=streams, repeat=repeat)
        figures[scratch.name] = mine
    return figures


@contextlib.contextmanager
def _scratches(urls: list[str], directory: Path | None) -> Iterator[list[Scratch]]:
    with tempfile.TemporaryDirectory(dir=directory, prefix="bench-eventstore-") as tmp:
        scratches = [Scratch(url, Path(tmp)) for url in urls]
        try:
            yield scratches
        finally:
            for scratch in scratches:
                scratch.clean_up()


def _print(figures: dict[str, dict[str, float]]) -> None:
    names = list(figures)
    first = figures[names[0]]
    header = "".join(f"{n:>16}" for n in names)
    ratios = "".join(f"{n + '/' + names[0]:>18}" for n in names[1:])
    print(f"{'':>26}{header}{ratios}")
    for figure in first:
        values = "".join(f"{figures[n][figure]:>16,.3f}" for n in names)
        shares = "".join(f"{figures[n][figure] / first[figure]:>18.2f}" if first[figure]
                         else f"{'':>18}" for n in names[1:])
        print(f"{figure:>26}{values}{shares}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="events in the large log (default 1,000,000)")
    parser.add_argument("--streams", type=int, default=10_000,
                        help="streams in the large log (default 10,000)")
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full",
                        help="durability of the append benchmarks (default full)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to put the scratch SQLite logs (default: a temporary "
                             "directory)")
    parser.add_argument("--url", action="append", default=None,
                        help="a backend to measure: sqlite (files in --dir) or a "
                             "postgresql:// database (a schema per log); repeat for several "
                             "(default: sqlite)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per figure; the median is reported (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.events < args.streams * 40:
        parser.error("--events must give every stream at least 40 events (events >= 40 x streams)")
    urls = args.url or ["sqlite"]
    with _scratches(urls, args.dir) as scratches:
        if len({s.name for s in scratches}) < len(scratches):
            parser.error("name each backend once")
        figures = asyncio.run(
            run(args.events, args.streams, args.synchronous, scratches, args.repeat))
    if args.json:
        rounded = {name: {k: round(v, 4) for k, v in mine.items()}
                   for name, mine in figures.items()}
        print(json.dumps(rounded if len(rounded) > 1 else next(iter(rounded.values()))))
    else:
        _print(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
