"""``follow(own=True)``: a store's own appends only, over a log another store (another
process) appends to as well."""

from __future__ import annotations

import asyncio

from eventstore import NewEvent, open_store

from .. import pgserver


async def test_a_follower_of_its_own_appends_skips_the_other_store_s() -> None:
    url = pgserver.new_schema_url()
    try:
        mine, other = await open_store(url), await open_store(url)
        try:
            seen: list[str] = []
            three = asyncio.Event()

            async def follow() -> None:
                async for event in mine.follow(await mine.last_position(), own=True):
                    seen.append(event.event_id)
                    if len(seen) == 3:
                        three.set()

            task = asyncio.create_task(follow())
            await asyncio.sleep(0.1)
            for n in range(6):
                store = mine if n % 2 == 0 else other
                await store.append("s", NewEvent("Said", {"n": n}, event_id=f"e{n}"))
            await mine.append("s", NewEvent("Said", {"n": 0}, event_id="e0"))  # a duplicate
            await asyncio.wait_for(three.wait(), 5)
            await asyncio.sleep(0.3)
            task.cancel()
            everything = [e.event_id for e in await mine.read_all()]
        finally:
            await mine.close()
            await other.close()
    finally:
        pgserver.drop_test_schemas()
    assert seen == ["e0", "e2", "e4"]
    assert everything == [f"e{n}" for n in range(6)]


async def test_a_follower_of_its_own_appends_reads_nothing_for_the_other_store_s() -> None:
    """Its own events come from memory: another process's commits wake it (LISTEN/NOTIFY)
    but cost it no read of the log."""
    url = pgserver.new_schema_url()
    try:
        mine, other = await open_store(url), await open_store(url)
        try:
            reads = 0
            read_all = mine.read_all

            async def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
                nonlocal reads
                reads += 1
                return await read_all(*args, **kwargs)

            mine.read_all = counted  # type: ignore[method-assign]
            seen: list[str] = []
            got = asyncio.Event()

            async def follow() -> None:
                async for event in mine.follow(await mine.last_position(), own=True):
                    seen.append(event.event_id)
                    got.set()

            task = asyncio.create_task(follow())
            await asyncio.sleep(0.1)  # following from the log's end as it is now
            await mine.append("s", NewEvent("Said", {}, event_id="mine-0"))
            await asyncio.wait_for(got.wait(), 5)
            before = reads
            for n in range(5):
                await other.append("s", NewEvent("Said", {}, event_id=f"theirs-{n}"))
            await asyncio.sleep(0.5)  # each of their commits was heard
            got.clear()
            await mine.append("s", NewEvent("Said", {}, event_id="mine-1"))
            await asyncio.wait_for(got.wait(), 5)
            task.cancel()
        finally:
            await mine.close()
            await other.close()
    finally:
        pgserver.drop_test_schemas()
    assert seen == ["mine-0", "mine-1"]
    assert reads == before
