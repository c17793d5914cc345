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
import inspect
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, ClassVar, Self

from eventstore import NewEvent, Seal, Shred

Upcast = Callable[[Mapping[str, Any]], Mapping[str, Any]]

ERASED_TEXT = "[erased]"
"""What erased text reads back as (its key destroyed: a forget, a deleted message,
retention)."""


class DomainEvent:
    """Base of every event type in the catalogue (see the module docstring)."""

    type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    upcasts: ClassVar[Mapping[int, Upcast]] = {}
    """``{old version: step to old version + 1}``."""
    decoders: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    """Fields stored as plain JSON that read back as richer values (enums, refusals)."""
    personal: ClassVar[Mapping[str, Any]] = {}
    """The fields holding what a person wrote or what quotes them, each with the
    placeholder it reads back as once erased: sealed at rest under the key of the
    event's subject (:meth:`seals`)."""
    subject_field: ClassVar[str] = "author_id"
    """The field naming whose personal content the event holds."""
    _fields: ClassVar[tuple[str, ...]] = ()
    _reader: ClassVar[Callable[[Mapping[str, Any]], Any] | None] = None

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
        """Rebuild the event from stored data (lists come back as tuples). Raises
        TypeError when a field without a default is missing."""
        reader = cls.__dict__.get("_reader")
        if reader is None:
            reader = cls._reader = _compile_reader(cls)
        return reader(data)

    @property
    def subject(self) -> str:
        """Whose personal content this event holds ("" when nobody's is known)."""
        return str(getattr(self, self.subject_field, None) or "")

    def seals(self) -> tuple[Seal, ...]:
        """What of this event is sealed at rest, under which subject and key scope."""
        if not self.personal:
            return ()
        return (Seal(subject=self.subject, fields=self.personal),)

    def new_event(self, event_id: str, *, causation_id: str | None = None,
                  shreds: tuple[Shred, ...] = ()) -> NewEvent:
        """This event as a :class:`~eventstore.NewEvent` with ``event_id``, its personal
        fields sealed; ``shreds``: keys destroyed in the same append."""
        return NewEvent(self.type, self.to_data(), event_id=event_id,
                        schema_version=self.schema_version, causation_id=causation_id,
                        seals=self.seals(), shreds=shreds)


def _compile_reader(cls: type[DomainEvent]) -> Callable[[Mapping[str, Any]], Any]:
    """A function that builds a ``cls`` from stored data by filling its slots directly.

    Generated once per type, as dataclasses generate ``__init__``: every event of every
    prompt is read back through it, and the frozen ``__init__`` (one
    ``object.__setattr__`` per field) and a loop over the fields cost twice as much.
    """
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_missing": dataclasses.MISSING,
                           "_list": list, "_tuple": tuple}
    lines = ["def read(data):", "    event = _new(_cls)", "    get = data.get"]
    for i, field in enumerate(dataclasses.fields(cls)):  # type: ignore[arg-type]
        env[f"set{i}"] = inspect.getattr_static(cls, field.name).__set__
        lines.append(f"    value = get({field.name!r}, _missing)")
        if field.default is not dataclasses.MISSING:
            env[f"default{i}"] = field.default
            missing = f"value = default{i}"
        elif field.default_factory is not dataclasses.MISSING:
            env[f"factory{i}"] = field.default_factory
            missing = f"value = factory{i}()"
        else:
            env[f"absent{i}"] = f"{cls.__name__} data has no {field.name!r}"
            missing = f"raise TypeError(absent{i})"
        lines.append(f"    if value is _missing: {missing}")
        decoder = cls.decoders.get(field.name)
        if decoder is not None:
            env[f"decode{i}"] = decoder
            lines.append(f"    elif value is not None: value = decode{i}(value)")
        else:
            lines.append("    elif type(value) is _list: value = _tuple(value)")
        lines.append(f"    set{i}(event, value)")
    lines.append("    return event")
    exec("\n".join(lines), env)  # the source above is made of field names and indexes only
    return env["read"]


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
