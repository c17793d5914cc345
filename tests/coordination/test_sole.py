"""The lease of an unsharded bot over PostgreSQL (core.coordination.sole), between two
processes' coordinators, with short lease times."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.coordination import CoordinationError
from core.coordination.sole import SoleLease

from .test_leases import coordinator

TTL, INTERVAL = 0.6, 0.1


def sole(url: str, name: str) -> SoleLease:
    return SoleLease(coordinator(url, static=True, count=1, ttl=TTL, name=name),
                     location="the test log", interval_s=INTERVAL, ttl_s=TTL)


async def test_a_live_owner_s_lease_is_refused_naming_it(pg_url: str) -> None:
    first, second = sole(pg_url, "first"), sole(pg_url, "second")
    await first.take()
    keeping = asyncio.create_task(first.keep())
    started = time.monotonic()
    with pytest.raises(CoordinationError) as refused:
        await second.take()
    waited = time.monotonic() - started
    keeping.cancel()
    assert str(refused.value).startswith("first already runs this bot on the event log "
                                         "the test log, without shards")
    assert TTL <= waited < TTL + 1.0  # one lease time in case it was gone: it was not
    await first.release()
    started = time.monotonic()
    await second.take()  # released: free at once
    assert time.monotonic() - started < INTERVAL


async def test_a_dead_owner_s_lease_is_waited_out_and_taken(pg_url: str) -> None:
    dead, next_one = sole(pg_url, "dead"), sole(pg_url, "next")
    await dead.take()  # and never renewed: killed
    started = time.monotonic()
    await next_one.take()
    assert 0.4 < time.monotonic() - started < TTL + 1.0


async def test_an_owner_whose_lease_was_taken_meanwhile_is_told_to_stop(pg_url: str) -> None:
    paused, other = sole(pg_url, "paused"), sole(pg_url, "other")
    await paused.take()
    await other.take()  # paused did not renew: its lease lapsed and was taken
    keeping = asyncio.create_task(other.keep())
    why = await asyncio.wait_for(paused.keep(), 5)
    keeping.cancel()
    assert why.startswith("other took this bot's lease on the event log the test log")
    assert "stopping" in why
