"""Keeping a model's reasoning out of the text users see.

Reasoning arrives two ways: ``<think>...</think>`` inside the content (DeepSeek-R1,
Qwen and most local servers), possibly split anywhere across stream chunks, or a
separate delta field (``reasoning_content`` / ``reasoning``). :class:`ReasoningFilter`
takes both, streaming, and returns the visible part of each piece.
"""

from __future__ import annotations

_OPEN = "<think>"
_CLOSE = "</think>"


def _partial_tag_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


class ReasoningFilter:
    """Splits streamed pieces into visible text and reasoning.

    With ``show`` the reasoning stays visible: content passes unchanged, and a
    reasoning field is shown wrapped in ``<think>`` tags so both sources look alike.
    Hidden reasoning is collected in :attr:`reasoning`; the visible reply's leading
    whitespace (what usually follows ``</think>``) is dropped.
    """

    def __init__(self, show: bool = False) -> None:
        self._show = show
        self._thinking = False
        self._field_open = False
        self._held = ""
        self._started = False
        self.reasoning = ""

    def content(self, piece: str) -> str:
        """Visible text from a content piece (may hold back a possible partial tag)."""
        if self._show:
            return self._close_field() + piece
        if not self._thinking and not self._held and "<" not in piece:
            return self._visible(piece)
        text = self._held + piece
        self._held = ""
        visible: list[str] = []
        while text:
            tag = _CLOSE if self._thinking else _OPEN
            index = text.find(tag)
            if index >= 0:
                self._route(text[:index], visible)
                text = text[index + len(tag):]
                self._thinking = not self._thinking
                continue
            keep = _partial_tag_suffix(text, tag)
            self._route(text[:len(text) - keep], visible)
            self._held = text[len(text) - keep:]
            break
        return "".join(visible)

    def reasoning_field(self, piece: str) -> str:
        """Visible text from a reasoning delta field: nothing, unless shown."""
        self.reasoning += piece
        if not self._show:
            return ""
        opening = "" if self._field_open else _OPEN
        self._field_open = True
        return opening + piece

    def finish(self) -> str:
        """Visible text still held back when the stream ends."""
        if self._show:
            return self._close_field()
        held, self._held = self._held, ""
        if self._thinking:
            self.reasoning += held
            return ""
        return self._visible(held)

    def _close_field(self) -> str:
        if not self._field_open:
            return ""
        self._field_open = False
        return _CLOSE + "\n\n"

    def _route(self, text: str, visible: list[str]) -> None:
        if self._thinking:
            self.reasoning += text
        else:
            visible.append(self._visible(text))

    def _visible(self, text: str) -> str:
        if not self._started:
            text = text.lstrip()
            self._started = bool(text)
        return text
