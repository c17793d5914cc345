"""``stats``: usage by persona, user, guild and day, computed from the log.

Per group: incoming messages, triggers, refusals, replies, model failures, tokens
(prompt, completion, total), latency percentiles, error rate (failures among model
calls) and refusal rate (refusals among trigger decisions). Quota use comes from the
quota projection (the current window). For a persona, ``messages`` counts the
messages that triggered it; for the other groups, messages from people.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TextIO

from eventstore import LogReader, NoSuchTable

from ..events import (
    MessageReceived,
    ModelFailed,
    ModelReplied,
    PersonaTriggered,
    TriggerRejected,
    from_recorded,
)
from .selection import EVERYTHING, Selection

DIMENSIONS = ("persona", "user", "guild", "day")
_TYPES = frozenset({MessageReceived.type, PersonaTriggered.type, TriggerRejected.type,
                    ModelReplied.type, ModelFailed.type})
NO_GUILD = "(DM)"
CSV_COLUMNS = ("dimension", "key", "messages", "triggers", "refusals", "replies", "failures",
               "prompt_tokens", "completion_tokens", "total_tokens", "latency_p50_s",
               "latency_p90_s", "latency_p99_s", "error_rate", "refusal_rate")


@dataclass(slots=True)
class GroupStats:
    """The figures of one group (a persona, a user, a guild or a day)."""

    messages: int = 0
    triggers: int = 0
    refusals: int = 0
    replies: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    latencies: list[float] = field(default_factory=list)

    def latency(self, percentile: float) -> float | None:
        """The ``percentile`` (0-100) of reply latency in seconds (nearest rank)."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(percentile / 100 * len(ordered)) - 1)]

    @property
    def error_rate(self) -> float | None:
        """Failed model calls among all model calls."""
        calls = self.replies + self.failures
        return self.failures / calls if calls else None

    @property
    def refusal_rate(self) -> float | None:
        """Refusals among all trigger decisions."""
        decisions = self.triggers + self.refusals
        return self.refusals / decisions if decisions else None


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaUse:
    """A persona's current-window usage for one scope key (from the quota projection)."""

    persona_id: str
    scope: str
    scope_key: str
    tokens: int
    messages: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageStats:
    """Figures per dimension (``persona``, ``user``, ``guild``, ``day``) and key."""

    groups: Mapping[str, Mapping[str, GroupStats]]
    quotas: tuple[QuotaUse, ...]

    def tokens_per_day(self) -> list[tuple[str, int]]:
        """Total tokens per day, oldest first."""
        return sorted((day, g.total_tokens) for day, g in self.groups["day"].items())


def compute_stats(log: LogReader, selection: Selection = EVERYTHING) -> UsageStats:
    """Usage figures over the events ``selection`` admits (its types are ignored)."""
    groups: dict[str, dict[str, GroupStats]] = {d: {} for d in DIMENSIONS}
    senders: dict[tuple[str, str], tuple[str, str]] = {}
    askers: dict[tuple[str, str, str], tuple[str, str]] = {}

    def bump(keys: Iterable[tuple[str, str]]) -> list[GroupStats]:
        found = []
        for dimension, key in keys:
            group = groups[dimension].get(key)
            if group is None:
                group = groups[dimension][key] = GroupStats()
            found.append(group)
        return found

    for recorded in log.scan(replace(selection, types=_TYPES).as_filter()):
        event = from_recorded(recorded)
        day = datetime.fromtimestamp(recorded.recorded_at, UTC).strftime("%Y-%m-%d")
        if isinstance(event, MessageReceived):
            guild = event.guild_id or NO_GUILD
            senders[(event.platform, event.message_id)] = (event.author_id, guild)
            if not event.author_is_bot and not event.from_persona:
                for g in bump((("user", event.author_id), ("guild", guild), ("day", day))):
                    g.messages += 1
            continue
        assert isinstance(event, PersonaTriggered | TriggerRejected | ModelReplied | ModelFailed)
        persona = event.persona_id
        message = (event.platform, event.message_id)
        key = (*message, persona)
        who: tuple[str, str]
        if isinstance(event, PersonaTriggered):
            who = askers[key] = (event.author_id, event.guild_id or NO_GUILD)
        elif isinstance(event, TriggerRejected):
            who = (event.author_id, senders.get(message, ("", "?"))[1])
        elif isinstance(event, ModelReplied):
            guild = str(event.scope_keys.get("guild") or "?")
            who = askers.pop(key) if key in askers else (
                event.author_id, NO_GUILD if guild.startswith("dm:") else guild)
        else:
            who = askers.pop(key) if key in askers else senders.get(message, ("?", "?"))
        touched = bump((("persona", persona), ("user", who[0]), ("guild", who[1]),
                        ("day", day)))
        if isinstance(event, PersonaTriggered):
            touched[0].messages += 1
            for g in touched:
                g.triggers += 1
        elif isinstance(event, TriggerRejected):
            touched[0].messages += 1
            for g in touched:
                g.refusals += 1
        elif isinstance(event, ModelFailed):
            for g in touched:
                g.failures += 1
        else:
            usage = event.usage
            for g in touched:
                g.replies += 1
                g.prompt_tokens += int(usage.get("prompt_tokens") or 0)
                g.completion_tokens += int(usage.get("completion_tokens") or 0)
                g.total_tokens += int(usage.get("total_tokens") or 0)
                g.latencies.append(float(event.latency_s or 0.0))
    return UsageStats(groups=groups, quotas=_quota_use(log))


def _quota_use(log: LogReader) -> tuple[QuotaUse, ...]:
    try:
        rows = log.rows("quota_usage", order_by=("persona_id", "scope", "scope_key"))
    except NoSuchTable:  # the quota projection has never run on this log
        return ()
    return tuple(QuotaUse(**row) for row in rows)


def _number(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def stats_rows(stats: UsageStats) -> list[dict[str, Any]]:
    """One row per group, in CSV column order."""
    rows = []
    for dimension in DIMENSIONS:
        for key in sorted(stats.groups[dimension]):
            g = stats.groups[dimension][key]
            rows.append({
                "dimension": dimension, "key": key, "messages": g.messages,
                "triggers": g.triggers, "refusals": g.refusals, "replies": g.replies,
                "failures": g.failures, "prompt_tokens": g.prompt_tokens,
                "completion_tokens": g.completion_tokens, "total_tokens": g.total_tokens,
                "latency_p50_s": _number(g.latency(50)), "latency_p90_s": _number(g.latency(90)),
                "latency_p99_s": _number(g.latency(99)), "error_rate": _number(g.error_rate),
                "refusal_rate": _number(g.refusal_rate),
            })
    return rows


def write_csv(stats: UsageStats, out: TextIO) -> None:
    """The figures as CSV (one row per group, ``dimension`` and ``key`` first)."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(stats_rows(stats))


def tokens_chart(per_day: list[tuple[str, int]], width: int = 40) -> list[str]:
    """A bar per day, scaled to the busiest day (eighth-block resolution)."""
    if not per_day:
        return []
    top = max(tokens for _, tokens in per_day) or 1
    blocks = " ▏▎▍▌▋▊▉"
    lines = []
    for day, tokens in per_day:
        eighths = round(tokens / top * width * 8)
        bar = "█" * (eighths // 8) + (blocks[eighths % 8] if eighths % 8 else "")
        lines.append(f"{day}  {bar:<{width}}  {tokens:,}")
    return lines
