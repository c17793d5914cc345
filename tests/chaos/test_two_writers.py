"""Two bots on one SQLite log: the second ``personae run`` (or ``chat``) is refused with
a sentence naming the first (pid, host, since when); the reading tools still work
meanwhile; a bot killed with -9 leaves no stale lock for the next start."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from .harness import TOKEN_ENV, ChaosRig, personae_command


async def personae(rig: ChaosRig, *args: str, stdin: bytes = b"") -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *personae_command(rig.config), *args, cwd=rig.config.parent,
        env={**os.environ, TOKEN_ENV: rig.emu.token}, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(process.communicate(stdin), 30)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"`personae {' '.join(args)}` kept running") from None
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def test_a_second_writer_is_refused_by_name_and_a_killed_one_leaves_no_lock(
        tmp_path: Path) -> None:
    async with ChaosRig.open(tmp_path, conversations=1) as rig:
        await rig.bot.start()
        pid = rig.bot.pid
        await rig.until_connected()
        first = await rig.say(rig.conversations[0])
        await asyncio.wait_for(first.answered.wait(), 15)

        run_code, run_out = await personae(rig, "run")
        chat_code, chat_out = await personae(rig, "chat", "ada", "--offline", stdin=b"hi\n")
        events_code, events_out = await personae(rig, "events", "--limit", "3")

        await rig.bot.kill()
        await rig.bot.start()  # the OS let go of the dead bot's lock
        await rig.until_connected()
        again = await rig.say(rig.conversations[0])
        await asyncio.wait_for(again.answered.wait(), 15)
        assert await rig.bot.stop() == 0
        verdict = rig.verdict()

    for code, out in ((run_code, run_out), (chat_code, chat_out)):
        assert code == 2, out
        assert "another personae process is writing the event log" in out
        assert f"pid {pid} on " in out
        assert "since" in out and "Traceback" not in out
    assert events_code == 0 and "MessageReceived" in events_out
    assert verdict.duplicated == [] and verdict.lost == []
