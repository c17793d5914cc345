"""DiscordEmulator: a Discord REST API and gateway on 127.0.0.1 for the real disnake client."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

from . import payloads
from . import permissions as perms
from .cdn import CdnRequest
from .gateway import PRIVILEGED_INTENTS, GatewayConnectionRecord, GatewayHub
from .model import (
    APPLICATION_COMMAND,
    APPLICATION_COMMAND_AUTOCOMPLETE,
    Channel,
    Guild,
    Interaction,
    Member,
    Message,
    Overwrite,
    Pings,
    Role,
    User,
    Webhook,
)
from .recording import RestFault, RestRequest, RestStall
from .rest import API_PREFIX, RestApi
from .world import World

T = TypeVar("T")


@dataclass(frozen=True)
class File:
    """A file a user attaches to a message."""

    filename: str
    content: bytes
    content_type: str | None = None


class DiscordEmulator:
    """Discord for tests: build a world, connect a real disnake bot, act as users.

    ``async with DiscordEmulator() as emu:`` serves REST under ``emu.api_base_url`` and
    the gateway under ``emu.gateway_url``; the bot logs in with ``emu.token``.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        bot_name: str = "Personae",
        enabled_privileged_intents: int = PRIVILEGED_INTENTS,
        interaction_deadline: float = 3.0,
        heartbeat_interval_ms: int = 41_250,
        max_concurrency: int = 1,
        recommended_shards: int = 1,
    ) -> None:
        self.token = token or secrets.token_urlsafe(40)
        self._changed = asyncio.Event()
        self.world = World(bot_name=bot_name, on_change=self._note_change)
        self.bot_user: User = self.world.bot_user
        self.application_id: int = self.bot_user.id
        self.app_owner: User = self.world.add_user("app-owner")
        self._port = 0
        self._runner: web.AppRunner | None = None
        self.hub = GatewayHub(
            self.world,
            token=self.token,
            application_id=self.application_id,
            enabled_privileged_intents=enabled_privileged_intents,
            resume_url=lambda: f"ws://127.0.0.1:{self._port}/gateway/resume",
            heartbeat_interval_ms=heartbeat_interval_ms,
            on_change=self._note_change,
            max_concurrency=max_concurrency,
        )
        self._rest = RestApi(
            self.world,
            self.hub,
            token=self.token,
            application_id=self.application_id,
            app_owner=self.app_owner,
            gateway_url=lambda: self.gateway_url,
            interaction_deadline=interaction_deadline,
            on_change=self._note_change,
        )
        self._rest.recommended_shards = recommended_shards

    # lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        self._rest.install(app)
        for prefix in ("/cdn", "/media"):
            app.router.add_get(prefix + "/attachments/{channel_id}/{attachment_id}/{filename}",
                               self.world.links.handle)
        app.router.add_get("/gateway", self.hub.handle)
        app.router.add_get("/gateway/resume", self.hub.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self._port = server.sockets[0].getsockname()[1]
        self.world.links.base = f"http://127.0.0.1:{self._port}/cdn"
        self.world.links.media_base = f"http://127.0.0.1:{self._port}/media"

    async def stop(self) -> None:
        self._rest.release_stalls()
        await self.hub.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def api_base_url(self) -> str:
        """What ``disnake.http.Route.BASE`` must be set to."""
        return f"http://127.0.0.1:{self._port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/gateway"

    # building the world (before or while the bot is connected) ---------------

    def add_user(self, username: str, *, bot: bool = False) -> User:
        return self.world.add_user(username, bot=bot)

    def add_guild(
        self,
        name: str = "guild",
        *,
        owner: User | None = None,
        bot_permissions: int = perms.BOT_DEFAULT,
    ) -> Guild:
        """A guild with @everyone, the bot as a member with its managed role, and the owner."""
        owner = owner or self.world.add_user(f"{name}-owner")
        guild = self.world.add_guild(name, owner=owner, bot_permissions=bot_permissions)
        self.hub.dispatch("GUILD_CREATE", payloads.guild_create(self.world, guild.id), guild_id=guild.id)
        return guild

    def add_role(self, guild: Guild, name: str, *, permissions: int = 0, mentionable: bool = False) -> Role:
        role = self.world.add_role(guild, name, permissions=permissions, mentionable=mentionable)
        self._dispatch_role("GUILD_ROLE_CREATE", role)
        return role

    def set_role_permissions(self, role: Role, permissions: int) -> Role:
        updated = self.world.update_role(role, permissions=permissions)
        self._dispatch_role("GUILD_ROLE_UPDATE", updated)
        return updated

    def add_member(self, guild: Guild, user: User, *, roles: Iterable[Role] = ()) -> Member:
        member = self.world.add_member(guild, user, roles=roles)
        data = {**payloads.member(self.world, member), "guild_id": str(guild.id)}
        self.hub.dispatch("GUILD_MEMBER_ADD", data, guild_id=guild.id)
        return member

    def add_text_channel(self, guild: Guild, name: str, *, overwrites: Iterable[Overwrite] = (),
                         nsfw: bool = False) -> Channel:
        """A text channel; ``nsfw``: age-restricted (its threads are too)."""
        channel = self.world.add_text_channel(guild, name, overwrites=overwrites, nsfw=nsfw)
        self._dispatch_channel("CHANNEL_CREATE", channel)
        return channel

    def set_nsfw(self, channel: Channel, nsfw: bool) -> Channel:
        """A moderator switches the channel's age restriction (CHANNEL_UPDATE)."""
        updated = self.world.set_nsfw(channel, nsfw)
        self._dispatch_channel("CHANNEL_UPDATE", updated)
        return updated

    def set_overwrite(
        self, channel: Channel, target: User | Role, *, allow: int = 0, deny: int = 0
    ) -> Channel:
        """A per-channel permission overwrite, e.g. ``deny=MANAGE_WEBHOOKS`` for the bot."""
        overwrite = Overwrite(target.id, isinstance(target, User), allow, deny)
        updated = self.world.set_overwrite(channel, overwrite)
        self._dispatch_channel("CHANNEL_UPDATE", updated)
        return updated

    def dm_channel(self, user: User) -> Channel:
        return self.world.dm_channel(user.id)

    def bot_role(self, guild: Guild) -> Role:
        """The bot's managed role (mentioning it counts as mentioning the bot)."""
        return self.world.bot_role(guild.id)

    def _dispatch_role(self, event: str, role: Role) -> None:
        data = {"guild_id": str(role.guild_id), "role": payloads.role(role)}
        self.hub.dispatch(event, data, guild_id=role.guild_id)

    def _dispatch_channel(self, event: str, channel: Channel) -> None:
        self.hub.dispatch(event, payloads.channel(self.world, channel), guild_id=channel.guild_id)

    # users acting ------------------------------------------------------------

    async def user_says(
        self,
        user: User,
        channel: Channel,
        content: str,
        *,
        reply_to: Message | None = None,
        mentions: Iterable[User | Role] = (),
        mention_author: bool = True,
        files: Iterable[File] = (),
        embeds: Iterable[Mapping[str, Any]] = (),
    ) -> Message:
        """``user`` posts ``content`` (after ``<@id>``/``<@&id>`` tokens for ``mentions``),
        with ``files`` attached (served by the emulator's CDN under signed, expiring
        links) and ``embeds``.

        A reply pings the replied-to author unless ``mention_author`` is False, as in
        Discord's client. Returns once MESSAGE_CREATE is on the bot's socket.
        """
        prefix = " ".join(m.mention for m in mentions)
        text = f"{prefix} {content}" if prefix else content
        allowed = None if mention_author else {"parse": ["users", "roles", "everyone"]}
        message = self.world.create_message(
            channel,
            user,
            text,
            reference_id=reply_to.id if reply_to is not None else None,
            allowed_mentions=allowed,
            attachments=[self.world.new_attachment(f.filename, f.content, f.content_type)
                         for f in files],
            embeds=embeds,
        )
        self._dispatch_message("MESSAGE_CREATE", message)
        await self.hub.flush()
        return message

    async def user_edits(self, message: Message, content: str, *,
                         keep_files: Iterable[int] | None = None) -> Message:
        """``user`` edits ``message``; ``keep_files`` (attachment ids) removes the others,
        as Discord's client lets a user do."""
        files = None if keep_files is None else [
            a for a in self.world.message(message.id).attachments if a.id in set(keep_files)]
        edited = self.world.edit_message(message.id, content=content, attachments=files)
        self._dispatch_message("MESSAGE_UPDATE", edited)
        await self.hub.flush()
        return edited

    async def user_deletes(self, message: Message) -> None:
        deleted = self.world.delete_message(message.id)
        data: dict[str, Any] = {"id": str(deleted.id), "channel_id": str(deleted.channel_id)}
        if deleted.guild_id is not None:
            data["guild_id"] = str(deleted.guild_id)
        self.hub.dispatch("MESSAGE_DELETE", data, guild_id=deleted.guild_id)
        await self.hub.flush()

    async def user_creates_thread(
        self, user: User, channel: Channel, name: str, *, from_message: Message | None = None
    ) -> Channel:
        thread = self.world.add_thread(
            channel,
            name,
            owner_id=user.id,
            thread_id=from_message.id if from_message is not None else None,
        )
        data = {**payloads.channel(self.world, thread), "newly_created": True}
        self.hub.dispatch("THREAD_CREATE", data, guild_id=thread.guild_id)
        await self.hub.flush()
        return thread

    async def user_invokes(
        self,
        command_name: str,
        options: Mapping[str, Any],
        channel: Channel,
        user: User,
    ) -> Interaction:
        """``user`` runs the registered slash command (INTERACTION_CREATE type 2)."""
        return await self._interact(APPLICATION_COMMAND, command_name, options, channel, user, None)

    async def user_autocompletes(
        self,
        command_name: str,
        options: Mapping[str, Any],
        focused: str,
        channel: Channel,
        user: User,
    ) -> Interaction:
        """``user`` types into option ``focused`` (INTERACTION_CREATE type 4)."""
        return await self._interact(
            APPLICATION_COMMAND_AUTOCOMPLETE, command_name, options, channel, user, focused
        )

    async def _interact(
        self,
        kind: int,
        command_name: str,
        options: Mapping[str, Any],
        channel: Channel,
        user: User,
        focused: str | None,
    ) -> Interaction:
        command = self.world.find_command(command_name, channel.guild_id)
        if command is None:
            known = sorted(c.name for c in self.world.commands.values())
            raise LookupError(f"no command {command_name!r} registered by the bot (has {known})")
        unknown_options = set(options) - {o.name for o in command.options}
        if unknown_options:
            raise LookupError(f"/{command_name} has no option(s) {sorted(unknown_options)}")
        interaction = self.world.put_interaction(
            Interaction(
                id=self.world.ids.next(),
                token=secrets.token_urlsafe(48),
                type=kind,
                command=command,
                options=dict(options),
                channel_id=channel.id,
                guild_id=channel.guild_id,
                user_id=user.id,
                created_at=time.monotonic(),
                focused=focused,
            )
        )
        data = payloads.interaction(self.world, interaction, self.application_id)
        self.hub.dispatch("INTERACTION_CREATE", data, guild_id=channel.guild_id)
        await self.hub.flush()
        return interaction

    def _dispatch_message(self, event: str, message: Message) -> None:
        data = payloads.message(self.world, message, shape="dispatch")
        self.hub.dispatch(event, data, guild_id=message.guild_id)

    # observing ---------------------------------------------------------------

    def message(self, message_id: int) -> Message:
        """The latest version of a message (deleted ones included, flagged ``deleted``)."""
        return self.world.messages[message_id]

    def messages_in(self, channel: Channel, *, include_deleted: bool = False) -> list[Message]:
        """Messages in ``channel``, oldest first (ephemeral interaction replies included)."""
        return self.world.messages_in(channel.id, include_deleted=include_deleted)

    def pings(self, message: Message) -> Pings:
        """Who the message notified when it was sent (allowed_mentions and rights applied)."""
        return self.world.messages[message.id].pings

    def webhooks_in(self, channel: Channel) -> list[Webhook]:
        return self.world.webhooks_in(channel.id)

    def interaction(self, interaction_id: int) -> Interaction:
        """The latest state of an interaction: callbacks, original and follow-up messages."""
        return self.world.interactions[interaction_id]

    def typing_in(self, channel: Channel) -> list[float]:
        """``time.monotonic()`` of each typing indicator the bot triggered in ``channel``."""
        return [at for channel_id, at in self.world.typing if channel_id == channel.id]

    def expire_attachment_links(self) -> None:
        """Move the CDN's clock past every attachment link handed out so far: each then
        answers 404 "This content is no longer available.", as Discord's do a day later."""
        self.world.links.expire_all()

    @property
    def cdn_requests(self) -> list[CdnRequest]:
        """Every download from the CDN (path, status)."""
        return list(self.world.links.requests)

    @property
    def requests(self) -> list[RestRequest]:
        return list(self._rest.requests)

    def requests_to(self, route: str) -> list[RestRequest]:
        """Recorded requests for a route like ``"POST /channels/{channel_id}/messages"``."""
        return [r for r in self._rest.requests if r.route == route]

    @property
    def gateway_connections(self) -> list[GatewayConnectionRecord]:
        return self.hub.connections

    @property
    def identify_count(self) -> int:
        return self.hub.identify_count

    @property
    def resume_count(self) -> int:
        return self.hub.resume_count

    async def wait_until(self, condition: Callable[[], T], timeout: float = 5.0) -> T:  # noqa: ASYNC109 (the helper owns its deadline)
        """Wait until ``condition()`` is truthy (re-checked on every state change)."""
        async with asyncio.timeout(timeout):
            while True:
                result = condition()
                if result:
                    return result
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_message(
        self,
        predicate: Callable[[Message], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Message:
        """The first stored message (already there or yet to come) matching ``predicate``."""

        def first_match() -> Message | None:
            return next(
                (m for m in sorted(self.world.messages.values(), key=lambda m: m.id) if predicate(m)),
                None,
            )

        found = await self.wait_until(first_match, timeout)
        assert found is not None
        return found

    async def wait_for_command(self, name: str, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the bot has registered the command (its sync runs after connect)."""
        await self.wait_until(lambda: any(c.name == name for c in self.world.commands.values()), timeout)

    def _note_change(self) -> None:
        self._changed.set()

    # faults ------------------------------------------------------------------

    async def close_gateway(self, code: int = 4000, *, forget_sessions: bool = False) -> None:
        """Close every gateway socket with ``code``; sessions stay resumable unless forgotten."""
        self.hub.close_connections(code, forget_sessions=forget_sessions)
        await self.hub.flush()

    async def send_reconnect(self) -> None:
        """Send op 7 RECONNECT."""
        self.hub.send_op(7, None)
        await self.hub.flush()

    async def invalidate_session(self, *, resumable: bool) -> None:
        """Send op 9 INVALID_SESSION; with ``resumable=False`` the sessions are dropped."""
        self.hub.invalidate_sessions(resumable=resumable)
        await self.hub.flush()

    def fail_next_identify(self, close_code: int) -> None:
        """Close the next IDENTIFY's socket with ``close_code`` (e.g. 4004, 4014)."""
        self.hub.fail_next_identify(close_code)

    def refuse_next_resume(self) -> None:
        """Answer the next RESUME with op 9 d=false (session unknown)."""
        self.hub.refuse_next_resume()

    def replay_on_next_resume(self, already_sent: int) -> None:
        """On the next RESUME also re-send the last ``already_sent`` dispatches the client
        had acknowledged (same sequence numbers), as Discord sometimes does."""
        self.hub.replay_on_next_resume(already_sent)

    def rate_limit(
        self,
        route: str | None = None,
        *,
        times: int = 1,
        retry_after: float = 0.2,
        is_global: bool = False,
        via: bool = True,
    ) -> None:
        """Answer the next ``times`` requests to ``route`` (any when None) with 429.

        Keep ``via=True``: without the header disnake raises instead of waiting."""
        self._rest.faults.append(RestFault(429, times, route, retry_after, is_global, via))

    def pending_rest_faults(self) -> int:
        """How many scripted REST answers (429s, 5xx) have not been served yet."""
        return sum(fault.remaining for fault in self._rest.faults)

    def server_error(self, route: str | None = None, *, times: int = 1, status: int = 500) -> None:
        """Answer the next ``times`` requests to ``route`` with ``status`` (disnake retries
        500/502/504 after 1 + 2*attempt seconds)."""
        self._rest.faults.append(RestFault(status, times, route))

    def stall(self, route: str, *, after_effect: bool = False, skip: int = 0) -> RestStall:
        """Hold the next request to ``route`` (after letting ``skip`` through) until the
        returned stall is released:
        before its effect, or with ``after_effect`` after it took effect but before it is
        answered (a crash then falls between Discord posting and the bot hearing of it).
        ``await stall.arrived.wait()`` tells when the request is held."""
        stall = RestStall(route, after_effect=after_effect, skip=skip)
        self._rest.stalls.append(stall)
        return stall

    @property
    def nonce_window_s(self) -> float:
        """How long ``enforce_nonce`` dedupes a bot's creates (default 300 s)."""
        return self._rest.nonce_window_s

    @nonce_window_s.setter
    def nonce_window_s(self, value: float) -> None:
        self._rest.nonce_window_s = value

    def set_session_starts_remaining(self, remaining: int) -> None:
        """What ``/gateway/bot`` reports (each accepted IDENTIFY takes one); fewer than
        the shards to start makes disnake raise SessionStartLimitReached."""
        self.hub.session_starts_remaining = remaining

    @property
    def session_starts_remaining(self) -> int:
        return self.hub.session_starts_remaining

    def identify_wait(self, shard_id: int | None = None) -> float:
        """Seconds until an IDENTIFY of ``shard_id`` (None: an unsharded client) would be
        accepted rather than answered with op 9: Discord takes one per bucket per 5 s, so
        a bot restarted right after it identified waits for what is left of the window."""
        return self.hub.identify_wait(shard_id)

    @property
    def refused_identifies(self) -> list[GatewayConnectionRecord]:
        """Connections whose IDENTIFY was refused: ``refused`` says why ("rate_limited":
        another IDENTIFY of its bucket, ``shard_id % max_concurrency``, within 5 s, answered
        with op 9 as Discord does; "invalid_shard": close 4010)."""
        return self.hub.refused_identifies

    def shard_connected(self, shard_id: int) -> bool:
        """A session of shard ``shard_id`` is connected (READY or RESUMED sent)."""
        return self.hub.shard_connected(shard_id)
