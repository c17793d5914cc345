"""Patterns from persona files, matched against what people write, in bounded time.

Everything matched against a message (trigger patterns and keywords, lorebook keys,
persona names) goes through RE2, whose matching time grows linearly with the text
whatever the pattern: ``'^(a+)+$'`` against 2,000 ``a``s and a ``!`` takes
microseconds, where Python's ``re`` backtracks for longer than anyone will wait.

RE2 cannot take what needs backtracking (backreferences, lookarounds, possessive
quantifiers, atomic groups, conditionals): :func:`compile_regex` refuses those with
the reason and what to write instead. Each pattern is also held to a size, so that
its cost per character is bounded too (see docs/personas.md for the figures).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import re2

MAX_PATTERN_CHARS = 1_000
"""The longest regular expression a persona may use, in characters."""
MAX_PROGRAM_SIZE = 5_000
"""The most RE2 instructions one regular expression may compile to. Matching costs at
worst a few nanoseconds per instruction per character."""
MAX_PERSONA_PROGRAM = 10_000
"""The most RE2 instructions all of one persona's regular expressions (trigger patterns
and regex lorebook keys) may compile to together."""
MAX_MEMORY = 1 << 20
"""RE2's memory budget per pattern (its compiled program and matching cache), bytes."""
WORDS_MEMORY = 8 << 20
"""The budget of a word list: the longest one a persona may have (200 keywords of 200
characters, in any script, ignoring case) needs about 5 MiB, so a word list of a
valid persona always compiles."""

# Not what Python's \w means in text (letters, digits, underscore, in any script):
# RE2's \w is ASCII only, so word boundaries are spelt with Unicode classes.
_NOT_WORD = r"[^\pL\pN_]"
SPACELESS_SCRIPTS = ("Han", "Hiragana", "Katakana", "Bopomofo", "Hangul", "Thai", "Lao",
                     "Khmer", "Myanmar", "Tibetan")
"""Scripts written without spaces between words (Chinese, Japanese, Thai...): a word in
them has no boundary to find, so whole-word matching treats each of their letters as a
boundary, as SillyTavern's (and a reader's) does: ``村庄`` is found in
``我走进村庄看看教堂``, and ``Ada`` in ``我和Ada说话``. Korean spaces its words but
attaches particles to them (``서울에서``), so it is among them too."""
_SPACELESS_CLASS = "[" + "".join(rf"\p{{{script}}}" for script in SPACELESS_SCRIPTS) + "]"
_BOUNDARY = f"(?:{_NOT_WORD}|{_SPACELESS_CLASS})"
_SPACELESS_CHAR = re.compile(
    "[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u3040-\u30ff"
    "\u3100-\u312f\u3130-\u318f\u31a0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f"
    "\uac00-\ud7ff\uf900-\ufaff\uff66-\uffdc\U00020000-\U0003134f]")


class PatternError(ValueError):
    """A pattern that cannot be used: ``str()`` says why and what to write instead."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Regex:
    """A compiled pattern. :meth:`search` and :meth:`match` take time linear in the text."""

    pattern: str
    case_sensitive: bool = False
    program_size: int = field(default=0, compare=False)
    """RE2 instructions: what one character of text costs to match, at worst."""
    _compiled: Any = field(default=None, compare=False, repr=False)

    @property
    def flags(self) -> int:
        """The ``re`` flags this pattern behaves as (``re.IGNORECASE`` or 0)."""
        return 0 if self.case_sensitive else re.IGNORECASE

    def search(self, text: str) -> Any:
        """A match anywhere in ``text``, or None."""
        return self._compiled.search(text)

    def match(self, text: str) -> Any:
        """A match at the start of ``text``, or None."""
        return self._compiled.match(text)


def compile_regex(pattern: str, *, case_sensitive: bool = False) -> Regex:
    """``pattern`` (a persona author's regular expression) compiled for RE2.

    Raises :class:`PatternError` saying why it cannot be used: RE2 cannot take it
    (and what to write instead), it is not a regular expression at all, or it is
    too large."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"is {len(pattern):,} characters long; a pattern may have at most "
                           f"{MAX_PATTERN_CHARS:,}")
    return _compiled(pattern, case_sensitive, literal=False)


@lru_cache(maxsize=4096)
def _compiled(pattern: str, case_sensitive: bool, *, literal: bool) -> Regex:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern on stderr
    options.never_capture = True  # only "does it match" is ever asked: faster, smaller
    options.case_sensitive = case_sensitive
    options.max_mem = WORDS_MEMORY if literal else MAX_MEMORY
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as exc:
        raise PatternError(_explain(pattern, _text(exc))) from None
    if not literal and compiled.programsize > MAX_PROGRAM_SIZE:
        raise PatternError(
            f"compiles to {compiled.programsize:,} RE2 instructions, more than the "
            f"{MAX_PROGRAM_SIZE:,} a pattern may use (large counted repetitions such as "
            "{500} and big character classes cost the most): simplify it or split it")
    return Regex(pattern=pattern, case_sensitive=case_sensitive,
                 program_size=compiled.programsize, _compiled=compiled)


@lru_cache(maxsize=4096)
def words_regex(words: tuple[str, ...], *, case_sensitive: bool = False,
                whole_words: bool = True, prefix: str = "") -> Regex | None:
    """One pattern matching any of ``words`` as written (no pattern syntax), or None
    when there are none. ``whole_words``: not inside a longer word (a word may start
    or end with punctuation: ``ada,``); ``prefix``, such as ``@``, comes first."""
    unique = [word for word in dict.fromkeys(words) if word]
    if not unique:
        return None
    # Words are grouped by the boundaries they need: none at an edge written in a
    # script without spaces (see SPACELESS_SCRIPTS). Consuming a neighbour rather than
    # looking around it (RE2 has no lookarounds) finds the same messages: only whether
    # there is a match is ever asked.
    groups: dict[tuple[bool, bool], list[str]] = {}
    for word in unique:
        edges = ((not prefix and whole_words and not is_spaceless(word[0])),
                 whole_words and not is_spaceless(word[-1]))
        groups.setdefault(edges, []).append(re2.escape(word))
    branches = []
    for (start, end), escaped in sorted(groups.items()):
        branches.append((f"(?:^|{_BOUNDARY})" if start else "") + f"(?:{'|'.join(escaped)})"
                        + (f"(?:{_BOUNDARY}|$)" if end else ""))
    body = branches[0] if len(branches) == 1 else "|".join(f"(?:{b})" for b in branches)
    head = re2.escape(prefix) if prefix else ""
    pattern = f"{head}(?:{body})" if head else body
    return _compiled(pattern, case_sensitive, literal=True)


def is_spaceless(character: str) -> bool:
    """Whether ``character`` is a letter of a script written without spaces between
    words (see :data:`SPACELESS_SCRIPTS`)."""
    return _SPACELESS_CHAR.match(character) is not None


def _text(exc: re2.error) -> str:
    message = exc.args[0] if exc.args else ""
    return message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)


_ADVICE = (
    ("invalid perl operator: (?=", "a lookahead (?=...)",
     "match the text that follows as part of the pattern instead"),
    ("invalid perl operator: (?!", "a negative lookahead (?!...)",
     "for a word boundary use \\b (or a whole-word keyword); otherwise match what may follow "
     "explicitly, e.g. [^x] instead of (?!x)"),
    ("invalid perl operator: (?<=", "a lookbehind (?<=...)",
     "match the text before as part of the pattern instead"),
    ("invalid perl operator: (?<!", "a negative lookbehind (?<!...)",
     "for a word boundary use \\b (or a whole-word keyword); otherwise match what may come "
     "before explicitly"),
    ("invalid perl operator: (?>", "an atomic group (?>...)",
     "write the group without ?>: RE2 never backtracks, so it is not needed"),
    ("invalid perl operator: (?(", "a conditional (?(...)...)",
     "write the alternatives out with |"),
    ("bad repetition operator: *+", "a possessive quantifier *+",
     "drop the +: RE2 never backtracks, so it is not needed"),
    ("bad repetition operator: ++", "a possessive quantifier ++",
     "drop the second +: RE2 never backtracks, so it is not needed"),
    ("bad repetition operator: ?+", "a possessive quantifier ?+",
     "drop the +: RE2 never backtracks, so it is not needed"),
    ("invalid escape sequence: \\Z", "\\Z", "write \\z (end of text) instead"),
    ("invalid repetition size", "a counted repetition over 1000",
     "RE2 counts repetitions up to 1000 (nested ones multiply): use + or * or a smaller count"),
    ("pattern too large", "a pattern too large for RE2's memory budget",
     "simplify it or split it"),
)


def _explain(pattern: str, reason: str) -> str:
    for prefix, what, advice in _ADVICE:
        if reason.startswith(prefix):
            return (f"uses {what}, which RE2 (the linear-time engine personae matches "
                    f"patterns with) does not support: {advice}")
    if reason.startswith("invalid perl operator: (?P") and "(?P=" in pattern:
        return ("uses a backreference (?P=name), which RE2 (the linear-time engine personae "
                "matches patterns with) does not support: repeat the group's pattern instead, "
                "e.g. (ab)(ab) for (?P<x>ab)(?P=x)")
    if re.match(r"invalid escape sequence: \\[1-9]", reason):
        return ("uses a backreference (\\1 ...), which RE2 (the linear-time engine personae "
                "matches patterns with) does not support: repeat the group's pattern instead")
    python = _python_error(pattern)
    if python is not None:  # a plain syntax error: Python's explanation says where
        return f"is not a valid regular expression: {python}"
    return (f"is not a regular expression RE2 (the linear-time engine personae matches "
            f"patterns with) can take: {reason}")


def _python_error(pattern: str) -> str | None:
    # Compiling never matches anything, so it is safe with any pattern.
    try:
        re.compile(pattern)
    except re.error as exc:
        where = f" at position {exc.pos + 1}" if exc.pos is not None else ""
        return f"{exc.msg}{where}"
    except (RecursionError, OverflowError, ValueError) as exc:
        return str(exc)
    return None
