"""End to end over PostgreSQL: several ``personae run`` processes, each a range of shards,
one emulator, one log. Each conversation is answered once, by the process running its
shard; when one is killed (-9) a standby takes its shards over within a bounded time and
answers what was said meanwhile, once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from core.coordination import PostgresCoordinator
from core.coordination.leases import LEASE_TTL_S, RENEW_INTERVAL_S
from eventstore import open_log
from eventstore.postgres.target import PostgresTarget
from tests.eventstore import pgserver
from tests.fakes.discord import DiscordEmulator
from tests.fakes.openai_server import FakeOpenAI

from .harness import (
    PERSONA,
    Bot,
    free_port,
    guilds_on_every_shard,
    replies_to,
    start_bot,
    until,
    write_config,
)

SHARDS = 4
TAKEOVER_BOUND_S = 10.0
"""The goal: a killed process's shards are connected again by another within this."""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[DiscordEmulator, FakeOpenAI, Path, str]]:
    url = pgserver.new_schema_url()
    async with DiscordEmulator(max_concurrency=16) as emu, FakeOpenAI() as fake:
        config = write_config(tmp_path, api_base_url=emu.api_base_url, model_url=fake.base_url,
                              database_url=url)
        yield emu, fake, config, url
    pgserver.drop_test_schemas()


async def stop_all(bots: list[Bot]) -> list[int]:
    return [await bot.stop() for bot in bots]


def event_types(url: str) -> list[str]:
    log = open_log(url, create=False, read_only=True)
    try:
        return [e.type for e in log.read_all()]
    finally:
        log.close()


async def metrics_of(port: int) -> tuple[str, int]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            return text, response.status


def series(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one series in Prometheus text."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            found[key[len(name):]] = float(value)
    return found


async def test_each_guild_is_answered_once_by_the_process_running_its_shard(world) -> None:
    emu, fake, config, url = world
    alice = emu.add_user("alice")
    guilds = guilds_on_every_shard(emu, SHARDS, alice)
    ports = {"low": free_port(), "high": free_port()}
    bots = [await start_bot(config, name, "--shards", shards, "--shard-count", str(SHARDS),
                            "--metrics-port", str(ports[name]), token=emu.token)
            for name, shards in (("low", "0-1"), ("high", "2-3"))]
    try:
        await until(lambda: all(emu.shard_connected(s) for s in range(SHARDS)), 45,
                    "every shard connected", bots)
        asked = [await emu.user_says(alice, channel, f"hello from shard {shard}",
                                     mentions=[emu.bot_user])
                 for shard, (_, channel) in sorted(guilds.items())]
        await until(lambda: all(replies_to(emu, m) for m in asked), 30, "every reply", bots)
        await asyncio.sleep(0.5)  # a second answer would come within this
        answers = [len(replies_to(emu, m)) for m in asked]
        leases = PostgresCoordinator(PostgresTarget.parse(url), shard_count=SHARDS,
                                     static=True).leases()
        scraped = {name: await metrics_of(port) for name, port in ports.items()}
    finally:
        codes = await stop_all(bots)
    assert codes == [0, 0], [bot.output()[-2000:] for bot in bots]
    released = PostgresCoordinator(PostgresTarget.parse(url), shard_count=SHARDS,
                                   static=True).leases()
    assert [lease.remaining_s < 0 for lease in released] == [True] * SHARDS  # at SIGTERM
    for name, mine in (("low", (0, 1)), ("high", (2, 3))):
        text, ready = scraped[name]
        assert ready == 200, text
        assert series(text, "personae_replies_delivered_total") == {'{persona="ada"}': 2.0}
        assert series(text, "personae_messages_received_total") == {'{platform="discord"}': 2.0}
        assert series(text, "personae_shard_connected") == {
            f'{{shard="{shard}"}}': 1.0 for shard in mine}
        [(labels, one)] = series(text, "personae_process").items()
        assert one == 1.0 and f'shards="{mine[0]}-{mine[1]}/{SHARDS}"' in labels
    assert answers == [1] * SHARDS
    assert sorted((c.shard for c in emu.gateway_connections if c.identified_at),
                  key=str) == [(s, SHARDS) for s in range(SHARDS)]
    assert not emu.refused_identifies
    owners = {lease.shard_id: lease.owner for lease in leases}
    assert owners[0] == owners[1] != owners[2] == owners[3]
    assert len(fake.requests) == SHARDS
    types = event_types(url)
    assert types.count("MessageReceived") == SHARDS
    assert types.count("ReplyDelivered") == SHARDS


async def test_a_killed_process_s_shards_are_taken_over_and_what_was_missed_answered_once(
        world) -> None:
    emu, _fake, config, url = world
    alice = emu.add_user("alice")
    guilds = guilds_on_every_shard(emu, SHARDS, alice)
    dm = emu.dm_channel(alice)
    args = ("--shard-count", str(SHARDS))
    low = await start_bot(config, "low", "--shards", "0-1", *args, token=emu.token)
    bots = [low, await start_bot(config, "high", "--shards", "2-3", *args, token=emu.token),
            await start_bot(config, "standby", "--shards", "auto", *args, token=emu.token)]
    try:
        await until(lambda: all(emu.shard_connected(s) for s in range(SHARDS)), 45,
                    "every shard connected", bots)
        first = [await emu.user_says(alice, channel, f"hello {shard}", mentions=[emu.bot_user])
                 for shard, (_, channel) in sorted(guilds.items())]
        first.append(await emu.user_says(alice, dm, "hello in private"))
        await until(lambda: all(replies_to(emu, m) for m in first), 30, "first replies", bots)

        low.kill()
        killed = time.monotonic()
        await until(lambda: not emu.shard_connected(0), 5, "the socket closed")
        missed = [await emu.user_says(alice, guilds[shard][1], f"still there, {shard}?",
                                      mentions=[emu.bot_user]) for shard in (0, 1)]
        missed.append(await emu.user_says(alice, dm, "anyone?"))
        await until(lambda: emu.shard_connected(0) and emu.shard_connected(1),
                    TAKEOVER_BOUND_S + 5, "shards 0 and 1 taken over", bots)
        takeover_s = time.monotonic() - killed
        await until(lambda: all(replies_to(emu, m) for m in missed), 30, "missed ones", bots)
        live = await emu.user_says(alice, guilds[0][1], "and now?", mentions=[emu.bot_user])
        await until(lambda: replies_to(emu, live), 15, "a live reply after the takeover", bots)
        leases = {lease.shard_id: lease.owner for lease in PostgresCoordinator(
            PostgresTarget.parse(url), shard_count=SHARDS, static=True).leases()
            if lease.remaining_s > 0}

        # restarted (systemd would), the killed process asks for its shards back
        taken = {c.session_id for c in emu.gateway_connections if c.identified_at}
        bots.append(await start_bot(config, "low-again", "--shards", "0-1", *args,
                                    token=emu.token))
        await until(lambda: {c.shard for c in emu.gateway_connections
                             if c.identified_at and c.session_id not in taken} == {
                                 (0, SHARDS), (1, SHARDS)}
                    and emu.shard_connected(0) and emu.shard_connected(1),
                    30, "shards 0 and 1 handed back", bots)
        back = await emu.user_says(alice, guilds[1][1], "back?", mentions=[emu.bot_user])
        await until(lambda: replies_to(emu, back), 15, "a reply after the handback", bots)
        await asyncio.sleep(1.0)  # room for any second answer
        answers = [len(replies_to(emu, m)) for m in [*first, *missed, live, back]]
        standby_log = bots[2].output()
    finally:
        await stop_all(bots)
    assert answers == [1] * len(answers)
    # lease time + one renewal interval to notice, then connect and READY
    assert takeover_s <= TAKEOVER_BOUND_S, takeover_s
    assert takeover_s >= LEASE_TTL_S - RENEW_INTERVAL_S, "taken before the lease expired"
    assert leases[0] == leases[1] != leases[2] == leases[3]
    assert "took the lease of shard 0" in standby_log
    assert "handing shard 0 back to the process configured for it" in standby_log
    assert not emu.refused_identifies
    types = event_types(url)
    assert types.count("ReplyDelivered") == len(answers)


async def test_identifies_of_two_processes_keep_to_one_per_bucket_per_five_seconds(
        tmp_path: Path) -> None:
    url = pgserver.new_schema_url()
    async with DiscordEmulator(max_concurrency=1) as emu, FakeOpenAI() as fake:
        config = write_config(tmp_path, api_base_url=emu.api_base_url, model_url=fake.base_url,
                              database_url=url)
        alice = emu.add_user("alice")
        guilds_on_every_shard(emu, 2, alice)
        bots = [await start_bot(config, f"p{shard}", "--shards", str(shard), "--shard-count",
                                "2", token=emu.token) for shard in (0, 1)]
        try:
            await until(lambda: emu.shard_connected(0) and emu.shard_connected(1), 45,
                        "both shards connected", bots)
            logs = [bot.output() for bot in bots]
        finally:
            await stop_all(bots)
    pgserver.drop_test_schemas()
    identified = sorted(c.identified_at for c in emu.gateway_connections
                        if c.identified_at is not None)
    assert len(identified) == 2
    assert not emu.refused_identifies
    assert identified[1] - identified[0] >= 5.0
    assert all("Discord session starts: " in text and " of 1000 left" in text for text in logs)
    assert any("after waiting" in text for text in logs)


async def test_a_process_whose_shards_exceed_the_session_starts_left_says_so(world) -> None:
    emu, _fake, config, _url = world
    emu.set_session_starts_remaining(1)
    bot = await start_bot(config, "low", "--shards", "0-1", "--shard-count", "2",
                          token=emu.token)
    code = await asyncio.wait_for(bot.process.wait(), 30)
    output = bot.output()
    assert code == 2, output
    assert "Traceback" not in output
    assert "error: Discord's daily limit of gateway logins is used up" in output
    assert emu.identify_count == 0


async def test_a_dispatch_both_processes_see_during_a_handover_is_answered_once(
        world) -> None:
    emu, _fake, config, url = world
    alice = emu.add_user("alice")
    guilds = guilds_on_every_shard(emu, SHARDS, alice)
    args = ("--shard-count", str(SHARDS))
    high = await start_bot(config, "high", "--shards", "2-3", *args, token=emu.token)
    bots = [await start_bot(config, "low", "--shards", "0-1", *args, token=emu.token), high,
            await start_bot(config, "standby", "--shards", "auto", *args, token=emu.token)]
    channel = guilds[2][1]
    try:
        await until(lambda: all(emu.shard_connected(s) for s in range(SHARDS)), 45,
                    "every shard connected", bots)
        first = await emu.user_says(alice, channel, "hello", mentions=[emu.bot_user])
        await until(lambda: replies_to(emu, first), 30, "the first reply", bots)
        sessions = {c.session_id for c in emu.gateway_connections if c.shard == (2, SHARDS)}
        high.pause()        # alive but silent: its socket stays open, its leases lapse
        await until(lambda: any(c.shard == (2, SHARDS) and c.identified_at
                                and c.session_id not in sessions
                                for c in emu.gateway_connections),
                    TAKEOVER_BOUND_S + 5, "the standby connected shard 2", bots)
        # both sessions of shard 2 get this dispatch: the paused one reads it on waking
        both = await emu.user_says(alice, channel, "who answers?", mentions=[emu.bot_user])
        await until(lambda: replies_to(emu, both), 30, "a reply from the standby", bots)
        high.resume()
        await until(lambda: "lost the lease of shard 2" in high.output(), 15,
                    "the woken process let go of shard 2", bots)
        await asyncio.sleep(1.5)  # room for the woken process to answer (it must not)
        answers = [len(replies_to(emu, m)) for m in (first, both)]
        high_log = high.output()
        seen_by = [sum(1 for _, event in c.events if event == "MESSAGE_CREATE")
                   for c in emu.gateway_connections if c.shard == (2, SHARDS)]
    finally:
        await stop_all(bots)
    assert answers == [1, 1]
    # the paused process's socket was sent the dispatch too (and its replies' echoes)
    assert len(seen_by) == 2 and min(seen_by) >= 2
    assert "lost the lease of shard 3" in high_log
    types = event_types(url)
    assert types.count("MessageReceived") >= 2
    assert types.count("PersonaTriggered") == 2


async def test_a_reply_posted_as_its_process_died_is_recorded_by_the_taker_not_posted_again(
        world) -> None:
    emu, _fake, config, url = world
    alice = emu.add_user("alice")
    guilds = guilds_on_every_shard(emu, SHARDS, alice)
    channel = guilds[0][1]
    args = ("--shard-count", str(SHARDS))
    low = await start_bot(config, "low", "--shards", "0-1", *args, token=emu.token)
    standby = await start_bot(config, "standby", "--shards", "auto", *args, token=emu.token)
    bots = [low, standby,
            await start_bot(config, "high", "--shards", "2-3", *args, token=emu.token)]
    try:
        await until(lambda: all(emu.shard_connected(s) for s in range(SHARDS)), 45,
                    "every shard connected", bots)
        first = await emu.user_says(alice, channel, "hello", mentions=[emu.bot_user])
        await until(lambda: replies_to(emu, first), 30, "the first reply", bots)
        # Discord posts the reply; the process dies before it hears so
        stall = emu.stall("POST /webhooks/{webhook_id}/{token}", after_effect=True)
        cut = await emu.user_says(alice, channel, "cut short?", mentions=[emu.bot_user])
        await asyncio.wait_for(stall.arrived.wait(), 30)
        low.kill()
        stall.release()
        await until(lambda: emu.shard_connected(0) and emu.shard_connected(1),
                    TAKEOVER_BOUND_S + 5, "shards 0 and 1 taken over", bots)
        await until(lambda: "1 re-delivered" in standby.output(), 20,
                    "the standby finished the open reply", bots)
        await asyncio.sleep(1.0)  # room for a second post (there must be none)
        answers = [len(replies_to(emu, m)) for m in (first, cut)]
    finally:
        await stop_all(bots)
    assert answers == [1, 1]
    types = event_types(url)
    assert types.count("ModelReplied") == 2
    assert types.count("ReplyDelivered") == 2


async def test_a_user_quota_holds_when_the_user_talks_on_two_shards_run_by_two_processes(
        world) -> None:
    emu, fake, config, url = world
    quota = 3
    (config.parent / "personas" / "ada.yaml").write_text(
        PERSONA + f"limits:\n  quota: {{messages: {quota}, scope: user, reset: '0 0 1 1 *'}}\n")
    alice = emu.add_user("alice")
    guilds = guilds_on_every_shard(emu, 2, alice)
    args = ("--shard-count", "2")
    bots = [await start_bot(config, "zero", "--shards", "0", *args, token=emu.token),
            await start_bot(config, "one", "--shards", "1", *args, token=emu.token)]
    try:
        await until(lambda: all(emu.shard_connected(s) for s in range(2)), 45,
                    "both shards connected", bots)
        asked = []
        for turn in range(2 * quota):  # alternating shards: each process sees half of them
            _, channel = guilds[turn % 2]
            said = await emu.user_says(alice, channel, f"question {turn}",
                                       mentions=[emu.bot_user])
            asked.append(said)
            # one at a time, so the count does not depend on which process's append is first
            await until(lambda said=said: _decided(url, said.id), 20, f"question {turn} decided", bots)
        await asyncio.sleep(0.5)  # a late answer would come within this
        answered = [len(replies_to(emu, m)) for m in asked]
    finally:
        codes = await stop_all(bots)
    assert codes == [0, 0], [bot.output()[-2000:] for bot in bots]
    # the quota is one count over both processes, not one per process (that gave 6)
    assert answered == [1] * quota + [0] * quota
    log = open_log(url, create=False, read_only=True)
    try:
        rejected = [e.data["reason"] for e in log.read_all() if e.type == "TriggerRejected"]
    finally:
        log.close()
    assert rejected == ["quota:messages"] * quota
    assert len(fake.requests) == quota


def _decided(url: str, message_id: int) -> bool:
    """The trigger decision about ``message_id`` is in the log and its reply finished."""
    log = open_log(url, create=False, read_only=True)
    try:
        mine = [e for e in log.read_all() if e.data.get("message_id") == str(message_id)]
    finally:
        log.close()
    types = {e.type for e in mine}
    return "TriggerRejected" in types or "ReplyDelivered" in types


async def test_a_second_unsharded_process_on_the_same_log_is_refused_naming_the_first(
        world) -> None:
    emu, fake, config, _url = world
    alice = emu.add_user("alice")
    (_, channel), = guilds_on_every_shard(emu, 1, alice).values()
    first = await start_bot(config, "first", token=emu.token)
    bots = [first]
    try:
        await until(lambda: emu.hub.connected and "running unsharded" in first.output(), 45,
                    "the first connected", bots)
        owner = first.output().split("running unsharded (this process: ", 1)[1].split(")")[0]
        second = await start_bot(config, "second", token=emu.token)
        bots.append(second)
        code = await asyncio.wait_for(second.process.wait(), 30)
        asked = await emu.user_says(alice, channel, "one answer?", mentions=[emu.bot_user])
        await until(lambda: replies_to(emu, asked), 20, "the first's reply", bots)
        await asyncio.sleep(1.0)  # a second answer would come within this
        answers = len(replies_to(emu, asked))
        alive = first.process.returncode is None
        identifies = emu.identify_count

        # stopped (its lease released), the bot starts again at once elsewhere
        assert await first.stop() == 0
        third = await start_bot(config, "third", token=emu.token)
        bots.append(third)
        await until(lambda: "running unsharded" in third.output(), 30, "the third took over",
                    bots)
        again = await emu.user_says(alice, channel, "and now?", mentions=[emu.bot_user])
        await until(lambda: replies_to(emu, again), 20, "the third's reply", bots)
    finally:
        await stop_all(bots)
    output = second.output()
    assert code == 2, output
    assert "Traceback" not in output, output
    [error] = [line for line in output.splitlines() if line.startswith("error: ")]
    assert f"error: {owner} already runs this bot on the event log" in error, error
    assert alive and answers == 1
    assert identifies == 1  # the second never connected to Discord
    assert "waiting up to" not in third.output()  # a released lease is free at once
    assert len(fake.requests) == 2


async def test_a_greeting_its_process_died_before_posting_is_posted_once_by_the_taker(
        world) -> None:
    emu, _fake, config, url = world
    (config.parent / "personas" / "ada.yaml").write_text(
        PERSONA.replace("  system: You are Ada.\n", "  system: You are Ada.\n"
                        "  greeting: Hello {user}, I am {persona}.\n"))
    alice = emu.add_user("alice")
    guilds = guilds_on_every_shard(emu, 2, alice)
    channel = guilds[0][1]
    args = ("--shard-count", "2")
    low = await start_bot(config, "low", "--shards", "0-1", *args, token=emu.token)
    standby = await start_bot(config, "standby", "--shards", "auto", *args, token=emu.token)
    bots = [low, standby]
    try:
        await until(lambda: emu.shard_connected(0) and emu.shard_connected(1), 45,
                    "both shards connected", bots)
        await emu.wait_for_command("greet", timeout=20)
        # the greeting is recorded, its post held; the process dies before it is posted
        stall = emu.stall("POST /webhooks/{webhook_id}/{token}")
        await emu.user_invokes("greet", {"persona": "ada"}, channel, alice)
        await asyncio.wait_for(stall.arrived.wait(), 30)
        low.kill()
        stall.release(effect=False)
        await until(lambda: emu.shard_connected(0) and emu.shard_connected(1),
                    TAKEOVER_BOUND_S + 5, "shards 0 and 1 taken over", bots)
        await until(lambda: any(m.content == "Hello alice, I am Ada."
                                for m in emu.messages_in(channel)), 20,
                    "the standby posted the greeting", bots)
        await asyncio.sleep(1.0)  # room for a second post (there must be none)
        greetings = [m for m in emu.messages_in(channel) if m.content.startswith("Hello ")]
    finally:
        await stop_all(bots)
    assert [m.content for m in greetings] == ["Hello alice, I am Ada."]
    types = event_types(url)
    assert types.count("PersonaGreeted") == 1
    assert types.count("GreetingDelivered") == 1
