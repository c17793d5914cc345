"""Durations as users write them: ``250ms``, ``30s``, ``5m``, ``1h``, ``1d``."""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

HOUR = 3600.0
DAY = 86400.0
LONGEST = 3650 * DAY
"""Ten years: the most any duration may be unless the caller allows less. Nothing in
personae waits that long, and date arithmetic stays far from overflowing."""


def parse_duration(text: str | int | float, *, maximum: float = LONGEST) -> float:
    """Seconds in ``text``. A bare number is taken as seconds. A duration must not be
    negative nor longer than ``maximum`` seconds (each setting passes its own).

    Raises ValueError with a sentence a user can act on.
    """
    shown = _shown(text)
    if isinstance(text, bool):
        raise ValueError(f"{shown} is not a duration (use 30s, 5m, 1h or 1d)")
    if isinstance(text, int | float):
        try:
            seconds = float(text)
        except OverflowError:  # an int beyond any float: too long, said below
            seconds = math.inf
        if math.isnan(seconds):
            raise ValueError(f"{shown} is not a duration (use 30s, 5m, 1h or 1d)")
        if seconds < 0:
            raise ValueError(f"{shown} is negative: a duration is 0s or longer")
    else:
        match = _DURATION.match(text)
        if not match:
            raise ValueError(f"{shown} is not a duration (use 30s, 5m, 1h or 1d)")
        seconds = float(match.group(1)) * _SECONDS[match.group(2)]
    if seconds > maximum:
        raise ValueError(f"{shown} is too long (at most {format_duration(maximum)})")
    return seconds


def _shown(text: object) -> str:
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:36] + "..."


def format_duration(seconds: float) -> str:
    """``seconds`` the way a user would write them: ``7d``, ``1h``, ``90s``, ``250ms``."""
    for unit in ("d", "h", "m", "s"):
        count = seconds / _SECONDS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"
