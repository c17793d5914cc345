"""Which lorebook entries a conversation activates, within the book's token budget.

An entry is active when it is constant, or when one of its keys appears in the last
``scan_depth`` messages (their newest :data:`SCANNED_CHARS` characters; keys match on
RE2, in time linear in that text) and its secondary keys satisfy its
``selective_logic``:

- ``and_any``: at least one secondary key appears (or there are none)
- ``and_all``: every secondary key appears
- ``not_any``: no secondary key appears
- ``not_all``: at least one secondary key is missing

Active entries claim the budget by priority (highest first; constant entries before
others of the same priority; then by ``order``); an entry that does not fit is left
out and smaller ones may still fit. The chosen entries come back in prompt order:
``order`` ascending, then as written in the book.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from ..patterns import PatternError, Regex, compile_regex, words_regex
from .model import Lorebook, LoreEntry


def activate_entries(
    lorebook: Lorebook,
    recent_texts: Sequence[str],
    estimate_tokens: Callable[[str], int],
) -> tuple[LoreEntry, ...]:
    """The entries of ``lorebook`` that ``recent_texts`` (oldest first) activate, in
    prompt order, together costing at most ``lorebook.token_budget`` tokens."""
    active = [
        (index, entry) for index, entry in enumerate(lorebook.entries)
        if entry.enabled and _is_active(entry, _scanned(recent_texts, entry, lorebook))
    ]
    by_claim = sorted(active, key=lambda item: (-item[1].priority, not item[1].constant,
                                                item[1].order, item[0]))
    remaining = lorebook.token_budget
    chosen: list[tuple[int, LoreEntry]] = []
    for index, entry in by_claim:
        cost = estimate_tokens(entry.content)
        if cost <= remaining:
            chosen.append((index, entry))
            remaining -= cost
    chosen.sort(key=lambda item: (item[1].order, item[0]))
    return tuple(entry for _, entry in chosen)


SCANNED_CHARS = 8_192
"""How much of its scan window an entry's keys are looked for in: the newest 8,192
characters (several long messages), a bound on what one turn costs."""


def _scanned(recent_texts: Sequence[str], entry: LoreEntry, lorebook: Lorebook) -> str:
    depth = entry.scan_depth if entry.scan_depth is not None else lorebook.scan_depth
    # One separator no key can span, so a phrase never matches across two messages.
    return "\n\x00\n".join(recent_texts[-depth:])[-SCANNED_CHARS:] if depth > 0 else ""


def _is_active(entry: LoreEntry, text: str) -> bool:
    if entry.constant:
        return True
    if not any(_matches(key, entry, text) for key in entry.keys):
        return False
    if not entry.secondary_keys:
        return True
    found = [_matches(key, entry, text) for key in entry.secondary_keys]
    match entry.selective_logic:
        case "and_any":
            return any(found)
        case "and_all":
            return all(found)
        case "not_any":
            return not any(found)
        case "not_all":
            return not all(found)
    return False


def _matches(key: str, entry: LoreEntry, text: str) -> bool:
    pattern = _pattern(key, entry.regex, entry.case_sensitive, entry.whole_words)
    return pattern is not None and pattern.search(text) is not None


@lru_cache(maxsize=4096)
def _pattern(key: str, regex: bool, case_sensitive: bool, whole_words: bool) -> Regex | None:
    # The cache keeps per-message matching from recompiling keys. The loader rejects
    # keys RE2 cannot take, but a hand-built Lorebook may hold one: it then matches
    # nothing rather than failing a reply.
    try:
        if regex:
            return compile_regex(key, case_sensitive=case_sensitive)
        return words_regex((key,), case_sensitive=case_sensitive, whole_words=whole_words)
    except PatternError:
        return None
