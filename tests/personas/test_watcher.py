"""Hot reload with a running watcher: edit, break, fix, delete and add persona files."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from core.events import PersonaVersionRecorded
from core.personas.model import Persona
from core.personas.registry import PersonaRegistry, RegistryChange
from core.personas.versions import record_versions
from core.personas.watcher import PersonaWatcher
from core.problems import Problem
from eventstore import open_store

from .conftest import MINIMAL, PROVIDERS

DEFAULTS = {"model": {"provider": "openai", "name": "m"}}


async def until(predicate: Callable[[], bool], changed: asyncio.Event) -> None:
    """Wait, reload by reload, until ``predicate`` holds (5 s at most)."""
    async with asyncio.timeout(5):
        while not predicate():
            changed.clear()
            await changed.wait()


async def test_edit_break_fix_delete_add_while_running(tmp_path: Path) -> None:
    directory = tmp_path / "personas"
    directory.mkdir()
    ada = directory / "ada.yaml"
    ada.write_text(MINIMAL, encoding="utf-8")
    registry = PersonaRegistry()
    reported: list[Problem] = []
    reloaded = asyncio.Event()

    def on_problems(problems: Sequence[Problem]) -> None:
        reported.extend(problems)
        reloaded.set()

    def on_reloaded(change: RegistryChange) -> None:
        reloaded.set()

    async with await open_store(tmp_path / "log.db") as store:
        async def on_loaded(personas: Sequence[Persona]) -> None:
            for persona in personas:  # recorded before serving
                assert registry.get(persona.id) is not persona
            await record_versions(store, personas)

        watcher = PersonaWatcher(directory, registry, defaults=DEFAULTS,
                                 known_providers=PROVIDERS, on_problems=on_problems,
                                 on_loaded=on_loaded, on_reloaded=on_reloaded)
        task = asyncio.create_task(watcher.run())
        try:
            async with asyncio.timeout(5):
                await watcher.ready.wait()
            assert registry.get("ada").name == "Ada"

            ada.write_text(MINIMAL.replace("name: Ada", "name: Ada Two"), encoding="utf-8")
            await until(lambda: registry.get("ada").name == "Ada Two", reloaded)

            ada.write_text("id: ada\nname: Ada Three\nprompt: {system: '{nope}'}\n",
                           encoding="utf-8")
            await until(lambda: any(p.field == "prompt.system" for p in reported), reloaded)
            assert registry.get("ada").name == "Ada Two"
            problem = next(p for p in reported if p.field == "prompt.system")
            assert (problem.file, problem.line) == (str(ada), 3)

            ada.write_text(MINIMAL.replace("name: Ada", "name: Ada Three"), encoding="utf-8")
            await until(lambda: registry.get("ada").name == "Ada Three", reloaded)

            ada.unlink()
            await until(lambda: registry.get("ada") is None, reloaded)

            (directory / "bob.yml").write_text(MINIMAL.replace("id: ada", "id: bob"),
                                               encoding="utf-8")
            await until(lambda: registry.get("bob") is not None, reloaded)
            assert [p.id for p in registry.all()] == ["bob"]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert not watcher.ready.is_set()

        recorded = await store.read_all(types=[PersonaVersionRecorded.type])
        names = {e.data["source_text"].split("name: ")[1].split("\n")[0] for e in recorded
                 if e.data["persona_id"] == "ada"}
        assert names == {"Ada", "Ada Two", "Ada Three"}
        assert {e.data["persona_id"] for e in recorded} == {"ada", "bob"}


async def test_reload_returns_problems_and_serves_the_rest(tmp_path: Path) -> None:
    (tmp_path / "ada.yaml").write_text(MINIMAL, encoding="utf-8")
    (tmp_path / "bad.yaml").write_text("id: bad\nname: Bad\nprompt: {}\n", encoding="utf-8")
    registry = PersonaRegistry()
    seen: list[Sequence[Problem]] = []
    watcher = PersonaWatcher(tmp_path, registry, defaults=DEFAULTS, known_providers=PROVIDERS,
                             on_problems=seen.append)
    problems = await watcher.reload()
    assert [p.field for p in problems] == ["prompt.system"]
    assert seen == [problems]
    assert [p.id for p in registry.all()] == ["ada"]


async def test_a_version_that_cannot_be_recorded_does_not_serve(tmp_path: Path) -> None:
    ada = tmp_path / "ada.yaml"
    ada.write_text(MINIMAL, encoding="utf-8")
    registry = PersonaRegistry()
    fail = False

    async def on_loaded(personas: Sequence[Persona]) -> None:
        if fail:
            raise OSError("disk full")

    watcher = PersonaWatcher(tmp_path, registry, defaults=DEFAULTS, known_providers=PROVIDERS,
                             on_problems=lambda problems: None, on_loaded=on_loaded)
    await watcher.reload()
    fail = True
    ada.write_text(MINIMAL.replace("name: Ada", "name: Unrecorded"), encoding="utf-8")
    await watcher.reload()
    assert registry.get("ada").name == "Ada"
    fail = False
    await watcher.reload()
    assert registry.get("ada").name == "Unrecorded"
