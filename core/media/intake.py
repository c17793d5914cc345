"""Taking in a message's attachments: decide what to fetch within the operator's caps,
fetch it, and turn the bytes into what is stored (content-addressed) and what the
message records.

A platform describes each file (:class:`Offered`) and says how to fetch it; the
result is one :class:`IncomingAttachment` per file: its metadata (an
:class:`~core.events.Attachment`, with the reason when it was refused) and, when it
was fetched and usable, its content as an :class:`~core.events.AttachmentStored` to
store. Caps: files past ``max_files``, over ``max_file_bytes`` or past
``max_message_bytes`` in total are refused before any download; one deadline
(``fetch_timeout_s``) bounds the downloads of a message.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

import imagesize  # type: ignore[import-untyped]

from ..config import AttachmentSettings
from ..events.media import Attachment, AttachmentStored
from .fetch import FetchRefused
from .kinds import base_type, expected_kind, is_pdf, looks_binary, sniff_image
from .pdftext import extract_pdf_text


@dataclass(frozen=True, slots=True, kw_only=True)
class Offered:
    """A file as the platform describes it (``size`` as declared; -1 when unknown)."""

    id: str
    filename: str
    media_type: str
    size: int
    url: str | None = None
    width: int | None = None
    height: int | None = None
    source: str = "attachment"


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingAttachment:
    """One file of an inbound message: what is recorded, and the content to store."""

    attachment: Attachment
    content: AttachmentStored | None = None


Fetch = Callable[[Offered, int, float], Awaitable[bytes]]
"""Downloads an offered file: ``(file, max bytes, seconds)`` -> its bytes, or raises
:class:`~core.media.fetch.FetchRefused`."""


class AttachmentIntake:
    """Applies the caps, fetches and prepares a message's files (see the module docstring)."""

    def __init__(self, settings: AttachmentSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock

    async def take(self, offered: Sequence[Offered], fetch: Fetch
                   ) -> tuple[IncomingAttachment, ...]:
        """Every offered file, fetched and prepared when the caps allow."""
        settings = self.settings
        planned: list[tuple[Offered, Attachment, bool]] = []
        fetched_files, budget = 0, settings.max_message_bytes
        for item in offered:
            kind = expected_kind(item.filename, item.media_type)
            attachment = Attachment(
                id=item.id, filename=item.filename, media_type=base_type(item.media_type),
                size=item.size, kind=kind, url=item.url, width=item.width,
                height=item.height, source=item.source)
            refused = self._refusal(item, kind, fetched_files, budget)
            if refused is not None:
                planned.append((item, replace(attachment, refused=refused), False))
                continue
            fetched_files += 1
            budget -= max(item.size, 0)
            planned.append((item, attachment, True))
        deadline = self._clock() + settings.fetch_timeout_s
        results = await asyncio.gather(*(
            self._fetch_one(item, attachment, fetch, deadline) if wanted
            else _done(IncomingAttachment(attachment=attachment))
            for item, attachment, wanted in planned))
        return self._within_message_cap(results)

    def _refusal(self, item: Offered, kind: str, fetched: int, budget: int) -> str | None:
        settings = self.settings
        if not settings.enabled:
            return "attachments are off"
        if kind == "other":
            return f"unsupported type ({base_type(item.media_type) or 'unknown'})"
        if fetched >= settings.max_files:
            return f"over the cap of {settings.max_files} files per message"
        if item.size > settings.max_file_bytes:
            return f"over the cap of {_size(settings.max_file_bytes)} per file"
        if item.size > budget:
            return f"over the cap of {_size(settings.max_message_bytes)} per message"
        if not item.url and not item.id:
            return "nothing to fetch"
        return None

    async def _fetch_one(self, item: Offered, attachment: Attachment, fetch: Fetch,
                         deadline: float) -> IncomingAttachment:
        remaining = deadline - self._clock()
        if remaining <= 0:
            return IncomingAttachment(attachment=replace(
                attachment, refused="the downloads took too long"))
        try:
            data = await fetch(item, self.settings.max_file_bytes, remaining)
        except FetchRefused as exc:
            return IncomingAttachment(attachment=replace(attachment, refused=str(exc)))
        return await prepare(attachment, data, self.settings)

    def _within_message_cap(self, results: Sequence[IncomingAttachment]
                            ) -> tuple[IncomingAttachment, ...]:
        """Declared sizes can lie: the bytes actually fetched count against the cap too."""
        budget = self.settings.max_message_bytes
        kept = []
        for result in results:
            content = result.content
            if content is not None:
                if content.size > budget:
                    cap = _size(self.settings.max_message_bytes)
                    result = IncomingAttachment(attachment=replace(
                        result.attachment, sha256=None,
                        refused=f"over the cap of {cap} per message"))
                else:
                    budget -= content.size
            kept.append(result)
        return tuple(kept)


async def prepare(attachment: Attachment, data: bytes, settings: AttachmentSettings
                  ) -> IncomingAttachment:
    """The stored content of ``data`` and the attachment's metadata completed with it
    (its hash and true size; the reason when the bytes are not what they claim)."""
    digest = hashlib.sha256(data).hexdigest()
    attachment = replace(attachment, size=len(data))
    encoded = base64.b64encode(data).decode("ascii")
    if attachment.kind == "image":
        media_type = sniff_image(data)
        if media_type is None:
            return _refused(attachment, "not a PNG, JPEG, GIF or WebP image")
        width, height = _dimensions(data)
        attachment = replace(attachment, media_type=media_type, sha256=digest,
                             width=width or attachment.width, height=height or attachment.height)
        return IncomingAttachment(attachment=attachment, content=AttachmentStored(
            sha256=digest, media_type=media_type, size=len(data), kind="image", data=encoded,
            width=attachment.width, height=attachment.height))
    if attachment.kind == "pdf":
        if not is_pdf(data):
            return _refused(attachment, "not a PDF")
        read = await extract_pdf_text(data, max_pages=settings.pdf_max_pages,
                                      max_chars=settings.max_text_chars,
                                      timeout_s=settings.extract_timeout_s)
        attachment = replace(attachment, media_type="application/pdf", sha256=digest)
        return IncomingAttachment(attachment=attachment, content=AttachmentStored(
            sha256=digest, media_type="application/pdf", size=len(data), kind="pdf",
            data=encoded, text=read.text, pages=read.pages, truncated=read.truncated,
            note=read.note))
    if looks_binary(data):
        return _refused(attachment, "a binary file, not text")
    text = data.decode("utf-8-sig", errors="replace")
    truncated = len(text) > settings.max_text_chars
    attachment = replace(attachment, sha256=digest,
                         media_type=attachment.media_type or "text/plain")
    return IncomingAttachment(attachment=attachment, content=AttachmentStored(
        sha256=digest, media_type=attachment.media_type, size=len(data), kind="text",
        data=encoded, text=text[:settings.max_text_chars], truncated=truncated))


def _refused(attachment: Attachment, reason: str) -> IncomingAttachment:
    return IncomingAttachment(attachment=replace(attachment, refused=reason))


def _dimensions(data: bytes) -> tuple[int | None, int | None]:
    try:
        width, height = imagesize.get(io.BytesIO(data))
    except Exception:  # a damaged header: the size stays unknown (costed as a large image)
        return None, None
    return (width, height) if width > 0 and height > 0 else (None, None)


def _size(count: int) -> str:
    for unit, scale in (("MB", 1000**2), ("KB", 1000)):
        if count >= scale:
            return f"{count / scale:g} {unit}"
    return f"{count} bytes"


async def _done(value: IncomingAttachment) -> IncomingAttachment:
    return value
