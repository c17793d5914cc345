"""Prompt templates: ``{persona}``, ``{user}``, ``{channel}``, ``{guild}``, ``{date}``,
``{time}``, with ``{{`` and ``}}`` for literal braces.

Templates are checked when a persona loads (:func:`template_errors`), so rendering
at message time cannot fail: a variable the caller does not supply renders empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .model import Persona

TEMPLATE_VARIABLES = frozenset({"persona", "user", "channel", "guild", "date", "time"})

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_KNOWN = ", ".join("{" + v + "}" for v in sorted(TEMPLATE_VARIABLES))


@dataclass(frozen=True, slots=True)
class TemplateMistake:
    """One mistake in a template: where it starts (0-based), its text, and what to do."""

    offset: int
    token: str
    message: str


def template_errors(template: str) -> list[TemplateMistake]:
    """Every mistake in ``template`` (empty when it is fine)."""
    errors: list[TemplateMistake] = []
    for match in _TOKEN.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            message = f"a lone '{token}' (write '{token * 2}' for a literal brace)"
        elif name.strip() not in TEMPLATE_VARIABLES:
            shown = name if len(name) <= 40 else name[:37] + "..."
            message = (f"unknown template variable {{{shown}}} (known: {_KNOWN}; write {{{{ and "
                       "}} for literal braces)")
        else:
            continue
        errors.append(TemplateMistake(match.start(), token, message))
    return errors


def render_template(template: str, variables: Mapping[str, str]) -> str:
    """``template`` with its variables replaced; unknown or missing ones render empty."""

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        return "" if name is None else str(variables.get(name.strip(), ""))

    return _TOKEN.sub(substitute, template)


def render_system_prompt(persona: Persona, variables: Mapping[str, str]) -> str:
    """The persona's system prompt for one message. ``{persona}`` is the persona's name
    unless ``variables`` says otherwise; ``user``, ``channel``, ``guild``, ``date`` and
    ``time`` come from ``variables`` (empty when absent, e.g. no guild in a DM)."""
    return render_template(persona.prompt.system, {"persona": persona.name, **variables})
