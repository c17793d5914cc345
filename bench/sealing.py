"""What sealing personal content costs: appends and context reads, encryption on vs off.

    python bench/sealing.py [--repeat 5] [--json]

Each repeat measures both modes in turn, on fresh SQLite logs in a temporary directory
(so they share the machine's noise): 100 tasks appending catalogue MessageReceived events
one at a time (group commit's case, each event with three sealed boxes: its author's
name, its text, its files), a lone caller's append latency, and reading a conversation's
last 96 events (what a prompt reads when the conversation is not cached; each sealed
event is opened). Prints medians per mode and the ratio on/off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.events import MessageReceived
from core.events.ids import message_event_id
from eventstore import open_store

TEXT = "a message of ordinary length, about as long as a line of chat in a busy channel"


def _message(n: int, channel: str) -> MessageReceived:
    return MessageReceived(platform="bench", message_id=f"{channel}-{n}", channel_id=channel,
                           author_id=f"user{n % 50}", author_name=f"User {n % 50}",
                           text=f"{TEXT} {n}", guild_id="g")


async def _measure(path: Path, seal: bool) -> dict[str, float]:
    figures = {}
    async with await open_store(path, synchronous="full", seal=seal) as store:
        work = [[_message(t * 1000 + i, f"c{t}") for i in range(20)] for t in range(100)]

        async def task(t: int) -> None:
            for m in work[t]:
                await store.append(f"conv:bench:c{t}",
                                   m.new_event(message_event_id("bench", m.message_id)))

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(task(t) for t in range(100)))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        figures["concurrent_appends_per_s"] = 2000 / elapsed
        figures["append_cpu_us_per_event"] = cpu / 2000 * 1e6
        lone = []
        for n in range(200):
            m = _message(500_000 + n, "lone")
            started = time.perf_counter()
            await store.append("conv:bench:lone", m.new_event(message_event_id("bench",
                                                                             m.message_id)))
            lone.append(time.perf_counter() - started)
        figures["lone_append_ms"] = statistics.median(lone) * 1000
        reads = []
        cpu = time.process_time()
        for _ in range(200):
            started = time.perf_counter()
            tail = await store.read_stream_tail("conv:bench:lone", 96)
            reads.append(time.perf_counter() - started)
        figures["read_96_cpu_us_per_event"] = (time.process_time() - cpu) / (200 * 96) * 1e6
        assert tail[-1].data["text"].startswith(TEXT)
        figures["read_96_events_ms"] = statistics.median(reads) * 1000
    return figures


async def run(repeat: int) -> dict[str, dict[str, float]]:
    samples: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="bench-sealing-") as tmp:
        for r in range(repeat):
            for mode in ("off", "on"):
                samples[mode].append(await _measure(Path(tmp) / f"{mode}-{r}.db", mode == "on"))
    return {mode: {k: statistics.median(s[k] for s in runs) for k in runs[0]}
            for mode, runs in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(run(args.repeat))
    figures["ratio_on_off"] = {k: figures["on"][k] / figures["off"][k] for k in figures["on"]}
    if args.json:
        print(json.dumps({m: {k: round(v, 3) for k, v in f.items()} for m, f in figures.items()}))
        return
    for name in figures["on"]:
        print(f"{name:28} off {figures['off'][name]:10.3f}   on {figures['on'][name]:10.3f}"
              f"   on/off {figures['ratio_on_off'][name]:.2f}")


if __name__ == "__main__":
    main()
