"""``rebuild``: recompute every projection from position zero and compare it with the
live tables. Any difference means the live read model no longer follows from the
log (a bug, or a hand-edited table), and is reported row by row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eventstore import EventLog, Projection, ProjectionDifference

from ..dispatcher.projection import DispatchProjection
from ..limits.quotas import QuotaProjection


def known_projections() -> tuple[Projection, ...]:
    """Every projection the bot keeps in the log's file."""
    return (DispatchProjection(), QuotaProjection())


@dataclass(frozen=True, slots=True)
class ProjectionCheck:
    """One projection's verdict: ``differences`` is empty when it matches the log;
    ``skipped`` says why it was not checked (it never ran on this log)."""

    name: str
    position: int
    differences: tuple[ProjectionDifference, ...] = ()
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the live tables equal the rebuild."""
        return not self.differences


def check_projections(log: EventLog,
                      projections: Sequence[Projection] | None = None) -> list[ProjectionCheck]:
    """Rebuild each projection (default: :func:`known_projections`) and compare."""
    checks = []
    for projection in projections if projections is not None else known_projections():
        row = log.connection.execute(
            "SELECT version, position FROM projection_positions WHERE name = ?",
            (projection.name,)).fetchone()
        if row is None:
            checks.append(ProjectionCheck(projection.name, 0,
                                          skipped="it has never run on this log"))
            continue
        if int(row[0]) != projection.version:
            checks.append(ProjectionCheck(
                projection.name, int(row[1]),
                skipped=f"the live tables are version {row[0]}, this personae builds "
                        f"version {projection.version} (the bot rebuilds it when it starts)"))
            continue
        differences = log.rebuild_and_compare(projection)
        checks.append(ProjectionCheck(projection.name, int(row[1]), tuple(differences)))
    return checks
