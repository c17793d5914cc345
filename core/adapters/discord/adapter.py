"""The Discord adapter: a disnake client wired to the dispatcher.

It is a :class:`core.app.Platform`: build it, build the dispatcher with
:attr:`DiscordAdapter.sink` under the platform ``discord``, then
:meth:`DiscordAdapter.attach` the dispatcher and the command set and start the client
(:class:`core.app.Runtime` does the first three)::

    adapter = DiscordAdapter(store, registry, DiscordAdapterSettings(...))
    dispatcher = build_dispatcher(store, registry, gateway, {PLATFORM: adapter.sink},
                                  roles={PLATFORM: adapter.roles})
    adapter.attach(dispatcher, CommandSet(dispatcher=dispatcher, ...))
    await adapter.client.start(token)

Shutting down: :meth:`stop_intake` (new messages are left for the next start's
catch-up), ``dispatcher.shutdown()``, then :meth:`close`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import disnake
from disnake.ext import commands

from eventstore import EventStore, LogUnavailable

from ...commands import CommandSet
from ...config import AttachmentSettings
from ...coordination import shard_of
from ...dispatcher.admission import PersonaSource
from ...dispatcher.dispatcher import Dispatcher
from ...dispatcher.messages import InboundDeletion, InboundEdit, Placed
from ...dispatcher.projection import read_persona_messages
from ...events.ids import message_event_id
from .attachments import DiscordFiles, message_files, offered_files, recorded_files
from .backlog import BACKLOG_LIMIT, RETRY_FIRST_S, RETRY_MOST_S, Backlog
from .catchup import catch_up
from .commands import register_commands
from .delivery import STREAM_INTERVAL_S, DiscordSink
from .gateway_log import GatewayLog
from .inbound import PLATFORM, channel_nsfw, inbound_deletion, inbound_edit, inbound_message
from .interactions import DEFER_AFTER_S, InteractionReplies
from .members import MemberRoles
from .shards import ShardedBot, ShardKeeper, ShardSetup
from .threads import ThreadMover

log = logging.getLogger(__name__)

DELIVERY_RECORD_WAIT_S = 2.0

BOT_PERMISSIONS = disnake.Permissions(
    view_channel=True, send_messages=True, send_messages_in_threads=True,
    read_message_history=True, manage_webhooks=True, create_public_threads=True,
    embed_links=True,
)
"""What the features need: reading and answering, webhooks for persona identities,
threads for long conversations, history for catch-up."""


def invite_url(application_id: int) -> str:
    """The URL that adds the bot to a server with the permissions it needs."""
    return disnake.utils.oauth_url(application_id, permissions=BOT_PERMISSIONS,
                                   scopes=("bot", "applications.commands"))


def bot_intents() -> disnake.Intents:
    """Guilds, messages (guild and DM) and the privileged message-content intent."""
    intents = disnake.Intents.default()
    intents.message_content = True
    return intents


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscordAdapterSettings:
    """Tunables of the adapter (config.yaml ``discord``)."""

    catch_up_window_s: float = 600.0
    defer_after_s: float = DEFER_AFTER_S
    stream_interval_s: float = STREAM_INTERVAL_S
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings)
    backlog_limit: int = BACKLOG_LIMIT
    """Messages kept while the log cannot be written (more are read back afterwards)."""


class _Bot(commands.InteractionBot):
    """disnake's bot without its owner prefetch: at login it fires off a task asking
    Discord who owns the application, which nobody awaits, so a bot that stops early
    (a refused intent, a quick SIGTERM) leaves it to fail on the closed session as
    "Task exception was never retrieved". personae's admins come from config.yaml."""

    async def _fill_owners(self) -> None:
        return None


class DiscordAdapter:
    """Turns gateway events into dispatcher calls and owns the Discord reply sink."""

    name = PLATFORM

    def __init__(self, store: EventStore, personas: PersonaSource,
                 settings: DiscordAdapterSettings = DiscordAdapterSettings(), *,
                 client_options: dict[str, Any] | None = None,
                 shards: ShardSetup | None = None) -> None:
        self._store = store
        self._personas = personas
        self._settings = settings
        # No message cache: edits and deletes arrive as raw events and the log is the
        # memory; disnake's default 1,000 cached messages only fed the garbage collector.
        options: dict[str, Any] = {"intents": bot_intents(), "max_messages": None,
                                   **(client_options or {})}
        self.shards = shards
        self.keeper: ShardKeeper | None = None
        """Runs this process's shards as their leases come and go (None: unsharded)."""
        self.client: commands.InteractionBot | ShardedBot
        if shards is None:
            self.client = _Bot(**options)
        else:
            bot = ShardedBot(shard_count=shards.shard_count, **options)
            self.client, self.keeper = bot, ShardKeeper(bot, shards)
        self._interactions = InteractionReplies(settings.defer_after_s)
        self._threads = ThreadMover(store)
        self.sink = DiscordSink(self.client, personas, self._interactions, self._threads,
                                stream_interval_s=settings.stream_interval_s)
        self.roles = MemberRoles(self.client)
        """Roles Discord did not send (history, DMs): looked up, cached briefly."""
        self._gateway_log = GatewayLog(store)
        self._files = DiscordFiles(settings.attachments)
        self._dispatcher: Dispatcher | None = None
        self._accepting = True
        self._tasks: set[asyncio.Task[Any]] = set()
        self._channel_locks: dict[int, asyncio.Lock] = {}
        self._announced = False
        self._recovered: set[tuple[int, int]] = set()
        self._backlog = Backlog(self._read_back, limit=settings.backlog_limit)
        self.caught_up = asyncio.Event()
        """Set after each catch-up pass (tests and health checks wait on it)."""

    def attach(self, dispatcher: Dispatcher, commands: CommandSet) -> None:
        """Route gateway events to ``dispatcher`` and register the slash commands."""
        self._dispatcher = dispatcher
        self.sink.record_with(dispatcher.deliveries)
        register_commands(self.client, commands, self._interactions)
        client = self.client
        client.add_listener(self._on_message, "on_message")
        client.add_listener(self._on_raw_message_edit, "on_raw_message_edit")
        client.add_listener(self._on_raw_message_delete, "on_raw_message_delete")
        client.add_listener(self._on_raw_bulk_message_delete, "on_raw_bulk_message_delete")
        client.add_listener(self._on_thread_create, "on_thread_create")
        if self.keeper is None:
            client.add_listener(self._on_connect, "on_connect")
            client.add_listener(self._on_resumed, "on_resumed")
            client.add_listener(self._on_disconnect, "on_disconnect")
            client.add_listener(self._on_ready, "on_ready")
        else:
            client.add_listener(self._on_shard_connect, "on_shard_connect")
            client.add_listener(self._on_shard_resumed, "on_shard_resumed")
            client.add_listener(self._on_shard_disconnect, "on_shard_disconnect")
            client.add_listener(self._on_shard_ready, "on_shard_ready")

    async def start(self, token: str) -> None:
        """Connect to Discord and run until the client stops (or its shards' keeper)."""
        if self.keeper is not None:
            await self.keeper.run(token)
        else:
            await self.client.start(token)

    def stop_intake(self) -> None:
        """Ignore new gateway messages from now on (shutdown has begun)."""
        self._accepting = False

    async def close(self) -> None:
        """Stop background work, typing and pending commands; close the gateway."""
        self._accepting = False
        await self._backlog.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.sink.aclose()
        await self._interactions.aclose()
        await self._files.aclose()
        await self.client.close()
        if self.keeper is not None:
            await self.keeper.release()

    # -- gateway events ------------------------------------------------------------------

    async def _on_message(self, message: disnake.Message) -> None:
        await self.ingest(message)

    async def ingest(self, message: disnake.Message) -> None:
        """Hand ``message`` to the dispatcher (not the bot's own; never raises). While the
        log cannot be written it waits in the backlog, and is taken in once it can."""
        if not self._accepting or self._dispatcher is None or self._is_own(message):
            return
        await self._in_order(message.channel.id, functools.partial(self._take_in, message))

    async def _in_order(self, channel_id: int, take: Callable[[], Awaitable[None]]) -> None:
        """``take`` now, or behind what waits for the log already (order holds)."""
        if self._backlog.waiting:
            self._backlog.keep(channel_id, take)
            return
        try:
            await take()
        except LogUnavailable as exc:
            self._backlog.keep(channel_id, take, exc)

    def intake_problem(self) -> str | None:
        """Why messages are not being taken in now (for ``/readyz``), or None."""
        return self._backlog.problem()

    async def _take_in(self, message: disnake.Message) -> None:
        # disnake runs each event in a task of its own: a lock per channel (taken in
        # arrival order, before any await) keeps the log in the order people wrote
        lock = self._channel_locks.setdefault(message.channel.id, asyncio.Lock())
        async with lock:
            await self._ingest(message)

    async def _read_back(self, channels: set[int]) -> None:
        """Catch up the channels whose messages did not fit in the backlog."""
        await catch_up(self.client, self._store, self._settings.catch_up_window_s,
                       self._read_back_one, channels=[str(c) for c in sorted(channels)],
                       owns=self._owns)

    async def _read_back_one(self, message: disnake.Message) -> None:
        # straight to the log, not behind the backlog this read-back is part of
        if self._accepting and self._dispatcher is not None and not self._is_own(message):
            await self._take_in(message)

    async def _ingest(self, message: disnake.Message) -> None:
        """Take ``message`` in; raises only :class:`~eventstore.LogUnavailable` (the log
        could not record it: try again later)."""
        assert self._dispatcher is not None  # ingest() takes nothing in before attach()
        try:
            inbound = inbound_message(message, self._personas.all(), self.client.user.id)
            if inbound.author.roles_known and message.guild is not None:
                self.roles.saw(message.guild.id, message.author.id, inbound.author.roles)
            offered = message_files(message)
            if offered and await self._store.get(
                    message_event_id(PLATFORM, inbound.message_id)) is None:
                # fetched once: a message seen again (RESUME, catch-up) is in the log already
                inbound = replace(inbound, attachments=await self._files.take(offered))
            if inbound.reply_to and self.sink.posted_recently(inbound.reply_to):
                await self._until_delivery_recorded(inbound.reply_to)
            if isinstance(message.channel, disnake.Thread):
                owner = await self._threads.owner(inbound.channel_id)
                if owner is not None:
                    inbound = replace(inbound, mentions=inbound.mentions | {owner})
            await self._dispatcher.ingest(inbound)
        except LogUnavailable:
            raise
        except Exception:
            log.exception("could not take in Discord message %s", message.id)

    async def _on_raw_message_edit(self, payload: disnake.RawMessageUpdateEvent) -> None:
        author = payload.data.get("author") or {}
        if not self._accepting or self._dispatcher is None or \
                author.get("id") == str(self.client.user.id) or \
                self._is_own_webhook(payload.data.get("webhook_id")):
            return
        guild = self.client.get_guild(payload.guild_id) if payload.guild_id else None
        edit = inbound_edit(payload, guild, self.client.user.id)
        if edit is not None:
            await self._in_order(payload.channel_id, functools.partial(
                self._record_edit, payload.channel_id, edit, payload.data.get("attachments")))

    async def _record_edit(self, channel_id: int, edit: InboundEdit,
                           attachments: Iterable[Mapping[str, Any]] | None) -> None:
        assert self._dispatcher is not None
        # after the message itself: its ingest (and its downloads) holds the channel's lock
        lock = self._channel_locks.setdefault(channel_id, asyncio.Lock())
        async with lock:
            try:
                if attachments is not None:
                    recorded = await self._store.get(message_event_id(PLATFORM, edit.message_id))
                    files = await self._files.take_edit(
                        offered_files(attachments),
                        recorded_files(recorded.data if recorded else None))
                    edit = replace(edit, attachments=files)
                await self._dispatcher.edit(edit)
            except LogUnavailable:
                raise
            except Exception:
                log.exception("could not record an edit of message %s", edit.message_id)

    async def _on_raw_message_delete(self, payload: disnake.RawMessageDeleteEvent) -> None:
        await self._deleted([payload.message_id], payload.channel_id)

    async def _on_raw_bulk_message_delete(self, payload: disnake.RawBulkMessageDeleteEvent
                                          ) -> None:
        await self._deleted(sorted(payload.message_ids), payload.channel_id)

    async def _deleted(self, message_ids: Iterable[int], channel_id: int) -> None:
        if not self._accepting or self._dispatcher is None:
            return
        for message_id in message_ids:
            await self._in_order(channel_id, functools.partial(
                self._record_deletion, inbound_deletion(message_id, channel_id)))

    async def _record_deletion(self, deletion: InboundDeletion) -> None:
        assert self._dispatcher is not None
        try:
            await self._dispatcher.delete(deletion)
        except LogUnavailable:
            raise
        except Exception:
            log.exception("could not record the deletion of message %s", deletion.message_id)

    async def _on_thread_create(self, thread: disnake.Thread) -> None:
        """Join new threads, so their messages keep arriving however the server is set up
        (a thread's conversation is its own stream, keyed by the thread's id)."""
        if thread.me is not None:
            return
        try:
            await thread.join()
        except disnake.HTTPException as exc:
            log.info("could not join thread %s: %s", thread.id, exc)

    async def _on_connect(self) -> None:
        self._announce()
        await self._gateway_log.connected(self._session_id())

    def _announce(self) -> None:
        if not self._announced:
            self._announced = True
            log.info("connected to Discord as %s; invite the bot with %s", self.client.user,
                     invite_url(self.client.application_id or self.client.user.id))

    async def _on_resumed(self) -> None:
        await self._gateway_log.resumed(self._session_id())

    async def _on_disconnect(self) -> None:
        await self._gateway_log.disconnected(self._session_id())

    async def _on_ready(self) -> None:
        self._warn_about_nsfw_channels()
        self._spawn(self._catch_up())

    async def _on_shard_connect(self, shard_id: int) -> None:
        self._announce()
        await self._gateway_log.connected(self._shard_session(shard_id), shard_id)

    async def _on_shard_resumed(self, shard_id: int) -> None:
        await self._gateway_log.resumed(self._shard_session(shard_id), shard_id)

    async def _on_shard_disconnect(self, shard_id: int) -> None:
        await self._gateway_log.disconnected(self._shard_session(shard_id), shard_id)

    async def _on_shard_ready(self, shard_id: int) -> None:
        """A shard (re)identified: Discord replays nothing it missed, so read back its
        channels. A shard just taken (from a process that died, or at start-up) first gets
        its conversations' unfinished replies and unposted greetings finished (those of
        this process still in flight go on as they are)."""
        assert self.shards is not None and isinstance(self.client, ShardedBot)
        count = self.shards.shard_count
        tenure = (shard_id, self.client.tenures.get(shard_id, 0))
        if tenure not in self._recovered and self._dispatcher is not None:
            self._recovered.add(tenure)

            def in_shard(item: Placed) -> bool:
                guild = int(item.guild_id) if item.guild_id else None
                return item.platform == PLATFORM and shard_of(guild, count) == shard_id
            dispatcher = self._dispatcher
            try:
                await self._until_the_log_answers(lambda: dispatcher.recover(in_shard))
            except Exception:
                log.exception("recovering the replies of shard %s failed", shard_id)
        self._spawn(self._catch_up(lambda guild_id: shard_of(guild_id, count) == shard_id))

    def _warn_about_nsfw_channels(self) -> None:
        """An nsfw persona configured for a channel Discord says is not age-restricted
        will never answer there: say so once the channels are known."""
        for persona in self._personas.all():
            if not persona.nsfw:
                continue
            for channel_id in sorted(persona.triggers.channels | persona.permissions.allow_channels):
                channel = self.client.get_channel(int(channel_id)) if channel_id.isdigit() else None
                if channel is not None and channel_nsfw(channel) is False:
                    log.warning("persona %s is nsfw, but channel %s (#%s) is not age-restricted: "
                                "it will not answer there (mark the channel age-restricted in "
                                "Discord, or take it out of the persona's channels)", persona.id,
                                channel_id, getattr(channel, "name", "?"))

    async def _catch_up(self, owns: Callable[[int | None], bool] | None = None) -> None:
        self.caught_up.clear()
        try:
            await self._until_the_log_answers(lambda: catch_up(
                self.client, self._store, self._settings.catch_up_window_s, self.ingest,
                owns=owns))
        except Exception:
            log.exception("catching up after the restart failed")
        finally:
            self.caught_up.set()

    # -- helpers -------------------------------------------------------------------------

    async def _until_the_log_answers(self, work: Callable[[], Awaitable[object]]) -> None:
        """``work`` (a catch-up, a recovery: reads, then ingests that never raise), again
        with backoff while the log cannot serve it (its server away for longer than a
        read waits): what it would find must not be lost to an outage. The log says the
        outage itself; this stops trying at shutdown."""
        delay = RETRY_FIRST_S
        while True:
            try:
                await work()
                return
            except LogUnavailable as exc:
                if not self._accepting:
                    raise
                log.debug("the event log cannot be read (%s); trying again in %.1f s",
                          exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MOST_S)

    async def _until_delivery_recorded(self, message_id: str) -> None:
        """A reply to a message the bot has just posted: the dispatcher records the
        delivery a moment after posting, and resolves the replied persona from it."""
        deadline = time.monotonic() + DELIVERY_RECORD_WAIT_S
        while time.monotonic() < deadline:
            found = await self._store.read(
                lambda log_: read_persona_messages(log_, PLATFORM, [message_id]))
            if found:
                return
            await asyncio.sleep(0.01)

    @property
    def _owns(self) -> Callable[[int | None], bool] | None:
        """Whether a guild's (None: DMs') events come to this process (None: all do)."""
        return self.client.owns_guild if isinstance(self.client, ShardedBot) else None

    def _is_own(self, message: disnake.Message) -> bool:
        me = self.client.user
        return message.author.id == me.id or self._is_own_webhook(message.webhook_id)

    def _is_own_webhook(self, webhook_id: object) -> bool:
        return webhook_id is not None and self.sink.owns_webhook(int(webhook_id))  # type: ignore[call-overload]

    def _shard_session(self, shard_id: int) -> str | None:
        shard = getattr(self.client, "_AutoShardedClient__shards", {}).get(shard_id)
        return getattr(getattr(shard, "ws", None), "session_id", None)

    def _session_id(self) -> str | None:
        ws = getattr(self.client, "ws", None)
        return getattr(ws, "session_id", None)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

