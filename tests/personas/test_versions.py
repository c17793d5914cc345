"""Each persona version is recorded once, and the exact persona can be rebuilt from it."""

from __future__ import annotations

from pathlib import Path

from core.events import PersonaVersionRecorded
from core.events.ids import version_stream
from core.personas.loader import load_persona_file
from core.personas.prompt import render_system_prompt
from core.personas.versions import persona_from_version_event, record_versions
from eventstore import open_store

from .conftest import MINIMAL, PROVIDERS

DEFAULTS = {"model": {"provider": "openai", "name": "m", "temperature": 0.4}}


async def test_recorded_once_and_rebuilt_exactly(tmp_path: Path) -> None:
    path = tmp_path / "ada.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    persona = load_persona_file(path, defaults=DEFAULTS, known_providers=PROVIDERS)
    async with await open_store(tmp_path / "log.db") as store:
        await record_versions(store, [persona])
        await record_versions(store, [persona])  # a no-op
        events = await store.read_stream(version_stream("ada"))
        assert len(events) == 1
        [event] = events
        assert event.type == PersonaVersionRecorded.type
        assert event.event_id == f"persona-version:ada:{persona.version}"
        assert event.data["persona_id"] == "ada" and event.data["version"] == persona.version
        assert event.data["source_text"] == MINIMAL and event.data["path"] == str(path.resolve())
        assert event.data["defaults"] == DEFAULTS

        # The file and the defaults change afterwards; the log still rebuilds the old one.
        path.write_text(MINIMAL.replace("talking", "chatting"), encoding="utf-8")
        rebuilt = persona_from_version_event(event, PROVIDERS)
        assert rebuilt == persona
        variables = {"user": "Bo"}
        assert render_system_prompt(rebuilt, variables) == "You are Ada, talking with Bo."

        newer = load_persona_file(path, defaults={"model": {"provider": "local", "name": "x"}},
                                  known_providers=PROVIDERS)
        await record_versions(store, [newer])
        assert len(await store.read_stream(version_stream("ada"))) == 2


async def test_many_personas_recorded_in_one_call(tmp_path: Path) -> None:
    personas = []
    for persona_id in ("ada", "bob", "cy"):
        path = tmp_path / f"{persona_id}.yaml"
        path.write_text(MINIMAL.replace("id: ada", f"id: {persona_id}"), encoding="utf-8")
        personas.append(load_persona_file(path, defaults=DEFAULTS, known_providers=PROVIDERS))
    async with await open_store(tmp_path / "log.db") as store:
        await record_versions(store, personas)
        await record_versions(store, personas)
        recorded = await store.read_all(types=[PersonaVersionRecorded.type])
    assert sorted(e.stream_id for e in recorded) == ["persona:ada", "persona:bob", "persona:cy"]
