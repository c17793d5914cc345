"""Warnings about personas that load but will not do what their author expects (``personae
personas validate`` prints them; they never keep a persona from serving)."""

from __future__ import annotations

from collections.abc import Callable

from ..problems import Problem
from ..yamldoc import load_yaml
from .loader import PERSONA_LIMITS
from .model import Persona


def budget_warnings(persona: Persona, estimate_tokens: Callable[[str], int]) -> list[Problem]:
    """A warning for each enabled lorebook entry too big for the book's token budget:
    it could never be inserted."""
    book = persona.lorebook
    budget = book.budget(persona.context.max_tokens)
    too_big = [(i, entry, estimate_tokens(entry.content)) for i, entry in enumerate(book.entries)
               if entry.enabled]
    too_big = [item for item in too_big if item[2] > budget]
    if not too_big:
        return []
    file = str(persona.source_path) if persona.source_path else f"<{persona.id}>"
    document = load_yaml(persona.source_text, file, PERSONA_LIMITS)
    written = document.data.get("lorebook") if isinstance(document.data, dict) else None
    base: tuple[str | int, ...] = ("lorebook",) if isinstance(written, list) else (
        "lorebook", "entries")
    own = len(written if isinstance(written, list) else
              (written or {}).get("entries", []) if isinstance(written, dict) else [])
    how = (f"{book.token_budget:,} tokens" if book.token_budget is not None else
           f"{budget:,} tokens: {book.context_share:.0%} of context.max_tokens "
           f"{persona.context.max_tokens:,}")
    warnings = []
    for index, entry, cost in too_big:
        label = f"the entry {entry.name!r}" if entry.name else "this entry"
        path: tuple[str | int, ...] = (*base, index) if index < own else ("lorebook", "include")
        if index >= own:
            label = f"the included entry {entry.name or entry.keys[:1]!r}"
        warnings.append(document.problem(path, (
            f"{label} is about {cost:,} tokens, more than the lorebook's budget ({how}), so "
            "it is never inserted: raise lorebook.token_budget or context.max_tokens, or "
            "shorten it")))
    return warnings
