"""What observability costs: the metrics recorder's throughput, a scrape, a backup.

    python bench/ops.py [--cycles 20000] [--personas 50] [--json]

Builds a log of ``--cycles`` reply cycles (MessageReceived, PersonaTriggered,
ModelReplied, ReplyDelivered: four events each) over ``--personas`` personas, then
measures:

- ``recorder_eps``: events per second :class:`MetricsRecorder` turns into series
  (CPU only: the events are read first), against ``read_eps``, the store's own
  reading speed of the same events, so the ratio says whether metrics could keep
  up with the log;
- ``scrape_ms``: one ``/metrics`` exposition with every persona's series filled;
- ``backup_mb_s``: ``db backup`` of the log (copy, check, rename), and its size.

Each figure is the median of ``--repeat`` runs.
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

from prometheus_client import CollectorRegistry, generate_latest

from core.events import MessageReceived, ModelReplied, PersonaTriggered, ReplyDelivered
from core.events.ids import (
    conversation_stream,
    delivered_event_id,
    message_event_id,
    reply_event_id,
    trigger_event_id,
)
from core.ops.metrics import LiveState, Metrics, MetricsRecorder
from eventstore import SQLiteLog, open_store
from eventstore.sqlite import backup_log


def build_log(path: Path, cycles: int, personas: int) -> None:
    log = SQLiteLog.open(path, synchronous="normal")
    try:
        for start in range(0, cycles, 500):
            for i in range(start, min(cycles, start + 500)):
                persona = f"persona{i % personas}"
                channel, message = str(i % 97), str(10_000 + i)
                stream = conversation_stream("discord", channel)
                events = [
                    MessageReceived(
                        platform="discord",
                        message_id=message,
                        channel_id=channel,
                        author_id=f"u{i % 31}",
                        author_name="someone",
                        text="hello " * 20,
                    ).new_event(message_event_id("discord", message)),
                    PersonaTriggered(
                        platform="discord",
                        message_id=message,
                        persona_id=persona,
                        persona_version="v1",
                        reason="mention",
                        channel_id=channel,
                        author_id=f"u{i % 31}",
                        source_event_id="src",
                    ).new_event(trigger_event_id("discord", message, persona)),
                    ModelReplied(
                        platform="discord",
                        message_id=message,
                        persona_id=persona,
                        persona_version="v1",
                        provider="fake",
                        model="m",
                        text="reply " * 40,
                        author_id=f"u{i % 31}",
                        usage={"prompt_tokens": 500, "completion_tokens": 80},
                        latency_s=1.2,
                        attempts=1 + i % 3,
                    ).new_event(reply_event_id("discord", message, persona)),
                    ReplyDelivered(
                        platform="discord", message_id=message, persona_id=persona, delivered_ids=(str(i),)
                    ).new_event(delivered_event_id("discord", message, persona)),
                ]
                log.append(stream, events)
    finally:
        log.close()


async def measure(path: Path, repeat: int) -> dict[str, float]:
    store = await open_store(path, synchronous="normal")
    try:
        reads, records, scrapes = [], [], []
        for _ in range(repeat):
            started = time.perf_counter()
            events = await store.read_all()
            reads.append(len(events) / (time.perf_counter() - started))
            metrics = Metrics(CollectorRegistry())
            recorder = MetricsRecorder(store, metrics, LiveState())
            started = time.perf_counter()
            for event in events:
                recorder.observe(event)
            records.append(len(events) / (time.perf_counter() - started))
            started = time.perf_counter()
            generate_latest(metrics.registry)
            scrapes.append((time.perf_counter() - started) * 1000)
    finally:
        await store.close()
    return {"events": len(events), "read_eps": statistics.median(reads),
            "recorder_eps": statistics.median(records), "scrape_ms": statistics.median(scrapes)}


def measure_backup(path: Path, folder: Path, repeat: int) -> dict[str, float]:
    speeds = []
    for n in range(repeat):
        started = time.perf_counter()
        result = backup_log(path, folder / f"copy{n}.db")
        speeds.append(result.bytes / 1e6 / (time.perf_counter() - started))
    return {"backup_mb": result.bytes / 1e6, "backup_mb_s": statistics.median(speeds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20_000)
    parser.add_argument("--personas", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "log.db"
        build_log(path, args.cycles, args.personas)
        figures = asyncio.run(measure(path, args.repeat))
        figures.update(measure_backup(path, Path(folder), args.repeat))
    figures["recorder_vs_read"] = figures["recorder_eps"] / figures["read_eps"]
    if args.json:
        print(json.dumps({k: round(v, 3) for k, v in figures.items()}))
    else:
        for name, value in figures.items():
            print(f"{name:18} {value:,.3f}")


if __name__ == "__main__":
    main()
