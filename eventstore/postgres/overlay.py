"""Projection tables as append transactions change them: read from the database once,
written back once, and kept from one transaction to the next while no one else writes.

A group commit runs under the log's append lock, so nothing but this transaction changes
the projection tables until it commits: a row read once stays true, and the rows the
projections change can be kept in Python and written at the end. :class:`WriteBehind` is
a :class:`~eventstore.projections.TableWriter` over a :class:`~eventstore.tables.MemoryTables`
(the in-memory backend's tables, so every operation means what it means there and in the
database) that holds the rows read so far. Each request's changes are journalled from a
:meth:`~WriteBehind.mark`: a request whose projection raises is rolled back in Python, with
no savepoint. :meth:`~WriteBehind.flush` writes what changed: per table, one statement for
the rows changed or added and one for the rows deleted.

A read of a row not held yet is a *miss*: the overlay answers as if the row did not exist,
notes what it needs, and sets :attr:`~WriteBehind.missed`; the caller runs on, then has
:meth:`~WriteBehind.read_missed` read every row the pass missed in one round trip. When
the database has none of them (:meth:`~WriteBehind.guessed_right`: a new key, as most
are: a trigger's, a message's), what the pass computed stands; otherwise the caller
discards what followed the first miss and runs it again with the rows held. Running on
past a miss finds what later requests need too, so a batch costs a few round trips, not
one per row.

After a commit the rows held are as the database has them, so the log keeps its overlay
for its next append (:meth:`~WriteBehind.committed`) as long as no other process or tool
has appended or rebuilt a projection since: the rows a conversation's replies read again
(a person's quota, rate bucket, open replies) are then read from the database once, not
once per transaction.

What the overlay cannot do exactly as PostgreSQL would (an update that changes a key,
an addition to a null, a criterion on a null, ``add`` on columns that are not the key) raises
:class:`Unsupported`: the caller then appends the batch the way that needs none of this,
with a savepoint per request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

from ..projections import Conflict, Table, Where
from ..tables import MemoryTables, coerce
from .tables import PostgresTables, Statement, check_columns

_Key = tuple[Any, ...]
_Range = tuple[str, tuple[tuple[str, Any], ...]]


class Unsupported(Exception):
    """A projection asked for what the overlay cannot do as the database would."""


class KeyExists(Exception):
    """An insert (``on_conflict="error"``) found a row with its key."""


@dataclass(frozen=True, slots=True)
class Missed:
    """What :meth:`WriteBehind.read_missed` found: per table, the rows with the keys
    missed and those matching the ranges missed."""

    found: dict[str, list[tuple[Any, ...]]]
    keys: dict[str, set[_Key]]
    ranges: dict[_Range, Where | None]


class WriteBehind:
    """See the module docstring. One per log, used by its appends in turn."""

    def __init__(self) -> None:
        self._db: PostgresTables | None = None
        self._memory = MemoryTables()
        self._specs: dict[str, Table] = {}
        self._key_at: dict[str, list[int]] = {}
        self._held: dict[str, dict[_Key, tuple[Any, ...] | None]] = {}
        """Per table, each key read (None: no such row), as the database has it."""
        self._ranges: set[_Range] = set()
        self._wanted_keys: dict[str, set[_Key]] = {}
        self._wanted_ranges: dict[_Range, Where | None] = {}
        self.missed = False
        """Whether a read since the last :meth:`mark` found a row not held (and guessed)."""

    @property
    def held(self) -> int:
        """How many rows (and known absences) the overlay holds."""
        return sum(len(keys) for keys in self._held.values())

    # -- the transaction's side ------------------------------------------------------

    def begin(self, tables: PostgresTables) -> None:
        """Start an append transaction on ``tables``' connection (the rows held are as
        the database has them: the caller drops an overlay another writer may have made
        stale)."""
        self._db = tables
        self._wanted_keys.clear()
        self._wanted_ranges.clear()
        self.missed = False
        self._memory.begin()

    def committed(self) -> None:
        """The transaction committed what :meth:`flush` wrote: hold it as the database
        now has it."""
        for table, key in self._memory.changed():
            self._held[table][key] = self._memory.current(table, key)
        self._memory.commit()
        self._db = None

    def mark(self) -> int:
        """Where the changes from now on start (for :meth:`rollback`); clears ``missed``."""
        self.missed = False
        return self._memory.begin()

    def rollback(self, mark: int) -> None:
        """Undo every change since ``mark``."""
        self._memory.rollback(mark)

    def read_missed(self) -> Missed:
        """Read every row missed since the last read, in one round trip (not held until
        :meth:`hold`)."""
        keys = {table: {key for key in wanted if key not in self._held[table]}
                for table, wanted in self._wanted_keys.items()}
        ranges = dict(self._wanted_ranges)
        self._wanted_keys.clear()
        self._wanted_ranges.clear()
        found: dict[str, list[tuple[Any, ...]]] = {}
        if any(keys.values()) or ranges:
            by_key, by_range = self._tables().fetch(
                keys, [(token[0], where) for token, where in ranges.items()])
            for table, rows in by_key.items():
                found.setdefault(table, []).extend(rows)
            for (token, _), rows in zip(ranges.items(), by_range, strict=True):
                found.setdefault(token[0], []).extend(rows)
        return Missed(found=found, keys=keys, ranges=ranges)

    def guessed_right(self, missed: Missed) -> bool:
        """Whether what was computed from guesses stands: the database has no row the
        overlay did not hold (a miss was answered as if the row did not exist)."""
        return not any(tuple(row[i] for i in self._key_at[table]) not in self._held[table]
                       for table, rows in missed.found.items() for row in rows)

    def hold(self, missed: Missed) -> None:
        """Hold the rows ``missed`` found (after rolling back what was computed from
        wrong guesses: a rollback would undo them)."""
        for table, rows in missed.found.items():
            held, at = self._held[table], self._key_at[table]
            for row in rows:
                key = tuple(row[i] for i in at)
                if key not in held:  # a row held already may have changed since
                    held[key] = row
                    self._memory.load(table, row)
        for table, wanted in missed.keys.items():
            held = self._held[table]
            for key in wanted:
                held.setdefault(key, None)
        self._ranges.update(missed.ranges)

    def flush(self) -> list[Statement]:
        """The statements that write every change kept: per table, one for the rows
        written, one for the rows deleted."""
        written: dict[str, list[tuple[Any, ...]]] = {}
        deleted: dict[str, list[_Key]] = {}
        for table, key in self._memory.changed():
            now = self._memory.current(table, key)
            if now == self._held[table].get(key):
                continue
            if now is None:
                deleted.setdefault(table, []).append(key)
            else:
                written.setdefault(table, []).append(now)
        tables = self._tables()
        return [*(tables.remove(table, keys) for table, keys in deleted.items()),
                *(tables.write(table, rows) for table, rows in written.items())]

    # -- TableWriter -----------------------------------------------------------------

    def rows(self, table: str, where: Where | None = None, *, order_by: Sequence[str] = (),
             limit: int | None = None) -> list[dict[str, Any]]:
        """See :meth:`~eventstore.projections.TableReader.rows` (nulls sort last, as in
        PostgreSQL)."""
        spec = self._spec(table)
        check_columns(spec, [*(where or ()), *order_by])
        self._need(spec, where)
        found = self._memory.rows(table, where)
        if order_by:
            found.sort(key=lambda row: tuple((row[c] is None, row[c]) for c in order_by))
        return found if limit is None else found[:max(limit, 0)]

    def insert(self, table: str, row: Mapping[str, Any], *, on_conflict: Conflict = "error"
               ) -> None:
        """See :meth:`~eventstore.projections.TableWriter.insert`."""
        spec = self._spec(table)
        check_columns(spec, list(row))
        key = self._key(spec, row)
        self._need_key(spec, key)
        if on_conflict == "error" and self._memory.current(table, key) is not None:
            raise KeyExists(f"{table}: a row with the key {key} exists already")
        self._memory.insert(table, row, on_conflict=on_conflict)

    def add(self, table: str, key: Mapping[str, Any], amounts: Mapping[str, int | float]) -> None:
        """See :meth:`~eventstore.projections.TableWriter.add`."""
        spec = self._spec(table)
        check_columns(spec, [*key, *amounts])
        if set(key) != set(spec.key) or set(amounts) & set(spec.key):
            raise Unsupported(f"add to {table} by columns that are not its key")
        row_key = self._key(spec, key)
        self._need_key(spec, row_key)
        old = self._memory.current(table, row_key)
        names = spec.column_names
        if old is not None and any(old[names.index(c)] is None for c in amounts):
            raise Unsupported(f"add to a null in {table}")
        self._memory.add(table, key, amounts)

    def update(self, table: str, where: Where, values: Mapping[str, Any]) -> None:
        """See :meth:`~eventstore.projections.TableWriter.update`."""
        spec = self._spec(table)
        check_columns(spec, [*where, *values])
        if set(values) & set(spec.key):
            raise Unsupported(f"an update of {table}'s key")
        self._need(spec, where)
        self._memory.update(table, where, values)

    def delete(self, table: str, where: Where) -> None:
        """See :meth:`~eventstore.projections.TableWriter.delete`."""
        spec = self._spec(table)
        check_columns(spec, list(where))
        self._need(spec, where)
        self._memory.delete(table, where)

    # -- helpers ---------------------------------------------------------------------

    def _tables(self) -> PostgresTables:
        assert self._db is not None, "begin() first"
        return self._db

    def _spec(self, table: str) -> Table:
        spec = self._specs.get(table)
        if spec is None:
            spec = self._specs[table] = self._tables().spec(table)
            self._memory.create_table(spec)
            self._held[table] = {}
            self._key_at[table] = [spec.column_names.index(c) for c in spec.key]
        return spec

    def _key(self, spec: Table, row: Mapping[str, Any]) -> _Key:
        key = tuple(coerce(spec, c, row.get(c)) for c in spec.key)
        if None in key:
            raise Unsupported(f"a null in {spec.name}'s key")
        return key

    def _need_key(self, spec: Table, key: _Key) -> None:
        if key not in self._held[spec.name]:
            self._wanted_keys.setdefault(spec.name, set()).add(key)
            self.missed = True

    def _need(self, spec: Table, where: Where | None) -> None:
        """Note what ``where`` reads that is not held (the rows with its keys, when it names
        the whole key; else the rows it matches)."""
        criteria = {c: _values(spec, c, v) for c, v in (where or {}).items()}
        if any(None in values for values in criteria.values()):
            raise Unsupported(f"a criterion on a null in {spec.name}")
        if all(c in criteria for c in spec.key):
            for key in product(*(criteria[c] for c in spec.key)):
                self._need_key(spec, key)
            return
        token: _Range = (spec.name, tuple(sorted(
            (c, tuple(sorted(v, key=repr))) for c, v in criteria.items())))
        if token not in self._ranges:
            self._wanted_ranges[token] = where
            self.missed = True


def _values(spec: Table, column: str, value: Any) -> list[Any]:
    """The values a criterion allows, coerced, each once."""
    if isinstance(value, list | tuple | set | frozenset):
        return list(dict.fromkeys(coerce(spec, column, v) if v is not None else None
                                  for v in value))
    return [coerce(spec, column, value) if value is not None else None]
