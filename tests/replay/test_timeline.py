"""`personae replay`: every event kind in the timeline, JSON lines, filters and --follow."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

from core.cli.events import event_as_json
from eventstore import NewEvent, SQLiteLog

from .conftest import GRACE, LINUS, MALLORY, ROOT, Flow

# Each kind of event, and a phrase its timeline line must contain.
EXPECTED = {
    "PersonaVersionRecorded": "persona ada version",
    "QuotaReset": "ada's quota window starts again",
    "GatewayConnected": "discord gateway connected (session session-1, shard 0)",
    "GatewayResumed": "discord gateway resumed",
    "GatewayDisconnected": "discord gateway disconnected",
    "MessageReceived": f'Grace Hopper ({GRACE}) said "@ada what is a decorator?"',
    "MessageEdited": 'edited to "@ada hello, I am writing a COBOL compiler"',
    "MessageDeleted": "deleted",
    "ConversationReset": f"conversation reset by {GRACE}",
    "PersonaTriggered": "bob triggered by keyword",
    "TriggerRejected": f"from {MALLORY}: permission:user_denied",
    "ModelReplied": "Ada replied via fake/fake-model:",
    "ModelFailed": "ada failed on message",
    "ReplyDelivered": "delivered as out",
    "ReplyFailed": "not delivered: the channel is gone",
}


async def test_the_timeline_shows_every_event_kind_in_order(flow: Flow):
    code, out, err = flow.invoke("replay")
    assert code == 0, err
    lines = out.splitlines()
    events = flow.rows("SELECT position, type FROM events ORDER BY position")
    assert len(lines) == len(events)
    kinds = {t for _, t in events}
    assert kinds == set(EXPECTED), "the flow must produce every kind the timeline describes"
    for (position, kind), line in zip(events, lines, strict=True):
        assert line.split()[0] == str(position) and f"  {kind}  " in line
    for kind, phrase in EXPECTED.items():
        assert any(f"  {kind}  " in line and phrase in line for line in lines), kind
    replied = next(line for line in lines if "ModelReplied" in line and "decorator" in line)
    assert "tokens (" in replied and "1 attempt" in replied and "s, " in replied
    assert "\x1b[" not in out, "piped output is plain"


async def test_json_lines_are_the_stored_events(flow: Flow):
    code, out, _ = flow.invoke("replay", "--json")
    assert code == 0
    log = SQLiteLog.open(flow.log_path, create=False)
    try:
        expected = [event_as_json(e) for e in log.read_all()]
    finally:
        log.close()
    assert [json.loads(line) for line in out.splitlines()] == expected


async def test_filters_conversation_persona_user_type_time_and_positions(flow: Flow):
    def positions(*args: str) -> list[int]:
        code, out, err = flow.invoke("replay", "--json", *args)
        assert code == 0, err
        return [json.loads(line)["position"] for line in out.splitlines()]

    def expected(sql: str, *params: object) -> list[int]:
        return [r[0] for r in flow.rows(f"SELECT position FROM events WHERE {sql} "
                                        "ORDER BY position", *params)]

    assert positions("-c", "dm-linus") == expected("stream_id = 'conv:test:dm-linus'")
    assert positions("-c", "conv:test:c1") == expected("stream_id = 'conv:test:c1'")
    assert positions("-t", "ModelReplied", "-t", "ModelFailed") == expected(
        "type IN ('ModelReplied', 'ModelFailed')")
    bob = positions("--persona", "bob")
    assert bob == expected("json_extract(data, '$.persona_id') = 'bob' OR "
                           "(type = 'MessageReceived' AND instr(data, '\"bob\"') > 0)")
    assert bob and all(p in bob for p in expected(
        "type = 'ModelReplied' AND json_extract(data, '$.persona_id') = 'bob'"))
    mallory = positions("--user", MALLORY)
    assert mallory == expected("json_extract(data, '$.author_id') = ?", MALLORY)
    assert len(positions("--user", LINUS, "-t", "MessageReceived")) == 5
    assert positions("--from-position", "5", "--to-position", "9") == [5, 6, 7, 8, 9]
    assert positions("--since", "1h") == expected("1")
    assert positions("--until", "2000-01-01") == []
    code, _, err = flow.invoke("replay", "--since", "yesterday-ish")
    assert code == 2 and "neither a date/time" in err
    code, _, err = flow.invoke("replay", "-c", "no-such-channel")
    assert code == 2 and "no conversation 'no-such-channel'" in err


async def test_follow_tails_events_another_process_appends(flow: Flow):
    env = {k: v for k, v in os.environ.items() if k != "PERSONAE_CONFIG"}
    process = subprocess.Popen(  # noqa: ASYNC220  (its pipe is read on a thread below)
        [sys.executable, "-m", "core.cli", "--config", str(flow.config), "replay", "--follow",
         "--json", "-t", "Noted"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
        env=env)
    try:
        await asyncio.sleep(0.5)  # let it start and find nothing yet
        log = SQLiteLog.open(flow.log_path)
        try:
            for i in range(3):
                log.append("notes", [NewEvent("Noted", {"i": i}, event_id=f"note-{i}")])
                log.append("other", [NewEvent("Ignored", {"i": i})])
        finally:
            log.close()
        seen = []
        deadline = time.monotonic() + 20
        assert process.stdout is not None
        while len(seen) < 3 and time.monotonic() < deadline:
            line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline),
                                          deadline - time.monotonic())
            if line:
                seen.append(json.loads(line))
        assert [(e["event_id"], e["data"]) for e in seen] == [
            (f"note-{i}", {"i": i}) for i in range(3)]
        assert process.poll() is None, "it keeps following"
    finally:
        process.terminate()
        process.wait(10)
