"""Coordination between bot processes sharing one log: which process runs which Discord
shard (leases), and when a shard may IDENTIFY (Discord's max_concurrency buckets).

It knows Discord's sharding arithmetic but nothing of disnake; the Discord adapter
drives it (``core/adapters/discord/shards.py``). Over PostgreSQL the state is rows in
the log's schema (:mod:`.leases`); a single process over SQLite needs none
(:mod:`.local`). See docs/scale-out.md.
"""

from .leases import (
    IDENTIFY_INTERVAL_S,
    CoordinationError,
    Lease,
    PostgresCoordinator,
)
from .local import LocalCoordinator
from .plan import Coordinator, PlanProblem, bucket_of, describe_shards, plan_problems, shard_of

__all__ = [
    "IDENTIFY_INTERVAL_S",
    "CoordinationError",
    "Coordinator",
    "Lease",
    "LocalCoordinator",
    "PlanProblem",
    "PostgresCoordinator",
    "bucket_of",
    "describe_shards",
    "plan_problems",
    "shard_of",
]
