"""What the emulator records about REST traffic, and the REST faults it can inject."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RestRequest:
    """One REST request as received. ``path`` is relative to the API base
    (``/channels/1/messages``), ``route`` is its template with the method
    (``POST /channels/{channel_id}/messages``), ``json`` the JSON body (the
    ``payload_json`` part for multipart uploads). ``headers`` never include
    Authorization. ``at`` is ``time.monotonic()`` on arrival."""

    method: str
    path: str
    route: str
    query: Mapping[str, str]
    json: Any
    headers: Mapping[str, str]
    files: tuple[str, ...]
    status: int
    at: float


@dataclass
class RestFault:
    """Answer the next ``remaining`` requests matching ``route`` (any when None) with
    ``status``. A 429 carries Discord's body; ``via`` adds the ``Via`` header without
    which disnake treats a 429 as a Cloudflare ban and raises at once."""

    status: int
    remaining: int
    route: str | None
    retry_after: float = 0.0
    is_global: bool = False
    via: bool = True

    def matches(self, route: str) -> bool:
        return self.remaining > 0 and (self.route is None or self.route == route)


@dataclass
class RestStall:
    """Hold the next request to ``route``: before it takes effect, or (``after_effect``)
    after it took effect but before it is answered: how a test makes a crash fall
    exactly in the middle of a request. ``arrived`` is set when the request is held;
    :meth:`release` lets it go on (``effect=False`` before the effect: it never
    happens, the request gets a 503)."""

    route: str
    after_effect: bool = False
    skip: int = 0
    """Requests to ``route`` let through before the one held."""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    effect: bool = True
    taken: bool = False

    def release(self, *, effect: bool = True) -> None:
        self.effect = effect
        self._released.set()

    async def held(self) -> None:
        self.arrived.set()
        await self._released.wait()
