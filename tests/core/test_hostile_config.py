"""config.yaml written to hurt, or with values that can never work: each is a located
problem, in bounded time and memory, never a traceback or a crash later on."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from core.config import load_config
from core.problems import Problem, ProblemsError

GOOD = """\
database: {path: data/personae.db}
personas: {dir: personas}
providers:
  openai: {api_key_env: OPENAI_API_KEY}
"""


def problems_of(tmp_path: Path, text: str) -> list[Problem]:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProblemsError) as caught:
        load_config(path)
    problems = list(caught.value.problems)
    for problem in problems:
        assert problem.file == str(path) and problem.line >= 1 and problem.column >= 1
        assert problem.message
    return problems


def position(text: str, needle: str) -> tuple[int, int]:
    index = text.index(needle)
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


def test_billion_laughs_in_config_is_refused_quickly_at_the_alias(tmp_path: Path) -> None:
    lines = ["  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    text = GOOD + "persona_defaults:\n extensions:\n" + "\n".join(" " + line for line in lines)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        [problem] = problems_of(tmp_path, text)
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < 2 and peak < 30e6, (elapsed, peak)
    # config.yaml holds at most 50,000 values: l4 (66,430 of them) is the first too many
    assert problem.line == position(text, "l4:")[0]
    assert "*l3" in problem.message and "50,000 values" in problem.message


def test_an_oversized_config_is_refused(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, GOOD + "# " + "x" * (1024 * 1024) + "\n")
    assert (problem.line, problem.column) == (1, 1) and "1 MiB" in problem.message


@pytest.mark.parametrize(("extra", "needle", "field", "words"), [
    ("logging:\n  level: !!python/name:os.system\n", "!!python", "logging.level",
     "!!python/name:os.system is not supported"),
    ("metrics: {port: !!binary AAAA}\n", "!!binary", "metrics.port", "!!binary is not supported"),
    ("limits: {queue_size: .inf}\n", ".inf", "limits.queue_size", "not a usable number"),
    ("limits: {queue_size: 99999999999999999999999}\n", "9999", "limits.queue_size",
     "too large a number"),
    ("limits: &a {queue_size: 5, again: *a}\n", "*a}", "", "recursive"),
    ("limits:\n  <<: [1, 2]\n", "1, 2]", "limits", "merge key (<<)"),
    ("admins: {users: !!set {a, b}}\n", "!!set", "admins.users", "!!set is not supported"),
])
def test_config_values_that_are_not_plain_data_are_located(
        tmp_path: Path, extra: str, needle: str, field: str, words: str) -> None:
    text = GOOD + extra
    problems = problems_of(tmp_path, text)
    matching = [p for p in problems if words in p.message]
    assert matching and matching[0].field == field, [str(p) for p in problems]
    assert (matching[0].line, matching[0].column) == position(text, needle)


def test_a_date_in_config_is_text_and_then_checked_as_such(tmp_path: Path) -> None:
    text = GOOD + "discord: {application_id: 2024-01-01}\n"
    [problem] = problems_of(tmp_path, text)
    assert problem.field == "discord.application_id"
    assert problem.message == 'expected a whole number or nothing, got "2024-01-01"'


@pytest.mark.parametrize(("extra", "field", "message"), [
    ("discord: {catch_up_window: 99999999999d}\n", "discord.catch_up_window",
     "'99999999999d' is too long (at most 7d)"),
    ("limits: {recovery_window: 8d}\n", "limits.recovery_window", "'8d' is too long (at most 7d)"),
    ("limits: {shutdown_deadline: 2h}\n", "limits.shutdown_deadline",
     "'2h' is too long (at most 1h)"),
    ("providers:\n  slow: {base_url: 'http://127.0.0.1:1/v1', timeout: 61m}\n",
     "providers.slow.timeout", "'61m' is too long (at most 1h)"),
    ("providers:\n  never: {base_url: 'http://127.0.0.1:1/v1', timeout: 0s}\n",
     "providers.never.timeout", "must be longer than 0s, or no request could ever finish"),
    ("limits: {queue_size: 1000000000000}\n", "limits.queue_size",
     "1000000000000 is too large (at most 1000000)"),
    ("limits: {max_concurrent_replies: 100000}\n", "limits.max_concurrent_replies",
     "100000 is too large (at most 10000)"),
    ("providers:\n  big: {base_url: 'http://127.0.0.1:1/v1', max_concurrency: 100000}\n",
     "providers.big.max_concurrency", "100000 is too large (at most 10000)"),
])
def test_settings_that_can_never_work_are_refused_at_their_line(
        tmp_path: Path, extra: str, field: str, message: str) -> None:
    text = GOOD.replace("providers:\n  openai: {api_key_env: OPENAI_API_KEY}\n", "") + extra
    problems = problems_of(tmp_path, text)
    assert [(p.field, p.message) for p in problems] == [(field, message)]
    assert problems[0].line == text.count("\n")  # the setting is on the last line


def test_the_longest_allowed_durations_load(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(GOOD + "discord: {catch_up_window: 7d}\n"
                    "limits: {recovery_window: 7d, shutdown_deadline: 1h}\n")
    config = load_config(path)
    assert config.discord.catch_up_window_s == 7 * 86400
    assert config.limits.shutdown_deadline_s == 3600


@pytest.mark.parametrize(("value", "message"), [
    (10**400, "is too long (at most 3650d)"), (-1, "-1 is negative"), (float("nan"), "nan"),
    ("9" * 400 + "d", "is too long (at most 3650d)"), (True, "True is not a duration"),
])
def test_the_one_duration_parser_refuses_what_no_setting_can_use(value: object,
                                                                 message: str) -> None:
    from core.durations import parse_duration

    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        parse_duration(value)  # type: ignore[arg-type]
    assert len(str(caught.value)) < 120
