"""Crash durability: kill -9 a process that is appending; nothing it acknowledged is lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from eventstore import NewEvent, SQLiteLog
from eventstore.sqlite import check_log

_APPENDER = """
import asyncio, sys
from eventstore import NewEvent, open_store

async def main(path, run):
    store = await open_store(path, synchronous="full")

    async def worker(w):
        i = 0
        while True:
            event_id = f"{run}:{w}:{i}"
            result = await store.append(
                f"stream-{w % 5}", NewEvent("Tick", {"w": w, "i": i}, event_id=event_id)
            )
            print(event_id, result.positions[0], result.stream_version, flush=True)
            i += 1

    print("ready", flush=True)
    await asyncio.gather(*(worker(w) for w in range(10)))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def _run_and_kill(script: Path, path: Path, run: int, rng: random.Random) -> list[str]:
    """Start the appender, SIGKILL it at a random moment after its first
    acknowledgement, and return every line it printed (each one an acknowledgement)."""
    child = subprocess.Popen(
        [sys.executable, str(script), str(path), str(run)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: list[str] = []
    first_ack = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            if line.endswith("\n"):  # a line cut short by the kill was not acknowledged
                lines.append(line.strip())
                if len(lines) >= 2:
                    first_ack.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert first_ack.wait(15), child.stderr.read() if child.poll() is not None else "slow"
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        reader.join(5)
    assert child.returncode == -signal.SIGKILL
    return [line for line in lines if line != "ready"]


def test_every_acknowledged_event_survives_kill_9(tmp_path: Path) -> None:
    script = tmp_path / "appender.py"
    script.write_text(_APPENDER)
    path = tmp_path / "log.db"
    rng = random.Random()
    total_acknowledged = 0
    for run in range(4):
        acknowledged = _run_and_kill(script, path, run, rng)
        assert acknowledged, "the child was killed before it acknowledged anything"
        total_acknowledged += len(acknowledged)

        assert check_log(path) == []
        log = SQLiteLog.open(path)
        try:
            for line in acknowledged:
                event_id, position, version = line.split()
                event = log.get(event_id)
                assert event is not None, f"acknowledged event {event_id} was lost (run {run})"
                assert (event.position, event.version) == (int(position), int(version))
            # The log stays usable after the crash: the next append follows on.
            last = log.last_position()
            after = log.append("after-crash", [NewEvent("Recovered", {"run": run})])
            assert after.positions == (last + 1,)
        finally:
            log.close()
    assert total_acknowledged >= 4
