"""`personae export` / `personae import`: an identical log after a round trip, refusals
that write nothing, and redaction that leaves no user id, name or message text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventstore.sqlite import check_log

from .conftest import GRACE, GRACE_NAME, LINUS, LINUS_NAME, MALLORY, Flow, opened_events

EVENT_COLUMNS = "position, event_id, stream_id, version, type, schema_version, data, " \
                "recorded_at, correlation_id, causation_id"


def _events(path: Path) -> list[tuple]:
    """The log's events as read (content opened: it is sealed in the file, under keys of
    each log's own), data as a dict."""
    if not path.exists():
        return []
    db = opened_events(path)
    try:
        return [(*row[:6], json.loads(row[6]), *row[7:]) for row in db.execute(
            f"SELECT {EVENT_COLUMNS} FROM events ORDER BY position").fetchall()]
    finally:
        db.close()


def _config(root: Path, database: str) -> Path:
    path = root / f"{database}.yaml"
    path.write_text(f"database: {{path: {database}.db}}\n")
    return path


def _in_other_log(flow: Flow, database: str, *args: str) -> tuple[int, str, str]:
    return Flow(flow.root, _config(flow.root, database), flow.root / f"{database}.db",
                flow.fake).invoke(*args)


async def test_export_then_import_gives_an_identical_log(flow: Flow):
    exported = flow.root / "export.jsonl"
    code, _, err = flow.invoke("export", "-o", str(exported))
    assert code == 0 and "exported" in err
    original = _events(flow.log_path)
    assert len(exported.read_text().splitlines()) == len(original)
    code, out, err = _in_other_log(flow, "copy", "import", str(exported))
    assert code == 0, err
    assert f"imported {len(original)} events" in out
    assert _events(flow.root / "copy.db") == original
    assert check_log(flow.root / "copy.db") == []
    # and to standard output, the same lines
    code, out, _ = flow.invoke("export")
    assert out == exported.read_text()


async def test_import_refuses_a_log_with_events_and_a_bad_file_writing_nothing(flow: Flow):
    exported = flow.root / "export.jsonl"
    flow.invoke("export", "-o", str(exported))
    code, _, err = flow.invoke("import", str(exported))
    assert code == 2 and "already holds events" in err
    lines = exported.read_text().splitlines()
    broken = flow.root / "broken.jsonl"
    broken.write_text("\n".join([*lines[:5], "{not json", *lines[5:]]) + "\n")
    code, _, err = _in_other_log(flow, "broken", "import", str(broken))
    assert code == 2 and f"{broken}:6: not a JSON line" in err
    assert _events(flow.root / "broken.db") == []
    gap = json.loads(lines[3])
    gap["version"] += 5
    gapped = flow.root / "gapped.jsonl"
    gapped.write_text("\n".join([*lines[:3], json.dumps(gap), *lines[4:]]) + "\n")
    code, _, err = _in_other_log(flow, "gapped", "import", str(gapped))
    assert code == 2 and "jumps to version" in err
    assert _events(flow.root / "gapped.db") == []


async def test_redaction_leaves_no_user_id_name_or_message_text(flow: Flow, monkeypatch):
    monkeypatch.setenv("PERSONAE_REDACT_KEY", "test-key")
    code, out, err = flow.invoke("export", "--redact")
    assert code == 0, err
    replies = [r[0] for r in flow.rows("SELECT json_extract(data, '$.text') FROM events "
                                       "WHERE type = 'ModelReplied'")]
    secrets = [GRACE, LINUS, MALLORY, GRACE_NAME, LINUS_NAME, "Grace_Hopper", "Mallory",
               *flow.texts, *replies]
    for secret in secrets:
        assert secret not in out, secret
    for word in ("COBOL", "compiler", "password", "kernels", "generator?"):
        assert word not in out
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == len(_events(flow.log_path))
    received = [r for r in records if r["type"] == "MessageReceived"]
    assert {r["data"]["text"] for r in received} == {"[redacted]"}
    authors = {r["data"]["author_id"] for r in received}
    assert len(authors) == 4 and all(a.startswith("user-") for a in authors)  # 3 people, 1 bot
    # stable: the same key gives the same pseudonyms, and the export still imports
    assert flow.invoke("export", "--redact")[1] == out
    redacted = flow.root / "redacted.jsonl"
    redacted.write_text(out)
    code, _, err = _in_other_log(flow, "redacted", "import", str(redacted))
    assert code == 0, err


@pytest.mark.parametrize("conversation", ["dm-linus"])
async def test_export_takes_the_replay_filters(flow: Flow, conversation: str):
    code, out, _ = flow.invoke("export", "-c", conversation)
    assert code == 0
    streams = {json.loads(line)["stream_id"] for line in out.splitlines()}
    assert streams == {f"conv:test:{conversation}"}
