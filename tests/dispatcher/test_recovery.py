"""Crash recovery: kill -9 during a model call (or a delivery), restart, exactly one outcome."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from core.dispatcher.dispatcher import DispatcherSettings

from .conftest import close_harness, load_persona, make_harness, open_store

ROOT = Path(__file__).resolve().parents[2]


async def _run_child_until(db: Path, base_url: str, marker: str, fake) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.dispatcher.crash_child", str(db), base_url,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        while True:
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            assert line, (await child.stderr.read()).decode()
            if line.decode().strip() == marker:
                break
        if marker == "ingested":
            for _ in range(200):  # until the model call is on the wire
                if fake.in_flight:
                    break
                await asyncio.sleep(0.02)
            assert fake.in_flight == 1
    finally:
        os.kill(child.pid, signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL


async def _types(harness) -> list[str]:
    return [e.type for e in await harness.store.read_stream("conv:test:c1")]


async def test_kill_during_the_model_call_then_restart_gives_exactly_one_reply(
        tmp_path, fake_openai):
    db = tmp_path / "log.db"
    fake_openai.latency_s = 60
    await _run_child_until(db, fake_openai.base_url, "ingested", fake_openai)
    fake_openai.latency_s = 0
    for restart in range(2):
        harness = await make_harness(tmp_path, [load_persona("ada")], fake_openai,
                                     store=await open_store(db), start=False)
        try:
            report = await harness.dispatcher.start(schedule_resets=False)
            await harness.dispatcher.wait_idle()
            assert len(report.rerun) == (1 if restart == 0 else 0)
            assert await _types(harness) == [
                "MessageReceived", "PersonaTriggered", "ModelReplied", "ReplyDelivered"]
            assert len(harness.sink.replies) == (1 if restart == 0 else 0)
        finally:
            await close_harness(harness)


async def test_kill_during_delivery_then_restart_delivers_the_recorded_reply_once(
        tmp_path, fake_openai):
    db = tmp_path / "log.db"
    await _run_child_until(db, fake_openai.base_url, "delivering", fake_openai)
    harness = await make_harness(tmp_path, [load_persona("ada")], fake_openai,
                                 store=await open_store(db), start=False)
    try:
        report = await harness.dispatcher.start(schedule_resets=False)
        await harness.dispatcher.wait_idle()
        assert len(report.redelivered) == 1 and not report.rerun
        assert len(fake_openai.requests) == 1  # the model was not asked again
        (replied,) = await harness.events("ModelReplied")
        assert [r.text for r in harness.sink.replies] == [replied.data["text"]]
        assert await _types(harness) == [
            "MessageReceived", "PersonaTriggered", "ModelReplied", "ReplyDelivered"]
    finally:
        await close_harness(harness)


async def test_an_old_unanswered_trigger_is_closed_with_a_visible_failure_once(
        tmp_path, fake_openai):
    db = tmp_path / "log.db"
    fake_openai.latency_s = 60
    await _run_child_until(db, fake_openai.base_url, "ingested", fake_openai)
    for restart in range(2):
        harness = await make_harness(
            tmp_path, [load_persona("ada")], fake_openai, store=await open_store(db),
            start=False, settings=DispatcherSettings(recovery_window_s=0.0))
        try:
            report = await harness.dispatcher.start(schedule_resets=False)
            await harness.dispatcher.wait_idle()
            assert len(report.closed) == (1 if restart == 0 else 0)
            failed = await harness.events("ModelFailed")
            assert [e.data["error_class"] for e in failed] == ["abandoned"]
            assert [n.kind for n in harness.sink.notices] == (["failure"] if restart == 0
                                                              else [])
            assert [n.target.message_id for n in harness.sink.notices] == (
                ["crash-1"] if restart == 0 else [])
        finally:
            await close_harness(harness)
    assert len(fake_openai.requests) == 1


async def test_recovering_a_shard_taken_back_leaves_this_process_s_replies_in_flight_alone(
        tmp_path, fake_openai):
    """A sharded process that lost its leases to an outage of the log takes its shards
    back and recovers them: the replies it still runs itself are open in the log, but
    re-running them would call the model twice."""
    from .conftest import human

    harness = await make_harness(tmp_path, [load_persona("ada")], fake_openai)
    try:
        fake_openai.latency_s = 1.0
        result = await harness.dispatcher.ingest(human(text="@ada hello"))
        for _ in range(200):  # until the model call is on the wire
            if fake_openai.in_flight:
                break
            await asyncio.sleep(0.02)
        assert fake_openai.in_flight == 1
        report = await harness.dispatcher.recover(lambda trigger: True)
        async with asyncio.timeout(30):
            await asyncio.gather(*result.replies)
            await harness.dispatcher.wait_idle()
        types = await _types(harness)
    finally:
        await close_harness(harness)
    assert report.rerun == () and report.redelivered == ()
    assert len(fake_openai.requests) == 1
    assert len(harness.sink.replies) == 1
    assert types == ["MessageReceived", "PersonaTriggered", "ModelReplied", "ReplyDelivered"]
