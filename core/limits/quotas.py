"""Quotas as a projection of the log, so they survive restarts and hold across processes.

Every ModelReplied adds its tokens and one message to the usage of each scope it
was recorded with (user, channel, guild, persona, provider), per persona; a
QuotaReset for a persona starts its window again. Each accepted trigger holds a
reservation until its reply ends, and the projection refuses a trigger in the append
once usage and reservations reach a limit (:mod:`core.limits.claims`). The tables live
in the log's database and are updated in the same transaction as the events, so usage
is never ahead of or behind the log (``personae replay --rebuild`` can recompute them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventstore import (
    Column,
    EventStore,
    LogReader,
    Projection,
    RecordedEvent,
    Table,
    TableReader,
    TableWriter,
)

from ..events import ModelFailed, ModelReplied, PersonaTriggered, QuotaReset
from ..events.ids import trigger_event_id
from ..personas.model import QuotaSpec
from .claims import LimitExceeded


class QuotaProjection(Projection):
    """Usage per (persona, scope, key) in the current window, each window's start, and
    the reservations of accepted triggers whose reply has not ended yet.

    A trigger whose ``limits`` name a quota reserves one message and ``hold`` tokens on
    its quota's key (``quota_holds``, summed in ``quota_held``) until its ModelReplied
    (which then counts what it really used) or ModelFailed. :meth:`admit` refuses a
    trigger when usage plus reservations has reached a limit, in the append transaction
    (see :mod:`core.limits.claims`), so replies in flight count, in every process.
    Reservations outlive a QuotaReset: a reply counts in the window it lands in."""

    name = "quotas"
    version = 2
    types = frozenset({ModelReplied.type, ModelFailed.type, QuotaReset.type,
                       PersonaTriggered.type})
    tables = (
        Table(name="quota_usage", columns=(
            Column(name="persona_id", type="text"), Column(name="scope", type="text"),
            Column(name="scope_key", type="text"), Column(name="tokens", type="integer"),
            Column(name="messages", type="integer"),
        ), key=("persona_id", "scope", "scope_key")),
        Table(name="quota_windows", columns=(
            Column(name="persona_id", type="text"), Column(name="started_at", type="real"),
            Column(name="position", type="integer"),
        ), key=("persona_id",)),
        Table(name="quota_held", columns=(
            Column(name="persona_id", type="text"), Column(name="scope", type="text"),
            Column(name="scope_key", type="text"), Column(name="tokens", type="integer"),
            Column(name="messages", type="integer"),
        ), key=("persona_id", "scope", "scope_key")),
        Table(name="quota_holds", columns=(
            Column(name="trigger_id", type="text"), Column(name="persona_id", type="text"),
            Column(name="scope", type="text"), Column(name="scope_key", type="text"),
            Column(name="tokens", type="integer"),
        ), key=("trigger_id",)),
    )

    def admit(self, tables: TableReader, event: RecordedEvent) -> None:
        quota = _charged_quota(event)
        if quota is None:
            return
        key = _quota_key(event, quota)
        used = _sum(tables, "quota_usage", key)
        held = _sum(tables, "quota_held", key)
        tokens, messages = quota.get("tokens"), quota.get("messages")
        if tokens is not None and used.tokens + held.tokens >= int(tokens):
            raise LimitExceeded(event.event_id, "quota", "tokens")
        if messages is not None and used.messages + held.messages >= int(messages):
            raise LimitExceeded(event.event_id, "quota", "messages")

    def apply(self, tables: TableWriter, event: RecordedEvent) -> None:
        if event.type == PersonaTriggered.type:
            quota = _charged_quota(event)
            if quota is not None:
                held = _quota_key(event, quota)
                hold = int(quota.get("hold") or 0)
                tables.insert("quota_holds", {"trigger_id": event.event_id, **held,
                                              "tokens": hold})
                tables.add("quota_held", held, {"tokens": hold, "messages": 1})
        elif event.type == ModelReplied.type:
            replied = ModelReplied.from_data(event.data)
            self._release(tables, replied.platform, replied.message_id, replied.persona_id)
            tokens = int(replied.usage.get("total_tokens") or 0)
            for scope, key in replied.scope_keys.items():
                tables.add("quota_usage", {"persona_id": replied.persona_id, "scope": scope,
                                           "scope_key": str(key)},
                           {"tokens": tokens, "messages": 1})
        elif event.type == ModelFailed.type:
            failed = ModelFailed.from_data(event.data)
            self._release(tables, failed.platform, failed.message_id, failed.persona_id)
        else:
            reset = QuotaReset.from_data(event.data)
            tables.delete("quota_usage", {"persona_id": reset.persona_id})
            # keys with nothing in flight keep no row from one window to the next
            tables.delete("quota_held", {"persona_id": reset.persona_id, "messages": 0})
            tables.insert("quota_windows", {"persona_id": reset.persona_id,
                                            "started_at": reset.scheduled_for,
                                            "position": event.position}, on_conflict="replace")

    @staticmethod
    def _release(tables: TableWriter, platform: str, message_id: str, persona_id: str) -> None:
        """The trigger's reply ended: its reservation goes."""
        trigger_id = trigger_event_id(platform, message_id, persona_id)
        holds = tables.rows("quota_holds", {"trigger_id": trigger_id})
        if not holds:
            return  # no quota, or a trigger recorded before quotas held reservations
        hold = holds[0]
        key = {"persona_id": hold["persona_id"], "scope": hold["scope"],
               "scope_key": hold["scope_key"]}
        tables.delete("quota_holds", {"trigger_id": trigger_id})
        tables.add("quota_held", key, {"tokens": -int(hold["tokens"]), "messages": -1})


def _charged_quota(event: RecordedEvent) -> Mapping[str, Any] | None:
    limits = event.data.get("limits") or {}
    quota = limits.get("quota")
    return quota or None


def _quota_key(event: RecordedEvent, quota: Mapping[str, Any]) -> dict[str, str]:
    return {"persona_id": str(event.data["persona_id"]), "scope": str(quota["scope"]),
            "scope_key": str(quota["key"])}


def _sum(tables: TableReader, table: str, key: Mapping[str, str]) -> QuotaUsage:
    rows = tables.rows(table, key)
    return QuotaUsage(tokens=int(rows[0]["tokens"]), messages=int(rows[0]["messages"])) \
        if rows else QuotaUsage()


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaUsage:
    """Tokens and replies used in the current window."""

    tokens: int = 0
    messages: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
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


def read_usage(log: LogReader, persona_id: str, scope: str, scope_key: str) -> QuotaUsage:
    """The window's usage for one persona and scope key (run on a reader thread)."""
    rows = log.rows("quota_usage", {"persona_id": persona_id, "scope": scope,
                                    "scope_key": scope_key})
    return QuotaUsage(tokens=int(rows[0]["tokens"]), messages=int(rows[0]["messages"])) \
        if rows else QuotaUsage()


def read_window_start(log: LogReader, persona_id: str) -> float | None:
    """When the persona's current quota window started (None: it was never reset)."""
    rows = log.rows("quota_windows", {"persona_id": persona_id})
    return float(rows[0]["started_at"]) if rows else None


def quota_status(
    persona_id: str, quota: QuotaSpec, scope_key: str, used: QuotaUsage,
    next_reset: datetime | None,
) -> QuotaStatus:
    """Assemble a :class:`QuotaStatus` from a persona's quota and its usage."""
    return QuotaStatus(persona_id=persona_id, scope=quota.scope, scope_key=scope_key, used=used,
                       token_limit=quota.tokens, message_limit=quota.messages,
                       next_reset=next_reset)


UsageKey = tuple[str, str, str]
"""(persona id, scope, scope key)."""

MAX_CACHED_USAGE = 100_000


class QuotaLedger:
    """Window usage for quota checks: read from the projection once per key, then kept
    current from this process's own appends, so checking a quota costs no disk read.

    The projection stays the truth: each cached value remembers the projection
    position it was read at and only later events are added to it; a value whose
    key changed while it was being read is used once and not cached.

    On a log other processes append to (``store.shared``), :meth:`follow` drops each
    cached value an event touches, whoever appended it, as the log's followers hear of
    it (LISTEN/NOTIFY, then a read by position). The cache is only admission's first
    guess: the projection checks every trigger again in the append transaction
    (:mod:`core.limits.claims`), so a late or missed notification costs a second
    append, never a quota.
    """

    def __init__(self, store: EventStore, *, max_entries: int = MAX_CACHED_USAGE) -> None:
        self._store = store
        self._max_entries = max_entries
        self._usage: dict[UsageKey, tuple[QuotaUsage, int]] = {}
        self._loading: dict[UsageKey, int] = {}
        self._changed: set[UsageKey] = set()
        self._followed: int | None = None  # how far follow() has read, while it runs

    @property
    def following(self) -> bool:
        """Whether :meth:`follow` runs (and has found where the log ends)."""
        return self._followed is not None

    async def follow(self) -> None:
        """Drop cached values as events of any process change them (runs until
        cancelled; for a shared log)."""
        self._followed = after = await self._store.last_position()
        self._usage.clear()  # loaded before following: not known to be current
        try:
            async for event in self._store.follow(after, types=(ModelReplied.type,
                                                                QuotaReset.type)):
                if event.type == ModelReplied.type:
                    replied = ModelReplied.from_data(event.data)
                    self._drop([(replied.persona_id, scope, str(key))
                                for scope, key in replied.scope_keys.items()])
                else:
                    self.observe_reset(QuotaReset.from_data(event.data).persona_id)
                self._followed = event.position
        finally:
            self._followed = None

    def _drop(self, keys: list[UsageKey]) -> None:
        for key in keys:
            self._usage.pop(key, None)
            if key in self._loading:
                self._changed.add(key)

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
            if self._followed is not None and position < self._followed:
                continue  # the follower passed events this snapshot misses
            if key not in self._usage:
                if len(self._usage) >= self._max_entries:
                    del self._usage[next(iter(self._usage))]
                self._usage[key] = (used, position)
        return found

    async def read(self, key: UsageKey) -> QuotaUsage:
        """The usage of ``key`` as the projection holds it now (no cache: for showing it)."""
        return await self._store.read(lambda log: read_usage(log, *key))

    def observe_reply(self, persona_id: str, scope_keys: Mapping[str, str], tokens: int,
                      position: int) -> None:
        """A ModelReplied this process appended at ``position``."""
        for scope, key in scope_keys.items():
            usage_key = (persona_id, scope, str(key))
            cached = self._usage.get(usage_key)
            if cached is not None and position > cached[1]:
                used, loaded_at = cached
                self._usage[usage_key] = (
                    QuotaUsage(tokens=used.tokens + tokens, messages=used.messages + 1), loaded_at)
            elif usage_key in self._loading:
                self._changed.add(usage_key)

    def observe_reset(self, persona_id: str) -> None:
        """A QuotaReset of ``persona_id`` was appended: its windows start again."""
        for key in [k for k in self._usage if k[0] == persona_id]:
            del self._usage[key]
        self._changed.update(k for k in self._loading if k[0] == persona_id)


def _read_snapshot(log: LogReader, keys: list[UsageKey]) -> tuple[int, list[QuotaUsage]]:
    # store.read runs this in one snapshot: the position and the rows agree
    position = log.projection_position(QuotaProjection.name)
    return position, [read_usage(log, *key) for key in keys]
