"""What the emulator records about REST traffic, and the REST faults it can inject."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
