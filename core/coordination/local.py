"""One process over SQLite: it runs every shard it is given, nobody to agree with."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence


class LocalCoordinator:
    """Leases that always succeed, and no IDENTIFY gate (disnake's own 5 s pause between
    a process's IDENTIFYs is then what keeps to Discord's limit, as before sharding)."""

    uses_identify_gate = False

    def __init__(self, shard_count: int) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._count = shard_count
        self._held: list[int] = []

    def claim(self, wanted: Sequence[int] | None) -> list[int]:
        for shard in range(self._count) if wanted is None else wanted:
            if shard not in self._held:
                self._held.append(shard)
        return list(self._held)

    def renew(self) -> list[int]:
        return list(self._held)

    def handback(self) -> list[int]:
        return []

    def release(self, shards: Sequence[int] | None = None) -> None:
        self._held = [] if shards is None else [s for s in self._held if s not in shards]

    def identify_wait(self, shard_id: int, max_concurrency: int) -> float:
        return 0.0

    def close(self) -> None:
        return None
