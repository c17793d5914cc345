"""Streamed replies (``delivery.stream_edits``) through kill -9 and SIGTERM: a preview
is a delivery. After kills under load no message is answered twice and no cut-off
preview is left; a SIGTERM during streams leaves each preview either finished or
visibly marked as cut, and the bot exits cleanly (no task error at shutdown)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from .harness import (
    FAILURE_NOTICE,
    NOTICES,
    TYPING_ROUTE,
    BotSettings,
    ChaosRig,
    Sent,
    personae_db_check,
)


def final_text(rig: ChaosRig, message_id: int) -> str:
    """A message's latest content, persona header removed."""
    content = rig.emu.message(message_id).content
    return content.split("**\n", 1)[1] if content.startswith("**") and "**\n" in content \
        else content


def cut_off(rig: ChaosRig, sent: Sent) -> bool:
    """An answer left showing part of a reply: neither the whole reply, nor a notice,
    nor marked as cut."""
    text = "".join(final_text(rig, m.id) for m in [*sent.answers, *sent.parts])
    return bool(sent.answers) and not (
        text.endswith(sent.message.content) or text in NOTICES or FAILURE_NOTICE in text)


async def test_kill_9_during_streamed_replies_leaves_no_double_answer_and_no_cut_preview(
        tmp_path: Path) -> None:
    settings = BotSettings(webhook=False, stream_edits=True)
    async with ChaosRig.open(tmp_path, conversations=16, latency_s=0.1,
                             settings=settings) as rig:
        rig.fake.tokens_per_second = 6  # each reply streams for a second or two
        draw = random.Random(11)
        await rig.bot.start()
        await rig.until_connected()
        load = asyncio.create_task(rig.drive(messages_each=4, answer_timeout_s=40,
                                             think_s=0.2))
        for _ in range(3):
            await asyncio.sleep(draw.uniform(1.0, 2.5))
            await rig.bot.kill()
            await asyncio.sleep(draw.uniform(0.0, 0.5))
            await rig.bot.start()
            await rig.until_connected()
        await load
        await rig.settle(40, quiet_s=2.5)  # previews are edited for a while after posting
        assert await rig.bot.stop() == 0
        verdict = rig.verdict()
        left_cut = [s.message.id for s in rig.sent if cut_off(rig, s)]
        streamed = sum(1 for r in rig.emu.requests
                       if r.route == "PATCH /channels/{channel_id}/messages/{message_id}")

    assert rig.bot.exit_codes[:3] == [-9, -9, -9]
    assert verdict.sent == 64 and streamed > 0
    assert verdict.duplicated == [] and verdict.lost == [] and verdict.unattributed == []
    assert left_cut == []
    assert rig.bot.unhandled_errors() == []
    code, out = await personae_db_check(rig.config)
    assert code == 0, out


async def test_sigterm_during_streams_marks_each_unfinished_preview_as_cut(
        tmp_path: Path) -> None:
    settings = BotSettings(webhook=True, stream_edits=True)
    async with ChaosRig.open(tmp_path, conversations=4, settings=settings) as rig:
        rig.fake.tokens_per_second = 1.0  # much slower than the 5 s shutdown deadline
        await rig.bot.start()
        await rig.until_connected()
        sent = [await rig.say(c) for c in rig.conversations]
        previews = await rig.emu.wait_until(
            lambda: [m for m in rig.emu.world.messages.values() if rig.watcher.is_ours(m)]
            if sum(1 for m in rig.emu.world.messages.values()
                   if rig.watcher.is_ours(m)) == 4 else None, timeout=20)
        assert await rig.bot.stop() == 0
        after_stop = [final_text(rig, m.id) for m in previews]
        await rig.bot.start()  # the cut replies are closed: nothing more is posted
        await rig.until_connected()
        await rig.settle(3)
        assert await rig.bot.stop() == 0
        ours = [m for m in rig.emu.world.messages.values() if rig.watcher.is_ours(m)]

    assert all(FAILURE_NOTICE in text and "…" in text for text in after_stop), after_stop
    assert len(ours) == 4 and len(sent) == 4  # no second message, no separate notice
    assert all(FAILURE_NOTICE in final_text(rig, m.id) for m in ours)
    assert "Task exception was never retrieved" not in rig.bot.logs()
    assert "Session is closed" not in rig.bot.logs()
    assert rig.bot.unhandled_errors() == []


async def test_sigterm_while_a_typing_request_is_on_the_wire_leaves_no_task_error(
        tmp_path: Path) -> None:
    async with ChaosRig.open(tmp_path, conversations=1, latency_s=30.0) as rig:
        await rig.bot.start()
        await rig.until_connected()
        held = rig.emu.stall(TYPING_ROUTE)
        await rig.say(rig.conversations[0])
        await asyncio.wait_for(held.arrived.wait(), 10)
        try:  # the bot shuts down while its typing request waits for an answer
            assert await rig.bot.stop() == 0
        finally:
            held.release()

    logs = rig.bot.logs()
    assert "Task exception was never retrieved" not in logs, logs
    assert "Session is closed" not in logs, logs
