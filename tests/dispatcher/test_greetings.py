"""Greetings: a new conversation opens with the persona's greeting, posted as its first
message, part of the context, recorded with its choice, delivered exactly once (a crash
included), again after a reset; /greet picks one."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from core.commands import Caller, CommandSet
from core.config import AdminSettings
from core.context.rebuild import rebuild_prompt
from core.dispatcher.messages import Author
from core.events.ids import reply_event_id

from .conftest import close_harness, human, load_persona, make_harness, open_store, settle

ROOT = Path(__file__).resolve().parents[2]
GREETINGS = ("  greeting: Hello {user}, I am {persona}.\n"
             "  alternate_greetings: ['Back again, {user}? {random:rain,snow} today.',"
             " 'Third: {persona} waves.']\n")


def ada(extra: str = GREETINGS):
    return load_persona("ada", extra=extra)


async def test_the_first_message_to_a_persona_opens_with_its_greeting_then_the_reply(
        tmp_path, fake_openai):
    harness = await make_harness(tmp_path, [ada("  greeting: Hello {user}, I am {persona}.\n")],
                                 fake_openai)
    try:
        await settle(await harness.dispatcher.ingest(human(text="@ada hi", name="Grace")))
        await settle(await harness.dispatcher.ingest(human(text="@ada again", name="Grace")))
        stream = [e.type for e in await harness.store.read_stream("conv:test:c1")]
        greeted = await harness.events("PersonaGreeted")
    finally:
        await close_harness(harness)
    texts = [r.text for r in harness.sink.replies]
    assert texts[0] == "Hello Grace, I am Ada." and len(texts) == 3  # greeting, reply, reply
    assert [r.greeting for r in harness.sink.replies] == [True, False, False]
    assert stream[:6] == ["MessageReceived", "PersonaTriggered", "PersonaGreeted",
                          "GreetingDelivered", "ModelReplied", "ReplyDelivered"]
    assert stream.count("PersonaGreeted") == 1
    assert greeted[0].data["choice"] == 1 and greeted[0].data["chosen_by"] == "random"
    # the model saw the greeting as Ada's first turn, before the message it answers
    first = [(m["role"], m["content"]) for m in fake_openai.requests[0].messages[1:]]
    assert first == [("assistant", "Hello Grace, I am Ada."), ("user", "@ada hi")]


async def test_a_reset_a_new_channel_and_a_dm_each_open_a_new_conversation(
        tmp_path, fake_openai):
    harness = await make_harness(tmp_path, [ada()], fake_openai)
    try:
        d = harness.dispatcher
        await settle(await d.ingest(human(text="@ada hi")))
        await settle(await d.ingest(human(text="@ada hi again")))
        await d.reset_conversation("test", "c1", "u1", "r1")
        await settle(await d.ingest(human(text="@ada after the reset")))
        await settle(await d.ingest(human(text="@ada elsewhere", channel="c2")))
        await settle(await d.ingest(human(text="hello", channel="dm1", guild=None, is_dm=True)))
        greeted = await harness.events("PersonaGreeted")
    finally:
        await close_harness(harness)
    assert [(e.stream_id, e.data["greeting_id"]) for e in greeted] == [
        ("conv:test:c1", greeted[0].data["greeting_id"]), ("conv:test:c1", greeted[1].data[
            "greeting_id"]), ("conv:test:c2", greeted[2].data["greeting_id"]),
        ("conv:test:dm1", greeted[3].data["greeting_id"])]
    assert len(greeted) == 4


async def test_a_persona_that_already_spoke_there_does_not_greet(tmp_path, fake_openai):
    # a log written before greetings existed: Ada replied in c1 already
    harness = await make_harness(tmp_path, [ada(extra="")], fake_openai)
    try:
        await settle(await harness.dispatcher.ingest(human(text="@ada hi")))
    finally:
        await close_harness(harness)
    harness = await make_harness(tmp_path, [ada()], fake_openai,
                                 store=await open_store(tmp_path / "log.db"))
    try:
        await settle(await harness.dispatcher.ingest(human(text="@ada hi again")))
        greeted = await harness.events("PersonaGreeted")
    finally:
        await close_harness(harness)
    assert greeted == [] and not any(r.greeting for r in harness.sink.replies)


async def test_alternate_greetings_are_chosen_at_random_recorded_and_rebuilt_exactly(
        tmp_path, fake_openai):
    harness = await make_harness(tmp_path, [ada()], fake_openai)
    try:
        for channel in range(12):
            await settle(await harness.dispatcher.ingest(human(text="@ada hi",
                                                               channel=f"c{channel}")))
        greeted = await harness.events("PersonaGreeted")
        replies = await harness.events("ModelReplied")
        prompts = await harness.store.read(lambda log: [
            rebuild_prompt(log, reply_event_id("test", e.data["message_id"], "ada"), ["fake"])
            for e in replies])
    finally:
        await close_harness(harness)
    choices = [e.data["choice"] for e in greeted]
    assert set(choices) == {1, 2, 3}, choices  # 12 conversations: every greeting came up
    by_choice = {e.data["choice"]: e.data["text"] for e in greeted}
    assert by_choice[1] == "Hello U1, I am Ada." and by_choice[3] == "Third: Ada waves."
    assert by_choice[2] in ("Back again, U1? rain today.", "Back again, U1? snow today.")
    for event, prompt, request in zip(greeted, prompts, fake_openai.requests, strict=True):
        # the greeting in the rebuilt prompt is the recorded one, and what was sent
        assert prompt.messages[1].content == event.data["text"]
        assert request.messages[1]["content"] == event.data["text"]


async def test_greet_posts_the_greeting_asked_for_and_says_when_it_cannot(tmp_path):
    harness = await make_harness(tmp_path, [ada(), load_persona("bob", provider="offline")],
                                 None)
    commands = CommandSet(dispatcher=harness.dispatcher, personas=harness.registry,
                          admins=AdminSettings())
    caller = Caller(platform="test", command_id="cmd1", channel_id="c1",
                    author=Author(id="u1", display_name="Grace"), channel_name="general",
                    guild_name="Py")
    try:
        third = await commands.greet(caller, "Ada", 3)
        too_far = await commands.greet(caller, "ada", 9)
        nothing = await commands.greet(caller, "bob")
        already = await commands.greet(caller, "ada", only_if_new=True)
        greeted = await harness.events("PersonaGreeted")
    finally:
        await close_harness(harness)
    assert third.text == "Ada greeted with greeting 3 of 3."
    assert too_far.text == "Ada has 3 greetings: choose a number from 1 to 3."
    assert nothing.text == "Bob has no greeting."
    assert already.text == "Ada is already in this conversation."
    assert [(e.data["choice"], e.data["chosen_by"]) for e in greeted] == [(3, "command")]
    assert [r.text for r in harness.sink.replies] == ["Third: Ada waves."]


async def test_kill_during_the_greeting_then_restart_posts_it_once_then_the_reply(
        tmp_path, fake_openai):
    db = tmp_path / "log.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.dispatcher.crash_child", str(db), fake_openai.base_url,
        "greeting", cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        while (line := await asyncio.wait_for(child.stdout.readline(), 30)) != b"delivering\n":
            assert line, (await child.stderr.read()).decode()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        await child.wait()
    for restart in range(2):
        harness = await make_harness(tmp_path, [ada("  greeting: Hello {user}, I am {persona}."
                                                    "\n")], fake_openai,
                                     store=await open_store(db), start=False)
        try:
            await harness.dispatcher.start(schedule_resets=False)
            await harness.dispatcher.wait_idle()
            types = [e.type for e in await harness.store.read_stream("conv:test:c1")]
        finally:
            await close_harness(harness)
        assert types == ["MessageReceived", "PersonaTriggered", "PersonaGreeted",
                         "GreetingDelivered", "ModelReplied", "ReplyDelivered"]
        expected = [("Hello U1, I am Ada.", True)] if restart == 0 else []
        assert [(r.text, r.recovered) for r in harness.sink.replies][:1] == expected
        assert len(harness.sink.replies) == (2 if restart == 0 else 0)
    assert len(fake_openai.requests) == 1


async def test_greetings_a_dead_process_left_unposted_are_posted_once_by_the_shard_s_new_owner(
        tmp_path, fake_openai):
    """Greetings recorded but never posted (the process died between the two) are
    recovered with the same filter as replies: the process taking a shard posts those of
    its guilds (a DM's belong to shard 0), once, and none of the shards it does not run."""
    from core.coordination import shard_of
    from core.events import PersonaGreeted
    from core.events.ids import conversation_stream, greeting_event_id

    persona = ada("  greeting: Hello {user}, I am {persona}.\n")
    count = 2
    places = {"g-shard0": ("0", False), "g-shard1": (str(1 << 22), False), "dm": (None, True)}
    harness = await make_harness(tmp_path, [persona], fake_openai, start=False)
    try:
        for channel, (guild, is_dm) in places.items():
            greeted = PersonaGreeted(
                platform="test", greeting_id=f"open-{channel}", channel_id=channel,
                persona_id="ada", persona_version=persona.version, persona_name="Ada",
                text=f"Hello from {channel}", choice=1, chosen_by="random", author_id="u1",
                guild_id=guild, is_dm=is_dm)
            await harness.store.append(conversation_stream("test", channel), greeted.new_event(
                greeting_event_id("test", f"open-{channel}", "ada")))

        def in_shard(shard_id: int):
            def owns(item) -> bool:
                guild = int(item.guild_id) if item.guild_id else None
                return item.platform == "test" and shard_of(guild, count) == shard_id
            return owns

        # start-up of a sharded process: its platform's conversations wait for its shards
        await harness.dispatcher.start(schedule_resets=False,
                                       owns=lambda item: item.platform != "test")
        await harness.dispatcher.wait_idle()
        at_start = [r.text for r in harness.sink.replies]
        await harness.dispatcher.recover(in_shard(1))
        await harness.dispatcher.wait_idle()
        shard1 = [r.text for r in harness.sink.replies]
        await harness.dispatcher.recover(in_shard(0))
        await harness.dispatcher.recover(in_shard(1))  # taken again later: nothing twice
        await harness.dispatcher.wait_idle()
        everything = [(r.text, r.recovered) for r in harness.sink.replies]
        delivered = await harness.events("GreetingDelivered")
    finally:
        await close_harness(harness)
    assert at_start == []
    assert shard1 == ["Hello from g-shard1"]
    assert sorted(everything) == [("Hello from dm", True), ("Hello from g-shard0", True),
                                  ("Hello from g-shard1", True)]
    assert len(delivered) == 3
    assert fake_openai.requests == []
