"""Splitting replies at 2000 characters: limits, boundaries and balanced code fences."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from core.adapters.discord.chunking import split_message

FENCE_LINE = re.compile(r"^[ \t]*```[^\n`]*$", re.MULTILINE)

prose = st.lists(st.sampled_from(["word", "longer-word", "end.", "why?", "x" * 50]),
                 min_size=1, max_size=400).map(" ".join)
code = st.tuples(st.sampled_from(["", "python", "js"]),
                 st.lists(st.sampled_from(["    x = 1", "print(x)", "", "  # note"]),
                          min_size=1, max_size=300)
                 ).map(lambda t: f"```{t[0]}\n" + "\n".join(t[1]) + "\n```")
unbroken = st.integers(1, 4500).map(lambda n: "y" * n)
documents = st.lists(st.one_of(prose, code, unbroken), min_size=1, max_size=8).map("\n\n".join)


def balanced(part: str) -> bool:
    return len(FENCE_LINE.findall(part)) % 2 == 0


def words(text: str) -> str:
    return re.sub(r"\s+", "", FENCE_LINE.sub("", text))


@settings(max_examples=150, deadline=None)
@given(documents, st.sampled_from([2000, 500, 120]))
def test_parts_fit_keep_fences_balanced_and_lose_nothing(text: str, limit: int) -> None:
    parts = split_message(text, limit)
    assert all(0 < len(p) <= limit for p in parts)
    assert all(balanced(p) for p in parts)
    assert words("\n".join(parts)) == words(text)


def test_cuts_prefer_paragraphs_then_sentences() -> None:
    first = "A first paragraph that ends here." * 20
    second = "Then another one. It has sentences! Many of them? " * 30
    parts = split_message(f"{first}\n\n{second}")
    assert parts[0] == first
    assert all(p.rstrip().endswith((".", "!", "?")) for p in parts)


def test_a_cut_code_block_is_reopened_with_its_language() -> None:
    body = "\n".join(f"value_{i} = {i}" for i in range(400))
    parts = split_message(f"```python\n{body}\n```")
    assert len(parts) >= 2
    assert all(p.startswith("```python\n") and p.endswith("\n```") for p in parts)


def test_short_text_is_one_part_unchanged() -> None:
    assert split_message("hello **world**") == ["hello **world**"]
    assert split_message("") == []
