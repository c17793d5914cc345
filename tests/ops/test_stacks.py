"""``kill -USR1`` on a running bot writes what each thread and task waits on, and the bot
goes on answering."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.discord import DiscordEmulator
from tests.fakes.openai_server import FakeOpenAI
from tests.scaleout.harness import replies_to, start_bot, until, write_config


async def test_usr1_writes_every_thread_and_task_and_the_bot_goes_on(tmp_path: Path) -> None:
    async with DiscordEmulator() as emu, FakeOpenAI() as fake:
        config = write_config(tmp_path, api_base_url=emu.api_base_url, model_url=fake.base_url,
                              database_url=f"sqlite:///{tmp_path / 'log.db'}")
        alice = emu.add_user("alice")
        guild = emu.add_guild("guild")
        emu.add_member(guild, alice)
        channel = emu.add_text_channel(guild, "general")
        bot = await start_bot(config, "bot", token=emu.token)
        try:
            await until(lambda: emu.gateway_connections, 30, "the bot connected", [bot])
            first = await emu.user_says(alice, channel, "hello", mentions=[emu.bot_user])
            await until(lambda: replies_to(emu, first), 30, "the first reply", [bot])
            bot.dump_stacks()
            await until(lambda: "asyncio task(s)" in bot.output(), 10, "the tasks' stacks",
                        [bot])
            after = await emu.user_says(alice, channel, "still there?",
                                        mentions=[emu.bot_user])
            await until(lambda: replies_to(emu, after), 30, "a reply after the dump", [bot])
            log = bot.output()
        finally:
            code = await bot.stop()
    assert code == 0
    threads = log[log.index("(most recent call first)") - 40:log.index("asyncio task(s)")]
    assert "Current thread" in threads or "Thread 0x" in threads
    tasks = log[log.index("asyncio task(s)"):]
    # a task's chain reaches past its outermost frame: serve awaits the gateway's run
    assert "core/cli/run.py" in tasks and "in serve" in tasks
    assert tasks.count("task '") >= 2
