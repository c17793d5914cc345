"""The named queries of the store interface, on every backend: what catch-up, replay,
explain, stats, export and import ask of a log."""

from __future__ import annotations

import orjson
import pytest

from eventstore import (
    EVERYTHING,
    EventFilter,
    EventStoreError,
    Log,
    NewEvent,
    RecordedEvent,
)

from ..backends import Backend, open_store


def _filled(backend: Backend) -> Log:
    log = backend.open_log()
    log.append("conv:discord:1", [NewEvent("Said", {"who": "ann", "n": 1}, event_id="msg:discord:1"),
                                  NewEvent("Replied", {"who": "ada", "n": 2},
                                           event_id="reply:discord:1:ada")])
    log.append("conv:console:me", [NewEvent("Said", {"who": "me", "n": 3},
                                            event_id="msg:console:7")])
    log.append("conv:discord:2", [NewEvent("Said", {"who": "bob", "n": 4},
                                           event_id="msg:discord:2")])
    log.append("persona:ada", [NewEvent("Version", {"n": 5}, event_id="persona-version:ada:x")])
    log.append("conv:discord:1", [NewEvent("Replied", {"who": "ada", "n": 6},
                                           event_id="reply:discord:1:bea")])
    return log


def test_events_with_an_id_prefix_come_in_id_order(backend: Backend) -> None:
    log = _filled(backend)
    try:
        assert [e.event_id for e in log.with_id_prefix("reply:discord:1:")] == [
            "reply:discord:1:ada", "reply:discord:1:bea"]
        assert [e.event_id for e in log.with_id_prefix("msg:")] == [
            "msg:console:7", "msg:discord:1", "msg:discord:2"]
        assert list(log.with_id_prefix("nothing:")) == []
    finally:
        log.close()


def test_stream_segments_name_each_platform_once(backend: Backend) -> None:
    log = _filled(backend)
    try:
        assert log.stream_segments("conv:") == ["console", "discord"]
        assert log.stream_segments("conv:discord:") == ["1", "2"]
        assert log.stream_segments("quota:") == []
    finally:
        log.close()


def test_active_streams_are_those_with_recent_events_of_a_type(backend: Backend) -> None:
    log = _filled(backend)
    try:
        cutoff = log.read_all()[-1].recorded_at
        assert log.active_streams(0, types=["Replied"], prefix="conv:discord:") == [
            "conv:discord:1"]
        assert log.active_streams(0, types=["Said", "Replied"], prefix="conv:discord:") == [
            "conv:discord:1", "conv:discord:2"]
        assert log.active_streams(cutoff + 1, types=["Said", "Replied"], prefix="conv:") == []
    finally:
        log.close()


def test_read_positions_returns_those_that_exist_in_order(backend: Backend) -> None:
    log = _filled(backend)
    try:
        assert [e.position for e in log.read_positions([6, 2, 2, 99, 1])] == [1, 2, 6]
        assert log.read_positions([]) == []
    finally:
        log.close()


def test_scan_applies_every_criterion(backend: Backend) -> None:
    log = _filled(backend)
    try:
        every = list(log.scan(EVERYTHING))
        assert every == log.read_all()
        assert [e.position for e in log.scan(EventFilter(streams=frozenset({"conv:discord:1"})))
                ] == [1, 2, 6]
        assert [e.position for e in log.scan(EventFilter(types=frozenset({"Said"}), after=1))
                ] == [3, 4]
        assert [e.position for e in log.scan(EventFilter(after=2, upto=4))] == [3, 4]
        by_data = EventFilter(matches=lambda kind, data: data.get("who") == "ada")
        assert [e.position for e in log.scan(by_data)] == [2, 6]
        stamps = [e.recorded_at for e in every]
        assert [e.position for e in log.scan(EventFilter(since=stamps[3], until=stamps[3]))
                if e.recorded_at == stamps[3]] == [4]
    finally:
        log.close()


def test_json_lines_are_every_stored_column(backend: Backend) -> None:
    log = _filled(backend)
    try:
        lines = list(log.json_lines(EventFilter(types=frozenset({"Replied"}))))
        decoded = [orjson.loads(line) for line in lines]
        expected = [e for e in log.read_all() if e.type == "Replied"]
        assert all(line.endswith(b"\n") for line in lines)
        assert decoded == [{
            "position": e.position, "event_id": e.event_id, "stream_id": e.stream_id,
            "version": e.version, "type": e.type, "schema_version": e.schema_version,
            "data": dict(e.data), "recorded_at": e.recorded_at,
            "correlation_id": e.correlation_id, "causation_id": e.causation_id,
        } for e in expected]
        inside = EventFilter(matches=lambda kind, data: data["n"] > 3)
        assert [orjson.loads(line)["position"] for line in log.json_lines(inside)] == [4, 5, 6]
    finally:
        log.close()


def _copy(events: list[RecordedEvent], **changes: object) -> list[RecordedEvent]:
    from dataclasses import replace

    return [replace(e, **changes) for e in events]  # type: ignore[arg-type]


def test_load_writes_events_exactly_as_they_were(backend: Backend, tmp_path_factory) -> None:
    source = _filled(backend)
    events = source.read_all()
    source.close()
    other = type(backend)(tmp_path_factory.mktemp("copy"))
    target = other.open_log()
    try:
        assert target.load(iter(events)) == (len(events), events[-1].position)
        assert target.read_all() == events
        assert target.stream_version("conv:discord:1") == 3
        appended = target.append("conv:discord:1", [NewEvent("Said", {})])
        assert appended.positions == (events[-1].position + 1,)
        with pytest.raises(EventStoreError, match="already holds events"):
            target.load(iter(events))
    finally:
        target.close()


@pytest.mark.parametrize(("change", "message"), [
    ("positions", "is not after"), ("versions", "jumps to version"), ("ids", "event id"),
])
def test_load_refuses_out_of_order_events_and_writes_nothing(backend: Backend, tmp_path_factory,
                                                             change: str, message: str) -> None:
    source = _filled(backend)
    events = source.read_all()
    source.close()
    if change == "positions":
        events[3], events[4] = events[4], events[3]
    elif change == "versions":
        from dataclasses import replace
        events[-1] = replace(events[-1], version=9)
    else:
        from dataclasses import replace
        events[3] = replace(events[3], event_id=events[0].event_id)
    target = type(backend)(tmp_path_factory.mktemp("copy")).open_log()
    try:
        with pytest.raises(EventStoreError, match=message):
            target.load(iter(events))
        assert target.last_position() == 0 and target.read_all() == []
    finally:
        target.close()


def test_a_healthy_log_passes_its_check(backend: Backend) -> None:
    log = _filled(backend)
    try:
        assert log.check() == []
    finally:
        log.close()


async def test_reads_through_the_store_see_one_snapshot(backend: Backend) -> None:
    store = await open_store(backend)
    try:
        await store.append("a", [NewEvent("Said", {}) for _ in range(3)])
        position, events = await store.read(lambda log: (log.last_position(), log.read_all()))
        assert position == 3 and len(events) == 3
        assert [e.position for e in await store.read_positions([3, 1])] == [1, 3]
    finally:
        await store.close()
