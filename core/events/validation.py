"""Is stored data an event of its catalogue type? For data that did not come from this
process: an imported export, a file someone edited.

:class:`EventChecker` checks the type is catalogued, the schema version is one this
personae knows how to read (its own, or an older one it upcasts), and every field of
the (upcast) data against the type's annotations: present unless it has a default,
of the annotated kind (strings, integers, finite numbers, booleans, lists of them,
objects, the enums and refusals the catalogue decodes). The answer is a sentence, or
None when the event is sound.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Any

from .base import DomainEvent


class EventChecker:
    """Checks stored data against the catalogue (see the module docstring); keeps each
    type's resolved annotations, so checking a long export costs little per event."""

    def __init__(self, catalogue: Mapping[str, type[DomainEvent]]) -> None:
        self._catalogue = catalogue
        self._hints: dict[str, dict[str, Any]] = {}

    def problem(self, event_type: str, schema_version: int,
                data: Mapping[str, Any]) -> str | None:
        """Why ``data`` is not a sound ``event_type`` event of ``schema_version``; None
        when it is."""
        cls = self._catalogue.get(event_type)
        if cls is None:
            return (f"the event type {event_type!r} is not one this personae knows (from a "
                    "newer personae? upgrade it before importing)")
        if not 1 <= schema_version <= cls.schema_version:
            return (f"{event_type} schema version {schema_version} is not one this personae "
                    f"reads (it knows 1 to {cls.schema_version}; from a newer personae?)")
        version = schema_version
        try:
            while version < cls.schema_version:
                data = cls.upcasts[version](data)
                version += 1
        except Exception as exc:
            return f"{event_type} version {schema_version} cannot be upcast: {type(exc).__name__}"
        hints = self._hints.get(event_type)
        if hints is None:
            hints = self._hints[event_type] = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            if field.name not in data:
                if field.default is dataclasses.MISSING and \
                        field.default_factory is dataclasses.MISSING:
                    return f"{event_type} needs the field {field.name!r}, which is missing"
                continue
            if not _fits(data[field.name], hints[field.name]):
                return (f"{event_type} field {field.name!r} is {_kind(data[field.name])}, not "
                        f"{_name(hints[field.name])}")
        try:
            cls.from_data(data)
        except Exception as exc:
            return f"{event_type} does not read back: {type(exc).__name__}: {exc}"[:300]
        return None


def _fits(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and \
            math.isfinite(value)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return value in {member.value for member in hint}
    if isinstance(hint, type) and issubclass(hint, str):
        if not isinstance(value, str):
            return False
        try:
            hint(value)  # a Refusal is text of a known kind
        except ValueError:
            return False
        return True
    if origin is tuple:
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return isinstance(value, list | tuple) and all(_fits(v, item) for v in value)
    if origin in (Mapping, dict, typing.Mapping) or hint in (dict, Mapping):
        args = typing.get_args(hint)
        item = args[1] if len(args) == 2 else Any
        return isinstance(value, dict) and all(
            isinstance(k, str) and _fits(v, item) for k, v in value.items())
    return isinstance(hint, type) and isinstance(value, hint)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("collections.abc.", "")
