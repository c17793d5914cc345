"""Context building: budgets, lorebook, names, edits, deletes, resets, scopes."""

from __future__ import annotations

from dataclasses import replace

from core.context.builder import ContextTarget, build_context
from core.context.history import context_events
from core.events import (
    ConversationReset,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    ModelReplied,
    ReplyDelivered,
    ReplyFailed,
)
from core.events.ids import message_event_id
from core.personas.model import ContextSpec, Example, Lorebook, LoreEntry, PromptSpec
from eventstore import RecordedEvent

from .conftest import load_persona

ADA = load_persona("ada")


class Conversation:
    """Events as the log would hold them, positions counting up."""

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []

    def _add(self, event, event_id: str) -> RecordedEvent:
        recorded = RecordedEvent(
            position=len(self.events) + 1,
            event_id=event_id,
            stream_id="conv:test:c1",
            version=len(self.events) + 1,
            type=event.type,
            schema_version=1,
            data=event.to_data(),
            recorded_at=0.0,
        )
        self.events.append(recorded)
        return recorded

    def say(self, mid: str, text: str, author: str = "u1", name: str = "Grace") -> str:
        self._add(
            MessageReceived(
                platform="test",
                message_id=mid,
                channel_id="c1",
                author_id=author,
                author_name=name,
                text=text,
            ),
            f"msg:test:{mid}",
        )
        return message_event_id("test", mid)

    def reply(self, mid: str, text: str, persona: str = "ada", author: str = "u1") -> None:
        self._add(
            ModelReplied(
                platform="test",
                message_id=mid,
                persona_id=persona,
                persona_version="v",
                provider="fake",
                model="m",
                text=text,
                author_id=author,
                persona_name=persona.capitalize(),
            ),
            f"reply:test:{mid}:{persona}",
        )

    def edit(self, mid: str, text: str) -> None:
        self._add(
            MessageEdited(platform="test", message_id=mid, text=text, edited_at="e"), f"edit:test:{mid}:e"
        )

    def delete(self, mid: str) -> None:
        self._add(MessageDeleted(platform="test", message_id=mid), f"delete:test:{mid}")

    def reset(self) -> None:
        self._add(
            ConversationReset(platform="test", channel_id="c1", by_user="u1"), f"reset:{len(self.events)}"
        )

    def undelivered(self, mid: str, persona: str = "ada") -> None:
        self._add(
            ReplyFailed(platform="test", message_id=mid, persona_id=persona, error="x"),
            f"delivered:test:{mid}:{persona}",
        )


def build(persona, conversation: Conversation, source: str, author: str = "u1", dm=False):
    return build_context(
        persona,
        context_events(conversation.events),
        ContextTarget(source_event_id=source, author_id=author, is_dm=dm),
        {"user": "Grace", "channel": "general"},
    )


def history(built) -> list[tuple[str, str, str | None]]:
    return [(m.role, m.content, m.name) for m in built.messages if m.role != "system"]


def test_system_prompt_examples_history_and_post_history_in_order():
    persona = replace(ADA, prompt=PromptSpec("Hi {user} in {channel}",
                                             (Example("q?", "a."),), post_history="Be brief."))
    c = Conversation()
    source = c.say("1", "hello")
    built = build(persona, c, source)
    assert [(m.role, m.content) for m in built.messages] == [
        ("system", "Hi Grace in general"), ("user", "q?"), ("assistant", "a."),
        ("user", "hello"), ("system", "Be brief.")]


def test_history_is_chosen_newest_first_within_max_messages():
    persona = replace(ADA, context=ContextSpec(max_messages=3))
    c = Conversation()
    for i in range(1, 6):
        c.say(str(i), f"m{i}")
    built = build(persona, c, "msg:test:5")
    assert [t[1] for t in history(built)] == ["m3", "m4", "m5"]
    assert built.positions == (3, 4, 5)


def test_history_is_chosen_within_max_tokens_and_the_answered_message_always_fits():
    c = Conversation()
    c.say("1", "old " * 600)
    c.say("2", "short one")
    source = c.say("3", "the question")
    roomy = build(replace(ADA, context=ContextSpec(max_tokens=400)), c, source)
    assert [t[1] for t in history(roomy)] == ["short one", "the question"]
    tiny = build(replace(ADA, context=ContextSpec(max_tokens=1)), c, source)
    assert [t[1] for t in history(tiny)] == ["the question"]
    assert tiny.estimated_tokens > 1


def test_lorebook_entries_activated_by_recent_messages_within_the_book_budget():
    book = Lorebook(entries=(
        LoreEntry("Decorators: timing example first.", keys=("decorator",)),
        LoreEntry("Generators are lazy. " * 40, keys=("generator",)),
        LoreEntry("Never shown.", keys=("metaclass",)),
    ), scan_depth=2, token_budget=60)
    persona = replace(ADA, lorebook=book)
    c = Conversation()
    c.say("1", "what is a metaclass?")
    c.say("2", "and a decorator?")
    source = c.say("3", "or a generator")
    built = build(persona, c, source)
    lore = [m.content for m in built.messages if m.role == "system"][1:]
    assert lore == ["Decorators: timing example first."]  # generator entry is over budget


def test_multi_user_turns_carry_names_other_personas_are_named_turns():
    c = Conversation()
    c.say("1", "hi all", "u1", "Grace Hopper")
    c.reply("1", "hello Grace", "bob")
    c.reply("1", "hi from ada", "ada")
    source = c.say("2", "@ada thoughts?", "u2", "Linus!")
    assert history(build(ADA, c, source, "u2")) == [
        ("user", "hi all", "Grace_Hopper"), ("user", "hello Grace", "Bob"),
        ("assistant", "hi from ada", None), ("user", "@ada thoughts?", "Linus")]
    private = replace(ADA, context=ContextSpec(include_other_personas=False))
    assert [t[1] for t in history(build(private, c, source, "u2"))] == [
        "hi all", "hi from ada", "@ada thoughts?"]


def test_direct_messages_have_no_speaker_names():
    c = Conversation()
    source = c.say("1", "psst")
    assert history(build(ADA, c, source, dm=True)) == [("user", "psst", None)]


def test_edits_show_the_latest_text_deletes_and_undelivered_replies_are_left_out():
    c = Conversation()
    c.say("1", "first draft")
    c.say("2", "oops, secret")
    c.reply("2", "never delivered")
    c.undelivered("2")
    c.edit("1", "final text")
    c.delete("2")
    source = c.say("3", "question")
    built = build(ADA, c, source)
    assert [t[1] for t in history(built)] == ["final text", "question"]
    assert built.positions == (1, 5, 7)


def test_messages_before_a_reset_are_left_out():
    c = Conversation()
    c.say("1", "before")
    c.reply("1", "old answer")
    c.reset()
    c.say("2", "after")
    source = c.say("3", "question")
    assert [t[1] for t in history(build(ADA, c, source))] == ["after", "question"]


def test_later_messages_are_left_out_and_the_answered_one_comes_last():
    c = Conversation()
    first = c.say("1", "first")
    c.say("2", "second")
    c.reply("1", "answer to first")
    assert [t[1] for t in history(build(ADA, c, first))] == ["answer to first", "first"]


def test_user_scope_keeps_only_that_persons_turns_and_the_replies_to_them():
    persona = replace(ADA, context=ContextSpec(scope="user"))
    c = Conversation()
    c.say("1", "mine", "u1")
    c.reply("1", "to u1", author="u1")
    c.say("2", "theirs", "u2")
    c.reply("2", "to u2", author="u2")
    source = c.say("3", "mine again", "u1")
    assert [t[1] for t in history(build(persona, c, source))] == ["mine", "to u1", "mine again"]


def test_the_answered_message_may_come_from_outside_the_history_read():
    c = Conversation()
    first = c.say("1", "old question")
    c.say("2", "later chatter")
    c.reply("2", "later answer")
    tail = c.events[1:] + c.events[:1]  # the tail read missed it; fetched and added last
    assert history(build(ADA, conversation_of(tail), first)) == history(build(ADA, c, first))
    assert [t[1] for t in history(build(ADA, c, first))] == ["later answer", "old question"]


def conversation_of(events) -> Conversation:
    conversation = Conversation()
    conversation.events = list(events)
    return conversation


def test_an_echo_of_our_reply_recorded_before_its_delivery_is_left_out():
    c = Conversation()
    c.say("1", "hi ada")
    c.reply("1", "hello!")
    c.say("out-1", "hello!", author="webhook", name="Ada")  # the echo won the race
    c._add(
        ReplyDelivered(platform="test", message_id="1", persona_id="ada", delivered_ids=("out-1",)),
        "delivered:test:1:ada",
    )
    source = c.say("2", "how are you?")
    assert [t[1] for t in history(build(ADA, c, source))] == ["hi ada", "hello!",
                                                              "how are you?"]
