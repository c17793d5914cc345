"""Scratch logs shared by benchmarks that need a large event log built once."""

from __future__ import annotations

from pathlib import Path

from eventstore import SQLiteLog


def reusable_log(path: Path, events: int) -> bool:
    """True when ``path`` already holds at least ``events`` events (reuse it); otherwise
    the stale file is removed so the caller can build it anew."""
    if not path.exists():
        return False
    log = SQLiteLog.open(path, create=False)
    try:
        if log.last_position() >= events:
            return True
    finally:
        log.close()
    path.unlink()
    return False
