"""The files of Discord messages: what each attachment and embedded image is, fetched
once from Discord's CDN when the message is taken in (within the operator's caps) so
the log keeps the content, whatever happens to the link later.

An embed's image is fetched through its ``proxy_url`` (Discord's media proxy), never
from the site it links to. Edits reuse what the log already holds for a file kept by
the edit; only files new to the message are fetched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiohttp
import disnake

from ...config import AttachmentSettings
from ...events.media import Attachment, attachments_of
from ...media.fetch import FetchRefused, fetch_bytes
from ...media.intake import AttachmentIntake, IncomingAttachment, Offered

_EMBED_IMAGE_TYPES = frozenset({"image", "gifv", "rich"})


def offered_files(attachments: Iterable[Mapping[str, Any]],
                  embeds: Iterable[Mapping[str, Any]] = ()) -> list[Offered]:
    """Discord's attachment objects (and embeds' images) as files on offer."""
    offered = [Offered(
        id=str(a.get("id", "")), filename=str(a.get("filename") or "file"),
        media_type=str(a.get("content_type") or ""), size=int(a.get("size") or 0),
        url=a.get("url"), width=a.get("width"), height=a.get("height"))
        for a in attachments]
    for index, embed in enumerate(embeds):
        if embed.get("type") not in _EMBED_IMAGE_TYPES:
            continue
        for key in ("image", "thumbnail"):
            image = embed.get(key) or {}
            url = image.get("proxy_url")
            if url:
                name = str(url).split("?", 1)[0].rsplit("/", 1)[-1] or f"embed-{index}"
                offered.append(Offered(id=f"embed-{index}-{key}", filename=name,
                                       media_type="image/", size=-1, url=url,
                                       width=image.get("width"), height=image.get("height"),
                                       source="embed"))
                break
    return offered


def message_files(message: disnake.Message) -> list[Offered]:
    """The files of a disnake message."""
    attachments = [{"id": a.id, "filename": a.filename, "content_type": a.content_type,
                    "size": a.size, "url": a.url, "width": a.width, "height": a.height}
                   for a in message.attachments]
    return offered_files(attachments, [e.to_dict() for e in message.embeds])


class DiscordFiles:
    """Fetches messages' files from Discord's CDN (one connection pool per adapter)."""

    def __init__(self, settings: AttachmentSettings) -> None:
        self._intake = AttachmentIntake(settings)
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def take(self, offered: Sequence[Offered]) -> tuple[IncomingAttachment, ...]:
        """Every file, fetched when the caps allow."""
        if not offered:
            return ()
        return await self._intake.take(offered, self._fetch)

    async def take_edit(self, offered: Sequence[Offered], recorded: Sequence[Attachment]
                        ) -> tuple[IncomingAttachment, ...] | None:
        """The files after an edit, or None when the edit kept exactly the recorded ones."""
        known = {a.id: a for a in recorded}
        if [o.id for o in offered] == [a.id for a in recorded]:
            return None
        kept = {o.id: IncomingAttachment(attachment=known[o.id]) for o in offered
                if o.id in known}
        fresh = await self.take([o for o in offered if o.id not in known])
        fetched = iter(fresh)
        return tuple(kept[o.id] if o.id in kept else next(fetched) for o in offered)

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _fetch(self, item: Offered, max_bytes: int, timeout_s: float) -> bytes:
        if not item.url:
            raise FetchRefused("no link to fetch it from")
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return await fetch_bytes(self._session, item.url, max_bytes=max_bytes,
                                 timeout_s=timeout_s, hosts=self._settings.hosts)


def recorded_files(data: Mapping[str, Any] | None) -> tuple[Attachment, ...]:
    """The attachments a recorded message event lists."""
    return attachments_of((data or {}).get("attachments"))
