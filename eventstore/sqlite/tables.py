"""Projection tables in the SQLite file: the SQL behind each
:class:`~eventstore.projections.TableWriter` operation, built once per shape and cached
(sqlite3 then reuses its prepared statement)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import NoSuchTable
from ..projections import Conflict, Projection, Table, Where

_TYPES = {"text": "TEXT", "integer": "INTEGER", "real": "REAL"}
_INSERT_VERB = {"error": "INSERT", "ignore": "INSERT OR IGNORE", "replace": "INSERT OR REPLACE"}


class SQLiteTables:
    """A :class:`~eventstore.projections.TableWriter` on one SQLite connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._tables: dict[str, Table] = {}
        self._sql: dict[tuple[Any, ...], str] = {}

    def register(self, projection: Projection) -> None:
        """Know ``projection``'s tables (which exist in the file)."""
        for table in projection.tables:
            self._tables[table.name] = table

    def create(self, projection: Projection) -> None:
        """Create ``projection``'s (empty) tables and know them."""
        for table in projection.tables:
            columns = ", ".join(
                f"{c.name} {_TYPES[c.type]}{'' if c.nullable else ' NOT NULL'}"
                for c in table.columns)
            self._db.execute(f"CREATE TABLE {table.name} ({columns}, "
                             f"PRIMARY KEY ({', '.join(table.key)})) WITHOUT ROWID")
        self.register(projection)

    def drop(self, projection: Projection) -> None:
        """Drop ``projection``'s tables."""
        for table in projection.tables:
            self._db.execute(f"DROP TABLE IF EXISTS {table.name}")
            self._tables.pop(table.name, None)

    def rows(self, table: str, where: Where | None = None, *, order_by: Sequence[str] = (),
             limit: int | None = None) -> list[dict[str, Any]]:
        """See :meth:`~eventstore.projections.TableReader.rows`. Any table in the file
        can be read, registered or not (command-line tools read without projecting)."""
        clause, params = _where(where)
        shape = ("rows", table, clause, tuple(order_by), limit is not None)
        sql = self._sql.get(shape)
        if sql is None:
            sql = f"SELECT * FROM {table}{clause}"
            if order_by:
                sql += f" ORDER BY {', '.join(order_by)}"
            if limit is not None:
                sql += " LIMIT ?"
            self._sql[shape] = sql
        if limit is not None:
            params.append(limit)
        try:
            cursor = self._db.execute(sql, params)
        except sqlite3.OperationalError as exc:
            raise NoSuchTable(f"cannot read the projection table {table!r}: {exc}") from None
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def insert(self, table: str, row: Mapping[str, Any], *, on_conflict: Conflict = "error"
               ) -> None:
        """See :meth:`~eventstore.projections.TableWriter.insert`."""
        columns = tuple(row)
        shape = ("insert", table, columns, on_conflict)
        sql = self._sql.get(shape)
        if sql is None:
            self._known(table, columns)
            sql = self._sql[shape] = (
                f"{_INSERT_VERB[on_conflict]} INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})")
        self._db.execute(sql, tuple(row.values()))

    def add(self, table: str, key: Mapping[str, Any], amounts: Mapping[str, int | float]) -> None:
        """See :meth:`~eventstore.projections.TableWriter.add`."""
        keys, added = tuple(key), tuple(amounts)
        shape = ("add", table, keys, added)
        sql = self._sql.get(shape)
        if sql is None:
            self._known(table, keys + added)
            columns = keys + added
            sets = ", ".join(f"{c} = {c} + excluded.{c}" for c in added)
            sql = self._sql[shape] = (
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                f"({', '.join('?' * len(columns))}) ON CONFLICT ({', '.join(keys)}) "
                f"DO UPDATE SET {sets}")
        self._db.execute(sql, (*key.values(), *amounts.values()))

    def update(self, table: str, where: Where, values: Mapping[str, Any]) -> None:
        """See :meth:`~eventstore.projections.TableWriter.update`."""
        clause, params = _where(where)
        columns = tuple(values)
        shape = ("update", table, columns, clause)
        sql = self._sql.get(shape)
        if sql is None:
            self._known(table, columns + tuple(where))
            sql = self._sql[shape] = (
                f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in columns)}{clause}")
        self._db.execute(sql, (*values.values(), *params))

    def delete(self, table: str, where: Where) -> None:
        """See :meth:`~eventstore.projections.TableWriter.delete`."""
        clause, params = _where(where)
        shape = ("delete", table, clause)
        sql = self._sql.get(shape)
        if sql is None:
            self._known(table, tuple(where))
            sql = self._sql[shape] = f"DELETE FROM {table}{clause}"
        self._db.execute(sql, params)

    def _known(self, table: str, columns: Sequence[str]) -> None:
        spec = self._tables.get(table)
        if spec is None:
            raise ValueError(f"no projection declares the table {table!r}")
        unknown = set(columns) - set(spec.column_names)
        if unknown:
            raise ValueError(f"{table} has no column(s) {sorted(unknown)}")


def _where(where: Where | None) -> tuple[str, list[Any]]:
    if not where:
        return "", []
    clauses, params = [], []
    for column, value in where.items():
        if isinstance(value, list | tuple | set | frozenset):
            values = list(value)
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
        else:
            clauses.append(f"{column} = ?")
            params.append(value)
    return " WHERE " + " AND ".join(clauses), params
