"""``rebuild``: recompute every projection from position zero and compare it with the
live tables. Any difference means the live read model no longer follows from the
log (a bug, or a hand-edited table), and is reported row by row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eventstore import LogReader, Projection, ProjectionDifference

from ..dispatcher.projection import projections as known_projections


@dataclass(frozen=True, slots=True, kw_only=True)
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


def check_projections(log: LogReader,
                      projections: Sequence[Projection] | None = None) -> list[ProjectionCheck]:
    """Rebuild each projection (default: every one the bot keeps) and compare."""
    checks = []
    for projection in projections if projections is not None else known_projections():
        state = log.projection_state(projection.name)
        if state is None:
            checks.append(ProjectionCheck(name=projection.name, position=0,
                                          skipped="it has never run on this log"))
            continue
        version, position = state
        if version != projection.version:
            checks.append(ProjectionCheck(
                name=projection.name, position=position,
                skipped=f"the live tables are version {version}, this personae builds "
                        f"version {projection.version} (the bot rebuilds it when it starts)"))
            continue
        differences = log.rebuild_and_compare(projection)
        checks.append(ProjectionCheck(name=projection.name, position=position,
                                      differences=tuple(differences)))
    return checks
