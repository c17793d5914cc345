"""The conversation cache always agrees with the log it caches."""

from __future__ import annotations

import asyncio
import random

from core.context.builder import conversation_turns
from core.context.history import CONTEXT_TYPES, ConversationHistory
from core.events import ConversationReset, MessageEdited, MessageReceived, ModelReplied, PersonaTriggered
from eventstore import NewEvent

from .conftest import open_store

STREAM = "conv:test:c1"


def _shape(events) -> list[tuple]:
    return [(e.position, e.event_id, e.version, e.type, dict(e.data)) for e in events]


async def _from_log(store, turns: int) -> list[tuple]:
    return _shape(await ConversationHistory(store).recent(STREAM, turns))


def _random_events(rng: random.Random, n: int) -> list[NewEvent]:
    kind = rng.choice(["message", "reply", "edit", "trigger", "reset"])
    mid = f"m{n}"
    if kind == "message":
        return [
            MessageReceived(
                platform="test",
                message_id=mid,
                channel_id="c1",
                author_id="u1",
                author_name="U",
                text=f"text {n}",
            ).new_event(f"msg:{mid}")
        ]
    if kind == "reply":
        return [
            ModelReplied(
                platform="test",
                message_id=f"m{n - 1}",
                persona_id="ada",
                persona_version="v",
                provider="p",
                model="m",
                text=f"reply {n}",
                author_id="u1",
                context_positions=(1, 2),
            ).new_event(f"reply:{mid}")
        ]
    if kind == "edit":
        return [
            MessageEdited(
                platform="test", message_id=f"m{rng.randrange(max(1, n))}", text="edited", edited_at=str(n)
            ).new_event(f"edit:{mid}")
        ]
    if kind == "trigger":
        return [
            MessageReceived(
                platform="test",
                message_id=mid,
                channel_id="c1",
                author_id="u2",
                author_name="V",
                text=f"hi {n}",
            ).new_event(f"msg:{mid}"),
            PersonaTriggered(
                platform="test",
                message_id=mid,
                persona_id="ada",
                persona_version="v",
                reason="mention",
                channel_id="c1",
                author_id="u2",
                source_event_id=f"msg:{mid}",
            ).new_event(f"trigger:{mid}"),
        ]
    return [ConversationReset(platform="test", channel_id="c1", by_user="u1").new_event(f"reset:{mid}")]


async def test_the_cache_matches_a_fresh_read_of_the_log_after_random_appends(tmp_path):
    store = await open_store(tmp_path / "log.db")
    try:
        rng = random.Random(5)
        history = ConversationHistory(store)
        for n in range(300):
            await history.append(STREAM, _random_events(rng, n))
            if n % 7 == 0:
                turns = rng.choice([3, 8, 20])
                cached = conversation_turns(await history.recent(STREAM, turns), "-")
                fresh = conversation_turns(
                    await ConversationHistory(store).recent(STREAM, turns), "-")
                # what a prompt can use (the newest turns wanted) is the same either way
                wanted = min(turns, len(fresh))
                assert len(cached) >= wanted
                assert cached[len(cached) - wanted:] == fresh[len(fresh) - wanted:]
        assert all(e[3] in CONTEXT_TYPES for e in _shape(await history.recent(STREAM, 5)))
    finally:
        await store.close()


async def test_an_append_by_someone_else_is_noticed_and_the_log_read_again(tmp_path):
    store = await open_store(tmp_path / "log.db")
    try:
        history = ConversationHistory(store)
        await history.append(
            STREAM,
            MessageReceived(
                platform="test", message_id="1", channel_id="c1", author_id="u", author_name="U", text="one"
            ).new_event("msg:1"),
        )
        await history.recent(STREAM, 5)
        await store.append(
            STREAM,
            MessageReceived(
                platform="test", message_id="2", channel_id="c1", author_id="u", author_name="U", text="two"
            ).new_event("msg:2"),
        )  # behind the cache's back
        await history.append(
            STREAM,
            MessageReceived(
                platform="test", message_id="3", channel_id="c1", author_id="u", author_name="U", text="three"
            ).new_event("msg:3"),
        )
        texts = [e.data["text"] for e in await history.recent(STREAM, 5)]
        assert texts == ["one", "two", "three"]
    finally:
        await store.close()


async def test_reads_racing_appends_never_leave_a_stale_entry(tmp_path):
    store = await open_store(tmp_path / "log.db")
    try:
        history = ConversationHistory(store)

        async def writer(n: int) -> None:
            await history.append(
                STREAM,
                MessageReceived(
                    platform="test",
                    message_id=str(n),
                    channel_id="c1",
                    author_id="u",
                    author_name="U",
                    text=f"t{n}",
                ).new_event(f"msg:{n}"),
            )

        async def reader() -> None:
            await history.recent(STREAM, 200)

        for round_ in range(10):
            await asyncio.gather(*(writer(round_ * 20 + i) for i in range(20)),
                                 *(reader() for _ in range(20)))
            cached = _shape(await history.recent(STREAM, 500))
            assert cached == await _from_log(store, 500)
    finally:
        await store.close()


async def test_the_cache_stays_within_its_event_budget(tmp_path):
    store = await open_store(tmp_path / "log.db")
    try:
        history = ConversationHistory(store, max_events=50)
        for c in range(20):
            stream = f"conv:test:c{c}"
            for i in range(5):
                await history.append(
                    stream,
                    MessageReceived(
                        platform="test",
                        message_id=f"{c}-{i}",
                        channel_id=f"c{c}",
                        author_id="u",
                        author_name="U",
                        text="x",
                    ).new_event(f"m{c}-{i}"),
                )
            await history.recent(stream, 3)
            assert len(history) <= 50
        long = "conv:test:long"
        await history.recent(long, 3)
        for i in range(200):
            await history.append(
                long,
                MessageReceived(
                    platform="test",
                    message_id=f"l{i}",
                    channel_id="long",
                    author_id="u",
                    author_name="U",
                    text="y",
                ).new_event(f"long-{i}"),
            )
        assert len(history) <= 50
        recent = await history.recent(long, 3)
        assert [e.event_id for e in recent][-3:] == ["long-197", "long-198", "long-199"]
    finally:
        await store.close()


class _SlowReads:
    """The store, with conversation reads that return late (after their snapshot)."""

    def __init__(self, store) -> None:
        self._store = store

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    async def read_stream_tail(self, stream_id: str, count: int):
        events = await self._store.read_stream_tail(stream_id, count)
        await asyncio.sleep(0.1)
        return events


async def test_a_read_that_overlapped_an_append_is_not_kept(tmp_path):
    store = await open_store(tmp_path / "log.db")
    try:
        history = ConversationHistory(_SlowReads(store))  # type: ignore[arg-type]
        await history.append(
            STREAM,
            MessageReceived(
                platform="test", message_id="1", channel_id="c1", author_id="u", author_name="U", text="one"
            ).new_event("msg:1"),
        )
        slow_read = asyncio.ensure_future(history.recent(STREAM, 5))
        await asyncio.sleep(0.03)  # the read has its snapshot and is on its way back
        await history.append(
            STREAM,
            MessageReceived(
                platform="test", message_id="2", channel_id="c1", author_id="u", author_name="U", text="two"
            ).new_event("msg:2"),
        )
        assert [e.data["text"] for e in await slow_read] == ["one"]
        assert [e.data["text"] for e in await history.recent(STREAM, 5)] == ["one", "two"]
    finally:
        await store.close()
