"""Discord's sharding arithmetic, the coordinator protocol, and the checks of a plan."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


def shard_of(guild_id: int | None, shard_count: int) -> int:
    """The shard Discord sends a guild's events to; DMs (no guild) go to shard 0."""
    return 0 if guild_id is None else (guild_id >> 22) % shard_count


def bucket_of(shard_id: int, max_concurrency: int) -> int:
    """The IDENTIFY rate-limit bucket of a shard: one IDENTIFY per bucket per 5 s."""
    return shard_id % max(1, max_concurrency)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanProblem:
    """Something wrong with who runs which shard: ``kind`` is "gap" (nobody runs the
    shards), "overlap" (several run them) or "count" (processes disagree on the count)."""

    kind: str
    shards: tuple[int, ...]
    detail: str


def plan_problems(shard_count: int, holders: Iterable[tuple[str, int, int]]
                  ) -> list[PlanProblem]:
    """Gaps, overlaps and count mismatches among ``holders``: (process, shard id, the
    shard count it runs with) for every live lease."""
    owners: dict[int, list[str]] = {}
    counts: dict[int, set[str]] = {}
    for owner, shard_id, count in holders:
        counts.setdefault(count, set()).add(owner)
        if count == shard_count:
            owners.setdefault(shard_id, []).append(owner)
    problems = []
    others = {c: sorted(o) for c, o in counts.items() if c != shard_count}
    if others:
        problems.append(PlanProblem(kind="count", shards=(), detail="; ".join(
            f"{', '.join(o)} run(s) with shard_count {c}" for c, o in sorted(others.items()))))
    gaps = tuple(s for s in range(shard_count) if s not in owners)
    if gaps:
        problems.append(PlanProblem(kind="gap", shards=gaps,
                                    detail=f"no live process runs shard(s) {describe_shards(gaps)}"))
    doubled = tuple(s for s, o in sorted(owners.items()) if len(set(o)) > 1)
    if doubled:
        problems.append(PlanProblem(kind="overlap", shards=doubled,
                                    detail=f"shard(s) {describe_shards(doubled)} are run by several "
                                           "processes"))
    return problems


def describe_shards(ids: Sequence[int]) -> str:
    """``0-3,5``: shard ids as ranges; ``none`` for none."""
    if not ids:
        return "none"
    ids = sorted(ids)
    parts: list[str] = []
    start = prev = ids[0]
    for shard in [*ids[1:], None]:
        if shard is not None and shard == prev + 1:
            prev = shard
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if shard is not None:
            start = prev = shard
    return ",".join(parts)


class Coordinator(Protocol):
    """Who runs which shard, and when a shard may IDENTIFY. Blocking calls: the
    adapter runs them in a thread."""

    owner: str
    """This process, as other processes and ``personae doctor`` name it."""

    def claim(self, wanted: Sequence[int] | None) -> list[int]:
        """Take the leases of ``wanted`` that are free (None: any free shard, a
        standby); returns every shard this process now holds."""
        ...

    def renew(self) -> list[int]:
        """Extend this process's leases; returns the shards still held (a lease that
        expired meanwhile may have been taken by another process)."""
        ...

    def handback(self) -> list[int]:
        """Shards this process holds that a process configured for them asks back."""
        ...

    def release(self, shards: Sequence[int] | None = None) -> None:
        """Let go of ``shards`` (None: all), so another process can take them at once."""
        ...

    def identify_wait(self, shard_id: int, max_concurrency: int) -> float:
        """0 when ``shard_id`` may IDENTIFY now (the slot is then taken), else how many
        seconds to wait before asking again."""
        ...

    def close(self) -> None:
        """Let go of connections."""
        ...
