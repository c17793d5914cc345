"""`personae chat` on a fresh machine (the offline provider): tools run through the whole
path (the offline provider calls `roll` when asked to roll), files go in with /attach,
and both are in the log for explain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from core.cli import cli
from eventstore import SQLiteLog
from tests.media.files import png

from .conftest import ROOT


def test_the_terminal_chat_shows_tools_and_attachments_offline(tmp_path: Path) -> None:
    (tmp_path / "personas").mkdir()
    (tmp_path / "personas" / "ada.yaml").write_text(
        "id: ada\nname: Ada\nmodel: {provider: offline, name: offline, vision: true}\n"
        "prompt: {system: 'You are Ada.'}\ntools: [roll]\n")
    (tmp_path / "notes.txt").write_text("buy milk\n")
    (tmp_path / "pic.png").write_bytes(png(8, 8))
    config = tmp_path / "config.yaml"
    config.write_text("database: {path: log.db}\npersonas: {dir: personas}\n")
    script = (f"roll 2d6 please\n/attach {tmp_path / 'notes.txt'}\n"
              f"/attach {tmp_path / 'pic.png'}\nwhat do you see?\n/attach nowhere.txt\n/quit\n")
    env = {k: v for k, v in os.environ.items() if k != "PERSONAE_CONFIG"}
    run = subprocess.run(
        [sys.executable, "-m", "core.cli", "--config", str(config), "chat", "ada",
         "--user", "Grace"], input=script, capture_output=True, text=True, timeout=60,
        cwd=ROOT, env=env)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "roll said: 2d6: [" in out, out
    assert "notes.txt (9 bytes) goes with your next message" in out
    assert "You said: what do you see?\n\n[file notes.txt (text/plain, 9 bytes)]\nbuy milk" in out
    assert "(and 1 image(s): pic.png)" in out
    assert "no such file: nowhere.txt" in out

    log = SQLiteLog.open(tmp_path / "log.db", create=False)
    try:
        (called,) = log.read_all(types=["ToolCalled"])
        stored = log.read_all(types=["AttachmentStored"])
        first = log.read_all(types=["ModelReplied"])[0]
    finally:
        log.close()
    assert (called.data["tool"], json.loads(called.data["arguments"])) == (
        "roll", {"expression": "2d6"})
    assert sorted(s.data["kind"] for s in stored) == ["image", "text"]
    result = CliRunner().invoke(cli, ["--config", str(config), "explain",
                                      first.data["message_id"], "--json"])
    assert result.exit_code == 0, result.output
    (call,) = json.loads(result.stdout)["calls"]
    assert [s["tool"] for s in call["steps"]] == ["roll"]
    assert call["messages"][-1]["role"] == "tool"
