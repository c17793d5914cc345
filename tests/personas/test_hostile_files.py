"""Persona files written to hurt: alias bombs, deep nesting, YAML that is not plain data.

Each is refused with a located problem (file:line:column), in bounded time and memory,
and never stops the other files from loading: not at start-up, not in the watcher.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.personas.loader import load_persona_file, load_persona_text, load_personas
from core.personas.registry import PersonaRegistry, RegistryChange
from core.personas.watcher import PersonaWatcher
from core.problems import Problem, ProblemsError

from .conftest import MINIMAL, PROVIDERS, dedent

BASE = dedent("""
    id: ada
    name: Ada
    model: {provider: openai, name: gpt-4o-mini}
    prompt:
      system: You are {persona}.
""")


def billion_laughs(indent: str = "  ") -> str:
    """Nine levels of nine aliases each: 9**9 (387 million) strings once expanded."""
    lines = [f"{indent}l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 9):
        refs = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"{indent}l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


@contextmanager
def bounded(seconds: float, megabytes: float) -> Iterator[None]:
    """Fail when the block takes longer than ``seconds`` or allocates more than
    ``megabytes`` at its peak (safety bounds, not benchmarks)."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert peak < megabytes, f"peaked at {peak:.0f} MB"


def problems_of(path: Path, text: str) -> list[Problem]:
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProblemsError) as caught:
        load_persona_file(path, defaults={}, known_providers=PROVIDERS)
    problems = list(caught.value.problems)
    for problem in problems:
        assert problem.file == str(path) and problem.line >= 1 and problem.column >= 1
    return problems


def line_of(text: str, needle: str) -> int:
    return text[:text.index(needle)].count("\n") + 1


# -- alias bombs and sizes -----------------------------------------------------------------


def test_billion_laughs_is_refused_at_the_alias_quickly_and_in_little_memory(
        tmp_path: Path) -> None:
    text = BASE + "extensions:\n" + billion_laughs()
    with bounded(seconds=2, megabytes=30):
        problems = problems_of(tmp_path / "ada.yaml", text)
    [problem] = problems
    # l5 is the first level past 200,000 values: 9**6 = 531,441
    assert problem.line == line_of(text, "l5:")
    assert text.splitlines()[problem.line - 1][problem.column - 1:].startswith("*l4")
    assert "*l4" in problem.message and "200,000 values" in problem.message


def test_billion_laughs_where_the_schema_checks_is_refused_too(tmp_path: Path) -> None:
    # tags must be text: the located parser (which expands aliases) runs for this one
    text = BASE + "extensions:\n" + billion_laughs() + "tags: *l8\n"
    with bounded(seconds=2, megabytes=30):
        problems = problems_of(tmp_path / "ada.yaml", text)
    assert [p.line for p in problems] == [line_of(text, "l5:")]


def test_a_directory_with_a_bomb_still_loads_the_other_files(tmp_path: Path) -> None:
    (tmp_path / "ada.yaml").write_text(MINIMAL + "model: {provider: openai, name: m}\n")
    (tmp_path / "bomb.yaml").write_text(BASE.replace("ada", "bomb") + "extensions:\n"
                                        + billion_laughs())
    with bounded(seconds=3, megabytes=40):
        loaded = load_personas(tmp_path, defaults={}, known_providers=PROVIDERS)
    assert list(loaded.personas) == ["ada"]
    assert [Path(p.file).name for p in loaded.problems] == ["bomb.yaml"]


def test_recursive_anchors_are_refused_at_the_alias(tmp_path: Path) -> None:
    text = dedent("""
        id: ada
        name: Ada
        model: {provider: openai, name: m}
        prompt: &a {system: hi, x: *a}
    """)
    [problem] = problems_of(tmp_path / "ada.yaml", text)
    assert (problem.line, problem.column) == (4, text.splitlines()[3].index("*a") + 1)
    assert "recursive" in problem.message


def test_deep_nesting_is_refused_with_its_line(tmp_path: Path) -> None:
    deep = "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(80)) + "  " * 81 + "end\n"
    text = BASE + "extensions:\n" + deep
    [problem] = problems_of(tmp_path / "ada.yaml", text)
    # extensions is level 1: the mapping that opens level 65 is k63's value
    assert problem.line in (line_of(text, "k63:"), line_of(text, "k64:"))
    assert "64 levels" in problem.message
    flow = BASE + "extensions: " + "[" * 5000 + "]" * 5000 + "\n"
    [problem] = problems_of(tmp_path / "ada.yaml", flow)
    assert problem.line == 6


def test_an_oversized_file_is_refused_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "ada.yaml"
    text = BASE + "description: " + "x" * (4 * 1024 * 1024) + "\n"
    [problem] = problems_of(path, text)
    assert (problem.line, problem.column) == (1, 1) and "4 MiB" in problem.message
    with pytest.raises(ProblemsError, match="4 MiB"):
        load_persona_text(text, file="ada.yaml", defaults={}, known_providers=PROVIDERS)


def test_many_values_without_aliases_are_bounded_too(tmp_path: Path) -> None:
    text = BASE + "tags: [" + ", ".join(["t"] * 210_000) + "]\n"
    with bounded(seconds=5, megabytes=200):
        [problem] = problems_of(tmp_path / "ada.yaml", text)
    assert "200,000 values" in problem.message and problem.line == 6


def test_a_real_sized_big_card_still_loads(tmp_path: Path) -> None:
    entries = "".join(f"  - keys: [key{i}, other{i}]\n    content: {'Lore text. ' * 30}\n"
                      for i in range(3000))
    (tmp_path / "big.yaml").write_text(BASE + "lorebook:\n" + entries)
    persona = load_persona_file(tmp_path / "big.yaml", defaults={}, known_providers=PROVIDERS)
    assert len(persona.lorebook.entries) == 3000


# -- YAML that is not plain data -------------------------------------------------------------


@pytest.mark.parametrize(("yaml_text", "needle", "field", "words"), [
    ("description: !!binary aGVsbG8=\n", "!!binary", "description", "!!binary is not supported"),
    ("description: !!python/name:os.system\n", "!!python", "description",
     "!!python/name:os.system is not supported"),
    ("description: !!python/object/apply:os.system [ls]\n", "!!python", "description",
     "is not supported"),
    ("tags: !!set {a, b}\n", "!!set", "tags", "!!set is not supported"),
    ("tags: !!omap [{a: 1}]\n", "!!omap", "tags", "!!omap is not supported"),
    ("description: !custom x\n", "!custom", "description", "!custom is not supported"),
    ("context:\n  <<: 5\n", "5", "context", "merge key (<<)"),
    ("context: {max_tokens: 123456789012345678901234567890}\n", "1234", "context.max_tokens",
     "too large a number"),
    ("context: {max_tokens: " + "9" * 5000 + "}\n", "999", "context.max_tokens",
     "too large a number"),
    ("model: {provider: openai, name: m, temperature: .nan}\n", ".nan", "model.temperature",
     "not a usable number"),
    ("model: {provider: openai, name: m, top_p: -.inf}\n", "-.inf", "model.top_p",
     "not a usable number"),
    ("model: {provider: openai, name: m, temperature: !!float 1e999}\n", "!!float",
     "model.temperature", "not a usable number"),
    ("context: {max_tokens: !!int many}\n", "!!int", "context.max_tokens",
     "is not a whole number"),
    ("extensions: {? [1, 2] : list key}\n", "[1, 2]", "extensions", "a key must be text"),
    ("extensions: {? {a: 1} : mapping key}\n", "{a: 1}", "extensions", "a key must be text"),
    ("extensions: {!!binary aGk=: binary key}\n", "!!binary", "extensions",
     "!!binary is not supported"),
])
def test_values_that_are_not_plain_data_are_located(
        tmp_path: Path, yaml_text: str, needle: str, field: str, words: str) -> None:
    text = BASE.replace("model: {provider: openai, name: gpt-4o-mini}\n", "") + (
        "" if yaml_text.startswith("model:") else "model: {provider: openai, name: m}\n"
    ) + yaml_text
    problems = problems_of(tmp_path / "ada.yaml", text)
    matching = [p for p in problems if p.field == field and words in p.message]
    assert matching, [str(p) for p in problems]
    index = text.index(needle)
    line = text.count("\n", 0, index) + 1
    assert (matching[0].line, matching[0].column) == (
        line, index - text.rfind("\n", 0, index)), str(matching[0])


@pytest.mark.parametrize("value", ["2024-01-01", "2024-01-01 10:30:00", "2001-12-14t21:59:43.10-05:00",
                                   "!!timestamp 2024-01-01"])
def test_dates_are_kept_as_the_text_written(value: str) -> None:
    text = MINIMAL + f"model: {{provider: openai, name: m}}\ndescription: {value}\n" \
        f"extensions: {{released: {value}, {value}: key}}\n"
    persona = load_persona_text(text, file="ada.yaml", defaults={}, known_providers=PROVIDERS)
    written = value.removeprefix("!!timestamp ")
    assert persona.description == written
    assert persona.extensions == {"released": written, written: "key"}


def test_the_equals_and_merge_words_are_text() -> None:
    text = MINIMAL + "model: {provider: openai, name: m}\ndescription: =\ntags: ['<<', =]\n"
    persona = load_persona_text(text, file="ada.yaml", defaults={}, known_providers=PROVIDERS)
    assert persona.description == "=" and persona.tags == ("<<", "=")


def test_merge_keys_still_work() -> None:
    text = dedent("""
        id: ada
        name: Ada
        model: {provider: openai, name: m}
        prompt: {system: hi}
        extensions:
          base: &base {colour: blue, size: 2}
          copy: &copy {<<: *base, size: 3}
          again: *copy
    """)
    persona = load_persona_text(text, file="ada.yaml", defaults={}, known_providers=PROVIDERS)
    assert persona.extensions["copy"] == persona.extensions["again"] == {
        "colour": "blue", "size": 3}
    with pytest.raises(ProblemsError, match="appears twice"):
        load_persona_text(text.replace("size: 3}", "size: 3, size: 4}"), file="ada.yaml",
                          defaults={}, known_providers=PROVIDERS)


def test_keys_of_several_kinds_in_one_mapping_load() -> None:
    text = MINIMAL + "model: {provider: openai, name: m, extra: {a: 1, 2: b, null: c, true: d}}\n"
    persona = load_persona_text(text, file="ada.yaml", defaults={
        "model": {"extra": {"x": 1, 5: "y"}}}, known_providers=PROVIDERS)
    assert persona.model.extra == {"x": 1, "5": "y", "a": 1, 2: "b", None: "c", True: "d"}
    assert persona.applied_defaults == {"model": {"extra": {"x": 1, "5": "y"}}}


def test_control_characters_and_bad_utf8_are_located(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path / "ada.yaml", BASE + "description: é\x07x\n")
    assert (problem.line, problem.column) == (6, 15) and "U+0007" in problem.message
    path = tmp_path / "bad.yaml"
    path.write_bytes(BASE.encode() + b"description: caf\xe9\n")
    with pytest.raises(ProblemsError) as caught:
        load_persona_file(path, defaults={}, known_providers=PROVIDERS)
    [problem] = caught.value.problems
    assert (problem.line, problem.column) == (6, 17) and "not UTF-8" in problem.message


def test_a_lone_surrogate_in_text_made_in_memory_is_located() -> None:
    with pytest.raises(ProblemsError) as caught:
        load_persona_text(BASE + "description: a\ud800b\n", file="ada.yaml", defaults={},
                          known_providers=PROVIDERS)
    [problem] = caught.value.problems
    assert (problem.line, problem.column) == (6, 15) and "surrogate" in problem.message


# -- start-up and the watcher ------------------------------------------------------------------

HOSTILE_FILES = {
    "date.yaml": BASE.replace("ada", "date") + "description: 2024-01-01\n",
    "binary.yaml": BASE.replace("ada", "binary") + "notes: !!binary aGk=\n",
    "code.yaml": BASE.replace("ada", "code") + "description: !!python/name:os.system\n",
    "loop.yaml": BASE.replace("ada", "loop").replace("prompt:\n  system: You are {persona}.\n",
                                                     "prompt: &a {system: hi, x: *a}\n"),
    "merge.yaml": BASE.replace("ada", "merge") + "context:\n  <<: 5\n",
    "bomb.yaml": BASE.replace("ada", "bomb") + "extensions:\n" + billion_laughs(),
}


def test_hostile_files_are_problems_and_the_good_file_loads(tmp_path: Path) -> None:
    (tmp_path / "ada.yaml").write_text(BASE)
    for name, text in HOSTILE_FILES.items():
        (tmp_path / name).write_text(text)
    loaded = load_personas(tmp_path, defaults={}, known_providers=PROVIDERS)
    assert sorted(loaded.personas) == ["ada", "date"]
    assert loaded.personas["date"].description == "2024-01-01"
    assert {Path(p.file).name for p in loaded.problems} == set(HOSTILE_FILES) - {"date.yaml"}
    assert {Path(p).name for p in loaded.failed_files} == set(HOSTILE_FILES) - {"date.yaml"}


async def test_the_watcher_reports_hostile_files_and_serves_later_edits(tmp_path: Path) -> None:
    directory = tmp_path / "personas"
    directory.mkdir()
    ada = directory / "ada.yaml"
    ada.write_text(BASE)
    registry = PersonaRegistry()
    reported: list[Problem] = []
    changes: list[RegistryChange] = []
    reloaded = asyncio.Event()

    def on_problems(problems) -> None:
        reported.extend(problems)

    def on_reloaded(change: RegistryChange) -> None:
        changes.append(change)
        reloaded.set()

    async def until(predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not predicate():
                reloaded.clear()
                await reloaded.wait()

    watcher = PersonaWatcher(directory, registry, defaults={}, known_providers=PROVIDERS,
                             on_problems=on_problems, on_reloaded=on_reloaded,
                             debounce_ms=20, step_ms=10)
    task = asyncio.create_task(watcher.run())
    try:
        await asyncio.wait_for(watcher.ready.wait(), 10)
        for name, text in HOSTILE_FILES.items():
            (directory / name).write_text(text)
        await until(lambda: {Path(p.file).name for p in reported} >= set(HOSTILE_FILES)
                    - {"date.yaml"})
        # the date is text: that persona loads
        await until(lambda: registry.get("date") is not None)
        assert registry.get("date").description == "2024-01-01"
        ada.write_text(BASE.replace("You are {persona}.", "You are {persona}, edited."))
        await until(lambda: registry.get("ada") is not None
                    and "edited" in registry.get("ada").prompt.system)
        (directory / "code.yaml").write_text(BASE.replace("ada", "code"))
        await until(lambda: registry.get("code") is not None)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_reload_always_returns_the_problems_and_never_raises(tmp_path: Path) -> None:
    directory = tmp_path / "personas"
    directory.mkdir()
    (directory / "ada.yaml").write_text(BASE)
    for name, text in HOSTILE_FILES.items():
        (directory / name).write_text(text)

    def failing_listener(_: object) -> None:
        raise RuntimeError("a listener bug")

    registry = PersonaRegistry()
    watcher = PersonaWatcher(directory, registry, defaults={}, known_providers=PROVIDERS,
                             on_problems=failing_listener, on_reloaded=failing_listener)
    problems = await asyncio.wait_for(watcher.reload(), 10)
    assert {Path(p.file).name for p in problems} == set(HOSTILE_FILES) - {"date.yaml"}
    assert registry.get("ada") is not None

    gone = PersonaWatcher(tmp_path / "missing", PersonaRegistry(), defaults={},
                          known_providers=PROVIDERS, on_problems=failing_listener)
    [problem] = await asyncio.wait_for(gone.reload(), 10)
    assert "no such directory" in problem.message


async def test_a_bug_while_reloading_is_a_problem_and_the_old_personas_serve(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ada.yaml").write_text(BASE)
    registry = PersonaRegistry()
    told: list[Problem] = []
    watcher = PersonaWatcher(tmp_path, registry, defaults={}, known_providers=PROVIDERS,
                             on_problems=told.extend)
    assert await watcher.reload() == ()

    def broken(*args: object, **kwargs: object) -> None:  # stands in for a loader bug
        raise RuntimeError("boom")

    monkeypatch.setattr("core.personas.watcher.load_personas", broken)
    [problem] = await asyncio.wait_for(watcher.reload(), 10)
    assert "reloading the personas failed (RuntimeError)" in problem.message
    assert told == [problem] and registry.get("ada") is not None


# -- floods of mistakes ------------------------------------------------------------------------


def test_a_flood_of_template_mistakes_is_located_in_bounded_time(tmp_path: Path) -> None:
    # each mistake was located by rescanning the file: 8,000 of them took 5 s
    text = BASE.replace("You are {persona}.", "|\n    " + "{u} " * 20_000)
    with bounded(seconds=2, megabytes=200):
        problems = problems_of(tmp_path / "ada.yaml", text)
    assert len(problems) == 11
    assert all("unknown template variable {u}" in p.message for p in problems[:10])
    assert problems[10].message == "and 19,990 more template mistakes in this text"
    assert (problems[10].line, problems[10].column) == (problems[9].line, problems[9].column)


def test_a_flood_of_problems_is_cut_to_a_hundred(tmp_path: Path) -> None:
    text = BASE + "tags: [" + ", ".join(["!!binary aGk="] * 5000) + "]\n"
    problems = problems_of(tmp_path / "ada.yaml", text)
    assert len(problems) == 100
    assert problems[-1].message == "and 4,901 more problems in this file (fix these first)"
