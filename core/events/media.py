"""Attachments: what a message carried, and the stored content of each file.

A message's attachments are listed in its MessageReceived (or a MessageEdited that
changed them) as metadata, :class:`Attachment`. The content of each file that was
fetched is stored once, content-addressed, as an :class:`AttachmentStored` event in
the stream ``blob:<sha256>`` with the id ``blob:<sha256>``: the same bytes sent twice
are written once, and a prompt rebuilt months later reads the same bytes and the same
extracted text, even after the platform's link expired or the extractor changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from eventstore import Seal

from .base import ERASED_TEXT, DomainEvent
from .ids import files_scope

AttachmentKind = Literal["image", "text", "pdf", "other"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """One file of a message, as recorded with it.

    ``sha256`` names the stored content (None when it was not stored); ``refused`` says
    why not (over a size cap, an unsupported type, a failed download...). ``source`` is
    ``attachment`` or ``embed`` (an image of a link preview); ``url`` is where it was
    fetched from, kept for reference only: it is never needed again.
    """

    id: str
    filename: str
    media_type: str
    size: int
    kind: AttachmentKind
    url: str | None = None
    sha256: str | None = None
    refused: str | None = None
    width: int | None = None
    height: int | None = None
    source: str = "attachment"

    def to_data(self) -> dict[str, Any]:
        """The JSON object stored in the message's event."""
        return asdict(self)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Attachment:
        """Read one back (unknown keys ignored, missing ones defaulted)."""
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def attachments_of(stored: Iterable[Mapping[str, Any]] | None) -> tuple[Attachment, ...]:
    """The attachments an event's ``attachments`` field lists."""
    return tuple(Attachment.from_data(a) for a in stored or ())


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentStored(DomainEvent):
    """The content of one file, stored once by its hash.

    ``data`` is the file's bytes in base64 (always the original). ``text`` is what a
    prompt shows of a text file or PDF (decoded text; a PDF's pages with ``[page N]``
    markers), extracted once when it arrived; ``truncated`` when it was cut at the
    operator's cap; ``note`` says why a file's text could not be read (an encrypted
    PDF). Images carry their pixel size for token estimates.
    """

    type: ClassVar[str] = "AttachmentStored"
    personal: ClassVar[Mapping[str, Any]] = {"data": "", "text": ERASED_TEXT, "note": None}
    subject_field: ClassVar[str] = "owner_id"
    sha256: str
    media_type: str
    size: int
    kind: AttachmentKind
    data: str
    text: str | None = None
    pages: int | None = None
    width: int | None = None
    height: int | None = None
    truncated: bool = False
    note: str | None = None
    owner_id: str = ""
    """Who sent the file first (the bytes are stored once: a later sender's copy is
    this one)."""
    platform: str = ""
    message_id: str = ""
    """The message that brought it first: deleting that message shreds it."""

    def seals(self) -> tuple[Seal, ...]:
        """The content under the key of its first message's files."""
        scope = files_scope(self.platform, self.message_id) if self.message_id else ""
        return (Seal(subject=self.subject, fields=self.personal, scope=scope),)
