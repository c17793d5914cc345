"""Projections: read models computed from the log, kept beside it by every backend.

A projection declares its tables (:class:`Table`) and folds events into them through a
:class:`TableWriter`: a handful of operations (insert, add, update, delete) that every
backend offers with the same meaning, so one projection runs on SQLite, PostgreSQL
and in memory alike. The backend applies registered projections in the same
transaction as the events they see, records how far each has read, catches them up
when the log is opened, and rebuilds one from position zero when its ``version``
changes. :func:`compare_tables` checks a live projection against a rebuild: any
difference is a bug.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from .model import RecordedEvent

ColumnType = Literal["text", "integer", "real"]
"""Column types every backend has: text, 64-bit integers, double-precision floats."""

Conflict = Literal["error", "ignore", "replace"]
"""What :meth:`TableWriter.insert` does when the key exists: fail, keep the old row,
or replace it."""

Where = Mapping[str, Any]
"""Column criteria: ``{column: value}`` for equality, ``{column: (v1, v2)}`` for any of
several values. Every criterion must hold."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """One column of a projection table."""

    name: str
    type: ColumnType
    nullable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    """A projection table: its columns, in order, and the columns of its key."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    column_names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """The column names in order."""
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # every row written or read looks its columns up by name: once, not per value
        object.__setattr__(self, "column_names", tuple(c.name for c in self.columns))
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    def column(self, name: str) -> Column | None:
        """The column called ``name`` (None: no such column)."""
        return self._by_name.get(name)


class TableReader(Protocol):
    """Reading projection tables."""

    def rows(self, table: str, where: Where | None = None, *, order_by: Sequence[str] = (),
             limit: int | None = None) -> list[dict[str, Any]]:
        """The rows of ``table`` matching ``where``, as ``{column: value}``, ordered by
        ``order_by`` (ascending) when given."""
        ...


class TableWriter(TableReader, Protocol):
    """Changing projection tables, inside the append transaction."""

    def insert(self, table: str, row: Mapping[str, Any], *, on_conflict: Conflict = "error"
               ) -> None:
        """Insert ``row`` (every column)."""
        ...

    def add(self, table: str, key: Mapping[str, Any], amounts: Mapping[str, int | float]) -> None:
        """Add ``amounts`` to the row with ``key``, creating it (other columns 0) if absent."""
        ...

    def update(self, table: str, where: Where, values: Mapping[str, Any]) -> None:
        """Set ``values`` in every row matching ``where``."""
        ...

    def delete(self, table: str, where: Where) -> None:
        """Delete every row matching ``where``."""
        ...


class Projection:
    """Base class for a read model. Subclasses set ``name``, ``version`` and ``tables``
    and implement :meth:`apply`; ``types`` (the event types it reads) lets a backend
    skip the others without calling it."""

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    tables: ClassVar[tuple[Table, ...]] = ()
    types: ClassVar[frozenset[str] | None] = None

    def apply(self, tables: TableWriter, event: RecordedEvent) -> None:
        """Fold one event into the tables."""
        raise NotImplementedError

    def admit(self, tables: TableReader, event: RecordedEvent) -> None:
        """Refuse ``event`` by raising (an :class:`~eventstore.errors.EventStoreError`
        reaches the appender as it is): called for each new event of a live append, in the
        append transaction, before :meth:`apply`, with the tables as every earlier event
        left them. Appends are serialised per log (across processes too), so a rule
        checked here cannot be raced. Catch-up and rebuilds fold what was admitted without
        asking again. The default admits everything."""

    def table(self, name: str) -> Table:
        """The declared table called ``name``."""
        return next(t for t in self.tables if t.name == name)


def apply_events(projection: Projection, tables: TableWriter,
                 events: Iterable[RecordedEvent], *, admit: bool = False) -> int:
    """Fold ``events`` into ``projection``'s tables; returns the last position seen (0: none).
    With ``admit`` (a live append's new events) each is first put to
    :meth:`Projection.admit`, which may refuse it by raising."""
    wanted = projection.types
    last = 0
    for event in events:
        if wanted is None or event.type in wanted:
            if admit:
                projection.admit(tables, event)
            projection.apply(tables, event)
        last = event.position
    return last


@dataclass(frozen=True, slots=True)
class ProjectionDifference:
    """One table whose rebuilt rows differ from the live ones."""

    projection: str
    table: str
    only_live: tuple[tuple, ...]
    only_rebuilt: tuple[tuple, ...]

    def __str__(self) -> str:
        return (
            f"{self.projection}.{self.table}: {len(self.only_live)} row(s) only in the live "
            f"projection, {len(self.only_rebuilt)} only in the rebuild"
        )


def table_snapshot(reader: TableReader, projection: Projection) -> dict[str, list[tuple]]:
    """Every row of every table of ``projection``, as tuples in column order, sorted."""
    snapshot = {}
    for table in projection.tables:
        names = table.column_names
        rows = [tuple(row[n] for n in names) for row in reader.rows(table.name)]
        snapshot[table.name] = sorted(rows, key=repr)
    return snapshot


def compare_tables(projection: Projection, live: TableReader,
                   rebuilt: TableReader) -> list[ProjectionDifference]:
    """The tables where ``live`` and ``rebuilt`` disagree (a multiset comparison)."""
    live_rows, rebuilt_rows = table_snapshot(live, projection), table_snapshot(rebuilt, projection)
    differences = []
    for table in sorted(live_rows):
        only_live = _multiset_minus(live_rows[table], rebuilt_rows[table])
        only_rebuilt = _multiset_minus(rebuilt_rows[table], live_rows[table])
        if only_live or only_rebuilt:
            differences.append(ProjectionDifference(
                projection.name, table, tuple(only_live), tuple(only_rebuilt)))
    return differences


def _multiset_minus(left: list[tuple], right: list[tuple]) -> list[tuple]:
    remaining: dict[tuple, int] = {}
    for row in right:
        remaining[row] = remaining.get(row, 0) + 1
    result = []
    for row in left:
        if remaining.get(row, 0):
            remaining[row] -= 1
        else:
            result.append(row)
    return result


def check_tables(projections: Sequence[Projection]) -> None:
    """Refuse projections whose tables collide or whose keys name unknown columns."""
    seen: dict[str, str] = {}
    for projection in projections:
        for table in projection.tables:
            if table.name in seen:
                raise ValueError(f"projections {seen[table.name]} and {projection.name} both "
                                 f"declare the table {table.name}")
            seen[table.name] = projection.name
            unknown = set(table.key) - set(table.column_names)
            if unknown:
                raise ValueError(f"table {table.name}: key columns {sorted(unknown)} are not "
                                 "columns of the table")
