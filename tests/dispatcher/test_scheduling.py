"""Per-conversation order, bounded concurrency, backpressure and graceful shutdown."""

from __future__ import annotations

import asyncio

from core.dispatcher.dispatcher import DispatcherSettings

from .conftest import close_harness, human, load_persona, make_harness, settle


async def test_replies_in_one_conversation_keep_order_while_conversations_run_concurrently(
        tmp_path, fake_openai):
    fake_openai.latency_s = 0.03
    harness = await make_harness(tmp_path, [load_persona("ada")], fake_openai,
                                 settings=DispatcherSettings(max_concurrent=3))
    try:
        results = []
        for i in range(5):
            for channel in ("a", "b", "c", "d"):
                results.append(await harness.dispatcher.ingest(
                    human(text=f"@ada {channel}{i}", channel=channel)))
        await asyncio.gather(*(settle(r) for r in results))
        assert fake_openai.max_in_flight == 3  # concurrent across conversations, bounded
        for channel in ("a", "b", "c", "d"):
            stream = await harness.store.read_stream(f"conv:test:{channel}")
            replies = [e for e in stream if e.type == "ModelReplied"]
            assert [r.data["text"].rsplit(": ", 1)[1] for r in replies] == [
                f"@ada {channel}{i}" for i in range(5)]
            prompts = [r.messages for r in fake_openai.requests
                       if r.messages[-1]["content"].startswith(f"@ada {channel}")]
            for previous, prompt in zip(replies, prompts[1:], strict=False):
                # each reply was recorded before the next one's prompt was built
                assert {"role": "assistant", "content": previous.data["text"]} in prompt
    finally:
        await close_harness(harness)


async def test_a_full_queue_refuses_with_a_busy_event_and_one_notice_per_user(
        tmp_path, fake_openai):
    fake_openai.latency_s = 0.3
    harness = await make_harness(tmp_path, [load_persona("ada")], fake_openai,
                                 settings=DispatcherSettings(queue_size=3))
    try:
        results = [await harness.dispatcher.ingest(human("u1", f"@ada {i}", channel=f"c{i}"))
                   for i in range(6)]
        results.append(await harness.dispatcher.ingest(human("u2", "@ada x", channel="c9")))
        assert [bool(r.triggered) for r in results] == [True] * 3 + [False] * 4
        assert all(r.rejected == (("ada", "busy"),) for r in results[3:])
        await harness.dispatcher.wait_idle()
        busy = await harness.events("TriggerRejected")
        assert len(busy) == 4 and {e.data["reason"] for e in busy} == {"busy"}
        assert sorted(n.target.author_id for n in harness.sink.notices) == ["u1", "u2"]
        assert len(harness.sink.replies) == 3
        # room again once the queue drained
        assert (await harness.dispatcher.ingest(human("u3", "@ada again"))).triggered
    finally:
        await close_harness(harness)


async def test_shutdown_lets_replies_finish_up_to_the_deadline_and_records_the_rest(
        tmp_path, fake_openai):
    fake_openai.latency_s = 10
    harness = await make_harness(tmp_path, [load_persona("ada")], fake_openai)
    try:
        slow = await harness.dispatcher.ingest(human(text="@ada slow", channel="a"))
        queued = await harness.dispatcher.ingest(human(text="@ada queued", channel="a"))
        await asyncio.sleep(0.1)
        cut = await harness.dispatcher.shutdown(0.2)
        assert cut == 2
        outcomes = await settle(slow) + await settle(queued)
        assert [o.outcome for o in outcomes] == ["ModelFailed", "ModelFailed"]
        failed = await harness.events("ModelFailed")
        assert [e.data["error_class"] for e in failed] == ["shutdown", "shutdown"]
        assert [n.kind for n in harness.sink.notices] == ["failure", "failure"]
        message = human(text="@ada after")
        late = await harness.dispatcher.ingest(message)
        assert not late.duplicate and not late.triggered  # recorded, not answered
        assert await harness.store.get(f"msg:test:{message.message_id}") is not None
    finally:
        await close_harness(harness)


async def test_provider_and_persona_concurrency_bounds_hold(tmp_path, fake_openai):
    fake_openai.latency_s = 0.05
    ada = load_persona("ada")
    bob = load_persona("bob", extra="limits: {max_concurrent: 1}\n")
    harness = await make_harness(tmp_path, [ada, bob], fake_openai, settings=DispatcherSettings(
        max_concurrent=10, provider_concurrency={"fake": 3}))
    try:
        results = [await harness.dispatcher.ingest(human(text=f"@ada {i}", channel=f"a{i}"))
                   for i in range(8)]
        await asyncio.gather(*(settle(r) for r in results))
        assert fake_openai.max_in_flight == 3
        fake_openai.max_in_flight = 0
        results = [await harness.dispatcher.ingest(human(text=f"@bob {i}", channel=f"b{i}"))
                   for i in range(4)]
        await asyncio.gather(*(settle(r) for r in results))
        assert fake_openai.max_in_flight == 1
    finally:
        await close_harness(harness)
