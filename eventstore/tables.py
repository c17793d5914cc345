"""Projection tables held in memory: the in-memory backend's, and the scratch copy any
backend rebuilds a projection into to compare it with the live one.

Values are coerced to their column's type on the way in (as SQLite and PostgreSQL do),
so rows compare equal across backends. Changes can be journalled and rolled back, which
gives the in-memory backend the same all-or-nothing appends as a database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import NoSuchTable
from .projections import Conflict, Projection, Table, Where

_COERCE = {"text": str, "integer": int, "real": float}

_Key = tuple[Any, ...]
_Row = tuple[Any, ...]


class MemoryTables:
    """A :class:`~eventstore.projections.TableWriter` over dictionaries."""

    def __init__(self, projections: Sequence[Projection] = ()) -> None:
        self._tables: dict[str, Table] = {}
        self._rows: dict[str, dict[_Key, _Row]] = {}
        self._journal: list[tuple[str, _Key, _Row | None]] | None = None
        for projection in projections:
            self.create(projection)

    def create(self, projection: Projection) -> None:
        """Create (or empty) ``projection``'s tables."""
        for table in projection.tables:
            self.create_table(table)

    def create_table(self, table: Table) -> None:
        """Create (or empty) ``table``."""
        self._tables[table.name] = table
        self._rows[table.name] = {}

    def drop(self, projection: Projection) -> None:
        """Forget ``projection``'s tables."""
        for table in projection.tables:
            self._tables.pop(table.name, None)
            self._rows.pop(table.name, None)

    # -- journal ---------------------------------------------------------------------

    def begin(self) -> int:
        """Start (or continue) journalling changes; returns a mark to roll back to."""
        if self._journal is None:
            self._journal = []
        return len(self._journal)

    def rollback(self, mark: int = 0) -> None:
        """Undo every change journalled since ``mark``."""
        journal = self._journal or []
        while len(journal) > mark:
            table, key, old = journal.pop()
            if old is None:
                self._rows[table].pop(key, None)
            else:
                self._rows[table][key] = old

    def commit(self) -> None:
        """Keep the journalled changes and stop journalling."""
        self._journal = None

    def changed(self) -> list[tuple[str, _Key]]:
        """Each row the journalled changes touched, once, as (table, key)."""
        return list(dict.fromkeys((table, key) for table, key, _ in self._journal or ()))

    # -- rows held as another store has them -----------------------------------------

    def load(self, table: str, row: Sequence[Any]) -> None:
        """Hold ``row`` (every column, in order, as stored elsewhere) without journalling
        it: a rollback keeps it."""
        values = tuple(row)
        self._rows[table][_key_of(self._tables[table], values)] = values

    def current(self, table: str, key: _Key) -> _Row | None:
        """The row with ``key`` (every column, in order), if there is one."""
        return self._rows[table].get(key)

    # -- TableWriter -----------------------------------------------------------------

    def rows(self, table: str, where: Where | None = None, *, order_by: Sequence[str] = (),
             limit: int | None = None) -> list[dict[str, Any]]:
        """See :meth:`~eventstore.projections.TableReader.rows`."""
        spec = self._tables.get(table)
        if spec is None:
            raise NoSuchTable(f"cannot read the projection table {table!r}: no such table")
        names = spec.column_names
        found = [dict(zip(names, row, strict=True)) for row in self._matching(spec, where)]
        if order_by:
            found.sort(key=lambda row: tuple(row[c] for c in order_by))
        return found if limit is None else found[:limit]

    def insert(self, table: str, row: Mapping[str, Any], *, on_conflict: Conflict = "error"
               ) -> None:
        """See :meth:`~eventstore.projections.TableWriter.insert`."""
        spec = self._tables[table]
        values = _row(spec, row)
        key = _key_of(spec, values)
        if key in self._rows[table]:
            if on_conflict == "ignore":
                return
            if on_conflict == "error":
                raise ValueError(f"{table}: a row with the key {key} exists already")
        self._put(table, key, values)

    def add(self, table: str, key: Mapping[str, Any], amounts: Mapping[str, int | float]) -> None:
        """See :meth:`~eventstore.projections.TableWriter.add`."""
        spec = self._tables[table]
        values = _row(spec, {**key, **amounts})
        row_key = _key_of(spec, values)
        old = self._rows[table].get(row_key)
        if old is not None:
            names = spec.column_names
            values = tuple(old[i] + values[i] if names[i] in amounts else old[i]
                           for i in range(len(names)))
        self._put(table, row_key, values)

    def update(self, table: str, where: Where, values: Mapping[str, Any]) -> None:
        """See :meth:`~eventstore.projections.TableWriter.update`."""
        spec = self._tables[table]
        names = spec.column_names
        changes = {names.index(c): coerce(spec, c, v) for c, v in values.items()}
        for row in list(self._matching(spec, where)):
            new = tuple(changes.get(i, value) for i, value in enumerate(row))
            old_key = _key_of(spec, row)
            self._put(table, old_key, None)
            self._put(table, _key_of(spec, new), new)

    def delete(self, table: str, where: Where) -> None:
        """See :meth:`~eventstore.projections.TableWriter.delete`."""
        spec = self._tables[table]
        for row in list(self._matching(spec, where)):
            self._put(table, _key_of(spec, row), None)

    # -- helpers ---------------------------------------------------------------------

    def _matching(self, spec: Table, where: Where | None) -> list[_Row]:
        rows = self._rows[spec.name]
        if not where:
            return list(rows.values())
        names = spec.column_names
        tests = []
        for column, wanted in where.items():
            index = names.index(column)
            if isinstance(wanted, list | tuple | set | frozenset):
                tests.append((index, {coerce(spec, column, w) for w in wanted}))
            else:
                tests.append((index, {coerce(spec, column, wanted)}))
        if len(where) == len(spec.key) and all(c in where for c in spec.key) and all(
                len(t[1]) == 1 for t in tests):
            key = tuple(next(iter(dict(tests)[names.index(c)])) for c in spec.key)
            row = rows.get(key)
            return [row] if row is not None else []
        return [row for row in rows.values() if all(row[i] in allowed for i, allowed in tests)]

    def _put(self, table: str, key: _Key, row: _Row | None) -> None:
        rows = self._rows[table]
        if self._journal is not None:
            self._journal.append((table, key, rows.get(key)))
        if row is None:
            rows.pop(key, None)
        else:
            rows[key] = row


def coerce(spec: Table, column: str, value: Any) -> Any:
    """``value`` as ``spec``'s ``column`` holds it (ValueError: no such column, or a null
    where none is allowed). Backends that cannot coerce as SQLite does coerce with this,
    so every backend stores what a rebuild in memory stores."""
    column_spec = spec.column(column)
    if column_spec is None:
        raise ValueError(f"{spec.name} has no column {column!r}")
    if value is None:
        if not column_spec.nullable:
            raise ValueError(f"{spec.name}.{column} may not be null")
        return None
    return _COERCE[column_spec.type](value)


def _row(spec: Table, row: Mapping[str, Any]) -> _Row:
    unknown = set(row) - set(spec.column_names)
    if unknown:
        raise ValueError(f"{spec.name} has no column(s) {sorted(unknown)}")
    return tuple(coerce(spec, c.name, row.get(c.name)) for c in spec.columns)


def _key_of(spec: Table, row: _Row) -> _Key:
    names = spec.column_names
    return tuple(row[names.index(c)] for c in spec.key)
