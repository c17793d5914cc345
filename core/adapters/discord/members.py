"""Members' roles where Discord did not send them: ``GET /guilds/{g}/members/{u}``.

Only live MESSAGE_CREATE dispatches from guild channels carry the author's roles;
history (catch-up), DMs and slash commands from DMs do not. :class:`MemberRoles` is
the Discord :class:`~core.dispatcher.roles.RoleResolver`: a guild message's author is
looked up in that guild; a DM's author in each server that defines a role some rule
names (a role id belongs to one server). Someone who is not a member there (404,
Unknown Member) holds none of its roles. Answers are cached for ``ttl_s`` (a role taken
away reaches DMs and catch-up within that time), at most ``max_entries`` of them, and
roles seen on live messages refresh the cache for free.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

import disnake

MEMBER_TTL_S = 60.0
MAX_CACHED_MEMBERS = 10_000


class MemberRoles:
    """Looks up and caches members' roles (see the module docstring)."""

    def __init__(self, client: disnake.Client, *, ttl_s: float = MEMBER_TTL_S,
                 max_entries: int = MAX_CACHED_MEMBERS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[tuple[int, int], tuple[float, frozenset[str]]] = OrderedDict()
        self._inflight: dict[tuple[int, int], asyncio.Future[frozenset[str]]] = {}

    async def roles(self, user_id: str, guild_id: str | None,
                    wanted: frozenset[str]) -> frozenset[str]:
        """``user_id``'s roles in ``guild_id``, or for a DM in the servers defining one of
        ``wanted`` (raises :class:`disnake.HTTPException` when Discord cannot say now)."""
        user = int(user_id)
        guilds = [int(guild_id)] if guild_id is not None else self._defining(wanted)
        found: set[str] = set()
        for guild in guilds:
            found |= await self._member_roles(guild, user)
        return frozenset(found)

    def saw(self, guild_id: int, user_id: int, roles: Iterable[str]) -> None:
        """A live message showed ``user_id``'s roles in ``guild_id``: remember them."""
        self._remember((guild_id, user_id), frozenset(roles))

    def _defining(self, wanted: frozenset[str]) -> list[int]:
        ids = {int(r) for r in wanted if r.isdigit()}
        return sorted(g.id for g in self._client.guilds
                      if any(g.get_role(r) is not None for r in ids))

    async def _member_roles(self, guild_id: int, user_id: int) -> frozenset[str]:
        key = (guild_id, user_id)
        cached = self._cache.get(key)
        if cached is not None and self._clock() - cached[0] < self._ttl_s:
            self._cache.move_to_end(key)
            return cached[1]
        running = self._inflight.get(key)
        if running is not None:  # someone asks already: one request for both
            return await asyncio.shield(running)
        future: asyncio.Future[frozenset[str]] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            roles = await self._fetch(guild_id, user_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(roles)
            self._remember(key, roles)
            return roles
        finally:
            del self._inflight[key]

    async def _fetch(self, guild_id: int, user_id: int) -> frozenset[str]:
        try:
            data = await self._client.http.get_member(guild_id, user_id)
        except disnake.NotFound:
            return frozenset()  # not a member: none of that server's roles
        return frozenset(str(r) for r in data.get("roles", ()) if str(r) != str(guild_id))

    def _remember(self, key: tuple[int, int], roles: frozenset[str]) -> None:
        self._cache[key] = (self._clock(), roles)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
