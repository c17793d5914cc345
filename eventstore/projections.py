"""Projections: read models computed from the log, kept in the log's own file.

A projection's tables and its position are written in the same transaction as the
events it has seen, so it is never ahead of or behind what it claims. The store
applies registered projections inline as events are appended, catches them up on
open, and rebuilds one from position zero when its ``version`` changes.
:func:`rebuild_and_compare` rebuilds a projection into a scratch database and
compares it with the live tables: any difference is a bug.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from .model import RecordedEvent


class Projection:
    """Base class for a read model. Subclasses set ``name``, ``version`` and ``tables``
    and implement :meth:`create` and :meth:`apply`; every SQL statement names its
    tables as ``{schema}.table`` so the same code can build into a scratch database."""

    name: str = ""
    version: int = 1
    tables: tuple[str, ...] = ()

    def create(self, db: sqlite3.Connection, schema: str) -> None:
        """Create this projection's (empty) tables in ``schema``."""
        raise NotImplementedError

    def apply(self, db: sqlite3.Connection, schema: str, event: RecordedEvent) -> None:
        """Fold one event into the tables in ``schema``."""
        raise NotImplementedError

    def snapshot(self, db: sqlite3.Connection, schema: str) -> dict[str, list[tuple]]:
        """Every row of every table, sorted, for comparing two builds."""
        return {
            table: sorted(db.execute(f"SELECT * FROM {schema}.{table}").fetchall(), key=repr)
            for table in self.tables
        }

    def drop(self, db: sqlite3.Connection, schema: str) -> None:
        """Drop this projection's tables from ``schema``."""
        for table in self.tables:
            db.execute(f"DROP TABLE IF EXISTS {schema}.{table}")


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


def compare_snapshots(
    projection: str, live: dict[str, list[tuple]], rebuilt: dict[str, list[tuple]]
) -> list[ProjectionDifference]:
    """The tables where ``live`` and ``rebuilt`` disagree (a multiset comparison)."""
    differences = []
    for table in sorted(set(live) | set(rebuilt)):
        live_rows, rebuilt_rows = list(live.get(table, [])), list(rebuilt.get(table, []))
        only_live = _multiset_minus(live_rows, rebuilt_rows)
        only_rebuilt = _multiset_minus(rebuilt_rows, live_rows)
        if only_live or only_rebuilt:
            differences.append(
                ProjectionDifference(projection, table, tuple(only_live), tuple(only_rebuilt))
            )
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
