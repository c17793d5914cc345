"""At start-up, persona files that are not plain data (or are bombs) are problems that are
reported and skipped: ``personae run``, ``doctor`` and ``chat`` still start and serve the
valid personas, with no traceback."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from core.ops.doctor import diagnose
from tests.fakes.discord import DiscordEmulator
from tests.fakes.discord.fixtures import Server
from tests.fakes.openai_server import FakeOpenAI

from .test_run import finish, personae, until, write_config

ROOT = Path(__file__).resolve().parents[2]


def hostile_files(provider: str) -> dict[str, str]:
    base = f"name: X\nmodel: {{provider: {provider}, name: m}}\nprompt:\n  system: hi\n"
    laughs = "".join(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n"
                     for i in range(1, 9))
    return {
        "code.yaml": "id: code\n" + base + "description: !!python/name:os.system\n",
        "blob.yaml": "id: blob\n" + base + "notes: !!binary aGVsbG8=\n",
        "loop.yaml": "id: loop\nname: L\nmodel: {provider: " + provider
                     + ", name: m}\nprompt: &a {system: hi, x: *a}\n",
        "merge.yaml": "id: merge\n" + base + "context:\n  <<: 5\n",
        "bomb.yaml": "id: bomb\n" + base + "extensions:\n  l0: &l0 [a, a, a, a, a, a, a, a, a]\n"
                     + laughs,
    }


def add_hostile_files(personas: Path, provider: str) -> None:
    for name, text in hostile_files(provider).items():
        (personas / name).write_text(text, encoding="utf-8")
    # a date where text belongs is text: this one loads
    (personas / "dated.yaml").write_text(
        "id: dated\nname: Dated\ndescription: 2024-01-01\n"
        f"model: {{provider: {provider}, name: m}}\nprompt:\n  system: hi\n", encoding="utf-8")


async def test_run_starts_and_answers_with_hostile_persona_files(
        emu: DiscordEmulator, server: Server, tmp_path: Path) -> None:
    async with FakeOpenAI() as fake:
        config = write_config(tmp_path, emu.api_base_url, fake.base_url)
        add_hostile_files(tmp_path / "personas", "fake")
        process = await personae(config, "run", token=emu.token)
        try:
            await emu.wait_for_command("ask", timeout=20)
            asked = await emu.user_says(server.alice, server.general, "are you there?",
                                        mentions=[emu.bot_user])
            await until(lambda: any(m.id > asked.id for m in emu.messages_in(server.general)),
                        timeout=20)
            process.send_signal(signal.SIGTERM)
            code, out, err = await finish(process)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert code == 0, err
    assert "Traceback" not in err + out
    for name in hostile_files("fake"):
        assert f"{name}:" in err, (name, err)
    replies = [m for m in emu.messages_in(server.general) if m.id > asked.id]
    assert {m.author.username for m in replies} <= {"Ada", "Dated", "X"} and replies


async def test_doctor_reports_hostile_persona_files_and_checks_the_rest(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9/api")
    add_hostile_files(tmp_path / "personas", "fake")
    report = await asyncio.wait_for(diagnose(config, environ={}, timeout_s=1.0), 30)
    finding = report.of("personas")
    assert finding.status == "fail"
    for name in hostile_files("fake"):
        assert f"{name}:" in finding.message, (name, finding.message)
    assert report.of("database").status == "ok"  # the other checks still ran


def test_chat_starts_and_answers_with_hostile_persona_files(tmp_path: Path) -> None:
    (tmp_path / "personas").mkdir()
    (tmp_path / "personas" / "ada.yaml").write_text(
        "id: ada\nname: Ada\nmodel: {provider: offline, name: m}\nprompt:\n  system: hi\n")
    add_hostile_files(tmp_path / "personas", "offline")
    config = tmp_path / "config.yaml"
    config.write_text("database: {path: data/log.db}\npersonas: {dir: personas}\n")
    run = subprocess.run(
        [sys.executable, "-m", "core.cli", "--config", str(config), "chat", "ada", "--offline"],
        input="hello there\n/quit\n", capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "COLUMNS": "1000"})  # one problem per line
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert any(line.startswith("Ada: ") and "hello there" in line
               for line in run.stdout.splitlines()), run.stdout
    for name in hostile_files("offline"):
        assert f"{name}:" in run.stderr, (name, run.stderr)
