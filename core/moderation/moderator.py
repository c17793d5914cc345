"""Scoring a text: the local lists, then the provider within the deadline.

A provider that fails (a timeout, an HTTP error, an answer that is not a moderation
result) raises :class:`ModerationUnavailable` with a short class (``timeout``,
``http_503``, ``garbage``...); the moderator never raises and never waits past its
deadline: the failure is part of the :class:`Scores` and the policy's ``fail`` setting
decides what it means.

The provider's answers are kept for a minute, for the last few hundred texts: a message
several personas answer is sent once, not once per persona.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..config import ModerationSettings
from .wordlist import LocalList

log = logging.getLogger(__name__)

LOCAL_SOURCE = "local"
CACHED_ANSWERS = 256
CACHE_TTL_S = 60.0


class ModerationUnavailable(Exception):
    """The provider gave no usable answer; ``str()`` is a short class of failure."""


class ModerationProvider(Protocol):
    """A moderation endpoint (OpenAI's ``/v1/moderations`` or a compatible one)."""

    name: str
    """How its scores are labelled in events (``<provider>:<model>``)."""

    async def scores(self, text: str, timeout_s: float) -> Mapping[str, float]:
        """A score in 0..1 per category for ``text``; raises ModerationUnavailable."""
        ...

    async def aclose(self) -> None:
        """Let go of connections."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Scores:
    """What every source said of one text: the highest score per category, the sources
    that answered, and the provider's failure, if it failed."""

    scores: Mapping[str, float] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    error: str | None = None
    latency_s: float = 0.0


class Moderator:
    """Scores texts for the dispatcher (see the module docstring)."""

    def __init__(self, settings: ModerationSettings, provider: ModerationProvider | None = None,
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._provider = provider
        self._local = LocalList.compile(settings.words, settings.patterns)
        self._clock = clock
        self._answers: OrderedDict[bytes, tuple[float, Mapping[str, float]]] = OrderedDict()

    async def score(self, text: str) -> Scores:
        """``text`` scored by the local lists and the provider (see the module docstring)."""
        started = self._clock()
        scores: dict[str, float] = {}
        sources: list[str] = []
        if self._local:
            scores.update(self._local.scores(text))
            sources.append(LOCAL_SOURCE)
        error = None
        if self._provider is not None and text.strip():
            timeout_s = self.settings.timeout_s
            sent = text[:self.settings.max_chars]
            try:
                found = self._cached(sent)
                if found is None:
                    async with asyncio.timeout(timeout_s):
                        found = await self._provider.scores(sent, timeout_s)
                    self._keep(sent, found)
            except TimeoutError:
                error = "timeout"
            except ModerationUnavailable as exc:
                error = str(exc) or "unavailable"
            except Exception as exc:  # a bug in a provider must not take a reply down
                log.exception("the moderation provider raised")
                error = f"internal_error:{type(exc).__name__}"
            else:
                sources.append(self._provider.name)
                for category, score in found.items():
                    scores[category] = max(score, scores.get(category, 0.0))
            if error is not None:
                log.warning("moderation provider %s failed (%s): fail %s applies",
                            self._provider.name, error, self.settings.fail)
        return Scores(scores=scores, sources=tuple(sources), error=error,
                      latency_s=round(self._clock() - started, 6))

    def _cached(self, text: str) -> Mapping[str, float] | None:
        key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        found = self._answers.get(key)
        if found is None or self._clock() - found[0] > CACHE_TTL_S:
            return None
        self._answers.move_to_end(key)
        return found[1]

    def _keep(self, text: str, scores: Mapping[str, float]) -> None:
        key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        self._answers[key] = (self._clock(), scores)
        self._answers.move_to_end(key)
        while len(self._answers) > CACHED_ANSWERS:
            self._answers.popitem(last=False)

    async def aclose(self) -> None:
        """Close the provider's connections."""
        if self._provider is not None:
            await self._provider.aclose()
