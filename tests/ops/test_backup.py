"""``personae db backup PATH`` while a writer appends continuously: the copy passes
``db check`` and holds a prefix of the log."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from core.cli import cli
from eventstore import NewEvent, SQLiteLog, open_store
from eventstore.sqlite import check_log


def write_config(folder: Path) -> Path:
    config = folder / "config.yaml"
    config.write_text("database: {path: data/log.db, synchronous: full}\n")
    return config


async def personae(config: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.cli", "--config", str(config), *args,
        cwd=config.parent, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def events_of(path: Path) -> list[tuple[int, str, str, dict]]:
    log = SQLiteLog.open(path, create=False)
    try:
        return [(e.position, e.event_id, e.stream_id, dict(e.data)) for e in log.read_all()]
    finally:
        log.close()


async def test_backup_while_writing_is_a_checked_prefix_of_the_log(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store = await open_store(tmp_path / "data" / "log.db", synchronous="normal")
    written = 0
    stop = asyncio.Event()
    progress = asyncio.Condition()

    async def write_forever() -> None:
        nonlocal written
        while not stop.is_set():
            await store.append(f"stream-{written % 7}",
                               NewEvent("Tick", {"n": written, "pad": "x" * 200},
                                        event_id=f"tick:{written}"))
            written += 1
            async with progress:
                progress.notify_all()

    async def until_written(count: int) -> None:
        async with progress:
            await progress.wait_for(lambda: written >= count)

    writer = asyncio.create_task(write_forever())
    try:
        await until_written(300)
        code, out, err = await personae(config, "db", "backup", str(tmp_path / "copy.db"))
        await until_written(written + 20)  # the writer was never blocked, and goes on
    finally:
        stop.set()
        await writer
        await store.close()

    assert code == 0, err
    assert "the copy passes `db check`" in out
    copy = tmp_path / "copy.db"
    assert check_log(copy) == []
    assert not (tmp_path / "copy.db-wal").exists()
    copied, live = events_of(copy), events_of(tmp_path / "data" / "log.db")
    assert len(copied) >= 300
    assert len(live) > len(copied)
    assert copied == live[: len(copied)]
    assert f"backed up {len(copied)} events" in out
    copy_config = tmp_path / "copy.yaml"
    copy_config.write_text("database: {path: copy.db}\n")
    checked = CliRunner().invoke(cli, ["--config", str(copy_config), "db", "check"])
    assert checked.exit_code == 0, checked.output
    assert "passes the integrity check" in checked.stdout


def test_backup_refuses_to_overwrite_and_reports_a_missing_log(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    runner = CliRunner()

    def backup(*args: str) -> Result:
        return runner.invoke(cli, ["--config", str(config), "db", "backup", *args])

    missing = backup(str(tmp_path / "copy.db"))
    assert missing.exit_code == 2 and "there is no event log at" in missing.stderr

    log = SQLiteLog.open(tmp_path / "data" / "log.db")
    log.append("s", [NewEvent("Thing", {}, event_id="one")])
    log.close()
    (tmp_path / "copy.db").write_text("precious")
    refused = backup(str(tmp_path / "copy.db"))
    assert refused.exit_code == 2
    assert "exists already" in refused.stderr and "--overwrite" in refused.stderr
    assert (tmp_path / "copy.db").read_text() == "precious"
    replaced = backup("--overwrite", str(tmp_path / "copy.db"))
    assert replaced.exit_code == 0, replaced.output
    assert [e[1] for e in events_of(tmp_path / "copy.db")] == ["one"]
    assert not (tmp_path / ".copy.db.partial").exists()
    nowhere = backup(str(tmp_path / "nowhere" / "x.db"))
    assert nowhere.exit_code == 2 and "does not exist" in nowhere.stderr
    assert all(r.exception is None or isinstance(r.exception, SystemExit)
               for r in (missing, refused, replaced, nowhere))
