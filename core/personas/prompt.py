"""Prompt templates: one renderer and one set of variables for every prompt text.

The system prompt, the example exchanges, the post-history instructions, lorebook
entries and greetings are all templates of the same kind: ``{name}`` is a variable
(:data:`VARIABLES`), ``{random:a,b,c}`` picks one of its options, ``{roll:2d6}`` rolls
dice, and ``{{`` and ``}}`` are literal braces. Character-card macros (``{{char}}``,
``{{user}}``, ``{{random:a,b}}``...) are turned into these when a card is imported
(:mod:`core.personas.cards`), so the renderer knows one syntax.

Templates are checked when a persona loads (:func:`template_errors`), so rendering
at message time cannot fail: a variable the caller does not supply renders empty.
Randomness comes from the ``random_seed`` in the variables (which the reply records
with its other variables): the same variables render the same text, so a recorded
prompt is rebuilt exactly.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from .model import Persona


@dataclass(frozen=True, slots=True)
class Variable:
    """A template variable: what it is, on Discord and in the terminal."""

    name: str
    meaning: str
    discord: str
    terminal: str


VARIABLES: tuple[Variable, ...] = (
    Variable("persona", "the persona's name", "the persona's `name`", "the persona's `name`"),
    Variable("user", "who the persona is answering",
             "their display name on the server (nickname first)",
             "`--user`, else your login name"),
    Variable("channel", "where the conversation is",
             "the channel's name (a thread's own name in a thread); `DM` in direct messages",
             "`--channel`, default `terminal`"),
    Variable("guild", "the server",
             "the server's name; `Direct Messages` in direct messages",
             "`--guild`, default `terminal`"),
    Variable("date", "the day of the message, UTC", "`2026-05-01`", "`2026-05-01`"),
    Variable("time", "the time of the message, UTC, 24-hour", "`14:05`", "`14:05`"),
    Variable("weekday", "the day of the week of the message, UTC", "`Friday`", "`Friday`"),
    Variable("idle_duration", "how long the conversation was quiet before this message",
             "`just now`, `5 minutes`, `2 hours`, `3 days`", "the same"),
)
"""Every template variable, documented in docs/personas.md from this table."""

TEMPLATE_VARIABLES = frozenset(v.name for v in VARIABLES)
SEED = "random_seed"
"""The variable holding the seed of ``{random:...}`` and ``{roll:...}`` (not a template
variable: it is recorded so that a prompt renders the same again)."""

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
# the first six in alphabetical order, as they have always been listed, then the rest
_KNOWN = ", ".join("{" + v + "}" for v in (
    *sorted(TEMPLATE_VARIABLES - {"weekday", "idle_duration"}), "weekday", "idle_duration"))
_DICE = re.compile(r"^\s*(\d{0,3})\s*d\s*(\d{1,6})\s*(?:([+-])\s*(\d{1,6}))?\s*$", re.IGNORECASE)
_MOST_DICE = 100


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
        else:
            problem = _name_problem(name.strip())
            if problem is None:
                continue
            shown = name if len(name) <= 40 else name[:37] + "..."
            message = problem.replace("{shown}", "{" + shown + "}")
        errors.append(TemplateMistake(match.start(), token, message))
    return errors


def _name_problem(name: str) -> str | None:
    function, colon, argument = name.partition(":")
    if colon and function.strip() in _FUNCTIONS:
        return _FUNCTIONS[function.strip()][0](argument)
    if name in TEMPLATE_VARIABLES:
        return None
    return ("unknown template variable {shown} (known: " + _KNOWN + ", {random:a,b}, "
            "{roll:2d6}; write {{ and }} for literal braces)")


def render_template(template: str, variables: Mapping[str, str], *, where: str = "") -> str:
    """``template`` with its variables replaced; unknown or missing ones render empty.
    ``where`` names the text (``system``, ``lorebook[2]``) so that each text draws its
    own random choices from the seed."""
    rng: random.Random | None = None

    def substitute(match: re.Match[str]) -> str:
        nonlocal rng
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        if name is None:
            return ""
        function, colon, argument = name.strip().partition(":")
        if colon and function.strip() in _FUNCTIONS:
            if rng is None:
                rng = random.Random(f"{variables.get(SEED, '')}/{where}")
            return _FUNCTIONS[function.strip()][1](argument, rng)
        return str(variables.get(name.strip(), ""))

    return _TOKEN.sub(substitute, template)


def render_text(persona: Persona, template: str, variables: Mapping[str, str],
                where: str) -> str:
    """One of ``persona``'s prompt texts for one message: ``{persona}`` is its name
    unless ``variables`` says otherwise."""
    return render_template(template, {"persona": persona.name, **variables}, where=where)


def render_system_prompt(persona: Persona, variables: Mapping[str, str]) -> str:
    """The persona's system prompt for one message (see :func:`render_text`)."""
    return render_text(persona, persona.prompt.system, variables, "system")


def message_variables(*, user: str, channel: str, guild: str, now: float,
                      previous: float | None = None, seed: str = "") -> dict[str, str]:
    """The variables of one message, as every part of personae renders them: ``now`` is
    when it was sent, ``previous`` when the message before it in the conversation was
    (None: it is the first)."""
    moment = datetime.fromtimestamp(now, UTC)
    return {
        "user": user,
        "channel": channel,
        "guild": guild,
        "date": moment.strftime("%Y-%m-%d"),
        "time": moment.strftime("%H:%M"),
        "weekday": moment.strftime("%A"),
        "idle_duration": idle_duration(now - previous if previous is not None else 0.0),
        SEED: seed,
    }


def idle_duration(seconds: float) -> str:
    """A quiet spell in words: ``just now``, ``1 minute``, ``5 minutes``, ``2 hours``..."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "just now"


# -- functions ---------------------------------------------------------------------------


def _options(argument: str) -> list[str]:
    """``a,b,c`` or ``a::b::c`` (SillyTavern's form for options that hold commas)."""
    parts = argument.split("::") if "::" in argument else argument.split(",")
    return [part.strip() for part in parts]


def _random_problem(argument: str) -> str | None:
    if not [o for o in _options(argument) if o]:
        return "{shown} has no options: write {random:rain,snow,sun}"
    return None


def _random(argument: str, rng: random.Random) -> str:
    return rng.choice(_options(argument))


def _roll_problem(argument: str) -> str | None:
    match = _DICE.match(argument) or (re.match(r"^\s*\d{1,6}\s*$", argument) and _DICE.match(
        f"d{argument.strip()}"))
    if not match:
        return "{shown} is not a dice roll: write {roll:d20}, {roll:2d6} or {roll:1d8+2}"
    count = int(match.group(1) or 1)
    if not 1 <= count <= _MOST_DICE or int(match.group(2)) < 1:
        return f"{{shown}} rolls 1 to {_MOST_DICE} dice of at least 1 side"
    return None


def _roll(argument: str, rng: random.Random) -> str:
    text = argument if _DICE.match(argument) else f"d{argument.strip()}"
    match = _DICE.match(text)
    assert match is not None  # checked when the persona loaded
    count, sides = int(match.group(1) or 1), int(match.group(2))
    total = sum(rng.randint(1, sides) for _ in range(count))
    if match.group(3):
        total += int(match.group(4)) * (1 if match.group(3) == "+" else -1)
    return str(total)


_FUNCTIONS: Mapping[str, tuple[Callable[[str], str | None], Callable[[str, random.Random], str]]] = {
    "random": (_random_problem, _random),
    "roll": (_roll_problem, _roll),
}
