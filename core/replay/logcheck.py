"""What ``personae db check`` adds to the backend's own checks: what only personae can
see in its log. Every event must read back as its catalogue type (an event edited by
hand into a shape the bot cannot read is found), and every projection must equal a
rebuild from the events (an edited or deleted event that projections depended on is
found)."""

from __future__ import annotations

from itertools import islice

from eventstore import EVERYTHING, LogReader, Violation

from ..events import CATALOGUE
from ..events.validation import EventChecker
from .rebuild import check_projections

MAX_REPORTED = 20


def personae_violations(log: LogReader, *, projections: bool = True) -> list[Violation]:
    """The personae-level violations of ``log`` (at most 20 about event shapes; with
    ``projections``, the projections that differ from a rebuild). Types this personae
    does not know are left alone (a newer personae's, or another tool's: the bot reads
    none of them); a known type must read back as that type."""
    checker = EventChecker(CATALOGUE)
    shapes = (Violation("event shapes", f"event {e.event_id!r} at position {e.position}: "
                                        f"{problem}")
              for e in log.scan(EVERYTHING, upcast=False, unseal=True) if e.type in CATALOGUE
              if (problem := checker.problem(e.type, e.schema_version, e.data)) is not None)
    try:
        found = list(islice(shapes, MAX_REPORTED))
        checks = check_projections(log) if projections else []
    except Exception as exc:  # the backend's checks say what is broken underneath
        return [Violation("event shapes", f"the events cannot all be read back: "
                                          f"{type(exc).__name__}: {exc}"[:300])]
    for check in checks:
        for difference in check.differences:
            found.append(Violation("projections", f"{difference}, up to position "
                                                  f"{check.position} (`personae rebuild` "
                                                  "shows the rows)"))
    return found
