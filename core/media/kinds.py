"""What kind of file an attachment is: an image the model can see, text to inline, a
PDF to read, or something else (listed, never downloaded).

The platform's declared type and the file name decide whether a file is worth
fetching; the bytes decide what it is: an "image" must really be PNG, JPEG, GIF or
WebP (what vision models take), a PDF must start like one, text must not be binary.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from ..events.media import AttachmentKind

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_TEXT_APPLICATION_TYPES = frozenset({
    "application/json", "application/xml", "application/x-yaml", "application/yaml",
    "application/toml", "application/javascript", "application/x-javascript",
    "application/typescript", "application/x-sh", "application/x-python",
    "application/sql", "application/x-tex", "application/ld+json", "application/csv",
})
TEXT_SUFFIXES = frozenset({
    ".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".log", ".json", ".jsonl", ".yaml",
    ".yml", ".toml", ".ini", ".cfg", ".conf", ".xml", ".html", ".htm", ".css", ".py", ".pyi",
    ".js", ".mjs", ".ts", ".tsx", ".jsx", ".java", ".kt", ".c", ".h", ".cc", ".cpp", ".hpp",
    ".cs", ".go", ".rs", ".rb", ".php", ".pl", ".lua", ".swift", ".scala", ".sh", ".bash",
    ".zsh", ".ps1", ".sql", ".r", ".tex", ".diff", ".patch", ".env.example", ".gitignore",
    ".dockerfile", ".make", ".mk", ".gradle", ".vue", ".svelte", ".ex", ".exs", ".erl",
    ".hs", ".ml", ".clj", ".dart", ".zig", ".nim", ".jl", ".srt", ".vtt",
})
_SUFFIX_IMAGE = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                 ".gif": "image/gif", ".webp": "image/webp"}


def base_type(media_type: str | None) -> str:
    """``text/plain; charset=utf-8`` -> ``text/plain`` (lower case; "" when unknown)."""
    return (media_type or "").split(";", 1)[0].strip().lower()


def expected_kind(filename: str, media_type: str | None) -> AttachmentKind:
    """What a file is worth fetching as, from what the platform says about it."""
    declared = base_type(media_type)
    suffix = PurePosixPath(filename.lower()).suffix
    if declared.startswith("image/") or (not declared and suffix in _SUFFIX_IMAGE):
        return "image"
    if declared == "application/pdf" or suffix == ".pdf":
        return "pdf"
    if declared.startswith("text/") or declared in _TEXT_APPLICATION_TYPES or \
            suffix in TEXT_SUFFIXES or declared.endswith(("+json", "+xml")):
        return "text"
    return "other"


def sniff_image(data: bytes) -> str | None:
    """The media type of image bytes a vision model takes, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def is_pdf(data: bytes) -> bool:
    """True for bytes that start like a PDF (the header may follow a little junk)."""
    return b"%PDF-" in data[:1024]


def looks_binary(data: bytes) -> bool:
    """True when the start of ``data`` holds NUL bytes (no text file does)."""
    return b"\x00" in data[:8192]
