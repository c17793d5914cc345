"""The prompt an author wrote is the prompt the model gets: every text rendered with the
same variables and escaping, lore placed where it says, sticky lore carried by the log,
and every recorded prompt rebuilt exactly (random choices included)."""

from __future__ import annotations

import re

from core.context.rebuild import rebuild_prompt
from core.events.ids import reply_event_id

from .conftest import close_harness, human, load_persona, make_harness, settle

TEXTS = """\
  examples:
    - user: 'show me {{"op": 1}} for {persona}'
      assistant: 'Here, {user}: {{"op": 1}}'
  post_history: 'Keep it short for {user} ({weekday}, {time}).'
  greeting: 'Hi {user}, {random:welcome,hello} to #{channel}.'
lorebook:
  entries:
    - keys: [storm]
      content: 'A storm follows {user}; {persona} rolled {roll:d6}.'
      position: at_depth
      depth: 0
      sticky: 3
    - keys: [村庄]
      content: '{persona} knows the village.'
      position: before_system
"""


async def test_every_text_reaches_the_model_rendered_and_rebuilds_exactly(
        tmp_path, fake_openai):
    ada = load_persona("ada", extra=TEXTS)
    harness = await make_harness(tmp_path, [ada], fake_openai)
    try:
        await settle(await harness.dispatcher.ingest(human(
            text="@ada 我走进村庄, a storm is coming", name="Grace", channel_name="general",
            guild_name="Py")))
        (replied,) = await harness.events("ModelReplied")
        rebuilt = await harness.store.read(lambda log: rebuild_prompt(
            log, reply_event_id("test", replied.data["message_id"], "ada"), ["fake"]))
    finally:
        await close_harness(harness)
    sent = [(m["role"], m["content"]) for m in fake_openai.requests[0].messages]
    assert sent[0] == ("system", "Ada knows the village.")
    assert sent[1] == ("system", "You are Ada. You talk with Grace in general.")
    assert sent[2:4] == [("user", 'show me {"op": 1} for Ada'),
                         ("assistant", 'Here, Grace: {"op": 1}')]
    assert sent[4][0] == "assistant" and re.fullmatch(
        r"Hi Grace, (welcome|hello) to #general\.", sent[4][1])
    assert sent[5] == ("user", "@ada 我走进村庄, a storm is coming")
    assert re.fullmatch(r"A storm follows Grace; Ada rolled [1-6]\.", sent[6][1])
    assert re.fullmatch(r"Keep it short for Grace \(\w+day, \d\d:\d\d\)\.", sent[7][1])
    assert not any(re.search(r"\{\w", content) for _, content in sent)
    variables = replied.data["variables"]
    assert re.fullmatch(r"\d\d:\d\d", variables["time"]) and variables["random_seed"]
    assert [(m.role, m.content) for m in rebuilt.messages] == sent


async def test_a_sticky_entry_stays_for_the_messages_after_it_was_inserted(
        tmp_path, fake_openai):
    ada = load_persona("ada", extra=TEXTS)
    harness = await make_harness(tmp_path, [ada], fake_openai)
    try:
        for text in ("a storm is coming", "calm now", "still calm", "quiet"):
            await settle(await harness.dispatcher.ingest(human(text=f"@ada {text}")))
        replies = await harness.events("ModelReplied")
        rebuilt = await harness.store.read(lambda log: [rebuild_prompt(
            log, reply_event_id("test", r.data["message_id"], "ada"), ["fake"]).messages
            for r in replies])
    finally:
        await close_harness(harness)

    def has_storm(messages) -> bool:
        return any("A storm follows" in m["content"] for m in messages)

    # activated by "storm", then sticky for the next 3 messages ("calm now", its reply,
    # "still calm"); the stickiness counts from the activation, not from each carry
    assert [has_storm(r.messages) for r in fake_openai.requests] == [True, True, True, False]
    assert [bool(r.data["lore"]) for r in replies] == [True, False, False, False]
    assert [any("A storm follows" in m.content for m in prompt) for prompt in rebuilt] == [
        True, True, True, False]
