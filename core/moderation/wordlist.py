"""The local moderation lists: words and phrases (whole words, any case) and RE2
patterns, by category. Matching takes time linear in the text whatever the lists hold
(:mod:`core.patterns`); a long word list is split into several patterns so each stays
within RE2's memory budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..patterns import Regex, compile_regex, words_regex

WORDS_PER_PATTERN = 200
"""Words compiled into one pattern: a persona's keyword list is held to the same number,
so each pattern fits the budget :func:`core.patterns.words_regex` is given."""


@dataclass(frozen=True, slots=True)
class LocalList:
    """Compiled lists: for each category, the patterns any match of which scores 1.0."""

    categories: Mapping[str, tuple[Regex, ...]]

    @classmethod
    def compile(cls, words: Mapping[str, Sequence[str]],
                patterns: Mapping[str, Sequence[str]]) -> LocalList:
        """The lists config.yaml gives (patterns were checked when it loaded; raises
        :class:`~core.patterns.PatternError` otherwise)."""
        compiled: dict[str, list[Regex]] = {}
        for category, listed in words.items():
            unique = list(dict.fromkeys(w for w in listed if w.strip()))
            for start in range(0, len(unique), WORDS_PER_PATTERN):
                regex = words_regex(tuple(unique[start:start + WORDS_PER_PATTERN]))
                if regex is not None:
                    compiled.setdefault(category, []).append(regex)
        for category, listed in patterns.items():
            compiled.setdefault(category, []).extend(compile_regex(p) for p in listed)
        return cls({category: tuple(found) for category, found in compiled.items()})

    def __bool__(self) -> bool:
        return bool(self.categories)

    def scores(self, text: str) -> dict[str, float]:
        """1.0 for each category with a match in ``text``."""
        return {category: 1.0 for category, regexes in self.categories.items()
                if any(regex.search(text) is not None for regex in regexes)}
