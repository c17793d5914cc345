"""The core flow against real parts: message -> trigger -> context -> fake OpenAI ->
delivery, every step an event; duplicates are no-ops; prompts rebuild byte for byte."""

from __future__ import annotations

import asyncio

from core.config import PrivacySettings
from core.context.rebuild import rebuild_prompt
from core.dispatcher.dispatcher import DispatcherSettings
from core.dispatcher.messages import InboundEdit
from core.events.ids import reply_event_id
from tests.fakes.openai_server import Fault

from .conftest import PROVIDERS, close_harness, human, load_persona, make_harness, settle


async def test_a_mention_becomes_a_delivered_reply_with_every_step_recorded(tmp_path, fake_openai):
    harness = await make_harness(tmp_path, [load_persona("ada")], fake_openai)
    try:
        result = await harness.dispatcher.ingest(human(text="@Ada what is a list?"))
        assert result.triggered == ("ada",)
        (reply,) = await settle(result)
        assert reply.outcome == "ReplyDelivered"
        types = [e.type for e in await harness.store.read_stream("conv:test:c1")]
        assert types == ["MessageReceived", "PersonaTriggered", "ModelReplied", "ReplyDelivered"]
        sent = fake_openai.requests[-1].messages
        assert sent[-1] == {"role": "user", "content": "@Ada what is a list?", "name": "U1"}
        (delivered,) = harness.sink.replies
        assert delivered.text == fake_openai.reply_for(sent)
        assert delivered.streamed and "".join(t for _, t in harness.sink.deltas) == delivered.text
        (replied,) = await harness.events("ModelReplied")
        assert replied.data["usage"]["total_tokens"] > 0
        assert replied.data["persona_version"] == harness.registry.get("ada").version
        assert replied.data["attempts"] == 1 and replied.data["latency_s"] >= 0
    finally:
        await close_harness(harness)


async def test_a_duplicate_message_is_a_no_op_all_the_way_down(tmp_path, fake_openai):
    harness = await make_harness(tmp_path, [load_persona("ada")], fake_openai)
    try:
        message = human(text="@ada hi", message_id="dup-1")
        first = await harness.dispatcher.ingest(message)
        again = await asyncio.gather(*(harness.dispatcher.ingest(message) for _ in range(5)))
        await settle(first)
        await harness.dispatcher.wait_idle()
        assert not first.duplicate and all(r.duplicate and not r.replies for r in again)
        assert len(fake_openai.requests) == 1
        assert len(harness.sink.replies) == 1
        counts = {t: len(await harness.events(t)) for t in
                  ("MessageReceived", "PersonaTriggered", "ModelReplied", "ReplyDelivered")}
        assert counts == dict.fromkeys(counts, 1)
    finally:
        await close_harness(harness)


async def test_the_recorded_prompt_rebuilds_exactly_what_the_server_received(
        tmp_path, fake_openai):
    ada = load_persona("ada", extra=(
        "context: {max_messages: 8, max_tokens: 2000}\n"
        "lorebook:\n  - keys: [decorator]\n    content: Explain decorators with timing first.\n"
        "  - keys: [generator]\n    content: Generators yield lazily.\n"))
    bob = load_persona("bob", extra="triggers: {keywords: [bob]}\n")
    # the operator keeps edit history: the prompt from before the edit can be rebuilt
    settings = DispatcherSettings(privacy=PrivacySettings(keep_edit_history=True))
    harness = await make_harness(tmp_path, [ada, bob], fake_openai, settings=settings)
    try:
        conversation = [
            human("u1", "@ada hello", name="Grace Hopper"),
            human("u2", "bob, what's up", name="Linus"),
            human("u1", "@ada what is a decorator?", name="Grace Hopper"),
        ]
        for message in conversation:
            await settle(await harness.dispatcher.ingest(message))
        await harness.dispatcher.edit(
            InboundEdit(
                platform="test",
                message_id=conversation[0].message_id,
                channel_id="c1",
                text="@ada hello there (edited)",
                edited_at="e1",
            )
        )
        await settle(await harness.dispatcher.ingest(human("u1", "@ada and a generator?")))
        replies = await harness.events("ModelReplied")
        assert len(replies) == 4 and len(fake_openai.requests) == 4
        for replied, request in zip(replies, fake_openai.requests, strict=True):
            event_id = reply_event_id("test", replied.data["message_id"],
                                      replied.data["persona_id"])
            rebuilt = await harness.store.read(
                lambda log, event_id=event_id: rebuild_prompt(log, event_id, PROVIDERS))
            assert [m.to_openai() for m in rebuilt.messages] == request.messages
        last = fake_openai.requests[-1].messages
        assert last[1] == {"role": "system", "content": "Explain decorators with timing "
                           "first.\n\nGenerators yield lazily."}
        assert {"role": "user", "content": fake_openai.reply_for(fake_openai.requests[1].messages),
                "name": "Bob"} in last
        assert {"role": "user", "content": "@ada hello there (edited)",
                "name": "Grace_Hopper"} in last
    finally:
        await close_harness(harness)


async def test_a_model_failure_is_recorded_and_the_user_sees_a_notice(tmp_path, fake_openai):
    harness = await make_harness(tmp_path, [load_persona("ada", extra=(
        "limits: {reply_deadline: 2s}\n"))], fake_openai)
    try:
        fake_openai.script(Fault.http_error(400, "invalid_request"))
        (reply,) = await settle(await harness.dispatcher.ingest(human(text="@ada hi")))
        assert reply.outcome == "ModelFailed"
        (failed,) = await harness.events("ModelFailed")
        assert failed.data["error_class"] and failed.data["notice_sent"] is True
        assert [n.kind for n in harness.sink.notices] == ["failure"]
        assert not harness.sink.replies
    finally:
        await close_harness(harness)


async def test_an_adapter_that_cannot_deliver_is_recorded_as_reply_failed(tmp_path, fake_openai):
    harness = await make_harness(tmp_path, [load_persona("ada")], fake_openai)
    try:
        harness.sink.fail_with = RuntimeError("boom")
        (reply,) = await settle(await harness.dispatcher.ingest(human(text="@ada hi")))
        assert reply.outcome == "ReplyFailed"
        (failed,) = await harness.events("ReplyFailed")
        assert "RuntimeError" in failed.data["error"]
    finally:
        await close_harness(harness)


async def test_a_reply_to_a_persona_message_triggers_it_and_its_echo_triggers_nothing(tmp_path):
    ada = load_persona("ada", provider="offline", extra="triggers: {mention: true}\n")
    harness = await make_harness(tmp_path, [ada], None)
    try:
        await settle(await harness.dispatcher.ingest(human(text="@ada hi")))
        (delivered,) = await harness.events("ReplyDelivered")
        (own_id,) = delivered.data["delivered_ids"]
        echo = await harness.dispatcher.ingest(human("webhook", "[offline] ...", is_bot=True,
                                                     message_id=own_id))
        assert not echo.triggered and not echo.rejected
        echoed = await harness.store.get(f"msg:test:{own_id}")
        assert echoed.data["from_persona"] == "ada"
        answer = await harness.dispatcher.ingest(human(text="thanks!", reply_to=own_id))
        assert answer.triggered == ("ada",)
        await settle(answer)
        (_, second) = await harness.events("PersonaTriggered")
        assert second.data["reason"] == "reply"
        # system, "@ada hi", ada's reply (once: the echo is not a second copy), "thanks!"
        assert ", 4 messages)" in harness.sink.replies[-1].text
    finally:
        await close_harness(harness)


async def test_persona_to_persona_exchanges_stop_at_the_hop_limit(tmp_path):
    ada = load_persona("ada", provider="offline", extra=(
        "triggers: {keywords: ['ada'], from_personas: [bob], max_hops: 2}\n"))
    bob = load_persona("bob", provider="offline", extra=(
        "triggers: {patterns: ['^\\[offline\\]'], from_personas: [ada], max_hops: 2}\n"))
    harness = await make_harness(tmp_path, [ada, bob], None)
    try:
        await settle(await harness.dispatcher.ingest(human(text="ada, ask your friend")))
        await harness.dispatcher.wait_idle()
        replies = await harness.events("ModelReplied")
        assert [(e.data["persona_id"], e.data["hop"]) for e in replies] == [
            ("ada", 0), ("bob", 1), ("ada", 2)]
        (stopped,) = await harness.events("TriggerRejected")
        assert (stopped.data["persona_id"], stopped.data["reason"]) == ("bob", "hop_limit")
        assert not harness.sink.notices  # personas get no notices
        bob_prompt_last = next(r for r in harness.sink.replies if r.persona_id == "bob").text
        assert "You said: [offline]" in bob_prompt_last  # bob answered ada's message
    finally:
        await close_harness(harness)


async def test_history_is_read_further_back_when_the_latest_events_hold_too_few_turns(
        tmp_path):
    ada = load_persona("ada", provider="offline", extra="context: {max_messages: 4}\n")
    harness = await make_harness(tmp_path, [ada], None)
    try:
        first = human(text="@ada one")
        await settle(await harness.dispatcher.ingest(first))
        for i in range(30):  # many events that are not turns
            await harness.dispatcher.edit(
                InboundEdit(
                    platform="test",
                    message_id=first.message_id,
                    channel_id="c1",
                    text=f"@ada one, edit {i}",
                    edited_at=str(i),
                )
            )
        await settle(await harness.dispatcher.ingest(human(text="@ada two")))
        # system, "one" (latest edit), ada's reply, "two"
        assert ", 4 messages). You said: @ada two" in harness.sink.replies[-1].text
    finally:
        await close_harness(harness)
