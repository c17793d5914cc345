"""The trigger matrix and the permission matrix, as pure decisions."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from core.config import AdminSettings
from core.dispatcher.permissions import permission_refusal
from core.dispatcher.triggers import TriggerEvaluator
from core.personas.model import PermissionSpec, TriggerSpec

from .conftest import human, load_persona

ADA = load_persona("ada")


def ada_with(**triggers: object):
    return replace(ADA, triggers=replace(TriggerSpec(), **triggers))


def reasons(persona, message, **kwargs) -> list[str]:
    return [m.reason for m in TriggerEvaluator().evaluate(message, [persona], **kwargs)]


@pytest.mark.parametrize(("triggers", "message", "kwargs", "expected"), [
    ({}, human(text="@Ada hi"), {}, ["mention"]),
    ({}, human(text="@ada hi"), {}, ["mention"]),
    ({}, human(text="hi", mentions=frozenset({"ada"})), {}, ["mention"]),
    ({"mention": False}, human(text="@Ada hi"), {}, []),
    ({}, human(text="@Adam hi"), {}, []),
    ({}, human(text="hello", is_dm=True, guild=None), {}, ["dm"]),
    ({"dm": False}, human(text="hello", is_dm=True, guild=None), {}, []),
    ({}, human(text="thanks", reply_to="x"), {"replied_persona": "ada"}, ["reply"]),
    ({}, human(text="thanks", reply_to="x"), {"replied_persona": "bob"}, []),
    ({"reply": False}, human(text="thanks", reply_to="x"), {"replied_persona": "ada"}, []),
    ({"keywords": ("ada,",)}, human(text="Ada, what is a list?"), {}, ["keyword"]),
    ({"keywords": ("hey ada",)}, human(text="well HEY ADA there"), {}, ["keyword"]),
    ({"keywords": ("ada",)}, human(text="canada is big"), {}, []),
    ({"keywords": ("ada",)}, human(text="adagio"), {}, []),
    ({"keywords": ("Ada",), "case_sensitive": True}, human(text="ada?"), {}, []),
    ({"keywords": ("Ada",), "case_sensitive": True}, human(text="Ada?"), {}, ["keyword"]),
    ({"patterns": (re.compile(r"^!py\b", re.I),)}, human(text="!PY lists"), {}, ["pattern"]),
    ({"patterns": (re.compile(r"^!py\b"),)}, human(text="see !py"), {}, []),
    ({"channels": frozenset({"c1"})}, human(text="anything"), {}, ["channel"]),
    ({"channels": frozenset({"c1"})}, human(text="x", channel="t9", parent_channel_id="c1"),
     {}, ["channel"]),
    ({"channels": frozenset({"c2"})}, human(text="anything"), {}, []),
    ({}, human(text="nothing to see"), {}, []),
    # explicit invocation wins and is exclusive
    ({}, human(text="hi", invoked_persona="ada"), {}, ["invoked"]),
    ({"keywords": ("hi",)}, human(text="hi", invoked_persona="bob"), {}, []),
    # bots never trigger, even by mention ...
    ({}, human(text="@Ada hi", is_bot=True), {}, []),
    ({"channels": frozenset({"c1"})}, human(text="x", is_bot=True), {}, []),
    # ... unless a persona allows the persona that wrote it (hop counted)
    ({"from_personas": frozenset({"bob"}), "keywords": ("ada",)},
     human(text="ada, you?", is_bot=True), {"from_persona": "bob", "hop": 1}, ["keyword"]),
    ({"keywords": ("ada",)}, human(text="ada, you?", is_bot=True),
     {"from_persona": "bob", "hop": 1}, []),
    ({"from_personas": frozenset({"bob"})}, human(text="no trigger words", is_bot=True),
     {"from_persona": "bob"}, []),
])
def test_trigger_matrix(triggers, message, kwargs, expected):
    assert reasons(ada_with(**triggers), message, **kwargs) == expected


def test_one_message_triggers_several_personas_strongest_reason_first():
    bob = replace(load_persona("bob"), triggers=TriggerSpec(keywords=("python",)))
    cleo = replace(load_persona("cleo"), triggers=TriggerSpec(channels=frozenset({"c1"})))
    ada = ada_with()
    matches = TriggerEvaluator().evaluate(human(text="python question @ada"), [cleo, bob, ada])
    assert [(m.persona_id, m.reason) for m in matches] == [
        ("ada", "mention"), ("bob", "keyword"), ("cleo", "channel")]


def test_a_persona_never_answers_itself_and_hops_increase():
    ada = ada_with(from_personas=frozenset({"ada", "bob"}), keywords=("ada",))
    evaluator = TriggerEvaluator()
    message = human(text="ada!", is_bot=True)
    assert evaluator.evaluate(message, [ada], from_persona="ada", hop=0) == ()
    (match,) = evaluator.evaluate(message, [ada], from_persona="bob", hop=2)
    assert match.hop == 3


ADMINS = AdminSettings(users=frozenset({"root"}), roles=frozenset({"mods"}))


@pytest.mark.parametrize(("spec", "message", "expected"), [
    (PermissionSpec(), human("u1"), None),
    (PermissionSpec(deny_users=frozenset({"u1"})), human("u1"), "user_denied"),
    (PermissionSpec(deny_users=frozenset({"u1"})), human("u2"), None),
    (PermissionSpec(deny_roles=frozenset({"muted"})), human("u1", roles={"muted"}),
     "role_denied"),
    (PermissionSpec(allow_users=frozenset({"u2"})), human("u1"), "not_allowed"),
    (PermissionSpec(allow_users=frozenset({"u1"})), human("u1"), None),
    (PermissionSpec(allow_roles=frozenset({"vip"})), human("u1", roles={"vip"}), None),
    (PermissionSpec(allow_roles=frozenset({"vip"})), human("u1", roles={"x"}), "not_allowed"),
    (PermissionSpec(allow_users=frozenset({"u1"}), allow_roles=frozenset({"vip"})),
     human("u2", roles={"vip"}), None),
    (PermissionSpec(allow_users=frozenset({"u1"}), deny_roles=frozenset({"muted"})),
     human("u1", roles={"muted"}), "role_denied"),
    (PermissionSpec(allow_channels=frozenset({"c2"})), human("u1", channel="c1"),
     "channel_not_allowed"),
    (PermissionSpec(allow_channels=frozenset({"c1"})), human("u1", channel="t1",
                                                             parent_channel_id="c1"), None),
    (PermissionSpec(deny_channels=frozenset({"c1"})), human("u1", channel="c1"),
     "channel_denied"),
    (PermissionSpec(deny_channels=frozenset({"c1"})), human("u1", channel="t1",
                                                            parent_channel_id="c1"),
     "channel_denied"),
    (PermissionSpec(dms=False), human("u1", is_dm=True, guild=None), "dms_disabled"),
    (PermissionSpec(allow_channels=frozenset({"c2"})), human("u1", is_dm=True, guild=None),
     None),
    # admins pass every rule
    (PermissionSpec(deny_users=frozenset({"root"})), human("root"), None),
    (PermissionSpec(allow_users=frozenset({"u2"}), dms=False),
     human("u1", roles={"mods"}, is_dm=True), None),
])
def test_permission_matrix(spec, message, expected):
    assert permission_refusal(message, spec, ADMINS) == expected


async def test_refusals_are_recorded_with_their_reason_and_nothing_is_asked_of_the_model(
        tmp_path, fake_openai):
    from .conftest import close_harness, make_harness
    ada = replace(ADA, permissions=PermissionSpec(deny_users=frozenset({"troll"})))
    harness = await make_harness(tmp_path, [ada], fake_openai)
    try:
        result = await harness.dispatcher.ingest(human("troll", "@ada hi"))
        assert result.rejected == (("ada", "permission:user_denied"),) and not result.replies
        (rejected,) = await harness.events("TriggerRejected")
        assert rejected.data["reason"] == "permission:user_denied"
        assert not fake_openai.requests and not harness.sink.notices
    finally:
        await close_harness(harness)


async def test_a_persona_chain_never_makes_a_persona_talk_with_someone_it_refuses(tmp_path):
    from .conftest import close_harness, load_persona, make_harness, settle

    ada = load_persona("ada", provider="offline", extra="triggers: {keywords: ['ada']}\n")
    bob = load_persona("bob", provider="offline", extra=(
        "triggers: {patterns: ['^\\[offline\\]'], from_personas: [ada]}\n"
        "permissions: {deny_users: ['771020304050607080']}\n"))
    harness = await make_harness(tmp_path, [ada, bob], None)
    try:
        for author in ("771020304050607080", "alice"):
            await settle(await harness.dispatcher.ingest(human(author, "ada, start a chat")))
            await harness.dispatcher.wait_idle()
        replies = [(e.data["persona_id"], e.data["author_id"])
                   for e in await harness.events("ModelReplied")]
        (refused,) = await harness.events("TriggerRejected")
        triggered = [e.data for e in await harness.events("PersonaTriggered")
                     if e.data["persona_id"] == "bob"]
    finally:
        await close_harness(harness)
    assert replies == [("ada", "771020304050607080"), ("ada", "alice"),
                       ("bob", "persona:ada")]
    assert (refused.data["persona_id"], refused.data["reason"]) == (
        "bob", "permission:user_denied")
    assert refused.data["detail"] == "for 771020304050607080, who started this"
    assert [t["root_author_id"] for t in triggered] == ["alice"]
