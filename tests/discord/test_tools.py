"""Tools end to end: the fake OpenAI server scripts tool calls, the real gateway parses them
(streamed as fragments), the reply pipeline runs the bounded loop and records every call
and result, and the reply reaches the emulator; explain and rerun read the steps back."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from core.credentials import Secrets
from core.personas.loader import load_persona_text
from core.personas.model import Persona
from core.tools.toolbox import Toolbox
from tests.fakes.discord import DiscordEmulator
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI, Fault

from .conftest import PROVIDERS, Bot, running_bot

ROOT = Path(__file__).resolve().parents[2]
SECRET = "wx-5ecret-token-8812"
LORE = "lorebook:\n  - keys: [dragon]\n    content: Dragons here breathe frost.\n"


def persona(tools: str, extra: str = "") -> Persona:
    text = ("id: ada\nname: Ada\nmodel: {provider: fake, name: fake-model}\n"
            "prompt:\n  system: 'You are {persona}.'\n" + tools + extra)
    return load_persona_text(text, file="ada.yaml", defaults={}, known_providers=PROVIDERS)


def weather_tool(base_url: str) -> str:
    return (
        "tools:\n"
        "  entries:\n"
        "    - roll\n"
        "    - name: weather\n"
        "      description: The weather in a city.\n"
        "      parameters:\n"
        "        type: object\n"
        "        properties: {city: {type: string}}\n"
        "        required: [city]\n"
        "      http:\n"
        f"        url: '{base_url}/weather/{{city}}'\n"
        "        headers: {Authorization: 'Bearer ${WEATHER_TOKEN}'}\n"
        "        timeout: 5s\n")


@pytest.fixture
async def weather() -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A weather service on 127.0.0.1 that echoes the header it was sent (as careless
    services do), so a leak of the secret would show."""
    seen: list[web.Request] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"city": request.match_info["city"], "temp_c": 12,
                                  "echo": request.headers.get("Authorization")})

    app = web.Application()
    app.router.add_get("/weather/{city}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def _ask(bot: Bot, server: Server, text: str):  # type: ignore[no-untyped-def]
    asked = await bot.emu.user_says(server.alice, server.general, text,
                                    mentions=[bot.emu.bot_user])
    reply = await bot.reply_to(asked, timeout=10)
    await bot.dispatcher.wait_idle()
    return asked, reply


async def test_a_loop_of_two_rounds_with_a_failing_tool_ends_in_a_reply(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script(
        Fault.tool_calls(("roll", {"expression": "2d6"}), ("lore", {"query": "dragon"})),
        Fault.tool_calls(("now", {"timezone": "Mars/Olympus"}), ("roll", "{not json")))
    ada = persona("tools: [roll, now, lore]\n", LORE)
    async with running_bot(emu, tmp_path / "log.db", [ada], fake_openai,
                           toolbox=Toolbox(Secrets({}), rng=random.Random(7))) as bot:
        _, reply = await _ask(bot, server, "roll for the dragon")
        called = await bot.events("ToolCalled")
        results = await bot.events("ToolResult")
        (replied,) = await bot.events("ModelReplied")

    first, second, last = fake_openai.requests
    assert {t["function"]["name"] for t in first.body["tools"]} == {"roll", "now", "lore"}
    assert [m["role"] for m in second.messages[-3:]] == ["assistant", "tool", "tool"]
    assert [c["function"]["name"] for c in second.messages[-3]["tool_calls"]] == ["roll", "lore"]
    assert re.fullmatch(r"2d6: \[\d, \d\] = \d{1,2}", second.messages[-2]["content"])
    assert second.messages[-1]["content"] == "Dragons here breathe frost."
    failed = last.messages[-2:]
    assert failed[0]["content"].startswith("error: unknown time zone 'Mars/Olympus'")
    assert failed[1]["content"].startswith("error: the arguments are not JSON")
    assert reply.content == FakeOpenAI.reply_for(last.messages), "the reply came through"
    assert [(e.data["step"], e.data["index"], e.data["tool"]) for e in called] == [
        (1, 0, "roll"), (1, 1, "lore"), (2, 0, "now"), (2, 1, "roll")]
    assert [(e.data["ok"], e.data["error"]) for e in results] == [
        (True, None), (True, None), (False, "tool_error"), (False, "invalid_arguments")]
    assert all(e.data["duration_s"] >= 0 for e in results)
    assert (replied.data["model_calls"], replied.data["tools_called"]) == (3, 4)
    assert called[0].data["usage"]["total_tokens"] > 0
    assert replied.data["usage"]["total_tokens"] > sum(
        e.data["usage"].get("total_tokens", 0) for e in called), "every call is counted"


async def test_the_step_limit_makes_the_model_answer(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script(*[Fault.tool_calls(("roll", {"expression": "d20"}))] * 4)
    ada = persona("tools: {max_steps: 2, entries: [roll]}\n")
    async with running_bot(emu, tmp_path / "log.db", [ada], fake_openai) as bot:
        _, reply = await _ask(bot, server, "keep rolling")
        called = await bot.events("ToolCalled")

    assert len(fake_openai.requests) == 3
    assert [r.body.get("tool_choice") for r in fake_openai.requests] == [None, None, "none"]
    assert len(called) == 2, "two rounds, then the model must answer"
    assert fake_openai.pending_faults() == 2
    assert reply.content == FakeOpenAI.reply_for(fake_openai.requests[-1].messages)


async def test_an_http_tool_gets_its_secret_which_is_never_logged_or_recorded(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path,
        weather: tuple[str, list[web.Request]], caplog: pytest.LogCaptureFixture) -> None:
    base_url, seen = weather
    caplog.set_level(logging.DEBUG)
    fake_openai.script(Fault.tool_calls(("weather", {"city": "Saint Malo"})))
    ada = persona(weather_tool(base_url))
    async with running_bot(emu, tmp_path / "log.db", [ada], fake_openai,
                           toolbox=Toolbox(Secrets({"WEATHER_TOKEN": SECRET}))) as bot:
        await _ask(bot, server, "weather in Saint Malo?")
        everything = await bot.events()

    (request,) = seen
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert request.raw_path == "/weather/Saint%20Malo"
    (result,) = [e for e in everything if e.type == "ToolResult"]
    assert json.loads(result.data["content"]) == {"city": "Saint Malo", "temp_c": 12,
                                                   "echo": "Bearer [redacted]"}
    assert SECRET not in json.dumps([dict(e.data) for e in everything]), "not in the log"
    assert SECRET not in caplog.text, "not in a log line"
    assert "tool weather: GET" in caplog.text
    assert all(SECRET not in json.dumps(dict(r.body)) for r in fake_openai.requests)


async def test_a_reply_streams_through_a_tool_call(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script(Fault.tool_calls(("roll", {"expression": "3d4"}), text="Let me roll."))
    ada = persona("tools: [roll]\n", "delivery: {stream_edits: true}\n")
    async with running_bot(emu, tmp_path / "log.db", [ada], fake_openai) as bot:
        _, reply = await _ask(bot, server, "roll 3d4")
        await emu.wait_until(lambda: emu.message(reply.id).edits)

    first, last = fake_openai.requests
    assert first.body["stream"] is True
    (call,) = last.messages[-2]["tool_calls"]
    assert call["function"]["arguments"] == '{"expression": "3d4"}', "joined from fragments"
    assert last.messages[-2]["content"] == "Let me roll."
    final = emu.message(reply.id)
    assert final.content == "Let me roll.\n\n" + FakeOpenAI.reply_for(last.messages)
    assert final.edits[0].previous_content.startswith("Let "), "shown while it ran"


async def test_explain_and_rerun_of_a_tool_reply(
        emu: DiscordEmulator, server: Server, fake_openai: FakeOpenAI, tmp_path: Path,
        weather: tuple[str, list[web.Request]]) -> None:
    base_url, seen = weather
    script = (Fault.tool_calls(("roll", {"expression": "2d6"}), ("weather", {"city": "Oslo"})),)
    fake_openai.script(*script)
    ada = persona(weather_tool(base_url))
    (tmp_path / "personas").mkdir()
    (tmp_path / "config.yaml").write_text(
        "database: {path: log.db}\npersonas: {dir: personas}\n"
        f"providers:\n  fake: {{base_url: '{fake_openai.base_url}'}}\n")
    async with running_bot(emu, tmp_path / "log.db", [ada], fake_openai,
                           toolbox=Toolbox(Secrets({"WEATHER_TOKEN": SECRET}))) as bot:
        asked, _ = await _ask(bot, server, "roll and check the weather")
    original = fake_openai.requests[-1].messages

    async def cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "core.cli", "--config", str(tmp_path / "config.yaml"), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
            env={**{k: v for k, v in os.environ.items() if k != "PERSONAE_CONFIG"},
                 "WEATHER_TOKEN": SECRET, "COLUMNS": "200"})
        out, err = await asyncio.wait_for(process.communicate(), 60)
        return process.returncode or 0, out.decode(), err.decode()

    code, out, err = await cli("explain", str(asked.id), "--json")
    assert code == 0, err
    (call,) = json.loads(out)["calls"]
    assert call["messages"] == original, "the last prompt, rebuilt exactly"
    assert [t["function"]["name"] for t in call["tools"]] == ["roll", "weather"]
    assert [(s["tool"], s["ok"]) for s in call["steps"]] == [("roll", True), ("weather", True)]
    code, out, err = await cli("explain", str(asked.id))
    assert code == 0, err
    assert "tool steps (2 call(s))" in out and "round 1.1: weather" in out

    fake_openai.script(*script)
    code, out, err = await cli("rerun", str(asked.id), "--recorded")
    assert code == 0, err
    replayed = fake_openai.requests[-1].messages
    assert [m["content"] for m in replayed if m["role"] == "tool"] == \
        [m["content"] for m in original if m["role"] == "tool"], "the recorded results"
    assert len(seen) == 1, "replaying calls no tool"
    assert "replayed from the log" in out

    fake_openai.script(*script)
    code, out, err = await cli("rerun", str(asked.id), "--recorded", "--live-tools")
    assert code == 0, err
    assert len(seen) == 2, "--live-tools calls the tool again"
    assert "called live" in out
    assert SECRET not in out + err
