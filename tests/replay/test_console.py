"""Replay and explain over a log written by the terminal chat (`personae chat --offline`);
the timeline in colour on a terminal."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from core.cli import cli
from core.gateway.model import ChatMessage
from core.gateway.offline import offline_reply
from core.replay.selection import EVERYTHING
from core.replay.timeline import write_timeline
from eventstore import SQLiteLog
from tests.dispatcher.conftest import persona_yaml

from .conftest import ROOT


def _chat_log(tmp_path: Path) -> Path:
    (tmp_path / "personas").mkdir()
    (tmp_path / "personas" / "ada.yaml").write_text(persona_yaml("ada", provider="offline"))
    config = tmp_path / "config.yaml"
    config.write_text("database: {path: log.db}\npersonas: {dir: personas}\n")
    env = {k: v for k, v in os.environ.items() if k != "PERSONAE_CONFIG"}
    run = subprocess.run(
        [sys.executable, "-m", "core.cli", "--config", str(config), "chat", "ada", "--offline",
         "--user", "Grace"], input="hello there\nwhat is a closure?\n/reset\nagain\n",
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert run.returncode == 0, run.stderr
    return config


def test_a_terminal_chat_log_explains_and_replays(tmp_path):
    config = _chat_log(tmp_path)
    log = SQLiteLog.open(tmp_path / "log.db", create=False)
    try:
        replies = log.read_all(types=["ModelReplied"])
    finally:
        log.close()
    assert len(replies) == 3
    runner = CliRunner()
    for replied in replies:
        result = runner.invoke(cli, ["--config", str(config), "explain",
                                     replied.data["message_id"], "--json"])
        assert result.exit_code == 0, result.output
        (call,) = json.loads(result.stdout)["calls"]
        messages = [ChatMessage(m["role"], m["content"], name=m.get("name"))
                    for m in call["messages"]]
        # the offline provider's reply is a digest of the exact prompt it was given
        assert offline_reply(messages) == replied.data["text"]
    result = runner.invoke(cli, ["--config", str(config), "replay", "-c", "grace"])
    assert "ConversationReset" in result.stdout and "said \"what is a closure?\"" in result.stdout

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="standard", width=200)
    log = SQLiteLog.open(tmp_path / "log.db", create=False)
    try:
        assert write_timeline(log.scan(EVERYTHING.as_filter()), console) == \
            log.last_position()
    finally:
        log.close()
    assert "\x1b[" in out.getvalue() and "ModelReplied" in out.getvalue(), "coloured"
