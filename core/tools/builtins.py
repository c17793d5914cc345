"""The built-in tools, which need no network: ``roll`` (dice expressions), ``now`` (the
time in a zone) and ``lore`` (search the persona's own lorebook)."""

from __future__ import annotations

import random
import re
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..gateway.model import ToolDefinition
from ..personas.lorebook import activate_entries
from ..personas.model import Lorebook
from .base import ToolContext, ToolError

MAX_DICE = 100
MAX_SIDES = 1000
MAX_TERMS = 10
_TERM = re.compile(r"([+-]?)(?:(\d*)d(\d+)|(\d+))", re.IGNORECASE)
_WORD = re.compile(r"\w{3,}")


class Roll:
    """``roll``: dice such as ``2d6+3`` or ``d20 + 1d4 - 1`` (at most 100 dice of at most
    1000 sides, 10 terms)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    @property
    def definition(self) -> ToolDefinition:
        """Offered as: roll(expression)."""
        return ToolDefinition(
            name="roll", description="Roll dice. The expression uses dice notation, such as "
                                     "1d20, 2d6+3 or d8 + 1d4 - 1.",
            parameters={"type": "object", "properties": {"expression": {
                "type": "string", "description": "Dice notation, e.g. 2d6+3",
                "maxLength": 100}}, "required": ["expression"], "additionalProperties": False})

    async def call(self, arguments: Mapping[str, Any], context: ToolContext) -> str:
        """The rolls and their total, e.g. ``2d6+3: [4, 2] + 3 = 9``."""
        expression = re.sub(r"\s+", "", str(arguments["expression"]))
        terms = list(_TERM.finditer(expression))
        if not terms or "".join(t.group(0) for t in terms) != expression:
            raise ToolError(f"{arguments['expression']!r} is not dice notation (try 2d6+3)")
        if len(terms) > MAX_TERMS:
            raise ToolError(f"at most {MAX_TERMS} terms")
        total, shown = 0, []
        for term in terms:
            sign = -1 if term.group(1) == "-" else 1
            if term.group(3) is not None:
                count, sides = int(term.group(2) or 1), int(term.group(3))
                if not 1 <= count <= MAX_DICE or not 2 <= sides <= MAX_SIDES:
                    raise ToolError(f"1 to {MAX_DICE} dice of 2 to {MAX_SIDES} sides")
                rolls = [self._rng.randint(1, sides) for _ in range(count)]
                total += sign * sum(rolls)
                shown.append(f"{'-' if sign < 0 else '+'} {rolls}")
            else:
                total += sign * int(term.group(4))
                shown.append(f"{'-' if sign < 0 else '+'} {term.group(4)}")
        text = " ".join(shown).removeprefix("+ ")
        return f"{expression}: {text} = {total}"


class Now:
    """``now``: the date and time in an IANA time zone (UTC by default)."""

    @property
    def definition(self) -> ToolDefinition:
        """Offered as: now(timezone?)."""
        return ToolDefinition(
            name="now", description="The current date and time, in a time zone.",
            parameters={"type": "object", "properties": {"timezone": {
                "type": "string", "description": "An IANA time zone such as Europe/Paris "
                                                 "(default UTC)", "maxLength": 64}},
                "additionalProperties": False})

    async def call(self, arguments: Mapping[str, Any], context: ToolContext) -> str:
        """e.g. ``2026-05-01 14:03 (Wednesday), Europe/Paris, UTC+02:00``."""
        name = str(arguments.get("timezone") or "UTC")
        try:
            zone = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ToolError(f"unknown time zone {name!r} (use an IANA name such as "
                            "Europe/Paris)") from None
        moment = datetime.fromtimestamp(context.clock(), UTC).astimezone(zone)
        offset = moment.strftime("%z")
        return (f"{moment:%Y-%m-%d %H:%M} ({moment:%A}), {name}, "
                f"UTC{offset[:3]}:{offset[3:]}")


class Lore:
    """``lore``: the persona's lorebook entries that match a query (by their keys, then by
    shared words), at most three."""

    @property
    def definition(self) -> ToolDefinition:
        """Offered as: lore(query)."""
        return ToolDefinition(
            name="lore", description="Search your own lorebook (background facts) for a "
                                     "topic.",
            parameters={"type": "object", "properties": {"query": {
                "type": "string", "description": "What to look up", "maxLength": 200}},
                "required": ["query"], "additionalProperties": False})

    async def call(self, arguments: Mapping[str, Any], context: ToolContext) -> str:
        """The matching entries' text, or a sentence saying there is none."""
        query = str(arguments["query"])
        book = context.persona.lorebook
        enabled = tuple(e for e in book.entries if e.enabled)
        if not enabled:
            return "the lorebook is empty"
        by_keys = Lorebook(entries=tuple(e for e in enabled if not e.constant and e.keys),
                           scan_depth=1, token_budget=10**9)
        found = [e.content for e in activate_entries(by_keys, [query], lambda text: 0)]
        words = {w.lower() for w in _WORD.findall(query)}
        for entry in enabled:
            if entry.content not in found and words & {w.lower() for w in
                                                       _WORD.findall(entry.content)}:
                found.append(entry.content)
        if not found:
            return f"nothing in the lorebook about {query!r}"
        return "\n\n".join(found[:3])
