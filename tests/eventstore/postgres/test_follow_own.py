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
