"""Hot reload: watch the personas directory and swap in each valid change.

Every change reloads the directory (re-parsing only files whose text changed) and
hands the result to the registry, which keeps the last
good version of a broken file. New versions are passed to ``on_loaded`` (which
records them in the event log) *before* they serve, so every reply's persona version
is in the log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from watchfiles import awatch

from ..problems import Problem
from .includes import LOREBOOK_DIR
from .loader import PERSONA_SUFFIXES, LoadCache, load_personas
from .model import Persona
from .registry import PersonaRegistry, RegistryChange

log = logging.getLogger(__name__)


class PersonaWatcher:
    """Keeps ``registry`` in step with the persona files in ``directory``.

    Problems are logged as warnings; ``on_problems`` also receives the problems of
    each reload that has any (to tell the admins, say). ``on_loaded`` receives the
    personas whose version is new and is awaited before they serve; ``on_reloaded``
    is told what each reload changed. ``adapt`` turns each loaded persona into the one
    that serves (the terminal's offline stand-in, say). The lorebook files personas
    include (``lorebooks/``) are watched too.
    """

    def __init__(
        self,
        directory: str | Path,
        registry: PersonaRegistry,
        *,
        defaults: Mapping[str, Any],
        known_providers: Collection[str],
        on_problems: Callable[[Sequence[Problem]], None],
        on_loaded: Callable[[Sequence[Persona]], Awaitable[None]] | None = None,
        on_reloaded: Callable[[RegistryChange], None] | None = None,
        adapt: Callable[[Persona], Persona] | None = None,
        debounce_ms: int = 100,
        step_ms: int = 15,
    ) -> None:
        self._directory = Path(directory)
        self._registry = registry
        self._defaults = defaults
        self._known_providers = frozenset(known_providers)
        self._on_problems = on_problems
        self._on_loaded = on_loaded
        self._on_reloaded = on_reloaded
        self._adapt = adapt
        self._debounce_ms = debounce_ms
        self._step_ms = step_ms
        self._lock = asyncio.Lock()
        self._cache = LoadCache()
        self.ready = asyncio.Event()
        """Set once changes to the directory are being watched."""

    async def reload(self) -> tuple[Problem, ...]:
        """Load the directory now and serve what is valid; returns the problems found.

        Never raises: whatever goes wrong (a bug, a callback that fails) is logged and
        comes back as a problem, so that ``/reload`` always gets an answer."""
        async with self._lock:
            try:
                return await self._reload()
            except Exception as exc:
                log.exception("reloading personas failed")
                problem = Problem(str(self._directory), 1, 1, "",
                                  f"reloading the personas failed ({type(exc).__name__}); the "
                                  "personas serving before keep serving")
                self._tell(self._on_problems, (problem,))
                return (problem,)

    async def _reload(self) -> tuple[Problem, ...]:
        loaded = await asyncio.to_thread(
            load_personas, self._directory, defaults=self._defaults,
            known_providers=self._known_providers, cache=self._cache,
        )
        if self._adapt is not None:
            loaded = dataclasses.replace(loaded, personas={
                pid: self._adapt(p) for pid, p in loaded.personas.items()})
        serving, change = self._registry.preview(loaded)
        if self._on_loaded is not None and change.changed:
            try:
                await self._on_loaded([serving[i] for i in change.changed])
            except Exception:
                # Serving a version the log cannot name would break replays; keep
                # the old snapshot and let the next change (or /reload) retry.
                log.exception("could not record new persona versions; keeping the old ones")
                return loaded.problems
        change = self._registry.replace(loaded)
        for problem in loaded.problems:
            log.warning("persona problem: %s", problem)
        if loaded.problems:
            self._tell(self._on_problems, loaded.problems)
        if change.added or change.updated or change.retired:
            log.info("personas reloaded: added=%s updated=%s retired=%s kept=%s",
                     change.added, change.updated, change.retired, change.kept)
        if self._on_reloaded is not None:
            self._tell(self._on_reloaded, change)
        return loaded.problems

    @staticmethod
    def _tell(callback: Callable[[Any], None], value: Any) -> None:
        # A failing listener must not undo a reload that has already been served.
        try:
            callback(value)
        except Exception:
            log.exception("a persona reload listener failed")

    async def run(self) -> None:
        """Watch until cancelled, reloading after each batch of changes. Raises
        FileNotFoundError when the directory does not exist (:meth:`reload` reports
        that as a problem first, so check it at start-up)."""
        directory = self._directory.resolve()
        batches = awatch(
            directory, watch_filter=lambda change, path: _is_persona_file(directory, path),
            debounce=self._debounce_ms, step=self._step_ms, recursive=True,
        )
        # awatch registers its OS watch before its first await, so once that task has
        # run one step no change can be missed; the reload then catches up on any
        # change made before the watch started.
        next_batch: asyncio.Task[Any] = asyncio.create_task(_next(batches))
        try:
            await asyncio.sleep(0)
            await self.reload()
            self.ready.set()
            while True:
                await next_batch
                await self.reload()
                next_batch = asyncio.create_task(_next(batches))
        finally:
            next_batch.cancel()
            await asyncio.wait([next_batch])
            self.ready.clear()
            await batches.aclose()


async def _next(batches: AsyncIterator[Any]) -> Any:
    return await anext(batches)


def _is_persona_file(directory: Path, path: str) -> bool:
    """A persona file in ``directory``, or a lorebook file in its ``lorebooks`` folder."""
    file = Path(path)
    name = file.name
    if not name.endswith(PERSONA_SUFFIXES) or name.startswith("."):
        return False
    parent = file.parent
    return parent == directory or (parent.name == LOREBOOK_DIR and parent.parent == directory)
