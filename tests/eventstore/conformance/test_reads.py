"""Reading, on every backend: a stream from a version, a stream's tail, everything by
type, live follow (woken by commits, exact under concurrent appends and other writers)."""

from __future__ import annotations

import asyncio

import pytest

from eventstore import EventStore, NewEvent, RecordedEvent, ThreadedStore

from ..backends import Backend


async def _fill(store: EventStore) -> None:
    for i in range(1, 31):
        await store.append("chan", NewEvent("Said" if i % 3 else "Joined", {"i": i}))
        await store.append(f"noise-{i % 4}", NewEvent("Noise", {"i": i}))


async def test_read_stream_from_a_version_with_a_limit(store: EventStore) -> None:
    await _fill(store)

    events = await store.read_stream("chan", from_version=25)
    assert [e.version for e in events] == [25, 26, 27, 28, 29, 30]
    assert [e.data["i"] for e in events] == [25, 26, 27, 28, 29, 30]
    assert {e.stream_id for e in events} == {"chan"}
    limited = await store.read_stream("chan", from_version=3, limit=2)
    assert [e.version for e in limited] == [3, 4]
    assert await store.read_stream("missing") == []


async def test_read_stream_tail_returns_the_last_events_oldest_first(store: EventStore) -> None:
    await _fill(store)

    tail = await store.read_stream_tail("chan", 4)
    assert [e.version for e in tail] == [27, 28, 29, 30]
    assert [e.version for e in await store.read_stream_tail("chan", 100)] == list(range(1, 31))


async def test_read_stream_tail_returns_events_exactly_as_a_plain_read_does(
        store: EventStore) -> None:
    # what a JSON round trip through SQLite could change: big and float numbers, escapes,
    # non-ASCII text, nesting, nulls, the REAL recorded_at to its last digit
    tricky = [
        {"n": 2**63 - 1, "f": 0.1, "g": 1e-300, "neg": -0.0},
        {"text": 'quote " backslash \\ newline \n tab \t nul \u0000', "u": "日本語 🎉 \u202e"},
        {"nested": {"list": [1, [2, {"three": None}]], "empty": {}}, "t": True},
        {},
    ]
    for data in tricky:
        await store.append("tricky", NewEvent("Said", data, correlation_id="c",
                                              causation_id=None))
    await store.append("tricky", NewEvent("Said", {"i": 1}))

    plain = await store.read_stream("tricky")
    assert await store.read_stream_tail("tricky", 3) == plain[-3:]
    assert await store.read_stream_tail("tricky", 50) == plain
    assert [e.data for e in plain[:4]] == tricky
    assert await store.read_stream_tail("missing", 5) == []


async def test_read_all_from_a_position_and_by_type(store: EventStore) -> None:
    await _fill(store)

    after = await store.read_all(after=50)
    assert [e.position for e in after] == list(range(51, 61))
    joined = await store.read_all(types=["Joined"])
    assert [e.data["i"] for e in joined] == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
    assert all(e.type == "Joined" for e in joined)
    two_types = await store.read_all(after=40, types=["Joined", "Noise"], limit=3)
    assert [(e.type, e.position) for e in two_types] == [
        ("Joined", 41), ("Noise", 42), ("Noise", 44),
    ]
    window = await store.read_all(after=10, until=13)
    assert [e.position for e in window] == [11, 12, 13]


async def test_follow_wakes_on_commit_and_does_not_poll(store: EventStore) -> None:
    await store.append("chan", NewEvent("M", {"n": 0}))
    received: list[RecordedEvent] = []
    caught_up = asyncio.Event()
    arrived = asyncio.Event()

    async def follower() -> None:
        async for event in store.follow(after=0):
            received.append(event)
            caught_up.set()
            if len(received) == 2:
                arrived.set()

    reads = 0
    assert isinstance(store, ThreadedStore)
    original_read = store._on_reader  # every read of the log goes through here

    async def counting_read(query):  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += 1
        return await original_read(query)

    store._on_reader = counting_read  # type: ignore[method-assign]
    task = asyncio.create_task(follower())
    try:
        await asyncio.wait_for(caught_up.wait(), 5)
        await asyncio.sleep(0.05)  # let the follower finish its read and start waiting
        idle_reads = reads
        await asyncio.sleep(0.3)
        assert reads == idle_reads, "the follower read the log while nothing was committed"

        await store.append("chan", NewEvent("M", {"n": 1}))
        await asyncio.wait_for(arrived.wait(), 2)
        assert [e.data["n"] for e in received] == [0, 1]
        # what this store committed is handed over from memory, not read back
        assert reads == idle_reads
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _follow_until(store: EventStore, count: int, *, after: int = 0,
                        types: list[str] | None = None) -> list[RecordedEvent]:
    seen: list[RecordedEvent] = []
    async for event in store.follow(after, types=types):
        seen.append(event)
        if len(seen) == count:
            return seen
    return seen


async def test_followers_get_exactly_what_the_log_holds_while_many_append(
        store: EventStore) -> None:
    await store.append("old", [NewEvent("Old", {"i": i}) for i in range(10)])
    everything = asyncio.create_task(_follow_until(store, 10 + 200))
    only_b = asyncio.create_task(_follow_until(store, 100, types=["B"]))
    late = asyncio.create_task(_follow_until(store, 50, after=160))
    await asyncio.sleep(0.05)  # the followers are caught up and waiting

    async def writer(n: int) -> None:
        for i in range(20):
            await store.append(f"s{n}", [NewEvent("A", {"n": n, "i": i}),
                                         NewEvent("B", {"n": n, "i": i})])

    await asyncio.gather(*(writer(n) for n in range(5)))
    logged = await store.read_all(0)
    assert await asyncio.wait_for(everything, 5) == logged
    assert await asyncio.wait_for(only_b, 5) == [e for e in logged if e.type == "B"]
    assert await asyncio.wait_for(late, 5) == logged[160:]


async def test_a_follower_sees_another_process_appends_in_between(
        store: EventStore, backend: Backend) -> None:
    follower = asyncio.create_task(_follow_until(store, 6))
    await store.append("mine", NewEvent("Mine", {"n": 1}))
    other = backend.open_log()  # another writer of the same log (a CLI import, say)
    try:
        other.append("theirs", [NewEvent("Theirs", {"n": 2}), NewEvent("Theirs", {"n": 3})])
    finally:
        other.close()
    await store.append("mine", [NewEvent("Mine", {"n": 4}), NewEvent("Mine", {"n": 5})])
    await store.append("mine", NewEvent("Mine", {"n": 6}))
    seen = await asyncio.wait_for(follower, 5)
    assert [e.data["n"] for e in seen] == [1, 2, 3, 4, 5, 6]
    assert seen == await store.read_all(0)


async def test_follow_by_type_skips_other_types(store: EventStore) -> None:
    await store.append("chan", [NewEvent("A", {}), NewEvent("B", {"n": 1})])
    stream = store.follow(types=["B"])
    first = await asyncio.wait_for(anext(stream), 2)
    pending = asyncio.ensure_future(anext(stream))
    await store.append("chan", [NewEvent("A", {}), NewEvent("B", {"n": 2})])
    second = await asyncio.wait_for(pending, 2)
    assert [(first.type, first.data["n"]), (second.type, second.data["n"])] == [("B", 1), ("B", 2)]
    await stream.aclose()


def test_events_read_back_equal_ones_built_by_the_dataclass(backend: Backend) -> None:
    """The read loop fills RecordedEvent's slots itself; it must miss none of them."""
    log = backend.open_log()
    try:
        log.append("chan", [NewEvent("M", {"k": [1, "two"]}, event_id="e1",
                                     correlation_id="corr", causation_id="cause")])
        (event,) = log.read_all()
        built = RecordedEvent(
            position=event.position, event_id="e1", stream_id="chan", version=1, type="M",
            schema_version=1, data={"k": [1, "two"]}, recorded_at=event.recorded_at,
            correlation_id="corr", causation_id="cause",
        )
        assert event == built
        assert repr(event) == repr(built)
        assert log.get("e1") == built
    finally:
        log.close()


async def test_a_new_follower_sees_what_was_committed_while_nobody_followed(
        store: EventStore) -> None:
    first = asyncio.create_task(_follow_until(store, 3))
    await asyncio.sleep(0.05)
    await store.append("chan", [NewEvent("M", {"n": n}) for n in (1, 2, 3)])
    assert [e.data["n"] for e in await asyncio.wait_for(first, 5)] == [1, 2, 3]
    await asyncio.sleep(0)  # the finished follower has let go
    await store.append("chan", [NewEvent("M", {"n": n}) for n in (4, 5)])

    # nothing more is committed: the new follower must find 4 and 5 on its own
    second = await asyncio.wait_for(_follow_until(store, 2, after=3), 2)
    assert [e.data["n"] for e in second] == [4, 5]
