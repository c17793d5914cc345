"""`personae forget`: a person's text, name and the replies to them are gone from every
command's output and from the database file's bytes (the WAL too), on SQLite and on
PostgreSQL, while counts, usage and exactly-once stay as they were."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

from core.events import MessageReceived, SubjectForgotten
from core.events.ids import message_event_id
from eventstore import EVERYTHING, PostgresLog, SQLiteLog
from tests.eventstore import pgserver
from tests.eventstore.backends import PostgresBackend
from tests.replay.conftest import GRACE, GRACE_NAME, LINUS_NAME, Flow

LINUS_TEXT = "bob, what do you think of kernels?"


def _secrets(flow: Flow) -> list[str]:
    """Grace's texts, her name and the replies to her (the fake's replies quote what they
    answer), read through the log before she is forgotten."""
    texts = [t for (t,) in flow.rows(
        "SELECT json_extract(data, '$.text') FROM events WHERE type IN ('MessageReceived', "
        "'MessageEdited', 'ModelReplied') AND (json_extract(data, '$.author_id') = ? OR "
        "json_extract(data, '$.quotes') = ? OR json_extract(data, '$.message_id') IN "
        "(SELECT json_extract(data, '$.message_id') FROM events WHERE type = "
        "'MessageReceived' AND json_extract(data, '$.author_id') = ?))", GRACE, GRACE, GRACE)]
    assert len(texts) >= 8 and "@ada what is a decorator?" in texts
    return [*texts, GRACE_NAME, "Grace_Hopper"]


def _file_bytes(path: Path) -> bytes:
    """The log file and its WAL, after moving the WAL into the file."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def _outputs(flow: Flow) -> dict[str, str]:
    """What every reading command says about the log."""
    found = {}
    for args in (("replay",), ("replay", "--json"), ("events", "--json"), ("export",),
                 ("stats",), ("stats", "--csv"), ("rebuild",), ("db", "check")):
        code, out, err = flow.invoke(*args)
        assert code == 0, (args, err)
        found[" ".join(args)] = out + err
    for key, message_id in flow.ids.items():
        code, out, err = flow.invoke("explain", message_id, "--json")
        found[f"explain {key}"] = out + err
    return found


def _stats_rows(flow: Flow) -> list[dict[str, str]]:
    code, out, _ = flow.invoke("stats", "--csv")
    assert code == 0
    return [row for row in csv.DictReader(io.StringIO(out)) if row["dimension"] != "user"]


async def test_a_forgotten_user_is_gone_from_every_output_and_the_file_bytes(flow: Flow):
    secrets = _secrets(flow)
    stats_before = _stats_rows(flow)
    events_before = len(flow.rows("SELECT position FROM events"))
    grace_keys = [bytes(k) for (k,) in sqlite3.connect(flow.log_path).execute(
        "SELECT secret FROM content_keys WHERE subject = ?", (GRACE,))]
    assert grace_keys
    # sealed at rest: her words were never in the file, even before she is forgotten
    before = _file_bytes(flow.log_path)
    for secret in secrets:
        assert secret.encode() not in before, secret
    assert all(key in before for key in grace_keys)  # ...but her keys were

    code, out, err = flow.invoke("forget", GRACE, "--by", "dpo@example.org")
    assert code == 0, err
    assert f"forgot {GRACE}" in out and "[erased]" in out

    outputs = _outputs(flow)
    for name, text in outputs.items():
        for secret in secrets:
            assert secret not in text, (name, secret)
    assert "[erased]" in outputs["replay"]
    assert LINUS_TEXT in outputs["replay"] and LINUS_NAME in outputs["replay"]  # others stay
    assert "ok:" in outputs["db check"]
    # counts and usage stay: the same events, the same figures per persona and day
    assert len(flow.rows("SELECT position FROM events")) == events_before + 1
    assert _stats_rows(flow) == stats_before
    # the erasure is an event: who asked, when, whom, and nothing of what was erased
    (erasure,) = flow.rows("SELECT data FROM events WHERE type = ?", SubjectForgotten.type)
    recorded = json.loads(erasure[0])
    assert recorded["subject"] == GRACE and recorded["requested_by"] == "dpo@example.org"
    assert recorded["at"] > 0 and recorded["scope"] == "all"
    # her keys are gone from the file and its WAL, not just marked
    after = _file_bytes(flow.log_path)
    for key in grace_keys:
        assert key not in after
    for secret in secrets:
        assert secret.encode() not in after
    # exactly-once over shredded content: her first message again is a no-op
    log = SQLiteLog.open(flow.log_path)
    try:
        again = MessageReceived(platform="test", message_id=flow.ids["hello"], channel_id="c1",
                                author_id=GRACE, author_name=GRACE_NAME, text="again")
        result = log.append("conv:test:c1", [again.new_event(
            message_event_id("test", flow.ids["hello"]))])
        assert result.duplicates == 1
        assert log.last_position() == events_before + 1
    finally:
        log.close()
    # the ledger kept apart holds the erasure too (ids and times only)
    ledger = (flow.root / "data" / "erasures.jsonl").read_text()
    assert GRACE in ledger and not any(s in ledger for s in secrets)


async def test_db_check_finds_content_of_a_forgotten_user_stored_in_clear(flow: Flow):
    """A log written with encryption off holds content in clear: forgetting says so, and
    `db check` fails, until the log is sealed into a new one with `db copy`."""
    plain_config = flow.root / "plain.yaml"
    plain_config.write_text("database: {path: plain.db}\npersonas: {dir: personas}\n"
                            "privacy: {encrypt: false}\n")
    source = SQLiteLog.open(flow.log_path, read_only=True)
    target = SQLiteLog.open(flow.root / "plain.db", seal=False)
    try:
        # a log from before encryption: every event with its content opened, in clear
        target.load(source.scan(EVERYTHING, upcast=False, unseal=True))
    finally:
        source.close()
        target.close()
    plain = Flow(flow.root, plain_config, flow.root / "plain.db", flow.fake)
    code, _, err = plain.invoke("forget", GRACE)
    assert code == 1 and "hold their content in clear" in " ".join(err.split())
    code, _, err = plain.invoke("db", "check", "--no-projections")
    said = " ".join(err.split())  # rich wraps long lines
    assert code == 1 and f"of the forgotten subject {GRACE} holds content in clear" in said
    assert b"@ada what is a decorator?" in (flow.root / "plain.db").read_bytes()
    # migrated: sealed into a new log, and forgotten there again from the ledger
    sealed = flow.root / "sealed.db"
    code, out, err = flow.invoke("db", "copy", str(flow.root / "plain.db"), str(sealed))
    assert code == 0, err
    assert "forgot again 1 person(s) the erasure ledger lists" in out
    assert b"@ada what is a decorator?" not in _file_bytes(sealed)
    migrated = Flow(flow.root, flow.config, sealed, flow.fake)
    assert not migrated.rows("SELECT 1 FROM events WHERE json_extract(data, '$.text') = ?",
                             "@ada what is a decorator?")
    assert migrated.rows("SELECT 1 FROM events WHERE json_extract(data, '$.text') = ?",
                         LINUS_TEXT)  # the others' content was sealed, not lost


async def test_forgetting_on_postgresql(flow: Flow):
    secrets = _secrets(flow)
    url = pgserver.new_schema_url()
    code, _, err = flow.invoke("db", "copy", str(flow.log_path), url)
    assert code == 0, err
    directory = flow.root / "pg"
    directory.mkdir()
    config = directory / "config.yaml"
    config.write_text(f"database:\n  url: '{url}'\npersonas: {{dir: ../personas}}\n")
    pg = Flow(flow.root, config, flow.log_path, flow.fake)
    code, out, err = pg.invoke("forget", GRACE)
    assert code == 0, err
    for args in (("replay",), ("export",), ("events", "--json"), ("db", "check")):
        code, out, err = pg.invoke(*args)
        assert code == 0, (args, err)
        for secret in secrets:
            assert secret not in out, (args, secret)
    assert LINUS_TEXT in pg.invoke("replay")[1]
    log = PostgresLog.open(url)
    PostgresBackend.opened.append(log)
    schema = log.target.schema
    with pgserver.admin() as conn:
        assert conn.execute(f'SELECT count(*) FROM "{schema}".content_keys WHERE subject = %s '
                            "AND secret IS NOT NULL AND created_at < %s",
                            (GRACE, log.last_position() and 1e12)).fetchone() == (0,)
        stored = "".join(row[0] for row in conn.execute(
            f'SELECT data::text FROM "{schema}".events'))
    for secret in secrets:
        assert secret not in stored
