"""Discord's CDN for attachments, as the emulator serves it.

Discord hands out attachment links signed for a while: ``.../attachments/{channel}/
{attachment}/{filename}?ex=<hex expiry>&is=<hex issued>&hm=<hex signature>&``; every
payload that carries the message (gateway dispatch, REST fetch) signs them afresh,
and a link past its ``ex`` (or with a wrong signature) answers 404 "This content is no
longer available." The emulator does the same at ``/cdn/attachments/...`` on its own
port, with a clock that tests move forward (:meth:`AttachmentLinks.expire_all`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

from .model import Attachment

LINK_TTL_S = 24 * 3600.0
EXPIRED_TEXT = "This content is no longer available."


@dataclass(frozen=True)
class CdnRequest:
    """One download: the path, whether it was served, and the status."""

    path: str
    status: int
    at: float


class AttachmentLinks:
    """Signs attachment links and serves the files behind them."""

    def __init__(self, find: Callable[[int], Attachment | None], *,
                 ttl_s: float = LINK_TTL_S) -> None:
        self._find = find
        self._key = secrets.token_bytes(16)
        self._ttl_s = ttl_s
        self._offset_s = 0.0
        # the emulator points these at its own port once it listens (never Discord's own
        # CDN and media hosts: no test may reach those)
        self.base = "http://127.0.0.1/cdn"
        self.media_base = "http://127.0.0.1/media"
        self.requests: list[CdnRequest] = []

    def now(self) -> float:
        """The CDN's clock (moved by :meth:`expire_all`)."""
        return time.time() + self._offset_s

    def expire_all(self) -> None:
        """Move the CDN's clock past every link handed out so far."""
        self._offset_s += self._ttl_s + 1

    def url(self, channel_id: int, attachment: Attachment, *, media: bool = False) -> str:
        """A freshly signed link to ``attachment``."""
        issued = int(self.now())
        expires = int(issued + self._ttl_s)
        path = f"/attachments/{channel_id}/{attachment.id}/{quote(attachment.filename)}"
        query = f"ex={expires:x}&is={issued:x}&hm={self._sign(path, expires, issued)}&"
        return f"{self.media_base if media else self.base}{path}?{query}"

    def _sign(self, path: str, expires: int, issued: int) -> str:
        return hmac.new(self._key, f"{path}|{expires:x}|{issued:x}".encode(),
                        hashlib.sha256).hexdigest()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """GET ``/cdn/attachments/{channel}/{attachment}/{filename}``."""
        path = request.path.removeprefix("/cdn").removeprefix("/media")
        status, response = self._answer(request, path)
        self.requests.append(CdnRequest(path=path, status=status, at=time.monotonic()))
        return response

    def _answer(self, request: web.Request, path: str) -> tuple[int, web.StreamResponse]:
        query = request.query
        try:
            expires, issued = int(query["ex"], 16), int(query["is"], 16)
            signature = query["hm"]
        except (KeyError, ValueError):
            return 404, web.Response(status=404, text=EXPIRED_TEXT)
        good = hmac.compare_digest(signature, self._sign(path, expires, issued))
        if not good or self.now() > expires:
            return 404, web.Response(status=404, text=EXPIRED_TEXT)
        attachment = self._find(int(request.match_info["attachment_id"]))
        if attachment is None:
            return 404, web.Response(status=404, text=EXPIRED_TEXT)
        return 200, web.Response(body=attachment.content,
                                 content_type=(attachment.content_type or
                                               "application/octet-stream").split(";")[0])
