"""The Discord side of :class:`~core.dispatcher.sink.ReplySink`: posting replies.

A reply is split at 2000 characters (code fences balanced per part) and posted as
the persona (name and avatar) through the channel's webhook; in DMs, and where the
bot lacks Manage Webhooks, it is a normal bot message replying to the user and
headed by the persona's name. Mentions the model writes ping nobody, except the
person answered (when the persona's ``allowed_mentions`` does not say otherwise).
Slash commands get their reply as the command's answer. While the model works the
channel shows "typing"; personas with ``delivery.stream_edits`` show the reply as it
arrives, editing the message at most once per ``stream_interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import disnake
from disnake.utils import MISSING
from disnake.webhook import Webhook, WebhookMessage

from ...dispatcher.dispatcher import PersonaSource
from ...dispatcher.messages import DeliveryReceipt, Notice, OutboundReply, ReplyTarget
from ...dispatcher.sink import DeliveryError
from ...personas.model import AllowedMentions
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
"""Posted message ids remembered until their delivery is surely in the log."""
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
    """A reply being shown while it arrives."""

    text: str = ""
    message: disnake.Message | WebhookMessage | None = None
    hook: Webhook | None = None
    last_edit: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    flush: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class _Where:
    """Where to post: the channel, and the webhook (plus thread) when there is one."""

    channel: disnake.abc.Messageable
    hook: Webhook | None
    thread: disnake.Thread | None


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
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self.online = asyncio.Event()
        """Set once the client has logged in: replies recovered at start-up wait for it."""
        client.add_listener(self._on_connect, "on_connect")

    async def _on_connect(self) -> None:
        self.online.set()

    # -- ReplySink -----------------------------------------------------------------------

    async def deliver(self, reply: OutboundReply) -> DeliveryReceipt:
        """Post ``reply``; the receipt lists every Discord message it became."""
        target = reply.target
        key = (target.message_id, reply.persona_id)
        self._stop_typing(key)
        allowed = discord_allowed_mentions(reply.allowed_mentions, target.author_id)
        text = reply.text if reply.text.strip() else "…"
        try:
            if reply.recovered and (posted := await self._already_posted(reply, text)):
                return posted
            if self._interactions.expects(target.message_id) and not reply.greeting:
                parts = _headed(reply.persona_name, text)
                ids = await self._interactions.answer(target.message_id, parts, allowed)
            elif (stream := self._streams.pop(key, None)) is not None and \
                    stream.message is not None:
                ids = await self._finish_stream(stream, reply, allowed)
            else:
                where = await self._where(target, reply.persona_id, reply.webhook, text,
                                          greeting=reply.greeting)
                assert where is not None  # a whole reply is always decided
                ids = await self._post(where, reply.persona_name, reply.avatar_url, text,
                                       allowed, target)
        except disnake.HTTPException as exc:
            raise DeliveryError(f"Discord refused the reply: {exc.status} {exc.text}"[:300]
                                ) from None
        for message_id in ids:
            self._recent[message_id] = None
        while len(self._recent) > RECENT_KEPT:
            self._recent.popitem(last=False)
        return DeliveryReceipt(message_ids=tuple(ids))

    async def _already_posted(self, reply: OutboundReply, text: str) -> DeliveryReceipt | None:
        """The messages ``reply`` became before a crash, found in the channel's history
        after the message it answers: our own posts (as the bot or through our webhook)
        whose content is one of the reply's parts."""
        target = reply.target
        if not target.message_id.isdigit():
            return None
        where = await self._where(target, reply.persona_id, reply.webhook, text,
                                  greeting=reply.greeting)
        assert where is not None  # a whole reply is always decided
        parts = set(split_message(text)) | set(_headed(reply.persona_name, text))
        hook_id = where.hook.id if where.hook is not None else None
        me = self._client.user.id if self._client.user else None
        found: list[str] = []
        history = (where.thread or where.channel).history(
            after=disnake.Object(int(target.message_id)), limit=_RECOVERY_SCAN, oldest_first=True)
        async for message in history:
            ours = message.author.id == me or (hook_id and message.webhook_id == hook_id)
            if ours and message.content in parts:
                found.append(str(message.id))
        return DeliveryReceipt(message_ids=tuple(found)) if found else None

    async def notice(self, notice: Notice) -> None:
        """A short line as the persona (privately, for a slash command)."""
        target = notice.target
        key = (target.message_id, notice.persona_id)
        self._stop_typing(key)
        self._streams.pop(key, None)
        if await self._interactions.tell(target.message_id, notice.text):
            return
        persona = self._personas.get(notice.persona_id)
        where = await self._where(target, notice.persona_id,
                                  persona.delivery.webhook if persona else True, "")
        assert where is not None  # a notice never moves
        none = disnake.AllowedMentions.none()
        await self._post(where, notice.persona_name, persona.avatar_url if persona else None,
                         notice.text, none, target)

    async def typing(self, target: ReplyTarget, persona_id: str) -> None:
        """Keep "typing" showing in the channel until the reply or a notice is posted."""
        key = (target.message_id, persona_id)
        if key in self._typing or self._interactions.expects(target.message_id):
            return
        self._typing[key] = asyncio.create_task(self._keep_typing(target))

    async def stream_delta(self, target: ReplyTarget, persona_id: str, text: str) -> None:
        """Show the reply as it arrives, for personas with ``delivery.stream_edits``."""
        persona = self._personas.get(persona_id)
        if persona is None or not persona.delivery.stream_edits or \
                self._interactions.expects(target.message_id):
            return
        key = (target.message_id, persona_id)
        stream = self._streams.setdefault(key, _Stream())
        stream.text += text
        async with stream.lock:
            if stream.message is None:
                # where the reply goes is decided before its first byte is posted: a
                # preview waits while only the reply's length could still move it
                where = await self._where(target, persona_id, persona.delivery.webhook,
                                          stream.text, final=False)
                if where is None:
                    return
                self._stop_typing(key)
                stream.hook = where.hook
                preview = _preview(persona.name, stream.text, where.hook is None)
                if not preview.strip():
                    return
                await self._post(where, persona.name, persona.avatar_url, preview,
                                 disnake.AllowedMentions.none(), target, keep=stream)
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
        """Stop typing indicators and pending stream edits."""
        tasks = list(self._typing.values())
        tasks += [s.flush for s in self._streams.values() if s.flush is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._typing.clear()
        self._streams.clear()

    # -- posting -------------------------------------------------------------------------

    async def _where(self, target: ReplyTarget, persona_id: str, webhook: bool,
                     text: str, *, final: bool = True, greeting: bool = False) -> _Where | None:
        """Where a reply (``text``: all of it, or what has arrived when not ``final``),
        a greeting or a notice (no text) goes; None while a streaming reply's place
        cannot be decided yet (see :meth:`ThreadMover.decide`)."""
        channel = await self._channel(int(target.channel_id))
        persona = self._personas.get(persona_id)
        if isinstance(channel, disnake.TextChannel) and persona is not None and not greeting \
                and (text or not final):
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
        thread = channel if isinstance(channel, disnake.Thread) else None
        base = thread.parent if thread is not None else channel
        hook = await self._webhooks.get(base) if isinstance(base, disnake.TextChannel) else None
        return _Where(channel, hook, thread)

    async def _post(self, where: _Where, name: str, avatar_url: str | None, text: str,
                    allowed: disnake.AllowedMentions, target: ReplyTarget, *,
                    keep: _Stream | None = None) -> list[str]:
        if where.hook is not None:
            try:
                return await self._via_webhook(where, name, avatar_url, text, allowed, keep)
            except disnake.NotFound:
                # someone deleted the webhook: look it up again next time, post as the bot now
                base = where.thread.parent if where.thread is not None else where.channel
                self._webhooks.forget(base.id)  # type: ignore[union-attr]
                where = _Where(where.channel, None, None)
        return await self._as_bot(where.channel, name, text, allowed, target, keep)

    async def _via_webhook(self, where: _Where, name: str, avatar_url: str | None, text: str,
                           allowed: disnake.AllowedMentions, keep: _Stream | None) -> list[str]:
        assert where.hook is not None
        ids = []
        for part in split_message(text):
            message = await where.hook.send(part, username=_webhook_name(name),
                                            avatar_url=avatar_url or MISSING,
                                            allowed_mentions=allowed, wait=True,
                                            thread=where.thread or MISSING)
            assert message is not None
            if keep is not None and keep.message is None:
                keep.message = message
            ids.append(str(message.id))
        return ids

    async def _as_bot(self, channel: disnake.abc.Messageable, name: str, text: str,
                      allowed: disnake.AllowedMentions, target: ReplyTarget,
                      keep: _Stream | None) -> list[str]:
        ids = []
        same_channel = getattr(channel, "id", None) == int(target.channel_id)
        for index, part in enumerate(_headed(name, text)):
            if index == 0 and same_channel and target.message_id.isdigit():
                reference = disnake.MessageReference(
                    message_id=int(target.message_id), channel_id=int(target.channel_id),
                    guild_id=int(target.guild_id) if target.guild_id else None,
                    fail_if_not_exists=False)
                message = await channel.send(part, reference=reference, allowed_mentions=allowed)
            else:
                message = await channel.send(part, allowed_mentions=allowed)
            if keep is not None and keep.message is None:
                keep.message = message
            ids.append(str(message.id))
        return ids

    async def _channel(self, channel_id: int) -> disnake.abc.Messageable:
        # Every post starts here; before login the client has no HTTP session yet.
        await self.online.wait()
        channel = self._client.get_channel(channel_id)
        if channel is None:
            channel = await self._client.fetch_channel(channel_id)
        return channel  # type: ignore[return-value]

    # -- streaming -----------------------------------------------------------------------

    async def _flush_later(self, stream: _Stream, name: str) -> None:
        wait = stream.last_edit + self._stream_interval_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        async with stream.lock:
            stream.flush = None
            if stream.message is None:
                return
            preview = _preview(name, stream.text, stream.hook is None)
            with contextlib.suppress(disnake.HTTPException):
                await self._edit(stream, preview, disnake.AllowedMentions.none())
            stream.last_edit = time.monotonic()

    async def _finish_stream(self, stream: _Stream, reply: OutboundReply,
                             allowed: disnake.AllowedMentions) -> list[str]:
        if stream.flush is not None:
            stream.flush.cancel()
        async with stream.lock:
            webhook = stream.hook is not None
            parts = split_message(reply.text) if webhook else _headed(reply.persona_name,
                                                                      reply.text)
            wait = stream.last_edit + self._stream_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._edit(stream, parts[0], allowed)
            assert stream.message is not None
            ids = [str(stream.message.id)]
            for part in parts[1:]:
                if stream.hook is not None:
                    thread = stream.message.channel if isinstance(
                        stream.message.channel, disnake.Thread) else None
                    sent: disnake.Message = await stream.hook.send(
                        part, username=_webhook_name(reply.persona_name),
                        avatar_url=reply.avatar_url or MISSING, allowed_mentions=allowed,
                        wait=True, thread=thread or MISSING)
                else:
                    sent = await stream.message.channel.send(part, allowed_mentions=allowed)
                ids.append(str(sent.id))
            return ids

    async def _edit(self, stream: _Stream, text: str, allowed: disnake.AllowedMentions) -> None:
        message = stream.message
        assert message is not None
        if stream.hook is not None:
            thread = message.channel if isinstance(message.channel, disnake.Thread) else None
            await stream.hook.edit_message(message.id, content=text, allowed_mentions=allowed,
                                           thread=thread)
        else:
            await message.edit(content=text, allowed_mentions=allowed)

    # -- typing --------------------------------------------------------------------------

    async def _keep_typing(self, target: ReplyTarget) -> None:
        started = time.monotonic()
        try:
            channel = await self._channel(int(target.channel_id))
            while time.monotonic() - started < TYPING_AT_MOST_S:
                # shielded: disnake pauses every request during a global 429 and only
                # resumes them when the request that hit it wakes up; cancelling that
                # request (the reply arrived) would leave the bot unable to send anything
                await asyncio.shield(channel.trigger_typing())
                await asyncio.sleep(self._typing_every_s)
        except disnake.HTTPException:
            log.debug("typing indicator failed", exc_info=True)

    def _stop_typing(self, key: tuple[str, str]) -> None:
        task = self._typing.pop(key, None)
        if task is not None:
            task.cancel()


_RECOVERY_SCAN = 200
"""Messages after the one answered that are searched for a reply posted before a crash."""


def _headed(name: str, text: str) -> list[str]:
    """Parts of a bot message that speaks for a persona: each starts with its name."""
    header = f"**{name}**\n"
    return [header + part for part in split_message(text, DISCORD_MESSAGE_LIMIT - len(header))]


def _preview(name: str, text: str, headed: bool) -> str:
    shown = text if len(text) <= _STREAM_PREVIEW else text[:_STREAM_PREVIEW] + " …"
    return f"**{name}**\n{shown}" if headed and shown.strip() else shown


def _webhook_name(name: str) -> str:
    """Discord refuses webhook usernames containing "discord" or "clyde"."""
    for word in ("discord", "clyde"):
        index = name.lower().find(word)
        while index >= 0:
            name = name[:index] + name[index] + "\u200b" + name[index + 1:]
            index = name.lower().find(word, index + 2)
    return name[:80] or "persona"
