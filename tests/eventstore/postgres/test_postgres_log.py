"""The PostgreSQL backend's own promises: append-only and commit order enforced by the
database for every connection, migrations (and a newer schema refused), one clear
sentence for a bad URL or a missing server, and a password that is never shown."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from eventstore import AppendRequest, EventStoreError, NewEvent, StoreOpenError, open_store
from eventstore.postgres import PostgresLog, PostgresTarget, schema

from .. import pgserver

PASSWORD = "s3cr3t-Pa55word"


@pytest.fixture
def url() -> str:
    return pgserver.new_schema_url()


@pytest.fixture
def log(url: str) -> Iterator[PostgresLog]:
    opened = PostgresLog.open(url)
    opened.append("chan", [NewEvent("M", {"text": "original"}, event_id="e1"),
                           NewEvent("M", {"text": "second"}, event_id="e2")])
    yield opened
    opened.close()


def _raw(log: PostgresLog) -> psycopg.Connection:
    conn = pgserver.admin()
    conn.execute(f'SET search_path TO "{log.target.schema}"')
    return conn


def _rows(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT position, event_id, data::text FROM events ORDER BY 1").fetchall()


@pytest.mark.parametrize("statement", [
    "UPDATE events SET data = '{\"text\": \"forged\"}'",
    "UPDATE events SET data = data WHERE false",
    "DELETE FROM events WHERE event_id = 'e2'",
    "TRUNCATE events",
    "INSERT INTO events SELECT * FROM events ON CONFLICT (position) DO UPDATE SET type = 'X'",
])
def test_the_database_refuses_to_change_history_for_any_connection(
        log: PostgresLog, statement: str) -> None:
    with _raw(log) as conn:
        before = _rows(conn)
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="append-only"):
            conn.execute(statement)
        # the triggers fire for a replica session too (ENABLE ALWAYS)
        conn.execute("SET session_replication_role = replica")
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="append-only"):
            conn.execute(statement)
        assert _rows(conn) == before


def test_the_database_refuses_a_position_before_the_end_of_the_log(log: PostgresLog) -> None:
    """What a writer that ignored the append lock would try: fill in below the end."""
    with _raw(log) as conn:
        conn.execute("INSERT INTO events VALUES (10, 'late', 's', 1, 'M', 1, '{}', 0, NULL, NULL)")
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation,
                           match="position 5 is not after every position"):
            conn.execute("INSERT INTO events VALUES (5, 'early', 't', 1, 'M', 1, '{}', 0, "
                         "NULL, NULL)")
        assert [p for p, _, _ in _rows(conn)] == [1, 2, 10]
    assert log.append("chan", [NewEvent("M", {})]).positions == (11,)


def test_an_insert_waits_for_the_append_lock_held_by_another_transaction(
        log: PostgresLog) -> None:
    """The lock is the database's, not the library's: a plain INSERT queues behind an
    append transaction of another connection until it commits."""
    with _raw(log) as holder, _raw(log) as other:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s, 'events'::regclass::oid::integer)",
                       (schema.APPEND_LOCK,))
        other.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            other.execute("INSERT INTO events VALUES (3, 'x', 's', 1, 'M', 1, '{}', 0, NULL, "
                          "NULL)")
        holder.execute("COMMIT")
        other.execute("INSERT INTO events VALUES (3, 'x', 's', 1, 'M', 1, '{}', 0, NULL, NULL)")
    assert log.last_position() == 3


def test_a_new_log_is_built_once_even_by_processes_opening_it_together(url: str) -> None:
    opened: list[PostgresLog] = []
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            opened.append(PostgresLog.open(url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert errors == [] and len(opened) == 4
        with _raw(opened[0]) as conn:
            # each migration ran once, in order
            assert conn.execute("SELECT version FROM personae_schema ORDER BY version"
                                ).fetchall() == [(v,) for v in range(1, schema.SCHEMA_VERSION + 1)]
        assert opened[0].check() == []
    finally:
        for log in opened:
            log.close()


def test_an_opener_that_looked_while_another_built_the_log_finds_it_built(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second opener found no log, and before it looked for foreign tables the first
    committed the log: what it then finds is a log, not someone else's tables."""
    target = PostgresTarget.parse(url)
    building, built = threading.Event(), threading.Event()

    def held_first(conn: psycopg.Connection, name: str) -> None:
        building.set()
        schema.MIGRATIONS[0](conn, name)

    refuse = schema._refuse
    looked: list[int | None] = []

    def after_the_build(found: int | None, *args: Any, **kwargs: Any) -> None:
        if threading.current_thread() is second and not looked:
            looked.append(found)
            assert built.wait(30)
        refuse(found, *args, **kwargs)

    monkeypatch.setattr(schema, "_refuse", after_the_build)
    errors: list[BaseException] = []

    def prepare(migrations: tuple[schema.Migration, ...], done: threading.Event | None
                ) -> None:
        try:
            with psycopg.connect(**target.connect_kwargs(autocommit=True)) as conn:
                schema.prepare(conn, target.schema, target.location, create=True,
                               migrations=migrations)
        except BaseException as exc:
            errors.append(exc)
        finally:
            if done is not None:
                done.set()

    second = threading.Thread(target=prepare, args=(schema.MIGRATIONS, None))
    first = threading.Thread(target=prepare,
                             args=((held_first, *schema.MIGRATIONS[1:]), built))
    first.start()
    assert building.wait(30)
    second.start()
    first.join(30)
    second.join(30)
    assert looked == [None]  # the second opener did look before the log was there
    assert errors == []
    log = PostgresLog.open(url, create=False)
    try:
        assert log.check() == []
    finally:
        log.close()


def test_an_older_log_is_migrated_and_keeps_its_events(
        log: PostgresLog, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    log.close()

    def add_an_index(conn: psycopg.Connection, name: str) -> None:
        conn.execute(f'CREATE INDEX events_causation ON "{name}".events (causation_id)')

    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, add_an_index))
    migrated = PostgresLog.open(url)
    try:
        assert [e.event_id for e in migrated.read_all()] == ["e1", "e2"]
        with _raw(migrated) as conn:
            assert [v for (v,) in conn.execute(
                "SELECT version FROM personae_schema ORDER BY 1")] == list(
                    range(1, len(schema.MIGRATIONS) + 1))
            assert conn.execute("SELECT to_regclass('events_causation')").fetchone() != (None,)
    finally:
        migrated.close()
    monkeypatch.undo()
    # and this personae (which knows one migration fewer) now refuses it
    newest = schema.SCHEMA_VERSION
    with pytest.raises(StoreOpenError, match=rf"written by a newer personae \(log schema "
                                             rf"{newest + 1}; this version understands up to "
                                             rf"{newest}\)"):
        PostgresLog.open(url)


def test_a_log_from_a_newer_personae_is_refused_and_left_alone(log: PostgresLog,
                                                                url: str) -> None:
    with _raw(log) as conn:
        conn.execute("INSERT INTO personae_schema VALUES (99, 0)")
        before = (_rows(conn), conn.execute("SELECT * FROM pg_tables WHERE schemaname = %s "
                                            "ORDER BY tablename", (log.target.schema,)).fetchall())
    with pytest.raises(StoreOpenError) as caught:
        PostgresLog.open(url)
    message = str(caught.value)
    assert "written by a newer personae (log schema 99" in message and "\n" not in message
    assert log.location in message
    with _raw(log) as conn:
        assert (_rows(conn), conn.execute("SELECT * FROM pg_tables WHERE schemaname = %s ORDER "
                                          "BY tablename", (log.target.schema,)).fetchall()
                ) == before
    assert log.check()[0].detail.startswith("log schema is 99, newer")


def test_a_schema_holding_other_tables_is_refused_untouched(url: str) -> None:
    name = PostgresTarget.parse(url).schema
    with pgserver.admin() as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
        conn.execute(f'CREATE TABLE "{name}".customers (id int)')
    with pytest.raises(StoreOpenError, match="holds tables that are not a personae log "
                                             r"\(customers\)"):
        PostgresLog.open(url)
    with pgserver.admin() as conn:
        assert conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s",
                            (name,)).fetchall() == [("customers",)]


def test_opening_without_create_a_log_that_is_not_there_says_so(url: str) -> None:
    with pytest.raises(StoreOpenError, match=r"there is no event log at .* yet"):
        PostgresLog.open(url, create=False)
    with pgserver.admin() as conn:
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                            (PostgresTarget.parse(url).schema,)).fetchall() == []


def _with_password(url: str, port: int | None = None) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    if port is not None:
        host = host.replace(f":{PostgresTarget.parse(url).params['port']}/", f":{port}/")
    return f"{scheme}://{user}:{PASSWORD}@{host}"


@pytest.mark.parametrize(("make", "message"), [
    (lambda url: _with_password(url, port=1), "Connection refused"),
    (lambda url: _with_password(url).replace("/test?", "/no_such_database?"),
     'database "no_such_database" does not exist'),
    (lambda url: _with_password(url).replace("?", "?sslmod=require&"),
     "is not a valid PostgreSQL URL"),
    (lambda url: _with_password(url).replace("schema=", "schema=Not-A-Name"),
     "cannot hold a log"),
    (lambda url: _with_password(url).replace("postgresql://", "postgresql://x@y@"),
     "cannot open the event log"),
])
def test_a_bad_url_or_no_server_is_one_sentence_without_the_password(
        url: str, make, message: str, caplog: pytest.LogCaptureFixture) -> None:
    bad = make(url)
    assert PASSWORD in bad
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreOpenError, match=message) as caught:
        PostgresLog.open(bad)
    text = str(caught.value)
    assert "\n" not in text and PASSWORD not in text
    assert PASSWORD not in caplog.text
    with pytest.raises(StoreOpenError) as again:
        PostgresLog.open(url.replace("?", "?port=1&"), password=PASSWORD)
    assert PASSWORD not in str(again.value) and "port 1 failed" in str(again.value)


async def test_the_password_never_reaches_a_location_a_repr_or_a_log_line(
        url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    target = PostgresTarget.parse(_with_password(url))
    assert target.password == PASSWORD
    assert PASSWORD not in repr(target) and PASSWORD not in target.conninfo
    log = PostgresLog.open(_with_password(url))  # trust auth: the password is not checked
    try:
        assert PASSWORD not in log.location and log.location.endswith(
            f"?schema={target.schema}")
        log.append("chan", [NewEvent("M", {})])
    finally:
        log.close()
    store = await open_store(url, password=PASSWORD)
    try:
        assert PASSWORD not in store.location
        await store.append("chan", NewEvent("M", {}))
        assert len(await store.read_all()) == 2
    finally:
        await store.close()
    assert PASSWORD not in caplog.text


def test_check_finds_a_disabled_trigger_and_the_gap_it_let_through(log: PostgresLog) -> None:
    assert log.check() == []
    with _raw(log) as conn:
        conn.execute("ALTER TABLE events DISABLE TRIGGER events_no_delete")
        conn.execute("DELETE FROM events WHERE event_id = 'e1'")
    details = [str(v) for v in log.check()]
    assert "append-only: the trigger events_no_delete is disabled, not ENABLE ALWAYS" in details
    assert "gap-free versions: stream 'chan' has 1 events but versions 2..2" in details


def test_check_finds_a_trigger_dropped_or_redefined(log: PostgresLog) -> None:
    with _raw(log) as conn:
        conn.execute("DROP TRIGGER events_no_truncate ON events")
        conn.execute("CREATE OR REPLACE FUNCTION personae_take_append_lock() RETURNS trigger "
                     "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$")
        conn.execute("DROP TRIGGER events_no_update ON events")
        conn.execute("CREATE TRIGGER events_no_update BEFORE UPDATE ON events FOR EACH ROW "
                     "EXECUTE FUNCTION personae_refuse_change()")
        conn.execute("ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_update")
    details = [str(v) for v in log.check()]
    assert "append-only: the trigger events_no_truncate is missing" in details
    assert "append-only: the trigger function personae_take_append_lock was changed" in details
    assert any(d.startswith("append-only: the trigger events_no_update was redefined: "
                            "CREATE TRIGGER events_no_update BEFORE UPDATE") for d in details)
    assert len(details) == 3


@pytest.mark.parametrize(("request_", "message"), [
    (AppendRequest("with\x00nul", [NewEvent("M", {})]), "contains a NUL character"),
    (AppendRequest("s", [NewEvent("M\x00", {})]), "contains a NUL character"),
    (AppendRequest("s", [NewEvent("M", {}, event_id="\udc80")]), "is not valid Unicode"),
    (AppendRequest("s", [NewEvent("M", {}, schema_version=2**31)]), "out of range"),
])
def test_text_postgresql_cannot_hold_fails_its_request_alone(
        log: PostgresLog, request_: AppendRequest, message: str) -> None:
    outcomes = log.append_batch([AppendRequest("ok", [NewEvent("M", {})]), request_,
                                 AppendRequest("ok", [NewEvent("M", {})])])
    assert isinstance(outcomes[1], EventStoreError) and message in str(outcomes[1])
    assert [o.positions for o in (outcomes[0], outcomes[2])] == [(3,), (4,)]  # type: ignore[union-attr]
    assert [e.stream_id for e in log.read_all()] == ["chan", "chan", "ok", "ok"]


def test_a_log_stamps_the_streams_its_commits_find_another_writer_appended_to(
        url: str) -> None:
    ours, other = PostgresLog.open(url), PostgresLog.open(url)
    try:
        def stamps() -> list[int]:
            return [ours.others_appended_to(s) for s in ("a", "b", "c")]

        assert stamps() == [0, 0, 0]
        ours.append("a", [NewEvent("M", {}, event_id="1")])
        first = stamps()  # its first commit cannot know what came before: every stream
        assert first[0] == first[1] == first[2] > 0
        ours.append("a", [NewEvent("M", {}, event_id="2")])
        ours.append_batch([AppendRequest("b", (NewEvent("M", {}, event_id="3"),)),
                           AppendRequest("a", (NewEvent("M", {}, event_id="2"),))])
        assert stamps() == first  # its own commits only (a duplicate among them)
        other.append("c", [NewEvent("M", {}, event_id="4")])
        assert stamps() == first  # found at its next commit, not before
        ours.append("a", [NewEvent("M", {}, event_id="5")])
        after = stamps()
        assert after[:2] == first[:2] and after[2] > first[2]  # c only
        ours.append("a", [NewEvent("M", {}, event_id="6")])
        assert stamps() == after
    finally:
        ours.close()
        other.close()
