"""`personae db init`, `personae db check` and `personae events`, run as a user runs them."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.cli import cli
from eventstore import SCHEMA_VERSION, NewEvent, SQLiteLog
from tests.eventstore.directories import ReadOnlyDirectory, directory_state


def _config(directory: Path, database: str = "data/personae.db") -> Path:
    path = directory / "config.yaml"
    path.write_text(f"database:\n  path: {database}\n")
    return path


def _personae(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, in its own process, as a user would run it."""
    env = {k: v for k, v in os.environ.items() if k != "PERSONAE_CONFIG"}
    return subprocess.run(
        [sys.executable, "-c", "from core.cli import main; main()", "--config", str(config),
         *args],
        capture_output=True, text=True, timeout=60, env=env,
    )


def _invoke(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _fill(path: Path) -> None:
    log = SQLiteLog.open(path)
    try:
        for i in range(1, 7):
            log.append("chan-a" if i % 2 else "chan-b",
                       [NewEvent("Said" if i % 3 else "Joined", {"i": i}, event_id=f"e{i}")])
    finally:
        log.close()


def test_init_creates_the_log_once_and_check_passes(tmp_path: Path) -> None:
    config = _config(tmp_path)

    first = _personae(config, "db", "init")
    assert first.returncode == 0, first.stderr
    assert "event log created" in first.stdout
    assert (tmp_path / "data" / "personae.db").is_file()
    code, out, _ = _invoke(config, "db", "init")
    assert code == 0 and "already existed" in out

    code, out, err = _invoke(config, "db", "check")
    assert code == 0, err
    assert out.startswith("ok:")


def test_events_prints_the_log_with_filters(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _fill(tmp_path / "data" / "personae.db")

    code, out, _ = _invoke(config, "events")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 6
    assert "chan-a@1" in lines[0] and "Said" in lines[0] and '{"i": 1}' in lines[0]

    code, out, _ = _invoke(config, "events", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["position"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[2] == {**rows[2], "event_id": "e3", "stream_id": "chan-a", "version": 2,
                       "type": "Joined", "data": {"i": 3}}

    def positions(*args: str) -> list[int]:
        code, out, err = _invoke(config, "events", "--json", *args)
        assert code == 0, err
        return [json.loads(line)["position"] for line in out.splitlines()]

    assert positions("--stream", "chan-b") == [2, 4, 6]
    assert positions("--type", "Joined") == [3, 6]
    assert positions("--type", "Joined", "--type", "Said", "--after", "4") == [5, 6]
    assert positions("--after", "1", "--until", "3") == [2, 3]
    assert positions("--limit", "2") == [1, 2]
    assert positions("--stream", "chan-a", "--type", "Said", "--after", "1") == [5]


def test_events_on_a_missing_log_says_so_and_creates_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path)
    code, out, err = _invoke(config, "events")
    assert (code, out) == (2, "")
    assert err.strip().startswith("error:") and "no event log" in err
    assert not (tmp_path / "data" / "personae.db").exists()


def _not_sqlite(_: Path) -> bytes:
    return b"this is my shopping list, not a database\n" * 50


def _damaged(_: Path) -> bytes:
    return b"SQLite format 3\x00" + bytes(range(256)) * 32


def _newer(scratch: Path) -> bytes:
    path = scratch / "newer.db"
    _fill(path)
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    raw.close()
    return path.read_bytes()


@pytest.mark.parametrize(
    ("make", "message"),
    [(_not_sqlite, "is not an SQLite database"), (_damaged, "is damaged"),
     (_newer, "newer personae")],
)
@pytest.mark.parametrize("command", [("db", "init"), ("events",)])
def test_a_bad_file_gives_one_line_exit_2_and_is_left_alone(
    tmp_path: Path, make: Callable[[Path], bytes], message: str, command: tuple[str, ...]
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    (data / "personae.db").write_bytes(make(scratch))
    config = _config(tmp_path)
    before = directory_state(data)

    code, out, err = _invoke(config, *command)

    assert (code, out) == (2, "")
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert directory_state(data) == before


def test_a_bad_file_in_a_real_process_gives_no_traceback(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "personae.db").write_bytes(_damaged(tmp_path))
    before = directory_state(data)

    result = _personae(_config(tmp_path), "db", "init")

    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "is damaged" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert directory_state(data) == before


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[ReadOnlyDirectory]:
    directory = ReadOnlyDirectory(tmp_path)
    try:
        yield directory
    finally:
        directory.release()


def test_a_read_only_directory_gives_one_line_exit_2(
    tmp_path: Path, read_only_dir: ReadOnlyDirectory
) -> None:
    sealed = read_only_dir.seal()
    config = _config(tmp_path, str(sealed / "personae.db"))

    code, out, err = _invoke(config, "db", "init")

    assert (code, out) == (2, "")
    assert "read-only" in err
    assert len(err.strip().splitlines()) == 1, err
    assert list(sealed.iterdir()) == []


def _break(path: Path, *statements: str) -> None:
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        for trigger in ("events_no_update", "events_no_delete", "events_no_replace"):
            raw.execute(f"DROP TRIGGER {trigger}")
        for statement in statements:
            raw.execute(statement)
    finally:
        raw.close()


@pytest.mark.parametrize(
    ("statement", "rule", "detail"),
    [
        ("DELETE FROM events WHERE event_id = 'e3'", "gap-free versions",
         "stream 'chan-a' has 2 events but versions 1..3"),
        ("UPDATE events SET data = '{\"i\": 4' WHERE event_id = 'e4'", "valid JSON",
         "event 'e4' at position 4 has invalid data"),
    ],
)
def test_check_exits_non_zero_on_a_violation(
    tmp_path: Path, statement: str, rule: str, detail: str
) -> None:
    config = _config(tmp_path)
    path = tmp_path / "data" / "personae.db"
    _fill(path)
    assert _invoke(config, "db", "check")[0] == 0
    _break(path, statement)

    code, out, err = _invoke(config, "db", "check")

    assert code == 1
    assert f"{rule}: {detail}" in err
    assert "append-only: the trigger events_no_update is missing" in err
    assert not out.startswith("ok")


def test_check_in_a_real_process_exits_1_when_the_triggers_were_dropped(tmp_path: Path) -> None:
    config = _config(tmp_path)
    path = tmp_path / "data" / "personae.db"
    _fill(path)
    _break(path)
    result = _personae(config, "db", "check")
    assert result.returncode == 1
    assert "events_no_replace is missing" in result.stderr
    assert "Traceback" not in result.stderr
