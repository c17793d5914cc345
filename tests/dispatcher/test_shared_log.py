"""Several personae processes over one PostgreSQL log (issue 15): per-user limits hold
across them, a conversation cache sees the others' appends, and a message two of them
ingest is answered once. Each process is a real OS process
(``tests/dispatcher/shared_child.py``) with its own dispatcher, caches and buckets."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import eventstore
from core.context.history import ConversationHistory
from core.dispatcher.projection import projections
from core.events import MessageReceived, ModelReplied
from core.limits.quotas import QuotaLedger, QuotaUsage
from eventstore.postgres import PostgresLog
from tests.eventstore import pgserver

ROOT = Path(__file__).resolve().parents[2]


class Process:
    """One child: a dispatcher over the shared log, driven line by line."""

    def __init__(self, url: str, personas: list[dict[str, str]]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.dispatcher.shared_child", url, json.dumps(personas)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=ROOT, env={k: v for k, v in os.environ.items() if k != "PERSONAE_CONFIG"})

    def wait_ready(self) -> None:
        assert self._line() == "ready", self._failure()

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def answer(self) -> dict[str, Any]:
        line = self._line()
        assert line, self._failure()
        return json.loads(line)

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        self.send(command)
        return self.answer()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.send({"op": "quit"})
                self.process.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(10)

    def _line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def _failure(self) -> str:
        self.process.kill()
        assert self.process.stderr is not None
        return self.process.stderr.read()[-3000:]


@pytest.fixture
def url() -> Iterator[str]:
    url = pgserver.new_schema_url()
    PostgresLog.open(url, projections=projections()).close()  # the log, made once
    yield url
    pgserver.drop_test_schemas()


@pytest.fixture
def processes(url: str) -> Iterator[Any]:
    started: list[Process] = []

    def start(*personas: list[dict[str, str]]) -> list[Process]:
        made = [Process(url, p) for p in personas]
        started.extend(made)
        for process in made:
            process.wait_ready()
        return made

    yield start
    for process in started:
        process.stop()


def events(url: str, *types: str) -> list:
    log = PostgresLog.open(url)
    try:
        return log.read_all(types=types or None)
    finally:
        log.close()


def message(i: int | str, *, author: str = "u1", dm: bool = False, text: str = "@ada hi"
            ) -> dict[str, Any]:
    if dm:
        return {"author": author, "channel": f"dm-{author}", "guild": None, "id": f"m{i}",
                "text": text}
    return {"author": author, "channel": "c1", "guild": "g1", "id": f"m{i}", "text": text}


def ada(limits: str) -> list[dict[str, str]]:
    return [{"id": "ada", "extra": f"limits: {limits}\n"}]


def triggered(answer: dict[str, Any]) -> list[list[str]]:
    return [r["triggered"] for r in answer["results"]]


def rejected(answer: dict[str, Any]) -> list[str]:
    return [why for r in answer["results"] for _, why in r["rejected"]]


def test_a_user_quota_holds_when_the_user_talks_through_two_processes(processes, url):
    # the user talks in a guild (process A's shard) and in a DM (shard 0: process B)
    a, b = processes(ada("{quota: {messages: 3, scope: user}}"),
                     ada("{quota: {messages: 3, scope: user}}"))
    outcomes = []
    for i in range(4):
        outcomes += triggered(a.ask({"op": "ingest", "messages": [message(f"a{i}")]}))
        outcomes += triggered(b.ask({"op": "ingest", "messages": [message(f"b{i}", dm=True)]}))
    assert outcomes == [["ada"]] * 3 + [[]] * 5
    refusals = [e.data["reason"] for e in events(url, "TriggerRejected")]
    assert refusals == ["quota:messages"] * 5
    assert len(events(url, "ModelReplied")) == 3
    log = PostgresLog.open(url, projections=projections())
    try:
        for projection in projections():
            assert log.rebuild_and_compare(projection) == []
    finally:
        log.close()


def test_a_user_rate_limit_holds_when_the_user_talks_through_two_processes(processes, url):
    a, b = processes(ada("{rate: {messages: 2, per: 1h, scope: user}}"),
                     ada("{rate: {messages: 2, per: 1h, scope: user}}"))
    outcomes = []
    for i in range(3):
        outcomes += triggered(a.ask({"op": "ingest", "messages": [message(f"a{i}")]}))
        outcomes += triggered(b.ask({"op": "ingest", "messages": [message(f"b{i}", dm=True)]}))
    assert outcomes == [["ada"]] * 2 + [[]] * 4
    refused = events(url, "TriggerRejected")
    assert [e.data["reason"] for e in refused] == ["rate_limited:user"] * 4
    assert all(0 < e.data["retry_after_s"] <= 3600 for e in refused)
    # another user has a bucket of their own
    assert triggered(b.ask({"op": "ingest", "messages": [message("x", author="u2")]})) == [
        ["ada"]]
    log = PostgresLog.open(url, projections=projections())
    try:
        assert len(log.rows("rate_buckets")) == 2
        for projection in projections():
            assert log.rebuild_and_compare(projection) == []
    finally:
        log.close()


@pytest.mark.parametrize(("limits", "extra"), [
    ("{quota: {messages: 5, scope: user}}", ""),
    ("{rate: {messages: 5, per: 1h, scope: user}}", ""),
    # each reply holds context.max_tokens + the same again (no max_tokens): 100 tokens
    ("{quota: {tokens: 300, scope: user}}", "context: {max_tokens: 50}\n"),
])
def test_two_processes_admitting_one_user_at_once_cannot_overshoot(processes, url, limits,
                                                                    extra):
    persona = [{"id": "ada", "extra": f"limits: {limits}\n{extra}"}]
    a, b = processes(persona, persona)
    at = time.time() + 1.0
    for process, name in ((a, "a"), (b, "b")):
        process.send({"op": "ingest", "at": at,
                      "messages": [message(f"{name}{i}", dm=name == "b") for i in range(12)]})
    answers = [a.answer(), b.answer()]
    # the two processes really were admitting at the same time
    assert max(x["started"] for x in answers) < min(x["admitted"] for x in answers)
    accepted = sum(len(t) for answer in answers for t in triggered(answer))
    assert accepted + len([w for answer in answers for w in rejected(answer)]) == 24
    assert len(events(url, "PersonaTriggered")) == accepted
    if "tokens" in limits:
        used = [e.data["usage"]["total_tokens"] for e in events(url, "ModelReplied")]
        assert used and max(used) <= 100  # each reply within its hold, so the bound holds:
        assert sum(used) < 300 + max(used)  # over the quota by less than one reply
    else:
        assert accepted == 5


def test_a_context_cache_in_one_process_sees_another_process_append(processes):
    a, b = processes(ada("{}"), ada("{}"))
    stream = "conv:test:shared"
    a.ask({"op": "append", "stream": stream, "message_id": "1", "text": "first"})
    assert a.ask({"op": "recent", "stream": stream})["ids"] == ["msg:test:1"]  # cached now
    b.ask({"op": "append", "stream": stream, "message_id": "2", "text": "second"})
    # A's next commit (a trigger, before any prompt; here in another conversation, so the
    # cached entry is not dropped by it) finds that B appended: the entry is checked
    a.ask({"op": "append", "stream": "conv:test:other", "message_id": "x", "text": "x"})
    assert a.ask({"op": "recent", "stream": stream})["ids"] == ["msg:test:1", "msg:test:2"]
    a.ask({"op": "append", "stream": stream, "message_id": "3", "text": "third"})
    b.ask({"op": "append", "stream": stream, "message_id": "4", "text": "fourth"})
    a.ask({"op": "append", "stream": stream, "message_id": "5", "text": "fifth"})
    assert a.ask({"op": "recent", "stream": stream})["ids"] == [
        "msg:test:1", "msg:test:2", "msg:test:3", "msg:test:4", "msg:test:5"]


class _CountedReads:
    """A store that counts the reads of conversation streams."""

    def __init__(self, store: eventstore.EventStore) -> None:
        self._store = store
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def read_stream(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return await self._store.read_stream(*args, **kwargs)

    async def read_stream_tail(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return await self._store.read_stream_tail(*args, **kwargs)


async def test_a_cached_conversation_is_not_read_again_while_no_other_writer_appends_to_it(
        url):
    ours = await eventstore.open_store(url, projections=projections())
    other = await eventstore.open_store(url, projections=projections())
    try:
        counted = _CountedReads(ours)
        history = ConversationHistory(counted)  # type: ignore[arg-type]
        stream = "conv:test:cached"

        async def say(store: Any, stream_id: str, message_id: str) -> None:
            event = MessageReceived(platform="test", message_id=message_id, channel_id="c",
                                    author_id="u", author_name="U", text=message_id)
            if store is history:
                await history.append(stream_id, event.new_event(f"msg:{message_id}"))
            else:
                await store.append(stream_id, event.new_event(f"msg:{message_id}"))

        await say(history, stream, "1")
        await history.recent(stream, 5)
        assert counted.reads == 1  # read from the log once
        await say(history, stream, "2")
        await say(history, "conv:test:elsewhere", "3")
        assert [e.event_id for e in await history.recent(stream, 5)] == ["msg:1", "msg:2"]
        assert counted.reads == 1  # only our own commits since: the entry has them all
        await say(other, stream, "4")
        await say(history, "conv:test:elsewhere", "5")  # finds the other writer's commit
        assert [e.event_id for e in await history.recent(stream, 5)] == [
            "msg:1", "msg:2", "msg:4"]
        assert counted.reads == 2  # checked against the log once...
        assert len(await history.recent(stream, 5)) == 3
        assert counted.reads == 2  # ...and not again while nobody else appends to it
        await say(other, "conv:test:theirs", "6")  # another conversation: not ours
        await say(history, "conv:test:elsewhere", "7")
        assert len(await history.recent(stream, 5)) == 3
        assert counted.reads == 2
    finally:
        await ours.close()
        await other.close()


def test_the_same_message_ingested_by_two_processes_at_once_is_answered_once(processes, url):
    both = [{"id": "ada"}, {"id": "bob"}]
    a, b = processes(both, both)
    at = time.time() + 1.0
    same = [message(i, text="@ada @bob hi") for i in range(10)]
    a.send({"op": "ingest", "at": at, "messages": same})
    b.send({"op": "ingest", "at": at, "messages": same})
    answers = [a.answer(), b.answer()]
    expected = sorted(f"{p}:m{i}" for i in range(10) for p in ("ada", "bob"))
    # one reply job per trigger in all (not one per process), and one delivery
    assert sorted(job for answer in answers for job in answer["jobs"]) == expected
    delivered = sorted(f"{p}:{m}" for answer in answers for p, m in answer["delivered"])
    assert delivered == expected
    assert len(events(url, "ModelReplied")) == 20
    assert len(events(url, "PersonaTriggered")) == 20


def test_a_second_delivery_to_a_process_that_would_decide_otherwise_is_a_no_op(processes, url):
    # B knows bob, A does not (a reload B has seen): B's second delivery of A's message
    # takes no decision again, so nobody answers that message twice or late
    a, b = processes([{"id": "ada"}], [{"id": "ada"}, {"id": "bob"}])
    first = a.ask({"op": "ingest", "messages": [message(1, text="@ada @bob hi")]})
    assert triggered(first) == [["ada"]] and first["jobs"] == ["ada:m1"]
    second = b.ask({"op": "ingest", "messages": [message(1, text="@ada @bob hi")]})
    assert second["results"][0]["duplicate"] is True
    assert triggered(second) == [[]] and second["jobs"] == [] and second["delivered"] == []
    assert [e.data["persona_id"] for e in events(url, "PersonaTriggered", "TriggerRejected")] \
        == ["ada"]
    assert [e.data["persona_id"] for e in events(url, "ModelReplied")] == ["ada"]


async def test_the_quota_cache_hears_of_another_process_reply_and_drops_what_it_held(url):
    """The ledger's cache is dropped as other processes' replies are heard of (LISTEN/
    NOTIFY, then a read by position), also after its listening connection was cut."""
    store = await eventstore.open_store(url, projections=projections())
    ledger = QuotaLedger(store)
    follower = asyncio.ensure_future(ledger.follow())
    other = PostgresLog.open(url, projections=projections())  # another process's connection
    key = ("ada", "user", "u1")
    try:
        for _ in range(500):
            if ledger.following:
                break
            await asyncio.sleep(0.01)
        assert (await ledger.usage([key]))[key] == QuotaUsage()  # cached from now on

        async def replied(i: int) -> QuotaUsage:
            event = ModelReplied(platform="test", message_id=f"m{i}", persona_id="ada",
                                 persona_version="v", provider="p", model="m", text="hi",
                                 author_id="u1", usage={"total_tokens": 7},
                                 scope_keys={"user": "u1"})
            await asyncio.to_thread(other.append, "conv:test:c", [event.new_event(f"r{i}")])
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                used = (await ledger.usage([key]))[key]
                if used.messages > i:
                    return used
                await asyncio.sleep(0.02)
            return used

        assert await replied(0) == QuotaUsage(tokens=7, messages=1)
        with pgserver.admin() as conn:  # cut the listening connection: the follower reconnects
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()")
        assert await replied(1) == QuotaUsage(tokens=14, messages=2)
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        other.close()
        await store.close()
