"""The moderation step inside the dispatcher: a decision is made once (read back, not
asked again), a persona's overrides take effect, persona-to-persona turns are checked
on the way out only, and unknown roles never bypass. Real store, the real openai SDK
against the fake server's ``/v1/moderations``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from core.config import ModerationSettings, ProviderSettings, Thresholds
from core.context.history import ConversationHistory
from core.dispatcher.messages import Author
from core.dispatcher.moderation import ModerationStep
from core.events import ModerationDirection, PersonaTriggered, TriggerReason
from core.events.ids import conversation_stream
from core.moderation.moderator import Moderator
from core.moderation.openai_provider import OpenAIModeration
from tests.fakes.openai_server import FakeOpenAI

from .conftest import close_harness, human, load_persona, make_harness, open_store, settle


def checker(fake: FakeOpenAI, **settings: object) -> Moderator:
    provider = OpenAIModeration(ProviderSettings("fake", base_url=fake.base_url), "k",
                                "omni-moderation-latest")
    return Moderator(ModerationSettings(enabled=True, provider="fake", **settings), provider)


async def test_a_decision_is_made_once_and_read_back_after(fake_openai: FakeOpenAI,
                                                          tmp_path: Path) -> None:
    fake_openai.moderate("insult", harassment=0.9)
    store = await open_store(tmp_path / "log.db")
    moderator = checker(fake_openai)
    step = ModerationStep(moderator=moderator, store=store, history=ConversationHistory(store),
                          sinks={})
    ada = load_persona("ada")
    trigger = PersonaTriggered(
        platform="test", message_id="m1", persona_id="ada", persona_version=ada.version,
        reason=TriggerReason.MENTION, channel_id="c1", author_id="u1",
        source_event_id="msg:test:m1")
    try:
        stream = conversation_stream("test", "c1")
        first = await step.check(trigger, stream, ada, ModerationDirection.IN, "an insult")
        again = await step.check(trigger, stream, ada, ModerationDirection.IN, "an insult")
        recorded = await store.read_all(types=["ModerationChecked"])
    finally:
        await moderator.aclose()
        await store.close()
    assert first is not None and again is not None
    assert first.fresh and not again.fresh  # only a fresh decision alerts
    assert first.refuses and again.event == first.event
    assert len(fake_openai.moderation_requests) == 1 and len(recorded) == 1
    assert recorded[0].event_id == "moderation:test:m1:ada:in"
    assert recorded[0].causation_id == "trigger:test:m1:ada"


async def test_a_persona_may_switch_a_direction_off_and_relax_a_threshold(
        fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.moderate("romance", sexual=0.85)
    strict = load_persona("ada")
    relaxed = load_persona("eve", extra="moderation:\n  outbound: false\n"
                                        "  thresholds: {sexual: {flag: 0.9, block: 0.99}}\n")
    h = await make_harness(tmp_path, [strict, relaxed], fake_openai,
                           moderator=checker(fake_openai))
    try:
        to_ada = await h.dispatcher.ingest(human(text="ada, a romance", mentions=frozenset({"ada"})))
        to_eve = await h.dispatcher.ingest(human(text="eve, a romance", mentions=frozenset({"eve"})))
        results = [*(await settle(to_ada)), *(await settle(to_eve))]
        checks = {(e.data["persona_id"], e.data["direction"]): e.data["verdict"]
                  for e in await h.events("ModerationChecked")}
    finally:
        await close_harness(h)
    assert checks == {("ada", "in"): "block", ("eve", "in"): "pass"}  # no ("eve", "out")
    assert [(r.persona_id, r.outcome) for r in results] == [("ada", "ModelFailed"),
                                                           ("eve", "ReplyDelivered")]
    assert [n.kind for n in h.sink.notices] == ["moderation"]
    assert h.sink.replies[0].text.endswith("to: eve, a romance")


async def test_a_persona_answering_a_persona_is_checked_on_the_way_out_only(
        fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    ada = load_persona("ada")
    bob = load_persona("bob", extra="triggers: {from_personas: [ada], keywords: [reply]}\n")
    h = await make_harness(tmp_path, [ada, bob], fake_openai, moderator=checker(fake_openai))
    try:
        await settle(await h.dispatcher.ingest(human(text="ada, hi", mentions=frozenset({"ada"}))))
        await h.dispatcher.wait_idle()
        checks = sorted((e.data["persona_id"], e.data["direction"])
                        for e in await h.events("ModerationChecked"))
        hops = [e.data["hop"] for e in await h.events("PersonaTriggered")]
    finally:
        await close_harness(h)
    assert hops == [0, 1]
    assert checks == [("ada", "in"), ("ada", "out"), ("bob", "out")]


async def test_unknown_roles_never_bypass(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.moderate("insult", harassment=0.9)
    ada = load_persona("ada")
    h = await make_harness(tmp_path, [ada], fake_openai,
                           moderator=checker(fake_openai, bypass_roles=frozenset({"r1"}),
                                             thresholds={"default": Thresholds(flag=0.5,
                                                                               block=0.8)}))
    try:
        known = human(text="ada, insult", roles={"r1"}, mentions=frozenset({"ada"}))
        # a DM: the platform sent no roles (whatever the person holds)
        unknown = replace(human(text="ada, insult", mentions=frozenset({"ada"}), guild=None,
                                is_dm=True),
                          author=Author(id="u1", display_name="U1", roles=frozenset({"r1"}),
                                        roles_known=False))
        for message in (known, unknown):
            await settle(await h.dispatcher.ingest(message))
        bypassed = [e.data["bypassed"] for e in await h.events("ModerationChecked")
                    if e.data["direction"] == "in"]
    finally:
        await close_harness(h)
    # no platform resolver here: roles the platform did not send stay unknown
    assert bypassed == ["role", None]


async def test_a_message_several_personas_answer_is_sent_to_the_provider_once(
        fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.moderate("storm", violence=0.3)
    personas = [load_persona("ada"), load_persona("bob")]
    h = await make_harness(tmp_path, personas, fake_openai,
                           moderator=checker(fake_openai, outbound=False))
    try:
        await settle(await h.dispatcher.ingest(human(
            text="a storm is coming", mentions=frozenset({"ada", "bob"}))))
        checks = [(e.data["persona_id"], e.data["scores"]["violence"])
                  for e in await h.events("ModerationChecked")]
    finally:
        await close_harness(h)
    assert sorted(checks) == [("ada", 0.3), ("bob", 0.3)]
    assert [r.body["input"] for r in fake_openai.moderation_requests] == ["a storm is coming"]


async def test_a_kept_answer_is_asked_again_after_a_minute(fake_openai: FakeOpenAI) -> None:
    now = [0.0]
    provider = OpenAIModeration(ProviderSettings("fake", base_url=fake_openai.base_url), "k",
                                "omni-moderation-latest")
    moderator = Moderator(ModerationSettings(enabled=True, provider="fake"), provider,
                          clock=lambda: now[0])
    try:
        await moderator.score("same text")
        now[0] = 59.0
        await moderator.score("same text")
        now[0] = 120.0
        await moderator.score("same text")
    finally:
        await moderator.aclose()
    assert len(fake_openai.moderation_requests) == 2
