"""The tools that only read work on a log that cannot be written: a copy in a read-only
directory (a read-only mount even for root), closed cleanly or left by a kill -9 with
its write-ahead log; they take no writer lock and write nothing."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.cli import cli
from tests.eventstore.directories import ReadOnlyDirectory, directory_state

from .conftest import Flow

READERS = (
    ("events", "--limit", "5"),
    ("replay",),
    ("replay", "--json"),
    ("db", "check"),
    ("stats",),
    ("export",),
    ("rebuild",),
)

_KILLED_WRITER = """
import os, signal, sys
from eventstore import NewEvent, SQLiteLog
log = SQLiteLog.open(sys.argv[1])
log.connection.execute("PRAGMA wal_autocheckpoint=0")
log.append("late", [NewEvent("Late", {"n": 1}, event_id="after-the-copy")])
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def sealed(tmp_path: Path) -> Iterator[ReadOnlyDirectory]:
    (tmp_path / "ro").mkdir()
    directory = ReadOnlyDirectory(tmp_path / "ro")
    try:
        yield directory
    finally:
        directory.release()


def _invoke(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _config_for(tmp_path: Path, flow: Flow, log: Path) -> Path:
    config = tmp_path / "ro-config.yaml"
    config.write_text(flow.config.read_text().replace("database: {path: log.db}",
                                                      f"database: {{path: '{log}'}}"))
    return config


@pytest.mark.parametrize("killed", [False, True], ids=["closed-cleanly", "after-kill-9"])
async def test_reading_tools_work_on_a_read_only_log(flow: Flow, tmp_path: Path,
                                                     sealed: ReadOnlyDirectory,
                                                     killed: bool) -> None:
    for name in ("log.db", "log.db-wal", "log.db-shm"):
        if (flow.log_path.parent / name).exists():
            shutil.copy(flow.log_path.parent / name, sealed.writable / name)
    if killed:  # a writer killed with its last event only in the write-ahead log
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", _KILLED_WRITER,
                                                     str(sealed.writable / "log.db"))
        assert await child.wait() == -signal.SIGKILL
        assert (sealed.writable / "log.db-wal").stat().st_size > 0
    view = sealed.seal()
    config = _config_for(tmp_path, flow, view / "log.db")
    before = directory_state(view)
    message_id = flow.ids["hello"]

    outputs = {}
    for args in (*READERS, ("explain", message_id)):
        code, out, err = _invoke(config, *args)
        assert (code, err) == (0, ""), (args, err)
        outputs[args[0] if args[0] != "replay" else " ".join(args)] = out

    assert "readonly" not in "".join(outputs.values())
    assert outputs["db"].startswith("ok:")
    assert "ModelReplied" in outputs["events"] or outputs["events"]
    assert message_id in outputs["explain"]
    assert ("after-the-copy" in outputs["replay --json"]) == killed  # the WAL was read
    assert directory_state(view) == before
