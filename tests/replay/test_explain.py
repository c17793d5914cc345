"""`personae explain`: the exact prompt the fake model received, the call's figures, and
for a message with no answer, the rule that stopped it."""

from __future__ import annotations

import json

from .conftest import Flow


def _explain(flow: Flow, message_id: str) -> dict:
    code, out, err = flow.invoke("explain", message_id, "--json")
    assert code == 0, err
    return json.loads(out)


def _request_answered_with(flow: Flow, text: str) -> dict:
    """The request whose deterministic reply is ``text`` (the fake's own record)."""
    (request,) = [r for r in flow.fake.requests if flow.fake.reply_for(r.messages) == text]
    return request.body


async def test_explain_rebuilds_exactly_the_messages_the_model_received(flow: Flow):
    replies = flow.rows("SELECT json_extract(data, '$.message_id'), "
                        "json_extract(data, '$.persona_id'), json_extract(data, '$.text') "
                        "FROM events WHERE type = 'ModelReplied' ORDER BY position")
    assert len(replies) == 7
    for message_id, persona_id, text in replies:
        explained = _explain(flow, message_id)
        (call,) = [c for c in explained["calls"] if c["persona_id"] == persona_id]
        sent = _request_answered_with(flow, text)
        assert call["messages"] == sent["messages"]
        assert call["outcome"]["text"] == text
        assert call["outcome"]["usage"]["total_tokens"] > 0
        assert call["outcome"]["attempts"] == 1
        assert call["params"] == {k: v for k, v in sent.items()
                                  if k in ("temperature", "max_tokens", "top_p", "seed", "stop")}


async def test_the_edited_message_shows_its_latest_text_in_later_prompts(flow: Flow):
    explained = _explain(flow, flow.ids["decorator"])
    contents = [m["content"] for m in explained["calls"][0]["messages"]]
    assert "@ada hello, I am writing a compiler" in contents  # the edit came later
    explained = _explain(flow, flow.ids["undelivered"])
    contents = [m["content"] for m in explained["calls"][0]["messages"]]
    assert "@ada hello, I am writing a COBOL compiler" in contents
    assert "Explain decorators with timing first." in " ".join(contents)


async def test_a_reply_id_explains_the_message_it_answered(flow: Flow):
    (delivered,) = flow.rows("SELECT json_extract(data, '$.delivered_ids[0]') FROM events "
                             "WHERE type = 'ReplyDelivered' AND json_extract(data, "
                             "'$.persona_id') = 'bob' AND json_extract(data, '$.message_id') = ?",
                             flow.ids["dm"])
    explained = _explain(flow, delivered[0])
    assert explained["message_id"] == flow.ids["dm"] and explained["asked_reply_id"] == delivered[0]
    assert explained["calls"][0]["persona_id"] == "bob"
    assert _explain(flow, f"test:{flow.ids['dm']}")["message_id"] == flow.ids["dm"]
    echoed = _explain(flow, flow.ids["echo"])  # found through the platform's echo
    assert (echoed["message_id"], echoed["asked_reply_id"]) == (flow.ids["decorator"],
                                                                flow.ids["echo"])
    assert echoed["calls"][0]["outcome"]["type"] == "ModelReplied"


async def test_messages_without_an_answer_say_what_stopped_them(flow: Flow):
    denied = _explain(flow, flow.ids["denied"])
    assert denied["calls"][0]["stopped_by"] == "refused: permission:user_denied"
    assert denied["calls"][0]["messages"] is None
    failed = _explain(flow, flow.ids["failed"])
    assert failed["calls"][0]["stopped_by"].startswith("model call failed: insufficient_quota")
    undelivered = _explain(flow, flow.ids["undelivered"])
    assert undelivered["calls"][0]["stopped_by"] == "delivery failed: the channel is gone"
    nobody = _explain(flow, flow.ids["nobody"])
    assert nobody["calls"] == [] and "no persona's trigger matched" in nobody["unanswered_because"]
    answered = _explain(flow, flow.ids["decorator"])
    assert answered["calls"][0]["stopped_by"] is None


async def test_the_readable_explanation_and_an_unknown_id(flow: Flow):
    code, out, err = flow.invoke("explain", flow.ids["decorator"])
    assert code == 0, err
    assert "triggered by mention" in out and "[system]" in out and "@ada what is a decorator?" in out
    assert "provider / model" in out and "fake / fake-model" in out and "delivered as out" in out
    code, out, err = flow.invoke("explain", flow.ids["denied"])
    assert "stopped: refused: permission:user_denied" in out
    code, _, err = flow.invoke("explain", "123456789")
    assert code == 1 and "no message or reply with the id '123456789'" in err
