"""Persona values that pass a type check but can never work are refused where they are
written: a schedule that never fires, durations nobody means, sizes beyond any model."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.limits.schedule import next_fire_time
from core.personas.loader import load_persona_file
from core.problems import Problem, ProblemsError

from .conftest import PROVIDERS, dedent

BASE = dedent("""
    id: ada
    name: Ada
    model: {provider: openai, name: gpt-4o-mini, max_tokens: 500}
    prompt:
      system: You are {persona}.
""")


def problems_of(tmp_path: Path, text: str) -> list[Problem]:
    path = tmp_path / "ada.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProblemsError) as caught:
        load_persona_file(path, defaults={}, known_providers=PROVIDERS)
    return list(caught.value.problems)


def located(problem: Problem, text: str, needle: str) -> bool:
    index = text.index(needle)
    return (problem.line, problem.column) == (
        text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index))


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *",
                                  "30 12 30 2 mon-fri"])
def test_a_schedule_that_never_fires_is_refused_quickly(tmp_path: Path, cron: str) -> None:
    text = BASE + f"limits:\n  quota: {{tokens: 10000, reset: '{cron}', timezone: Europe/Paris}}\n"
    started = time.perf_counter()
    [problem] = problems_of(tmp_path, text)
    assert time.perf_counter() - started < 0.5
    assert problem.field == "limits.quota.reset" and located(problem, text, f"'{cron}'")
    assert "this schedule never fires" in problem.message


@pytest.mark.parametrize("cron", ["0 0 29 2 mon", "0 0 29 2 *", "0 9 31 * *", "0 0 last 2 *"])
def test_rare_schedules_that_do_fire_load(tmp_path: Path, cron: str) -> None:
    path = tmp_path / "ada.yaml"
    path.write_text(BASE + f"limits:\n  quota: {{tokens: 10000, reset: '{cron}'}}\n")
    persona = load_persona_file(path, defaults={}, known_providers=PROVIDERS)
    started = time.perf_counter()
    assert next_fire_time(persona.limits.quota, datetime(2026, 3, 1, tzinfo=UTC)) is not None
    assert time.perf_counter() - started < 0.05


@pytest.mark.parametrize(("limits", "needle", "field", "message"), [
    ("rate: {capacity: 1, per: 99999999999d}", "99999999999d", "limits.rate.per",
     "'99999999999d' is too long (at most 366d)"),
    ("rate: {capacity: 1, per: 400d}", "400d", "limits.rate.per", "'400d' is too long (at most 366d)"),
    ("rate: {capacity: 1, per: -5}", "-5", "limits.rate.per",
     "-5 is not a duration (use 60s, 5m, 1h)"),
    ("reply_deadline: 2h", "2h", "limits.reply_deadline", "'2h' is too long (at most 1h)"),
    ("reply_deadline: 100000", "100000", "limits.reply_deadline",
     "100000 is too long (at most 1h)"),
    ("max_concurrent: 1000000", "1000000", "limits.max_concurrent",
     "1000000 is too large (at most 10000)"),
])
def test_limits_that_cannot_work_are_located(tmp_path: Path, limits: str, needle: str,
                                             field: str, message: str) -> None:
    text = BASE + f"limits: {{{limits}}}\n"
    problems = problems_of(tmp_path, text)
    assert [(p.field, p.message) for p in problems] == [(field, message)]
    assert located(problems[0], text, needle)


@pytest.mark.parametrize(("extra", "field", "message"), [
    ("model: {provider: openai, name: m, max_tokens: 1000000000}\n", "model.max_tokens",
     "1000000000 is too large (at most 1000000)"),
    ("context: {max_messages: 1000000}\n", "context.max_messages",
     "1000000 is too large (at most 1000)"),
    ("context: {max_tokens: 99999999999}\n", "context.max_tokens",
     "99999999999 is too large (at most 2000000)"),
    ("triggers: {max_hops: 1000}\n", "triggers.max_hops", "1000 is too large (at most 20)"),
    ("lorebook: {scan_depth: 100000, entries: []}\n", "lorebook.scan_depth",
     "100000 is too large (at most 1000)"),
    ("lorebook: {token_budget: 99999999999, entries: []}\n", "lorebook.token_budget",
     "99999999999 is too large (at most 2000000)"),
    ("lorebook: [{keys: [k], content: c, scan_depth: 5000}]\n", "lorebook[0].scan_depth",
     "5000 is too large (at most 1000)"),
    ("delivery: {busy_notice: '" + "x" * 2001 + "'}\n", "delivery.busy_notice",
     "is 2,001 characters long, more than the 2,000 allowed"),
    ("triggers: {keywords: [" + ", ".join(f"k{i}" for i in range(201)) + "]}\n",
     "triggers.keywords", "has 201 items, more than the 200 allowed"),
    ("triggers: {patterns: [" + ", ".join(["a"] * 33) + "]}\n", "triggers.patterns",
     "has 33 items, more than the 32 allowed"),
])
def test_sizes_no_model_or_platform_can_take_are_refused(tmp_path: Path, extra: str, field: str,
                                                          message: str) -> None:
    text = BASE.replace("model: {provider: openai, name: gpt-4o-mini, max_tokens: 500}\n", "") \
        + ("" if extra.startswith("model:") else "model: {provider: openai, name: m}\n") + extra
    problems = problems_of(tmp_path, text)
    assert [(p.field, p.message) for p in problems] == [(field, message)]
    assert problems[0].line == text.count("\n")
