"""`personae db init|check|backup|copy` on PostgreSQL, and `db copy` both ways with a real
log the dispatcher wrote: every event exactly as it was, projections rebuilt equal, a
non-empty target refused."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.cli import cli
from core.dispatcher.projection import projections
from eventstore import EVERYTHING, PostgresLog, open_log
from eventstore.sqlite import check_log
from tests.eventstore import pgserver
from tests.eventstore.backends import PostgresBackend
from tests.replay.conftest import Flow, fake_openai, flow  # noqa: F401  (fixtures)

EVENT_COLUMNS = ("position, event_id, stream_id, version, type, schema_version, data, "
                 "recorded_at, correlation_id, causation_id")


@pytest.fixture(autouse=True)
def _drop_schemas() -> Iterator[None]:
    yield
    PostgresBackend.clean_up()


def _config(directory: Path, url: str, extra: str = "") -> Path:
    """A config.yaml naming ``url``, in a folder of its own (a flow has its own config)."""
    (directory / "pg").mkdir(exist_ok=True)
    path = directory / "pg" / "config.yaml"
    path.write_text(f"database:\n  url: '{url}'\n{extra}")
    return path


def _invoke(config: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner(env=env).invoke(cli, ["--config", str(config), *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _sqlite_events(path: Path) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT {EVENT_COLUMNS} FROM events ORDER BY position").fetchall()
    finally:
        db.close()


def test_init_check_and_backup_of_a_postgresql_log(tmp_path: Path) -> None:
    url = pgserver.new_schema_url()
    config = _config(tmp_path, url)
    code, out, err = _invoke(config, "db", "init")
    assert code == 0, err
    assert out.startswith("event log created: postgresql://") and "?schema=personae_test" in out
    assert _invoke(config, "db", "init")[1].startswith("event log already existed")
    code, out, err = _invoke(config, "db", "check")
    assert code == 0 and out.startswith("ok: postgresql://"), err

    code, out, err = _invoke(config, "db", "backup", str(tmp_path / "backup.db"))
    assert code == 0, err
    assert "backed up 1 events (up to position 1" in out
    assert check_log(tmp_path / "backup.db") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.db", "backup.db.keys", "pg"]  # keys apart
    code, _, err = _invoke(config, "db", "backup", str(tmp_path / "backup.db"))
    assert code == 2 and "exists already" in err


def test_check_in_a_real_process_exits_1_when_a_trigger_was_dropped(tmp_path: Path) -> None:
    url = pgserver.new_schema_url()
    config = _config(tmp_path, url)
    assert _invoke(config, "db", "init")[0] == 0
    log = PostgresLog.open(url)
    with pgserver.admin() as conn:
        conn.execute(f'DROP TRIGGER events_no_delete ON "{log.target.schema}".events')
    log.close()
    result = subprocess.run(
        [sys.executable, "-c", "from core.cli import main; main()", "--config", str(config),
         "db", "check"], capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PERSONAE_CONFIG"})
    assert result.returncode == 1
    assert "append-only: the trigger events_no_delete is missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_password_comes_from_the_variable_the_config_names(tmp_path: Path) -> None:
    url = pgserver.new_schema_url()
    config = _config(tmp_path, url, "  password_env: PERSONAE_TEST_DB_PASSWORD\n")
    code, out, err = _invoke(config, "db", "init", env={"PERSONAE_TEST_DB_PASSWORD": ""})
    assert (code, out) == (2, "")
    assert "set the environment variable PERSONAE_TEST_DB_PASSWORD" in err
    code, _, err = _invoke(config, "db", "init",
                           env={"PERSONAE_TEST_DB_PASSWORD": "hunter2-secret"})
    assert code == 0, err  # trust authentication: any password logs in
    config.write_text(config.read_text().replace("@", ":hunter2-secret@", 1))
    code, out, err = _invoke(config, "db", "check")
    assert code == 2 and "database.url: holds a password" in err
    assert "hunter2" not in err


def test_db_check_compares_the_projections_with_a_rebuild(tmp_path: Path, flow: Flow  # noqa: F811
                                                         ) -> None:
    url = pgserver.new_schema_url()
    config = _config(tmp_path, url)
    code, _, err = flow.invoke("db", "copy", str(flow.log_path), url)
    assert code == 0, err
    open_log(url, projections=projections()).close()  # the bot opens it: projections built
    assert _invoke(config, "db", "check")[0] == 0
    schema = PostgresLog.open(url).target.schema
    with pgserver.admin() as conn:
        conn.execute(f'UPDATE "{schema}".quota_usage SET tokens = tokens + 1')
    code, _, err = _invoke(config, "db", "check")
    assert code == 1 and "violation projections: quotas.quota_usage" in err
    assert _invoke(config, "db", "check", "--no-projections")[0] == 0


def test_db_copy_sqlite_to_postgresql_and_back_gives_the_same_log(flow: Flow) -> None:  # noqa: F811
    url = pgserver.new_schema_url()
    original = _sqlite_events(flow.log_path)
    assert len(original) > 30

    code, out, err = flow.invoke("db", "copy", str(flow.log_path), url)
    assert code == 0, err
    assert f"copied {len(original)} events (up to position {original[-1][0]}" in out
    assert "counts, positions and content verified" in out
    copied = PostgresLog.open(url, projections=projections())
    sqlite = open_log(flow.log_path, projections=projections())
    try:
        assert list(copied.scan(EVERYTHING, upcast=False)) == list(
            sqlite.scan(EVERYTHING, upcast=False))
        assert copied.check() == []
        # the bot's projections, rebuilt on PostgreSQL, equal the ones kept in the file
        for projection in projections():
            for table in projection.tables:
                assert copied.rows(table.name, order_by=table.key) == sqlite.rows(
                    table.name, order_by=table.key), table.name
    finally:
        copied.close()
        sqlite.close()

    back = flow.root / "back.db"
    code, out, err = flow.invoke("db", "copy", url, str(back))
    assert code == 0, err
    assert _sqlite_events(back) == original
    assert check_log(back) == []

    # a target that holds events is refused, and left as it was
    code, out, err = flow.invoke("db", "copy", str(flow.log_path), url)
    assert (code, out) == (2, "")
    assert "already holds events; copy only into an empty log" in err
    code, _, err = flow.invoke("db", "copy", url, str(back))
    assert code == 2 and "already holds events" in err
    assert _sqlite_events(back) == original
