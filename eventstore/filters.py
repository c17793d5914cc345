"""Which events a scan returns: criteria every backend applies the same way.

The structural criteria (streams, types, time, positions) are the backend's to apply
with its indexes; ``matches`` looks inside an event's data and runs in Python, only on
events the structural criteria kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DataPredicate = Callable[[str, Mapping[str, Any]], bool]
"""``(event type, data) -> keep?``"""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFilter:
    """What to scan. Empty sets mean "any"; every given criterion must hold.

    ``since``/``until`` bound ``recorded_at`` (Unix seconds, inclusive); ``after``/``upto``
    bound the position (``after`` exclusive, ``upto`` inclusive).
    """

    streams: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    since: float | None = None
    until: float | None = None
    after: int = 0
    upto: int | None = None
    matches: DataPredicate | None = None

    def keeps(self, event_type: str, stream_id: str, recorded_at: float, position: int) -> bool:
        """Whether an event passes the structural criteria (a backend without indexes
        for them checks each event with this)."""
        return (
            position > self.after
            and (self.upto is None or position <= self.upto)
            and (not self.streams or stream_id in self.streams)
            and (not self.types or event_type in self.types)
            and (self.since is None or recorded_at >= self.since)
            and (self.until is None or recorded_at <= self.until)
        )


EVERYTHING = EventFilter()
"""The filter that keeps every event."""
