"""Lorebook activation: keys, selective logic, regex, case, whole words, constants,
scan depth, priority, order and the token budget."""

from __future__ import annotations

import pytest

from core.personas.lorebook import activate_entries
from core.personas.model import Lorebook, LoreEntry


def words(text: str) -> int:
    return len(text.split())


def active(entries: list[LoreEntry], texts: list[str], **book) -> list[str]:
    chosen = activate_entries(Lorebook(entries=tuple(entries), **book), texts, words)
    return [e.content for e in chosen]


def test_any_key_activates() -> None:
    entry = LoreEntry("dragons", keys=("wyrm", "dragon"))
    assert active([entry], ["I saw a Dragon"]) == ["dragons"]
    assert active([entry], ["nothing here"]) == []


def test_whole_words_and_substrings() -> None:
    whole = LoreEntry("cat", keys=("cat",))
    part = LoreEntry("cat-part", keys=("cat",), whole_words=False)
    assert active([whole, part], ["concatenate"]) == ["cat-part"]
    assert active([whole, part], ["a cat."]) == ["cat", "cat-part"]


def test_case_sensitivity() -> None:
    entry = LoreEntry("Rome", keys=("Rome",), case_sensitive=True)
    assert active([entry], ["rome"]) == []
    assert active([entry], ["Rome"]) == ["Rome"]


def test_regex_keys() -> None:
    entry = LoreEntry("numbers", keys=(r"\bv\d+\b",), regex=True)
    assert active([entry], ["upgrade to V12 now"]) == ["numbers"]
    assert active([entry], ["version twelve"]) == []


@pytest.mark.parametrize(("logic", "text", "expected"), [
    ("and_any", "tower north", True), ("and_any", "tower", False),
    ("and_all", "tower north ruin", True), ("and_all", "tower north", False),
    ("not_any", "tower", True), ("not_any", "tower ruin", False),
    ("not_all", "tower north", True), ("not_all", "tower north ruin", False),
])
def test_selective_logic(logic: str, text: str, expected: bool) -> None:
    entry = LoreEntry("x", keys=("tower",), secondary_keys=("north", "ruin"),
                      selective_logic=logic)  # type: ignore[arg-type]
    assert (active([entry], [text]) == ["x"]) is expected


def test_constant_and_disabled_entries() -> None:
    entries = [LoreEntry("always", constant=True),
               LoreEntry("off", keys=("x",), enabled=False)]
    assert active(entries, ["x"]) == ["always"]


def test_scan_depth_of_book_and_entry() -> None:
    texts = ["the dragon", "hello", "there"]
    book_entry = LoreEntry("book", keys=("dragon",))
    deep_entry = LoreEntry("deep", keys=("dragon",), scan_depth=3)
    assert active([book_entry, deep_entry], texts, scan_depth=2) == ["deep"]
    assert active([book_entry], texts, scan_depth=3) == ["book"]


def test_keys_do_not_match_across_messages() -> None:
    entry = LoreEntry("x", keys=("red dragon",))
    assert active([entry], ["red", "dragon"]) == []


def test_budget_goes_by_priority_and_result_by_order() -> None:
    entries = [
        LoreEntry("low priority five words here", keys=("k",), priority=0, order=1),
        LoreEntry("high one", keys=("k",), priority=10, order=9),
        LoreEntry("middle three words", keys=("k",), priority=5, order=5),
    ]
    # Budget 6: high (2) and middle (3) fit; low (5) does not.
    assert active(entries, ["k"], token_budget=6) == ["middle three words", "high one"]
    assert active(entries, ["k"], token_budget=100) == [
        "low priority five words here", "middle three words", "high one"]


def test_a_big_entry_is_skipped_and_smaller_ones_still_fit() -> None:
    entries = [LoreEntry("a b c d e f g h", keys=("k",), priority=9),
               LoreEntry("tiny", keys=("k",))]
    assert active(entries, ["k"], token_budget=3) == ["tiny"]


def test_a_hand_built_bad_regex_matches_nothing() -> None:
    assert active([LoreEntry("x", keys=("(",), regex=True)], ["("]) == []
