"""``personae doctor`` over PostgreSQL: the server, the log's schema version and the
shard plan (gaps, overlaps, counts) as the live leases show it."""

from __future__ import annotations

from pathlib import Path

from core.coordination import PostgresCoordinator
from core.ops.doctor import diagnose
from eventstore import open_log
from eventstore.postgres import SCHEMA_VERSION
from eventstore.postgres.target import PostgresTarget


def write_config(folder: Path, url: str, discord: str = "") -> Path:
    (folder / "personas").mkdir(exist_ok=True)
    config = folder / "config.yaml"
    config.write_text(f"database: {{url: '{url}'}}\npersonas: {{dir: personas}}\n"
                      f"discord: {{api_base_url: 'http://127.0.0.1:9/api/v10'{discord}}}\n")
    return config


def holder(url: str, name: str, count: int = 4) -> PostgresCoordinator:
    open_log(url).close()
    return PostgresCoordinator(PostgresTarget.parse(url), shard_count=count, static=True,
                               ttl_s=60, owner=name)


async def test_the_server_and_the_log_s_schema_version(tmp_path: Path, pg_url: str) -> None:
    before = await diagnose(write_config(tmp_path, pg_url), environ={})
    open_log(pg_url).close()
    after = await diagnose(write_config(tmp_path, pg_url), environ={})
    assert before.of("database").status == "ok"
    assert "no log there yet" in before.of("database").message
    assert after.of("database").status == "ok"
    assert f"log schema {SCHEMA_VERSION}" in after.of("database").message
    assert after.of("shards").message == "not sharded: one process runs every guild"


async def test_a_server_that_does_not_answer_fails(tmp_path: Path) -> None:
    report = await diagnose(write_config(
        tmp_path, "postgresql://postgres@127.0.0.1:9/test?schema=x"), environ={})
    assert report.of("database").status == "fail"
    assert report.of("database").message.startswith(
        "cannot connect to postgresql://postgres@127.0.0.1:9/test?schema=x")


async def test_the_shard_plan_names_gaps_and_overlaps(tmp_path: Path, pg_url: str) -> None:
    holder(pg_url, "a").claim([0, 1])
    gap = await diagnose(write_config(tmp_path, pg_url, ", shards: '2', shard_count: 4"),
                         environ={})
    filled = await diagnose(write_config(tmp_path, pg_url, ", shards: '2-3', shard_count: 4"),
                            environ={})
    overlap = await diagnose(write_config(tmp_path, pg_url, ", shards: '1-3', shard_count: 4"),
                             environ={})
    assert gap.of("shards").status == "warn"
    assert "no live process runs shard(s) 3" in gap.of("shards").message
    assert "1 live process(es) run shard(s) 0-1 of 4; this config runs 2" in gap.of(
        "shards").message
    assert filled.of("shards").status == "ok"
    itself = await diagnose(write_config(tmp_path, pg_url, ", shards: '0-1', shard_count: 4"),
                            environ={})      # beside the process running this config
    assert itself.of("shards").status == "warn"
    assert "overlap" not in itself.of("shards").message
    assert "several" not in itself.of("shards").message
    assert overlap.of("shards").status == "fail"
    assert "shard(s) 1 are run by several processes" in overlap.of("shards").message


async def test_processes_with_another_shard_count_fail(tmp_path: Path, pg_url: str) -> None:
    holder(pg_url, "a", count=8).claim(list(range(8)))
    report = await diagnose(write_config(tmp_path, pg_url, ", shards: '0-3', shard_count: 4"),
                            environ={})
    assert report.of("shards").status == "fail"
    assert "a run(s) with shard_count 8" in report.of("shards").message
