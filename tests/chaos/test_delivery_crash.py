"""kill -9 in the middle of a delivery, with the crash put exactly where it hurts (the
emulator holds the request): after a restart each reply has exactly its own messages,
every part once, in order; recovery never takes another reply's message for its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path

import pytest

from core.adapters.discord.chunking import split_message
from tests.fakes.discord import Message

from .harness import SEND_ROUTE, WEBHOOK_ROUTE, BotSettings, ChaosRig

PARAGRAPH = "This sentence is part of a long answer that needs several messages. " * 27


def long_reply() -> str:
    return "\n\n".join(f"Part {i}: {PARAGRAPH}" for i in range(4))


def delivered_ids(config: Path) -> dict[str, list[str]]:
    """ReplyDelivered per answered message id, from the bot's log (bot stopped)."""
    with contextlib.closing(sqlite3.connect(f"file:{config.parent / 'log.db'}?mode=ro",
                                            uri=True)) as connection:
        rows = connection.execute(
            "SELECT data FROM events WHERE type = 'ReplyDelivered'").fetchall()
    found = {}
    for (data,) in rows:
        event = json.loads(data)
        found[event["message_id"]] = event["delivered_ids"]
    return found


def ours(rig: ChaosRig, channel_id: int) -> list[Message]:
    return [m for m in rig.emu.world.messages_in(channel_id) if rig.watcher.is_ours(m)]


async def crash_while_held(rig: ChaosRig, stall) -> None:
    """kill -9 once the held request arrived; then let it go (its effect as planned)."""
    await asyncio.wait_for(stall.arrived.wait(), 30)
    await rig.bot.kill()
    stall.release(effect=stall.after_effect)


@pytest.mark.parametrize("webhook", [True, False], ids=["webhook", "bot"])
@pytest.mark.parametrize("in_flight_posted", [True, False],
                         ids=["part-2-reached-discord", "part-2-never-did"])
async def test_a_reply_of_four_messages_killed_at_its_second_gets_exactly_the_missing_parts(
        tmp_path: Path, webhook: bool, in_flight_posted: bool) -> None:
    async with ChaosRig.open(tmp_path, conversations=1,
                             settings=BotSettings(webhook=webhook)) as rig:
        rig.fake.answer("long one", long_reply())
        (conversation,) = rig.conversations
        await rig.bot.start()
        await rig.until_connected()
        stall = rig.emu.stall(WEBHOOK_ROUTE if webhook else SEND_ROUTE,
                              after_effect=in_flight_posted, skip=1)
        asked = await rig.emu.user_says(conversation.user, conversation.channel,
                                        "ada, the long one please")
        await crash_while_held(rig, stall)
        before = [m.content for m in ours(rig, conversation.channel.id)]
        await rig.bot.start()
        await rig.until_connected()
        await rig.emu.wait_until(lambda: len(ours(rig, conversation.channel.id)) >= 4, 30)
        await rig.settle(10, quiet_s=1.5)
        assert await rig.bot.stop() == 0
        posted = ours(rig, conversation.channel.id)

    parts = split_message(long_reply()) if webhook else [
        "**Ada**\n" + p for p in split_message(long_reply(), 2000 - len("**Ada**\n"))]
    assert len(parts) == 4
    assert len(before) == (2 if in_flight_posted else 1)  # the crash fell where intended
    assert [m.content for m in posted] == parts  # each part once, in order
    assert delivered_ids(rig.config)[str(asked.id)] == [str(m.id) for m in posted]
    assert rig.bot.unhandled_errors() == []


@pytest.mark.parametrize("webhook", [True, False], ids=["webhook", "bot"])
async def test_two_people_answered_the_same_words_each_get_their_own_message_after_a_crash(
        tmp_path: Path, webhook: bool) -> None:
    async with ChaosRig.open(tmp_path, conversations=1, latency_s=0.3,
                             settings=BotSettings(webhook=webhook)) as rig:
        rig.fake.answer("is it", "Yes.")
        (conversation,) = rig.conversations
        bob = rig.emu.add_user("bob")
        rig.emu.add_member(rig.emu.world.guilds[conversation.channel.guild_id], bob)
        await rig.bot.start()
        await rig.until_connected()
        stall = rig.emu.stall(WEBHOOK_ROUTE if webhook else SEND_ROUTE, skip=1)
        first = await rig.emu.user_says(conversation.user, conversation.channel,
                                        "ada, is it true?")
        second = await rig.emu.user_says(bob, conversation.channel, "ada, is it true?")
        await crash_while_held(rig, stall)  # the second "Yes." never reached Discord
        await rig.bot.start()
        await rig.until_connected()
        await rig.emu.wait_until(lambda: len(ours(rig, conversation.channel.id)) >= 2, 30)
        await rig.settle(5)
        assert await rig.bot.stop() == 0
        answers = ours(rig, conversation.channel.id)

    yes = "Yes." if webhook else "**Ada**\nYes."
    assert [m.content for m in answers] == [yes, yes]
    delivered = delivered_ids(rig.config)
    assert delivered[str(first.id)] == [str(answers[0].id)]
    assert delivered[str(second.id)] == [str(answers[1].id)]  # not the first one's
    if not webhook:
        assert [m.reference_id for m in answers] == [first.id, second.id]
    assert rig.bot.unhandled_errors() == []
