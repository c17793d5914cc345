"""Each distinct persona version, recorded once in the event log, so that the exact
persona (and so the exact prompt) behind any reply can be rebuilt later."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable
from pathlib import Path

from eventstore import EventStore, NewEvent, RecordedEvent

from .loader import load_persona_text
from .model import Persona

VERSION_EVENT = "PersonaVersionRecorded"


def version_stream(persona_id: str) -> str:
    """The stream holding every version of ``persona_id``."""
    return f"persona:{persona_id}"


def version_event_id(persona_id: str, version: str) -> str:
    """The idempotency key of one version: recording it twice writes it once."""
    return f"persona-version:{persona_id}:{version}"


def version_event(persona: Persona) -> NewEvent:
    """The event recording ``persona``'s version: its source text and applied defaults."""
    return NewEvent(
        VERSION_EVENT,
        {
            "persona_id": persona.id,
            "version": persona.version,
            "path": str(persona.source_path) if persona.source_path else None,
            "source_text": persona.source_text,
            "defaults": dict(persona.applied_defaults),
        },
        event_id=version_event_id(persona.id, persona.version),
    )


async def record_versions(store: EventStore, personas: Iterable[Persona]) -> None:
    """Append a version event for each persona; versions already in the log are no-ops.
    The appends go out together, so the store commits them in one group."""
    await asyncio.gather(*(store.append(version_stream(p.id), version_event(p)) for p in personas))


def persona_from_version_event(event: RecordedEvent, known_providers: Collection[str]) -> Persona:
    """Rebuild the persona a version event recorded, exactly as it was loaded.

    Raises :class:`~core.problems.ProblemsError` if the recorded text no longer loads
    (for example because its provider has since been removed from config.yaml).
    """
    data = event.data
    path = Path(data["path"]) if data.get("path") else None
    return load_persona_text(
        data["source_text"],
        file=data.get("path") or f"<{data['persona_id']}@{data['version']}>",
        path=path,
        defaults=data.get("defaults", {}),
        known_providers=known_providers,
    )
