"""Character-card macros (SillyTavern's ``{{...}}``) as persona templates.

Card text is written for SillyTavern, where ``{{char}}``, ``{{user}}``, ``{{time}}``,
``{{random:a,b}}`` and friends are filled in when a prompt is built. Imported, they
become the template syntax of :mod:`core.personas.prompt`, which renders every prompt
text the same way; every other brace is escaped, so the text renders as written.

| card macro | becomes |
| --- | --- |
| ``{{char}}``, ``<BOT>`` | ``{persona}`` |
| ``{{user}}``, ``<USER>`` | ``{user}`` |
| ``{{time}}``, ``{{isotime}}`` | ``{time}`` (UTC, 24-hour) |
| ``{{date}}``, ``{{isodate}}`` | ``{date}`` (2026-05-01) |
| ``{{weekday}}`` | ``{weekday}`` |
| ``{{idle_duration}}`` | ``{idle_duration}`` |
| ``{{random:a,b}}``, ``{{random::a::b}}`` | ``{random:a,b}`` (the same options) |
| ``{{roll:2d6}}`` | ``{roll:2d6}`` |
| ``{{description}}``, ``{{personality}}``, ``{{scenario}}`` | that card field's text |
| ``{{newline}}`` | a line break |
| ``{{noop}}``, ``{{// comment}}`` | nothing |

Anything else (``{{lastMessage}}``, ``{{getvar::x}}``...) has no equivalent: it is kept
as written, and the import says so with the field's name. ``{{trim}}`` and
``{{persona}}`` (the user's own persona description) are dropped, saying so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_MACRO = re.compile(r"\{\{(.*?)\}\}|<BOT>|<USER>|[{}]", re.IGNORECASE | re.DOTALL)
_SIMPLE = {
    "char": "{persona}", "user": "{user}", "time": "{time}", "isotime": "{time}",
    "date": "{date}", "isodate": "{date}", "weekday": "{weekday}",
    "idle_duration": "{idle_duration}", "newline": "\n", "noop": "",
}
_FIELDS = ("description", "personality", "scenario")
_ROLL = re.compile(r"^roll[:\s]\s*(\d{0,3}\s*d\s*\d{1,6}(?:\s*[+-]\s*\d{1,6})?|\d{1,6})\s*$",
                   re.IGNORECASE)


class Macros:
    """Turns one card's text into templates, noting in ``warnings`` each macro it had to
    drop or keep as written (with the field it was in)."""

    def __init__(self, warnings: list[str], *, fields: Mapping[str, str] | None = None) -> None:
        self._warnings = warnings
        self._fields = dict(fields or {})
        self._noted: set[tuple[str, str]] = set()

    def template(self, text: str, where: str, *, expanding: frozenset[str] = frozenset()
                 ) -> str:
        """``text`` (the card field ``where``) as a persona template."""

        def replace(match: re.Match[str]) -> str:
            token = match.group(0)
            if token in "{}":
                return token * 2
            if token.upper() in ("<BOT>", "<USER>"):
                return "{persona}" if token.upper() == "<BOT>" else "{user}"
            return self._macro(match.group(1), token, where, expanding)

        return _MACRO.sub(replace, text)

    def plain(self, text: str, char_name: str) -> str:
        """``text`` as plain words for people (not a template): ``{{char}}`` is the name,
        ``{{user}}`` "the user", other macros are left out."""

        def replace(match: re.Match[str]) -> str:
            token = match.group(0)
            if token in "{}":
                return token
            name = (match.group(1) or ("char" if token.upper() == "<BOT>" else "user"))
            name = name.strip().lower()
            return char_name if name == "char" else "the user" if name == "user" else ""

        return _MACRO.sub(replace, text)

    def _macro(self, body: str, token: str, where: str, expanding: frozenset[str]) -> str:
        name = body.strip()
        key = name.lower()
        if key in _SIMPLE:
            return _SIMPLE[key]
        if key.startswith("//"):
            return ""
        if key.startswith("random:"):
            options = name[len("random:"):]
            options = options[1:] if options.startswith(":") else options  # random::a::b
            if "{" not in options and "}" not in options and options.strip():
                return "{random:" + options + "}"
        if (roll := _ROLL.match(name)) is not None:
            return "{roll:" + roll.group(1).replace(" ", "") + "}"
        if key in _FIELDS and key not in expanding:
            return self.template(self._fields.get(key, ""), where, expanding=expanding | {key})
        if key in ("trim", "persona", "original"):
            self._note(where, token, "has no equivalent in personae; left out")
            return ""
        self._note(where, token, "has no equivalent in personae; kept as written")
        return token.replace("{", "{{").replace("}", "}}")

    def _note(self, where: str, token: str, what: str) -> None:
        shown = token if len(token) <= 40 else token[:37] + "...}}"
        if (where, shown) not in self._noted:
            self._noted.add((where, shown))
            self._warnings.append(f"{where}: the macro {shown} {what}")
