"""`personae import` checks every event before anything is written: the columns, the
data against its catalogue type and schema version, and the positions; a refusal names
the file and line, exits 2 and leaves the log empty."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import Flow
from .test_transfer import _in_other_log


def _first(records: list[dict[str, Any]], event_type: str) -> int:
    return next(i for i, r in enumerate(records) if r["type"] == event_type)


def _drop_platform(records: list[dict[str, Any]]) -> int:
    index = _first(records, "MessageReceived")
    del records[index]["data"]["platform"]
    return index


def _author_is_a_number(records: list[dict[str, Any]]) -> int:
    index = _first(records, "MessageReceived")
    records[index]["data"]["author_id"] = 5
    return index


def _unknown_schema_version(records: list[dict[str, Any]]) -> int:
    index = _first(records, "ModelReplied")
    records[index]["schema_version"] = 99
    return index


def _unknown_type(records: list[dict[str, Any]]) -> int:
    records[3]["type"] = "Mystery"
    return 3


def _made_up_refusal(records: list[dict[str, Any]]) -> int:
    index = _first(records, "TriggerRejected")
    records[index]["data"]["reason"] = "made_up:thing"
    return index


def _last_position_at_the_end_of_int64(records: list[dict[str, Any]]) -> int:
    records[-1]["position"] = 2**63 - 1
    return len(records) - 1


def _a_jump_of_a_million(records: list[dict[str, Any]]) -> int:
    for record in records[10:]:
        record["position"] += 1_000_000
    return 10


def _recorded_in_no_year(records: list[dict[str, Any]]) -> int:
    records[4]["recorded_at"] = 1e300
    return 4


def _usage_is_a_list(records: list[dict[str, Any]]) -> int:
    index = _first(records, "ModelReplied")
    records[index]["data"]["usage"] = ["a", "list"]
    return index


@pytest.mark.parametrize(("spoil", "says"), [
    (_drop_platform, "MessageReceived needs the field 'platform', which is missing"),
    (_author_is_a_number, "field 'author_id' is an integer, not str"),
    (_unknown_schema_version, "ModelReplied schema version 99 is not one this personae reads"),
    (_unknown_type, "the event type 'Mystery' is not one this personae knows"),
    (_made_up_refusal, "TriggerRejected field 'reason' is a string, not"),
    (_last_position_at_the_end_of_int64, "is past the most an import takes"),
    (_a_jump_of_a_million, "position 1000011 follows 10"),
    (_recorded_in_no_year, "recorded_at 1e+300 is not a time"),
    (_usage_is_a_list, "ModelReplied field 'usage' is a list"),
])
async def test_an_import_that_would_break_the_log_is_refused_by_line_writing_nothing(
        flow: Flow, spoil: Callable[[list[dict[str, Any]]], int], says: str) -> None:
    exported = flow.root / "export.jsonl"
    assert flow.invoke("export", "-o", str(exported))[0] == 0
    records = [json.loads(line) for line in exported.read_text().splitlines()]
    index = spoil(records)
    spoiled = flow.root / "spoiled.jsonl"
    spoiled.write_text("".join(json.dumps(r) + "\n" for r in records))

    code, out, err = _in_other_log(flow, "target", "import", str(spoiled))

    assert (code, out) == (2, "")
    assert f"{spoiled}:{index + 1}:" in err and says in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    with sqlite3.connect(flow.root / "target.db") as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)


async def test_a_filtered_export_imports_only_when_said_to_be_partial(flow: Flow) -> None:
    code, out, _ = flow.invoke("export", "-c", "dm-linus")
    assert code == 0
    partial = flow.root / "dm.jsonl"
    partial.write_text(out)
    code, _, err = _in_other_log(flow, "whole", "import", str(partial))
    assert code == 2 and "a filtered export? import it with --partial" in err
    code, imported, err = _in_other_log(flow, "part", "import", "--partial", str(partial))
    assert code == 0, err
    assert f"imported {len(out.splitlines())} events" in imported
