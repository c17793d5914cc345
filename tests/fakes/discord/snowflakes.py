"""Discord-style snowflake ids: time-ordered, unique within one emulator."""

from __future__ import annotations

import time

DISCORD_EPOCH_MS = 1_420_070_400_000


class SnowflakeFactory:
    """Hands out increasing snowflakes whose timestamp part is the current time.

    disnake derives ``created_at`` from an id, so ids must carry a real time; the
    increment keeps them unique and ordered when several are made in one millisecond.
    """

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        now = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(now, self._last + 1)
        return self._last
