"""Logging, set up once per process: readable text or JSON lines, secrets redacted.

Redaction happens in a filter on the root handler, so no logger anywhere (ours,
disnake's, openai's, aiohttp's) can print a token or an API key: known secret
values are replaced, and so is anything shaped like a bot token or an OpenAI key.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal, TextIO

REDACTED = "[redacted]"

_SECRET_SHAPES = re.compile(
    r"sk-[A-Za-z0-9_\-]{16,}"                                   # OpenAI-style keys
    r"|[MNO][A-Za-z0-9_\-]{23,27}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,40}"  # Discord bot tokens
    r"|(?i:bearer\s+)[A-Za-z0-9._\-]{12,}"                      # Authorization headers
    # Webhook and interaction tokens in URLs: whoever holds one can post as the bot.
    r"|(?<=/webhooks/)\d+/[A-Za-z0-9_\-.]{20,}"
    r"|(?<=/interactions/)\d+/[A-Za-z0-9_\-.]{20,}"
)


class Redactor:
    """Replaces secret values and secret-shaped text with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def add(self, secrets: Iterable[str]) -> None:
        """Redact these values too (secrets named later, e.g. by persona files' tools)."""
        self._secrets = sorted({*self._secrets, *(s for s in secrets if len(s) >= 4)},
                               key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _SECRET_SHAPES.sub(REDACTED, text)


class _RedactingFilter(logging.Filter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self._redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return text


def setup_logging(
    *,
    level: str = "info",
    fmt: Literal["text", "json"] = "text",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> Redactor:
    """Route every logger to one handler on ``stream`` (stderr) with redaction.

    Calling it again replaces the handler (tests and the CLI both call it).
    Structured fields go in ``extra={"fields": {...}}``. Returns the redactor so
    other outputs (exceptions shown to users) can use the same rules.
    """
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    handler.addFilter(_RedactingFilter(redactor))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_personae", False):
            root.removeHandler(old)
    handler._personae = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Library chatter at INFO (every HTTP request) drowns what matters.
    for noisy in ("httpx", "httpx2", "openai", "disnake.gateway", "disnake.http", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return redactor
