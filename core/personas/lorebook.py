"""Which lorebook entries a conversation activates, within the book's token budget.

Follows SillyTavern's world-info semantics where cards rely on them:

- **Activation.** An entry is active when it is constant, when it is sticky and was
  inserted few enough messages ago, or when one of its keys appears in the last
  ``scan_depth`` messages (their newest :data:`SCANNED_CHARS` characters; keys match on
  RE2, in time linear in that text) and its secondary keys satisfy its
  ``selective_logic``: ``and_any`` (at least one appears, or there are none),
  ``and_all`` (every one), ``not_any`` (none), ``not_all`` (at least one is missing).
  Whole-word keys need no boundary on an edge written in a script without spaces
  (see :data:`core.patterns.SPACELESS_SCRIPTS`).
- **Probability.** An activated entry is inserted with ``probability`` percent chance,
  drawn from the prompt's recorded seed (so a rebuilt prompt draws the same).
- **Cooldown.** For ``cooldown`` messages after its sticky spell (or after it was
  inserted, when it is not sticky) an entry cannot activate.
- **Budget.** Active entries claim the budget (``token_budget`` tokens, or
  ``context_share`` of the context) by ``priority`` (highest first), constant entries
  before others, then by ``order`` (highest first, as SillyTavern does); one that
  does not fit is cut and smaller ones may still fit.
- **Recursion.** With ``recursive: true`` the content of inserted entries is scanned
  too, for at most :data:`MAX_RECURSION_STEPS` further rounds; entries activated that
  way claim the budget after those activated by the conversation. ``exclude_recursion``
  entries are never activated by another entry, ``prevent_recursion`` entries activate
  none, ``delay_until_recursion`` entries only by another entry.

The result says what happened to every entry that activated (inserted, cut by the
budget, or blocked, and why) for ``personae explain``; the inserted entries come in
prompt order: ``order`` ascending, then as written in the book.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from ..patterns import PatternError, Regex, compile_regex, words_regex
from .model import Lorebook, LoreEntry

SCANNED_CHARS = 8_192
"""How much of its scan window an entry's keys are looked for in: the newest 8,192
characters (several long messages), a bound on what one turn costs."""
MAX_RECURSION_STEPS = 3
"""Rounds of entries activated by other entries' content, at most (each scans at most
:data:`SCANNED_CHARS` characters of the content inserted in the round before)."""

Status = Literal["inserted", "cut", "blocked"]
_SEPARATOR = "\n\x00\n"  # no key can span it, so a phrase never matches across two texts


@dataclass(frozen=True, slots=True, kw_only=True)
class LoreOutcome:
    """What happened to one entry that activated (or nearly did), and why."""

    index: int
    """Its place in the book's entries."""
    entry: LoreEntry
    status: Status
    reason: str
    tokens: int = 0
    text: str = ""
    """The content as inserted (rendered)."""
    step: int = 0
    """0: activated by the conversation; n: by entries inserted in round n - 1."""
    carried: bool = False
    """Inserted because it is sticky (its stickiness counts from when it activated)."""

    @property
    def label(self) -> str:
        """How people know the entry: its name, else its first key, else its number."""
        return self.entry.name or (self.entry.keys[0] if self.entry.keys else
                                   f"entry {self.index + 1}")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoreScan:
    """The entries a conversation activates, and the budget they shared."""

    outcomes: tuple[LoreOutcome, ...] = ()
    budget: int = 0

    @property
    def inserted(self) -> tuple[LoreOutcome, ...]:
        """The inserted entries, in prompt order."""
        chosen = [o for o in self.outcomes if o.status == "inserted"]
        return tuple(sorted(chosen, key=lambda o: (o.entry.order, o.index)))

    @property
    def spent(self) -> int:
        """Tokens the inserted entries cost."""
        return sum(o.tokens for o in self.outcomes if o.status == "inserted")


def entry_digest(entry: LoreEntry) -> str:
    """A stable name for an entry across persona versions: its content's hash (the
    log records which entries a reply inserted by it, for sticky and cooldown)."""
    return hashlib.sha256(entry.content.encode("utf-8")).hexdigest()[:12]


def scan_lorebook(
    lorebook: Lorebook,
    recent_texts: Sequence[str],
    estimate_tokens: Callable[[str], int],
    *,
    context_tokens: int = 3000,
    render: Callable[[int, str], str] | None = None,
    seed: str = "",
    since: Mapping[str, int] | None = None,
) -> LoreScan:
    """Which entries of ``lorebook`` ``recent_texts`` (oldest first, the message being
    answered last) activate (see the module docstring).

    ``render`` turns an entry's content (by index) into the text inserted; ``seed``
    draws the probabilities; ``since`` tells, by :func:`entry_digest`, how many
    messages ago each entry was last inserted (for sticky and cooldown)."""
    render = render or (lambda _index, text: text)
    since = since or {}
    budget = lorebook.budget(context_tokens)
    scan = _Scan(lorebook, budget, estimate_tokens, render, seed)
    windows: dict[int, str] = {}
    pending: list[tuple[int, str]] = []
    carried: set[int] = set()
    for index, entry in enumerate(lorebook.entries):
        if not entry.enabled:
            continue
        ago = since.get(entry_digest(entry))
        if entry.sticky and ago is not None and ago < entry.sticky:
            pending.append((index, f"sticky: activated {_messages(ago)} ago, sticks for "
                                   f"{_messages(entry.sticky)}"))
            carried.add(index)
            continue
        if entry.delay_until_recursion and not entry.constant:
            continue
        depth = entry.scan_depth if entry.scan_depth is not None else lorebook.scan_depth
        if depth not in windows:
            windows[depth] = _window(recent_texts, depth)
        found = _activation(entry, windows[depth])
        if found is None:
            continue
        reason, blocked = found
        if blocked:
            scan.block(index, reason)
        elif entry.cooldown and ago is not None and ago < entry.sticky + entry.cooldown:
            scan.block(index, f"{reason}, but it is cooling down: inserted "
                              f"{_messages(ago)} ago, cooldown {_messages(entry.cooldown)}")
        else:
            pending.append((index, _located(reason, entry, recent_texts, depth)))
    newly = scan.claim(pending, step=0, carried=carried)
    step = 1
    while lorebook.recursive and newly and step <= MAX_RECURSION_STEPS:
        sources = [o for o in newly if not o.entry.prevent_recursion]
        text = _SEPARATOR.join(o.text for o in sources)[-SCANNED_CHARS:]
        pending = []
        for index, entry in enumerate(lorebook.entries):
            if (index in scan.decided or not entry.enabled or entry.constant
                    or entry.exclude_recursion or not sources):
                continue
            found = _activation(entry, text)
            if found is None or found[1]:
                continue
            ago = since.get(entry_digest(entry))
            if entry.cooldown and ago is not None and ago < entry.sticky + entry.cooldown:
                scan.block(index, f"{found[0]} of an inserted entry, but it is cooling down")
                continue
            by = next((o.label for o in sources if _activation(entry, o.text)), "")
            pending.append((index, f"recursion: {found[0]} in the entry {by!r}"))
        newly = scan.claim(pending, step=step)
        step += 1
    return LoreScan(outcomes=tuple(sorted(scan.outcomes.values(), key=lambda o: o.index)),
                    budget=budget)


def activate_entries(
    lorebook: Lorebook,
    recent_texts: Sequence[str],
    estimate_tokens: Callable[[str], int],
    *,
    context_tokens: int = 3000,
) -> tuple[LoreEntry, ...]:
    """The entries of ``lorebook`` that ``recent_texts`` (oldest first) insert, in
    prompt order, within the budget (see :func:`scan_lorebook`)."""
    scan = scan_lorebook(lorebook, recent_texts, estimate_tokens, context_tokens=context_tokens)
    return tuple(o.entry for o in scan.inserted)


class _Scan:
    """The outcomes so far, and the budget left."""

    def __init__(self, lorebook: Lorebook, budget: int, estimate: Callable[[str], int],
                 render: Callable[[int, str], str], seed: str) -> None:
        self.lorebook = lorebook
        self.remaining = budget
        self.budget = budget
        self.estimate = estimate
        self.render = render
        self.seed = seed
        self.outcomes: dict[int, LoreOutcome] = {}

    @property
    def decided(self) -> Mapping[int, LoreOutcome]:
        return self.outcomes

    def block(self, index: int, reason: str) -> None:
        if index not in self.outcomes:
            self.outcomes[index] = LoreOutcome(index=index, entry=self.lorebook.entries[index],
                                               status="blocked", reason=reason)

    def claim(self, pending: Sequence[tuple[int, str]], *, step: int,
              carried: Collection[int] = ()) -> list[LoreOutcome]:
        """Let ``pending`` (index, reason) claim the budget; returns those inserted
        (``carried``: those there because they are sticky)."""
        entries = self.lorebook.entries
        ordered = sorted(pending, key=lambda item: (
            -entries[item[0]].priority, not entries[item[0]].constant, -entries[item[0]].order,
            item[0]))
        inserted = []
        for index, reason in ordered:
            entry = entries[index]
            if entry.probability < 100 and index not in carried:
                roll = random.Random(f"{self.seed}/lore/{entry_digest(entry)}").random() * 100
                if roll >= entry.probability:
                    self.block(index, f"{reason}, but the {entry.probability}% chance missed "
                                      f"(rolled {roll:.0f})")
                    continue
            text = self.render(index, entry.content)
            cost = self.estimate(text)
            if cost > self.remaining:
                self.outcomes[index] = LoreOutcome(
                    index=index, entry=entry, status="cut", tokens=cost, text=text, step=step,
                    reason=f"{reason}; cut by the budget: needs {cost:,} tokens, "
                           f"{self.remaining:,} of {self.budget:,} left")
                continue
            self.remaining -= cost
            outcome = LoreOutcome(index=index, entry=entry, status="inserted", reason=reason,
                                  tokens=cost, text=text, step=step, carried=index in carried)
            self.outcomes[index] = outcome
            inserted.append(outcome)
        return inserted


def _messages(count: int) -> str:
    return f"{count} message{'s' if count != 1 else ''}"


def _window(recent_texts: Sequence[str], depth: int) -> str:
    return _SEPARATOR.join(recent_texts[-depth:])[-SCANNED_CHARS:] if depth > 0 else ""


def _activation(entry: LoreEntry, text: str) -> tuple[str, bool] | None:
    """(why, blocked) when ``entry`` activates on ``text`` (blocked: its key matched but
    its secondary keys say no), None when it does not."""
    if entry.constant:
        return "constant", False
    key = next((k for k in entry.keys if _matches(k, entry, text)), None)
    if key is None:
        return None
    reason = f"key {key!r}"
    if not entry.secondary_keys:
        return reason, False
    found = [k for k in entry.secondary_keys if _matches(k, entry, text)]
    logic = entry.selective_logic
    ok = {"and_any": bool(found), "and_all": len(found) == len(entry.secondary_keys),
          "not_any": not found, "not_all": len(found) < len(entry.secondary_keys)}[logic]
    secondary = ", ".join(repr(k) for k in entry.secondary_keys)
    if ok:
        if found and logic in ("and_any", "and_all"):
            return f"{reason} with {', '.join(repr(k) for k in found)}", False
        return f"{reason} ({logic.replace('_', ' ')} of {secondary})", False
    return f"key {key!r} matched, but {logic.replace('_', ' ')} of {secondary} did not hold", True


def _located(reason: str, entry: LoreEntry, texts: Sequence[str], depth: int) -> str:
    """``reason`` saying which message the key was in (searched once, for entries that
    activated only)."""
    if entry.constant or not entry.keys:
        return reason
    window = list(texts[-depth:]) if depth > 0 else []
    for back, text in enumerate(reversed(window)):
        if any(_matches(k, entry, text[-SCANNED_CHARS:]) for k in entry.keys):
            where = ("in the message answered" if back == 0 else
                     f"{_messages(back)} before the message answered")
            return f"{reason} {where}"
    return reason


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
