"""The Discord side of :class:`~core.dispatcher.sink.ReplySink`: posting replies.

A reply is split at 2000 characters (code fences balanced per part) and posted as
the persona (name and avatar) through the channel's webhook; in DMs, and where the
bot lacks Manage Webhooks, it is a normal bot message replying to the user and
headed by the persona's name. Mentions the model writes ping nobody, except the
person answered (when the persona's ``allowed_mentions`` does not say otherwise).
Slash commands get their reply as the command's answer. While the model works the
channel shows "typing"; personas with ``delivery.stream_edits`` show the reply as it
arrives, editing the message at most once per ``stream_interval_s``. A reasoning
model's thinking goes before the reply as a spoiler block (``reasoning: spoiler``) or
after it as a text file (``reasoning: attach``); a reply's files follow it in one
message.

Exactly once through a crash: a reply of several messages records its plan and each
part as it is posted, a preview its first text and then its id before any edit
(:class:`~core.dispatcher.sink.DeliveryRecorder`). Recovered, a reply posts only the
missing parts, in order, finishes its preview instead of posting another, and takes
a message from the channel's history for the part that was in flight only if it is
ours as this persona, in its place, with that text, and claimed by no other reply.
Bot messages carry a nonce per part (``enforce_nonce``): posted again within minutes,
Discord returns the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import disnake
from disnake.http import Route
from disnake.utils import MISSING
from disnake.webhook import Webhook

from ...dispatcher.dispatcher import PersonaSource
from ...dispatcher.messages import (
    DeliveryReceipt,
    ModerationAlert,
    Notice,
    OutboundReply,
    ReplyTarget,
)
from ...dispatcher.sink import DeliveryError, DeliveryRecorder, DeliveryState
from ...personas.model import AllowedMentions, Persona
from .chunking import DISCORD_MESSAGE_LIMIT, split_message
from .interactions import InteractionReplies
from .threads import ThreadMover
from .webhooks import WebhookCache

log = logging.getLogger(__name__)

TYPING_EVERY_S = 8.0
"""Discord shows "typing" for 10 s after each request."""
TYPING_AT_MOST_S = 120.0
STREAM_INTERVAL_S = 1.0
RECENT_KEPT = 2000
"""Posted message ids remembered (with the reply they belong to) until their delivery is
surely in the log."""
TYPING_REQUEST_WAIT_S = 2.0
"""How long closing waits for typing requests already sent."""
_STREAM_PREVIEW = DISCORD_MESSAGE_LIMIT - 100


def discord_allowed_mentions(spec: AllowedMentions, answered_user_id: str | None
                             ) -> disnake.AllowedMentions:
    """Who a reply may ping: what the persona allows, plus the person answered when
    ``replied_user`` is on; never @everyone or roles unless allowed."""
    users: bool | list[disnake.Object] = True if spec.users else (
        [disnake.Object(int(answered_user_id))]
        if spec.replied_user and answered_user_id and answered_user_id.isdigit() else False)
    return disnake.AllowedMentions(everyone=spec.everyone, roles=spec.roles, users=users,
                                   replied_user=spec.replied_user)


@dataclass(slots=True)
class _Stream:
    """A reply being shown while it arrives: its preview message, once posted."""

    text: str = ""
    message_id: int | None = None
    where: _Where | None = None
    last_edit: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    flush: asyncio.Task[None] | None = None
    checked: bool = False
    """The log was asked for a preview a crash left (once per reply)."""

    @property
    def headed(self) -> bool:
        """Bot messages start with the persona's name; webhook messages show it."""
        return self.where is None or self.where.hook is None


@dataclass(frozen=True, slots=True)
class _Where:
    """Where to post: the channel, and the webhook (plus thread) when there is one."""

    channel: disnake.abc.Messageable
    hook: Webhook | None
    thread: disnake.Thread | None

    @property
    def route(self) -> str:
        """``webhook`` or ``bot``: how a part posted here is posted."""
        return "webhook" if self.hook is not None else "bot"

    @property
    def channel_id(self) -> str:
        """The id of the channel (or thread) the messages land in."""
        return str(getattr(self.thread or self.channel, "id", ""))


@dataclass(slots=True)
class _Delivery:
    """One reply being posted part by part, with what the log knew of it before."""

    reply: OutboundReply
    where: _Where
    parts: list[str]
    state: DeliveryState
    allowed: disnake.AllowedMentions
    recorded: bool
    """The plan is in the log: each part is recorded as it is posted."""


class DiscordSink:
    """Delivers replies and notices to Discord (see the module docstring)."""

    def __init__(self, client: disnake.Client, personas: PersonaSource,
                 interactions: InteractionReplies, threads: ThreadMover, *,
                 stream_interval_s: float = STREAM_INTERVAL_S,
                 typing_every_s: float = TYPING_EVERY_S) -> None:
        self._client = client
        self._personas = personas
        self._interactions = interactions
        self._threads = threads
        self._webhooks = WebhookCache(client)
        self._stream_interval_s = stream_interval_s
        self._typing_every_s = typing_every_s
        self._typing: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._typing_requests: set[asyncio.Future[None]] = set()
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._recent: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._recorder: DeliveryRecorder | None = None
        self.online = asyncio.Event()
        """Set once the client has logged in: replies recovered at start-up wait for it."""
        client.add_listener(self._on_connect, "on_connect")

    def record_with(self, recorder: DeliveryRecorder) -> None:
        """Record each step of a delivery through ``recorder`` (the dispatcher's), and read
        back after a crash what was done."""
        self._recorder = recorder

    async def _on_connect(self) -> None:
        self.online.set()

    # -- ReplySink -----------------------------------------------------------------------

    async def deliver(self, reply: OutboundReply) -> DeliveryReceipt:
        """Post ``reply``; the receipt lists every Discord message it became."""
        target = reply.target
        key = (target.delivery_id, reply.persona_id)
        self._stop_typing(key)
        allowed = discord_allowed_mentions(reply.allowed_mentions, target.author_id)
        text = reply.text if reply.text.strip() else "…"
        if reply.spoiler.strip():
            text = f"{spoiler_block(reply.spoiler)}\n\n{text}"
        try:
            if self._interactions.expects(target.message_id) and not reply.greeting:
                parts = _headed(reply.persona_name, text)
                ids = await self._interactions.answer(target.message_id, parts, allowed)
            else:
                ids = await self._deliver_in_channel(reply, text, allowed)
        except disnake.HTTPException as exc:
            raise DeliveryError(f"Discord refused the reply: {exc.status} {exc.text}"[:300]
                                ) from None
        self._claim(ids, key)
        return DeliveryReceipt(message_ids=tuple(ids))

    async def notice(self, notice: Notice) -> None:
        """A short line as the persona (privately, for a slash command). A reply whose
        preview is showing gets the notice in that preview, marked as cut off."""
        target = notice.target
        key = (target.delivery_id, notice.persona_id)
        self._stop_typing(key)
        stream = self._streams.pop(key, None)
        if await self._interactions.tell(target.message_id, notice.text):
            return
        persona = self._personas.get(notice.persona_id)
        if stream is None and notice.kind == "failure":
            stream = await self._recovered_stream(target, notice.persona_id,
                                                  notice.persona_name)
        if stream is not None and stream.message_id is not None:
            await self._cut(stream, notice)
            return
        where = await self._where(target, notice.persona_id,
                                  persona.delivery.webhook if persona else True, "")
        assert where is not None  # a notice never moves
        none = disnake.AllowedMentions.none()
        await self._post(where, notice.persona_name, persona.avatar_url if persona else None,
                         notice.text, none, target)

    async def alert(self, alert: ModerationAlert) -> None:
        """The moderators' channel gets the alert as the bot, with a link to the message
        (pinging nobody)."""
        channel = await self._channel(int(alert.channel_id))
        text = f"{alert.summary}\n{jump_url(alert.target, alert.linked_message_id)}"
        await channel.send(text[:DISCORD_MESSAGE_LIMIT],
                           allowed_mentions=disnake.AllowedMentions.none())

    async def typing(self, target: ReplyTarget, persona_id: str) -> None:
        """Keep "typing" showing in the channel until the reply or a notice is posted."""
        key = (target.delivery_id, persona_id)
        if key in self._typing or self._interactions.expects(target.message_id):
            return
        self._typing[key] = asyncio.create_task(self._keep_typing(target))

    async def stream_delta(self, target: ReplyTarget, persona_id: str, text: str) -> None:
        """Show the reply as it arrives, for personas with ``delivery.stream_edits``: the
        first piece posts a preview (its text recorded first, its id before any edit),
        later ones edit it at most once per ``stream_interval_s``. A preview a crash
        left is taken up again instead of posting another."""
        persona = self._personas.get(persona_id)
        if persona is None or not persona.delivery.stream_edits or \
                self._interactions.expects(target.message_id):
            return
        key = (target.delivery_id, persona_id)
        stream = self._streams.setdefault(key, _Stream())
        stream.text += text
        try:
            await self._show(stream, target, persona_id, persona)
        except disnake.HTTPException as exc:  # a preview is a hint: the reply still goes out
            log.warning("could not show the reply as it arrives: %s", exc)

    async def _show(self, stream: _Stream, target: ReplyTarget, persona_id: str,
                    persona: Persona) -> None:
        key = (target.delivery_id, persona_id)
        async with stream.lock:
            if not stream.checked:
                stream.checked = True
                found = await self._recovered_stream(target, persona_id, persona.name)
                if found is not None:
                    stream.message_id, stream.where = found.message_id, found.where
            if stream.message_id is None:
                # where the reply goes is decided before its first byte is posted: a
                # preview waits while only the reply's length could still move it
                where = await self._where(target, persona_id, persona.delivery.webhook,
                                          stream.text, final=False)
                if where is None:
                    return
                self._stop_typing(key)
                preview = _preview(persona.name, stream.text, where.hook is None)
                if not preview.strip():
                    return
                if self._recorder is not None:
                    await self._recorder.preview_planned(target, persona_id, text=preview,
                                                         route=where.route,
                                                         channel_id=where.channel_id)
                posted = await self._post_part(where, persona.name, persona.avatar_url,
                                               preview, disnake.AllowedMentions.none(),
                                               target, persona_id, "preview")
                stream.message_id, stream.where = int(posted), where
                self._claim([posted], key)
                if self._recorder is not None:
                    await self._recorder.previewed(target, persona_id, posted)
                stream.last_edit = time.monotonic()
            elif stream.flush is None:
                stream.flush = asyncio.create_task(self._flush_later(stream, persona.name))

    def posted_recently(self, message_id: str) -> bool:
        """True for a message this sink posted lately (its delivery may not be in the
        log yet)."""
        return message_id in self._recent

    def owns_webhook(self, webhook_id: int) -> bool:
        """True for the webhooks replies are posted through (their echoes are ours)."""
        return self._webhooks.owns(webhook_id)

    async def aclose(self) -> None:
        """Stop typing indicators and pending stream edits; let the requests already on
        the wire finish (the HTTP session closes after this)."""
        tasks = list(self._typing.values())
        tasks += [s.flush for s in self._streams.values() if s.flush is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._typing_requests:
            await asyncio.wait(list(self._typing_requests), timeout=TYPING_REQUEST_WAIT_S)
        self._typing.clear()
        self._streams.clear()

    # -- delivering ----------------------------------------------------------------------

    async def _state(self, target: ReplyTarget, persona_id: str) -> DeliveryState:
        if self._recorder is None:
            return DeliveryState()
        return await self._recorder.state(target, persona_id)

    async def _deliver_in_channel(self, reply: OutboundReply, text: str,
                                  allowed: disnake.AllowedMentions) -> list[str]:
        target = reply.target
        key = (target.delivery_id, reply.persona_id)
        state = await self._state(target, reply.persona_id) if reply.recovered \
            else DeliveryState()
        stream = self._streams.pop(key, None)
        persona = self._personas.get(reply.persona_id)
        if stream is None and (reply.recovered or (persona and persona.delivery.stream_edits)):
            # a preview a crash left (the reply re-run, or delivered from the log) is
            # finished, not left cut off beside a second message
            stream = await self._recovered_stream(target, reply.persona_id, reply.persona_name)
        if stream is not None and stream.message_id is not None and stream.where is not None:
            ids = await self._finish_stream(stream, reply, text, allowed, state)
            return ids + await self._post_files(reply, stream.where, ids[-1])
        if reply.recovered and not state.parts and (
                answered := await self._answered_command(reply, text, allowed)):
            return answered
        if state.parts:  # a plan recorded before a crash: the same parts, the same place
            where = await self._where_again(state.channel_id, state.route)
            parts = list(state.parts)
        else:
            decided = await self._where(target, reply.persona_id, reply.webhook, text)
            assert decided is not None  # a whole reply is always decided
            where = decided
            parts = split_message(text) if where.hook is not None else _headed(
                reply.persona_name, text)
        delivery = _Delivery(reply=reply, where=where, parts=parts, state=state,
                             allowed=allowed, recorded=bool(state.parts))
        await self._plan(delivery, where.route)
        ids = await self._post_parts(delivery, first=0)
        return ids + await self._post_files(reply, where, ids[-1])

    async def _post_files(self, reply: OutboundReply, where: _Where, after: str) -> list[str]:
        """The reply's files, in one message after its last part, as the persona. A
        recovered reply first looks for that message in the history (ours, after the
        last part, with the same file names), so the files are never posted twice."""
        if not reply.files:
            return []
        if reply.recovered and (found := await self._find_files(reply, where, after)):
            return [found]
        uploads = [disnake.File(io.BytesIO(f.content), filename=f.filename)
                   for f in reply.files]
        none = disnake.AllowedMentions.none()
        if where.hook is not None:
            sent = await where.hook.send(files=uploads, username=_webhook_name(reply.persona_name),
                                         avatar_url=reply.avatar_url or MISSING,
                                         allowed_mentions=none, wait=True,
                                         thread=where.thread or MISSING)
            return [str(sent.id)]
        message = await (where.thread or where.channel).send(files=uploads, allowed_mentions=none)
        return [str(message.id)]

    async def _find_files(self, reply: OutboundReply, where: _Where, after: str) -> str | None:
        if not after.isdigit():
            return None
        names = [f.filename for f in reply.files]
        hook_id = where.hook.id if where.hook is not None else None
        me = self._client.user.id if self._client.user else None
        history = (where.thread or where.channel).history(
            after=disnake.Object(int(after)), limit=_RECOVERY_SCAN, oldest_first=True)
        async for message in history:
            ours = message.webhook_id == hook_id if hook_id is not None else (
                message.author.id == me and message.webhook_id is None)
            if ours and [a.filename for a in message.attachments] == names:
                return await self._unclaimed([str(message.id)], reply.target, reply.persona_id)
        return None

    async def _plan(self, delivery: _Delivery, route: str) -> None:
        """Record the plan of a reply of several messages before its first part."""
        if delivery.recorded or len(delivery.parts) < 2 or self._recorder is None:
            return
        reply = delivery.reply
        await self._recorder.planned(reply.target, reply.persona_id, parts=delivery.parts,
                                     route=route, channel_id=delivery.where.channel_id)
        delivery.recorded = True

    async def _post_parts(self, delivery: _Delivery, *, first: int,
                          ids: list[str] | None = None) -> list[str]:
        """Post the parts from ``first`` on, in order, each recorded as it is posted. A
        recovered reply skips the parts recorded as posted and looks in the channel's
        history for the one that may have been in flight (without a plan, for each part
        until one is not found); only then does it post."""
        reply = delivery.reply
        target = reply.target
        ids = list(ids or [])
        searching = reply.recovered
        for index in range(first, len(delivery.parts)):
            part = delivery.parts[index]
            posted = delivery.state.posted.get(index)
            if posted is None and searching:
                posted = await self._find_posted(delivery, index, ids[-1] if ids else None)
                searching = posted is not None and not delivery.state.parts
                if posted is not None:
                    await self._record_part(delivery, index, posted)
            if posted is None:
                posted = await self._post_part(delivery.where, reply.persona_name,
                                               reply.avatar_url, part, delivery.allowed,
                                               target, reply.persona_id, index)
                self._claim([posted], (target.delivery_id, reply.persona_id))
                await self._record_part(delivery, index, posted)
            ids.append(posted)
        return ids

    async def _record_part(self, delivery: _Delivery, index: int, posted: str) -> None:
        if delivery.recorded and self._recorder is not None:
            reply = delivery.reply
            await self._recorder.posted(reply.target, reply.persona_id, index, posted)

    async def _find_posted(self, delivery: _Delivery, index: int,
                           previous: str | None) -> str | None:
        """The message part ``index`` became before a crash, if Discord has it: in the
        channel's history after the previous part (or the message answered), posted by
        us as this persona (our webhook with its name, or the bot, replying to the
        message answered for the first part), with exactly the part's text, and claimed
        by no other reply (recorded in the log, or posted by this process)."""
        reply = delivery.reply
        target = reply.target
        after = previous or target.message_id
        if not after.isdigit():
            return None
        where = delivery.where
        hook_id = where.hook.id if where.hook is not None else None
        me = self._client.user.id if self._client.user else None
        wanted = delivery.parts[index].strip()
        name = _webhook_name(reply.persona_name)
        referenced = index == 0 and where.thread is None and target.message_id.isdigit()
        found: list[str] = []
        history = (where.thread or where.channel).history(
            after=disnake.Object(int(after)), limit=_RECOVERY_SCAN, oldest_first=True)
        async for message in history:
            if message.content.strip() != wanted:
                continue
            if hook_id is not None:
                ours = message.webhook_id == hook_id and message.author.name == name
            else:
                ours = message.author.id == me and message.webhook_id is None and (
                    not referenced or (message.reference is not None
                                       and message.reference.message_id == int(
                                           target.message_id)))
            if ours:
                found.append(str(message.id))
        return await self._unclaimed(found, target, reply.persona_id)

    async def _answered_command(self, reply: OutboundReply, text: str,
                                allowed: disnake.AllowedMentions) -> list[str] | None:
        """A slash command's reply that was being answered when the bot stopped: the
        command's answer and follow-ups (messages carrying that interaction's id, which
        only its answers can) are in the channel; the parts still missing are posted
        there. None when the message answered was no command we answered."""
        target = reply.target
        if not target.message_id.isdigit():
            return None
        channel = await self._channel(int(target.channel_id))
        me = self._client.user.id if self._client.user else None
        found = [message async for message in channel.history(
            after=disnake.Object(int(target.message_id)), limit=_RECOVERY_SCAN,
            oldest_first=True)
            if message.author.id == me and message.interaction_metadata is not None
            and message.interaction_metadata.id == int(target.message_id)]
        if not found:
            return None
        parts = _headed(reply.persona_name, text)
        ids = [str(m.id) for m in found[:len(parts)]]
        for part in parts[len(ids):]:
            sent = await channel.send(part, allowed_mentions=allowed)
            ids.append(str(sent.id))
        return ids

    async def _unclaimed(self, candidates: list[str], target: ReplyTarget,
                         persona_id: str) -> str | None:
        """The first of ``candidates`` no other reply claims."""
        if not candidates:
            return None
        mine = (target.delivery_id, persona_id)
        recorded = await self._recorder.claims(target.platform, candidates) \
            if self._recorder is not None else {}
        for candidate in candidates:
            owner = recorded.get(candidate) or self._recent.get(candidate)
            if owner is None or owner == mine:
                return candidate
        return None

    def _claim(self, ids: list[str], key: tuple[str, str]) -> None:
        for message_id in ids:
            self._recent[message_id] = key
            self._recent.move_to_end(message_id)
        while len(self._recent) > RECENT_KEPT:
            self._recent.popitem(last=False)

    # -- posting -------------------------------------------------------------------------

    async def _where(self, target: ReplyTarget, persona_id: str, webhook: bool,
                     text: str, *, final: bool = True) -> _Where | None:
        """Where a reply (``text``: all of it, or what has arrived when not ``final``),
        a greeting (never into a thread) or a notice (no text) goes; None while a
        streaming reply's place cannot be decided yet (see :meth:`ThreadMover.decide`)."""
        channel = await self._channel(int(target.channel_id))
        persona = self._personas.get(persona_id)
        if isinstance(channel, disnake.TextChannel) and persona is not None \
                and not target.greeting and (text or not final):
            move = await self._threads.decide(persona, target, text, final=final)
            if move is None:
                return None
            if move:
                try:
                    channel = await self._threads.open(channel, target, persona)
                except disnake.HTTPException as exc:
                    log.warning("could not open a thread (%s); answering in the channel", exc)
        if not webhook or target.is_dm:
            return _Where(channel, None, None)
        return await self._hooked(channel)

    async def _where_again(self, channel_id: str, route: str) -> _Where:
        """Where a recorded plan posts: its channel (or thread), by its route."""
        channel = await self._channel(int(channel_id))
        if route == "bot":
            return _Where(channel, None, None)
        return await self._hooked(channel)

    async def _hooked(self, channel: disnake.abc.Messageable) -> _Where:
        thread = channel if isinstance(channel, disnake.Thread) else None
        base = thread.parent if thread is not None else channel
        hook = await self._webhooks.get(base) if isinstance(base, disnake.TextChannel) else None
        return _Where(channel, hook, thread)

    async def _post_part(self, where: _Where, name: str, avatar_url: str | None, part: str,
                         allowed: disnake.AllowedMentions, target: ReplyTarget,
                         persona_id: str, index: int | str) -> str:
        """Post one part; a bot message carries a nonce of this part (with
        ``enforce_nonce``), so posting it again after a crash returns the first."""
        if where.hook is not None:
            try:
                message = await where.hook.send(part, username=_webhook_name(name),
                                                avatar_url=avatar_url or MISSING,
                                                allowed_mentions=allowed, wait=True,
                                                thread=where.thread or MISSING)
                return str(message.id)
            except disnake.NotFound:
                self._forget_hook(where)  # deleted by someone: post as the bot now
        channel = where.thread or where.channel
        channel_id = int(getattr(channel, "id"))  # noqa: B009 - every Messageable here has one
        payload: dict[str, object] = {
            "content": part, "allowed_mentions": allowed.to_dict(),
            "nonce": part_nonce(target, persona_id, index), "enforce_nonce": True}
        if index in (0, "preview") and channel_id == int(target.channel_id) and \
                target.message_id.isdigit():
            payload["message_reference"] = disnake.MessageReference(
                message_id=int(target.message_id), channel_id=channel_id,
                guild_id=int(target.guild_id) if target.guild_id else None,
                fail_if_not_exists=False).to_message_reference_dict()
        data = await self._client.http.request(
            Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id),
            json=payload)
        return str(data["id"])

    async def _post(self, where: _Where, name: str, avatar_url: str | None, text: str,
                    allowed: disnake.AllowedMentions, target: ReplyTarget) -> list[str]:
        """A notice: posted as it is, with no record (it is no reply)."""
        if where.hook is not None:
            try:
                return [str((await where.hook.send(
                    part, username=_webhook_name(name), avatar_url=avatar_url or MISSING,
                    allowed_mentions=allowed, wait=True, thread=where.thread or MISSING)).id)
                    for part in split_message(text)]
            except disnake.NotFound:
                self._forget_hook(where)
        channel = where.thread or where.channel
        ids = []
        same_channel = getattr(channel, "id", None) == int(target.channel_id)
        for index, part in enumerate(_headed(name, text)):
            if index == 0 and same_channel and target.message_id.isdigit():
                reference = disnake.MessageReference(
                    message_id=int(target.message_id), channel_id=int(target.channel_id),
                    guild_id=int(target.guild_id) if target.guild_id else None,
                    fail_if_not_exists=False)
                message = await channel.send(part, reference=reference,
                                             allowed_mentions=allowed)
            else:
                message = await channel.send(part, allowed_mentions=allowed)
            ids.append(str(message.id))
        return ids

    def _forget_hook(self, where: _Where) -> None:
        base = where.thread.parent if where.thread is not None else where.channel
        self._webhooks.forget(base.id)  # type: ignore[union-attr]

    async def _channel(self, channel_id: int) -> disnake.abc.Messageable:
        # Every post starts here; before login the client has no HTTP session yet.
        await self.online.wait()
        channel = self._client.get_channel(channel_id)
        if channel is None:
            channel = await self._client.fetch_channel(channel_id)
        return channel  # type: ignore[return-value]

    # -- streaming -----------------------------------------------------------------------

    async def _recovered_stream(self, target: ReplyTarget, persona_id: str,
                                name: str) -> _Stream | None:
        """The preview a crash left of this reply, if the log says one was posted (or was
        about to be, and Discord has it): taken up again, never posted twice."""
        state = await self._state(target, persona_id)
        preview = state.preview
        if preview is None:
            return None
        where = await self._where_again(preview.channel_id, preview.route)
        posted = preview.posted_id
        if posted is None:  # killed between posting it and recording its id
            probe = _Delivery(
                reply=OutboundReply(target=target, persona_id=persona_id, persona_name=name,
                                    text=preview.text, recovered=True),
                where=where, parts=[preview.text], state=state,
                allowed=disnake.AllowedMentions.none(), recorded=False)
            posted = await self._find_posted(probe, 0, None)
            if posted is None:
                # not in the history: post it now, with the text the log has (as a bot
                # message, with the same nonce: Discord returns it if it was posted)
                persona = self._personas.get(persona_id)
                posted = await self._post_part(where, name, persona.avatar_url if persona
                                               else None, preview.text,
                                               disnake.AllowedMentions.none(), target,
                                               persona_id, "preview")
            if self._recorder is not None:
                await self._recorder.previewed(target, persona_id, posted)
        self._claim([posted], (target.delivery_id, persona_id))
        return _Stream(message_id=int(posted), where=where, checked=True)

    async def _flush_later(self, stream: _Stream, name: str) -> None:
        wait = stream.last_edit + self._stream_interval_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        async with stream.lock:
            stream.flush = None
            if stream.message_id is None:
                return
            preview = _preview(name, stream.text, stream.headed)
            with contextlib.suppress(disnake.HTTPException):
                await self._edit(stream, preview, disnake.AllowedMentions.none())
            stream.last_edit = time.monotonic()

    async def _finish_stream(self, stream: _Stream, reply: OutboundReply, text: str,
                             allowed: disnake.AllowedMentions,
                             state: DeliveryState) -> list[str]:
        """Edit the preview into the reply's first part; post the others after it."""
        if stream.flush is not None:
            stream.flush.cancel()
        assert stream.where is not None and stream.message_id is not None
        async with stream.lock:
            where = stream.where
            parts = list(state.parts) if state.parts else (
                split_message(text) if where.hook is not None else _headed(
                    reply.persona_name, text))
            delivery = _Delivery(reply=reply, where=where, parts=parts, state=state,
                                 allowed=allowed, recorded=bool(state.parts))
            await self._plan(delivery, "stream")
            wait = stream.last_edit + self._stream_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await self._edit(stream, parts[0], allowed)
                first = str(stream.message_id)
            except disnake.NotFound:  # someone deleted the preview: post the part instead
                first = await self._post_part(where, reply.persona_name, reply.avatar_url,
                                              parts[0], allowed, reply.target,
                                              reply.persona_id, 0)
            await self._record_part(delivery, 0, first)
            return await self._post_parts(delivery, first=1, ids=[first])

    async def _cut(self, stream: _Stream, notice: Notice) -> None:
        """The reply will not be finished: its preview says so, with the notice."""
        if stream.flush is not None:
            stream.flush.cancel()
        async with stream.lock:
            shown = _preview(notice.persona_name, stream.text, stream.headed) if \
                stream.text.strip() else ""
            mark = f"*{notice.text}*"
            room = DISCORD_MESSAGE_LIMIT - len(mark) - 4
            text = f"{shown[:room]} …\n\n{mark}" if shown else (
                f"**{notice.persona_name}**\n{mark}" if stream.headed else mark)
            try:
                await self._edit(stream, text[:DISCORD_MESSAGE_LIMIT],
                                 disnake.AllowedMentions.none())
            except disnake.HTTPException:
                log.warning("could not mark a cut-off preview", exc_info=True)

    async def _edit(self, stream: _Stream, text: str, allowed: disnake.AllowedMentions) -> None:
        assert stream.where is not None and stream.message_id is not None
        where = stream.where
        if where.hook is not None:
            await where.hook.edit_message(stream.message_id, content=text,
                                          allowed_mentions=allowed,
                                          thread=where.thread or MISSING)
            return
        channel = where.thread or where.channel
        await channel.get_partial_message(stream.message_id).edit(  # type: ignore[attr-defined]
            content=text, allowed_mentions=allowed)

    # -- typing --------------------------------------------------------------------------

    async def _keep_typing(self, target: ReplyTarget) -> None:
        started = time.monotonic()
        try:
            channel = await self._channel(int(target.channel_id))
            while time.monotonic() - started < TYPING_AT_MOST_S:
                # shielded: disnake pauses every request during a global 429 and only
                # resumes them when the request that hit it wakes up; cancelling that
                # request (the reply arrived) would leave the bot unable to send anything.
                # The request is kept, so that closing waits for it instead of leaving it
                # to fail on a closed session with nobody to hear of it.
                request = asyncio.ensure_future(channel.trigger_typing())
                self._typing_requests.add(request)
                request.add_done_callback(self._typing_done)
                await asyncio.shield(request)
                await asyncio.sleep(self._typing_every_s)
        except disnake.HTTPException:
            log.debug("typing indicator failed", exc_info=True)

    def _typing_done(self, request: asyncio.Future[None]) -> None:
        self._typing_requests.discard(request)
        if not request.cancelled() and request.exception() is not None:
            log.debug("typing indicator failed: %s", request.exception())

    def _stop_typing(self, key: tuple[str, str]) -> None:
        task = self._typing.pop(key, None)
        if task is not None:
            task.cancel()


def part_nonce(target: ReplyTarget, persona_id: str, index: int | str) -> str:
    """The nonce of one part of one reply (25 characters, Discord's most): the same
    after a restart, so Discord returns the message instead of posting it twice."""
    key = f"{target.platform}:{target.delivery_id}:{persona_id}:{index}"
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()[:25]


_RECOVERY_SCAN = 200
"""Messages after the one answered that are searched for a reply posted before a crash."""


SPOILER_LIMIT = 1500
"""Most characters of reasoning shown in the spoiler block (it must fit one message)."""


def spoiler_block(reasoning: str) -> str:
    """``reasoning`` as one Discord spoiler block of one paragraph (so a long reply is
    never cut inside it), shortened to :data:`SPOILER_LIMIT`."""
    flat = "\n".join(line for line in reasoning.strip().splitlines() if line.strip())
    flat = flat.replace("||", "|\u200b|")
    if len(flat) > SPOILER_LIMIT:
        flat = flat[:SPOILER_LIMIT - 1].rstrip() + "…"
    return f"🤔 ||{flat}||"


def _headed(name: str, text: str) -> list[str]:
    """Parts of a bot message that speaks for a persona: each starts with its name."""
    header = f"**{name}**\n"
    return [header + part for part in split_message(text, DISCORD_MESSAGE_LIMIT - len(header))]


def _preview(name: str, text: str, headed: bool) -> str:
    shown = text if len(text) <= _STREAM_PREVIEW else text[:_STREAM_PREVIEW] + " …"
    return f"**{name}**\n{shown}" if headed and shown.strip() else shown


def jump_url(target: ReplyTarget, message_id: str) -> str:
    """The link that opens ``message_id`` in ``target``'s channel (``@me`` for a DM)."""
    return (f"https://discord.com/channels/{target.guild_id or '@me'}/"
            f"{target.channel_id}/{message_id}")


def _webhook_name(name: str) -> str:
    """Discord refuses webhook usernames containing "discord" or "clyde"."""
    for word in ("discord", "clyde"):
        index = name.lower().find(word)
        while index >= 0:
            name = name[:index] + name[index] + "\u200b" + name[index + 1:]
            index = name.lower().find(word, index + 2)
    return name[:80] or "persona"
