"""Projections and upcasting: rebuilt equals incremental, positions are transactional,
a version bump rebuilds, opening is not a scan, old shapes are upcast on read."""

from __future__ import annotations

import sqlite3
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import (
    ANY,
    AppendRequest,
    EventLog,
    EventStore,
    EventStoreError,
    NewEvent,
    Projection,
    RecordedEvent,
    Upcasters,
)


class Totals(Projection):
    """Per stream and type: how many events and the sum of their ``amount``."""

    name = "totals"
    version = 1
    tables = ("totals",)

    def __init__(self) -> None:
        self.applied = 0

    def create(self, db: sqlite3.Connection, schema: str) -> None:
        db.execute(
            f"CREATE TABLE {schema}.totals (stream_id TEXT, type TEXT, count INTEGER, "
            "amount INTEGER, PRIMARY KEY (stream_id, type))"
        )

    def apply(self, db: sqlite3.Connection, schema: str, event: RecordedEvent) -> None:
        if event.type == "Boom":
            raise RuntimeError("this projection cannot take a Boom")
        self.applied += 1
        db.execute(
            f"INSERT INTO {schema}.totals VALUES (?, ?, 1, ?) ON CONFLICT (stream_id, type) "
            "DO UPDATE SET count = count + 1, amount = amount + excluded.amount",
            (event.stream_id, event.type, event.data.get("amount", 0)),
        )


class TotalsV2(Totals):
    version = 2


def _paid_upcasters() -> Upcasters:
    """``Paid`` v1 stored ``{"amt": n}``; v2 calls it ``amount``."""
    upcasters = Upcasters()
    upcasters.register("Paid", 1, lambda data: {"amount": data["amt"]})
    return upcasters


def _totals(log: EventLog) -> dict[tuple[str, str], tuple[int, int]]:
    return {
        (stream, type_): (count, amount)
        for stream, type_, count, amount in log.connection.execute("SELECT * FROM totals")
    }


@pytest.fixture
def open_log(log_path: Path) -> Iterator[Callable[..., EventLog]]:
    opened: list[EventLog] = []

    def open_(projection: Projection | None = None) -> EventLog:
        log = EventLog.open(log_path, projections=[projection or Totals()])
        opened.append(log)
        return log

    yield open_
    for log in opened:
        log.close()


def _make_event(type_: str, amount: int, dup: int | None, old: bool) -> NewEvent:
    """A ``Paid`` event may be in the old shape; ``dup`` reuses an event id on purpose."""
    old = old and type_ == "Paid"
    data = {"amt": amount} if old else {"amount": amount}
    version = 1 if old else 2
    if dup is None:
        return NewEvent(type_, data, schema_version=version)
    return NewEvent(type_, data, event_id=f"dup-{dup}", schema_version=version)


_event = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.builds(
        _make_event,
        type_=st.sampled_from(["Paid", "Said", "Left"]),
        amount=st.integers(-1000, 1000),
        dup=st.one_of(st.none(), st.integers(0, 5)),
        old=st.booleans(),
    ),
)
_batches = st.lists(
    st.lists(st.tuples(_event, st.one_of(st.just(ANY), st.integers(0, 6))), min_size=1,
             max_size=6),
    min_size=1, max_size=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=_batches)
def test_rebuilt_projection_equals_the_incremental_one(batches: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.db"
        log = EventLog.open(path, upcasters=_paid_upcasters(), projections=[Totals()])
        try:
            for batch in batches:
                log.append_batch([
                    AppendRequest(stream, [event], expected)
                    for (stream, event), expected in batch
                ])
            assert log.rebuild_and_compare(Totals()) == []

            # And both agree with the events as read back (upcast: every amount is there).
            expected: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
            for event in log.read_all():
                assert "amt" not in event.data and event.schema_version == 2
                expected[(event.stream_id, event.type)][0] += 1
                expected[(event.stream_id, event.type)][1] += event.data["amount"]
            assert _totals(log) == {k: tuple(v) for k, v in expected.items()}
            assert log.projection_position("totals") == log.last_position()
        finally:
            log.close()


def test_a_corrupted_projection_row_is_detected(open_log: Callable[..., EventLog]) -> None:
    log = open_log()
    log.append("a", [NewEvent("Paid", {"amount": 5}), NewEvent("Paid", {"amount": 7})])
    log.append("b", [NewEvent("Said", {"amount": 1})])
    assert log.rebuild_and_compare(Totals()) == []

    log.connection.execute("UPDATE totals SET amount = 13 WHERE stream_id = 'a'")
    (difference,) = log.rebuild_and_compare(Totals())
    assert (difference.projection, difference.table) == ("totals", "totals")
    assert difference.only_live == (("a", "Paid", 2, 13),)
    assert difference.only_rebuilt == (("a", "Paid", 2, 12),)
    assert "1 row(s) only in the live" in str(difference)


async def test_rebuild_and_compare_from_the_async_store(log_path: Path) -> None:
    async with await EventStore.open(log_path, projections=[Totals()]) as store:
        await store.append("a", [NewEvent("Paid", {"amount": 3}) for _ in range(3)])
        assert await store.rebuild_and_compare(Totals()) == []
        rows = await store.read(lambda log: _totals(log))
        assert rows == {("a", "Paid"): (3, 9)}


def test_upcasting_happens_on_read_and_leaves_the_row_alone(log_path: Path) -> None:
    log = EventLog.open(log_path, upcasters=_paid_upcasters())
    try:
        log.append("a", [NewEvent("Paid", {"amt": 42}, event_id="old", schema_version=1)])
        log.append("a", [NewEvent("Paid", {"amount": 8}, event_id="new", schema_version=2)])
        old, new = log.read_stream("a")
        assert (old.schema_version, dict(old.data)) == (2, {"amount": 42})
        assert (new.schema_version, dict(new.data)) == (2, {"amount": 8})
        assert log.get("old") == old
    finally:
        log.close()
    raw = sqlite3.connect(log_path)
    try:
        assert raw.execute(
            "SELECT schema_version, data FROM events WHERE event_id = 'old'"
        ).fetchone() == (1, '{"amt":42}')
    finally:
        raw.close()
    plain = EventLog.open(log_path)
    try:
        assert plain.get("old").data == {"amt": 42}  # type: ignore[union-attr]
    finally:
        plain.close()


def test_upcasters_chain_and_refuse_a_second_step_for_the_same_version() -> None:
    upcasters = Upcasters()
    upcasters.register("T", 1, lambda d: {**d, "b": 1})
    upcasters.register("T", 2, lambda d: {**d, "c": 2})
    assert upcasters.upcast("T", 1, {"a": 0}) == (3, {"a": 0, "b": 1, "c": 2})
    assert upcasters.upcast("Other", 1, {"a": 0}) == (1, {"a": 0})
    with pytest.raises(ValueError, match="already registered"):
        upcasters.register("T", 1, lambda d: d)


def test_a_failing_projection_leaves_tables_position_and_log_untouched(
    open_log: Callable[..., EventLog],
) -> None:
    log = open_log()
    log.append("a", [NewEvent("Paid", {"amount": 1})])
    before = (_totals(log), log.projection_position("totals"), log.last_position())

    outcomes = log.append_batch([
        AppendRequest("a", [NewEvent("Paid", {"amount": 100}), NewEvent("Boom", {})]),
        AppendRequest("b", [NewEvent("Paid", {"amount": 2})]),
    ])

    assert isinstance(outcomes[0], EventStoreError)
    assert "cannot take a Boom" in str(outcomes[0])
    # The first event of the refused request was applied, then rolled back with it.
    assert _totals(log) == {("a", "Paid"): (1, 1), ("b", "Paid"): (1, 2)}
    assert log.projection_position("totals") == log.last_position() == before[2] + 1
    assert [e.stream_id for e in log.read_all()] == ["a", "b"]


def test_projection_position_commits_with_its_tables(log_path: Path) -> None:
    log = EventLog.open(log_path, projections=[Totals()])
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


def test_a_bumped_version_rebuilds_and_an_unchanged_one_does_not(log_path: Path) -> None:
    log = EventLog.open(log_path, projections=[Totals()])
    log.append("a", [NewEvent("Paid", {"amount": n}) for n in range(10)])
    log.connection.execute("INSERT INTO totals VALUES ('stale', 'Row', 1, 1)")
    log.close()

    same = Totals()
    log = EventLog.open(log_path, projections=[same])
    assert same.applied == 0
    assert ("stale", "Row") in _totals(log)
    log.close()

    bumped = TotalsV2()
    log = EventLog.open(log_path, projections=[bumped])
    try:
        assert bumped.applied == 10
        assert _totals(log) == {("a", "Paid"): (10, 45)}
        assert log.connection.execute(
            "SELECT version, position FROM projection_positions WHERE name = 'totals'"
        ).fetchone() == (2, 10)
    finally:
        log.close()


def test_a_projection_behind_the_log_catches_up_on_open(log_path: Path) -> None:
    log = EventLog.open(log_path, projections=[Totals()])
    log.append("a", [NewEvent("Paid", {"amount": 1})])
    log.close()
    plain = EventLog.open(log_path)  # no projections registered: it falls behind
    plain.append("a", [NewEvent("Paid", {"amount": 2}), NewEvent("Paid", {"amount": 3})])
    plain.close()

    totals = Totals()
    log = EventLog.open(log_path, projections=[totals])
    try:
        assert totals.applied == 2
        assert _totals(log) == {("a", "Paid"): (3, 6)}
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
        log = EventLog.open(path, projections=[totals])
        read = _bytes_read_by_this_process() - before
    log.close()
    return steps, read, totals.applied


def test_opening_a_caught_up_log_reads_no_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def build(path: Path, events: int) -> None:
        log = EventLog.open(path, projections=[Totals()])
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


def test_hypothesis_strategy_makes_duplicates_and_conflicts() -> None:
    """Guard against a strategy that never exercises the interesting paths."""
    seen: Counter[str] = Counter()

    @settings(max_examples=60, deadline=None)
    @given(batches=_batches)
    def probe(batches: list) -> None:
        for batch in batches:
            for (_stream, event), expected in batch:
                seen["dup" if event.event_id.startswith("dup-") else "fresh"] += 1
                seen["expected" if expected != ANY else "any"] += 1
                seen["old" if event.schema_version == 1 else "new"] += 1

    probe()
    assert all(seen[k] > 0 for k in ("dup", "fresh", "expected", "any", "old", "new"))

