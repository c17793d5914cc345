"""System prompt templates render the variables and keep escaped braces literal."""

from __future__ import annotations

from core.personas.loader import load_persona_text
from core.personas.prompt import render_system_prompt, render_template, template_errors

from .conftest import PROVIDERS


def test_all_variables_render() -> None:
    text = (
        "id: ada\nname: Ada\nmodel: {provider: openai, name: m}\nprompt:\n  system: "
        "'{persona} helps {user} in #{channel} on {guild}, {date} {time}. Sets: {{1}}'\n"
    )
    persona = load_persona_text(text, file="p.yaml", defaults={}, known_providers=PROVIDERS)
    rendered = render_system_prompt(persona, {
        "user": "Bo", "channel": "help", "guild": "Py", "date": "2025-01-02", "time": "10:00",
    })
    assert rendered == "Ada helps Bo in #help on Py, 2025-01-02 10:00. Sets: {1}"


def test_missing_variables_render_empty_and_never_fail() -> None:
    assert render_template("in {guild}!", {}) == "in !"


def test_template_errors() -> None:
    assert template_errors("{{literal}} {user}") == []
    [unknown] = template_errors("hi {name}")
    assert (unknown.offset, unknown.token) == (3, "{name}")
    assert unknown.message.startswith("unknown template variable {name}")
    [lone] = template_errors("oops }")
    assert (lone.offset, lone.token) == (5, "}") and "lone '}'" in lone.message
