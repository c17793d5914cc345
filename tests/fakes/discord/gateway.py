"""The websocket gateway: sessions, sequence numbers, RESUME replay, zlib-stream, faults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from . import payloads
from .world import World

GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT

IDENTIFY_WINDOW_S = 5.0
"""Discord accepts one IDENTIFY per rate-limit bucket (``shard_id % max_concurrency``)
per 5 s; another within the window is answered with op 9 INVALID_SESSION."""

_MESSAGE_EVENTS = {"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE"}
_MEMBER_EVENTS = {"GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE", "GUILD_MEMBER_REMOVE"}


@dataclass(frozen=True)
class GatewayConnectionRecord:
    """One websocket connection, as the emulator saw it.

    ``start`` is "identify", "resume" or None (closed before either); ``resumed`` says
    whether a RESUME was accepted; ``events`` lists the (seq, event name) dispatches
    written to this socket, replays included. Times are ``time.monotonic()``.
    """

    index: int
    path: str
    compressed: bool
    opened_at: float
    closed_at: float | None
    close_code: int | None
    closed_by: str | None
    start: str | None
    resumed: bool | None
    session_id: str | None
    events: tuple[tuple[int, str], ...]
    shard: tuple[int, int] | None = None
    identified_at: float | None = None
    """When the IDENTIFY was accepted (READY sent)."""
    refused: str | None = None
    """Why an IDENTIFY was refused: "rate_limited" (op 9: another in its bucket within
    5 s), "invalid_shard" (close 4010), or None."""


@dataclass
class _Session:
    id: str
    intents: int
    shard: tuple[int, int] | None
    seq: int = 0
    log: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    connection: _Connection | None = None

    def owns_guild(self, guild_id: int | None) -> bool:
        if self.shard is None:
            return True
        shard_id, count = self.shard
        return (0 if guild_id is None else (guild_id >> 22) % count) == shard_id


@dataclass
class _Close:
    code: int


class _Connection:
    """A socket plus one writer task, so frames leave in the order they were queued."""

    def __init__(self, index: int, ws: web.WebSocketResponse, *, path: str, compressed: bool):
        self.index = index
        self.ws = ws
        self.path = path
        self.compressed = compressed
        self.opened_at = time.monotonic()
        self.closed_at: float | None = None
        self.close_code: int | None = None
        self.closed_by: str | None = None
        self.start: str | None = None
        self.resumed: bool | None = None
        self.session_id: str | None = None
        self.events: list[tuple[int, str]] = []
        self.shard: tuple[int, int] | None = None
        self.identified_at: float | None = None
        self.refused: str | None = None
        self._deflate = zlib.compressobj()
        self._queue: asyncio.Queue[dict[str, Any] | _Close] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_frames())

    @property
    def live(self) -> bool:
        return self.closed_at is None and self.closed_by is None

    def send(self, frame: dict[str, Any]) -> None:
        if self.live:
            self._queue.put_nowait(frame)

    def close(self, code: int) -> None:
        if self.live:
            self._queue.put_nowait(_Close(code))

    async def drain(self) -> None:
        await self._queue.join()

    async def stop(self) -> None:
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        # frames queued while the client was closing will never be written; without
        # this drain() (and so every hub.flush(), user_says...) would wait forever
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()

    def record(self) -> GatewayConnectionRecord:
        return GatewayConnectionRecord(
            index=self.index,
            path=self.path,
            compressed=self.compressed,
            opened_at=self.opened_at,
            closed_at=self.closed_at,
            close_code=self.close_code,
            closed_by=self.closed_by,
            start=self.start,
            resumed=self.resumed,
            session_id=self.session_id,
            events=tuple(self.events),
            shard=self.shard,
            identified_at=self.identified_at,
            refused=self.refused,
        )

    async def _write_frames(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if isinstance(item, _Close):
                    if self.closed_by is None:
                        self.closed_by, self.close_code = "server", item.code
                    await self.ws.close(code=item.code)
                elif not self.ws.closed:
                    await self._write(item)
            except (ConnectionError, RuntimeError):
                pass  # the client went away; what it missed stays in the session log
            finally:
                self._queue.task_done()

    async def _write(self, frame: dict[str, Any]) -> None:
        raw = json.dumps(frame, separators=(",", ":"))
        if frame.get("op") == 0 and frame.get("s") is not None:
            self.events.append((frame["s"], frame["t"]))
        if self.compressed:
            data = self._deflate.compress(raw.encode()) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(raw)


class GatewayHub:
    """Accepts gateway sockets and fans dispatches out to the bot's sessions."""

    def __init__(
        self,
        world: World,
        *,
        token: str,
        application_id: int,
        enabled_privileged_intents: int,
        resume_url: Callable[[], str],
        heartbeat_interval_ms: int,
        on_change: Callable[[], None],
        max_concurrency: int = 1,
        session_start_total: int = 1000,
    ) -> None:
        self._world = world
        self.max_concurrency = max_concurrency
        self.session_start_total = session_start_total
        self.session_starts_remaining = session_start_total
        self._bucket_identified: dict[int, float] = {}
        self._token = token
        self._application_id = application_id
        self._enabled_privileged = enabled_privileged_intents
        self._resume_url = resume_url
        self._heartbeat_interval_ms = heartbeat_interval_ms
        self._on_change = on_change
        self._sessions: dict[str, _Session] = {}
        self._connections: list[_Connection] = []
        self._identify_faults: list[int] = []
        self._refuse_resumes = 0
        self._extra_replays = 0

    # observation -------------------------------------------------------------

    @property
    def connections(self) -> list[GatewayConnectionRecord]:
        return [c.record() for c in self._connections]

    @property
    def identify_count(self) -> int:
        return sum(1 for c in self._connections if c.start == "identify")

    @property
    def refused_identifies(self) -> list[GatewayConnectionRecord]:
        """Connections whose IDENTIFY was refused (rate-limited or an invalid shard)."""
        return [c.record() for c in self._connections if c.refused is not None]

    def shard_connected(self, shard_id: int) -> bool:
        """A session of shard ``shard_id`` is attached to a live socket."""
        return any(s.connection is not None and s.connection.live and s.shard is not None
                   and s.shard[0] == shard_id for s in self._sessions.values())

    @property
    def resume_count(self) -> int:
        return sum(1 for c in self._connections if c.resumed)

    @property
    def connected(self) -> bool:
        """A session is attached to a live socket (READY or RESUMED was sent)."""
        return any(s.connection is not None and s.connection.live for s in self._sessions.values())

    async def flush(self) -> None:
        """Wait until every queued frame has been written to its socket."""
        for connection in list(self._connections):
            await connection.drain()

    # dispatching -------------------------------------------------------------

    def dispatch(
        self,
        event: str,
        data: Mapping[str, Any],
        *,
        guild_id: int | None,
        to_session: str | None = None,
    ) -> None:
        """Give ``event`` a sequence number in every session that should see it."""
        for session in list(self._sessions.values()):
            if to_session is not None and session.id != to_session:
                continue
            # guild events go to the guild's shard, DMs to shard 0; what is addressed to a
            # session (its READY, a member chunk it asked for) goes to that session
            if to_session is None and not session.owns_guild(guild_id):
                continue
            shaped = self._shape_for(session, event, data, guild_id)
            if shaped is None:
                continue
            session.seq += 1
            session.log.append((session.seq, event, shaped))
            if session.connection is not None:
                session.connection.send({"op": 0, "t": event, "s": session.seq, "d": shaped})

    def _shape_for(
        self, session: _Session, event: str, data: Mapping[str, Any], guild_id: int | None
    ) -> dict[str, Any] | None:
        if event in _MESSAGE_EVENTS:
            needed = GUILD_MESSAGES if guild_id is not None else DIRECT_MESSAGES
            if not session.intents & needed:
                return None
            if guild_id is not None and not session.intents & MESSAGE_CONTENT:
                return self._without_content(dict(data))
        if event in _MEMBER_EVENTS and not session.intents & GUILD_MEMBERS:
            return None
        if event == "GUILD_CREATE" and not session.intents & GUILD_MEMBERS:
            bot_id = str(self._world.bot_user.id)
            members = [m for m in data["members"] if m["user"]["id"] == bot_id]
            return {**data, "members": members}
        return dict(data)

    def _without_content(self, data: dict[str, Any]) -> dict[str, Any]:
        """Discord blanks content of guild messages that neither mention the bot nor
        come from it when MESSAGE_CONTENT is not granted."""
        bot_id = str(self._world.bot_user.id)
        if "author" not in data:
            return data
        mentioned = any(u["id"] == bot_id for u in data.get("mentions", ()))
        if data["author"]["id"] != bot_id and not mentioned:
            data.update(content="", embeds=[], attachments=[], components=[])
        if data.get("referenced_message"):
            data["referenced_message"] = self._without_content(dict(data["referenced_message"]))
        return data

    # faults ------------------------------------------------------------------

    def close_connections(self, code: int, *, forget_sessions: bool = False) -> None:
        for connection in self._connections:
            connection.close(code)
        if forget_sessions:
            self._sessions.clear()
            self.forgive_identifies()

    def forgive_identifies(self) -> None:
        """Forget when each bucket last identified. A fault a test injects (a session
        invalidated, a refused RESUME) makes the client IDENTIFY again at once, since tests
        skip disnake's 5 s pause; that IDENTIFY is not the concurrency under test."""
        self._bucket_identified.clear()

    def send_op(self, op: int, d: Any) -> None:
        for session in self._sessions.values():
            if session.connection is not None:
                session.connection.send({"op": op, "d": d, "s": None, "t": None})

    def invalidate_sessions(self, *, resumable: bool) -> None:
        self.send_op(9, resumable)
        if not resumable:
            self._sessions.clear()
            self.forgive_identifies()

    def fail_next_identify(self, close_code: int) -> None:
        self._identify_faults.append(close_code)
        self.forgive_identifies()

    def refuse_next_resume(self) -> None:
        self._refuse_resumes += 1
        self.forgive_identifies()

    def replay_on_next_resume(self, already_sent: int) -> None:
        self._extra_replays = already_sent

    async def shutdown(self) -> None:
        for connection in self._connections:
            connection.close(1001)
        await self.flush()
        for connection in self._connections:
            await connection.stop()

    # the socket --------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        connection = _Connection(
            len(self._connections),
            ws,
            path=request.path,
            compressed=request.query.get("compress") == "zlib-stream",
        )
        self._connections.append(connection)
        connection.send({"op": 10, "d": {"heartbeat_interval": self._heartbeat_interval_ms}})
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    self._on_frame(connection, json.loads(msg.data))
        finally:
            connection.closed_by = connection.closed_by or "client"
            connection.closed_at = time.monotonic()
            if connection.close_code is None:
                connection.close_code = ws.close_code
            for session in self._sessions.values():
                if session.connection is connection:
                    session.connection = None
            await connection.stop()
            self._on_change()
        return ws

    def _on_frame(self, connection: _Connection, frame: Mapping[str, Any]) -> None:
        op, d = frame.get("op"), frame.get("d")
        if op == 1:
            connection.send({"op": 11})
        elif op == 2:
            self._identify(connection, d)
        elif op == 6:
            self._resume(connection, d)
        elif op == 8:
            self._send_member_chunk(connection, d)
        elif op not in (3, 4):
            connection.close(4001)

    def _identify(self, connection: _Connection, d: Mapping[str, Any]) -> None:
        connection.start = "identify"
        intents = int(d.get("intents", 0))
        shard = d.get("shard")
        connection.shard = (int(shard[0]), int(shard[1])) if shard else None
        if self._identify_faults:
            connection.close(self._identify_faults.pop(0))
        elif not secrets.compare_digest(str(d.get("token", "")), self._token):
            connection.close(4004)
        elif connection.shard is not None and not 0 <= connection.shard[0] < connection.shard[1]:
            connection.refused = "invalid_shard"
            connection.close(4010)
        elif intents & PRIVILEGED_INTENTS & ~self._enabled_privileged:
            connection.close(4014)
        elif not self._may_identify(connection.shard):
            # Discord's answer to an IDENTIFY past max_concurrency: op 9, not resumable
            connection.refused = "rate_limited"
            connection.send({"op": 9, "d": False, "s": None, "t": None})
        else:
            self.session_starts_remaining = max(0, self.session_starts_remaining - 1)
            connection.identified_at = time.monotonic()
            session = _Session(id=secrets.token_hex(16), intents=intents, shard=connection.shard)
            self._sessions[session.id] = session
            connection.session_id = session.id
            session.connection = connection
            self._dispatch_ready(session)
        self._on_change()

    def identify_wait(self, shard_id: int | None) -> float:
        """Seconds until an IDENTIFY of ``shard_id`` (None: unsharded) would be accepted:
        what is left of its bucket's window (0: now)."""
        last = self._bucket_identified.get((shard_id or 0) % self.max_concurrency)
        return 0.0 if last is None else max(0.0, last + IDENTIFY_WINDOW_S - time.monotonic())

    def _may_identify(self, shard: tuple[int, int] | None) -> bool:
        """One IDENTIFY per bucket per window; taking it starts the bucket's window."""
        if self.identify_wait(shard[0] if shard else None) > 0:
            return False
        self._bucket_identified[(shard[0] if shard else 0) % self.max_concurrency] = \
            time.monotonic()
        return True

    def _dispatch_ready(self, session: _Session) -> None:
        bot_guilds = [g for g in self._world.guilds if (g, self._world.bot_user.id) in self._world.members]
        mine = [g for g in bot_guilds if session.owns_guild(g)]
        ready = {
            "v": 10,
            "user": {**payloads.user(self._world.bot_user), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g), "unavailable": True} for g in mine],
            "session_id": session.id,
            "resume_gateway_url": self._resume_url(),
            "shard": list(session.shard) if session.shard else None,
            "application": {"id": str(self._application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "_trace": ["emulator"],
        }
        self.dispatch("READY", ready, guild_id=None, to_session=session.id)
        for guild_id in mine:
            self.dispatch(
                "GUILD_CREATE",
                payloads.guild_create(self._world, guild_id),
                guild_id=guild_id,
                to_session=session.id,
            )

    def _resume(self, connection: _Connection, d: Mapping[str, Any]) -> None:
        connection.start = "resume"
        session = self._sessions.get(str(d.get("session_id")))
        token_ok = secrets.compare_digest(str(d.get("token", "")), self._token)
        if session is None or not token_ok or self._refuse_resumes:
            self._refuse_resumes = max(0, self._refuse_resumes - 1)
            connection.resumed = False
            connection.send({"op": 9, "d": False, "s": None, "t": None})
            self._on_change()
            return
        if session.connection is not None and session.connection is not connection:
            session.connection.close(4000)
        connection.session_id = session.id
        connection.resumed = True
        session.connection = connection
        client_seq = int(d.get("seq") or 0)
        replay_from = client_seq - self._extra_replays
        self._extra_replays = 0
        for seq, event, data in session.log:
            if seq > replay_from:
                connection.send({"op": 0, "t": event, "s": seq, "d": data})
        connection.send({"op": 0, "t": "RESUMED", "s": session.seq, "d": {"_trace": ["emulator"]}})
        self._on_change()

    def _send_member_chunk(self, connection: _Connection, d: Mapping[str, Any]) -> None:
        guild_ids = d.get("guild_id")
        for guild_id in guild_ids if isinstance(guild_ids, list) else [guild_ids]:
            members = self._world.guild_members(int(guild_id))
            chunk: dict[str, Any] = {
                "guild_id": str(guild_id),
                "members": [payloads.member(self._world, m) for m in members],
                "chunk_index": 0,
                "chunk_count": 1,
            }
            if d.get("nonce"):
                chunk["nonce"] = d["nonce"]
            if connection.session_id is not None:
                self.dispatch(
                    "GUILD_MEMBERS_CHUNK",
                    chunk,
                    guild_id=int(guild_id),
                    to_session=connection.session_id,
                )
