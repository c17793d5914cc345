"""Appending, on every backend: idempotence, optimistic concurrency, group commit order,
requests that fail alone, data that reads back exactly."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from eventstore import (
    ANY,
    NO_STREAM,
    AppendRequest,
    EventStore,
    EventStoreError,
    NewEvent,
    WrongExpectedVersion,
)

from ..backends import Backend, open_store


async def test_appending_an_existing_event_id_writes_nothing_and_returns_its_position(
    store: EventStore,
) -> None:
    await store.append("other", NewEvent("Noise", {}))
    first = await store.append("chan-1", NewEvent("MessageReceived", {"t": "hi"}, event_id="msg:1"))
    again = await store.append("chan-1", NewEvent("MessageReceived", {"t": "hi"}, event_id="msg:1"))

    assert again.positions == first.positions == (2,)
    assert (first.duplicates, again.duplicates) == (0, 1)
    assert again.stream_version == first.stream_version == 1
    events = await store.read_all()
    assert [e.event_id for e in events].count("msg:1") == 1
    assert await store.last_position() == 2


async def test_a_replayed_batch_with_one_new_event_writes_only_the_new_one(store: EventStore) -> None:
    await store.append("chan", [NewEvent("M", {"i": 1}, event_id="a")])
    result = await store.append(
        "chan", [NewEvent("M", {"i": 1}, event_id="a"), NewEvent("M", {"i": 2}, event_id="b")]
    )
    assert result.positions == (1, 2)
    assert result.duplicates == 1
    assert [(e.event_id, e.version) for e in await store.read_stream("chan")] == [("a", 1), ("b", 2)]


async def test_a_stale_expected_version_raises_and_writes_nothing(store: EventStore) -> None:
    await store.append("chan", [NewEvent("M", {}), NewEvent("M", {})], expected_version=NO_STREAM)

    with pytest.raises(WrongExpectedVersion) as caught:
        await store.append("chan", NewEvent("M", {"late": True}), expected_version=1)

    assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == ("chan", 1, 2)
    assert "version 2, not the expected 1" in str(caught.value)
    assert await store.stream_version("chan") == 2
    ok = await store.append("chan", NewEvent("M", {}), expected_version=2)
    assert ok.stream_version == 3


async def test_no_stream_means_the_stream_must_not_exist_yet(store: EventStore) -> None:
    assert NO_STREAM == 0
    created = await store.append("new", NewEvent("Created", {}), expected_version=NO_STREAM)
    assert created.stream_version == 1
    with pytest.raises(WrongExpectedVersion):
        await store.append("new", NewEvent("Created", {}), expected_version=NO_STREAM)
    anything = await store.append("new", NewEvent("More", {}), expected_version=ANY)
    assert anything.stream_version == 2


async def test_100_concurrent_tasks_get_gap_free_ordered_results_matching_the_log(
    store: EventStore,
) -> None:
    acknowledged: dict[str, tuple[int, int, str]] = {}

    async def task(t: int) -> None:
        for i in range(5):
            stream = f"shared-{t % 10}" if i % 2 else f"own-{t}"
            event_id = f"t{t}:{i}"
            result = await store.append(stream, NewEvent("Tick", {"t": t, "i": i}, event_id=event_id))
            acknowledged[event_id] = (result.positions[0], result.stream_version, stream)

    await asyncio.gather(*(task(t) for t in range(100)))

    events = await store.read_all()
    assert len(events) == len(acknowledged) == 500
    assert [e.position for e in events] == list(range(1, 501))
    versions: dict[str, list[int]] = defaultdict(list)
    for event in events:
        versions[event.stream_id].append(event.version)
        assert acknowledged[event.event_id] == (event.position, event.version, event.stream_id)
    for stream, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), stream
    # Group commit: every event of one transaction shares its recorded_at.
    transactions = {e.recorded_at for e in events}
    assert len(transactions) < 250


async def test_one_bad_request_in_a_group_fails_alone(store: EventStore) -> None:
    await store.append("chan", NewEvent("M", {}))
    outcomes = await asyncio.gather(
        store.append("chan", NewEvent("M", {"n": 1}), expected_version=1),
        store.append("chan", NewEvent("M", {"n": 2}), expected_version=1),
        store.append("other", NewEvent("M", {"not json": float("nan")})),
        store.append("other", NewEvent("M", {"not json": object()})),
        store.append("third", NewEvent("M", {"n": 3})),
        return_exceptions=True,
    )
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert sum(isinstance(o, WrongExpectedVersion) for o in errors) == 1
    json_errors = [o for o in errors if "cannot be stored as JSON" in str(o)]
    assert len(json_errors) == 2 and all(isinstance(o, EventStoreError) for o in json_errors)
    assert len(errors) == 3
    assert await store.stream_version("chan") == 2
    assert await store.stream_version("other") == 0
    assert await store.stream_version("third") == 1


def test_a_batch_keeps_positions_contiguous_across_a_refused_request(backend: Backend) -> None:
    log = backend.open_log()
    try:
        outcomes = log.append_batch([
            AppendRequest("a", [NewEvent("M", {}), NewEvent("M", {})]),
            AppendRequest("b", [NewEvent("M", {}), NewEvent("M", {"bad": float("inf")})]),
            AppendRequest("c", [NewEvent("M", {})]),
        ])
        assert isinstance(outcomes[1], EventStoreError)
        assert [o.positions for o in (outcomes[0], outcomes[2])] == [(1, 2), (3,)]  # type: ignore[union-attr]
        assert [(e.position, e.stream_id) for e in log.read_all()] == [(1, "a"), (2, "a"), (3, "c")]
    finally:
        log.close()


async def test_appending_after_close_is_refused(backend: Backend) -> None:
    store = await open_store(backend)
    await store.close()
    with pytest.raises(EventStoreError, match="closed"):
        await store.append("chan", NewEvent("M", {}))


@pytest.mark.parametrize(
    "data",
    [{"x": float("nan")}, {"x": [1, float("-inf")]}, {"when": datetime.now(UTC)},
     {"big": 2**70}, {"obj": object()}],
)
def test_data_that_would_not_read_back_exactly_is_refused(backend: Backend, data: dict) -> None:
    log = backend.open_log()
    try:
        with pytest.raises(EventStoreError, match="cannot be stored as JSON"):
            log.append("chan", [NewEvent("M", data)])
        assert log.last_position() == 0
    finally:
        log.close()


def test_data_reads_back_as_its_json_form(backend: Backend) -> None:
    log = backend.open_log()
    try:
        log.append("chan", [NewEvent("M", {"none": None, "t": (1, 2), 3: "int key", "ü": "ß"})])
        (event,) = log.read_all()
        assert event.data == {"none": None, "t": [1, 2], "3": "int key", "ü": "ß"}
    finally:
        log.close()


async def test_a_claim_already_taken_writes_nothing_even_its_new_events(store: EventStore) -> None:
    first = await store.append("s", [NewEvent("Msg", {}, event_id="msg"),
                                     NewEvent("Decision", {}, event_id="d:ada")], claim=True)
    assert first.wrote() == (True, True)
    again = await store.append("s", [NewEvent("Msg", {}, event_id="msg"),
                                     NewEvent("Decision", {}, event_id="d:ada"),
                                     NewEvent("Decision", {}, event_id="d:bob")], claim=True)
    assert again.duplicates == 3 and again.wrote() == (False, False, False)
    assert again.positions == (first.positions[0], first.positions[1], 0)
    assert again.stream_version == 2
    assert await store.get("d:bob") is None
    # without claim, the new event of a replayed request is written (as ever)
    plain = await store.append("s", [NewEvent("Msg", {}, event_id="msg"),
                                     NewEvent("Decision", {}, event_id="d:bob")])
    assert plain.wrote() == (False, True)


def test_a_claim_taken_earlier_in_the_same_group_commit_is_lost(backend: Backend) -> None:
    log = backend.open_log()
    try:
        outcomes = log.append_batch([
            AppendRequest("s", [NewEvent("Msg", {}, event_id="m"),
                                NewEvent("Decision", {}, event_id="d:ada")], claim=True),
            AppendRequest("s", [NewEvent("Msg", {}, event_id="m"),
                                NewEvent("Decision", {}, event_id="d:bob")], claim=True),
        ])
        assert [o.wrote() for o in outcomes] == [(True, True), (False, False)]
        assert [e.event_id for e in log.read_all()] == ["m", "d:ada"]
    finally:
        log.close()
