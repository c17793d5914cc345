"""Problems in a user's file, said so that they can be fixed without guessing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a file: where it is, which field, and what to do.

    ``str(problem)`` reads ``personas/ada.yaml:12:5: limits.rate.per: "60 seconds" is not
    a duration (use 60s, 5m, 1h)``. Lines and columns count from 1.
    """

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def to_dict(self) -> dict[str, str | int]:
        """A plain mapping, for ``--json`` output."""
        return {
            "file": self.file, "line": self.line, "column": self.column,
            "field": self.field, "message": self.message,
        }


MAX_REPORTED = 100
"""Problems reported per file at most: past that, one more says how many were left out
(a file with thousands of mistakes needs the first ones fixed, not a flood)."""


def at_most(problems: Sequence[Problem], limit: int = MAX_REPORTED) -> list[Problem]:
    """The first ``limit`` of ``problems``, then one saying how many more there are."""
    if len(problems) <= limit:
        return list(problems)
    last = problems[limit - 1]
    return [*problems[:limit - 1], Problem(
        last.file, last.line, last.column, "",
        f"and {len(problems) - limit + 1:,} more problems in this file (fix these first)")]


class ProblemsError(Exception):
    """A file (or several) has problems; every one of them is in ``problems``."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: Sequence[Problem] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
