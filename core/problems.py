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


class ProblemsError(Exception):
    """A file (or several) has problems; every one of them is in ``problems``."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: Sequence[Problem] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
