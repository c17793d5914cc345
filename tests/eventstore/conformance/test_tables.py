"""Projection table operations mean the same on every backend: a projection written once
runs on SQLite, PostgreSQL and in memory, and a rebuild compares equal to the live one."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from eventstore import (
    AppendRequest,
    Column,
    EventStoreError,
    NewEvent,
    NoSuchTable,
    Projection,
    RecordedEvent,
    Table,
    TableWriter,
)

from ..backends import Backend


class Ledger(Projection):
    """Exercises every operation: ``Op`` events carry the operation to run."""

    name = "ledger"
    tables = (Table(name="ledger", columns=(
        Column(name="account", type="text"), Column(name="kind", type="text"),
        Column(name="amount", type="integer"), Column(name="rate", type="real"),
        Column(name="note", type="text", nullable=True)), key=("account", "kind")),)
    types: ClassVar[frozenset[str] | None] = frozenset({"Op"})

    def apply(self, tables: TableWriter, event: RecordedEvent) -> None:
        op: dict[str, Any] = dict(event.data)
        kind = op.pop("op")
        if kind == "insert":
            tables.insert("ledger", op["row"], on_conflict=op.get("conflict", "error"))
        elif kind == "add":
            tables.add("ledger", op["key"], op["amounts"])
        elif kind == "update":
            tables.update("ledger", op["where"], op["values"])
        elif kind == "delete":
            tables.delete("ledger", op["where"])


def _row(account: str, kind: str, amount: int, rate: float = 1.0,
         note: str | None = None) -> dict[str, Any]:
    return {"account": account, "kind": kind, "amount": amount, "rate": rate, "note": note}


def _ops(log: Any, *ops: dict[str, Any]) -> None:
    log.append("ops", [NewEvent("Op", op) for op in ops])


def test_every_operation_and_a_rebuild_that_agrees(backend: Backend) -> None:
    log = backend.open_log(projections=[Ledger()])
    try:
        _ops(log,
             {"op": "insert", "row": _row("a", "x", 1)},
             {"op": "insert", "row": _row("a", "x", 99), "conflict": "ignore"},
             {"op": "insert", "row": _row("b", "x", 2, 0.5, "n")},
             {"op": "insert", "row": _row("b", "x", 3, 0.25), "conflict": "replace"},
             {"op": "add", "key": {"account": "a", "kind": "x"}, "amounts": {"amount": 10,
                                                                           "rate": 0.5}},
             {"op": "add", "key": {"account": "c", "kind": "y"}, "amounts": {"amount": 4,
                                                                           "rate": 2}},
             {"op": "insert", "row": _row("d", "y", 7)},
             {"op": "update", "where": {"kind": "y"}, "values": {"note": "why"}},
             {"op": "delete", "where": {"account": "d"}})
        _ops(log, {"op": "noise"})
        log.append("other", [NewEvent("NotAnOp", {"op": "delete", "where": {}})])
        assert log.rows("ledger", order_by=["account"]) == [
            _row("a", "x", 11, 1.5), _row("b", "x", 3, 0.25), _row("c", "y", 4, 2.0, "why")]
        assert log.rows("ledger", {"account": ("a", "c")}, order_by=["account"]) == [
            _row("a", "x", 11, 1.5), _row("c", "y", 4, 2.0, "why")]
        assert log.rows("ledger", {"kind": "x"}, order_by=["amount"], limit=1) == [
            _row("b", "x", 3, 0.25)]
        assert log.rows("ledger", {"account": "zz"}) == []
        assert log.rebuild_and_compare(Ledger()) == []
        assert log.projection_state("ledger") == (1, log.last_position())
    finally:
        log.close()


def test_an_insert_over_an_existing_key_fails_the_request_alone(backend: Backend) -> None:
    log = backend.open_log(projections=[Ledger()])
    try:
        _ops(log, {"op": "insert", "row": _row("a", "x", 1)})
        with pytest.raises(EventStoreError):
            _ops(log, {"op": "insert", "row": _row("z", "z", 5)},
                 {"op": "insert", "row": _row("a", "x", 2)})
        assert log.rows("ledger") == [_row("a", "x", 1)]
        assert log.last_position() == 1
    finally:
        log.close()


def test_a_null_in_a_column_that_refuses_it_fails_the_request(backend: Backend) -> None:
    log = backend.open_log(projections=[Ledger()])
    try:
        with pytest.raises(EventStoreError):
            _ops(log, {"op": "insert", "row": {**_row("a", "x", 1), "amount": None}})
        assert log.rows("ledger") == [] and log.last_position() == 0
    finally:
        log.close()


def test_reading_a_table_no_projection_made_here_says_so(backend: Backend) -> None:
    log = backend.open_log()
    try:
        with pytest.raises(NoSuchTable, match="ledger"):
            log.rows("ledger")
        assert log.projection_state("ledger") is None
    finally:
        log.close()


def test_tables_are_readable_without_registering_the_projection(backend: Backend) -> None:
    """What a command-line tool does: read a projection's tables, never apply it."""
    log = backend.open_log(projections=[Ledger()])
    _ops(log, {"op": "insert", "row": _row("a", "x", 1)})
    log.close()
    plain = backend.open_log()
    try:
        assert plain.rows("ledger") == [_row("a", "x", 1)]
        assert plain.reader().rows("ledger") == [_row("a", "x", 1)]
    finally:
        plain.close()


def test_two_projections_may_not_claim_one_table(backend: Backend) -> None:
    class Copy(Ledger):
        name = "copy"

    with pytest.raises(ValueError, match="both declare the table ledger"):
        backend.open_log(projections=[Ledger(), Copy()])


def test_a_batch_mixing_projected_and_other_requests_keeps_each_outcome(
        backend: Backend) -> None:
    """Requests the projection reads and requests it does not, in one group commit; one
    of the former fails in its projection: only it is undone, positions stay contiguous,
    the projection's position is the batch's end."""
    log = backend.open_log(projections=[Ledger()])
    try:
        _ops(log, {"op": "insert", "row": _row("a", "x", 1)})
        outcomes = log.append_batch([
            AppendRequest("plain", [NewEvent("Said", {}), NewEvent("Said", {})]),
            AppendRequest("ops", [NewEvent("Op", {"op": "insert", "row": _row("b", "x", 2)})]),
            AppendRequest("plain", [NewEvent("Said", {})]),
            AppendRequest("ops", [NewEvent("Op", {"op": "insert", "row": _row("a", "x", 9)})]),
            AppendRequest("plain", [NewEvent("Said", {})]),
        ], recorded=True)
        assert [type(o).__name__ for o in outcomes] == [
            "AppendResult", "AppendResult", "AppendResult", "EventStoreError", "AppendResult"]
        assert [o.positions for o in outcomes if not isinstance(o, Exception)] == [
            (2, 3), (4,), (5,), (6,)]
        assert [[e.position for e in o.written] for o in outcomes
                if not isinstance(o, Exception)] == [[2, 3], [4], [5], [6]]
        assert [(e.position, e.stream_id) for e in log.read_all()] == [
            (1, "ops"), (2, "plain"), (3, "plain"), (4, "ops"), (5, "plain"), (6, "plain")]
        assert log.rows("ledger", order_by=["account"]) == [_row("a", "x", 1), _row("b", "x", 2)]
        assert log.projection_state("ledger") == (1, 6)
        assert log.rebuild_and_compare(Ledger()) == []
    finally:
        log.close()
