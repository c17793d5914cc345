"""A PostgreSQL log whose server goes away for a while and comes back: calls fail with
LogUnavailable (the same call may succeed later), the outage is said once when it starts
and once when it ends, /readyz's sentence meanwhile, and the pool reconnects by itself.
The server is cut with a TCP proxy between the log and it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest

from eventstore import EventStore, LogUnavailable, NewEvent, open_store
from eventstore.memory import MemoryLog
from eventstore.postgres.log import PostgresLog
from eventstore.postgres.reachability import Reachability, quiet_pool_attempts
from eventstore.store import ThreadedStore
from tests.eventstore import pgserver
from tests.fakes.tcp_proxy import TcpProxy

REACHABILITY = "eventstore.postgres.reachability"


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[TcpProxy, str]]:
    url = pgserver.new_schema_url()
    async with TcpProxy.before(url) as proxy:
        yield proxy, proxy.route(url)
    pgserver.drop_test_schemas()


def test_an_outage_is_said_once_when_it_starts_and_once_when_it_ends(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    reach = Reachability("postgresql://db/bots", clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger=REACHABILITY):
        reach.answered()  # nothing to say while it answers
        assert reach.problem() is None
        reach.failed("Connection refused")
        now[0] += 3
        reach.failed("server closed the connection unexpectedly")
        assert reach.problem() == ("the event log postgresql://db/bots is unreachable for 3 s: "
                                   "Connection refused")
        now[0] += 4
        reach.answered()
        reach.answered()
    assert [r.getMessage() for r in caplog.records] == [
        "the event log is unreachable: postgresql://db/bots (Connection refused); messages "
        "wait and replies are recorded once it answers again",
        "the event log is reachable again: postgresql://db/bots (after 7.0 s)"]
    assert reach.problem() is None


def test_the_pool_s_line_per_connection_attempt_is_left_out(
        caplog: pytest.LogCaptureFixture) -> None:
    quiet_pool_attempts()
    quiet_pool_attempts()  # once per process, however many logs open
    pool_log = logging.getLogger("psycopg.pool")
    assert len(pool_log.filters) == 1
    with caplog.at_level(logging.INFO, logger="psycopg.pool"):
        pool_log.warning("error connecting in %r: %s", "personae x", "Connection refused")
        pool_log.warning("discarding closed connection: %s", "<conn>")
        pool_log.warning("rolling back returned connection: %s", "<conn>")
    assert [r.getMessage() for r in caplog.records] == [
        "rolling back returned connection: <conn>"]


async def test_calls_fail_as_unavailable_meanwhile_and_work_again_without_a_restart(
        proxied: tuple[TcpProxy, str], caplog: pytest.LogCaptureFixture) -> None:
    proxy, url = proxied
    log = await asyncio.to_thread(PostgresLog.open, url)
    try:
        # every call in a thread: the proxy runs on this loop
        await asyncio.to_thread(log.append, "s", [NewEvent(type="Said", data={"n": 1},
                                                           event_id="e1")])
        with caplog.at_level(logging.INFO):
            await proxy.cut()
            for _ in range(3):  # each call fails within seconds, none waits 30 s
                started = time.monotonic()
                with pytest.raises(LogUnavailable):
                    await asyncio.to_thread(
                        log.append, "s", [NewEvent(type="Said", data={"n": 2}, event_id="e2")])
                with pytest.raises(LogUnavailable):
                    await asyncio.to_thread(log.read_all)
                assert time.monotonic() - started < 5
            problem = log.problem()
            await proxy.restore()
            deadline = time.monotonic() + 20
            while True:  # the pool reconnects by itself (its backoff: 1, 2, 4 s...)
                try:
                    await asyncio.to_thread(
                        log.append, "s", [NewEvent(type="Said", data={"n": 2}, event_id="e2")])
                    break
                except LogUnavailable:
                    assert time.monotonic() < deadline, "the pool did not reconnect"
                    await asyncio.sleep(0.2)
        assert [e.event_id for e in await asyncio.to_thread(log.read_all)] == ["e1", "e2"]
        assert log.problem() is None
    finally:
        log.close()
    assert problem is not None and "is unreachable for" in problem
    assert len(lines(caplog, "the event log is unreachable")) == 1
    assert len(lines(caplog, "the event log is reachable again")) == 1
    assert not lines(caplog, "error connecting in")  # the pool's own, per attempt
    assert all(r.levelno < logging.ERROR or r.name == REACHABILITY for r in caplog.records)


async def test_a_store_over_it_keeps_its_followers_through_the_outage(
        proxied: tuple[TcpProxy, str]) -> None:
    proxy, url = proxied
    store = await open_store(url)
    try:
        await store.append("s", NewEvent(type="Said", data={"n": 1}, event_id="e1"))
        await proxy.cut()
        with pytest.raises(LogUnavailable):
            await store.append("s", NewEvent(type="Said", data={"n": 2}, event_id="e2"))
        assert store.problem() is not None
        seen: list[str] = []
        both = asyncio.Event()

        async def follow(store: EventStore) -> None:
            async for event in store.follow(0):
                seen.append(event.event_id)
                if len(seen) == 2:
                    both.set()

        follower = asyncio.create_task(follow(store))
        await asyncio.sleep(1.0)  # its reads fail meanwhile
        assert not follower.done()
        await proxy.restore()
        async with asyncio.timeout(30):
            while True:
                try:
                    await store.append("s", NewEvent(type="Said", data={"n": 2}, event_id="e2"))
                    break
                except LogUnavailable:
                    await asyncio.sleep(0.2)
            await both.wait()
        follower.cancel()
        assert seen == ["e1", "e2"]
        assert store.problem() is None
    finally:
        await store.close()


class _Flaky(MemoryLog):
    """A log whose readers fail the first ``failures`` reads as a lost server does."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def reader(self) -> _Flaky:
        return self

    def read_all(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if self.failures:
            self.failures -= 1
            raise LogUnavailable("the event log memory:// failed: Connection refused")
        return super().read_all(*args, **kwargs)  # type: ignore[arg-type]


async def test_a_follower_tries_a_read_the_log_cannot_serve_again() -> None:
    log = _Flaky(failures=3)
    log.append("s", [NewEvent(type="Said", data={"n": 1}, event_id="e1")])
    store = ThreadedStore(log)
    try:
        async with asyncio.timeout(10):
            async for event in store.follow(0):
                assert event.event_id == "e1"
                break
        assert log.failures == 0
    finally:
        await store.close()
