"""Splitting a reply into Discord messages of at most 2000 characters.

Cuts fall on the last paragraph break that fits, else the last line break, else the
end of a sentence, else a space, and only as a last resort inside a word. A code
block cut in two is closed at the end of one part and reopened (same language tag)
at the start of the next, so every part renders on its own.
"""

from __future__ import annotations

import re

DISCORD_MESSAGE_LIMIT = 2000

# A fence line short enough to repeat in every part: a longer run of backticks or
# info string (a hostile "code-fence bomb") is text, else each part would have to
# reopen it and the reply would become thousands of one-character messages.
_FENCE = re.compile(r"^[ \t]*(`{3,16}(?!`)|~{3,16}(?!~))([^\n`]{0,60})$", re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?…][)\]\"'»”]*\s")


def split_message(text: str, limit: int = DISCORD_MESSAGE_LIMIT) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, code fences balanced in each."""
    if limit < 40:
        raise ValueError("a message limit below 40 characters leaves no room for code fences")
    text = text.strip("\n")
    parts: list[str] = []
    opener = ""  # the fence line reopening a code block cut at the previous part's end
    while text:
        prefix = f"{opener}\n" if opener else ""
        if len(prefix) + len(text) <= limit and _open_fence(prefix + text) is None:
            parts.append(prefix + text)
            break
        budget = limit - len(prefix)
        cut = _cut(text, budget - _closing_room(opener, text[:budget]))
        piece = text[:cut].rstrip()
        still_open = _open_fence(prefix + piece)
        if still_open is not None:
            # leave room for the closing fence: recut when it does not fit
            closing = "\n" + still_open[0]
            if len(prefix) + len(piece) + len(closing) > limit:
                cut = _cut(text, budget - len(closing))
                piece = text[:cut].rstrip()
                still_open = _open_fence(prefix + piece)
                closing = "\n" + still_open[0] if still_open else ""
            parts.append(prefix + piece + closing)
            opener = still_open[0] + still_open[1] if still_open else ""
        else:
            parts.append(prefix + piece)
            opener = ""
        text = text[cut:].lstrip("\n")
    return [p for p in parts if p.strip()]


def _open_fence(text: str) -> tuple[str, str] | None:
    """The (fence, info) of a code block left open at the end of ``text``, or None."""
    current: tuple[str, str] | None = None
    for match in _FENCE.finditer(text):
        fence, info = match.group(1), match.group(2).strip()
        if current is None:
            current = (fence, info)
        elif fence.startswith(current[0][0]) and len(fence) >= len(current[0]) and not info:
            current = None
    return current


def _closing_room(opener: str, window: str) -> int:
    """Room to keep free for a closing fence when the window ends inside a code block."""
    state = _open_fence((opener + "\n" if opener else "") + window)
    return len(state[0]) + 1 if state else 0


def _cut(text: str, budget: int) -> int:
    """Where to end a part of at most ``budget`` characters, on the best boundary."""
    budget = max(budget, 1)
    if len(text) <= budget:
        return len(text)
    window = text[:budget]
    floor = budget // 4  # a boundary too early wastes most of the part
    for boundary in ("\n\n", "\n"):
        at = window.rfind(boundary)
        if at > floor:
            return at + len(boundary)
    ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() > floor]
    if ends:
        return ends[-1]
    at = window.rfind(" ")
    if at > floor:
        return at + 1
    return budget
