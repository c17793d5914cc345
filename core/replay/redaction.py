"""Redacting an export for a bug report: no user ids, no names, no message text.

User ids (authors, the users in scope keys, whoever reset a conversation) become
stable pseudonyms, ``user-`` and a keyed hash (HMAC-SHA256): the same id gets the
same pseudonym across exports made with the same key, and nobody without the key
can test a guess. The ids are replaced wherever they appear as a whole token:
in data, stream ids (a terminal conversation's stream is named after its user),
event ids and persona files. Display names become pseudonyms too. Every message
text is dropped: what people said, what the model replied (and the parts and previews
it was posted as), and rerun prompts; so are attachments (file names and stored
content), tool arguments and results, and the model's reasoning.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from eventstore import LogReader

from ..events import (
    ConversationReset,
    MessageReceived,
    ModelReplied,
    PersonaTriggered,
    TriggerRejected,
)
from .selection import EVERYTHING, Selection

REDACTED_TEXT = "[redacted]"
_TEXT_FIELDS = frozenset({"text", "reasoning", "filename"})
_CONTENT_FIELDS = {"AttachmentStored": frozenset({"data", "text"}),
                   "ToolCalled": frozenset({"arguments"}),
                   "ToolResult": frozenset({"content"}),
                   "RerunRecorded": frozenset({"tool_steps"})}
"""Fields of personal content, per event type (dropped whole)."""
_NAME_FIELDS = frozenset({"author_name"})
_TOKEN = re.compile(r"[A-Za-z0-9_.\-]+")
_TOKEN_ONLY = re.compile(r"[A-Za-z0-9_.\-]+\Z")


class Redactor:
    """Rewrites export records (see the module docstring). Build it with
    :func:`redactor_for` so that it knows every user id in the log first."""

    def __init__(self, key: bytes, user_ids: set[str], names: set[str]) -> None:
        self._key = key
        self._ids = {i: self._pseudonym("user", i) for i in user_ids}
        self._names = {n: self._pseudonym("name", n) for n in names}
        # ids that are not one token of the pattern are replaced as plain substrings
        self._odd_ids = sorted((i for i in user_ids if not _TOKEN_ONLY.match(i)), key=len,
                               reverse=True)

    def _pseudonym(self, kind: str, value: str) -> str:
        digest = hmac.new(self._key, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()
        return f"{kind}-{digest[:12]}"

    def record(self, record: dict[str, Any]) -> dict[str, Any]:
        """A redacted copy of one export record."""
        redacted = {k: self._string(v) if isinstance(v, str) else v for k, v in record.items()}
        data = record["data"]
        content = _CONTENT_FIELDS.get(str(record.get("type")), frozenset())
        if content and isinstance(data, Mapping):
            data = {k: (REDACTED_TEXT if k in content and v else v) for k, v in data.items()}
        redacted["data"] = self._value(data, None)
        return redacted

    def _value(self, value: Any, key: str | None) -> Any:
        if isinstance(value, str):
            if key in _TEXT_FIELDS:
                return REDACTED_TEXT if value else value
            if key in _NAME_FIELDS:
                return self._names.get(value) or self._pseudonym("name", value)
            return self._string(value)
        if isinstance(value, Mapping):
            if key == "variables" and isinstance(value.get("user"), str):
                value = {**value, "user": self._pseudonym("name", value["user"])}
            return {self._string(str(k)): self._value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            if key == "prompt":
                return [self._prompt_message(m) for m in value]
            if key == "parts":  # a reply's text, as the messages it was posted as
                return [REDACTED_TEXT for _ in value]
            return [self._value(v, None) for v in value]
        return value

    def _prompt_message(self, message: Any) -> Any:
        if not isinstance(message, Mapping):
            return REDACTED_TEXT
        redacted = {**message, "content": REDACTED_TEXT}
        if message.get("name"):
            redacted["name"] = self._pseudonym("name", str(message["name"]))
        return redacted

    def _string(self, text: str) -> str:
        if not self._ids:
            return text
        for odd in self._odd_ids:
            if odd in text:
                text = text.replace(odd, self._ids[odd])
        for name, pseudonym in self._names.items():
            if name in text and not _TOKEN_ONLY.match(name):
                text = text.replace(name, pseudonym)
        return _TOKEN.sub(lambda m: self._ids.get(m.group()) or self._names.get(m.group())
                          or m.group(), text)


def redactor_for(log: LogReader, key: bytes, selection: Selection = EVERYTHING) -> Redactor:
    """A redactor that knows every user id and display name in the events selected."""
    user_ids: set[str] = set()
    names: set[str] = set()
    types = frozenset({MessageReceived.type, ConversationReset.type, PersonaTriggered.type,
                       TriggerRejected.type, ModelReplied.type})
    for event in log.scan(replace(selection, types=types).as_filter()):
        data = event.data
        for field in ("author_id", "by_user"):
            if data.get(field):
                user_ids.add(str(data[field]))
        scope_keys = data.get("scope_keys") or {}
        if scope_keys.get("user"):
            user_ids.add(str(scope_keys["user"]))
        if data.get("author_name") and not data.get("author_is_bot"):
            names.add(str(data["author_name"]))
    # personas answering personas appear as authors "persona:<id>": not people
    user_ids = {i for i in user_ids if not i.startswith("persona:")}
    return Redactor(key, user_ids, names)
