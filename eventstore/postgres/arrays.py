"""Arrays as an append sends them: PostgreSQL's binary array format, built in one pass.

An append sends its rows column by column, as arrays (``unnest``): a few dozen arrays per
transaction. psycopg works out each list's element type and dumper element by element,
which costs more than the statement's round trip; a list wrapped in one of the types here
(:func:`array`) says its element type, and its dumper (:func:`register`) writes the
binary format directly: a header, then each element's length and bytes (-1 for NULL).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg
from psycopg.adapt import AdaptersMap, Dumper
from psycopg.pq import Format

_HEADER = struct.Struct("!iiiii")  # dimensions, has nulls, element type, length, lower bound
_NO_DIMENSION = struct.Struct("!iii")
_LENGTH = struct.Struct("!i").pack
_NULL = _LENGTH(-1)


class _Array(list[Any]):
    """A list of one PostgreSQL type's values (or None)."""

    sql_type: str


def _fixed(layout: str) -> Callable[[Any], bytes]:
    packed = struct.Struct(f"!i{layout}")
    size = struct.calcsize(f"!{layout}")

    def element(value: Any) -> bytes:
        return packed.pack(size, value)
    return element


def _sized(encode: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def element(value: Any) -> bytes:
        data = encode(value)
        return _LENGTH(len(data)) + data
    return element


_TYPES: dict[str, tuple[int, int, Callable[[Any], bytes]]] = {
    # SQL type: element type oid, array type oid, an element as its length and bytes
    "text": (25, 1009, _sized(lambda value: value.encode("utf-8"))),
    "bigint": (20, 1016, _fixed("q")),
    "integer": (23, 1007, _fixed("i")),
    "double precision": (701, 1022, _fixed("d")),
    "bytea": (17, 1001, _sized(bytes)),
}
# a list type per SQL type: psycopg picks a dumper by the parameter's Python type
_LISTS: dict[str, type[_Array]] = {
    name: type(f"{name.title().replace(' ', '')}Array", (_Array,), {"sql_type": name})
    for name in _TYPES}


def placeholders(sql_types: Iterable[str]) -> str:
    """``%b::type[]`` for each of ``sql_types``, comma-separated (for ``unnest(...)``)."""
    return ", ".join(f"%b::{name}[]" for name in sql_types)


def array(sql_type: str, values: Iterable[Any]) -> _Array:
    """``values`` as an array of ``sql_type`` (``text``, ``bigint``, ``integer``, ``double
    precision``, ``bytea``), for a ``%b`` placeholder."""
    return _LISTS[sql_type](values)


def columns(sql_types: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[_Array]:
    """``rows`` (values in the order of ``sql_types``) as one array per column."""
    by_column = list(zip(*rows, strict=True)) or [()] * len(sql_types)
    return [array(kind, values) for kind, values in zip(sql_types, by_column, strict=True)]


class _ArrayDumper(Dumper):
    format = Format.BINARY

    def __init__(self, cls: type[_Array], context: Any = None) -> None:
        super().__init__(cls, context)
        self._element_oid, self.oid, self._element = _TYPES[cls.sql_type]

    def dump(self, obj: Any) -> bytes:
        if not obj:
            return _NO_DIMENSION.pack(0, 0, self._element_oid)
        element = self._element
        nulls = 0
        parts = []
        try:
            for value in obj:
                if value is None:
                    nulls = 1
                    parts.append(_NULL)
                else:
                    parts.append(element(value))
        except struct.error as exc:  # a number past the type's range: the database's refusal
            raise psycopg.DataError(f"{obj.sql_type}[]: {exc}") from None
        return _HEADER.pack(1, nulls, self._element_oid, len(obj), 1) + b"".join(parts)


def register(adapters: AdaptersMap) -> None:
    """Dump every array type here with its own dumper on connections of ``adapters``."""
    for kind in _LISTS.values():
        adapters.register_dumper(kind, _ArrayDumper)
