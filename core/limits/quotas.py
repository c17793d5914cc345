"""Quotas as a projection of the log, so they survive restarts.

Every ModelReplied adds its tokens and one message to the usage of each scope it
was recorded with (user, channel, guild, persona, provider), per persona; a
QuotaReset for a persona starts its window again. The tables live in the log's
file and are updated in the same transaction as the events, so usage is never
ahead of or behind the log (``personae replay --rebuild`` can recompute them).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from eventstore import EventLog, EventStore, Projection, RecordedEvent

from ..dispatcher.events import ModelReplied, QuotaReset
from ..personas.model import QuotaSpec


class QuotaProjection(Projection):
    """Usage per (persona, scope, key) in the current window, and each window's start."""

    name = "quotas"
    version = 1
    tables = ("quota_usage", "quota_windows")

    def create(self, db: sqlite3.Connection, schema: str) -> None:
        db.execute(
            f"CREATE TABLE {schema}.quota_usage (persona_id TEXT NOT NULL, scope TEXT NOT NULL, "
            "scope_key TEXT NOT NULL, tokens INTEGER NOT NULL, messages INTEGER NOT NULL, "
            "PRIMARY KEY (persona_id, scope, scope_key)) WITHOUT ROWID"
        )
        db.execute(
            f"CREATE TABLE {schema}.quota_windows (persona_id TEXT PRIMARY KEY, "
            "started_at REAL NOT NULL, position INTEGER NOT NULL)"
        )

    def apply(self, db: sqlite3.Connection, schema: str, event: RecordedEvent) -> None:
        if event.type == ModelReplied.type:
            data = event.data
            tokens = int((data.get("usage") or {}).get("total_tokens") or 0)
            for scope, key in (data.get("scope_keys") or {}).items():
                db.execute(
                    f"INSERT INTO {schema}.quota_usage VALUES (?, ?, ?, ?, 1) "
                    "ON CONFLICT (persona_id, scope, scope_key) DO UPDATE SET "
                    "tokens = tokens + excluded.tokens, messages = messages + 1",
                    (data["persona_id"], scope, str(key), tokens),
                )
        elif event.type == QuotaReset.type:
            reset = QuotaReset.from_data(event.data)
            db.execute(f"DELETE FROM {schema}.quota_usage WHERE persona_id = ?",
                       (reset.persona_id,))
            db.execute(
                f"INSERT OR REPLACE INTO {schema}.quota_windows VALUES (?, ?, ?)",
                (reset.persona_id, reset.scheduled_for, event.position),
            )


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """Tokens and replies used in the current window."""

    tokens: int = 0
    messages: int = 0


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """What someone has left of a persona's quota, and when it resets."""

    persona_id: str
    scope: str
    scope_key: str
    used: QuotaUsage
    token_limit: int | None
    message_limit: int | None
    next_reset: datetime | None

    @property
    def tokens_left(self) -> int | None:
        """Tokens left in this window (None: no token quota)."""
        return None if self.token_limit is None else max(0, self.token_limit - self.used.tokens)

    @property
    def messages_left(self) -> int | None:
        """Replies left in this window (None: no message quota)."""
        if self.message_limit is None:
            return None
        return max(0, self.message_limit - self.used.messages)

    @property
    def exhausted(self) -> str | None:
        """``tokens`` or ``messages`` when that budget is used up, else None."""
        if self.tokens_left == 0:
            return "tokens"
        if self.messages_left == 0:
            return "messages"
        return None


def read_usage(log: EventLog, persona_id: str, scope: str, scope_key: str) -> QuotaUsage:
    """The window's usage for one persona and scope key (run on a reader thread)."""
    row = log.connection.execute(
        "SELECT tokens, messages FROM quota_usage WHERE persona_id = ? AND scope = ? "
        "AND scope_key = ?", (persona_id, scope, scope_key),
    ).fetchone()
    return QuotaUsage(int(row[0]), int(row[1])) if row else QuotaUsage()


def read_window_start(log: EventLog, persona_id: str) -> float | None:
    """When the persona's current quota window started (None: it was never reset)."""
    row = log.connection.execute(
        "SELECT started_at FROM quota_windows WHERE persona_id = ?", (persona_id,)
    ).fetchone()
    return float(row[0]) if row else None


def quota_status(
    persona_id: str, quota: QuotaSpec, scope_key: str, used: QuotaUsage,
    next_reset: datetime | None,
) -> QuotaStatus:
    """Assemble a :class:`QuotaStatus` from a persona's quota and its usage."""
    return QuotaStatus(persona_id, quota.scope, scope_key, used, quota.tokens, quota.messages,
                       next_reset)


UsageKey = tuple[str, str, str]
"""(persona id, scope, scope key)."""

MAX_CACHED_USAGE = 100_000


class QuotaLedger:
    """Window usage for quota checks: read from the projection once per key, then kept
    current from this process's own appends, so checking a quota costs no disk read.

    The projection stays the truth: each cached value remembers the projection
    position it was read at and only later events are added to it; a value whose
    key changed while it was being read is used once and not cached.
    """

    def __init__(self, store: EventStore, *, max_entries: int = MAX_CACHED_USAGE) -> None:
        self._store = store
        self._max_entries = max_entries
        self._usage: dict[UsageKey, tuple[QuotaUsage, int]] = {}
        self._loading: dict[UsageKey, int] = {}
        self._changed: set[UsageKey] = set()

    async def usage(self, keys: list[UsageKey]) -> dict[UsageKey, QuotaUsage]:
        """The current usage of each of ``keys``."""
        found = {k: self._usage[k][0] for k in keys if k in self._usage}
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        if not missing:
            return found
        for key in missing:
            self._loading[key] = self._loading.get(key, 0) + 1
        try:
            position, loaded = await self._store.read(lambda log: _read_snapshot(log, missing))
        finally:
            for key in missing:
                self._loading[key] -= 1
                if not self._loading[key]:
                    del self._loading[key]
        for key, used in zip(missing, loaded, strict=True):
            found[key] = used
            if key in self._changed:
                if key not in self._loading:
                    self._changed.discard(key)
                continue
            if key not in self._usage:
                if len(self._usage) >= self._max_entries:
                    del self._usage[next(iter(self._usage))]
                self._usage[key] = (used, position)
        return found

    def observe_reply(self, persona_id: str, scope_keys: Mapping[str, str], tokens: int,
                      position: int) -> None:
        """A ModelReplied this process appended at ``position``."""
        for scope, key in scope_keys.items():
            usage_key = (persona_id, scope, str(key))
            cached = self._usage.get(usage_key)
            if cached is not None and position > cached[1]:
                used, loaded_at = cached
                self._usage[usage_key] = (
                    QuotaUsage(used.tokens + tokens, used.messages + 1), loaded_at)
            elif usage_key in self._loading:
                self._changed.add(usage_key)

    def observe_reset(self, persona_id: str) -> None:
        """A QuotaReset of ``persona_id`` was appended: its windows start again."""
        for key in [k for k in self._usage if k[0] == persona_id]:
            del self._usage[key]
        self._changed.update(k for k in self._loading if k[0] == persona_id)


def _read_snapshot(log: EventLog, keys: list[UsageKey]) -> tuple[int, list[QuotaUsage]]:
    db = log.connection
    db.execute("BEGIN")  # one snapshot for the position and the rows
    try:
        position = log.projection_position(QuotaProjection.name)
        return position, [read_usage(log, *key) for key in keys]
    finally:
        db.execute("COMMIT")
