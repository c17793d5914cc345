"""Durations as users write them: ``250ms``, ``30s``, ``5m``, ``1h``, ``1d``."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``text``. A bare number is taken as seconds.

    Raises ValueError with a sentence a user can act on.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration (use 30s, 5m, 1h or 1d)")
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (use 30s, 5m, 1h or 1d)")
    return float(match.group(1)) * _SECONDS[match.group(2)]
