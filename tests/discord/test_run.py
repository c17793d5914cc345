"""``personae run`` as a real process: start-up errors in one sentence, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import disnake

from core.adapters.discord.adapter import invite_url
from tests.fakes.discord import DiscordEmulator
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI

from .conftest import open_store

PERSONA = """id: ada
name: Ada
model: {provider: fake, name: fake-model}
prompt:
  system: You are Ada.
"""


def write_config(folder: Path, api_base_url: str, model_url: str = "http://127.0.0.1:9/v1"
                 ) -> Path:
    (folder / "personas").mkdir()
    (folder / "personas" / "ada.yaml").write_text(PERSONA)
    config = folder / "config.yaml"
    config.write_text(
        "database: {path: log.db, synchronous: normal}\n"
        "personas: {dir: personas}\n"
        f"discord: {{api_base_url: '{api_base_url}', token_env: TEST_DISCORD_TOKEN}}\n"
        f"providers:\n  fake: {{base_url: '{model_url}', timeout: 10s}}\n"
        "limits: {shutdown_deadline: 10s}\n"
        "logging: {level: info}\n")
    return config


def env(token: str | None) -> dict[str, str]:
    found = {k: v for k, v in os.environ.items() if k != "TEST_DISCORD_TOKEN"}
    if token is not None:
        found["TEST_DISCORD_TOKEN"] = token
    return found


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition still false"
        await asyncio.sleep(0.01)


async def personae(config: Path, *args: str, token: str | None
                   ) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from core.cli import main; main()", "--config", str(config),
        *args, env=env(token), cwd=config.parent, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)


async def finish(process: asyncio.subprocess.Process, timeout: float = 20.0  # noqa: ASYNC109
                 ) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_refused_message_content_intent_is_one_sentence_and_a_clean_exit(
        tmp_path: Path) -> None:
    async with DiscordEmulator(enabled_privileged_intents=0) as emu:
        emu.add_guild("Test Guild")
        config = write_config(tmp_path, emu.api_base_url)
        code, out, err = await finish(await personae(config, "run", token=emu.token))
        assert emu.gateway_connections[-1].close_code == 4014

    assert code == 2
    assert "Traceback" not in err + out
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert lines == [
        "error: Discord refused the Message Content intent: switch it on in the Developer "
        "Portal > your application > Bot > Privileged Gateway Intents > Message Content "
        "Intent, then run `personae run` again."]


async def test_missing_and_rejected_tokens_say_what_to_do(tmp_path: Path) -> None:
    async with DiscordEmulator() as emu:
        config = write_config(tmp_path, emu.api_base_url)
        missing = await finish(await personae(config, "run", token=None))
        rejected = await finish(await personae(config, "run", token="not-the-token"))
        assert emu.identify_count == 0

    code, out, err = missing
    assert code == 2 and "Traceback" not in err
    assert "TEST_DISCORD_TOKEN" in err and "Reset Token" in err
    code, out, err = rejected
    assert code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: Discord rejected the token in TEST_DISCORD_TOKEN: copy a fresh one from the "
        "Developer Portal > your application > Bot > Reset Token."]
    assert "not-the-token" not in out + err


async def test_sigterm_lets_the_reply_in_flight_finish_then_exits_cleanly(
        emu: DiscordEmulator, server: Server, tmp_path: Path) -> None:
    async with FakeOpenAI(latency_s=1.0) as fake:
        config = write_config(tmp_path, emu.api_base_url, fake.base_url)
        process = await personae(config, "run", token=emu.token)
        try:
            await emu.wait_for_command("ask", timeout=20)
            asked = await emu.user_says(server.alice, server.general, "are you there?",
                                        mentions=[emu.bot_user])
            await until(lambda: fake.in_flight == 1)
            process.send_signal(signal.SIGTERM)
            code, out, err = await finish(process)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    assert code == 0, err
    assert "Traceback" not in err + out
    replies = [m for m in emu.messages_in(server.general) if m.id > asked.id]
    assert [m.author.username for m in replies] == ["Ada"]
    assert replies[0].content.endswith("to: are you there?")
    invite_prefix = invite_url(emu.application_id).split("?")[0]
    invite = next(w for w in err.split() if w.startswith(invite_prefix))
    assert f"client_id={emu.application_id}&" in invite
    granted = disnake.Permissions(int(invite.rsplit("permissions=", 1)[1]))
    assert granted.manage_webhooks and granted.send_messages and granted.read_message_history
    assert granted.create_public_threads and granted.send_messages_in_threads
    assert not granted.administrator and not granted.mention_everyone
    assert not emu.hub.connected
    check = await finish(await personae(config, "db", "check", token=None))
    assert check[0] == 0, check
    store = await open_store(tmp_path / "log.db")
    try:
        kinds = [e.type for e in await store.read_all()]
    finally:
        await store.close()
    assert kinds.count("ReplyDelivered") == 1
    assert "ModelFailed" not in kinds
    assert kinds[-1] == "GatewayDisconnected"
