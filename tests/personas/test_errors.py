"""Every rule a persona file can break, each reported at its line, column and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.personas.defaults import LocatedDefaults
from core.personas.loader import load_persona_file, load_personas
from core.problems import Problem, ProblemsError

from .conftest import PROVIDERS, dedent


def where(text: str, needle: str, nth: int = 0, start: int = 0) -> tuple[int, int]:
    """1-based line and column of the ``nth`` occurrence of ``needle`` in ``text``,
    counting from character ``start``."""
    index = start - 1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def problems_in(tmp_path: Path, text: str, defaults: dict | LocatedDefaults | None = None,
                name: str = "p.yaml") -> list[Problem]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProblemsError) as caught:
        load_persona_file(path, defaults=defaults if defaults is not None else {},
                          known_providers=PROVIDERS)
    for problem in caught.value.problems:
        assert problem.file == str(path) or problem.file.endswith("config.yaml")
    return list(caught.value.problems)


def find(problems: list[Problem], field: str) -> Problem:
    matching = [p for p in problems if p.field == field]
    assert matching, f"no problem for {field!r} in {[str(p) for p in problems]}"
    return matching[0]


def at(problem: Problem, text: str, needle: str, nth: int = 0, start: int = 0) -> None:
    assert (problem.line, problem.column) == where(text, needle, nth, start), str(problem)


BASE = dedent("""
    id: ada
    name: Ada
    model: {provider: openai, name: gpt-4o-mini, max_tokens: 500}
    prompt:
      system: You are {persona}.
""")


def test_the_issue_example_duration_is_located_and_explained(tmp_path: Path) -> None:
    text = BASE + dedent("""
        limits:
          rate:
            capacity: 6
            per: "60 seconds"
    """)
    problem = find(problems_in(tmp_path, text), "limits.rate.per")
    at(problem, text, '"60 seconds"')
    assert str(problem).endswith(
        'limits.rate.per: "60 seconds" is not a duration (use 60s, 5m, 1h)')
    assert str(problem).startswith(f"{tmp_path / 'p.yaml'}:{problem.line}:{problem.column}: ")


def test_yaml_syntax_error_keeps_line_and_column(tmp_path: Path) -> None:
    text = BASE + "triggers:\n  keywords: [a, b\n  mention: true\n"
    [problem] = problems_in(tmp_path, text)
    assert "YAML syntax error" in problem.message
    # where the mistake is: the [ never closed (the parser noticed on the next line)
    assert (problem.line, problem.column) == where(text, "[a, b")
    assert "this [ is never closed" in problem.message and "noticed at line" in problem.message
    tabbed = BASE + "triggers:\n\tmention: true\n"
    [tab] = problems_in(tmp_path, tabbed)
    assert "a tab: YAML indents with spaces only" in tab.message
    assert (tab.line, tab.column) == where(tabbed, "\tmention")


def test_duplicate_key_is_reported(tmp_path: Path) -> None:
    text = BASE + "name: Ada again\n"
    problem = find(problems_in(tmp_path, text), "name")
    at(problem, text, "name: Ada again")
    assert "appears twice" in problem.message


@pytest.mark.parametrize(("typo", "field", "suggestion"), [
    ("descripton: hi\n", "descripton", "description"),
    ("triggers:\n  keywrds: [hi]\n", "triggers.keywrds", "keywords"),
    ("limits:\n  rate: {capacity: 2, per: 1m, scop: user}\n", "limits.rate.scop", "scope"),
])
def test_unknown_keys_suggest_the_known_one(tmp_path: Path, typo: str, field: str,
                                            suggestion: str) -> None:
    text = BASE + typo
    problem = find(problems_in(tmp_path, text), field)
    at(problem, text, field.rsplit(".", 1)[-1])
    assert problem.message == f"unknown key '{field.rsplit('.', 1)[-1]}' (did you mean '{suggestion}'?)"


def test_missing_required_key_and_wrong_type(tmp_path: Path) -> None:
    text = dedent("""
        id: ada
        model: {provider: openai, name: m}
        prompt: {system: hi}
        context: {max_messages: lots}
    """)
    problems = problems_in(tmp_path, text)
    assert find(problems, "name").message == "missing required key 'name'"
    typed = find(problems, "context.max_messages")
    at(typed, text, "lots")
    assert typed.message == 'expected a whole number, got "lots"'


def test_invalid_regexes_carry_the_regex_error(tmp_path: Path) -> None:
    text = BASE + dedent("""
        triggers:
          patterns: ['^ok$', '(unclosed']
        lorebook:
          - keys: ['[a-']
            regex: true
            content: lore
    """)
    problems = problems_in(tmp_path, text)
    pattern = find(problems, "triggers.patterns[1]")
    at(pattern, text, "'(unclosed'")
    assert "missing ), unterminated subpattern" in pattern.message
    key = find(problems, "lorebook[0].keys[0]")
    at(key, text, "'[a-'")
    assert "unterminated character set" in key.message


def test_plain_lorebook_keys_are_not_regexes(tmp_path: Path) -> None:
    text = BASE + "lorebook:\n  - {keys: ['[a-'], content: lore}\n"
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    persona = load_persona_file(path, defaults={}, known_providers=PROVIDERS)
    assert persona.lorebook.entries[0].keys == ("[a-",)


def test_invalid_cron_and_time_zone(tmp_path: Path) -> None:
    text = BASE + dedent("""
        limits:
          quota:
            tokens: 9000
            reset: "61 * * * *"
            timezone: Mars/Olympus
    """)
    problems = problems_in(tmp_path, text)
    cron = find(problems, "limits.quota.reset")
    at(cron, text, '"61 * * * *"')
    assert "not a valid cron expression" in cron.message and "(61)" in cron.message
    zone = find(problems, "limits.quota.timezone")
    at(zone, text, "Mars/Olympus")
    assert "unknown time zone" in zone.message


def test_cron_with_wrong_field_count(tmp_path: Path) -> None:
    text = BASE + "limits:\n  quota: {messages: 5, reset: '0 0 *'}\n"
    problem = find(problems_in(tmp_path, text), "limits.quota.reset")
    assert "Wrong number of fields" in problem.message


def test_unknown_provider_lists_the_known_ones(tmp_path: Path) -> None:
    text = dedent("""
        id: ada
        name: Ada
        model:
          provider: opnai
          name: gpt-4o-mini
          fallback: {provider: nowhere, name: x}
        prompt: {system: hi}
    """)
    problems = problems_in(tmp_path, text)
    primary = find(problems, "model.provider")
    at(primary, text, "opnai")
    assert 'did you mean "openai"' in primary.message
    assert "known providers: local, offline, openai" in primary.message
    fallback = find(problems, "model.fallback.provider")
    at(fallback, text, "nowhere")


@pytest.mark.parametrize(("limits", "field", "needle", "says"), [
    ("limits:\n  quota: {tokens: 100}\n", "limits.quota.tokens", "100",
     "smaller than model.max_tokens (500)"),
    ("limits:\n  rate: {capacity: 0, per: 1m}\n", "limits.rate.capacity", "0,",
     "0 would let nobody talk"),
    ("limits:\n  reply_deadline: 0s\n", "limits.reply_deadline", "0s",
     "must be longer than 0s"),
    ("limits:\n  rate: {capacity: 3, per: 0s}\n", "limits.rate.per", "0s",
     "must be longer than 0s"),
    ("limits:\n  quota: {scope: user}\n", "limits.quota", "{scope",
     "set tokens, messages or both"),
    ("limits:\n  rate: {capacity: 3, messages: 3, per: 1m}\n", "limits.rate.messages",
     "messages", "not both"),
    ("limits:\n  max_concurrent: 0\n", "limits.max_concurrent", "0\n", "too small"),
])
def test_impossible_limits(tmp_path: Path, limits: str, field: str, needle: str,
                           says: str) -> None:
    text = BASE + limits
    problem = find(problems_in(tmp_path, text), field)
    at(problem, text, needle, start=len(BASE))
    assert says in problem.message


def test_unknown_template_variables_and_lone_braces(tmp_path: Path) -> None:
    text = dedent("""
        id: ada
        name: Ada
        model: {provider: openai, name: m}
        prompt:
          system: "Hi {usr}, a set looks like {{1, 2}}"
          post_history: Reply to {user} with one { brace
          examples:
            - {user: "hi", assistant: 'I am {persna}'}
    """)
    problems = problems_in(tmp_path, text)
    system = find(problems, "prompt.system")
    at(system, text, "{usr}")
    assert system.message.startswith("unknown template variable {usr}")
    assert "{channel}, {date}, {guild}, {persona}, {time}, {user}" in system.message
    assert len([p for p in problems if p.field == "prompt.system"]) == 1  # {{1, 2}} is fine
    lone = find(problems, "prompt.post_history")
    at(lone, text, "{ brace")
    assert "lone '{'" in lone.message
    example = find(problems, "prompt.examples[0].assistant")
    at(example, text, "{persna}")


@pytest.mark.parametrize("style", ["|", "|-", ">"])
def test_template_mistakes_inside_block_text_are_located_exactly(tmp_path: Path,
                                                                 style: str) -> None:
    block = f"  system: {style}\n    You are {{persona}}.\n\n    Help {{usr}} kindly, {{usr}}.\n"
    text = BASE.replace("  system: You are {persona}.\n", block)
    first, second = [p for p in problems_in(tmp_path, text) if p.field == "prompt.system"]
    at(first, text, "{usr}")
    at(second, text, "{usr}", nth=1)


def test_template_mistake_with_escapes_falls_back_to_the_value(tmp_path: Path) -> None:
    text = BASE.replace("system: You are {persona}.", 'system: "Tab\\there {usr}"')
    problem = find(problems_in(tmp_path, text), "prompt.system")
    at(problem, text, '"Tab')


def test_lorebook_entry_that_can_never_activate(tmp_path: Path) -> None:
    text = BASE + "lorebook:\n  entries:\n    - content: floating lore\n"
    problem = find(problems_in(tmp_path, text), "lorebook.entries[0]")
    at(problem, text, "content: floating")
    assert "can never activate" in problem.message


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = dedent("""
        id: Not A Slug
        name: Ada
        colour: blue
        model: {provider: opnai, name: m, max_tokens: 900}
        prompt: {system: "Hi {usr}"}
        triggers: {patterns: ['(']}
        limits:
          rate: {capacity: 1, per: soon}
          quota: {tokens: 10, reset: "* *"}
          reply_deadline: -5s
    """)
    fields = {p.field for p in problems_in(tmp_path, text)}
    assert fields >= {"id", "colour", "model.provider", "prompt.system", "triggers.patterns[0]",
                      "limits.rate.per", "limits.quota.tokens", "limits.quota.reset",
                      "limits.reply_deadline"}


def test_problems_come_in_file_order(tmp_path: Path) -> None:
    text = BASE + "zzz: 1\nlimits: {reply_deadline: never}\naaa: 2\n"
    lines = [p.line for p in problems_in(tmp_path, text)]
    assert lines == sorted(lines) and len(lines) == 3


def test_empty_and_non_mapping_and_non_utf8_files(tmp_path: Path) -> None:
    [empty] = problems_in(tmp_path, "", name="empty.yaml")
    assert "empty" in empty.message
    [listed] = problems_in(tmp_path, "- a\n- b\n", name="list.yaml")
    assert "must be a mapping" in listed.message
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ProblemsError) as caught:
        load_persona_file(path, defaults={}, known_providers=PROVIDERS)
    assert "not UTF-8" in caught.value.problems[0].message


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    first = BASE
    second = BASE.replace("name: Ada", "name: Other Ada")
    (tmp_path / "a.yaml").write_text(first, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(second, encoding="utf-8")
    loaded = load_personas(tmp_path, defaults={}, known_providers=PROVIDERS)
    assert loaded.personas["ada"].name == "Ada"
    [problem] = loaded.problems
    assert problem.file == str(tmp_path / "b.yaml")
    assert (problem.line, problem.column, problem.field) == (*where(second, "ada"), "id")
    assert f"already used by {tmp_path / 'a.yaml'}" in problem.message
    assert (tmp_path / "b.yaml").resolve() in loaded.failed_files


def test_a_bad_default_is_blamed_on_config_yaml(tmp_path: Path, project: Path,
                                                defaults: LocatedDefaults) -> None:
    config = project / "config.yaml"
    text = config.read_text().replace("name: gpt-4o-mini}", "name: gpt-4o-mini, temprature: 1}")
    config.write_text(text)
    from core.config import load_config
    from core.personas.defaults import defaults_from_config

    bad_defaults = defaults_from_config(load_config(config))
    persona = "id: ada\nname: Ada\nprompt: {system: hi}\n"
    [problem] = problems_in(tmp_path, persona, bad_defaults)
    assert problem.file == str(config.resolve())
    assert problem.field == "persona_defaults.model.temprature"
    assert (problem.line, problem.column) == where(text, "temprature")
    assert "did you mean 'temperature'" in problem.message


def test_a_persona_value_over_a_default_is_blamed_on_the_persona(
        tmp_path: Path, defaults: LocatedDefaults) -> None:
    text = "id: ada\nname: Ada\nprompt: {system: hi}\nmodel: {provider: opnai}\n"
    problem = find(problems_in(tmp_path, text, defaults), "model.provider")
    assert problem.file == str(tmp_path / "p.yaml")
    at(problem, text, "opnai")
