"""A full run of ``personae run`` (the real process, the Discord emulator, the fake OpenAI
server) with a bot token and an API key in its environment: not one captured log line,
in text or in JSON, holds either of them, even though a careless dependency logs every
request's headers (``careless/sitecustomize.py``). The same run shows ``personae run``'s
observability: /readyz, /metrics and the one log line per reply."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.fakes.discord import DiscordEmulator
from tests.fakes.openai_server import FakeOpenAI

from .bot import http_get
from .conftest import GOOD_PERSONA, bot_token, closed_port

KEY = "sk-proj-redactme0123456789ABCDEFabcdef"
CARELESS = Path(__file__).parent / "careless"


def write_config(folder: Path, api_base_url: str, model_url: str, metrics_port: int) -> Path:
    (folder / "personas").mkdir()
    (folder / "personas" / "ada.yaml").write_text(GOOD_PERSONA)
    config = folder / "config.yaml"
    config.write_text(
        "database: {path: log.db, synchronous: normal}\n"
        "personas: {dir: personas}\n"
        f"discord: {{api_base_url: '{api_base_url}', token_env: TEST_DISCORD_TOKEN}}\n"
        f"providers:\n  fake: {{base_url: '{model_url}', api_key_env: TEST_MODEL_KEY}}\n"
        "limits: {shutdown_deadline: 5s}\n"
        f"metrics: {{port: {metrics_port}}}\n")
    return config


async def until_scraped(port: int, line: str) -> str:
    """The first scrape of the running bot's /metrics that holds ``line``."""
    async with asyncio.timeout(10):
        while True:
            status, text = await http_get(f"http://127.0.0.1:{port}/metrics")
            if status == 200 and line in text:
                return text
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_no_log_line_of_a_full_run_holds_the_token_or_the_key(
        tmp_path: Path, log_format: str) -> None:
    token = bot_token()
    async with DiscordEmulator(token=token, bot_name="Personae") as emu, FakeOpenAI() as fake:
        guild = emu.add_guild("Test Guild")
        alice = emu.add_user("alice")
        emu.add_member(guild, alice)
        general = emu.add_text_channel(guild, "general")
        port = closed_port()
        config = write_config(tmp_path, emu.api_base_url, fake.base_url, port)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "core.cli", "--config", str(config),
            "--log-format", log_format, "--log-level", "debug", "run",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                 "TEST_DISCORD_TOKEN": token, "TEST_MODEL_KEY": KEY,
                 "PYTHONPATH": str(CARELESS)},
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            await emu.wait_for_command("ask", timeout=30)
            asked = await emu.user_says(alice, general, "hello there", mentions=[emu.bot_user])
            reply = await emu.wait_for_message(lambda m: m.id > asked.id, timeout=15)
            ready = await http_get(f"http://127.0.0.1:{port}/readyz")
            metrics = await until_scraped(port, 'personae_replies_delivered_total{persona="ada"} 1.0')
            process.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(process.communicate(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    assert process.returncode == 0, err.decode()[-2000:]
    assert reply.content.endswith("hello there")
    # the run was observed: ready while connected, the reply counted and logged once
    assert ready == (200, "ready\n")
    assert 'personae_model_replies_total{persona="ada",provider="fake"} 1.0' in metrics
    assert str(alice.id) not in metrics and str(general.id) not in metrics
    reply_lines = [line for line in err.decode().splitlines() if "personae.replies" in line]
    assert len(reply_lines) == 1
    if log_format == "json":
        fields = json.loads(reply_lines[0])
        assert fields["persona"] == "ada" and fields["outcome"] == "delivered"
        assert fields["conversation"] == f"conv:discord:{general.id}"
        assert fields["completion_tokens"] > 0 and fields["latency_s"] > 0
    else:
        assert "persona=ada" in reply_lines[0] and "outcome=delivered" in reply_lines[0]
    assert fake.requests[0].body["messages"]  # the model was called with the key
    lines = (out + err).decode().splitlines()
    # the headers were logged (so the secrets did reach the logging system) ...
    assert any("careless.dependency" in line and "Authorization" in line and "Bot " in line
               for line in lines)
    assert any("careless.dependency" in line and "Bearer" in line for line in lines)
    if log_format == "json":
        assert all(isinstance(json.loads(line), dict) for line in err.decode().splitlines())
    # ... and not one line holds either secret, whole or in part
    leaks = [line for line in lines if token in line or KEY in line
             or token.split(".")[0] + "." + token.split(".")[1] in line or KEY[8:] in line]
    assert leaks == []
