"""`personae db check` on a real bot log tampered with by hand: triggers dropped and
recreated with empty bodies, rows edited and deleted, an extra trigger, a dropped
unique index. Each is found (exit 1, the rule named); the untouched log passes."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from .conftest import Flow

EMPTY_BODIES = [
    "DROP TRIGGER events_no_update", "DROP TRIGGER events_no_delete",
    "DROP TRIGGER events_no_replace",
    "CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT 1; END",
    "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT 1; END",
    "CREATE TRIGGER events_no_replace BEFORE INSERT ON events BEGIN SELECT 1; END",
]


def _tampered(flow: Flow, tmp_path: Path, *statements: str) -> Path:
    """A copy of the flow's log with ``statements`` run on it; a config naming it."""
    copy = tmp_path / "tampered.db"
    shutil.copy(flow.log_path, copy)
    raw = sqlite3.connect(copy, isolation_level=None)
    try:
        for statement in statements:
            raw.execute(statement)
    finally:
        raw.close()
    config = tmp_path / "tampered.yaml"
    config.write_text(f"database: {{path: '{copy}'}}\n")
    return config


def _check(flow: Flow, config: Path) -> tuple[int, str]:
    from click.testing import CliRunner

    from core.cli import cli

    result = CliRunner().invoke(cli, ["--config", str(config), "db", "check"])
    return result.exit_code, result.stdout + result.stderr


def test_the_untouched_log_passes(flow: Flow) -> None:
    code, out = _check(flow, flow.config)
    assert code == 0 and out.startswith("ok:"), out


@pytest.mark.parametrize(("statements", "found"), [
    (EMPTY_BODIES, ["append-only: the trigger events_no_update was changed",
                    "append-only: the trigger events_no_delete was changed",
                    "append-only: the trigger events_no_replace was changed"]),
    ([*EMPTY_BODIES, "UPDATE events SET data = json_set(data, '$.usage.total_tokens', 1) "
                     "WHERE type = 'ModelReplied'"],
     ["projections: quotas.quota_usage"]),
    ([*EMPTY_BODIES, "DELETE FROM events WHERE position = 7"],
     ["gap-free positions: the log has", "(the first gap is before 8)",
      "gap-free versions: stream 'conv:test:c1'", "projections: "]),
    ([*EMPTY_BODIES, "UPDATE events SET data = json_remove(data, '$.platform') "
                     "WHERE position = (SELECT MIN(position) FROM events "
                     "WHERE type = 'MessageReceived')"],
     ["event shapes: event 'msg:test:", "needs the field 'platform'"]),
    (["CREATE TRIGGER sneaky AFTER INSERT ON events BEGIN SELECT 1; END"],
     ["append-only: an unknown trigger sneaky is on the events table"]),
    ([*EMPTY_BODIES, "DROP INDEX events_stream_version",
      "UPDATE events SET version = 1 WHERE stream_id = 'conv:test:c1' AND version = 2"],
     ["indexes: the index events_stream_version is missing",
      "unique stream versions: stream 'conv:test:c1' has 2 events at version 1"]),
], ids=["empty-trigger-bodies", "edited-usage", "deleted-row", "edited-shape",
        "extra-trigger", "duplicate-version"])
def test_tampering_is_found(flow: Flow, tmp_path: Path, statements: list[str],
                            found: list[str]) -> None:
    code, out = _check(flow, _tampered(flow, tmp_path, *statements))
    assert code == 1, out
    text = " ".join(out.split())
    for needle in found:
        assert needle in text, (needle, out)
    assert "Traceback" not in out
