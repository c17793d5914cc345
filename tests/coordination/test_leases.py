"""Shard leases and the IDENTIFY gate over PostgreSQL, between several coordinators
(as several processes would hold them), with short lease times."""

from __future__ import annotations

import time

import pytest

from core.coordination import CoordinationError, PostgresCoordinator, plan_problems
from core.coordination.leases import IDENTIFY_INTERVAL_S
from eventstore import open_log
from eventstore.postgres.target import PostgresTarget


def coordinator(url: str, *, static: bool, count: int = 4, ttl: float = 0.6,
                name: str = "") -> PostgresCoordinator:
    open_log(url).close()  # leases live beside a log
    return PostgresCoordinator(PostgresTarget.parse(url), shard_count=count, static=static,
                               ttl_s=ttl, owner=name or None)


def test_a_static_process_gets_its_free_shards_and_no_one_else_s(pg_url: str) -> None:
    a = coordinator(pg_url, static=True, name="a")
    b = coordinator(pg_url, static=True, name="b")
    assert a.claim([0, 1]) == [0, 1]
    assert b.claim([1, 2, 3]) == [2, 3]        # 1 is a's, live
    assert b.renew() == [2, 3]
    holders = [(lease.owner, lease.shard_id, lease.shard_count) for lease in a.leases()]
    assert holders == [("a", 0, 4), ("a", 1, 4), ("b", 2, 4), ("b", 3, 4)]
    assert plan_problems(4, holders) == []


def test_a_standby_takes_the_shards_of_a_process_that_stopped_renewing(pg_url: str) -> None:
    dead = coordinator(pg_url, static=True, name="dead")
    standby = coordinator(pg_url, static=False, name="standby")
    assert dead.claim([0, 1, 2, 3]) == [0, 1, 2, 3]
    assert standby.claim(None) == []
    started = time.monotonic()
    while not standby.claim(None):
        time.sleep(0.05)
    waited = time.monotonic() - started
    assert standby.renew() == [0, 1, 2, 3]
    assert 0.4 < waited < 1.5              # the lease time (0.6 s), not before
    assert dead.renew() == []              # the late owner learns it lost them


def test_a_static_process_asks_a_standby_for_its_shards_back(pg_url: str) -> None:
    standby = coordinator(pg_url, static=False, name="standby")
    assert standby.claim(None) == [0, 1, 2, 3]
    owner = coordinator(pg_url, static=True, name="owner")
    assert owner.claim([2, 3]) == []
    assert standby.handback() == [2, 3]
    standby.release([2, 3])
    assert standby.renew() == [0, 1]
    assert standby.claim(None) == [0, 1]   # what was asked back stays for its asker
    assert owner.claim([2, 3]) == [2, 3]


def test_a_different_shard_count_is_refused_while_others_run(pg_url: str) -> None:
    coordinator(pg_url, static=True, name="a").claim([0])
    with pytest.raises(CoordinationError, match=r"shard_count 4.*8"):
        coordinator(pg_url, static=True, count=8, name="b").claim([5])


def test_release_lets_another_process_take_the_shards_at_once(pg_url: str) -> None:
    a = coordinator(pg_url, static=True, ttl=30, name="a")
    b = coordinator(pg_url, static=False, ttl=30, name="b")
    a.claim([0, 1, 2, 3])
    a.release()
    assert b.claim(None) == [0, 1, 2, 3]


def test_one_identify_per_bucket_per_interval_across_processes(pg_url: str) -> None:
    a = coordinator(pg_url, static=True, name="a")
    b = coordinator(pg_url, static=True, name="b")
    assert a.identify_wait(0, max_concurrency=2) == 0.0
    assert b.identify_wait(1, max_concurrency=2) == 0.0      # bucket 1: free
    wait = b.identify_wait(2, max_concurrency=2)             # bucket 0: a's, just now
    assert IDENTIFY_INTERVAL_S - 1 < wait <= IDENTIFY_INTERVAL_S
    assert a.identify_wait(0, max_concurrency=2) > 0         # a's own next one waits too


def test_plan_problems_name_gaps_overlaps_and_counts() -> None:
    problems = plan_problems(6, [("a", 0, 6), ("a", 1, 6), ("b", 1, 6), ("c", 4, 6),
                                 ("d", 0, 8)])
    assert [(p.kind, p.shards) for p in problems] == [
        ("count", ()), ("gap", (2, 3, 5)), ("overlap", (1,))]
    assert problems[1].detail == "no live process runs shard(s) 2-3,5"


def test_no_leases_where_there_is_no_log(pg_url: str) -> None:
    with pytest.raises(CoordinationError, match="there is no event log at postgresql://"):
        PostgresCoordinator(PostgresTarget.parse(pg_url), shard_count=2, static=True)
