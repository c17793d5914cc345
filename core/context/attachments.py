"""A message's attachments in its prompt turn: images as image parts, text files and
PDFs inlined under a header naming the file, everything else as a one-line note.

What a prompt shows of an attachment depends only on the log (the message's
attachment metadata and the stored content, AttachmentStored) and the persona
(``model.vision``, ``context.max_images``, ``context.max_attachment_text``), so a
rebuilt prompt is the same, byte for byte, whenever it is rebuilt. Images are
chosen newest first: the turn builder passes how many may still be shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..events.media import Attachment, AttachmentStored
from ..gateway.model import ImagePart, Part, TextPart
from ..personas.model import Persona


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedTurn:
    """A turn's content with its attachments, the positions of the stored content it
    used, and how many images it shows."""

    content: str | tuple[Part, ...]
    positions: tuple[int, ...]
    images: int


def render_turn(persona: Persona, text: str, attachments: Sequence[Attachment],
                blobs: Mapping[str, tuple[int, AttachmentStored]], images_left: int
                ) -> RenderedTurn:
    """``text`` with ``attachments`` as the model sees them (see the module docstring)."""
    if not attachments:
        return RenderedTurn(content=text, positions=(), images=0)
    notes: list[str] = []
    images: list[ImagePart] = []
    positions: list[int] = []
    for attachment in attachments:
        if attachment.kind == "image" and attachment.refused is None:
            if not persona.model.vision:
                notes.append(f"[image {attachment.filename} attached: this model cannot "
                             "see images]")
                continue
            if len(images) >= images_left:
                notes.append(f"[image {attachment.filename} not shown: only the newest "
                             f"{persona.context.max_images} images are]")
                continue
        found = blobs.get(attachment.sha256 or "") if attachment.refused is None else None
        if found is None:
            reason = attachment.refused or "its content is not in the log"
            notes.append(f"[{_noun(attachment)} {attachment.filename} not read: {reason}]")
            continue
        position, stored = found
        positions.append(position)
        if stored.kind == "image":
            images.append(ImagePart(
                media_type=stored.media_type, data=stored.data, url=attachment.url,
                filename=attachment.filename, sha256=stored.sha256, width=stored.width,
                height=stored.height))
        else:
            notes.append(_inlined(attachment, stored, persona.context.max_attachment_text))
    body = "\n\n".join([t for t in (text,) if t] + notes)
    if not images:
        return RenderedTurn(content=body, positions=tuple(positions), images=0)
    parts: list[Part] = [TextPart(text=body)] if body else []
    return RenderedTurn(content=(*parts, *images), positions=tuple(positions),
                        images=len(images))


def _noun(attachment: Attachment) -> str:
    return "image" if attachment.kind == "image" else "file"


def _inlined(attachment: Attachment, stored: AttachmentStored, limit: int) -> str:
    name = attachment.filename
    if stored.kind == "pdf":
        pages = f", {stored.pages} page{'s' * (stored.pages != 1)}" if stored.pages else ""
        header = f"[file {name} (PDF{pages})]"
    else:
        header = f"[file {name} ({stored.media_type}, {_size(stored.size)})]"
    text = stored.text or ""
    if stored.note and not text.strip():
        return f"{header} could not be read: {stored.note}"
    shown = text[:limit]
    cut = len(text) - len(shown)
    ending = ""
    if cut > 0:
        ending = f"\n[… {cut} more characters not shown]"
    elif stored.truncated:
        ending = "\n[… the rest of the file was not kept]"
    return f"{header}\n{shown}{ending}\n[end of {name}]"


def _size(count: int) -> str:
    if count >= 1000 * 1000:
        return f"{count / 1e6:.1f} MB"
    if count >= 1000:
        return f"{count / 1e3:.1f} KB"
    return f"{count} bytes"
