"""The REST API: Discord's routes the bot uses, with auth, permissions, faults, recording."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import BodyPartReader, web

from . import payloads
from . import permissions as perms
from .gateway import GatewayHub
from .model import (
    APPLICATION_COMMAND_AUTOCOMPLETE,
    EPHEMERAL,
    LOADING,
    Attachment,
    Channel,
    Interaction,
    InteractionCallback,
    Message,
    User,
    Webhook,
)
from .recording import RestFault, RestRequest, RestStall
from .world import World, WorldError, check_webhook_name, missing_permissions, unknown

API_PREFIX = "/api/v10"
_INTERACTION_TOKEN_LIFETIME = 15 * 60
NONCE_WINDOW_S = 300.0
"""How long ``enforce_nonce`` returns the first message instead of posting again
(Discord: "the past few minutes")."""


@dataclass(frozen=True)
class _Call:
    """A parsed request handed to an endpoint."""

    request: web.Request
    body: Any
    files: tuple[Attachment, ...]

    def int_param(self, name: str) -> int:
        try:
            return int(self.request.match_info[name])
        except ValueError:
            raise WorldError(404, 10003, f"Unknown {name}") from None

    @property
    def query(self) -> Mapping[str, str]:
        return self.request.query


_Result = tuple[int, Any]
_Endpoint = Callable[[_Call], Awaitable[_Result]]


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    # disnake compares Content-Type with == "application/json": no charset suffix
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if status == 204:
        return web.Response(status=204, headers={k: v for k, v in all_headers.items() if k != "Content-Type"})
    return web.Response(status=status, body=json.dumps(body).encode(), headers=all_headers)


class RestApi:
    """Registers Discord's REST routes on an aiohttp app under ``/api/v10``."""

    def __init__(
        self,
        world: World,
        hub: GatewayHub,
        *,
        token: str,
        application_id: int,
        app_owner: User,
        gateway_url: Callable[[], str],
        interaction_deadline: float,
        on_change: Callable[[], None],
    ) -> None:
        self._world = world
        self._hub = hub
        self._token = token
        self._application_id = application_id
        self._app_owner = app_owner
        self._gateway_url = gateway_url
        self._interaction_deadline = interaction_deadline
        self._on_change = on_change
        self.requests: list[RestRequest] = []
        self.faults: list[RestFault] = []
        self.stalls: list[RestStall] = []
        self.nonce_window_s = NONCE_WINDOW_S
        self.recommended_shards = 1

    def install(self, app: web.Application) -> None:
        bot, hook = True, False
        routes: list[tuple[str, str, _Endpoint, bool]] = [
            ("GET", "/users/@me", self._me, bot),
            ("POST", "/users/@me/channels", self._open_dm, bot),
            ("GET", "/users/{user_id}", self._get_user, bot),
            ("GET", "/gateway", self._gateway, hook),
            ("GET", "/gateway/bot", self._gateway_bot, bot),
            ("GET", "/oauth2/applications/@me", self._application, bot),
            ("GET", "/applications/@me", self._application, bot),
            ("GET", "/applications/{app_id}/commands", self._get_commands, bot),
            ("PUT", "/applications/{app_id}/commands", self._put_commands, bot),
            ("POST", "/applications/{app_id}/commands", self._post_command, bot),
            ("GET", "/applications/{app_id}/guilds/{guild_id}/commands", self._get_commands, bot),
            ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self._put_commands, bot),
            ("POST", "/applications/{app_id}/guilds/{guild_id}/commands", self._post_command, bot),
            ("GET", "/guilds/{guild_id}", self._get_guild, bot),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member, bot),
            ("GET", "/channels/{channel_id}", self._get_channel, bot),
            ("GET", "/channels/{channel_id}/messages", self._history, bot),
            ("POST", "/channels/{channel_id}/messages", self._send, bot),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message, bot),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._edit, bot),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete, bot),
            ("POST", "/channels/{channel_id}/typing", self._typing, bot),
            ("GET", "/channels/{channel_id}/webhooks", self._list_webhooks, bot),
            ("POST", "/channels/{channel_id}/webhooks", self._create_webhook, bot),
            ("POST", "/channels/{channel_id}/messages/{message_id}/threads", self._thread_from_message, bot),
            ("POST", "/channels/{channel_id}/threads", self._thread, bot),
            ("PUT", "/channels/{channel_id}/thread-members/@me", self._join_thread, bot),
            ("GET", "/webhooks/{webhook_id}", self._get_webhook, bot),
            ("DELETE", "/webhooks/{webhook_id}", self._delete_webhook, bot),
            ("GET", "/webhooks/{webhook_id}/{token}", self._get_webhook_with_token, hook),
            ("POST", "/webhooks/{webhook_id}/{token}", self._execute, hook),
            ("GET", "/webhooks/{webhook_id}/{token}/messages/{message_id}", self._get_hook_message, hook),
            ("PATCH", "/webhooks/{webhook_id}/{token}/messages/{message_id}", self._edit_hook_message, hook),
            (
                "DELETE",
                "/webhooks/{webhook_id}/{token}/messages/{message_id}",
                self._delete_hook_message,
                hook,
            ),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self._callback, hook),
        ]
        for method, path, endpoint, needs_bot_auth in routes:
            app.router.add_route(
                method, API_PREFIX + path, self._wrap(f"{method} {path}", endpoint, needs_bot_auth)
            )

    # plumbing ----------------------------------------------------------------

    def _wrap(
        self, route: str, endpoint: _Endpoint, needs_bot_auth: bool
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            arrived = time.monotonic()
            body, files = await _read_body(request, self._world)
            response = self._fault_response(route)
            stall = self._take_stall(route) if response is None else None
            if stall is not None and not stall.after_effect:
                await stall.held()
                if not stall.effect:  # 503: disnake raises at once (500/502/504 are retried)
                    response = json_response(503, {"message": "Service Unavailable", "code": 0})
            if response is None:
                if needs_bot_auth and request.headers.get("Authorization") != f"Bot {self._token}":
                    response = json_response(401, {"message": "401: Unauthorized", "code": 0})
                else:
                    try:
                        status, result = await endpoint(_Call(request, body, files))
                        response = json_response(status, result)
                    except WorldError as error:
                        response = json_response(error.status, {"code": error.code, "message": error.message})
            if stall is not None and stall.after_effect:
                await stall.held()
            self.requests.append(
                RestRequest(
                    method=request.method,
                    path=request.path.removeprefix(API_PREFIX),
                    route=route,
                    query=dict(request.query),
                    json=body,
                    headers={k: v for k, v in request.headers.items() if k.lower() != "authorization"},
                    files=tuple(f.filename for f in files),
                    status=response.status,
                    at=arrived,
                )
            )
            self._on_change()
            return response

        return handle

    def _take_stall(self, route: str) -> RestStall | None:
        stall = next((s for s in self.stalls if not s.taken and s.route == route), None)
        if stall is not None and stall.skip:
            stall.skip -= 1
            return None
        if stall is not None:
            stall.taken = True
        return stall

    def release_stalls(self) -> None:
        """Let every held request go (without its effect, if it had none yet)."""
        for stall in self.stalls:
            stall.release(effect=False)

    def _fault_response(self, route: str) -> web.Response | None:
        fault = next((f for f in self.faults if f.matches(route)), None)
        if fault is None:
            return None
        fault.remaining -= 1
        if fault.status != 429:
            return json_response(fault.status, {"message": "Server Error", "code": 0})
        headers = {
            "Retry-After": str(fault.retry_after),
            "X-RateLimit-Scope": "global" if fault.is_global else "user",
        }
        if fault.is_global:
            headers["X-RateLimit-Global"] = "true"
        if fault.via:
            headers["Via"] = "1.1 google"
        body = {
            "message": "You are being rate limited.",
            "retry_after": fault.retry_after,
            "global": fault.is_global,
        }
        return json_response(429, body, headers)

    def _text_channel_for_bot(self, call: _Call, needed: int) -> Channel:
        channel = self._world.channel(call.int_param("channel_id"))
        if channel.is_dm:
            return channel
        self._world.require(self._world.bot_user.id, channel, perms.VIEW_CHANNEL | needed)
        return channel

    def _dispatch_message(self, event: str, message: Message) -> None:
        if message.flags & EPHEMERAL:
            return
        self._hub.dispatch(
            event, payloads.message(self._world, message, shape="dispatch"), guild_id=message.guild_id
        )

    def _dispatch_delete(self, message: Message) -> None:
        data: dict[str, Any] = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        if not message.flags & EPHEMERAL:
            self._hub.dispatch("MESSAGE_DELETE", data, guild_id=message.guild_id)

    # users, gateway, application ---------------------------------------------

    async def _me(self, call: _Call) -> _Result:
        return 200, {**payloads.user(self._world.bot_user), "verified": True, "flags": 0}

    async def _get_user(self, call: _Call) -> _Result:
        user = self._world.users.get(call.int_param("user_id"))
        if user is None:
            raise unknown("User", 10013)
        return 200, payloads.user(user)

    async def _open_dm(self, call: _Call) -> _Result:
        channel = self._world.dm_channel(int(call.body["recipient_id"]))
        return 200, payloads.channel(self._world, channel)

    async def _gateway(self, call: _Call) -> _Result:
        return 200, {"url": self._gateway_url()}

    async def _gateway_bot(self, call: _Call) -> _Result:
        return 200, {
            "url": self._gateway_url(),
            "shards": self.recommended_shards,
            "session_start_limit": {
                "total": self._hub.session_start_total,
                "remaining": self._hub.session_starts_remaining,
                "reset_after": 86_400_000,
                "max_concurrency": self._hub.max_concurrency,
            },
        }

    async def _application(self, call: _Call) -> _Result:
        bot = self._world.bot_user
        return 200, {
            "id": str(self._application_id),
            "name": bot.username,
            "icon": None,
            "description": "",
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": payloads.user(self._app_owner),
            "team": None,
            "verify_key": "0" * 64,
            "flags": 0,
            "summary": "",
            "bot": payloads.user(bot),
        }

    def _check_app(self, call: _Call) -> int | None:
        if call.int_param("app_id") != self._application_id:
            raise WorldError(403, 50001, "Missing Access")
        guild_id = call.request.match_info.get("guild_id")
        return int(guild_id) if guild_id is not None else None

    async def _get_commands(self, call: _Call) -> _Result:
        guild_id = self._check_app(call)
        commands = self._world.commands_in(guild_id)
        return 200, [payloads.application_command(c, self._application_id) for c in commands]

    async def _put_commands(self, call: _Call) -> _Result:
        guild_id = self._check_app(call)
        stored = self._world.put_commands(guild_id, call.body or [])
        return 200, [payloads.application_command(c, self._application_id) for c in stored]

    async def _post_command(self, call: _Call) -> _Result:
        guild_id = self._check_app(call)
        command = self._world.upsert_command(guild_id, call.body)
        return 201, payloads.application_command(command, self._application_id)

    # guilds and channels -----------------------------------------------------

    async def _get_guild(self, call: _Call) -> _Result:
        guild_id = call.int_param("guild_id")
        if guild_id not in self._world.guilds:
            raise unknown("Guild", 10004)
        data = payloads.guild_create(self._world, guild_id)
        return 200, {k: v for k, v in data.items() if k not in ("members", "channels", "threads")}

    async def _get_member(self, call: _Call) -> _Result:
        found = self._world.members.get((call.int_param("guild_id"), call.int_param("user_id")))
        if found is None:
            raise unknown("Member", 10007)
        return 200, payloads.member(self._world, found)

    async def _get_channel(self, call: _Call) -> _Result:
        channel = self._text_channel_for_bot(call, 0)
        return 200, payloads.channel(self._world, channel)

    # messages ----------------------------------------------------------------

    async def _history(self, call: _Call) -> _Result:
        channel = self._text_channel_for_bot(call, perms.READ_MESSAGE_HISTORY)
        limit = max(1, min(100, int(call.query.get("limit", 50))))
        messages = [m for m in self._world.messages_in(channel.id) if not m.is_ephemeral]
        if "around" in call.query:
            pivot = int(call.query["around"])
            older = [m for m in messages if m.id <= pivot][-(limit // 2 + limit % 2) :]
            newer = [m for m in messages if m.id > pivot][: limit // 2]
            chosen = older + newer
        elif "after" in call.query:
            chosen = [m for m in messages if m.id > int(call.query["after"])][:limit]
        else:
            before = int(call.query.get("before", 1 << 63))
            chosen = [m for m in messages if m.id < before][-limit:]
        return 200, [payloads.message(self._world, m) for m in reversed(chosen)]

    async def _get_message(self, call: _Call) -> _Result:
        channel = self._text_channel_for_bot(call, perms.READ_MESSAGE_HISTORY)
        message = self._world.message(call.int_param("message_id"))
        if message.channel_id != channel.id:
            raise unknown("Message", 10008)
        return 200, payloads.message(self._world, message)

    async def _send(self, call: _Call) -> _Result:
        channel = self._world.channel(call.int_param("channel_id"))
        needed = perms.SEND_MESSAGES_IN_THREADS if channel.is_thread else perms.SEND_MESSAGES
        self._text_channel_for_bot(call, needed)
        body = call.body or {}
        nonce = str(body["nonce"]) if body.get("nonce") is not None else None
        if nonce is not None and len(nonce) > 25:
            raise WorldError(400, 50035, "Invalid Form Body: nonce must be 25 characters or fewer")
        if nonce is not None and body.get("enforce_nonce"):
            earlier = self._world.message_with_nonce(
                channel.id, self._world.bot_user.id, nonce, within_s=self.nonce_window_s
            )
            if earlier is not None:  # Discord answers with the first message, posts nothing
                return 200, payloads.message(self._world, earlier, shape="created")
        reference = body.get("message_reference") or {}
        reference_id = int(reference["message_id"]) if reference.get("message_id") else None
        if reference_id is not None and reference.get("fail_if_not_exists") is False:
            # Discord: a reply to a message that is not there is sent as a normal message
            referenced = self._world.messages.get(reference_id)
            if referenced is None or referenced.deleted or referenced.channel_id != channel.id:
                reference_id = None
        message = self._world.create_message(
            channel,
            self._world.bot_user,
            str(body.get("content") or ""),
            reference_id=reference_id,
            allowed_mentions=body.get("allowed_mentions"),
            flags=int(body.get("flags") or 0),
            tts=bool(body.get("tts")),
            embeds=body.get("embeds") or (),
            attachments=call.files,
            nonce=nonce,
        )
        self._dispatch_message("MESSAGE_CREATE", message)
        return 200, payloads.message(self._world, message, shape="created")

    async def _edit(self, call: _Call) -> _Result:
        self._text_channel_for_bot(call, 0)
        current = self._world.message(call.int_param("message_id"))
        if current.author.id != self._world.bot_user.id or current.webhook_id is not None:
            raise WorldError(403, 50005, "Cannot edit a message authored by another user")
        return self._apply_edit(current.id, call.body or {})

    async def _delete(self, call: _Call) -> _Result:
        channel = self._text_channel_for_bot(call, 0)
        current = self._world.message(call.int_param("message_id"))
        if current.channel_id != channel.id:
            raise unknown("Message", 10008)
        own = current.author.id == self._world.bot_user.id and current.webhook_id is None
        if not own and (
            channel.is_dm
            or not self._world.permissions(self._world.bot_user.id, channel) & perms.MANAGE_MESSAGES
        ):
            raise missing_permissions()
        self._dispatch_delete(self._world.delete_message(current.id))
        return 204, None

    async def _typing(self, call: _Call) -> _Result:
        channel = self._text_channel_for_bot(call, perms.SEND_MESSAGES)
        self._world.note_typing(channel.id)
        return 204, None

    # threads -----------------------------------------------------------------

    async def _thread_from_message(self, call: _Call) -> _Result:
        parent = self._text_channel_for_bot(call, perms.CREATE_PUBLIC_THREADS)
        starter = self._world.message(call.int_param("message_id"))
        if starter.channel_id != parent.id:
            raise unknown("Message", 10008)
        return 201, self._open_thread(parent, call.body, thread_id=starter.id)

    async def _thread(self, call: _Call) -> _Result:
        parent = self._text_channel_for_bot(call, perms.CREATE_PUBLIC_THREADS)
        if int((call.body or {}).get("type") or 11) != 11:
            raise WorldError(400, 50024, "The emulator models public threads only")
        return 201, self._open_thread(parent, call.body, thread_id=None)

    def _open_thread(self, parent: Channel, body: Any, *, thread_id: int | None) -> dict[str, Any]:
        body = body or {}
        thread = self._world.add_thread(
            parent,
            str(body.get("name") or "thread"),
            owner_id=self._world.bot_user.id,
            thread_id=thread_id,
            auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
        )
        data = payloads.channel(self._world, thread)
        self._hub.dispatch("THREAD_CREATE", {**data, "newly_created": True}, guild_id=thread.guild_id)
        return data

    async def _join_thread(self, call: _Call) -> _Result:
        thread = self._world.channel(call.int_param("channel_id"))
        if not thread.is_thread:
            raise WorldError(400, 50024, "Cannot execute action on this channel type")
        return 204, None

    # webhooks ----------------------------------------------------------------

    async def _list_webhooks(self, call: _Call) -> _Result:
        channel = self._text_channel_for_bot(call, perms.MANAGE_WEBHOOKS)
        return 200, [payloads.webhook(self._world, w) for w in self._world.webhooks_in(channel.id)]

    async def _create_webhook(self, call: _Call) -> _Result:
        channel = self._text_channel_for_bot(call, perms.MANAGE_WEBHOOKS)
        webhook = self._world.create_webhook(
            channel, str((call.body or {}).get("name") or ""), self._world.bot_user.id
        )
        return 200, payloads.webhook(self._world, webhook)

    def _managed_webhook(self, call: _Call) -> Webhook:
        webhook = self._world.webhook(call.int_param("webhook_id"))
        channel = self._world.channel(webhook.channel_id)
        self._world.require(self._world.bot_user.id, channel, perms.MANAGE_WEBHOOKS)
        return webhook

    async def _get_webhook(self, call: _Call) -> _Result:
        return 200, payloads.webhook(self._world, self._managed_webhook(call))

    async def _delete_webhook(self, call: _Call) -> _Result:
        del self._world.webhooks[self._managed_webhook(call).id]
        return 204, None

    async def _get_webhook_with_token(self, call: _Call) -> _Result:
        webhook = self._world.webhook(call.int_param("webhook_id"), call.request.match_info["token"])
        return 200, payloads.webhook(self._world, webhook, with_token=False)

    def _thread_target(self, call: _Call, webhook: Webhook) -> Channel:
        thread_id = call.query.get("thread_id")
        if thread_id is None:
            return self._world.channel(webhook.channel_id)
        thread = self._world.channel(int(thread_id))
        if thread.parent_id != webhook.channel_id:
            raise WorldError(400, 220001, "Target thread is not a child of the webhook's channel")
        return thread

    async def _execute(self, call: _Call) -> _Result:
        if call.int_param("webhook_id") == self._application_id:
            return await self._followup(call)
        webhook = self._world.webhook(call.int_param("webhook_id"), call.request.match_info["token"])
        channel = self._thread_target(call, webhook)
        body = call.body or {}
        username = body.get("username") or webhook.name
        if body.get("username") is not None:
            check_webhook_name(str(username))
        author = User(id=webhook.id, username=str(username), bot=True, avatar=webhook.avatar)
        self._world.users.setdefault(webhook.id, author)
        message = self._world.create_message(
            channel,
            author,
            str(body.get("content") or ""),
            allowed_mentions=body.get("allowed_mentions"),
            webhook_id=webhook.id,
            webhook_avatar_url=body.get("avatar_url"),
            flags=int(body.get("flags") or 0),
            tts=bool(body.get("tts")),
            embeds=body.get("embeds") or (),
            attachments=call.files,
        )
        self._dispatch_message("MESSAGE_CREATE", message)
        if call.query.get("wait", "").lower() in ("1", "true"):
            return 200, payloads.message(self._world, message)
        return 204, None

    def _hook_message(self, call: _Call) -> tuple[Message, Interaction | None]:
        webhook_id = call.int_param("webhook_id")
        token = call.request.match_info["token"]
        raw_id = call.request.match_info["message_id"]
        if webhook_id == self._application_id:
            interaction = self._interaction_by_token(token)
            if raw_id == "@original":
                if interaction.original_message_id is None:
                    raise unknown("Message", 10008)
                return self._world.message(interaction.original_message_id), interaction
            message = self._world.message(int(raw_id))
            if message.interaction_id != interaction.id:
                raise unknown("Message", 10008)
            return message, interaction
        webhook = self._world.webhook(webhook_id, token)
        message = self._world.message(int(raw_id) if raw_id.isdigit() else 0)
        if message.webhook_id != webhook.id:
            raise unknown("Message", 10008)
        return message, None

    async def _get_hook_message(self, call: _Call) -> _Result:
        message, _ = self._hook_message(call)
        return 200, payloads.message(self._world, message)

    def _apply_edit(self, message_id: int, body: dict[str, Any]) -> _Result:
        """Edit a message (the bot's or a webhook's) and tell connected clients."""
        message = self._world.edit_message(
            message_id,
            content=body.get("content"),
            embeds=body.get("embeds"),
            allowed_mentions=body.get("allowed_mentions"),
        )
        self._dispatch_message("MESSAGE_UPDATE", message)
        return 200, payloads.message(self._world, message)

    async def _edit_hook_message(self, call: _Call) -> _Result:
        current, _ = self._hook_message(call)
        return self._apply_edit(current.id, call.body or {})

    async def _delete_hook_message(self, call: _Call) -> _Result:
        current, _ = self._hook_message(call)
        self._dispatch_delete(self._world.delete_message(current.id))
        return 204, None

    # interactions ------------------------------------------------------------

    def _interaction_by_token(self, token: str) -> Interaction:
        for interaction in self._world.interactions.values():
            if secrets.compare_digest(interaction.token, token):
                if time.monotonic() - interaction.created_at > _INTERACTION_TOKEN_LIFETIME:
                    break
                return interaction
        raise WorldError(401, 50027, "Invalid Webhook Token")

    async def _callback(self, call: _Call) -> _Result:
        interaction = self._world.interactions.get(call.int_param("interaction_id"))
        if interaction is None or not secrets.compare_digest(
            interaction.token, call.request.match_info["token"]
        ):
            raise unknown("interaction", 10062)
        if time.monotonic() - interaction.created_at > self._interaction_deadline:
            raise unknown("interaction", 10062)
        if interaction.acknowledged:
            raise WorldError(400, 40060, "Interaction has already been acknowledged.")
        body = call.body or {}
        kind = int(body.get("type", 0))
        data = body.get("data")
        callback = InteractionCallback(type=kind, data=data, at=time.monotonic())
        interaction = replace(interaction, callbacks=(*interaction.callbacks, callback))
        if kind in (4, 5) and interaction.type != APPLICATION_COMMAND_AUTOCOMPLETE:
            data = data or {}
            flags = int(data.get("flags") or 0) & EPHEMERAL
            message = self._world.create_message(
                self._world.channel(interaction.channel_id),
                self._world.bot_user,
                str(data.get("content") or "") if kind == 4 else "",
                allowed_mentions=data.get("allowed_mentions"),
                webhook_id=self._application_id,
                application_id=self._application_id,
                interaction_id=interaction.id,
                flags=flags | (LOADING if kind == 5 else 0),
                embeds=data.get("embeds") or () if kind == 4 else (),
                attachments=call.files,
            )
            interaction = replace(interaction, original_message_id=message.id)
            self._world.put_interaction(interaction)
            self._dispatch_message("MESSAGE_CREATE", message)
        elif kind not in (1, 6, 7, 8, 9):
            raise WorldError(400, 50035, f"Invalid Form Body: unknown callback type {kind}")
        else:
            self._world.put_interaction(interaction)
        return 204, None

    async def _followup(self, call: _Call) -> _Result:
        interaction = self._interaction_by_token(call.request.match_info["token"])
        if not interaction.acknowledged:
            raise unknown("Webhook", 10015)
        body = call.body or {}
        message = self._world.create_message(
            self._world.channel(interaction.channel_id),
            self._world.bot_user,
            str(body.get("content") or ""),
            allowed_mentions=body.get("allowed_mentions"),
            application_id=self._application_id,
            webhook_id=self._application_id,
            interaction_id=interaction.id,
            flags=int(body.get("flags") or 0) & EPHEMERAL,
            embeds=body.get("embeds") or (),
            attachments=call.files,
        )
        self._world.put_interaction(
            replace(interaction, followup_message_ids=(*interaction.followup_message_ids, message.id))
        )
        self._dispatch_message("MESSAGE_CREATE", message)
        return 200, payloads.message(self._world, message)


async def _read_body(request: web.Request, world: World) -> tuple[Any, tuple[Attachment, ...]]:
    """The JSON body, or for multipart uploads the ``payload_json`` part plus the files."""
    if request.content_type == "application/json":
        raw = await request.read()
        return (json.loads(raw) if raw else None), ()
    if request.content_type.startswith("multipart/"):
        body: Any = None
        files: list[Attachment] = []
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "payload_json":
                body = json.loads(await part.text())
            elif part.filename is not None:
                content = bytes(await part.read())
                content_type = part.headers.get("Content-Type")
                files.append(world.new_attachment(part.filename, content, content_type))
        return body, tuple(files)
    return None, ()
