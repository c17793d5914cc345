"""Projection tables in the log's PostgreSQL schema: the SQL behind each
:class:`~eventstore.projections.TableWriter` operation.

Tables are generated from their :class:`~eventstore.projections.Table` (text, bigint,
double precision; text in code point order, as SQLite sorts). Values are coerced in
Python exactly as the in-memory rebuild coerces them, then passed with explicit casts,
so a live table and its rebuild agree value for value. A table no registered projection
declares (a command-line tool reading the bot's tables) is described from the catalog.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from ..errors import NoSuchTable
from ..projections import Column, ColumnType, Conflict, Projection, Table, Where
from ..tables import coerce
from . import arrays

_TYPES: dict[ColumnType, str] = {"text": 'text COLLATE "C"', "integer": "bigint",
                                 "real": "double precision"}
_CASTS: dict[ColumnType, str] = {"text": "text", "integer": "bigint", "real": "double precision"}
_FROM_CATALOG: dict[str, ColumnType] = {"text": "text", "bigint": "integer", "integer": "integer",
                                        "double precision": "real"}


Statement = tuple[str, list[Any]]
"""A statement's text (``%b`` placeholders) and its parameters."""


def _ident(name: str) -> str:
    return sql.Identifier(name).as_string()


class TableCatalog:
    """What a log knows of its projection tables (declared, or read from the catalog)
    and the SQL for each shape of operation; shared by the log's connections."""

    def __init__(self, schema: str) -> None:
        self._schema = schema
        self._tables: dict[str, Table] = {}
        self._sql: dict[tuple[Any, ...], str] = {}

    def register(self, projection: Projection) -> None:
        """Know ``projection``'s tables (which exist in the schema)."""
        for table in projection.tables:
            self._tables[table.name] = table

    def create(self, conn: psycopg.Connection, projection: Projection) -> None:
        """Create ``projection``'s (empty) tables and know them."""
        for table in projection.tables:
            columns = ", ".join(
                f"{_ident(c.name)} {_TYPES[c.type]}{'' if c.nullable else ' NOT NULL'}"
                for c in table.columns)
            key = ", ".join(_ident(c) for c in table.key)
            conn.execute(f"CREATE TABLE {self.qualified(table.name)} ({columns}, "
                         f"PRIMARY KEY ({key}))")
        self.register(projection)

    def drop(self, conn: psycopg.Connection, projection: Projection) -> None:
        """Drop ``projection``'s tables."""
        for table in projection.tables:
            conn.execute(f"DROP TABLE IF EXISTS {self.qualified(table.name)}")
            self._tables.pop(table.name, None)
            self._sql = {k: v for k, v in self._sql.items() if k[1] != table.name}

    def spec(self, conn: psycopg.Connection, name: str) -> Table:
        """The table ``name``: declared, else described from the catalog (NoSuchTable)."""
        table = self._tables.get(name)
        if table is not None:
            return table
        rows = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, "
            "coalesce(array_position(i.indkey::int2[], a.attnum), 0) "
            "FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid "
            "AND i.indisprimary WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 "
            "AND NOT a.attisdropped ORDER BY a.attnum", (self.qualified(name),)).fetchall()
        if not rows:
            raise NoSuchTable(f"cannot read the projection table {name!r}: no such table")
        if any(kind not in _FROM_CATALOG for _, kind, _, _ in rows):
            raise NoSuchTable(f"{name!r} is not a projection table")
        table = Table(
            name=name,
            columns=tuple(Column(name=column, type=_FROM_CATALOG[kind], nullable=nullable)
                          for column, kind, nullable, _ in rows),
            key=tuple(column for column, _, _, place in sorted(rows, key=lambda r: r[3])
                      if place))
        self._tables[name] = table
        return table

    def statement(self, shape: tuple[Any, ...], build: Any) -> str:
        """The SQL for ``shape``, built once by ``build()``."""
        text = self._sql.get(shape)
        if text is None:
            text = self._sql[shape] = build()
        return text

    def qualified(self, name: str) -> str:
        """``"schema"."name"``."""
        return f"{_ident(self._schema)}.{_ident(name)}"


class PostgresTables:
    """A :class:`~eventstore.projections.TableWriter` on one connection."""

    def __init__(self, conn: psycopg.Connection, catalog: TableCatalog) -> None:
        self._conn = conn
        self._catalog = catalog

    def rows(self, table: str, where: Where | None = None, *, order_by: Sequence[str] = (),
             limit: int | None = None) -> list[dict[str, Any]]:
        """See :meth:`~eventstore.projections.TableReader.rows`."""
        spec = self._catalog.spec(self._conn, table)
        clause, params = _where(spec, where)
        check_columns(spec, list(order_by))
        shape = ("rows", table, clause, tuple(order_by), limit is not None)

        def build() -> str:
            text = f"SELECT * FROM {self._catalog.qualified(table)}{clause}"
            if order_by:
                text += f" ORDER BY {', '.join(_ident(c) for c in order_by)}"
            return text + (" LIMIT %s" if limit is not None else "")

        if limit is not None:
            params.append(limit)
        try:
            cursor = self._conn.execute(self._catalog.statement(shape, build), params)
        except psycopg.errors.UndefinedTable as exc:  # dropped since: a projection rebuilt
            raise NoSuchTable(f"cannot read the projection table {table!r}: {exc}") from None
        found = cursor.fetchall()  # first: in a pipeline, the description comes with it
        names = [d.name for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in found]

    def insert(self, table: str, row: Mapping[str, Any], *, on_conflict: Conflict = "error"
               ) -> None:
        """See :meth:`~eventstore.projections.TableWriter.insert`."""
        spec = self._spec(table, row)
        columns = tuple(row)

        def build() -> str:
            text = (f"INSERT INTO {self._catalog.qualified(table)} "
                    f"({', '.join(map(_ident, columns))}) VALUES ({_marks(spec, columns)})")
            if on_conflict == "error":
                return text
            key = ", ".join(map(_ident, spec.key))
            others = [c for c in spec.column_names if c not in spec.key]
            if on_conflict == "ignore" or not others:
                return f"{text} ON CONFLICT ({key}) DO NOTHING"
            # replace: the whole row, as SQLite's INSERT OR REPLACE (unnamed columns null)
            sets = ", ".join(f"{_ident(c)} = EXCLUDED.{_ident(c)}" for c in others)
            return f"{text} ON CONFLICT ({key}) DO UPDATE SET {sets}"

        text = self._catalog.statement(("insert", table, columns, on_conflict), build)
        self._conn.execute(text, [coerce(spec, c, v) for c, v in row.items()])

    def add(self, table: str, key: Mapping[str, Any], amounts: Mapping[str, int | float]) -> None:
        """See :meth:`~eventstore.projections.TableWriter.add`."""
        keys, added = tuple(key), tuple(amounts)
        spec = self._spec(table, {**key, **amounts})

        def build() -> str:
            columns = keys + added
            sets = ", ".join(f"{_ident(c)} = current.{_ident(c)} + EXCLUDED.{_ident(c)}"
                             for c in added)
            return (f"INSERT INTO {self._catalog.qualified(table)} AS current "
                    f"({', '.join(map(_ident, columns))}) VALUES ({_marks(spec, columns)}) "
                    f"ON CONFLICT ({', '.join(map(_ident, keys))}) DO UPDATE SET {sets}")

        text = self._catalog.statement(("add", table, keys, added), build)
        self._conn.execute(text, [coerce(spec, c, v) for c, v in (*key.items(),
                                                                   *amounts.items())])

    def update(self, table: str, where: Where, values: Mapping[str, Any]) -> None:
        """See :meth:`~eventstore.projections.TableWriter.update`."""
        spec = self._spec(table, values)
        clause, params = _where(spec, where)
        columns = tuple(values)

        def build() -> str:
            sets = ", ".join(f"{_ident(c)} = %s::{_CASTS[_type(spec, c)]}" for c in columns)
            return f"UPDATE {self._catalog.qualified(table)} SET {sets}{clause}"

        text = self._catalog.statement(("update", table, columns, clause), build)
        self._conn.execute(text, [*(coerce(spec, c, v) for c, v in values.items()), *params])

    def delete(self, table: str, where: Where) -> None:
        """See :meth:`~eventstore.projections.TableWriter.delete`."""
        spec = self._spec(table, {})
        clause, params = _where(spec, where)
        text = self._catalog.statement(
            ("delete", table, clause),
            lambda: f"DELETE FROM {self._catalog.qualified(table)}{clause}")
        self._conn.execute(text, params)

    def spec(self, table: str) -> Table:
        """The table ``table`` (NoSuchTable when there is none)."""
        return self._catalog.spec(self._conn, table)

    def fetch(self, keys: Mapping[str, Collection[Sequence[Any]]],
              ranges: Sequence[tuple[str, Where | None]]
              ) -> tuple[dict[str, list[tuple[Any, ...]]], list[list[tuple[Any, ...]]]]:
        """The rows (tuples in column order) of each table with each of its ``keys`` (key
        tuples, coerced), and those matching each of ``ranges``: in a pipeline, one round
        trip."""
        by_key = [(table, self._conn.execute(*self._select_keys(table, wanted)))
                  for table, wanted in keys.items() if wanted]
        by_range = [self._conn.execute(*self._select(table, where)) for table, where in ranges]
        return ({table: cursor.fetchall() for table, cursor in by_key},
                [cursor.fetchall() for cursor in by_range])

    def write(self, table: str, rows: Sequence[Sequence[Any]]) -> Statement:
        """The statement that inserts ``rows`` (every column, in order, coerced), each
        replacing the row with its key."""
        spec = self.spec(table)

        def build() -> str:
            names = spec.column_names
            others = [c for c in names if c not in spec.key]
            conflict = (f"DO UPDATE SET {', '.join(f'{_ident(c)} = EXCLUDED.{_ident(c)}' for c in others)}"
                        if others else "DO NOTHING")
            return (f"INSERT INTO {self._catalog.qualified(table)} "
                    f"({', '.join(map(_ident, names))}) SELECT * FROM {_unnest(spec, names)} "
                    f"ON CONFLICT ({', '.join(map(_ident, spec.key))}) {conflict}")

        return (self._catalog.statement(("write", table), build),
                _columns(spec, spec.column_names, rows))

    def remove(self, table: str, keys: Sequence[Sequence[Any]]) -> Statement:
        """The statement that deletes the rows with ``keys`` (key tuples, coerced)."""
        spec = self.spec(table)

        def build() -> str:
            match = " AND ".join(f"t.{_ident(c)} = u.c{i}" for i, c in enumerate(spec.key))
            return (f"DELETE FROM {self._catalog.qualified(table)} AS t USING "
                    f"{_unnest(spec, spec.key)} WHERE {match}")

        return (self._catalog.statement(("remove", table), build),
                _columns(spec, spec.key, keys))

    def _select_keys(self, table: str, keys: Collection[Sequence[Any]]
                     ) -> tuple[str, list[Any]]:
        spec = self.spec(table)

        def build() -> str:
            columns = ", ".join(f"t.{_ident(c)}" for c in spec.column_names)
            match = " AND ".join(f"t.{_ident(c)} = u.c{i}" for i, c in enumerate(spec.key))
            return (f"SELECT {columns} FROM {self._catalog.qualified(table)} AS t JOIN "
                    f"{_unnest(spec, spec.key)} ON {match}")

        return (self._catalog.statement(("select keys", table), build),
                _columns(spec, spec.key, keys))

    def _select(self, table: str, where: Where | None) -> tuple[str, list[Any]]:
        spec = self.spec(table)
        clause, params = _where(spec, where)

        def build() -> str:
            columns = ", ".join(map(_ident, spec.column_names))
            return f"SELECT {columns} FROM {self._catalog.qualified(table)}{clause}"

        return self._catalog.statement(("select", table, clause), build), params

    def _spec(self, table: str, columns: Mapping[str, Any]) -> Table:
        spec = self._catalog.spec(self._conn, table)
        check_columns(spec, list(columns))
        return spec


def check_columns(spec: Table, columns: Iterable[str]) -> None:
    """Refuse (ValueError) column names ``spec`` does not have."""
    unknown = set(columns) - set(spec.column_names)
    if unknown:
        raise ValueError(f"{spec.name} has no column(s) {sorted(unknown)}")


def _type(spec: Table, column: str) -> ColumnType:
    found = spec.column(column)
    assert found is not None  # every caller checked the column names first
    return found.type


def _unnest(spec: Table, columns: Sequence[str]) -> str:
    """``unnest`` of one array parameter per column, typed as the column, as ``u(c0, ...)``
    (arrays in binary: see :mod:`eventstore.postgres.arrays`)."""
    marks = arrays.placeholders(_CASTS[_type(spec, c)] for c in columns)
    return f"unnest({marks}) AS u({', '.join(f'c{i}' for i in range(len(columns)))})"


def _columns(spec: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
             ) -> list[Any]:
    """``rows`` (values in the order of ``columns``) as one array per column."""
    return arrays.columns([_CASTS[_type(spec, c)] for c in columns], rows)


def _marks(spec: Table, columns: Sequence[str]) -> str:
    return ", ".join(f"%s::{_CASTS[_type(spec, c)]}" for c in columns)


def _where(spec: Table, where: Where | None) -> tuple[str, list[Any]]:
    if not where:
        return "", []
    check_columns(spec, list(where))
    clauses, params = [], []
    for column, value in where.items():
        cast = _CASTS[_type(spec, column)]
        if isinstance(value, list | tuple | set | frozenset):
            clauses.append(f"{_ident(column)} = ANY(%s::{cast}[])")
            params.append([coerce(spec, column, v) for v in value])
        else:
            clauses.append(f"{_ident(column)} = %s::{cast}")
            params.append(coerce(spec, column, value))
    return " WHERE " + " AND ".join(clauses), params
