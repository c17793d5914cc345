"""The SQLite backend's own promises: append-only enforced by the file's triggers, the
durability setting, reads that use the indexes instead of scanning."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from eventstore import NewEvent, SQLiteLog


def test_the_database_itself_refuses_update_and_delete(log_path: Path) -> None:
    log = SQLiteLog.open(log_path)
    log.append("chan", [NewEvent("M", {"text": "original"})])
    log.close()

    raw = sqlite3.connect(log_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("UPDATE events SET data = '{\"text\":\"forged\"}'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("DELETE FROM events")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("INSERT OR REPLACE INTO events SELECT * FROM events")
        raw.rollback()
        assert raw.execute("SELECT data FROM events").fetchall() == [('{"text":"original"}',)]
    finally:
        raw.close()


@pytest.mark.parametrize(("setting", "pragma"), [("full", 2), ("normal", 1)])
def test_the_durability_setting_reaches_sqlite(log_path: Path, setting: str, pragma: int) -> None:
    log = SQLiteLog.open(log_path, synchronous=setting)  # type: ignore[arg-type]
    try:
        assert log.connection.execute("PRAGMA synchronous").fetchone() == (pragma,)
        assert log.connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        log.close()


def test_read_stream_tail_uses_the_stream_index_not_a_scan(log_path: Path) -> None:
    log = SQLiteLog.open(log_path)
    try:
        log.append("chan", [NewEvent("M", {}) for _ in range(5)])
        statements: list[str] = []
        log.connection.set_trace_callback(statements.append)
        assert len(log.read_stream_tail("chan", 2)) == 2
        log.connection.set_trace_callback(None)
        (query,) = [s for s in statements if s.lstrip().upper().startswith("SELECT")]

        plan = " | ".join(row[3] for row in log.connection.execute("EXPLAIN QUERY PLAN " + query))
        assert "USING INDEX events_stream_version (stream_id=?)" in plan
        # the only scan is of the tail itself, gathered into one JSON text
        scans = [part for part in plan.split(" | ") if "SCAN" in part]
        assert all("subquery" in part for part in scans), plan
        assert "TEMP B-TREE" not in plan
    finally:
        log.close()


def test_reading_several_types_merges_index_ranges_in_position_order(log_path: Path) -> None:
    log = SQLiteLog.open(log_path)
    try:
        kinds = ["A", "B", "C", "D"]
        log.append("chan", [NewEvent(kinds[(i * 7) % 4], {"i": i}) for i in range(12_000)])
        wanted = {"A", "C", "D"}
        expected = [e.position for e in log.iter_all() if e.type in wanted]

        statements: list[str] = []
        log.connection.set_trace_callback(statements.append)
        got = [e.position for e in log.iter_all(types=["D", "A", "C"])]
        log.connection.set_trace_callback(None)

        assert got == expected and len(got) == 9000
        assert [e.position for e in log.read_all(after=got[10], types=wanted, limit=5)] == (
            got[11:16]
        )
        for statement in {s for s in statements if s.lstrip().upper().startswith("SELECT")}:
            plan = " | ".join(r[3] for r in log.connection.execute("EXPLAIN QUERY PLAN " + statement))
            assert "TEMP B-TREE" not in plan, plan
    finally:
        log.close()
