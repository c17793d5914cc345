"""`personae rebuild` (healthy log passes, a corrupted projection fails) and
`personae stats` (figures agree with the fake model's own usage)."""

from __future__ import annotations

import csv
import io
import re
import sqlite3

from tests.fakes.openai_server import count_tokens

from .conftest import GRACE, LINUS, MALLORY, Flow

_PIECE = re.compile(r"\S+\s*|\s+")  # how the fake cuts (and counts) completion tokens


async def test_rebuild_passes_on_a_healthy_log(flow: Flow):
    code, out, err = flow.invoke("rebuild")
    assert code == 0, err
    assert "ok dispatch" in out and "ok quotas" in out


async def test_rebuild_detects_a_corrupted_projection_and_exits_non_zero(flow: Flow):
    db = sqlite3.connect(flow.log_path)
    with db:
        db.execute("UPDATE quota_usage SET tokens = tokens + 7 WHERE scope = 'user' "
                   "AND scope_key = ?", (GRACE,))
        db.execute("DELETE FROM persona_messages WHERE message_id = 'out1'")
    db.close()
    code, out, _ = flow.invoke("rebuild")
    assert code == 1
    assert "DIFFERS dispatch" in out and "DIFFERS quotas" in out
    assert "quotas.quota_usage: 1 row(s) only in the live projection, 1 only in the rebuild" in out
    assert f"'{GRACE}'" in out and "out1" in out


def _fake_usage(flow: Flow) -> tuple[int, int]:
    """Prompt and completion tokens the fake reported for the requests it answered."""
    prompt = completion = 0
    for request in flow.fake.requests:
        messages = request.messages
        reply = flow.fake.reply_for(messages)
        answered = flow.rows("SELECT 1 FROM events WHERE type = 'ModelReplied' AND "
                             "json_extract(data, '$.text') = ?", reply)
        if answered:
            prompt += sum(count_tokens(str(m.get("content", ""))) + 4 for m in messages) + 3
            completion += len(_PIECE.findall(reply))
    return prompt, completion


async def test_stats_agree_with_the_fake_models_usage(flow: Flow):
    code, out, err = flow.invoke("stats", "--csv")
    assert code == 0, err
    rows = {(r["dimension"], r["key"]): r for r in csv.DictReader(io.StringIO(out))}
    prompt, completion = _fake_usage(flow)
    assert prompt > 0 and completion > 0
    for dimension in ("persona", "user", "guild", "day"):
        group = [r for (d, _), r in rows.items() if d == dimension]
        assert sum(int(r["prompt_tokens"]) for r in group) == prompt, dimension
        assert sum(int(r["completion_tokens"]) for r in group) == completion, dimension
        assert sum(int(r["total_tokens"]) for r in group) == prompt + completion, dimension
        assert sum(int(r["replies"]) for r in group) == 7, dimension
    ada, bob = rows[("persona", "ada")], rows[("persona", "bob")]
    assert (ada["replies"], ada["failures"], ada["refusals"]) == ("5", "1", "1")
    assert ada["error_rate"] == f"{1 / 6:.3f}" and ada["refusal_rate"] == f"{1 / 7:.3f}"
    assert (bob["replies"], bob["failures"], bob["refusals"]) == ("2", "0", "0")
    assert rows[("user", MALLORY)]["refusal_rate"] == "1.000"
    assert rows[("user", LINUS)]["messages"] == "5" and rows[("guild", "(DM)")]["replies"] == "2"
    latencies = [r[0] for r in flow.rows("SELECT json_extract(data, '$.latency_s') FROM events "
                                         "WHERE type = 'ModelReplied'")]
    assert float(rows[("persona", "ada")]["latency_p99_s"]) <= max(latencies) + 0.001

    code, out, err = flow.invoke("stats")
    assert code == 0, err
    assert "by persona" in out and "tokens per day" in out and "█" in out
    assert "quota use (current window)" in out


async def test_stats_filters_by_persona(flow: Flow):
    code, out, _ = flow.invoke("stats", "--csv", "--persona", "bob")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["key"] for r in rows if r["dimension"] == "persona"} == {"bob"}
