"""What every event type of the catalogue shares: its stored shape, its typed read and
its upcasters.

An event type is a frozen, keyword-only dataclass with a ``type`` name and a
``schema_version``. :meth:`DomainEvent.to_data` gives the JSON object stored in the
log; :meth:`DomainEvent.from_data` rebuilds the event from stored data (tolerant of
fields added later: unknown keys are ignored, missing ones take their defaults).
When a type's shape changes, bump its ``schema_version`` and register in ``upcasts``
the step from the old shape to the new one: old events are upcast on read, never
rewritten.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, ClassVar, Self

from eventstore import NewEvent

Upcast = Callable[[Mapping[str, Any]], Mapping[str, Any]]


class DomainEvent:
    """Base of every event type in the catalogue (see the module docstring)."""

    type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    upcasts: ClassVar[Mapping[int, Upcast]] = {}
    """``{old version: step to old version + 1}``."""
    decoders: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    """Fields stored as plain JSON that read back as richer values (enums, refusals)."""
    _fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for version in cls.upcasts:
            if not 1 <= version < cls.schema_version:
                raise TypeError(f"{cls.__name__}: an upcast from version {version} cannot "
                                f"lead to schema version {cls.schema_version}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The fields of this type, as stored."""
        if "_fields" not in cls.__dict__:  # computed once per type (dataclasses.fields is slow)
            cls._fields = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        return cls._fields

    def to_data(self) -> dict[str, Any]:
        """The JSON-ready data stored in the log."""
        return {name: _plain(getattr(self, name)) for name in self.field_names()}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild the event from stored data (lists come back as tuples)."""
        values = {}
        decoders = cls.decoders
        for name in cls.field_names():
            if name in data:
                value = data[name]
                if name in decoders and value is not None:
                    value = decoders[name](value)
                elif type(value) is list:
                    value = tuple(value)
                values[name] = value
        return cls(**values)

    def new_event(self, event_id: str, *, causation_id: str | None = None) -> NewEvent:
        """This event as a :class:`~eventstore.NewEvent` with ``event_id``."""
        return NewEvent(self.type, self.to_data(), event_id=event_id,
                        schema_version=self.schema_version, causation_id=causation_id)


_SCALARS = frozenset({str, int, float, bool})


def _plain(value: Any) -> Any:
    if value is None or type(value) in _SCALARS:
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, str):  # a str subclass, such as a Refusal: stored as its text
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
