"""How much one provider is asked at once: concurrent calls, requests and tokens per minute.

:class:`RateBucket` is a token bucket holding up to a minute's allowance and
refilling continuously; it may go into debt when a reply turns out longer than
estimated, which delays later calls instead of overshooting the provider's limit.
Waits never exceed the caller's deadline: :class:`ThrottleTimeout` is raised
instead, before sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class ThrottleTimeout(Exception):
    """The configured limit would need a wait past the caller's deadline."""


class RateBucket:
    """``per_minute`` units per minute, with bursts up to a minute's worth."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._level = float(per_minute)
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self._capacity, self._level + (now - self._updated) * self._rate)
        self._updated = now

    async def take(self, amount: float, deadline: float) -> float:
        """Take ``amount`` units, waiting for them; returns the seconds waited.

        A request larger than the whole allowance waits for a full bucket instead,
        so it can still go through.
        """
        amount = min(amount, self._capacity)
        waited = 0.0
        async with self._lock:  # first come, first served
            self._refill()
            if self._level < amount:
                wait = (amount - self._level) / self._rate
                if self._clock() + wait > deadline:
                    raise ThrottleTimeout
                await self._sleep(wait)
                waited = wait
                self._refill()
            self._level -= amount
        return waited

    def charge(self, amount: float) -> None:
        """Take ``amount`` more without waiting (may leave the bucket in debt)."""
        self._refill()
        self._level -= amount


class ProviderLimits:
    """The concurrency bound and optional rate buckets of one provider."""

    def __init__(self, *, max_concurrency: int, requests_per_minute: int | None,
                 tokens_per_minute: int | None, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        self.slots = asyncio.Semaphore(max_concurrency)
        self.requests = (RateBucket(requests_per_minute, clock=clock, sleep=sleep)
                         if requests_per_minute else None)
        self.tokens = (RateBucket(tokens_per_minute, clock=clock, sleep=sleep)
                       if tokens_per_minute else None)

    async def admit(self, prompt_tokens: int, deadline: float) -> float:
        """Wait for the rate limits (not the concurrency slot); returns seconds waited."""
        waited = 0.0
        if self.requests is not None:
            waited += await self.requests.take(1, deadline)
        if self.tokens is not None:
            waited += await self.tokens.take(prompt_tokens, deadline)
        return waited
