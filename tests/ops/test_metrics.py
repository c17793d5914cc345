"""The /metrics endpoint scraped after a short run of the whole bot against the Discord
emulator and the fake OpenAI server: the series are there and their values add up."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.discord import DiscordEmulator, Message
from tests.fakes.openai_server import FakeOpenAI

from .bot import ObservedBot, observed_bot, persona


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(scrape: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in scrape.items()
               if n == name and all((k, val) in ls for k, val in labels.items()))


async def until_recorded(bot: ObservedBot, event_id: str) -> None:
    """Until the bot has recorded the event ``event_id`` (the emulator only sends)."""
    async with asyncio.timeout(5):
        async for event in bot.store.follow():
            if event.event_id == event_id:
                return


async def reply_after(bot: ObservedBot, message: Message) -> Message:
    return await bot.emu.wait_for_message(
        lambda m: m.id > message.id and m.channel_id == message.channel_id
        and (m.webhook_id is not None or m.author.id == bot.emu.bot_user.id)
        and "Slow down" not in m.content)


async def test_scrape_after_a_short_run(emu: DiscordEmulator, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    guild = emu.add_guild("Test Guild")
    alice, bob = emu.add_user("alice"), emu.add_user("bob")
    emu.add_member(guild, alice)
    emu.add_member(guild, bob)
    general = emu.add_text_channel(guild, "general")
    ada = persona("ada", "limits: {rate: {capacity: 2, per: 60s, scope: user}}\n")
    caplog.set_level(logging.INFO, logger="personae.replies")
    async with FakeOpenAI() as fake, observed_bot(emu, tmp_path, [ada], fake) as bot:
        sent = []
        for user, text in [(alice, "first"), (alice, "second"), (bob, "third")]:
            sent.append(await emu.user_says(user, general, text, mentions=[emu.bot_user]))
            await reply_after(bot, sent[-1])
        refused = await emu.user_says(alice, general, "fourth", mentions=[emu.bot_user])
        chatter = await emu.user_says(bob, general, "no mention, no trigger")
        await until_recorded(bot, f"trigger:discord:{refused.id}:ada")
        await until_recorded(bot, f"msg:discord:{chatter.id}")
        await bot.dispatcher.wait_idle()
        last = await bot.store.last_position()
        await bot.ops.recorder.wait_for(last)
        status, text = await bot.get("/metrics")
        log_events = await bot.store.read_all()

    assert status == 200
    scrape = samples(text)
    users_messages = len(sent) + 2
    assert total(scrape, "personae_messages_received_total", platform="discord") == \
        users_messages == sum(e.type == "MessageReceived" for e in log_events)
    assert total(scrape, "personae_triggers_total", persona="ada", reason="mention") == 3
    assert total(scrape, "personae_trigger_refusals_total", persona="ada",
                 reason="rate_limited:user") == 1
    assert total(scrape, "personae_model_replies_total", persona="ada", provider="fake") == 3
    assert total(scrape, "personae_replies_delivered_total", persona="ada") == 3
    assert total(scrape, "personae_model_latency_seconds_count", persona="ada",
                 provider="fake") == 3 == len(fake.requests)
    latency_sum = total(scrape, "personae_model_latency_seconds_sum", persona="ada")
    assert 0 < latency_sum < 30
    assert total(scrape, "personae_model_time_to_first_token_seconds_count",
                 provider="fake", model="fake-model") == 3
    assert total(scrape, "personae_model_tokens_total", direction="prompt") > 0
    assert total(scrape, "personae_model_tokens_total", direction="completion") > 0
    assert total(scrape, "personae_model_retries_total") == 0
    assert total(scrape, "personae_model_failures_total") == 0
    appends = total(scrape, "personae_eventlog_append_seconds_count")
    assert appends >= users_messages + 3  # each message, each reply, each delivery...
    assert 0 < total(scrape, "personae_eventlog_append_seconds_sum") < appends
    assert total(scrape, "personae_gateway_connected") == 1
    assert total(scrape, "personae_reply_queue_depth") == 0
    assert total(scrape, "personae_replies_in_flight") == 0

    ids = {str(x) for x in (alice.id, bob.id, general.id, guild.id, emu.bot_user.id,
                            refused.id, chatter.id, *(m.id for m in sent))}
    label_values = {v for (_, labels) in scrape for _, v in labels}
    assert not label_values & ids
    assert not any(i in text for i in ids)

    lines = [r for r in caplog.records if r.name == "personae.replies"]
    assert len(lines) == 3
    fields = [r.fields for r in lines]  # type: ignore[attr-defined]
    assert {f["outcome"] for f in fields} == {"delivered"}
    assert {f["persona"] for f in fields} == {"ada"}
    assert {f["conversation"] for f in fields} == {f"conv:discord:{general.id}"}
    assert all(f["latency_s"] > 0 and f["completion_tokens"] > 0 and f["prompt_tokens"] > 0
               for f in fields)


async def test_a_failed_reply_is_counted_by_error_class_with_its_retries(
        emu: DiscordEmulator, tmp_path: Path) -> None:
    from tests.fakes.openai_server import Fault

    guild = emu.add_guild("Test Guild")
    alice = emu.add_user("alice")
    emu.add_member(guild, alice)
    general = emu.add_text_channel(guild, "general")
    async with FakeOpenAI() as fake, observed_bot(emu, tmp_path, [persona()], fake) as bot:
        fake.script(Fault.server_error(503), Fault.http_error(401, "invalid_api_key"))
        await emu.user_says(alice, general, "hello", mentions=[emu.bot_user])
        await emu.wait_until(lambda: len(fake.requests) == 2)
        await bot.dispatcher.wait_idle()
        await bot.ops.recorder.wait_for(await bot.store.last_position())
        _, text = await bot.get("/metrics")
    scrape = samples(text)
    assert total(scrape, "personae_model_failures_total", persona="ada", provider="fake",
                 error_class="authentication") == 1
    assert total(scrape, "personae_model_retries_total", persona="ada") == 1
    assert total(scrape, "personae_model_replies_total") == 0
