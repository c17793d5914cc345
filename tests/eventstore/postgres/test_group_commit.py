"""A group commit on PostgreSQL: a few round trips whatever the number of requests (the
projections' changes written behind, see eventstore/postgres/overlay.py), a failing
request undone alone without a savepoint, and the savepoint way when the database
refuses what the overlay wrote.

What the server is sent is read from libpq's own trace of each connection the log's pool
opens (PQtrace): a statement is an Execute or a simple Query message; a round trip is
the client waiting for the server after sending (a message from the client followed by
one from the server)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from psycopg import pq

from eventstore import (
    AppendRequest,
    Column,
    EventStoreError,
    NewEvent,
    Projection,
    RecordedEvent,
    Table,
    TableReader,
    TableWriter,
)
from eventstore.postgres import PostgresLog
from eventstore.sealing import Seal

from .. import pgserver


class Overdrawn(EventStoreError):
    pass


class Accounts(Projection):
    """Balances, a row per payment (its id may not repeat), and how many payments left an
    account rich or poor: a read, an insert that must not find its key, and an addition to
    a row whose key comes from what was read."""

    name = "accounts"
    types: ClassVar[frozenset[str] | None] = frozenset({"Paid", "Renamed"})
    tables = (
        Table(name="balances", columns=(Column(name="account", type="text"),
                                        Column(name="balance", type="integer")),
              key=("account",)),
        Table(name="payments", columns=(Column(name="payment", type="text"),
                                        Column(name="account", type="text")),
              key=("payment",)),
        Table(name="standing", columns=(Column(name="name", type="text"),
                                        Column(name="count", type="integer")),
              key=("name",)),
    )

    def admit(self, tables: TableReader, event: RecordedEvent) -> None:
        if event.type == "Paid" and event.data["amount"] < 0:
            rows = tables.rows("balances", {"account": event.data["account"]})
            if not rows or rows[0]["balance"] + event.data["amount"] < 0:
                raise Overdrawn(f"{event.data['account']} would be overdrawn")

    def apply(self, tables: TableWriter, event: RecordedEvent) -> None:
        account = event.data["account"]
        if event.type == "Renamed":  # a key changed: what only the database does exactly
            tables.update("balances", {"account": account}, {"account": event.data["to"]})
            return
        tables.insert("payments", {"payment": event.data["payment"], "account": account})
        tables.add("balances", {"account": account}, {"balance": event.data["amount"]})
        (row,) = tables.rows("balances", {"account": account})
        tables.add("standing", {"name": "rich" if row["balance"] >= 100 else "poor"},
                   {"count": 1})


@dataclass
class Wire:
    """libpq's trace of every connection opened while it is installed."""

    directory: Path
    connections: list[psycopg.Connection] = field(default_factory=list)

    @contextmanager
    def watching(self) -> Iterator[list[str]]:
        """The messages sent and received inside the block (filled in at its end)."""
        lines: list[str] = []
        files = []
        for index, conn in enumerate(self.connections):
            files.append(file := (self.directory / f"trace-{index}.txt").open("w+"))
            conn.pgconn.trace(file.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield lines
        finally:
            for conn in self.connections[:len(files)]:
                conn.pgconn.untrace()  # flushes what libpq buffered
            for file in files:
                file.seek(0)
                lines += file.read().splitlines()
                file.close()


def statements(lines: list[str]) -> int:
    return sum(1 for line in lines if line.split("\t")[2:3] in (["Execute"], ["Query"]))


def _read(lines: list[str], table: str) -> bool:
    """Whether the traced statements read rows of ``table`` by key."""
    return any(line.split("\t")[2:3] == ["Parse"] and f'"{table}" AS t JOIN' in line
               for line in lines)


def round_trips(lines: list[str]) -> int:
    directions = [line[:1] for line in lines if line[:1] in "FB"]
    return sum(1 for sent, got in pairwise(directions) if sent == "F" and got == "B")


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Wire:
    found = Wire(tmp_path)
    connect = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]

    def traced(cls: type[psycopg.Connection], *args: Any, **kwargs: Any) -> psycopg.Connection:
        conn = connect(cls, *args, **kwargs)
        found.connections.append(conn)
        return conn

    monkeypatch.setattr(psycopg.Connection, "connect", classmethod(traced))
    return found


@pytest.fixture
def log(wire: Wire) -> Iterator[PostgresLog]:
    opened = PostgresLog.open(pgserver.new_schema_url(), projections=[Accounts()])
    yield opened
    opened.close()


def _paid(account: str, amount: int, payment: str) -> NewEvent:
    return NewEvent("Paid", {"account": account, "amount": amount, "payment": payment})


def _batch(prefix: str, n: int) -> list[AppendRequest]:
    """``n`` requests over n // 4 + 1 accounts; the second is refused by admit, the third
    repeats the first's payment id: both fail alone."""
    requests = [AppendRequest(f"{prefix}-{i % 4}", [
        _paid(f"{prefix}-{i % 4}", 60, f"{prefix}-p{i}")]) for i in range(n)]
    requests[1] = AppendRequest(f"{prefix}-1", [_paid(f"{prefix}-1", -1000, f"{prefix}-x")])
    requests[2] = AppendRequest(f"{prefix}-2", [_paid(f"{prefix}-2", 5, f"{prefix}-p0")])
    return requests


def _balances(log: PostgresLog, prefix: str) -> dict[str, int]:
    return {row["account"]: row["balance"] for row in log.rows("balances")
            if row["account"].startswith(prefix)}


def test_a_group_commit_makes_as_many_round_trips_for_64_requests_as_for_4(
        log: PostgresLog, wire: Wire) -> None:
    # both rows of the standing exist and are held since: each batch reads the same tables
    log.append_batch(_batch("warm", 8))
    cost = {}
    for n in (4, 64):
        with wire.watching() as lines:
            outcomes = log.append_batch(_batch(f"n{n}", n))
        assert [isinstance(o, EventStoreError) for o in outcomes] == [
            False, True, True] + [False] * (n - 3)
        assert "SAVEPOINT" not in "\n".join(lines)
        cost[n] = (statements(lines), round_trips(lines))
    assert cost[64] == cost[4]
    # BEGIN, the lock and the lookups; the rows the projection reads; the rows, its
    # changes, the positions and COMMIT
    assert cost[4][1] == 3, cost
    assert _balances(log, "n64-") == {f"n64-{i}": 60 * 16 - (60 if i in (1, 2) else 0)
                                      for i in range(4)}
    assert log.rebuild_and_compare(Accounts()) == []


def test_the_content_keys_a_group_commit_makes_wait_for_the_server_with_its_rows(
        log: PostgresLog, wire: Wire) -> None:
    """New people's messages need new keys: they are looked for (a round trip whose answer
    decides what is made) and the ones made go with the rows, not in a round trip of
    their own."""
    def said(who: str) -> AppendRequest:
        return AppendRequest(f"talk-{who}", [NewEvent(
            "Said", {"who": who, "text": f"hello from {who}"},
            seals=(Seal(subject=who, fields={"text": ""}),))])

    log.append_batch([said("warm")])
    with wire.watching() as lines:
        outcomes = log.append_batch([said(f"new-{i}") for i in range(8)])
    assert not any(isinstance(o, EventStoreError) for o in outcomes)
    # BEGIN, the lock and the lookups; the keys looked for; the keys, the rows and COMMIT
    assert round_trips(lines) == 3
    assert sum("INSERT INTO content_keys" in line for line in lines
               if line.split("\t")[2:3] == ["Parse"]) == 1
    assert [e.data["text"] for e in log.read_all()][1:] == [
        f"hello from new-{i}" for i in range(8)]
    assert log.key_table().counts().keys == 9


def test_a_failing_request_leaves_no_change_while_its_neighbours_on_the_same_rows_keep_theirs(
        log: PostgresLog, wire: Wire) -> None:
    log.append("a", [_paid("a", 100, "p1")])
    with wire.watching() as lines:
        outcomes = log.append_batch([
            AppendRequest("a", [_paid("a", -30, "p2")]),
            # changes a's balance and the standing, then fails on its second event
            AppendRequest("a", [_paid("a", 500, "p3"), _paid("a", -5000, "p4")]),
            AppendRequest("a", [_paid("a", -60, "p5")]),
            AppendRequest("b", [_paid("b", 7, "p1")]),  # a payment id taken: fails
            AppendRequest("b", [_paid("b", 8, "p6")]),
        ])
    assert "SAVEPOINT" not in "\n".join(lines)
    assert [type(o).__name__ for o in outcomes] == [
        "AppendResult", "Overdrawn", "AppendResult", "EventStoreError", "AppendResult"]
    assert _balances(log, "") == {"a": 10, "b": 8}
    assert {row["payment"] for row in log.rows("payments")} == {"p1", "p2", "p5", "p6"}
    assert {row["name"]: row["count"] for row in log.rows("standing")} == {"rich": 1, "poor": 3}
    assert [e.data["payment"] for e in log.read_all()] == ["p1", "p2", "p5", "p6"]
    assert log.projection_position("accounts") == log.last_position() == 4
    assert log.rebuild_and_compare(Accounts()) == []


def test_what_the_database_refuses_of_the_overlay_is_appended_again_with_savepoints(
        log: PostgresLog, wire: Wire) -> None:
    """A balance past 64 bits (Python's integers have no limit; the database's do) and a
    key changed by an update: the batch goes the savepoint way, each request gets the
    outcome the database gives it."""
    with wire.watching() as lines:
        outcomes = log.append_batch([
            AppendRequest("a", [_paid("a", 2**62, "p1")]),
            AppendRequest("a", [_paid("a", 2**62, "p2")]),  # past 2**63 - 1: refused
            AppendRequest("b", [_paid("b", 1, "p3")]),
            AppendRequest("b", [NewEvent("Renamed", {"account": "b", "to": "c"})]),
        ])
    assert "SAVEPOINT" in "\n".join(lines)
    assert [type(o).__name__ for o in outcomes] == [
        "AppendResult", "EventStoreError", "AppendResult", "AppendResult"]
    assert "out of range" in str(outcomes[1])
    assert _balances(log, "") == {"a": 2**62, "c": 1}
    assert log.last_position() == 3
    assert log.rebuild_and_compare(Accounts()) == []


def _idle_sessions(wire: Wire) -> list[psycopg.Connection]:
    """The log's pooled connections (open, idle, none of them a listener)."""
    return [conn for conn in wire.connections if not conn.closed
            and conn.info.transaction_status == pq.TransactionStatus.IDLE
            and "listener" not in (conn.info.parameter_status("application_name") or "")]


def _sequential_scans(wire: Wire, schema: str) -> dict[str, int]:
    """Sequential scans of each table of ``schema`` so far, every session's counted."""
    for conn in _idle_sessions(wire):
        conn.execute("SELECT pg_stat_force_next_flush()")  # flushed as the session goes idle
    with pgserver.admin() as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return {name: int(count) for name, count in conn.execute(
            "SELECT relname, seq_scan FROM pg_stat_user_tables WHERE schemaname = %s",
            (schema,)).fetchall()}


def test_appends_plan_each_statement_once_and_never_scan_a_table_the_log_has_grown(
        log: PostgresLog, wire: Wire) -> None:
    """Generic plans for an append's statements, made while the log is new and its
    tables tiny: they must go by index (a plan made for a tiny table would scan it
    sequentially for as long as the connection lives, however large it grows)."""
    schema = log.target.schema
    for n in range(12):  # psycopg prepares a statement at its sixth execution
        log.append_batch(_batch(f"new{n}", 4))
    before = _sequential_scans(wire, schema)
    for n in range(40):
        log.append_batch(_batch(f"grown{n}", 64))
    after = _sequential_scans(wire, schema)
    tables = {"events", "projection_positions", "balances", "payments", "standing"}
    assert tables <= after.keys()
    assert {t: after[t] - before.get(t, 0) for t in tables} == dict.fromkeys(tables, 0)
    plans = [row for conn in _idle_sessions(wire) for row in conn.execute(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
        "WHERE statement LIKE 'INSERT INTO events %' OR statement LIKE '%unnest%'")]
    assert plans, "no append statement was prepared"
    assert all(custom == 0 and generic >= 1 for _, generic, custom in plans), plans
    assert log.rebuild_and_compare(Accounts()) == []


class CountedAccounts(Accounts):
    """Accounts, counting the events it applies."""

    def __init__(self) -> None:
        self.applied = 0

    def apply(self, tables: TableWriter, event: RecordedEvent) -> None:
        self.applied += 1
        super().apply(tables, event)


def test_a_pass_whose_guesses_the_database_bears_out_is_not_run_again(wire: Wire) -> None:
    """New keys (a payment's, a new account's) are read in one round trip and found
    absent, as the pass guessed: each event is applied once. A key that exists is a wrong
    guess: the requests from it on are applied again, with the rows read."""
    counted = CountedAccounts()
    url = pgserver.new_schema_url()
    log = PostgresLog.open(url, projections=[counted])
    try:
        log.append_batch([AppendRequest("warm", [_paid("warm", 1, "w")])])
        counted.applied = 0
        with wire.watching() as lines:
            log.append_batch([AppendRequest(f"a{i}", [_paid(f"a{i}", 10, f"p{i}")])
                              for i in range(8)])
        assert counted.applied == 8
        assert round_trips(lines) == 3  # the lock and lookups; the rows missed; the rest
        other = PostgresLog.open(url, projections=[Accounts()])
        try:  # another process pays a3 and a5: the first log holds neither row as it is now
            other.append_batch([AppendRequest("a3", [_paid("a3", 100, "q3")]),
                                AppendRequest("a5", [_paid("a5", 100, "q5")])])
        finally:
            other.close()
        # what the first log held is dropped: a3 is read afresh
        log.append_batch([AppendRequest(f"b{i}", [_paid(f"b{i}", 1, f"r{i}")])
                          for i in range(3)] + [AppendRequest("a3", [_paid("a3", 1, "s3")])])
        counted.applied = 0
        outcomes = log.append_batch([AppendRequest("c0", [_paid("c0", 1, "t0")]),
                                     AppendRequest("a5", [_paid("a5", -105, "t1")]),
                                     AppendRequest("c1", [_paid("c1", 1, "t2")])])
        assert not any(isinstance(o, EventStoreError) for o in outcomes), outcomes
        # c0 is new, a5 is not held: the pass guessed a5 had no balance and refused its
        # payment (applied: c0, c1), which the database belies; the pass is run again from
        # c0, the first guess
        assert counted.applied == 2 + 3
        assert _balances(log, "a") == {**{f"a{i}": 10 for i in range(8)}, "a3": 111, "a5": 5}
        assert log.rebuild_and_compare(Accounts()) == []
    finally:
        log.close()


def test_the_rows_an_append_read_are_kept_for_the_next_until_another_writer_appends(
        wire: Wire) -> None:
    """The second batch on the same accounts reads no balance (only whether its new
    payment ids exist); after another process's append the rows are read again, and every
    balance is the database's (two writers taking turns on the same rows end as one
    would)."""
    url = pgserver.new_schema_url()
    first = PostgresLog.open(url, projections=[Accounts()])
    second = PostgresLog.open(url, projections=[Accounts()])
    try:
        first.append_batch([AppendRequest(f"k{i}", [_paid(f"k{i}", 50, f"f{i}")])
                            for i in range(4)])
        with wire.watching() as lines:
            first.append_batch([AppendRequest(f"k{i}", [_paid(f"k{i}", 50, f"g{i}")])
                                for i in range(4)])
        assert not _read(lines, "balances") and _read(lines, "payments")
        for turn in range(6):
            writer = (first, second)[turn % 2]
            outcomes = writer.append_batch([
                AppendRequest(f"k{i}", [_paid(f"k{i}", 10 + turn, f"t{turn}-{i}")])
                for i in range(4)] + [AppendRequest("k0", [_paid("k0", -1000, f"x{turn}")])])
            assert [isinstance(o, EventStoreError) for o in outcomes] == [False] * 4 + [True]
        with wire.watching() as lines:
            first.append_batch([AppendRequest("k1", [_paid("k1", 1, "last")])])
        assert _read(lines, "balances")  # the second wrote last: k1 is read again
        expected = 100 + sum(10 + turn for turn in range(6))
        assert _balances(first, "k") == {"k0": expected, "k1": expected + 1, "k2": expected,
                                         "k3": expected}
        assert first.rebuild_and_compare(Accounts()) == []
    finally:
        first.close()
        second.close()
