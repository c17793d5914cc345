"""Which events a replay shows: the filters a user gives, as a scan of the log.

Streams, types, times and positions are applied by the store with its indexes;
personas and users look inside each event's data, and only for the events the other
criteria kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eventstore import EventFilter, LogReader

from ..events import MessageReceived
from ..events.ids import conversation_prefix


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """What to show. Empty sets mean "any"; every given criterion must hold.

    ``streams`` are resolved conversation streams; ``since``/``until`` bound
    ``recorded_at`` (Unix seconds); ``after``/``upto`` bound the position
    (``after`` exclusive, ``upto`` inclusive).
    """

    streams: frozenset[str] = frozenset()
    personas: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    since: float | None = None
    until: float | None = None
    after: int = 0
    upto: int | None = None

    def as_filter(self) -> EventFilter:
        """The scan of the log this selection is."""
        matches = self._matches if self.personas or self.users else None
        return EventFilter(streams=self.streams, types=self.types, since=self.since,
                           until=self.until, after=self.after, upto=self.upto, matches=matches)

    def _matches(self, event_type: str, data: Mapping[str, Any]) -> bool:
        if self.personas and not (_personas_of(event_type, data) & self.personas):
            return False
        return not self.users or bool(_users_of(data) & self.users)


EVERYTHING = Selection()
"""The selection that keeps every event."""


def _personas_of(event_type: str, data: Mapping[str, Any]) -> set[str]:
    found = {str(data[k]) for k in ("persona_id", "from_persona", "invoked_persona")
             if data.get(k)}
    if event_type == MessageReceived.type:
        found.update(str(m) for m in data.get("mentions") or ())
    return found


def _users_of(data: Mapping[str, Any]) -> set[str]:
    found = {str(data[k]) for k in ("author_id", "by_user", "owner_id", "quotes", "subject")
             if data.get(k)}
    if data.get("author_name"):
        found.add(str(data["author_name"]))
    scope_keys = data.get("scope_keys")
    if isinstance(scope_keys, Mapping) and scope_keys.get("user"):
        found.add(str(scope_keys["user"]))
    return found


def conversation_streams(log: LogReader, conversation: str) -> frozenset[str]:
    """The streams ``conversation`` names: a stream id as is, or a channel id on any
    platform (``conv:<platform>:<channel>`` for each platform that has one), with the
    conversations under it (a terminal user's, one per persona:
    ``conv:console:<user>:<persona>``)."""
    if log.stream_version(conversation):
        return frozenset({conversation})
    found = set()
    for platform in platforms(log):
        stream = conversation_prefix(platform) + conversation
        if log.stream_version(stream):
            found.add(stream)
        found.update(f"{stream}:{part}" for part in log.stream_segments(f"{stream}:"))
    return frozenset(found)


def platforms(log: LogReader) -> list[str]:
    """Every platform with a conversation in the log."""
    return log.stream_segments("conv:")
