"""Token buckets: the arithmetic, and the buckets one process keeps in memory.

The buckets that count are in the log (:class:`~core.limits.claims.RateProjection`,
checked in the append, so they hold across processes and restarts, with the same
:class:`TokenBucket` arithmetic). The :class:`RateLimiter` here is admission's first
guess: it sees only this process's messages, so it never refuses what the log would
allow, and it spares a second append when this process alone has used a bucket up.
Full buckets are forgotten when the table grows, so memory stays bounded by the number
of recently active keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MAX_IDLE_BUCKETS = 100_000
"""Above this many buckets, the ones that have refilled completely are dropped."""


@dataclass(slots=True)
class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``capacity / per_s`` per second."""

    capacity: float
    per_s: float
    tokens: float
    updated: float

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self.capacity / self.per_s if self.per_s > 0 else float("inf")

    def refill(self, now: float) -> None:
        """Bring ``tokens`` up to date at time ``now``."""
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def try_take(self, now: float, amount: float = 1.0) -> bool:
        """Take ``amount`` tokens if there are that many; report whether it did."""
        self.refill(now)
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False

    def retry_after(self, now: float, amount: float = 1.0) -> float:
        """Seconds until ``amount`` tokens will be there (0 when they are now)."""
        self.refill(now)
        missing = amount - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def give_back(self, amount: float = 1.0) -> None:
        """Return tokens taken for something that did not happen after all."""
        self.tokens = min(self.capacity, self.tokens + amount)


@dataclass(frozen=True, slots=True)
class BucketKey:
    """Which bucket: whose limit (``owner``, e.g. a persona or ``provider:openai``),
    the scope kind, and the scope's key (a user id, a channel id, ...)."""

    owner: str
    scope: str
    key: str


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome of :meth:`RateLimiter.take`: allowed, or how long to wait."""

    allowed: bool
    retry_after_s: float = 0.0


class RateLimiter:
    """The buckets of one process, created on first use."""

    def __init__(self, clock: Callable[[], float], *, max_idle: int = MAX_IDLE_BUCKETS) -> None:
        self._clock = clock
        self._buckets: dict[BucketKey, TokenBucket] = {}
        self._max_idle = max_idle

    def take(self, key: BucketKey, capacity: float, per_s: float) -> RateDecision:
        """Take one token from ``key``'s bucket (created full on first use)."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_idle:
                self._forget_full(now)
            bucket = self._buckets[key] = TokenBucket(capacity, per_s, capacity, now)
        elif bucket.capacity != capacity or bucket.per_s != per_s:
            # the persona's limit was edited: keep the fill level, adopt the new shape
            bucket.refill(now)
            bucket.capacity, bucket.per_s = capacity, per_s
            bucket.tokens = min(bucket.tokens, capacity)
        if bucket.try_take(now):
            return RateDecision(True)
        return RateDecision(False, bucket.retry_after(now))

    def give_back(self, key: BucketKey) -> None:
        """Return the token taken for ``key`` (the message turned out to be a duplicate)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.give_back()

    def tokens(self, key: BucketKey) -> float | None:
        """Tokens now in ``key``'s bucket, None when it does not exist (it would be full)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return None
        bucket.refill(self._clock())
        return bucket.tokens

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget_full(self, now: float) -> None:
        full = []
        for key, bucket in self._buckets.items():
            bucket.refill(now)
            if bucket.tokens >= bucket.capacity:
                full.append(key)
        for key in full:
            del self._buckets[key]


class NoticeGate:
    """At most one notice per key per window: a refused user hears it once, not per message."""

    def __init__(self, clock: Callable[[], float], *, max_keys: int = MAX_IDLE_BUCKETS) -> None:
        self._clock = clock
        self._until: dict[tuple[str, ...], float] = {}
        self._max_keys = max_keys

    def allow(self, key: tuple[str, ...], window_s: float) -> bool:
        """True (and closes the window for ``window_s``) if no notice went out for ``key``
        within its current window."""
        now = self._clock()
        if self._until.get(key, 0.0) > now:
            return False
        if len(self._until) >= self._max_keys:
            self._until = {k: t for k, t in self._until.items() if t > now}
        self._until[key] = now + window_s
        return True
