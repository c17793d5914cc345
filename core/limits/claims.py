"""Limits the log itself enforces, so that they hold across processes.

Admission decides with what its process knows (the in-memory buckets, the quota
ledger's cache); each accepted trigger then carries what it charges (its ``limits``:
the rate bucket it takes a token from, the quota it holds a reservation on), and the
projections check the charge again in the append transaction
(:meth:`eventstore.Projection.admit`). Appends to one log are serialised (SQLite's
write lock; on PostgreSQL an advisory lock held to COMMIT, across every process), so
two processes admitting the same user at once are checked one after the other, each
against everything the other committed: a check-then-append race cannot overshoot.
A refused charge fails the append with :class:`LimitExceeded` (nothing of it is
written) and the dispatcher appends again with the trigger rejected.

The rate buckets here are shared state: a row per (persona, scope, key), refilled from
the admitting process's clock recorded in the trigger (``limits.at``), so a rebuild
folds them to the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventstore import (
    Column,
    EventStoreError,
    Projection,
    RecordedEvent,
    Table,
    TableReader,
    TableWriter,
)

from ..events import PersonaTriggered
from .buckets import TokenBucket


class LimitExceeded(EventStoreError):
    """The log refused a trigger's charge: ``kind`` is the refusal kind (``rate_limited``
    or ``quota``), ``detail`` its detail (the rate scope; ``tokens`` or ``messages``)."""

    def __init__(self, event_id: str, kind: str, detail: str, *,
                 retry_after_s: float | None = None) -> None:
        self.event_id = event_id
        self.kind = kind
        self.detail = detail
        self.retry_after_s = retry_after_s
        super().__init__(f"{event_id}: {kind}:{detail} (checked in the append)")


def charge(*, at: float, rate: Mapping[str, Any] | None,
           quota: Mapping[str, Any] | None) -> dict[str, Any]:
    """A trigger's ``limits``: when it was admitted and what it charges."""
    found: dict[str, Any] = {"at": at}
    if rate is not None:
        found["rate"] = dict(rate)
    if quota is not None:
        found["quota"] = dict(quota)
    return found


class RateProjection(Projection):
    """A token bucket per (persona, scope, key), taken from by accepted triggers."""

    name = "rates"
    version = 1
    types = frozenset({PersonaTriggered.type})
    tables = (
        Table(name="rate_buckets", columns=(
            Column(name="persona_id", type="text"), Column(name="scope", type="text"),
            Column(name="scope_key", type="text"), Column(name="tokens", type="real"),
            Column(name="updated", type="real"),
        ), key=("persona_id", "scope", "scope_key")),
    )

    def __init__(self) -> None:
        # the bucket admit() just read, for apply() of the same event (a live append
        # calls them back to back on the writer thread); a rebuild reads it in apply()
        self._admitted: tuple[str, tuple[TokenBucket, dict[str, str], float]] | None = None

    def admit(self, tables: TableReader, event: RecordedEvent) -> None:
        self._admitted = None
        found = _bucket(tables, event)
        if found is None:
            return
        bucket, _, at = found
        if bucket.retry_after(at) > 0:
            rate = event.data["limits"]["rate"]
            raise LimitExceeded(event.event_id, "rate_limited", str(rate["scope"]),
                                retry_after_s=round(bucket.retry_after(at), 3))
        self._admitted = (event.event_id, found)

    def apply(self, tables: TableWriter, event: RecordedEvent) -> None:
        admitted, self._admitted = self._admitted, None
        found = admitted[1] if admitted is not None and admitted[0] == event.event_id \
            else _bucket(tables, event)
        if found is None:
            return
        bucket, key, at = found
        bucket.try_take(at)
        tables.insert("rate_buckets", {**key, "tokens": bucket.tokens,
                                       "updated": bucket.updated}, on_conflict="replace")


def bucket_tokens(tables: TableReader, persona_id: str, scope: str, key: str, *,
                  capacity: float, per_s: float, now: float) -> float | None:
    """Tokens in the shared bucket at ``now`` (None: never taken from, so full)."""
    rows = tables.rows("rate_buckets", {"persona_id": persona_id, "scope": scope,
                                        "scope_key": key})
    if not rows:
        return None
    bucket = TokenBucket(capacity, per_s, min(capacity, float(rows[0]["tokens"])),
                         float(rows[0]["updated"]))
    bucket.refill(now)
    return bucket.tokens


def _bucket(tables: TableReader, event: RecordedEvent
            ) -> tuple[TokenBucket, dict[str, str], float] | None:
    """The bucket a trigger takes from, brought to its admission time (None: it has no
    rate limit, or was recorded before limits were shared)."""
    limits = event.data.get("limits") or {}
    rate = limits.get("rate")
    if not rate:
        return None
    at = float(limits["at"])
    capacity, per_s = float(rate["capacity"]), float(rate["per_s"])
    key = {"persona_id": str(event.data["persona_id"]), "scope": str(rate["scope"]),
           "scope_key": str(rate["key"])}
    rows = tables.rows("rate_buckets", key)
    if rows:
        row = rows[0]
        # a persona whose limit was edited keeps its fill level, within the new capacity
        bucket = TokenBucket(capacity, per_s, min(capacity, float(row["tokens"])),
                             float(row["updated"]))
    else:
        bucket = TokenBucket(capacity, per_s, capacity, at)
    bucket.refill(at)
    return bucket, key, at
