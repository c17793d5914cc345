"""Each distinct persona version, recorded once in the event log, so that the exact
persona (and so the exact prompt) behind any reply can be rebuilt later."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable
from pathlib import Path

from eventstore import EventStore, NewEvent, RecordedEvent

from ..events import PersonaVersionRecorded
from ..events.ids import version_event_id, version_stream
from .includes import RecordedIncludes
from .loader import load_persona_text
from .model import Persona


def version_event(persona: Persona) -> NewEvent:
    """The event recording ``persona``'s version: its source text and applied defaults."""
    return PersonaVersionRecorded(
        persona_id=persona.id, version=persona.version,
        path=str(persona.source_path) if persona.source_path else None,
        source_text=persona.source_text, defaults=dict(persona.applied_defaults),
        included=dict(persona.included),
    ).new_event(version_event_id(persona.id, persona.version))


async def record_versions(store: EventStore, personas: Iterable[Persona]) -> None:
    """Append a version event for each persona; versions already in the log are no-ops.
    The appends go out together, so the store commits them in one group."""
    await asyncio.gather(*(store.append(version_stream(p.id), version_event(p)) for p in personas))


def persona_from_version_event(event: RecordedEvent, known_providers: Collection[str]) -> Persona:
    """Rebuild the persona a version event recorded, exactly as it was loaded.

    Raises :class:`~core.problems.ProblemsError` if the recorded text no longer loads
    (for example because its provider has since been removed from config.yaml).
    """
    recorded = PersonaVersionRecorded.from_data(event.data)
    return load_persona_text(
        recorded.source_text,
        file=recorded.path or f"<{recorded.persona_id}@{recorded.version}>",
        path=Path(recorded.path) if recorded.path else None,
        defaults=recorded.defaults,
        known_providers=known_providers,
        includes=RecordedIncludes(recorded.included),
    )


class VersionRecorder:
    """Records each persona version once per process: the log's idempotency makes a
    second append harmless, this set makes it free."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._recorded: set[tuple[str, str]] = set()

    async def record(self, personas: Iterable[Persona]) -> None:
        """Record the versions of ``personas`` not recorded yet by this process."""
        fresh = [p for p in personas if (p.id, p.version) not in self._recorded]
        if fresh:
            await record_versions(self._store, fresh)
            self._recorded.update((p.id, p.version) for p in fresh)
