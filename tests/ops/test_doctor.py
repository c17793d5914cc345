"""``personae doctor``: one test per kind of finding, against real files, real HTTP
servers on 127.0.0.1 and the real openai SDK."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

import pytest
from aiohttp import web

from core.ops.doctor import DoctorReport, diagnose
from eventstore import NewEvent, SQLiteLog
from tests.fakes.openai_server import FakeOpenAI, Fault

from .conftest import GOOD_PERSONA, bot_token, closed_port, http_server, read_only, write_setup

MESSAGE_CONTENT_LIMITED = 1 << 19
KEY = "sk-test-doctor-0123456789abcdef"


def discord_app(flags: int = MESSAGE_CONTENT_LIMITED, *, status: int = 200,
                skew_s: float = 0.0):
    """A handler for GET /applications/@me as Discord answers it."""
    async def handler(request: web.Request) -> web.Response:
        headers = {"Date": formatdate(time.time() + skew_s, usegmt=True)}
        if status != 200:
            return web.json_response({"message": "401: Unauthorized", "code": 0},
                                     status=status, headers=headers)
        assert request.headers["Authorization"].startswith("Bot ")
        return web.json_response({"id": "42", "name": "Personae", "flags": flags},
                                 headers=headers)
    return handler


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


def provider_yaml(base_url: str) -> str:
    return f"  fake: {{base_url: '{base_url}', api_key_env: TEST_MODEL_KEY, timeout: 5s}}\n"


def env(token: str | None = None, key: str | None = KEY) -> dict[str, str]:
    found = {}
    if token is not None:
        found["TEST_DISCORD_TOKEN"] = token
    if key is not None:
        found["TEST_MODEL_KEY"] = key
    return found


async def check(tmp_path: Path, fake: FakeOpenAI, *, app=None, token: str | None = None,
                key: str | None = KEY, providers: str | None = None, **setup) -> DoctorReport:
    async with http_server({"/api/applications/@me": app or discord_app()}) as url:
        config = write_setup(tmp_path, discord_url=f"{url}/api",
                             providers=providers or provider_yaml(fake.base_url), **setup)
        return await diagnose(config, environ=env(token if token is not None else bot_token(),
                                                  key), timeout_s=2.0)


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


async def personae(config: Path, *args: str, environ: dict[str, str]) -> Ran:
    """``personae --config CONFIG ARGS`` as a real process with only ``environ`` set."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.cli", "--config", str(config), *args,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environ}, cwd=config.parent,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


def statuses(report: DoctorReport) -> dict[str, str]:
    return {f.check: f.status for f in report.findings}


async def test_a_good_setup_is_all_ok(tmp_path: Path, fake: FakeOpenAI) -> None:
    report = await check(tmp_path, fake)
    assert statuses(report) == {
        "config": "ok", "personas": "ok", "database": "ok", "discord token": "ok",
        "discord": "ok", "intents": "ok", "provider fake": "ok", "clock": "ok"}
    assert not report.blocking
    assert "ada" in report.of("personas").message


async def test_invalid_config_is_located_and_stops_the_other_checks(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("database: {path: log.db}\nlimits: {queue_size: lots}\n")
    report = await diagnose(config, environ={})
    assert [(f.check, f.status) for f in report.findings] == [("config", "fail")]
    assert "config.yaml:2" in report.of("config").message
    assert "limits.queue_size" in report.of("config").message
    assert report.blocking


async def test_invalid_persona_names_file_line_and_field(tmp_path: Path,
                                                         fake: FakeOpenAI) -> None:
    report = await check(tmp_path, fake, persona=GOOD_BROKEN)
    finding = report.of("personas")
    assert finding.status == "fail" and report.blocking
    assert "ada.yaml:4" in finding.message and "temperature" in finding.message


GOOD_BROKEN = """id: ada
name: Ada
model: {provider: fake, name: fake-model,
        temperature: hot}
prompt:
  system: You are Ada.
"""


async def test_no_personas_is_a_warning_not_a_failure(tmp_path: Path, fake: FakeOpenAI) -> None:
    async with http_server({"/api/applications/@me": discord_app()}) as url:
        config = write_setup(tmp_path, discord_url=f"{url}/api",
                             providers=provider_yaml(fake.base_url))
        (tmp_path / "personas" / "ada.yaml").unlink()
        report = await diagnose(config, environ=env(bot_token()), timeout_s=2.0)
    assert report.of("personas").status == "warn"
    assert not report.blocking


async def test_unwritable_database_directory(tmp_path: Path, fake: FakeOpenAI) -> None:
    (tmp_path / "data").mkdir()
    with read_only(tmp_path / "data"):
        report = await check(tmp_path, fake)
    finding = report.of("database")
    assert finding.status == "fail" and report.blocking
    assert "cannot write in" in finding.message and "data" in finding.message
    assert "Read-only file system" in finding.message or "Permission denied" in finding.message


async def test_unhealthy_log_says_restore_from_a_backup(tmp_path: Path, fake: FakeOpenAI) -> None:
    path = tmp_path / "data" / "log.db"
    log = SQLiteLog.open(path)
    log.append("s", [NewEvent("Thing", {"n": 1})])
    log.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER events_no_delete")  # what a careless manual fix leaves
    conn.close()
    report = await check(tmp_path, fake)
    finding = report.of("database")
    assert finding.status == "fail" and report.blocking
    assert "events_no_delete" in finding.message and "backup" in finding.message


async def test_damaged_log_file(tmp_path: Path, fake: FakeOpenAI) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "log.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    report = await check(tmp_path, fake)
    assert report.of("database").status == "fail"
    assert "damaged" in report.of("database").message


async def test_missing_token(tmp_path: Path, fake: FakeOpenAI) -> None:
    report = await check(tmp_path, fake, token="")
    finding = report.of("discord token")
    assert finding.status == "fail" and report.blocking
    assert "TEST_DISCORD_TOKEN" in finding.message and "Reset Token" in finding.message
    assert report.of("discord").status == "note" and report.of("intents").status == "note"


@pytest.mark.parametrize(("token", "said"), [
    ("not-a-token", "not shaped like a bot token"),
    ("Bot " + bot_token(), "leave that prefix out"),
    (f'"{bot_token()}"', "quotes"),
    (bot_token() + "\n", "line break"),
    ("aGVsbG8.GhIjKl.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "does not encode a user id"),
])
async def test_malformed_token_is_described_never_printed(
        tmp_path: Path, fake: FakeOpenAI, token: str, said: str) -> None:
    report = await check(tmp_path, fake, token=token)
    finding = report.of("discord token")
    assert finding.status == "fail"
    assert said in finding.message
    assert token.strip().strip('"') not in json.dumps([f.to_dict() for f in report.findings])


async def test_discord_rejecting_the_token(tmp_path: Path, fake: FakeOpenAI) -> None:
    report = await check(tmp_path, fake, app=discord_app(status=401))
    assert report.of("discord").status == "fail"
    assert "rejected the token in TEST_DISCORD_TOKEN" in report.of("discord").message


async def test_message_content_intent_off(tmp_path: Path, fake: FakeOpenAI) -> None:
    report = await check(tmp_path, fake, app=discord_app(flags=1 << 23))
    finding = report.of("intents")
    assert finding.status == "fail" and report.blocking
    assert "Privileged Gateway Intents > Message Content Intent" in finding.message


async def test_verified_bots_intent_flag_counts_too(tmp_path: Path, fake: FakeOpenAI) -> None:
    report = await check(tmp_path, fake, app=discord_app(flags=1 << 18))
    assert report.of("intents").status == "ok"


async def test_unreachable_discord_is_a_warning(tmp_path: Path, fake: FakeOpenAI) -> None:
    config = write_setup(tmp_path, discord_url=f"http://127.0.0.1:{closed_port()}/api",
                         providers=provider_yaml(fake.base_url))
    report = await diagnose(config, environ=env(bot_token()), timeout_s=2.0)
    assert report.of("discord").status == "warn"
    assert "could not reach Discord" in report.of("discord").message
    assert report.of("intents").status == "note"
    assert not report.blocking


async def test_unreachable_provider(tmp_path: Path, fake: FakeOpenAI) -> None:
    base = f"http://127.0.0.1:{closed_port()}/v1"
    report = await check(tmp_path, fake, providers=provider_yaml(base))
    finding = report.of("provider fake")
    assert finding.status == "fail" and report.blocking
    assert f"cannot connect to {base}" in finding.message


async def test_provider_without_its_key_set(tmp_path: Path, fake: FakeOpenAI) -> None:
    report = await check(tmp_path, fake, key=None)
    finding = report.of("provider fake")
    assert finding.status == "fail"
    assert "set the environment variable TEST_MODEL_KEY" in finding.message


async def test_provider_rejecting_the_key(tmp_path: Path, fake: FakeOpenAI) -> None:
    async def refuse(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        return web.json_response({"error": {"message": f"Incorrect API key provided: {KEY}",
                                             "type": "invalid_request_error",
                                             "code": "invalid_api_key"}}, status=401)

    async with http_server({"/v1/models": refuse}) as model_url:
        report = await check(tmp_path, fake, providers=provider_yaml(f"{model_url}/v1"))
    finding = report.of("provider fake")
    assert finding.status == "fail" and report.blocking
    assert "refused the API key in TEST_MODEL_KEY (HTTP 401)" in finding.message
    assert KEY not in finding.message


async def test_offline_provider_is_always_ok(tmp_path: Path, fake: FakeOpenAI) -> None:
    report = await check(tmp_path, fake, providers="  local: {kind: offline}\n",
                         persona=GOOD_PERSONA_OFFLINE)
    assert report.of("provider local").status == "ok"
    assert not report.blocking


GOOD_PERSONA_OFFLINE = GOOD_PERSONA.replace("provider: fake", "provider: local")


async def test_clock_hours_off_fails_and_a_minute_off_warns(tmp_path: Path,
                                                           fake: FakeOpenAI) -> None:
    hours = await check(tmp_path, fake, app=discord_app(skew_s=-3 * 3600))
    finding = hours.of("clock")
    assert finding.status == "fail"
    seconds = int(finding.message.split("clock is ")[1].split(" s ")[0])
    assert abs(seconds - 3 * 3600) <= 2
    assert "ahead of Discord's" in finding.message
    assert "timedatectl" in finding.message
    (tmp_path / "again").mkdir()
    minute = await check(tmp_path / "again", fake, app=discord_app(skew_s=90))
    assert minute.of("clock").status == "warn"
    assert "behind Discord's" in minute.of("clock").message


async def test_clock_without_any_server_is_a_note(tmp_path: Path) -> None:
    config = write_setup(tmp_path, discord_url=f"http://127.0.0.1:{closed_port()}/api",
                         providers="  local: {kind: offline}\n",
                         persona=GOOD_PERSONA_OFFLINE)
    report = await diagnose(config, environ={}, timeout_s=1.0)
    assert report.of("clock").status == "note"


async def test_cli_prints_a_table_or_json_and_exits_1_when_blocked(
        tmp_path: Path, fake: FakeOpenAI) -> None:
    token = bot_token()
    async with http_server({"/api/applications/@me": discord_app(flags=0)}) as url:
        config = write_setup(tmp_path, discord_url=f"{url}/api",
                             providers=provider_yaml(fake.base_url))
        table = await personae(config, "doctor", environ=env(token))
        as_json = await personae(config, "doctor", "--json", environ=env(token))
    assert table.returncode == 1, table.stderr
    assert "intents" in table.stdout and "Message Content" in table.stdout
    assert "something blocks a run" in table.stdout
    assert "Traceback" not in table.stderr
    assert as_json.returncode == 1
    parsed = json.loads(as_json.stdout)
    assert parsed["ok"] is False
    assert {f["check"]: f["status"] for f in parsed["findings"]}["intents"] == "fail"
    for output in (table.stdout, table.stderr, as_json.stdout, as_json.stderr):
        assert token not in output and KEY not in output


async def test_cli_exits_0_when_only_warnings(tmp_path: Path, fake: FakeOpenAI) -> None:
    config = write_setup(tmp_path, discord_url=f"http://127.0.0.1:{closed_port()}/api",
                         providers=provider_yaml(fake.base_url))
    done = await personae(config, "doctor", "--json", "--timeout", "1",
                          environ=env(bot_token()))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is True


async def test_a_broken_provider_no_persona_uses_only_warns(tmp_path: Path,
                                                             fake: FakeOpenAI) -> None:
    spare = f"  spare: {{base_url: 'http://127.0.0.1:{closed_port()}/v1'}}\n"
    report = await check(tmp_path, fake, providers=provider_yaml(fake.base_url) + spare)
    assert report.of("provider fake").status == "ok"
    finding = report.of("provider spare")
    assert finding.status == "warn" and finding.message.endswith("(no persona uses it)")
    assert not report.blocking


async def test_the_moderation_step_is_checked_with_one_real_call(
        tmp_path: Path, fake: FakeOpenAI) -> None:
    on = await check(tmp_path, fake, extra="moderation: {provider: fake, words: {x: [a, b]}}\n")
    assert on.of("moderation").status == "ok"
    assert "fake answered a check with omni-moderation-latest; fail: open" in \
        on.of("moderation").message
    assert len(fake.moderation_requests) == 1
    fake.script_moderation(Fault.server_error(503))
    opened = await check(tmp_path, fake, extra="moderation: {provider: fake}\n")
    assert opened.of("moderation").status == "warn" and "http_503" in \
        opened.of("moderation").message
    fake.script_moderation(Fault.server_error(503))
    closed = await check(tmp_path, fake, extra="moderation: {provider: fake, fail: closed}\n")
    assert closed.of("moderation").status == "fail" and closed.blocking
    assert "every message would be refused" in closed.of("moderation").message
    unset = await check(tmp_path, fake, key=None, extra="moderation: {provider: fake}\n")
    assert "needs TEST_MODEL_KEY, which is not set" in unset.of("moderation").message
    local = await check(tmp_path, fake, extra="moderation: {words: {x: [a]}}\n")
    assert local.of("moderation").message == ("on, with the local lists: 1 word(s), "
                                              "0 pattern(s) only (no provider)")
    off = await check(tmp_path, fake)
    assert "moderation" not in statuses(off)
