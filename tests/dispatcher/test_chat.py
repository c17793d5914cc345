"""``personae chat`` driven through stdin, as a subprocess, with the offline provider."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from core.cli import cli
from eventstore import SQLiteLog

from .conftest import persona_yaml

ROOT = Path(__file__).resolve().parents[2]


def _workspace(tmp_path: Path, provider: str = "offline") -> Path:
    (tmp_path / "personas").mkdir()
    lore = "lorebook:\n  - keys: [decorator]\n    content: Decorators wrap functions.\n"
    (tmp_path / "personas" / "ada.yaml").write_text(persona_yaml("ada", provider=provider,
                                                                 extra=lore + (
        "limits: {quota: {messages: 10, scope: user, reset: '0 0 * * *'}}\n")))
    (tmp_path / "personas" / "bob.yaml").write_text(persona_yaml("bob", provider=provider))
    (tmp_path / "config.yaml").write_text(
        "database: {path: data/log.db}\npersonas: {dir: personas}\n"
        "providers:\n  openai: {api_key_env: TEST_ONLY_OPENAI_KEY}\n")
    return tmp_path / "config.yaml"


def _chat(config: Path, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TEST_ONLY_OPENAI_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "core.cli", "--config", str(config), "chat", *args],
        input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


def test_chat_through_stdin_streams_replies_and_runs_the_commands(tmp_path):
    config = _workspace(tmp_path)
    run = _chat(config, "hello there\nwhat is a decorator?\n/usage\n/reset\nfresh start\n"
                "/persona Bob\nhi bob\n/persona nobody\n/quit\nnever read\n",
                "ada", "--user", "Grace")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    replies = [line for line in lines if line.startswith(("Ada: ", "Bob: "))]
    assert [r.split("You said: ")[1] for r in replies] == [
        "hello there", "what is a decorator?", "fresh start", "hi bob"]
    assert all("[offline] not a language model" in r for r in replies)
    assert replies[-1].startswith("Bob: ")
    assert any("8 of 10 replies left; next reset" in line for line in lines)
    assert any(line == "* no persona 'nobody'; known: ada, bob" for line in lines)
    assert "never read" not in run.stdout

    log = SQLiteLog.open(tmp_path / "data" / "log.db", create=False)
    try:
        # each persona keeps its own conversation: Bob never sees Ada's turns
        stream = log.read_stream("conv:console:grace:ada")
        assert [e.data["text"] for e in stream if e.type == "MessageReceived"] == [
            "hello there", "what is a decorator?", "fresh start"]
        assert sum(e.type == "ConversationReset" for e in stream) == 1
        replies = [e for e in stream if e.type == "ModelReplied"]
        # after /reset the prompt holds only the new message: system prompt + 1 turn
        assert "(prompt " in replies[2].data["text"] and "2 messages" in replies[2].data["text"]
        assert "Decorators wrap functions" not in replies[2].data["text"]
        bob = log.read_stream("conv:console:grace:bob")
        assert [e.data["text"] for e in bob if e.type == "MessageReceived"] == ["hi bob"]
        (bob_reply,) = [e for e in bob if e.type == "ModelReplied"]
        assert "2 messages). You said: hi bob" in bob_reply.data["text"]
        assert [e.data["provider"] for e in [*replies, bob_reply]] == ["offline"] * 4
    finally:
        log.close()
    # a new session continues the conversation from the log: system, then since the
    # reset "fresh start", Ada's reply, and "and again"
    again = _chat(config, "and again\n", "ada", "--user", "Grace")
    assert again.returncode == 0, again.stderr
    assert "4 messages). You said: and again" in again.stdout


def test_missing_credentials_fall_back_to_offline_saying_which_variable_to_set(
        tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_ONLY_OPENAI_KEY", raising=False)
    config = _workspace(tmp_path, provider="openai")
    run = CliRunner().invoke(cli, ["--config", str(config), "chat", "ada"], input="hello\n")
    assert run.exit_code == 0, run.output
    notice = " ".join(run.stderr.split())
    assert "TEST_ONLY_OPENAI_KEY is not set" in notice and "offline provider" in notice
    assert "Traceback" not in run.stderr
    assert "[offline] not a language model" in run.stdout and "You said: hello" in run.stdout


def test_missing_credentials_with_require_model_are_one_sentence_naming_the_variable(
        tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_ONLY_OPENAI_KEY", raising=False)
    config = _workspace(tmp_path, provider="openai")
    run = CliRunner().invoke(cli, ["--config", str(config), "chat", "ada", "--require-model"],
                             input="hello\n")
    assert run.exit_code == 2
    assert "TEST_ONLY_OPENAI_KEY" in run.stderr and "Traceback" not in run.stderr
    assert len([line for line in run.stderr.splitlines() if line.strip()]) == 1
    assert "You said" not in run.stdout


def test_an_unknown_persona_is_a_clear_error(tmp_path):
    run = CliRunner().invoke(cli, ["--config", str(_workspace(tmp_path)), "chat", "zed"])
    assert run.exit_code != 0 and isinstance(run.exception, SystemExit)
    assert "no persona 'zed'" in run.stderr and "ada, bob" in run.stderr
