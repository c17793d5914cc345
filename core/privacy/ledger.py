"""The erasure ledger: every forget, written to a file kept apart from the log.

A backup taken before someone was forgotten still holds their keys; restoring it must not
bring their content back. ``personae db restore`` reads this file and forgets each person
again in the restored log. It holds ids and times only (who was forgotten, who asked,
when), never content. One JSON object per line, appended and fsynced.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from eventstore import EventStoreError


class LedgerError(EventStoreError):
    """The ledger cannot be read or written; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerEntry:
    """One erasure: ``subject`` forgotten at ``at`` at ``requested_by``'s request."""

    subject: str
    requested_by: str
    at: float
    event_id: str


class ErasureLedger:
    """The ledger file at ``path`` (created with its directory on first write)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, entry: LedgerEntry) -> None:
        """Append ``entry`` durably."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(asdict(entry), sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise LedgerError(f"cannot write the erasure ledger {self.path}: {exc.strerror}"
                              ) from None

    def entries(self) -> Iterator[LedgerEntry]:
        """Every erasure recorded, oldest first (none when the file does not exist)."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise LedgerError(f"cannot read the erasure ledger {self.path}: {exc.strerror}"
                              ) from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                yield LedgerEntry(subject=str(data["subject"]),
                                  requested_by=str(data["requested_by"]),
                                  at=float(data["at"]), event_id=str(data["event_id"]))
            except (ValueError, KeyError, TypeError):
                raise LedgerError(f"{self.path}:{number}: not an erasure entry") from None
