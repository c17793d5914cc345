"""Commands that keep their promises: global options after the command, rerun on the
recorded provider (exit 1 when it fails), stats at 80 columns, db init on an existing
log, rebuild after an import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.app import missing_key_message, missing_keys
from core.cli import cli, hoist_global_options
from core.config import load_config
from core.credentials import Secrets
from core.personas.loader import load_persona_text
from eventstore import SQLiteLog
from tests.dispatcher.conftest import load_persona

ROOT = Path(__file__).resolve().parents[2]
PERSONA = ("id: ada\nname: Ada\nmodel: {provider: openai, name: gpt-4o-mini}\n"
           "prompt: {system: 'You are {persona}.'}\n")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "personas").mkdir()
    (tmp_path / "personas" / "ada.yaml").write_text(PERSONA, encoding="utf-8")
    (tmp_path / "config.yaml").write_text(
        "database: {path: data/log.db}\npersonas: {dir: personas}\n"
        "providers:\n  openai: {api_key_env: TEST_ONLY_OPENAI_KEY}\n", encoding="utf-8")
    return tmp_path


def personae(project: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_ONLY_OPENAI_KEY",
                                                           "PERSONAE_CONFIG")}
    return subprocess.run([sys.executable, "-m", "core.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, cwd=project,
                          env={**env, "COLUMNS": "80"})


def chat_log(project: Path) -> None:
    """A conversation in the terminal: no key is set, so the offline provider answers."""
    run = personae(project, "chat", "ada", "--user", "Grace", "--config", "config.yaml",
                   stdin="hello\nwhat is a list?\n")
    assert run.returncode == 0, run.stderr


def test_global_options_work_after_the_command_too(project: Path) -> None:
    assert hoist_global_options(["chat", "ada", "--config", "c.yaml", "--log-level=debug"]) == [
        "--config", "c.yaml", "--log-level=debug", "chat", "ada"]
    assert hoist_global_options(["x", "--", "--config"]) == ["x", "--", "--config"]
    elsewhere = project.parent / f"{project.name}-cwd"
    elsewhere.mkdir()
    run = subprocess.run([sys.executable, "-m", "core.cli", "personas", "validate",
                          "--config", str(project / "config.yaml"), "--log-format", "json"],
                         capture_output=True, text=True, timeout=60, cwd=elsewhere,
                         env={k: v for k, v in os.environ.items() if k != "PERSONAE_CONFIG"})
    assert run.returncode == 0, run.stderr
    assert "ok: 1 persona file(s) valid" in run.stdout


def test_rerun_uses_the_recorded_provider_and_a_failed_rerun_exits_non_zero(
        project: Path) -> None:
    chat_log(project)  # recorded with the offline provider: ada's openai has no key
    log = SQLiteLog.open(project / "data" / "log.db", create=False)
    try:
        (first, _) = log.read_all(types=["ModelReplied"])
    finally:
        log.close()
    message_id = first.data["message_id"]
    again = personae(project, "--config", "config.yaml", "rerun", message_id)
    assert again.returncode == 0, again.stderr
    assert "offline/offline" in again.stdout and "missing_credentials" not in again.stdout
    told = personae(project, "--config", "config.yaml", "rerun", message_id,
                    "--provider", "openai")
    assert told.returncode == 1
    assert "failed: missing_credentials" in " ".join(told.stdout.split())


def test_stats_are_readable_at_80_columns(project: Path) -> None:
    chat_log(project)
    stats = personae(project, "--config", "config.yaml", "stats")
    assert stats.returncode == 0, stats.stderr
    lines = stats.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if line.startswith("key"))
    assert header.split() == ["key", "msgs", "replies", "refused", "failed", "tokens", "p50",
                              "p90", "p99", "err", "ref"]
    assert "…" not in stats.stdout.split("tokens per day")[0]


def test_db_init_on_an_existing_log_says_so_and_writes_nothing(project: Path) -> None:
    chat_log(project)
    log = SQLiteLog.open(project / "data" / "log.db", create=False)
    try:
        before = log.last_position()
    finally:
        log.close()
    init = personae(project, "--config", "config.yaml", "db", "init")
    assert init.returncode == 0, init.stderr
    assert "already existed" in init.stdout and "nothing written" in init.stdout
    log = SQLiteLog.open(project / "data" / "log.db", create=False)
    try:
        assert log.last_position() == before
    finally:
        log.close()


def test_rebuild_after_an_import_says_what_it_built(project: Path, tmp_path: Path) -> None:
    chat_log(project)
    exported = tmp_path / "log.jsonl"
    assert personae(project, "--config", "config.yaml", "export", "-o",
                    str(exported)).returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "personas").mkdir()
    (other / "config.yaml").write_text("database: {path: copy.db}\npersonas: {dir: personas}\n",
                                       encoding="utf-8")
    imported = personae(other, "--config", "config.yaml", "import", str(exported))
    assert imported.returncode == 0, imported.stderr
    assert "built the projections dispatch, greetings, quotas, rates" in imported.stdout
    rebuilt = personae(other, "--config", "config.yaml", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "skipped" not in rebuilt.stdout
    assert rebuilt.stdout.count("ok ") == 4 and "matches the log" in rebuilt.stdout


def test_unset_keys_are_named_once_with_the_fix(project: Path) -> None:
    config = load_config(project / "config.yaml")
    ada = load_persona_text(PERSONA, file="ada.yaml", defaults={},
                            known_providers={"openai", "offline"})
    offline = load_persona("bob", provider="offline")
    missing = missing_keys(config, Secrets({}), [ada, offline])
    assert missing == {"TEST_ONLY_OPENAI_KEY": ["ada"]}
    message = missing_key_message(missing) or ""
    assert message.startswith("TEST_ONLY_OPENAI_KEY is not set, so ada cannot answer")
    assert ".env file next to config.yaml" in message
    assert missing_keys(config, Secrets({"TEST_ONLY_OPENAI_KEY": "k"}), [ada]) == {}


def test_a_bad_id_on_the_command_line_names_the_option(project: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(project / "config.yaml"), "personas",
                                      "new", "Bad Id"])
    assert result.exit_code == 2 and "'Bad Id' is not a valid id" in result.output
    assert "<command line>" not in result.output and "PERSONA_ID" in result.output
