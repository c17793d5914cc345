"""A circuit breaker for one provider: stop calling a server that keeps failing.

Closed: calls go through; ``failure_threshold`` consecutive provider failures open
it. Open: calls fail fast until ``cooldown_s`` has passed. Half-open: exactly one
probe goes through; its success closes the breaker, its failure opens it again for
another cool-down. Callers ask :meth:`admit` before a call and report the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Per-provider failure gate (see the module docstring for the states)."""

    def __init__(self, *, failure_threshold: int, cooldown_s: float,
                 clock: Callable[[], float]) -> None:
        self._threshold = failure_threshold
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self.last_failure: str | None = None

    @property
    def state(self) -> BreakerState:
        """The current state, as of now."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self._cooldown_s:
            return "half_open"
        return "open"

    def retry_in(self) -> float:
        """Seconds until the next probe may go through (0 when calls are admitted)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown_s - self._clock())

    def admit(self) -> bool:
        """May a call go through now? In half-open state only the first caller may."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        """A call succeeded: close the breaker."""
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self, error_class: str) -> None:
        """A call failed in a way that is the provider's fault."""
        self.last_failure = error_class
        self._failures += 1
        if self._probing or self._failures >= self._threshold:
            self._opened_at = self._clock()
            self._probing = False

    def record_neutral(self) -> None:
        """A call ended in a way that says nothing about the provider's health."""
        self._probing = False
