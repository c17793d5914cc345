"""Several real ``personae run`` processes, each running some Discord shards, against one
emulator, one fake model server and one PostgreSQL schema."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from core.ops.stacks import DUMP_SIGNAL
from tests.fakes.discord import Channel, DiscordEmulator, Guild, Message, User

PERSONA = """id: ada
name: Ada
model: {provider: fake, name: fake-model}
prompt:
  system: You are Ada.
triggers: {mention: true, dm: true}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(folder: Path, *, api_base_url: str, model_url: str, database_url: str
                 ) -> Path:
    (folder / "personas").mkdir(exist_ok=True)
    (folder / "personas" / "ada.yaml").write_text(PERSONA)
    config = folder / "config.yaml"
    config.write_text(
        f"database: {{url: '{database_url}'}}\n"
        "personas: {dir: personas}\n"
        f"discord: {{api_base_url: '{api_base_url}', token_env: TEST_DISCORD_TOKEN, "
        "catch_up_window: 10m}\n"
        f"providers:\n  fake: {{base_url: '{model_url}', timeout: 10s}}\n"
        "limits: {shutdown_deadline: 5s}\n"
        "logging: {level: info}\n")
    return config


@dataclass
class Bot:
    """One ``personae run`` process; its stderr goes to a file (read it when a test fails)."""

    name: str
    process: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9: no shutdown, no lease released."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)

    def dump_stacks(self) -> None:
        """Ask the process to write what each of its threads and tasks awaits to its log."""
        if self.process.returncode is None:
            self.process.send_signal(DUMP_SIGNAL)

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
        return await self.process.wait()


async def start_bot(config: Path, name: str, *args: str, token: str) -> Bot:
    log = config.parent / f"{name}.log"  # (a file: a pipe nobody reads would fill up)
    env = {**os.environ, "TEST_DISCORD_TOKEN": token}
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from core.cli import main; main()", "--config", str(config),
            "run", *args, env=env, cwd=config.parent, stdout=out, stderr=out)
    return Bot(name, process, log)


def guilds_on_every_shard(emu: DiscordEmulator, shard_count: int, user: User
                          ) -> dict[int, tuple[Guild, Channel]]:
    """One guild per shard (guild ids are snowflakes: new ones until each shard has one),
    each with #general and ``user`` as a member."""
    found: dict[int, tuple[Guild, Channel]] = {}
    while len(found) < shard_count:
        guild = emu.add_guild(f"guild {len(emu.world.guilds)}")
        shard = (guild.id >> 22) % shard_count
        if shard not in found:
            emu.add_member(guild, user)
            found[shard] = (guild, emu.add_text_channel(guild, "general"))
    return found


def replies_to(emu: DiscordEmulator, asked: Message) -> list[Message]:
    """The bot's messages in the channel answering ``asked`` (the fake model quotes it)."""
    text = asked.content.split(">", 1)[-1].strip()
    return [m for m in emu.messages_in(emu.world.channels[asked.channel_id])
            if (m.webhook_id is not None or m.author.id == emu.bot_user.id)
            and m.content.endswith(f"to: {text}")]


async def until(condition: Callable[[], object], timeout: float, what: str,  # noqa: ASYNC109
                bots: Iterable[Bot] = ()) -> float:
    """Wait for ``condition``; returns the seconds it took. On timeout the bots' logs are
    in the failure, ending with what each bot's threads and tasks were waiting on."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            before = {b.name: len(b.output()) for b in bots}
            for bot in bots:
                bot.dump_stacks()
            await asyncio.sleep(1.0)  # the dumps are written by each bot's loop
            logs = "\n".join(f"--- {b.name}\n{b.output()[:before[b.name]][-3000:]}\n"
                             f"--- {b.name}: stacks\n{b.output()[before[b.name]:]}"
                             for b in bots)
            raise AssertionError(f"{what}: not within {timeout} s\n{logs}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started
