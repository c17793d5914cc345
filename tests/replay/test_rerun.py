"""`personae rerun`: the recorded call asked again with an edited persona file, side by
side with a prompt diff; recorded in its own stream, never in the conversation, never
counted in quotas."""

from __future__ import annotations

import json

from core.dispatcher.projection import DispatchProjection
from core.limits.quotas import QuotaProjection
from eventstore import SQLiteLog

from .conftest import Flow

EDITED_SYSTEM = "You are {persona}, a terse mentor. Answer {user} in one line."


def _conversations(flow: Flow) -> list[tuple]:
    return flow.rows("SELECT * FROM events WHERE stream_id LIKE 'conv:%' ORDER BY position")


def _quotas(flow: Flow) -> list[tuple]:
    return flow.rows("SELECT * FROM quota_usage ORDER BY 1, 2, 3")


async def test_rerun_with_an_edited_persona_shows_a_new_prompt_and_reply_and_records_nothing(
        flow: Flow):
    edited = flow.root / "ada-edited.yaml"
    original = (flow.root / "personas" / "ada.yaml").read_text()
    edited.write_text(original.replace("You are {persona}. You talk with {user} in {channel}.",
                                       EDITED_SYSTEM))
    assert edited.read_text() != original
    conversations, quotas = _conversations(flow), _quotas(flow)
    requests_before = len(flow.fake.requests)
    (old_text,) = flow.rows("SELECT json_extract(data, '$.text') FROM events WHERE event_id = ?",
                            f"reply:test:{flow.ids['decorator']}:ada")[0]

    code, out, err = await flow.run("rerun", flow.ids["decorator"], "--persona-file",
                                    str(edited))
    assert code == 0, err
    assert len(flow.fake.requests) == requests_before + 1
    sent = flow.fake.requests[-1].messages
    new_text = flow.fake.reply_for(sent)
    assert sent[0]["content"] == "You are Ada, a terse mentor. Answer Grace Hopper in one line."
    assert sent[1:] == _recorded_messages(flow)[1:], "same events, same history"
    assert new_text != old_text
    flat = " ".join(out.split())
    assert old_text in flat and new_text in flat
    assert "-You are Ada. You talk with Grace Hopper in c1." in out
    assert "+You are Ada, a terse mentor. Answer Grace Hopper in one line." in out

    assert _conversations(flow) == conversations, "nothing recorded in the conversation"
    (rerun,) = flow.rows("SELECT stream_id, type, data FROM events WHERE stream_id LIKE 'rerun:%'")
    assert rerun[:2] == (f"rerun:test:{flow.ids['decorator']}", "RerunRecorded")
    recorded = json.loads(rerun[2])
    assert recorded["text"] == new_text and recorded["prompt"] == sent and recorded["ok"]
    timeline = " ".join(flow.invoke("replay", "-t", "RerunRecorded")[1].split())
    assert f"rerun of reply:test:{flow.ids['decorator']}:ada" in timeline
    assert new_text in timeline
    # the bot's projections catch up over the rerun when it next opens the log
    log = SQLiteLog.open(flow.log_path, projections=[DispatchProjection(), QuotaProjection()])
    log.close()
    assert _quotas(flow) == quotas, "a rerun is never counted against a quota"
    code, out, _ = flow.invoke("rebuild")
    assert code == 0, out


def test_rerun_with_the_current_persona_and_another_provider(flow: Flow):
    # a plain test: no loop runs here, so the command's own asyncio.run may (the offline
    # provider needs no server)
    code, out, err = flow.invoke("rerun", flow.ids["fresh"], "--provider", "offline")
    assert code == 0, err
    assert "the prompt is the same as recorded" in out
    assert "[offline] not a language model" in out
    code, _, err = flow.invoke("rerun", flow.ids["denied"])
    assert code == 1 and "has no recorded model call" in err
    broken = flow.root / "broken.yaml"
    broken.write_text("id: ada\nname: Ada\nmodel: {provider: fake, name: m}\nprompt: 12\n")
    code, _, err = flow.invoke("rerun", flow.ids["fresh"], "--persona-file", str(broken))
    assert code == 2 and f"{broken}:4" in err and "Traceback" not in err
    code, _, err = flow.invoke("rerun", flow.ids["fresh"], "--provider", "nope")
    assert code == 2 and "unknown provider 'nope'" in err


def _recorded_messages(flow: Flow) -> list[dict]:
    code, out, err = flow.invoke("explain", flow.ids["decorator"], "--json")
    assert code == 0, err
    return json.loads(out)["calls"][0]["messages"]
