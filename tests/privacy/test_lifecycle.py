"""Content over time, through the real dispatcher and an SQLite file: a deleted message is
shredded (at once, or after its grace period), an edit keeps only the latest text unless
the operator keeps history, and retention shreds old content on its schedule (a test
clock), while metadata and usage stay."""

from __future__ import annotations

import asyncio
import time

from core.config import PrivacySettings
from core.dispatcher.dispatcher import DispatcherSettings
from core.dispatcher.messages import InboundDeletion, InboundEdit
from core.events import ContentExpired
from core.events.ids import message_event_id, reply_event_id
from eventstore import ERASED
from tests.dispatcher.conftest import close_harness, human, load_persona, make_harness, settle


def _settings(**privacy: object) -> DispatcherSettings:
    return DispatcherSettings(privacy=PrivacySettings(**privacy))  # type: ignore[arg-type]


async def _text(harness, event_id: str) -> str:
    event = await harness.store.get(event_id)
    assert event is not None
    return event.data["text"]


async def test_a_deleted_message_is_shredded_at_once(tmp_path, fake_openai):
    harness = await make_harness(tmp_path, [load_persona("ada")], fake_openai)
    try:
        gone = human("u1", "@ada my phone number is 555-0199")
        kept = human("u1", "@ada and this one stays")
        for message in (gone, kept):
            await settle(await harness.dispatcher.ingest(message))
        await harness.dispatcher.delete(InboundDeletion(platform="test",
                                                        message_id=gone.message_id,
                                                        channel_id="c1"))
        deleted = await harness.store.get(message_event_id("test", gone.message_id))
        assert deleted.data["text"] == "[erased]" and "text" in deleted.data[ERASED]
        assert deleted.data["author_id"] == "u1"  # ids stay
        assert await _text(harness, message_event_id("test", kept.message_id)) == \
            "@ada and this one stays"
        # the reply to it stays (only the message's own content is the platform's to
        # delete) and a second delivery of the deletion is a no-op
        assert await harness.store.get(reply_event_id("test", gone.message_id, "ada"))
        again = await harness.dispatcher.delete(InboundDeletion(
            platform="test", message_id=gone.message_id, channel_id="c1"))
        assert again is False
    finally:
        await close_harness(harness)
    assert b"555-0199" not in (tmp_path / "log.db").read_bytes()


async def test_a_deleted_message_is_kept_for_its_grace_period_then_shredded(
        tmp_path, fake_openai):
    now = [time.time()]
    harness = await make_harness(tmp_path, [load_persona("ada")], fake_openai,
                                 settings=_settings(deleted_grace_s=3600.0),
                                 clock=lambda: now[0])
    try:
        message = human("u1", "@ada regret this later")
        await settle(await harness.dispatcher.ingest(message))
        await harness.dispatcher.delete(InboundDeletion(
            platform="test", message_id=message.message_id, channel_id="c1"))
        event_id = message_event_id("test", message.message_id)
        assert await _text(harness, event_id) == "@ada regret this later"
        due = await harness.store.read(lambda log: [
            r.due_at for r in log.key_table().records() if r.due_at is not None])
        assert len(due) == 1  # its text (it has no files), due in an hour
        retention = harness.dispatcher._retention  # the schedule's job, run here by hand
        now[0] += 1800
        await retention.run()
        assert await _text(harness, event_id) == "@ada regret this later"
        now[0] += 1900  # past the grace period
        await retention.run()
        assert await _text(harness, event_id) == "[erased]"
    finally:
        await close_harness(harness)


async def test_an_edit_keeps_only_the_latest_text_unless_history_is_kept(
        tmp_path, fake_openai):
    for keep in (False, True):
        (tmp_path / str(keep)).mkdir()
        harness = await make_harness(tmp_path / str(keep), [load_persona("ada")], fake_openai,
                                     settings=_settings(keep_edit_history=keep))
        try:
            message = human("u1", "@ada first draft")
            await settle(await harness.dispatcher.ingest(message))
            for n in (1, 2):
                await harness.dispatcher.edit(InboundEdit(
                    platform="test", message_id=message.message_id, channel_id="c1",
                    text=f"@ada draft {n + 1}", edited_at=f"e{n}"))
            texts = [e.data["text"] for e in await harness.store.read_stream("conv:test:c1")
                     if e.type in ("MessageReceived", "MessageEdited")]
            if keep:
                assert texts == ["@ada first draft", "@ada draft 2", "@ada draft 3"]
            else:
                assert texts == ["[erased]", "[erased]", "@ada draft 3"]
        finally:
            await close_harness(harness)


async def test_retention_shreds_old_content_on_its_schedule(tmp_path, fake_openai):
    now = [time.time()]
    settings = _settings(retention="90d", retention_s=90 * 86400.0, shred_every_s=0.1)
    harness = await make_harness(tmp_path, [load_persona("ada")], fake_openai,
                                 settings=settings, clock=lambda: now[0], start=False)
    try:
        await harness.dispatcher.start(schedule_resets=True)
        message = human("u1", "@ada remember this for a while")
        await settle(await harness.dispatcher.ingest(message))
        event_id = message_event_id("test", message.message_id)
        reply_id = reply_event_id("test", message.message_id, "ada")
        usage = (await harness.store.get(reply_id)).data["usage"]
        now[0] += 30 * 86400  # a month later: runs happen, nothing is old enough
        await asyncio.sleep(0.5)
        assert await _text(harness, event_id) == "@ada remember this for a while"
        now[0] += 61 * 86400  # 91 days after it was written
        for _ in range(50):
            if (await harness.store.get(event_id)).data["text"] == "[erased]":
                break
            await asyncio.sleep(0.1)
        assert await _text(harness, event_id) == "[erased]"
        replied = await harness.store.get(reply_id)
        assert replied.data["text"] == "[erased]"
        assert replied.data["usage"] == usage and replied.data["persona_id"] == "ada"
        runs = await harness.store.read_all(types=[ContentExpired.type])
        assert runs and runs[-1].data["retention"] == "90d"
        # a new message after the run is kept, through the runs that follow. The store
        # stamps events with the real time, so the schedule's clock goes back to it: by
        # the fake clock, a message written now would be 91 days old already
        now[0] = time.time()
        fresh = human("u1", "@ada a new one")
        await settle(await harness.dispatcher.ingest(fresh))
        await asyncio.sleep(0.5)
        assert await _text(harness, message_event_id("test", fresh.message_id)) == "@ada a new one"
    finally:
        await close_harness(harness)
