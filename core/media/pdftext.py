"""Reading a PDF's text in a child process, so a hostile file can cost neither the bot's
event loop nor unbounded time or memory: the child has a memory limit, the parent a
deadline after which it kills the child.

Run as ``python -m core.media.pdftext MAX_PAGES MAX_CHARS`` with the PDF on stdin; it
prints one JSON object: ``text`` (pages headed ``[page N]``), ``pages`` (the page
count), ``truncated`` and ``note`` (why nothing could be read).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

MEMORY_LIMIT_BYTES = 1024 * 1024 * 1024
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True, slots=True, kw_only=True)
class PdfText:
    """What was read of a PDF."""

    text: str
    pages: int | None
    truncated: bool = False
    note: str | None = None


async def extract_pdf_text(data: bytes, *, max_pages: int, max_chars: int,
                           timeout_s: float) -> PdfText:
    """The text of the PDF ``data`` (never raises: a problem is a ``note``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")) if p)}
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "core.media.pdftext", str(max_pages), str(max_chars),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env=env)
    except OSError as exc:
        return PdfText(text="", pages=None, note=f"could not start the PDF reader ({exc})")
    try:
        out, _ = await asyncio.wait_for(child.communicate(data), timeout_s)
    except TimeoutError:
        child.kill()
        await child.wait()
        return PdfText(text="", pages=None,
                       note=f"reading the PDF took longer than {timeout_s:g} s")
    try:
        result = json.loads(out)
        return PdfText(text=str(result["text"]), pages=result.get("pages"),
                       truncated=bool(result.get("truncated")), note=result.get("note"))
    except (ValueError, KeyError, TypeError):
        return PdfText(text="", pages=None, note="the PDF could not be read")


def _read(data: bytes, max_pages: int, max_chars: int) -> dict[str, object]:
    import pypdf  # only in the child

    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        return {"text": "", "pages": None, "note": "the PDF is password-protected"}
    pages = len(reader.pages)
    parts: list[str] = []
    size = 0
    truncated = pages > max_pages
    for number in range(min(pages, max_pages)):
        text = (reader.pages[number].extract_text() or "").strip()
        part = f"[page {number + 1}]\n{text}"
        if size + len(part) > max_chars:
            parts.append(part[:max(0, max_chars - size)])
            truncated = True
            break
        parts.append(part)
        size += len(part) + 1
    note = None if any(p.partition("\n")[2] for p in parts) else "the PDF has no text layer"
    return {"text": "\n".join(parts), "pages": pages, "truncated": truncated, "note": note}


def main() -> None:
    """The child: read stdin, print the result (see the module docstring)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    max_pages, max_chars = int(sys.argv[1]), int(sys.argv[2])
    data = sys.stdin.buffer.read()
    try:
        result = _read(data, max_pages, max_chars)
    except MemoryError:
        result = {"text": "", "pages": None, "note": "the PDF needs too much memory to read"}
    except Exception as exc:  # a malformed file: say so, never a traceback
        result = {"text": "", "pages": None,
                  "note": f"the PDF could not be read ({type(exc).__name__})"}
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main()
