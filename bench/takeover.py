"""Failover: how long after ``kill -9`` of one bot process its shards are running again
in another, and its missed messages answered.

    python bench/takeover.py [--rounds 5] [--url postgresql://postgres@127.0.0.1:5432/test]
                             [--json]

Each round: a fresh PostgreSQL schema, the Discord emulator and the fake model server in
this process, three real ``personae run`` processes (shards 0-1, 2-3 of 4, and a standby
with ``--shards auto``), one conversation per guild; then the first process is killed
with SIGKILL and a person writes in its guild at once. Measured from the kill, on this
process's monotonic clock:

- ``claimed_s``: the standby holds the killed process's leases (polled in PostgreSQL);
- ``connected_s``: both shards have a READY session again (the emulator's record);
- ``answered_s``: the message written right after the kill has its answer.

The bound is the lease time (5 s) + one renewal interval (1 s) to notice, then an
IDENTIFY (no wait: the dead process's buckets are idle) and READY; the answer adds the
catch-up of the shard's channels and the model call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.coordination import PostgresCoordinator
from eventstore.postgres.target import PostgresTarget
from tests.fakes.discord import DiscordEmulator
from tests.fakes.openai_server import FakeOpenAI
from tests.scaleout.harness import (
    guilds_on_every_shard,
    replies_to,
    start_bot,
    until,
    write_config,
)

SHARDS = 4


async def one_round(server_url: str, n: int) -> dict[str, float]:
    separator = "&" if "?" in server_url else "?"
    url = f"{server_url}{separator}schema=personae_bench_takeover_{n}_{int(time.time())}"
    with tempfile.TemporaryDirectory() as folder:
        async with DiscordEmulator(max_concurrency=16) as emu, FakeOpenAI() as fake:
            config = write_config(Path(folder), api_base_url=emu.api_base_url,
                                  model_url=fake.base_url, database_url=url)
            alice = emu.add_user("alice")
            guilds = guilds_on_every_shard(emu, SHARDS, alice)
            args = ("--shard-count", str(SHARDS))
            low = await start_bot(config, "low", "--shards", "0-1", *args, token=emu.token)
            bots = [low,
                    await start_bot(config, "high", "--shards", "2-3", *args, token=emu.token),
                    await start_bot(config, "standby", "--shards", "auto", *args,
                                    token=emu.token)]
            leases: PostgresCoordinator | None = None
            try:
                await until(lambda: all(emu.shard_connected(s) for s in range(SHARDS)), 60,
                            "every shard connected", bots)
                # (beside the log the bots made: a reader of the leases, never a holder)
                leases = PostgresCoordinator(PostgresTarget.parse(url), shard_count=SHARDS,
                                             static=True, owner="bench")
                first = [await emu.user_says(alice, channel, f"hello {shard}",
                                             mentions=[emu.bot_user])
                         for shard, (_, channel) in sorted(guilds.items())]
                await until(lambda: all(replies_to(emu, m) for m in first), 30, "replies",
                            bots)
                await asyncio.sleep(2.0)  # past the standby's start-up pause
                owner = {lease.shard_id: lease.owner for lease in leases.leases()}[0]
                low.kill()
                killed = time.monotonic()
                await until(lambda: not emu.shard_connected(0), 5, "the socket closed")
                missed = await emu.user_says(alice, guilds[0][1], "still there?",
                                             mentions=[emu.bot_user])

                def claimed() -> bool:
                    assert leases is not None
                    return any(lease.shard_id == 0 and lease.owner != owner
                               and lease.remaining_s > 0 for lease in leases.leases())
                await until(claimed, 30, "claimed", bots)
                claimed_s = time.monotonic() - killed
                await until(lambda: emu.shard_connected(0) and emu.shard_connected(1), 30,
                            "connected", bots)
                connected_s = time.monotonic() - killed
                await until(lambda: replies_to(emu, missed), 30, "answered", bots)
                answered_s = time.monotonic() - killed
            finally:
                if leases is not None:
                    leases.close()
                for bot in bots:
                    await bot.stop()
    admin = PostgresTarget.parse(server_url)
    with psycopg.connect(**admin.connect_kwargs(autocommit=True)) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{PostgresTarget.parse(url).schema}" CASCADE')
    return {"claimed_s": claimed_s, "connected_s": connected_s, "answered_s": answered_s}


async def run(server_url: str, rounds: int) -> dict[str, object]:
    results = [await one_round(server_url, n) for n in range(rounds)]
    for n, result in enumerate(results):
        print(f"round {n + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in result.items()),
              file=sys.stderr)
    return {"rounds": rounds, **{key: {
        "median": round(statistics.median(r[key] for r in results), 2),
        "max": round(max(r[key] for r in results), 2)} for key in results[0]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(argv)
    figures = asyncio.run(run(options.url, options.rounds))
    if options.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
