"""Patterns from persona files run in linear time (RE2), on bounded text: a hostile
message cannot stall the bot, and a pattern RE2 cannot take is refused where it is
written, saying why and what to write instead."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.adapters.discord.inbound import addressed_personas
from core.dispatcher.messages import Author, InboundMessage
from core.dispatcher.triggers import TriggerEvaluator
from core.personas.loader import load_persona_file, load_persona_text
from core.personas.lorebook import activate_entries
from core.personas.model import Lorebook, LoreEntry
from core.problems import ProblemsError

from .conftest import PROVIDERS, dedent

# core.patterns and the scan bounds are imported where used, so that the behaviour
# tests also run (and fail) on the code before them.
HOSTILE = "a" * 1999 + "!"  # 2,000 characters: '^(a+)+$' backtracks 2**1999 times in re

BASE = dedent("""
    id: ada
    name: Ada
    model: {provider: openai, name: m}
    prompt:
      system: You are {persona}.
""")


def message(text: str) -> InboundMessage:
    return InboundMessage(platform="test", message_id="m1", channel_id="c1",
                          author=Author(id="u1", display_name="U1"), text=text,
                          guild_id="g1")


def persona(extra: str):
    return load_persona_text(BASE + extra, file="ada.yaml", defaults={},
                             known_providers=PROVIDERS)


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def test_a_catastrophic_trigger_pattern_meets_a_hostile_message_in_milliseconds() -> None:
    ada = persona("triggers: {patterns: ['^(a+)+$']}\n")
    evaluator = TriggerEvaluator()
    matches, elapsed = timed(evaluator.evaluate, message(HOSTILE), [ada])
    assert matches == () and elapsed < 0.5  # a safety bound: it takes microseconds
    [match] = evaluator.evaluate(message("a" * 2000), [ada])
    assert match.reason == "pattern"


def test_a_catastrophic_lorebook_key_is_rescanned_in_milliseconds() -> None:
    ada = persona(dedent("""
        lorebook:
          scan_depth: 4
          entries:
            - {keys: ['^(a+)+$'], regex: true, content: never}
            - {keys: ['(x+x+)+y'], regex: true, secondary_keys: ['(a|aa)+$'], content: never}
            - {keys: [hello], content: greeting}
    """))
    # the hostile message stays in the scan window for the next turns
    recent = [HOSTILE, HOSTILE, "x" * 2000, "hello"]
    chosen, elapsed = timed(activate_entries, ada.lorebook, recent, lambda text: 1)
    assert [e.content for e in chosen] == ["greeting"] and elapsed < 0.5
    entry = ada.lorebook.entries[0]
    assert [e.content for e in activate_entries(Lorebook((entry,)), ["aaaa"], len)] == ["never"]


@pytest.mark.parametrize(("pattern", "what", "advice"), [
    (r"(a)\1", "backreference", "repeat the group's pattern"),
    (r"(?P<x>a)(?P=x)", "backreference (?P=name)", "repeat the group's pattern"),
    (r"foo(?=bar)", "lookahead", "match the text that follows"),
    (r"foo(?!bar)", "negative lookahead", "word boundary use \\b"),
    (r"(?<=@)ada", "lookbehind", "match the text before"),
    (r"(?<!x)ada", "negative lookbehind", "word boundary use \\b"),
    (r"a*+b", "possessive quantifier *+", "drop the +"),
    (r"(?>ab|a)c", "atomic group", "not needed"),
    (r"(a)?(?(1)b|c)", "conditional", "alternatives out with |"),
    (r"end\Z", "\\Z", "write \\z"),
    ("a{1001}", "counted repetition over 1000", "smaller count"),
])
def test_patterns_re2_cannot_take_are_refused_with_the_reason_where_written(
        tmp_path: Path, pattern: str, what: str, advice: str) -> None:
    quoted = pattern.replace("'", "''")
    text = BASE + dedent(f"""
        triggers:
          patterns: ['^ok', '{quoted}']
        lorebook:
          - keys: [plain, '{quoted}']
            regex: true
            content: lore
    """)
    path = tmp_path / "ada.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProblemsError) as caught:
        load_persona_file(path, defaults={}, known_providers=PROVIDERS)
    trigger, key = caught.value.problems
    assert (trigger.file, trigger.field) == (str(path), "triggers.patterns[1]")
    assert (key.file, key.field) == (str(path), "lorebook[0].keys[1]")
    for problem, nth in ((trigger, 0), (key, 1)):
        index = _nth(text, f"'{quoted}'", nth)
        assert (problem.line, problem.column) == (text.count("\n", 0, index) + 1,
                                                  index - text.rfind("\n", 0, index))
        assert what in problem.message and advice in problem.message
        assert "RE2" in problem.message and "linear-time" in problem.message


def _nth(text: str, needle: str, nth: int) -> int:
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    return index


def test_a_plain_syntax_error_keeps_pythons_explanation() -> None:
    from core.patterns import PatternError, compile_regex

    with pytest.raises(PatternError, match=r"missing \), unterminated subpattern at position 1"):
        compile_regex("(unclosed")


def test_size_limits_per_pattern_and_per_persona(tmp_path: Path) -> None:
    from core.patterns import MAX_PROGRAM_SIZE, PatternError, compile_regex

    with pytest.raises(PatternError, match=f"more than the {MAX_PROGRAM_SIZE:,} a pattern"):
        compile_regex("a" + "[ab]{999}" * 6 + "c")
    with pytest.raises(PatternError, match="1,001 characters long"):
        compile_regex("a" * 1001)
    # each is allowed alone (about 2,700 instructions); five together are too many
    big = r"[\pL\pN]{2}x"
    assert compile_regex(big).program_size < MAX_PROGRAM_SIZE
    text = BASE + "triggers:\n  patterns:\n" + "".join(f"    - '{big}{i}'\n" for i in range(5))
    path = tmp_path / "ada.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProblemsError) as caught:
        load_persona_file(path, defaults={}, known_providers=PROVIDERS)
    [problem] = caught.value.problems
    assert problem.field == "triggers.patterns[3]" and "10,000 allowed together" in problem.message


def test_patterns_keep_their_meaning_on_re2() -> None:
    ada = persona(dedent("""
        triggers:
          keywords: ["ada,", "hey ada", café]
          patterns: ['^!py\\b', '\\d{4}-\\d{2}']
    """))
    evaluator = TriggerEvaluator()

    def reason(text: str) -> list[str]:
        return [m.reason for m in evaluator.evaluate(message(text), [ada])]

    assert reason("!PY lists") == ["pattern"]  # case-insensitive unless told
    assert reason("see !py") == []
    assert reason("on 2024-05") == ["pattern"]
    assert reason("Ada, hi") == ["keyword"] and reason("well HEY ADA there") == ["keyword"]
    assert reason("un café!") == ["keyword"] and reason("cafés") == []  # words in any script
    assert reason("canada, eh") == [] and reason("x\nada,\ny") == ["keyword"]
    assert reason("ping @Ada please") == ["mention"] and reason("@Adam hi") == []


def test_only_a_bounded_part_of_a_huge_message_is_scanned() -> None:
    from core.dispatcher.triggers import SCANNED_CHARS

    ada = persona("triggers: {keywords: [needle], patterns: ['zz+$']}\n")
    evaluator = TriggerEvaluator()
    padding = "hay " * (SCANNED_CHARS // 4)
    huge = padding + "needle " + "b" * 1_000_000 + "zz"
    matches, elapsed = timed(evaluator.evaluate, message(huge), [ada])
    assert matches == () and elapsed < 0.5
    assert [m.reason for m in evaluator.evaluate(message("needle " + padding), [ada])] == [
        "keyword"]


def test_names_and_keywords_are_linear_whatever_the_word_list() -> None:
    from core.dispatcher.triggers import SCANNED_CHARS
    from core.patterns import words_regex

    words = tuple("a" * 198 + "b" + str(i) for i in range(200))  # each fails at its end
    pattern = words_regex(words)
    assert pattern is not None
    result, elapsed = timed(pattern.search, "a" * SCANNED_CHARS)
    assert result is None and elapsed < 0.5
    ada = persona("")
    named, elapsed = timed(addressed_personas, "ada " * 1000 + "a" * 100_000, [ada])
    assert named == ["ada"] and elapsed < 0.5


def test_a_hand_built_entry_re2_cannot_take_matches_nothing() -> None:
    entry = LoreEntry("x", keys=(r"(a)\1",), regex=True)
    assert activate_entries(Lorebook((entry,)), ["aa"], len) == ()


def test_the_longest_keyword_list_a_persona_may_have_compiles_in_any_script() -> None:
    # 200 keywords of 200 characters (the schema's maxima) of 4-byte letters with two
    # cases, ignoring case: the largest word list there can be, within RE2's budget
    import random

    from core.patterns import words_regex

    letters = [chr(c) for c in range(0x10400, 0x10450)]  # Deseret
    random.seed(3)
    words = [''.join(random.choice(letters) for _ in range(200)) for _ in range(200)]
    text = BASE + "triggers:\n  keywords:\n" + "".join(f"    - '{w}'\n" for w in words)
    ada = load_persona_text(text, file="ada.yaml", defaults={}, known_providers=PROVIDERS)
    pattern = words_regex(ada.triggers.keywords)
    assert pattern is not None and pattern.search(f"say {words[7].lower()} now")
