"""Upcasting: old event shapes are converted on read, never rewritten on disk.

Register one function per step, keyed by ``(type, from_version)``; it receives the
data of that version and returns the data of ``from_version + 1``. Reads apply
the steps in a chain until no step is registered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

Upcast = Callable[[Mapping[str, Any]], Mapping[str, Any]]


class Upcasters:
    """A registry of upcasting steps. Pass one to the store; it applies them on read."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcast] = {}
        self._types: set[str] = set()

    @property
    def types(self) -> AbstractSet[str]:
        """The event types with at least one step: reads skip the others cheaply."""
        return self._types

    def register(self, event_type: str, from_version: int, step: Upcast) -> None:
        """Register ``step``, which turns ``event_type`` data of ``from_version`` into the next."""
        key = (event_type, from_version)
        if key in self._steps:
            raise ValueError(f"an upcaster for {event_type} v{from_version} is already registered")
        self._steps[key] = step
        self._types.add(event_type)

    def upcast(
        self, event_type: str, schema_version: int, data: Mapping[str, Any]
    ) -> tuple[int, Mapping[str, Any]]:
        """Return ``(newest schema version, data in that shape)``."""
        while (step := self._steps.get((event_type, schema_version))) is not None:
            data = step(data)
            schema_version += 1
        return schema_version, data
