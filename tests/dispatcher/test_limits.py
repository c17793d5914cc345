"""Rate limits (token buckets) and quotas (a projection of the log, reset on cron)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from core.dispatcher.projection import projections
from core.events import ModelReplied, QuotaReset
from core.limits.buckets import BucketKey, NoticeGate, RateLimiter, TokenBucket
from core.limits.quotas import QuotaLedger, QuotaProjection, QuotaUsage, read_usage
from core.limits.schedule import cron_trigger, latest_fire_time
from core.personas.model import LimitsSpec, QuotaSpec, RateLimitSpec
from tests.fakes.openai_server import Fault

from .conftest import close_harness, human, load_persona, make_harness, open_store, settle


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_token_bucket_arithmetic():
    bucket = TokenBucket(capacity=3, per_s=60, tokens=3, updated=0.0)
    assert [bucket.try_take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after(0.0) == pytest.approx(20.0)
    assert not bucket.try_take(19.9)
    assert bucket.try_take(20.0)
    assert bucket.tokens == pytest.approx(0.0)
    bucket.refill(1000.0)
    assert bucket.tokens == 3  # never above capacity


def test_rate_limiter_keeps_one_bucket_per_scope_key_and_gives_tokens_back():
    clock = Clock(0.0)
    limiter = RateLimiter(clock)
    alice, bob = BucketKey("ada", "user", "alice"), BucketKey("ada", "user", "bob")
    assert [limiter.take(alice, 2, 10).allowed for _ in range(3)] == [True, True, False]
    assert limiter.take(bob, 2, 10).allowed
    refused = limiter.take(alice, 2, 10)
    assert refused.retry_after_s == pytest.approx(5.0)
    limiter.give_back(alice)
    assert limiter.take(alice, 2, 10).allowed
    clock.now = 5.0
    assert limiter.tokens(alice) == pytest.approx(1.0)


def test_rate_limiter_forgets_full_buckets_when_it_grows():
    clock = Clock(0.0)
    limiter = RateLimiter(clock, max_idle=10)
    for i in range(10):
        limiter.take(BucketKey("ada", "user", str(i)), 1, 1)
    clock.now = 5.0
    limiter.take(BucketKey("ada", "user", "new"), 1, 1)
    assert len(limiter) == 1


def test_notice_gate_allows_one_notice_per_window():
    clock = Clock(0.0)
    gate = NoticeGate(clock)
    assert [gate.allow(("u1",), 60) for _ in range(3)] == [True, False, False]
    assert gate.allow(("u2",), 60)
    clock.now = 60.0
    assert gate.allow(("u1",), 60)


async def test_rate_limited_messages_are_rejected_events_with_one_notice_per_window(tmp_path):
    clock = Clock()
    ada = replace(load_persona("ada", provider="offline"),
                  limits=LimitsSpec(rate=RateLimitSpec(capacity=2, per_s=60, scope="user")))
    harness = await make_harness(tmp_path, [ada], None, clock=clock)
    try:
        results = [await harness.dispatcher.ingest(human("u1", "@ada hi")) for _ in range(6)]
        await harness.dispatcher.wait_idle()
        assert [bool(r.triggered) for r in results] == [True, True, False, False, False, False]
        rejected = await harness.events("TriggerRejected")
        assert [e.data["reason"] for e in rejected] == ["rate_limited:user"] * 4
        assert rejected[0].data["retry_after_s"] == pytest.approx(30.0)
        assert [e.data["notice_sent"] for e in rejected] == [True, False, False, False]
        assert [n.kind for n in harness.sink.notices] == ["rate_limited"]
        other = await harness.dispatcher.ingest(human("u2", "@ada hi"))
        assert other.triggered == ("ada",)  # another user has a bucket of their own
        clock.now += 60
        await harness.dispatcher.ingest(human("u1", "@ada hi"))
        await harness.dispatcher.ingest(human("u1", "@ada hi"))
        await harness.dispatcher.ingest(human("u1", "@ada hi"))
        await harness.dispatcher.wait_idle()
        assert [n.kind for n in harness.sink.notices] == ["rate_limited"] * 2
    finally:
        await close_harness(harness)


def quota_persona(**quota: object):
    return replace(load_persona("ada", provider="offline"),
                   limits=LimitsSpec(quota=QuotaSpec(**quota)))  # type: ignore[arg-type]


async def test_message_quota_arithmetic_and_status(tmp_path):
    clock = Clock(datetime(2026, 1, 1, 12, tzinfo=UTC).timestamp())
    harness = await make_harness(tmp_path, [quota_persona(messages=2, reset="0 0 * * *")], None,
                                 clock=clock)
    try:
        for _ in range(2):
            await settle(await harness.dispatcher.ingest(human("u1", "@ada hi")))
        status = await harness.dispatcher.quota_status("ada", human("u1"))
        assert (status.used.messages, status.messages_left) == (2, 0)
        assert status.next_reset == datetime(2026, 1, 2, tzinfo=UTC)
        refused = await harness.dispatcher.ingest(human("u1", "@ada hi"))
        assert refused.rejected == (("ada", "quota:messages"),)
        await harness.dispatcher.wait_idle()
        assert "2026-01-02 00:00" in harness.sink.notices[0].text
        assert (await harness.dispatcher.ingest(human("u2", "@ada hi"))).triggered == ("ada",)
    finally:
        await close_harness(harness)


async def test_token_quota_counts_reported_usage_and_survives_a_restart(tmp_path):
    clock = Clock(datetime(2026, 1, 1, 12, tzinfo=UTC).timestamp())
    ada = quota_persona(tokens=10_000, scope="channel")
    harness = await make_harness(tmp_path, [ada], None, clock=clock)
    await settle(await harness.dispatcher.ingest(human("u1", "@ada hi")))
    await settle(await harness.dispatcher.ingest(human("u2", "@ada hello")))
    before = await harness.dispatcher.quota_status("ada", human("u3"))
    replied = await harness.events("ModelReplied")
    assert before.used.tokens == sum(e.data["usage"]["total_tokens"] for e in replied) > 0
    assert before.tokens_left == 10_000 - before.used.tokens
    await close_harness(harness)

    store = await open_store(tmp_path / "log.db")
    harness = await make_harness(tmp_path, [replace(ada, limits=LimitsSpec(quota=replace(
        ada.limits.quota, tokens=before.used.tokens)))], None, clock=clock, store=store)
    try:
        after = await harness.dispatcher.quota_status("ada", human("u3"))
        assert after.used == before.used and after.tokens_left == 0
        refused = await harness.dispatcher.ingest(human("u3", "@ada hi"))
        assert refused.rejected == (("ada", "quota:tokens"),)
        assert await harness.store.rebuild_and_compare(QuotaProjection()) == []
    finally:
        await close_harness(harness)


async def test_a_reset_missed_while_down_runs_once_at_start_up(tmp_path):
    clock = Clock(datetime(2026, 1, 1, 12, tzinfo=UTC).timestamp())
    ada = quota_persona(messages=1)
    harness = await make_harness(tmp_path, [ada], None, clock=clock)
    await settle(await harness.dispatcher.ingest(human("u1", "@ada hi")))
    assert (await harness.dispatcher.ingest(human("u1", "@ada hi"))).rejected
    await close_harness(harness)

    clock.now = datetime(2026, 1, 4, 9, tzinfo=UTC).timestamp()  # three midnights later
    for _ in range(2):
        harness = await make_harness(tmp_path, [ada], None, clock=clock,
                                     store=await open_store(tmp_path / "log.db"))
        try:
            resets = await harness.events("QuotaReset")
            assert [(e.data["scheduled_for"], e.data["catch_up"]) for e in resets][-1] == (
                datetime(2026, 1, 4, tzinfo=UTC).timestamp(), True)
            status = await harness.dispatcher.quota_status("ada", human("u1"))
            assert status.used.messages == 0
        finally:
            await close_harness(harness)
    # first start recorded the initial window, the restart exactly one coalesced reset
    assert len(resets) == 2


async def test_a_scheduled_job_resets_the_window(tmp_path):
    fire = datetime.fromtimestamp(int(time.time()) + 2, UTC)  # a six-field cron: daily, to the second
    ada = quota_persona(messages=1, reset=f"{fire.second} {fire.minute} {fire.hour} * * *")
    harness = await make_harness(tmp_path, [ada], None, start=False)
    try:
        await harness.dispatcher.start(schedule_resets=True)
        initial = len(await harness.events("QuotaReset"))
        await settle(await harness.dispatcher.ingest(human("u1", "@ada one")))
        assert (await harness.dispatcher.ingest(human("u1", "@ada two"))).rejected == (
            ("ada", "quota:messages"),)
        assert time.time() < fire.timestamp(), "the set-up took too long to test the job"
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(await harness.events("QuotaReset")) > initial:
                break
        reset = (await harness.events("QuotaReset"))[-1]
        assert (reset.data["scheduled_for"], reset.data["catch_up"]) == (fire.timestamp(), False)
        status = await harness.dispatcher.quota_status("ada", human("u1"))
        assert status.used.messages == 0
        assert (await harness.dispatcher.ingest(human("u1", "@ada three"))).triggered == ("ada",)
    finally:
        await close_harness(harness)


@pytest.mark.parametrize(("cron", "now", "after", "expected"), [
    ("0 0 * * *", datetime(2026, 1, 4, 9, tzinfo=UTC), None, datetime(2026, 1, 4, tzinfo=UTC)),
    ("0 0 * * *", datetime(2026, 1, 4, 9, tzinfo=UTC), datetime(2026, 1, 4, tzinfo=UTC), None),
    ("0 0 * * *", datetime(2026, 1, 4, 9, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC),
     datetime(2026, 1, 4, tzinfo=UTC)),
    ("0 0 1 1 *", datetime(2026, 6, 1, tzinfo=UTC), None, datetime(2026, 1, 1, tzinfo=UTC)),
    ("*/5 * * * *", datetime(2026, 1, 1, 0, 12, 30, tzinfo=UTC), None,
     datetime(2026, 1, 1, 0, 10, tzinfo=UTC)),
])
def test_latest_fire_time(cron, now, after, expected):
    assert latest_fire_time(cron_trigger(cron), now, after) == expected


async def test_the_quota_ledger_cache_agrees_with_the_projection_under_concurrency(tmp_path):
    store = await open_store(tmp_path / "log.db")
    try:
        ledger = QuotaLedger(store)
        key = ("ada", "user", "u1")
        assert (await ledger.usage([key]))[key] == QuotaUsage()
        fresh = QuotaLedger(store)

        async def reply(i: int) -> None:
            event = ModelReplied(
                platform="test",
                message_id=f"m{i}",
                persona_id="ada",
                persona_version="v",
                provider="p",
                model="m",
                text="hi",
                author_id="u1",
                usage={"total_tokens": 10},
                scope_keys={"user": "u1"},
            )
            result = await store.append("conv:test:c1", event.new_event(f"reply:{i}"))
            for each in (ledger, fresh):
                each.observe_reply("ada", {"user": "u1"}, 10, result.positions[0])

        await asyncio.gather(*(reply(i) for i in range(60)),
                             *(fresh.usage([key]) for _ in range(60)))
        truth = await store.read(lambda log: read_usage(log, *key))
        assert truth == QuotaUsage(tokens=600, messages=60)
        assert (await ledger.usage([key]))[key] == truth
        assert (await fresh.usage([key]))[key] == truth
        reset = QuotaReset(persona_id="ada", scheduled_for=1.0, cron="0 0 * * *")
        await store.append("quota:ada", reset.new_event("quota-reset:ada:1"))
        ledger.observe_reset("ada")
        assert (await ledger.usage([key]))[key] == QuotaUsage()
    finally:
        await store.close()


async def test_replies_in_flight_hold_their_quota_so_a_burst_cannot_overshoot_it(tmp_path):
    harness = await make_harness(tmp_path, [quota_persona(messages=3)], None)
    try:
        results = await asyncio.gather(*(harness.dispatcher.ingest(human("u1", "@ada hi"))
                                         for _ in range(10)))
        await harness.dispatcher.wait_idle()
        assert sum(bool(r.triggered) for r in results) == 3
        assert len(await harness.events("ModelReplied")) == 3
        reasons = [e.data["reason"] for e in await harness.events("TriggerRejected")]
        assert reasons == ["quota:messages"] * 7
        for projection in projections():
            assert await harness.store.rebuild_and_compare(projection) == []
        status = await harness.dispatcher.quota_status("ada", human("u1"))
        assert status.used.messages == 3  # reservations became usage as the replies ended
        held = await harness.store.read(lambda log: log.rows("quota_held"))
        assert [(r["tokens"], r["messages"]) for r in held] == [(0, 0)]  # nothing in flight
        assert await harness.store.read(lambda log: log.rows("quota_holds")) == []
        reset = QuotaReset(persona_id="ada", scheduled_for=1.0, cron="0 0 * * *")
        await harness.store.append("quota:ada", reset.new_event("quota-reset:ada:1"))
        assert await harness.store.read(lambda log: log.rows("quota_held")) == []
    finally:
        await close_harness(harness)


async def test_a_failed_reply_gives_its_reservation_back(tmp_path, fake_openai):
    ada = replace(load_persona("ada"), limits=LimitsSpec(quota=QuotaSpec(messages=1)))
    harness = await make_harness(tmp_path, [ada], fake_openai)
    try:
        fake_openai.script(Fault.http_error(400, "invalid_request"))
        await settle(await harness.dispatcher.ingest(human("u1", "@ada hi")))
        assert len(await harness.events("ModelFailed")) == 1
        # the failed reply used nothing: the one message of the quota is still there
        assert (await harness.dispatcher.ingest(human("u1", "@ada again"))).triggered == ("ada",)
    finally:
        await close_harness(harness)


async def test_a_limit_another_dispatcher_used_up_is_refused_by_the_log_with_one_notice(tmp_path):
    """Two dispatchers over one log, each with its own buckets and quota cache (as two
    processes have): what one used, the other's append is refused, and the trigger is
    recorded as rejected, with the message, in a second append."""
    clock = Clock()
    ada = replace(load_persona("ada", provider="offline"), limits=LimitsSpec(
        rate=RateLimitSpec(capacity=2, per_s=60, scope="user"), quota=QuotaSpec(messages=3)))
    first = await make_harness(tmp_path, [ada], None, clock=clock)
    second = await make_harness(tmp_path, [ada], None, clock=clock, store=first.store)
    try:
        for harness in (first, second):  # each warms its own view of the quota
            await harness.dispatcher.quota_status("ada", human("u1"))
        await settle(await first.dispatcher.ingest(human("u1", "@ada one")))
        await settle(await first.dispatcher.ingest(human("u1", "@ada two")))
        # what either says is left is the log's bucket, not its own
        assert await second.dispatcher.rate_tokens("ada", human("u1")) == pytest.approx(0.0)
        assert await second.dispatcher.rate_tokens("ada", human("u2")) is None  # never used
        refused = await second.dispatcher.ingest(human("u1", "@ada three", message_id="m-3"))
        assert refused.rejected == (("ada", "rate_limited:user"),) and not refused.duplicate
        rejection = (await first.events("TriggerRejected"))[-1]
        assert rejection.data["retry_after_s"] == pytest.approx(30.0)
        assert rejection.data["notice_sent"] is True
        assert [e.event_id for e in await first.events("MessageReceived")][-1] == "msg:test:m-3"
        await second.dispatcher.wait_idle()
        assert [n.kind for n in second.sink.notices] == ["rate_limited"]
        clock.now += 60
        await settle(await second.dispatcher.ingest(human("u1", "@ada four")))
        quota = await first.dispatcher.ingest(human("u1", "@ada five"))
        assert quota.rejected == (("ada", "quota:messages"),)
        assert len(await first.events("ModelReplied")) == 3
        for projection in projections():
            assert await first.store.rebuild_and_compare(projection) == []
    finally:
        await second.dispatcher.shutdown(5)
        await second.gateway.aclose()
        await close_harness(first)
