"""Projections and upcasting, on every backend: rebuilt equals incremental, a failing
projection changes nothing, a version bump rebuilds, a projection behind the log
catches up on open, old shapes are upcast on read."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import (
    ANY,
    EVERYTHING,
    AppendRequest,
    Column,
    EventStoreError,
    Log,
    NewEvent,
    Projection,
    RecordedEvent,
    Table,
    TableReader,
    TableWriter,
    Upcasters,
)

from ..backends import BACKENDS, Backend, open_store


class Totals(Projection):
    """Per stream and type: how many events and the sum of their ``amount``."""

    name = "totals"
    version = 1
    tables = (Table(name="totals", columns=(
        Column(name="stream_id", type="text"), Column(name="type", type="text"),
        Column(name="count", type="integer"), Column(name="amount", type="integer")),
        key=("stream_id", "type")),)

    def __init__(self) -> None:
        self.applied = 0

    def apply(self, tables: TableWriter, event: RecordedEvent) -> None:
        if event.type == "Boom":
            raise RuntimeError("this projection cannot take a Boom")
        self.applied += 1
        tables.add("totals", {"stream_id": event.stream_id, "type": event.type},
                   {"count": 1, "amount": event.data.get("amount", 0)})


class TotalsV2(Totals):
    version = 2


def _paid_upcasters() -> Upcasters:
    """``Paid`` v1 stored ``{"amt": n}``; v2 calls it ``amount``."""
    upcasters = Upcasters()
    upcasters.register("Paid", 1, lambda data: {"amount": data["amt"]})
    return upcasters


def _totals(log: Log) -> dict[tuple[str, str], tuple[int, int]]:
    return {(row["stream_id"], row["type"]): (row["count"], row["amount"])
            for row in log.rows("totals")}


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
@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_rebuilt_projection_equals_the_incremental_one(kind: str, batches: list,
                                                       tmp_path_factory: pytest.TempPathFactory
                                                       ) -> None:
    backend = BACKENDS[kind](tmp_path_factory.mktemp("log"))
    log = backend.open_log(upcasters=_paid_upcasters(), projections=[Totals()])
    try:
        for batch in batches:
            log.append_batch([
                AppendRequest(stream, [event], expected_version=expected)
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


def test_a_corrupted_projection_row_is_detected(backend: Backend) -> None:
    log = backend.open_log(projections=[Totals()])
    log.append("a", [NewEvent("Paid", {"amount": 5}), NewEvent("Paid", {"amount": 7})])
    log.append("b", [NewEvent("Said", {"amount": 1})])
    assert log.rebuild_and_compare(Totals()) == []

    backend.tamper(log, "totals", {"stream_id": "a", "type": "Paid", "count": 2, "amount": 13})
    (difference,) = log.rebuild_and_compare(Totals())
    assert (difference.projection, difference.table) == ("totals", "totals")
    assert difference.only_live == (("a", "Paid", 2, 13),)
    assert difference.only_rebuilt == (("a", "Paid", 2, 12),)
    assert "1 row(s) only in the live" in str(difference)


async def test_rebuild_and_compare_from_the_async_store(backend: Backend) -> None:
    async with await open_store(backend, projections=[Totals()]) as store:
        await store.append("a", [NewEvent("Paid", {"amount": 3}) for _ in range(3)])
        assert await store.rebuild_and_compare(Totals()) == []
        rows = await store.read(lambda log: _totals(log))
        assert rows == {("a", "Paid"): (3, 9)}


def test_upcasting_happens_on_read(backend: Backend) -> None:
    log = backend.open_log(upcasters=_paid_upcasters())
    try:
        log.append("a", [NewEvent("Paid", {"amt": 42}, event_id="old", schema_version=1)])
        log.append("a", [NewEvent("Paid", {"amount": 8}, event_id="new", schema_version=2)])
        old, new = log.read_stream("a")
        assert (old.schema_version, dict(old.data)) == (2, {"amount": 42})
        assert (new.schema_version, dict(new.data)) == (2, {"amount": 8})
        assert log.get("old") == old
        (stored, _) = log.scan(EVERYTHING, upcast=False)
        assert (stored.schema_version, dict(stored.data)) == (1, {"amt": 42})
    finally:
        log.close()
    plain = backend.open_log()
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
    backend: Backend,
) -> None:
    log = backend.open_log(projections=[Totals()])
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


def test_a_failing_request_undoes_its_changes_to_rows_its_neighbours_change_too(
    backend: Backend,
) -> None:
    """The requests before and after the failing one add to the very rows it added to
    before failing: theirs stay, its own go."""
    log = backend.open_log(projections=[Totals()])
    try:
        log.append("a", [NewEvent("Paid", {"amount": 1})])
        outcomes = log.append_batch([
            AppendRequest("a", [NewEvent("Paid", {"amount": 10})]),
            AppendRequest("a", [NewEvent("Paid", {"amount": 100}), NewEvent("Said", {}),
                                NewEvent("Boom", {})]),
            AppendRequest("a", [NewEvent("Paid", {"amount": 1000}), NewEvent("Said", {})]),
            AppendRequest("a", [NewEvent("Boom", {})]),
            AppendRequest("a", [NewEvent("Paid", {"amount": 10000})]),
        ])
        assert [type(o).__name__ for o in outcomes] == [
            "AppendResult", "EventStoreError", "AppendResult", "EventStoreError", "AppendResult"]
        assert _totals(log) == {("a", "Paid"): (4, 11011), ("a", "Said"): (1, 0)}
        assert [e.version for e in log.read_all()] == [1, 2, 3, 4, 5]
        assert log.projection_position("totals") == log.last_position() == 5
        assert log.rebuild_and_compare(Totals()) == []
    finally:
        log.close()


def test_a_bumped_version_rebuilds_and_an_unchanged_one_does_not(backend: Backend) -> None:
    log = backend.open_log(projections=[Totals()])
    log.append("a", [NewEvent("Paid", {"amount": n}) for n in range(10)])
    backend.tamper(log, "totals", {"stream_id": "stale", "type": "Row", "count": 1, "amount": 1})
    log.close()

    same = Totals()
    log = backend.open_log(projections=[same])
    assert same.applied == 0
    assert ("stale", "Row") in _totals(log)
    log.close()

    bumped = TotalsV2()
    log = backend.open_log(projections=[bumped])
    try:
        assert bumped.applied == 10
        assert _totals(log) == {("a", "Paid"): (10, 45)}
        assert log.projection_state("totals") == (2, 10)
    finally:
        log.close()


def test_a_projection_behind_the_log_catches_up_on_open(backend: Backend) -> None:
    log = backend.open_log(projections=[Totals()])
    log.append("a", [NewEvent("Paid", {"amount": 1})])
    log.close()
    plain = backend.open_log()  # no projections registered: it falls behind
    plain.append("a", [NewEvent("Paid", {"amount": 2}), NewEvent("Paid", {"amount": 3})])
    plain.close()

    totals = Totals()
    log = backend.open_log(projections=[totals])
    try:
        assert totals.applied == 2
        assert _totals(log) == {("a", "Paid"): (3, 6)}
    finally:
        log.close()


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


class Budget(Projection):
    """At most ``limit`` ``Spend`` events per stream: refused in the append (``admit``)."""

    name = "budget"
    version = 1
    types = frozenset({"Spend"})
    tables = (Table(name="budget", columns=(
        Column(name="stream_id", type="text"), Column(name="spent", type="integer")),
        key=("stream_id",)),)

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.asked = 0

    def admit(self, tables: TableReader, event: RecordedEvent) -> None:
        self.asked += 1
        rows = tables.rows("budget", {"stream_id": event.stream_id})
        if rows and rows[0]["spent"] >= self.limit:
            raise OverBudget(f"{event.stream_id} has spent its budget")

    def apply(self, tables: TableWriter, event: RecordedEvent) -> None:
        tables.add("budget", {"stream_id": event.stream_id}, {"spent": 1})


class OverBudget(EventStoreError):
    pass


def test_admit_refuses_a_request_in_the_append_and_sees_earlier_requests_of_the_batch(
    backend: Backend,
) -> None:
    budget = Budget(limit=2)
    log = backend.open_log(projections=[budget])
    try:
        outcomes = log.append_batch([
            AppendRequest("a", [NewEvent("Spend", {}, event_id="s1")]),
            AppendRequest("b", [NewEvent("Other", {})]),
            AppendRequest("a", [NewEvent("Spend", {}, event_id="s2"),
                                NewEvent("Spend", {}, event_id="s3")]),  # the third: refused
            AppendRequest("a", [NewEvent("Spend", {}, event_id="s4")]),  # the second: fine
            AppendRequest("a", [NewEvent("Spend", {}, event_id="s5")]),  # the third: refused
            AppendRequest("c", [NewEvent("Spend", {}, event_id="s6")]),
        ])
        assert [type(o).__name__ for o in outcomes] == [
            "AppendResult", "AppendResult", "OverBudget", "AppendResult", "OverBudget",
            "AppendResult"]
        assert str(outcomes[2]) == "a has spent its budget"  # the projection's own error
        assert [e.event_id for e in log.read_all() if e.type == "Spend"] == ["s1", "s4", "s6"]
        assert {r["stream_id"]: r["spent"] for r in log.rows("budget")} == {"a": 2, "c": 1}
        with pytest.raises(OverBudget):
            log.append("a", [NewEvent("Spend", {}, event_id="s7")])
        # a replayed event is a duplicate, not a new charge: it is not asked again
        asked = budget.asked
        assert log.append("a", [NewEvent("Spend", {}, event_id="s4")]).duplicates == 1
        assert budget.asked == asked
    finally:
        log.close()
    # catching up and rebuilding fold what was admitted, without asking again
    strict = Budget(limit=0)
    log = backend.open_log(projections=[strict])
    try:
        assert log.rebuild_and_compare(strict) == []
        assert strict.asked == 0
    finally:
        log.close()


def test_append_results_say_which_events_the_append_wrote(backend: Backend) -> None:
    log = backend.open_log()
    try:
        log.append("s", [NewEvent("E", {}, event_id="x"), NewEvent("E", {}, event_id="y")])
        mixed = log.append("s", [NewEvent("E", {}, event_id="z"),
                                 NewEvent("E", {}, event_id="x"),
                                 NewEvent("E", {}, event_id="w")])
        assert mixed.wrote() == (True, False, True)
        assert log.append("s", [NewEvent("E", {}, event_id="y")]).wrote() == (False,)
        assert log.append("s", [NewEvent("E", {}, event_id="v")]).wrote() == (True,)
    finally:
        log.close()


async def test_a_store_says_whether_other_processes_may_append(backend: Backend) -> None:
    store = await open_store(backend)
    try:
        # PostgreSQL is shared by several processes; SQLite has one writer process (the
        # bot holds its lock), memory lives in one process
        assert store.shared is (backend.name == "postgres")
    finally:
        await store.close()
