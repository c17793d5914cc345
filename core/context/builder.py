"""The prompt for one reply, built from the conversation's events.

Order of the messages: lorebook entries placed ``before_system``, the system prompt,
entries placed ``after_system`` (the default), the persona's example exchanges,
entries placed ``after_examples``, the history (oldest first, chosen newest-first
within ``context.max_messages`` and ``context.max_tokens``, the message being
answered always last, with ``at_depth`` entries inserted that many messages from its
end), then the persona's post-history instructions. Every text is rendered with the
same variables (:mod:`core.personas.prompt`); the lorebook entries are those the
recent turns activate within the book's budget (:mod:`core.personas.lorebook`). A
persona's greeting is a turn of the conversation like its replies.

In multi-user channels each person's turn carries their display name; other
personas' replies are named user turns; a message's attachments are part of its
turn (``core.context.attachments``: images, the newest first, within the persona's
``max_images``; files inlined; the stored content comes from AttachmentStored events
passed in with the conversation's); edits show the latest text and files; deleted
messages, replies that never reached the platform, the platform's echoes of our own
replies and everything before a conversation reset are left out (a reset of one
person's turns leaves out only theirs and the replies to them).

The builder is a pure function of the persona, the events and the variables, and
it returns the positions of every event it used. Building again from only those
events yields the same messages: that is how :func:`~core.context.rebuild.rebuild_prompt`
reproduces a recorded prompt byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..events import (
    AttachmentStored,
    ConversationReset,
    GreetingDelivered,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    ModelReplied,
    PersonaGreeted,
    ReplyDelivered,
    ReplyFailed,
    Typed,
)
from ..events.ids import greeting_event_id, message_event_id, reply_event_id
from ..events.media import Attachment, attachments_of
from ..gateway.model import ChatMessage
from ..gateway.tokens import estimate_tokens, images_tokens
from ..personas.lorebook import LoreOutcome, LoreScan, entry_digest, scan_lorebook
from ..personas.model import Persona
from ..personas.prompt import SEED, render_text
from .attachments import render_turn

MESSAGE_OVERHEAD_TOKENS = 4
"""Role and separators, per message (the chat format's own cost)."""

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """One line of the conversation: a person's message or a persona's reply.

    ``positions`` are the events it came from (the message and its edits);
    ``answered_author`` is, for a persona's reply, the person it answered.
    """

    key: str
    position: int
    author_id: str
    speaker: str
    text: str
    positions: tuple[int, ...]
    persona_id: str | None = None
    answered_author: str | None = None
    attachments: tuple[Attachment, ...] = ()
    lore: tuple[str, ...] = ()
    """For a persona's reply: the lorebook entries its prompt held (digests)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextTarget:
    """What is being answered: the event holding the text, who sent it, and where."""

    source_event_id: str
    author_id: str
    is_dm: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BuiltContext:
    """The messages for the model and the positions of the events that formed them."""

    messages: tuple[ChatMessage, ...]
    positions: tuple[int, ...]
    history_turns: int
    lore_entries: int
    estimated_tokens: int
    lore: LoreScan = field(default_factory=LoreScan)
    """What the lorebook did: every entry that activated, and what became of it."""

    @property
    def lore_inserted(self) -> tuple[str, ...]:
        """The digests of the entries the conversation activated into the prompt
        (recorded with the reply; those carried by stickiness are not: a sticky entry's
        time counts from when it activated)."""
        return tuple(entry_digest(o.entry) for o in self.lore.inserted if not o.carried)


def conversation_turns(events: Iterable[Typed], source_event_id: str) -> list[Turn]:
    """Fold a conversation's events into its visible turns.

    Messages posted after the one being answered are left out (they get answers of
    their own); the answered turn comes last.
    """
    turns: dict[str, Turn] = {}
    ours: set[str] = set()
    in_order = sorted(events, key=lambda e: e.position)
    source_position = next((e.position for e in in_order if e.event_id == source_event_id),
                           None)
    for item in in_order:
        event = item.event
        later = source_position is not None and item.position > source_position
        # the most frequent kinds first: this loop runs over every event of every prompt
        if isinstance(event, MessageReceived):
            if later or event.from_persona:
                continue  # later messages, and echoes of our own replies (ModelReplied has them)
            key = message_event_id(event.platform, event.message_id)
            turns[key] = Turn(key=key, position=item.position, author_id=event.author_id,
                              speaker=event.author_name, text=event.text,
                              positions=(item.position,),
                              attachments=attachments_of(event.attachments))
        elif isinstance(event, ModelReplied):
            key = reply_event_id(event.platform, event.message_id, event.persona_id)
            turns[key] = Turn(key=key, position=item.position, author_id=event.persona_id,
                              speaker=event.persona_name or event.persona_id, text=event.text,
                              positions=(item.position,), persona_id=event.persona_id,
                              answered_author=event.author_id, lore=event.lore)
        elif isinstance(event, PersonaGreeted):
            # the greeting opens the conversation: it comes before the message that did
            opening = turns.get(message_event_id(event.platform, event.greeting_id))
            key = greeting_event_id(event.platform, event.greeting_id, event.persona_id)
            turns[key] = Turn(key=key, position=opening.position if opening else item.position,
                              author_id=event.persona_id,
                              speaker=event.persona_name or event.persona_id, text=event.text,
                              positions=(item.position,), persona_id=event.persona_id,
                              answered_author=event.author_id)
        elif isinstance(event, GreetingDelivered):
            ours.update(message_event_id(event.platform, m) for m in event.delivered_ids)
            if not event.delivered_ids:  # it never reached anyone
                turns.pop(greeting_event_id(event.platform, event.greeting_id,
                                            event.persona_id), None)
        elif isinstance(event, ReplyDelivered):
            ours.update(message_event_id(event.platform, m) for m in event.delivered_ids)
        elif isinstance(event, MessageEdited):
            key = message_event_id(event.platform, event.message_id)
            if key in turns:
                turn = turns[key]
                files = (turn.attachments if event.attachments is None
                         else attachments_of(event.attachments))
                turns[key] = replace(turn, text=event.text, attachments=files,
                                     positions=(*turn.positions, item.position))
        elif isinstance(event, MessageDeleted):
            turns.pop(message_event_id(event.platform, event.message_id), None)
        elif isinstance(event, ConversationReset):
            if not later and event.whole:
                turns.clear()
            elif not later:  # one person's fresh start: their turns and the replies to them
                turns = {k: t for k, t in turns.items() if event.by_user not in (
                    t.answered_author if t.persona_id is not None else t.author_id,)}
        elif isinstance(event, ReplyFailed):
            turns.pop(reply_event_id(event.platform, event.message_id, event.persona_id), None)
    # an echo of our own reply may be recorded before we knew its id: ModelReplied has it
    ordered = sorted((t for t in turns.values() if t.key not in ours),
                     key=lambda t: (t.position, t.persona_id is None))
    source = [t for t in ordered if t.key == source_event_id]
    return [t for t in ordered if t.key != source_event_id] + source


def build_context(
    persona: Persona,
    events: Sequence[Typed],
    target: ContextTarget,
    variables: Mapping[str, str],
) -> BuiltContext:
    """The prompt for ``persona`` answering ``target`` (see the module docstring)."""
    candidates = _visible(persona, conversation_turns(events, target.source_event_id), target)

    def render(text: str, where: str) -> str:
        return render_text(persona, text, variables, where)

    lorebook = persona.lorebook
    scan = LoreScan()
    scanned: list[Turn] = []
    timed: list[Turn] = []
    if lorebook.entries:
        depth = max([lorebook.scan_depth] + [e.scan_depth for e in lorebook.entries
                                             if e.scan_depth is not None])
        scanned = candidates[-depth:] if depth > 0 else []
        since, timed = _lore_history(persona, candidates)
        scan = scan_lorebook(
            lorebook, [t.text for t in scanned], estimate_tokens,
            context_tokens=persona.context.max_tokens, seed=variables.get(SEED, ""),
            render=lambda index, text: render(text, f"lorebook[{index}]"), since=since)
    placed = _placed(scan.inserted)
    system = [*placed.get("before_system", []), ChatMessage("system", render(
        persona.prompt.system, "system")), *placed.get("after_system", [])]
    examples = []
    for i, example in enumerate(persona.prompt.examples):
        examples += [ChatMessage("user", render(example.user, f"examples[{i}].user")),
                     ChatMessage("assistant", render(example.assistant,
                                                     f"examples[{i}].assistant"))]
    examples += placed.get("after_examples", [])
    closing = ([ChatMessage("system", render(persona.prompt.post_history, "post_history"))]
               if persona.prompt.post_history else [])
    at_depth = _at_depth(scan.inserted)
    fixed = sum(_cost(m) for m in (*system, *examples, *closing,
                                   *(m for _, m in at_depth)))
    budget = persona.context.max_tokens - fixed
    spent = fixed
    blobs = {e.event.sha256: (e.position, e.event) for e in events
             if isinstance(e.event, AttachmentStored)}
    images_left = persona.context.max_images
    history: list[tuple[Turn, ChatMessage, tuple[int, ...]]] = []
    for turn in reversed(candidates):
        if len(history) >= persona.context.max_messages:
            break
        rendered = render_turn(persona, turn.text, turn.attachments, blobs, images_left)
        message = _message(persona, turn, target, rendered.content)
        cost = _cost(message)
        if history and cost > budget:
            break  # the answered message always goes in, even alone over budget
        budget -= cost
        spent += cost
        images_left -= rendered.images
        history.append((turn, message, rendered.positions))
    history.reverse()
    used = {p for turn, _, stored in history for p in (*turn.positions, *stored)}
    # scanned turns formed the lore even when the budget left them out of the history,
    # and so did the replies (and the turns since) that make entries sticky
    used.update(p for turn in (*scanned, *timed) for p in turn.positions)
    conversation = [m for _, m, _ in history]
    for depth, message in at_depth:
        conversation.insert(max(0, len(conversation) - depth), message)
    messages = (*system, *examples, *conversation, *closing)
    return BuiltContext(messages=tuple(messages), positions=tuple(sorted(used)),
                        history_turns=len(history), lore_entries=len(scan.inserted),
                        estimated_tokens=spent, lore=scan)


def _lore_history(persona: Persona, candidates: Sequence[Turn]
                  ) -> tuple[dict[str, int], list[Turn]]:
    """How many messages ago each lorebook entry was last inserted by this persona's
    replies (entry digest -> messages between that reply and the one answered), as far
    back as any entry's sticky and cooldown reach; and the turns that tells from."""
    horizon = max((e.sticky + e.cooldown for e in persona.lorebook.entries), default=0)
    if not horizon or len(candidates) < 2:
        return {}, []
    since: dict[str, int] = {}
    earlier = candidates[:-1]  # the message answered is last
    reach = earlier[-horizon:]
    for back, turn in enumerate(reversed(reach)):
        if turn.persona_id == persona.id:
            for digest in turn.lore:
                since.setdefault(digest, back)
    return since, list(reach)


def _placed(inserted: Sequence[LoreOutcome]) -> dict[str, list[ChatMessage]]:
    """The system messages of the entries placed before or after the system prompt,
    or after the examples (one message per place, entries in prompt order)."""
    texts: dict[str, list[str]] = {}
    for outcome in inserted:
        if outcome.entry.position != "at_depth":
            texts.setdefault(outcome.entry.position, []).append(outcome.text)
    return {place: [ChatMessage("system", "\n\n".join(parts))] for place, parts in texts.items()}


def _at_depth(inserted: Sequence[LoreOutcome]) -> list[tuple[int, ChatMessage]]:
    """The messages of ``at_depth`` entries: one per depth and role, deepest first."""
    groups: dict[tuple[int, str], list[str]] = {}
    for outcome in inserted:
        if outcome.entry.position == "at_depth":
            groups.setdefault((outcome.entry.depth, outcome.entry.role), []).append(outcome.text)
    return [(depth, ChatMessage(role, "\n\n".join(parts)))  # type: ignore[arg-type]
            for (depth, role), parts in sorted(groups.items(), key=lambda g: -g[0][0])]


def speaker_name(name: str, fallback: str) -> str:
    """A name the Chat Completions ``name`` field accepts (letters, digits, _ and -)."""
    cleaned = _NAME_UNSAFE.sub("_", name).strip("_")[:64]
    return cleaned or _NAME_UNSAFE.sub("_", fallback)[:64] or "user"


def _visible(persona: Persona, turns: list[Turn], target: ContextTarget) -> list[Turn]:
    visible = []
    for turn in turns:
        is_source = turn.key == target.source_event_id
        if turn.persona_id is not None and turn.persona_id != persona.id and not (
            persona.context.include_other_personas or is_source
        ):
            continue
        if persona.context.scope == "user" and not is_source:
            who = turn.answered_author if turn.persona_id is not None else turn.author_id
            if who != target.author_id:
                continue
        visible.append(turn)
    return visible


def _message(persona: Persona, turn: Turn, target: ContextTarget,
             content: str | tuple) -> ChatMessage:
    if turn.persona_id == persona.id:
        return ChatMessage("assistant", turn.text)
    if turn.persona_id is not None:
        return ChatMessage("user", content, name=speaker_name(turn.speaker, turn.persona_id))
    if target.is_dm:
        return ChatMessage("user", content)
    return ChatMessage("user", content, name=speaker_name(turn.speaker, turn.author_id))


def _cost(message: ChatMessage) -> int:
    return (estimate_tokens(message.text) + images_tokens(message)
            + estimate_tokens(message.name or "") + MESSAGE_OVERHEAD_TOKENS)
