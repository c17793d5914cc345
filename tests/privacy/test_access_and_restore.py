"""A data-access request (`export --user`): one person's data as JSON lines, everyone
else's redacted; and a backup restored after a forget (`db restore`, `db copy`): the
forgotten person does not come back, and without the erasure ledger the restore is
refused."""

from __future__ import annotations

import json
import shutil

from tests.eventstore import pgserver
from tests.replay.conftest import GRACE, GRACE_NAME, LINUS, LINUS_NAME, MALLORY, Flow

GRACE_TEXT = "@ada what is a decorator?"
LINUS_TEXT = "bob, what do you think of kernels?"


async def test_export_of_one_user_holds_their_data_and_redacts_everyone_else(flow: Flow):
    code, out, err = flow.invoke("export", "--user", GRACE)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert records and all(set(r) >= {"position", "event_id", "type", "data"} for r in records)
    text = out
    assert GRACE_TEXT in text and GRACE_NAME in text
    assert any(r["type"] == "ModelReplied" and GRACE_TEXT in r["data"]["text"]
               for r in records)  # the replies to her are hers to see
    for other in (LINUS, LINUS_NAME, LINUS_TEXT, MALLORY, "Mallory"):
        assert other not in text, other
    people = {r["data"].get("author_id") for r in records} - {None}
    assert people <= {GRACE, "[redacted]"}


async def test_a_backup_from_before_a_forget_does_not_bring_the_person_back(flow: Flow):
    backup = flow.root / "before.db"
    code, out, err = flow.invoke("db", "backup", str(backup))
    assert code == 0, err
    assert f"apart in {backup}.keys" in out
    # the backup's events hold no key: stolen alone, it holds nothing readable
    assert (flow.root / "before.db.keys").is_file()
    assert b"content_keys" in backup.read_bytes()  # the table is there, empty
    code, _, err = flow.invoke("forget", GRACE)
    assert code == 0, err
    # the log is lost; the backup from before the forget is all there is
    for path in flow.root.glob("log.db*"):
        path.unlink()
    code, out, err = flow.invoke("db", "restore", str(backup))
    assert code == 0, err
    assert "forgot again 1 person(s) the erasure ledger lists" in out
    code, replay, _ = flow.invoke("replay")
    assert GRACE_TEXT not in replay and GRACE_NAME not in replay
    assert LINUS_TEXT in replay  # everyone else is back
    code, exported, _ = flow.invoke("export")
    assert GRACE_TEXT not in exported
    code, out, err = flow.invoke("db", "check")
    assert code == 0, err


async def test_restore_refuses_without_the_ledger_and_without_it_the_person_comes_back(
        flow: Flow):
    backup = flow.root / "before.db"
    assert flow.invoke("db", "backup", str(backup))[0] == 0
    assert flow.invoke("forget", GRACE)[0] == 0
    ledger = flow.root / "data" / "erasures.jsonl"
    shutil.move(ledger, flow.root / "elsewhere.jsonl")
    for path in flow.root.glob("log.db*"):
        path.unlink()
    code, _, err = flow.invoke("db", "restore", str(backup))
    assert code == 2 and "there is no erasure ledger" in err
    assert not (flow.root / "log.db").exists()  # nothing restored
    # forced: the person is back (which is what the ledger is for)
    code, _, err = flow.invoke("db", "restore", str(backup), "--without-ledger")
    assert code == 0, err
    assert GRACE_TEXT in flow.invoke("replay")[1]


async def test_db_copy_of_a_pre_forget_backup_into_postgresql_forgets_again(flow: Flow):
    backup = flow.root / "before.db"
    assert flow.invoke("db", "backup", str(backup))[0] == 0
    assert flow.invoke("forget", GRACE)[0] == 0
    url = pgserver.new_schema_url()
    directory = flow.root / "pg"
    directory.mkdir()
    config = directory / "config.yaml"
    shutil.copy(flow.root / "data" / "erasures.jsonl", directory / "erasures.jsonl")
    config.write_text(f"database:\n  url: '{url}'\npersonas: {{dir: ../personas}}\n"
                      "privacy: {ledger: erasures.jsonl}\n")
    pg = Flow(flow.root, config, flow.log_path, flow.fake)
    code, out, err = pg.invoke("db", "restore", str(backup))
    assert code == 0, err
    assert "forgot again 1 person(s)" in out
    code, replay, _ = pg.invoke("replay")
    assert GRACE_TEXT not in replay and LINUS_TEXT in replay
    assert pg.invoke("db", "check")[0] == 0


def test_in_an_access_export_anyone_elses_content_and_ids_are_redacted() -> None:
    """The export keeps the events by or for the person; in them, what is someone else's
    (a message of theirs that quotes or mentions the person, their ids) is redacted."""
    from core.replay.erasure import access_records

    def record(type_: str, **data: object) -> dict:
        return {"position": 1, "event_id": "e", "type": type_, "data": data}

    theirs = record("MessageReceived", author_id=LINUS, author_name=LINUS_NAME,
                    text=f"hey <@{GRACE}>", mentions=[GRACE, MALLORY], attachments=[])
    hers = record("MessageReceived", author_id=GRACE, author_name=GRACE_NAME, text=GRACE_TEXT,
                  mentions=[LINUS], attachments=[])
    out = list(access_records([theirs, hers], frozenset({GRACE})))
    assert out[0]["data"]["text"] == out[0]["data"]["author_name"] == "[redacted]"
    assert out[0]["data"]["author_id"] == "[redacted]"
    assert out[0]["data"]["mentions"] == [GRACE, "[redacted]"]
    assert out[1]["data"]["text"] == GRACE_TEXT and out[1]["data"]["author_name"] == GRACE_NAME
    assert out[1]["data"]["mentions"] == ["[redacted]"]
