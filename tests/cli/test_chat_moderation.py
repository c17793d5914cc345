"""`personae chat` builds the moderation step from config.yaml (the runtime's wiring, as
`personae run` does): a blocked line gets the notice and the operator sees the alert."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eventstore import SQLiteLog
from tests.dispatcher.conftest import persona_yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_terminal_chat_is_moderated_as_config_says(tmp_path: Path) -> None:
    (tmp_path / "personas").mkdir()
    (tmp_path / "personas" / "ada.yaml").write_text(persona_yaml("ada", provider="offline"))
    config = tmp_path / "config.yaml"
    config.write_text("database: {path: log.db}\npersonas: {dir: personas}\n"
                      "moderation:\n  words: {harassment: [dimwit]}\n"
                      "  actions: {block: [refuse, alert]}\n  alert_channel: 1\n")
    env = {k: v for k, v in os.environ.items() if k != "PERSONAE_CONFIG"}
    run = subprocess.run(
        [sys.executable, "-m", "core.cli", "--config", str(config), "chat", "ada", "--offline",
         "--user", "Grace"], input="you dimwit\nhello there\n",
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert run.returncode == 0, run.stderr
    assert "[Ada] I can't respond to that message." in run.stdout
    assert "[moderation] Moderation: Blocked a message to Ada: harassment 1.00 (refuse, " \
           "alert)." in run.stdout
    assert "You said: hello there" in run.stdout  # the offline stand-in answered the next line
    log = SQLiteLog.open(tmp_path / "log.db", create=False)
    try:
        checked = [(e.data["direction"], e.data["verdict"])
                   for e in log.read_all(types=["ModerationChecked"])]
    finally:
        log.close()
    assert checked == [("in", "block"), ("in", "pass"), ("out", "pass")]
