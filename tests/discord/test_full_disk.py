"""A full disk under the event log: on a real 2 MB filesystem (tmpfs). While appends
fail, messages wait (bounded; those past the bound are read back from their channel
later), and once space returns every one is answered, once, without a restart; the
write-ahead log is checkpointed so the freed space is not eaten again."""

from __future__ import annotations

from pathlib import Path

from core.adapters.discord import DiscordAdapterSettings
from tests.disks import DISK_BYTES, fill, no_room, small_disk
from tests.emulator.conftest import eventually
from tests.fakes.discord import DiscordEmulator
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI

from .conftest import persona, running_bot


async def test_a_full_disk_holds_messages_back_and_answers_them_once_space_returns(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    ada = persona("ada", extra="triggers: {keywords: [ada]}\n")
    settings = DiscordAdapterSettings(backlog_limit=3)
    with small_disk(tmp_path / "disk") as disk:
        async with running_bot(emu, disk / "log.db", [ada], fake_openai,
                               settings=settings) as bot:
            before = await emu.user_says(server.alice, server.general, "ada, before")
            await bot.reply_to(before)
            await bot.dispatcher.wait_idle()
            filler = fill(disk)
            assert no_room(disk)
            waiting = [await emu.user_says(server.alice if i % 2 else server.bob,
                                           server.general, f"ada, while full {i}")
                       for i in range(6)]
            # six messages, three kept: the rest are to be read back from the channel
            problem = await eventually(lambda: _overflowed(bot.adapter.intake_problem()))
            assert bot.ours_in(server.general)[-1].id < waiting[0].id  # nothing answered
            filler.unlink()  # space returns
            await emu.wait_until(lambda: len(bot.ours_in(server.general)) == 7, timeout=30)
            await eventually(lambda: bot.adapter.intake_problem() is None)
            await bot.dispatcher.wait_idle()
            wal = (disk / "log.db-wal").stat().st_size
            # and it goes on working: more than the WAL alone would have room for
            later = [await emu.user_says(server.alice, server.general, f"ada, later {i}")
                     for i in range(20)]
            await emu.wait_until(lambda: len(bot.ours_in(server.general)) == 27, timeout=40)
            triggered = [e.data["message_id"] for e in await bot.events("PersonaTriggered")]

    assert "wait for the event log" in problem and "is full" in problem
    asked = [before, *waiting, *later]
    assert sorted(triggered) == sorted(str(m.id) for m in asked)  # each once
    answered = [r.content.rsplit("to: ", 1)[1] for r in bot.ours_in(server.general)]
    assert sorted(answered) == sorted(m.content for m in asked)
    assert wal < DISK_BYTES // 2  # checkpointed after the disk was full


def _overflowed(problem: str | None) -> str | None:
    return problem if problem is not None and "read back" in problem else None


async def test_edits_wait_with_the_messages_and_a_command_says_why_it_cannot_run(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    from .test_commands import answer_of

    ada = persona("ada", extra="triggers: {keywords: [ada]}\n")
    with small_disk(tmp_path / "disk") as disk:
        async with running_bot(emu, disk / "log.db", [ada], fake_openai) as bot:
            await emu.wait_for_command("ask")
            first = await emu.user_says(server.alice, server.general, "ada, remember 41")
            await bot.reply_to(first)
            await bot.dispatcher.wait_idle()
            filler = fill(disk)
            await emu.user_edits(first, "ada, remember 42")
            asked = await emu.user_invokes("ask", {"persona": "ada", "prompt": "hi"},
                                           server.general, server.bob)
            refused = await answer_of(emu, asked)
            await eventually(bot.adapter.intake_problem)
            filler.unlink()
            await eventually(lambda: bot.adapter.intake_problem() is None, timeout=20)
            later = await emu.user_says(server.alice, server.general, "ada, which number?")
            await bot.reply_to(later, timeout=10)

    assert "can't take that in right now" in refused.content
    prompt = [m["content"] for m in fake_openai.requests[-1].messages[1:]]
    assert "ada, remember 42" in prompt and "ada, remember 41" not in prompt
