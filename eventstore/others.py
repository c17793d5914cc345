"""What a writer's commits found other writers had appended, stream by stream: how a
cache of a shared log knows when it can be trusted without reading the log again."""

from __future__ import annotations

from collections.abc import Collection

MAX_STREAMS = 100_000
"""Streams remembered one by one; past this, every stream counts as appended to."""


class OtherWriters:
    """A stamp per stream that changes whenever one of this writer's commits finds that
    someone else appended to that stream since this writer's previous commit (or cannot
    tell which streams). While a stream's stamp stays the same, every event of it up to
    this writer's last commit is this writer's own.

    The writer's thread calls :meth:`found` before the append that found out returns;
    any thread may call :meth:`stamp`."""

    def __init__(self) -> None:
        self._mark = 0
        self._all = 0  # the mark of the last commit that could not tell which streams
        self._streams: dict[str, int] = {}

    def stamp(self, stream_id: str) -> int:
        """The stream's stamp now."""
        return max(self._all, self._streams.get(stream_id, 0))

    def found(self, streams: Collection[str] | None) -> None:
        """A commit found ``streams`` appended to by others since this writer's previous
        commit; None: it cannot tell which (its first commit, or too many to list)."""
        self._mark += 1
        if streams is None or len(self._streams) + len(streams) > MAX_STREAMS:
            self._all = self._mark  # set first: a stamp read meanwhile already changes
            self._streams = {}
            return
        for stream_id in streams:
            self._streams[stream_id] = self._mark
