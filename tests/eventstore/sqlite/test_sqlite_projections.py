"""The SQLite backend's projection promises: tables and position commit together as
other connections see them, opening a caught-up log reads no events, upcasting
leaves the stored row alone."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from eventstore import AppendRequest, NewEvent, SQLiteLog

from ..conformance.test_projections import Totals, _paid_upcasters


def test_upcasting_leaves_the_stored_row_alone(log_path: Path) -> None:
    log = SQLiteLog.open(log_path, upcasters=_paid_upcasters())
    try:
        log.append("a", [NewEvent("Paid", {"amt": 42}, event_id="old", schema_version=1)])
        assert log.get("old").data == {"amount": 42}  # type: ignore[union-attr]
    finally:
        log.close()
    raw = sqlite3.connect(log_path)
    try:
        assert raw.execute(
            "SELECT schema_version, data FROM events WHERE event_id = 'old'"
        ).fetchone() == (1, '{"amt":42}')
    finally:
        raw.close()


def test_projection_position_commits_with_its_tables(log_path: Path) -> None:
    log = SQLiteLog.open(log_path, projections=[Totals()])
    try:
        log.append("a", [NewEvent("Paid", {"amount": 4})])
        log.connection.execute("BEGIN")
        log.connection.execute("INSERT INTO totals VALUES ('x', 'Y', 1, 1)")
        log.connection.execute("UPDATE projection_positions SET position = 99")
        log.connection.execute("ROLLBACK")
        watcher = sqlite3.connect(log_path)
        try:
            # Seen from another connection, the tables and the position move together.
            assert watcher.execute("SELECT position FROM projection_positions").fetchone() == (1,)
            assert watcher.execute("SELECT * FROM totals").fetchall() == [("a", "Paid", 1, 4)]
            log.append("a", [NewEvent("Paid", {"amount": 6})])
            assert watcher.execute("SELECT position FROM projection_positions").fetchone() == (2,)
            assert watcher.execute("SELECT * FROM totals").fetchall() == [("a", "Paid", 2, 10)]
        finally:
            watcher.close()
    finally:
        log.close()


def _bytes_read_by_this_process() -> int:
    """Bytes this process has read through read(2) and friends, page cache hits included."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("/proc/self/io has no rchar line")


def _cost_of_open(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int, int]:
    """(SQLite VM steps, bytes read, projection applies) spent opening the log at ``path``."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    real_connect = sqlite3.connect

    def counting_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)
        conn.set_progress_handler(count, 1)
        return conn

    totals = Totals()
    with monkeypatch.context() as patch:
        patch.setattr(sqlite3, "connect", counting_connect)
        before = _bytes_read_by_this_process()
        log = SQLiteLog.open(path, projections=[totals])
        read = _bytes_read_by_this_process() - before
    log.close()
    return steps, read, totals.applied


def test_opening_a_caught_up_log_reads_no_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def build(path: Path, events: int) -> None:
        log = SQLiteLog.open(path, projections=[Totals()])
        log.append_batch([
            AppendRequest(f"s{s}", [NewEvent("Paid", {"amount": 1}) for _ in range(events // 100)])
            for s in range(100)
        ])
        log.close()

    small, large = tmp_path / "small.db", tmp_path / "large.db"
    build(small, 100)
    build(large, 20_000)
    small_steps, _, small_applied = _cost_of_open(small, monkeypatch)
    large_steps, large_read, large_applied = _cost_of_open(large, monkeypatch)
    assert small_applied == large_applied == 0
    assert large.stat().st_size > 2_000_000
    assert large_read < 500_000, f"opening read {large_read} bytes of a {large.stat().st_size}-byte log"
    # A scan of 20,000 events would take hundreds of thousands of VM steps; opening
    # must cost the same on the large log as on the small one, give or take a b-tree level.
    assert large_steps <= small_steps + 20, (small_steps, large_steps)
