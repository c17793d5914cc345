"""Several processes, one PostgreSQL log: a reader never skips a commit that landed late,
and a follower in another process is woken by LISTEN/NOTIFY, even after losing the
connection it listens on."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from eventstore import NewEvent, RecordedEvent
from eventstore.postgres import PostgresLog, schema

from .. import pgserver

ROOT = Path(__file__).resolve().parents[3]


class Child:
    """A process of tests/eventstore/postgres/children.py, its lines collected as they come."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.eventstore.postgres.children", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=ROOT, env={k: v for k, v in os.environ.items() if k != "PERSONAE_CONFIG"})
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip() == "ready":
                self._ready.set()
            else:
                self.lines.append(line.strip())

    def wait_ready(self) -> None:
        if not self._ready.wait(30):
            raise AssertionError(f"the child did not start: {self.stderr()}")

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 60) -> None:
        assert self.process.wait(timeout) == 0, self.stderr()
        self._reader.join(5)

    def stderr(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.stop()


@pytest.fixture
def url() -> str:
    return pgserver.new_schema_url()


@pytest.fixture
def log(url: str) -> Iterator[PostgresLog]:
    opened = PostgresLog.open(url)
    yield opened
    opened.close()


def test_a_reader_never_skips_a_transaction_that_commits_late(
        url: str, log: PostgresLog, children: list[Child]) -> None:
    """Three writer processes commit quickly while a fourth takes its positions and then
    sleeps before each COMMIT; a reader polling ``read_all(after=last)`` the whole time
    must see every event exactly once, in position order. (With positions from a
    sequence and no lock, it passes the slow writer's positions before they commit and
    never sees them.)"""
    fast, fast_batches, slow_batches = 3, 40, 6
    for n in range(fast):
        children.append(Child("writer", url, f"fast-{n}", str(fast_batches)))
    children.append(Child("writer", url, "slow", str(slow_batches), "--slow", "0.25"))
    for child in children:
        child.wait_ready()

    seen: list[RecordedEvent] = []
    last = 0
    for child in children:
        child.go()
    while any(child.process.poll() is None for child in children):
        events = log.read_all(after=last)
        seen += events
        last = events[-1].position if events else last
        time.sleep(0.002)
    for child in children:
        child.finish()
    seen += log.read_all(after=last)

    everything = log.read_all()
    assert len(everything) == fast * fast_batches + slow_batches
    assert [e.position for e in everything] == list(range(1, len(everything) + 1))
    assert [e.position for e in seen] == [e.position for e in everything]
    assert seen == everything
    # The race was run: fast appends were attempted while a slow transaction held its
    # positions uncommitted.
    slow = [tuple(map(float, line.split()[1:])) for line in children[-1].lines]
    fast_starts = [float(line.split()[1]) for child in children[:-1] for line in child.lines]
    overlapping = [s for s in fast_starts if any(a < s < b - 0.05 for a, b in slow)]
    assert len(overlapping) >= slow_batches, "no fast append overlapped a slow transaction"


def _received(child: Child, count: int, timeout: float) -> list[tuple[int, str, float]]:
    deadline = time.monotonic() + timeout
    while len(child.lines) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return [(int(p), event_id, float(at)) for p, event_id, at in
            (line.split() for line in child.lines[:count])]


def test_a_follower_in_another_process_is_woken_by_each_commit(
        url: str, log: PostgresLog, children: list[Child]) -> None:
    """The follower never appends and a ThreadedStore never polls: only the NOTIFY of
    this process's commits can wake it."""
    follower = Child("follower", url)
    children.append(follower)
    follower.wait_ready()
    time.sleep(0.2)  # its first read of the (empty) log is done; it waits
    committed: list[float] = []
    for i in range(20):
        log.append("chan", [NewEvent("Said", {"i": i}, event_id=f"said:{i}")])
        committed.append(time.time())
        time.sleep(0.05)

    got = _received(follower, 20, timeout=10)
    assert [event_id for _, event_id, _ in got] == [f"said:{i}" for i in range(20)]
    assert [p for p, _, _ in got] == list(range(1, 21))
    latencies = sorted(at - done for (_, _, at), done in zip(got, committed, strict=True))
    assert latencies[-1] < 1.0, f"slowest wake-up {latencies[-1]:.3f} s"


def test_a_lost_listen_connection_costs_latency_never_an_event(
        url: str, log: PostgresLog, children: list[Child]) -> None:
    follower = Child("follower", url)
    children.append(follower)
    follower.wait_ready()
    time.sleep(0.2)
    log.append("chan", [NewEvent("Said", {"i": 0}, event_id="said:0")])
    assert len(_received(follower, 1, timeout=10)) == 1

    with pgserver.admin() as admin:
        (killed,) = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s", (f"personae listener {log.target.schema}",)
        ).fetchone() or (0,)
    assert killed == 1
    # appended while the follower has no listening connection: no NOTIFY reaches it
    for i in range(1, 6):
        log.append("chan", [NewEvent("Said", {"i": i}, event_id=f"said:{i}")])

    got = _received(follower, 6, timeout=15)
    assert [event_id for _, event_id, _ in got] == [f"said:{i}" for i in range(6)]


def _append_lock_held_idle(conn: psycopg.Connection) -> bool:
    """Whether a session idle inside its transaction holds a log's append lock."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::bigint::oid "
        "AND a.state = 'idle in transaction'", (schema.APPEND_LOCK,)).fetchone()
    return bool(row and row[0])


def test_a_writer_stopped_inside_its_transaction_holds_the_others_up_for_seconds(
        url: str, log: PostgresLog, children: list[Child]) -> None:
    """A process that stops in the middle of an append (SIGSTOP, a frozen machine, a
    network cut: the server sees a session idle in its transaction) holds the log's
    append lock; the server ends that session after a few seconds, so the other
    processes' appends wait that long, not the half minute they used to (and a bot's
    standby, which takes the shards over within 10 s, can answer in them)."""
    stuck = Child("writer", url, "stuck", "1", "--slow", "600")
    children.append(stuck)
    stuck.wait_ready()
    stuck.go()
    with pgserver.admin() as conn:
        deadline = time.monotonic() + 15
        while not _append_lock_held_idle(conn):
            assert time.monotonic() < deadline, f"the writer never got stuck: {stuck.stderr()}"
            time.sleep(0.05)
    started = time.monotonic()
    log.append("other", [NewEvent("Fast", {}, event_id="after")])
    waited = time.monotonic() - started
    assert waited < 10.0, f"the append waited {waited:.1f} s for a stopped writer"
    assert [e.event_id for e in log.read_all()] == ["after"]  # the stuck one's undone
